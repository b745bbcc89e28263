package org.pbroker;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.lang.reflect.Type;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/** Finds and invokes {@link Remote} methods by name (the default Referenceable dispatch). */
final class RemoteDispatch {
    private static final Map<Class<?>, Map<String, List<Method>>> CACHE = new ConcurrentHashMap<>();

    private RemoteDispatch() {}

    static Object invoke(Object target, String name, List<Object> args, Map<String, Object> kwargs)
            throws Exception {
        List<Method> candidates = methods(target.getClass()).get(name);
        if (candidates == null) {
            throw new UnimplementedException("broker.NoSuchMethod",
                    target.getClass().getSimpleName() + " has no remote method '" + name + "'",
                    null);
        }
        if (kwargs != null && !kwargs.isEmpty()) {
            throw new IllegalArgumentException("remote method '" + name
                    + "' is a Java method and takes no keyword arguments, got " + kwargs.keySet());
        }
        return invokeFirstMatching(target, candidates, "remote method '" + name + "'", args);
    }

    /**
     * Invoke the first of {@code candidates} whose parameters {@code args} convert to (an overload
     * is chosen by the arguments, fewest parameters first); the method's own exception is rethrown.
     *
     * @param what how an error names the method, e.g. {@code remote method 'add'}
     */
    static Object invokeFirstMatching(Object target, List<Method> candidates, String what,
            List<Object> args) throws Exception {
        IllegalArgumentException mismatch = null;
        for (Method m : candidates) {
            Object[] converted;
            try {
                converted = convertArgs(m, m.getGenericParameterTypes(), args);
            } catch (IllegalArgumentException | ClassCastException e) {
                mismatch = new IllegalArgumentException("cannot call " + what + ": " + e.getMessage(), e);
                continue;
            }
            try {
                return m.invoke(target, converted);
            } catch (InvocationTargetException e) {
                Throwable cause = e.getCause();
                if (cause instanceof Exception ex) {
                    throw ex;
                }
                throw new RuntimeException(cause);
            }
        }
        throw mismatch;
    }

    private static Object[] convertArgs(Method m, Type[] types, List<Object> args) {
        if (m.isVarArgs()) {
            int fixed = types.length - 1;
            if (args.size() < fixed) {
                throw new IllegalArgumentException("takes at least " + fixed + " arguments, got "
                        + args.size());
            }
            Object[] out = new Object[types.length];
            for (int i = 0; i < fixed; i++) {
                out[i] = Values.convert(args.get(i), types[i]);
            }
            out[fixed] = Values.convert(new ArrayList<>(args.subList(fixed, args.size())),
                    types[fixed]);
            return out;
        }
        if (args.size() != types.length) {
            throw new IllegalArgumentException(
                    "takes " + types.length + " arguments, got " + args.size());
        }
        Object[] out = new Object[types.length];
        for (int i = 0; i < types.length; i++) {
            out[i] = Values.convert(args.get(i), types[i]);
        }
        return out;
    }

    /** @return remote name to candidate methods (fewest parameters first) */
    static Map<String, List<Method>> methods(Class<?> cls) {
        return CACHE.computeIfAbsent(cls, RemoteDispatch::scan);
    }

    private static Map<String, List<Method>> scan(Class<?> cls) {
        Map<String, List<Method>> result = new LinkedHashMap<>();
        Set<String> seen = new HashSet<>();
        for (Method m : cls.getMethods()) {
            Remote remote = findAnnotation(cls, m);
            if (remote == null || Modifier.isStatic(m.getModifiers())) {
                continue;
            }
            String key = m.getName() + java.util.Arrays.toString(m.getParameterTypes());
            if (!seen.add(key)) {
                continue;
            }
            try {
                m.setAccessible(true); // public method of a non-public class
            } catch (RuntimeException ignored) {
                // module rules forbid it; invoke() will say so
            }
            String name = remote.value().isEmpty() ? m.getName() : remote.value();
            result.computeIfAbsent(name, k -> new ArrayList<>()).add(m);
        }
        for (List<Method> list : result.values()) {
            list.sort((a, b) -> Integer.compare(a.getParameterCount(), b.getParameterCount()));
        }
        return result;
    }

    /** The annotation on the method or on the method it implements in an interface. */
    private static Remote findAnnotation(Class<?> cls, Method m) {
        Remote r = m.getAnnotation(Remote.class);
        if (r != null) {
            return r;
        }
        for (Class<?> c = cls; c != null; c = c.getSuperclass()) {
            try {
                Method declared = c.getDeclaredMethod(m.getName(), m.getParameterTypes());
                r = declared.getAnnotation(Remote.class);
                if (r != null) {
                    return r;
                }
            } catch (NoSuchMethodException ignored) {
                // not declared here
            }
            for (Class<?> i : allInterfaces(c)) {
                try {
                    r = i.getMethod(m.getName(), m.getParameterTypes()).getAnnotation(Remote.class);
                    if (r != null) {
                        return r;
                    }
                } catch (NoSuchMethodException ignored) {
                    // not in this interface
                }
            }
        }
        return null;
    }

    private static List<Class<?>> allInterfaces(Class<?> c) {
        List<Class<?>> out = new ArrayList<>();
        for (Class<?> i : c.getInterfaces()) {
            out.add(i);
            out.addAll(allInterfaces(i));
        }
        return out;
    }
}
