package org.pbroker;

import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * A live copy of a server's Cacheable (docs/PROTOCOL.md section 16, feature {@code "cache"}).
 *
 * <p>Subclass it with a public no-argument constructor, register the subclass under the
 * Cacheable's type name ({@link #register}), and write one public method {@code observe_<name>}
 * for each change the server pushes ({@code observer.call_remote("set_score", ...)} on the
 * server runs {@code observe_set_score(...)} here; arguments are converted as for remote
 * methods). The first copy of a cache on a connection gets the state through
 * {@link #setCopyableState}; the same Cacheable sent again on that connection is this same
 * object. Updates run in the order the server sent them, by default on the client's callback
 * executor in wire order with its calls to this client's objects and its answers (so an update
 * the server sent before a call has run when the call starts); with
 * {@link PBClient.Options#cacheExecutor} set, on that executor, and their order relative to the
 * calls and answers is not kept.
 *
 * <p>When this object is no longer referenced (the garbage collector), or on
 * {@link #releaseCache()}, the client releases it and the server stops observing it.
 */
public abstract class RemoteCache {
    private static final Map<String, Class<? extends RemoteCache>> REGISTRY = new ConcurrentHashMap<>();
    private static final Map<Class<?>, Map<String, List<Method>>> OBSERVERS = new ConcurrentHashMap<>();

    volatile CacheHolder holder;
    volatile long cacheId;

    /** Subclasses need a public no-argument constructor. */
    protected RemoteCache() {}

    /**
     * Build {@code cls} for Cacheables whose {@code cache_type} is {@code typeName}.
     *
     * @param typeName the Cacheable's type name, e.g. {@code "app.Scoreboard"}
     * @param cls the subclass (public, with a public no-argument constructor)
     */
    public static void register(String typeName, Class<? extends RemoteCache> cls) {
        if (typeName == null || typeName.isEmpty()) {
            throw new IllegalArgumentException("a cache type name is a non-empty string");
        }
        try {
            cls.getConstructor();
        } catch (NoSuchMethodException e) {
            throw new IllegalArgumentException(cls.getName() + " needs a public no-argument"
                    + " constructor to be registered as a RemoteCache", e);
        }
        REGISTRY.put(typeName, cls);
    }

    /** @return the class registered for {@code typeName}, or null */
    static Class<? extends RemoteCache> registered(String typeName) {
        return REGISTRY.get(typeName);
    }

    /**
     * Take the owner's state, once per connection (override it; the default keeps nothing).
     *
     * @param state the state the server sent (maps, lists, longs, strings ...)
     */
    protected void setCopyableState(Object state) {}

    /**
     * Let go of this copy: the release of every reference received so far is decided now and
     * sent with the client's next batch of releases; the server then stops observing it and
     * updates stop. If the server sends this cache again before that batch goes out, the call
     * gets this same object, live again (and still current: updates apply until the release is
     * sent); if it sends it again after, the reference crossed the release and the call fails
     * with {@code broker.NoSuchCache} (docs/PROTOCOL.md section 16.4): ask again for a fresh copy.
     */
    public void releaseCache() {
        CacheHolder h = holder;
        if (h != null) {
            h.release(this);
        }
    }

    /** @return whether this copy still receives updates (not released, connection open) */
    public boolean isLive() {
        CacheHolder h = holder;
        return h != null && h.holds(cacheId, this);
    }

    /** Run {@code observe_<method>} with the update's arguments (the cache executor's task). */
    final void observe(String method, List<Object> args, Map<String, Object> kwargs)
            throws Exception {
        List<Method> candidates = observers(getClass()).get(method);
        if (candidates == null) {
            throw new UnimplementedException("broker.NoSuchMethod", getClass().getSimpleName()
                    + " has no method observe_" + method, null);
        }
        if (kwargs != null && !kwargs.isEmpty()) {
            throw new IllegalArgumentException("observe_" + method + " is a Java method and takes"
                    + " no keyword arguments, got " + kwargs.keySet());
        }
        RemoteDispatch.invokeFirstMatching(this, candidates, "observe_" + method, args);
    }

    private static Map<String, List<Method>> observers(Class<?> cls) {
        return OBSERVERS.computeIfAbsent(cls, c -> {
            Map<String, List<Method>> found = new ConcurrentHashMap<>();
            for (Method m : c.getMethods()) {
                if (m.getName().startsWith("observe_") && !Modifier.isStatic(m.getModifiers())) {
                    m.setAccessible(true);
                    found.computeIfAbsent(m.getName().substring("observe_".length()),
                            k -> new ArrayList<>()).add(m);
                }
            }
            return found;
        });
    }
}
