package org.pbroker;

import java.lang.reflect.Constructor;
import java.lang.reflect.Field;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Modifier;
import java.lang.reflect.RecordComponent;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Which Java classes travel <em>by copy</em>, and under which type names. Only registered names
 * are ever built from the wire; anything else is refused with {@link UnregisteredCopyException}.
 *
 * <p>Supported classes and their state (the same shapes as the Python side's dataclasses and
 * exceptions):
 * <ul>
 *   <li>records: a map of component name to value, built through the canonical constructor
 *       (every component must be present, no others);</li>
 *   <li>exceptions ({@link Throwable}): {@code {"args": [message], "attrs": {}}}, built with the
 *       (String) constructor;</li>
 *   <li>other classes with a no-argument constructor: a map of their non-static, non-transient
 *       fields.</li>
 * </ul>
 *
 * <p>Thread-safe.
 */
public final class CopyRegistry {
    private final Map<String, Class<?>> byName = new ConcurrentHashMap<>();
    private final Map<Class<?>, String> byClass = new ConcurrentHashMap<>();

    /**
     * Let {@code cls} travel by copy under {@code typeName}, both ways.
     *
     * @param typeName the wire type name (e.g. the Python side's {@code "example.Point"})
     * @param cls a record, an exception class, or a class with a no-argument constructor
     * @throws IllegalArgumentException if the class cannot be built from a copy
     */
    public void register(String typeName, Class<?> cls) {
        Objects.requireNonNull(typeName, "typeName");
        Objects.requireNonNull(cls, "cls");
        if (typeName.isEmpty()) {
            throw new IllegalArgumentException("type name must not be empty");
        }
        if (!cls.isRecord() && !Throwable.class.isAssignableFrom(cls)) {
            try {
                cls.getDeclaredConstructor();
            } catch (NoSuchMethodException e) {
                throw new IllegalArgumentException(cls.getName() + " cannot be built from a copy:"
                        + " make it a record, an exception, or give it a no-argument constructor");
            }
        }
        byName.put(typeName, cls);
        byClass.put(cls, typeName);
    }

    /**
     * @param typeName a wire type name
     * @return whether a class is registered for it
     */
    public boolean isRegistered(String typeName) {
        return byName.containsKey(typeName);
    }

    /**
     * @param obj any object
     * @return the type name to send it under, or null if its class is not registered
     */
    public String nameFor(Object obj) {
        return obj == null ? null : byClass.get(obj.getClass());
    }

    /**
     * The state to send for a registered object.
     *
     * @param obj an instance of a registered class
     * @return its state (a map)
     */
    public Object stateOf(Object obj) {
        Class<?> cls = obj.getClass();
        Map<String, Object> state = new LinkedHashMap<>();
        try {
            if (cls.isRecord()) {
                for (RecordComponent c : cls.getRecordComponents()) {
                    var accessor = c.getAccessor();
                    accessor.setAccessible(true);
                    state.put(c.getName(), accessor.invoke(obj));
                }
            } else if (obj instanceof Throwable t) {
                List<Object> args = new ArrayList<>();
                if (t.getMessage() != null) {
                    args.add(t.getMessage());
                }
                state.put("args", args);
                state.put("attrs", new LinkedHashMap<>());
            } else {
                for (Field f : fields(cls)) {
                    state.put(f.getName(), f.get(obj));
                }
            }
        } catch (ReflectiveOperationException e) {
            throw new IllegalArgumentException("cannot read the state of " + cls.getName(), e);
        }
        return state;
    }

    /**
     * Build the local object for a received copy.
     *
     * @param typeName the type name that arrived
     * @param state the state that arrived
     * @return a new instance of the registered class
     * @throws UnregisteredCopyException if no class is registered for the name
     * @throws IllegalArgumentException if the state does not fit the class
     */
    public Object build(String typeName, Object state) {
        Class<?> cls = byName.get(typeName);
        if (cls == null) {
            throw new UnregisteredCopyException(typeName);
        }
        try {
            if (cls.isRecord()) {
                return buildRecord(cls, asMap(state, typeName));
            }
            if (Throwable.class.isAssignableFrom(cls)) {
                return buildThrowable(cls, state);
            }
            return buildObject(cls, asMap(state, typeName));
        } catch (InvocationTargetException e) {
            throw new IllegalArgumentException("cannot build " + typeName + ": "
                    + e.getCause(), e.getCause());
        } catch (ReflectiveOperationException e) {
            throw new IllegalArgumentException("cannot build " + typeName + ": " + e, e);
        }
    }

    @SuppressWarnings("unchecked")
    private static Map<Object, Object> asMap(Object state, String typeName) {
        if (!(state instanceof Map<?, ?> m)) {
            throw new IllegalArgumentException("the state of a " + typeName
                    + " must be a map of field names, got " + Values.describe(state));
        }
        return (Map<Object, Object>) m;
    }

    private static Object buildRecord(Class<?> cls, Map<Object, Object> state)
            throws ReflectiveOperationException {
        RecordComponent[] components = cls.getRecordComponents();
        Class<?>[] types = new Class<?>[components.length];
        Object[] values = new Object[components.length];
        for (int i = 0; i < components.length; i++) {
            RecordComponent c = components[i];
            types[i] = c.getType();
            if (!state.containsKey(c.getName())) {
                throw new IllegalArgumentException(
                        cls.getSimpleName() + " state has no field '" + c.getName() + "'");
            }
            values[i] = Values.convert(state.get(c.getName()), c.getGenericType());
        }
        if (state.size() != components.length) {
            List<Object> extra = new ArrayList<>(state.keySet());
            for (RecordComponent c : components) {
                extra.remove(c.getName());
            }
            throw new IllegalArgumentException(
                    cls.getSimpleName() + " has no fields " + extra);
        }
        Constructor<?> ctor = cls.getDeclaredConstructor(types);
        ctor.setAccessible(true);
        return ctor.newInstance(values);
    }

    private static Object buildThrowable(Class<?> cls, Object state)
            throws ReflectiveOperationException {
        String message = null;
        if (state instanceof Map<?, ?> m && m.get("args") instanceof List<?> args
                && !args.isEmpty()) {
            message = String.valueOf(args.get(0));
        }
        try {
            Constructor<?> ctor = cls.getDeclaredConstructor(String.class);
            ctor.setAccessible(true);
            return ctor.newInstance(message);
        } catch (NoSuchMethodException e) {
            Constructor<?> ctor = cls.getDeclaredConstructor();
            ctor.setAccessible(true);
            return ctor.newInstance();
        }
    }

    private static Object buildObject(Class<?> cls, Map<Object, Object> state)
            throws ReflectiveOperationException {
        Constructor<?> ctor = cls.getDeclaredConstructor();
        ctor.setAccessible(true);
        Object obj = ctor.newInstance();
        Map<String, Field> byName = new LinkedHashMap<>();
        for (Field f : fields(cls)) {
            byName.put(f.getName(), f);
        }
        for (Map.Entry<Object, Object> e : state.entrySet()) {
            Field f = byName.get(String.valueOf(e.getKey()));
            if (f == null) {
                throw new IllegalArgumentException(
                        cls.getSimpleName() + " has no field '" + e.getKey() + "'");
            }
            f.set(obj, Values.convert(e.getValue(), f.getGenericType()));
        }
        return obj;
    }

    private static List<Field> fields(Class<?> cls) {
        List<Field> out = new ArrayList<>();
        for (Class<?> c = cls; c != null && c != Object.class; c = c.getSuperclass()) {
            for (Field f : c.getDeclaredFields()) {
                int mod = f.getModifiers();
                if (Modifier.isStatic(mod) || Modifier.isTransient(mod) || f.isSynthetic()) {
                    continue;
                }
                f.setAccessible(true);
                out.add(f);
            }
        }
        return out;
    }
}
