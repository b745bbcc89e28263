package org.pbroker;

import java.lang.reflect.Array;
import java.lang.reflect.GenericArrayType;
import java.lang.reflect.ParameterizedType;
import java.lang.reflect.Type;
import java.lang.reflect.WildcardType;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Converts decoded wire values to requested Java types: wire integers ({@link Long}, or
 * {@link BigInteger} above 2^63-1) to any integral type that holds them, numbers to
 * {@code double}/{@code float}, lists to {@code List}, {@code Set}, {@code Collection} or Java
 * arrays (elements converted to the type argument), maps likewise, strings to enums by name.
 * Anything else must already be an instance of the type (copies arrive as their registered
 * classes, references as {@link RemoteReference}).
 */
public final class Values {
    private Values() {}

    /**
     * Convert {@code value} to {@code type}.
     *
     * @param value a decoded wire value
     * @param type the class wanted
     * @param <T> the class wanted
     * @return the converted value
     * @throws IllegalArgumentException if the value does not fit the type
     */
    @SuppressWarnings("unchecked")
    public static <T> T convert(Object value, Class<T> type) {
        return (T) convert(value, (Type) type);
    }

    /**
     * Convert {@code value} to a generic {@code type} (e.g. {@code List<Integer>}).
     *
     * @param value a decoded wire value
     * @param type the type wanted
     * @return the converted value
     * @throws IllegalArgumentException if the value does not fit the type
     */
    public static Object convert(Object value, Type type) {
        if (type instanceof Class<?> cls) {
            return convertToClass(value, cls, null);
        }
        if (type instanceof ParameterizedType p) {
            return convertToClass(value, (Class<?>) p.getRawType(), p.getActualTypeArguments());
        }
        if (type instanceof WildcardType w) {
            return convert(value, w.getUpperBounds()[0]);
        }
        if (type instanceof GenericArrayType g) {
            return toArray(value, g.getGenericComponentType());
        }
        return value; // a type variable: nothing to check against
    }

    private static Object convertToClass(Object value, Class<?> cls, Type[] typeArgs) {
        if (value == null) {
            if (cls.isPrimitive()) {
                throw new IllegalArgumentException("nil cannot be a " + cls.getName());
            }
            return null;
        }
        Class<?> boxed = box(cls);
        if (typeArgs == null && boxed.isInstance(value) && !(value instanceof Collection<?>)
                && !(value instanceof Map<?, ?>)) {
            return value;
        }
        if (boxed == Object.class) {
            return value;
        }
        if (value instanceof Long || value instanceof BigInteger) {
            BigInteger big = value instanceof Long l ? BigInteger.valueOf(l) : (BigInteger) value;
            if (boxed == Long.class) {
                return narrow(big, Long.MIN_VALUE, Long.MAX_VALUE, cls).longValue();
            }
            if (boxed == Integer.class) {
                return narrow(big, Integer.MIN_VALUE, Integer.MAX_VALUE, cls).intValue();
            }
            if (boxed == Short.class) {
                return narrow(big, Short.MIN_VALUE, Short.MAX_VALUE, cls).shortValue();
            }
            if (boxed == Byte.class) {
                return narrow(big, Byte.MIN_VALUE, Byte.MAX_VALUE, cls).byteValue();
            }
            if (boxed == BigInteger.class || boxed == Number.class) {
                return value;
            }
            if (boxed == Double.class) {
                return big.doubleValue();
            }
            if (boxed == Float.class) {
                return big.floatValue();
            }
        }
        if (value instanceof Double d) {
            if (boxed == Float.class) {
                return d.floatValue();
            }
        }
        if (value instanceof String s && cls.isEnum()) {
            for (Object constant : cls.getEnumConstants()) {
                if (((Enum<?>) constant).name().equals(s)) {
                    return constant;
                }
            }
            throw new IllegalArgumentException("'" + s + "' is not a constant of " + cls.getName());
        }
        if (value instanceof String s && boxed == Character.class && s.length() == 1) {
            return s.charAt(0);
        }
        if (value instanceof Collection<?> items) {
            Type element = typeArgs != null && typeArgs.length == 1 ? typeArgs[0] : Object.class;
            if (cls.isArray()) {
                return toArray(value, cls.getComponentType());
            }
            if (cls.isAssignableFrom(ArrayList.class)) {
                List<Object> out = new ArrayList<>(items.size());
                for (Object item : items) {
                    out.add(convert(item, element));
                }
                return out;
            }
            if (cls.isAssignableFrom(LinkedHashSet.class)) {
                Set<Object> out = new LinkedHashSet<>();
                for (Object item : items) {
                    out.add(convert(item, element));
                }
                return out;
            }
        }
        if (value instanceof Map<?, ?> map && cls.isAssignableFrom(LinkedHashMap.class)) {
            Type keyType = typeArgs != null && typeArgs.length == 2 ? typeArgs[0] : Object.class;
            Type valueType = typeArgs != null && typeArgs.length == 2 ? typeArgs[1] : Object.class;
            Map<Object, Object> out = new LinkedHashMap<>();
            for (Map.Entry<?, ?> e : map.entrySet()) {
                out.put(convert(e.getKey(), keyType), convert(e.getValue(), valueType));
            }
            return out;
        }
        if (boxed.isInstance(value)) {
            return value;
        }
        throw new IllegalArgumentException("a " + describe(value) + " cannot be a "
                + cls.getTypeName());
    }

    private static Object toArray(Object value, Type componentType) {
        if (!(value instanceof Collection<?> items)) {
            throw new IllegalArgumentException("a " + describe(value) + " cannot be an array");
        }
        Class<?> component = componentType instanceof Class<?> c ? c
                : componentType instanceof ParameterizedType p ? (Class<?>) p.getRawType()
                : Object.class;
        Object array = Array.newInstance(component, items.size());
        int i = 0;
        for (Object item : items) {
            Array.set(array, i++, convert(item, componentType));
        }
        return array;
    }

    private static BigInteger narrow(BigInteger v, long min, long max, Class<?> cls) {
        if (v.compareTo(BigInteger.valueOf(min)) < 0 || v.compareTo(BigInteger.valueOf(max)) > 0) {
            throw new IllegalArgumentException(v + " does not fit in a " + cls.getName());
        }
        return v;
    }

    static String describe(Object value) {
        if (value == null) {
            return "nil";
        }
        if (value instanceof byte[]) {
            return "bytes value";
        }
        return value.getClass().getSimpleName() + " (" + abbreviate(String.valueOf(value)) + ")";
    }

    private static String abbreviate(String s) {
        return s.length() > 60 ? s.substring(0, 60) + "..." : s;
    }

    static Class<?> box(Class<?> c) {
        if (!c.isPrimitive()) {
            return c;
        }
        if (c == int.class) {
            return Integer.class;
        }
        if (c == long.class) {
            return Long.class;
        }
        if (c == double.class) {
            return Double.class;
        }
        if (c == boolean.class) {
            return Boolean.class;
        }
        if (c == float.class) {
            return Float.class;
        }
        if (c == short.class) {
            return Short.class;
        }
        if (c == byte.class) {
            return Byte.class;
        }
        if (c == char.class) {
            return Character.class;
        }
        return Void.class;
    }
}
