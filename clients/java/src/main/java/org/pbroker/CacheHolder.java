package org.pbroker;

import java.lang.ref.Cleaner;
import java.lang.ref.WeakReference;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.Executor;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.function.Consumer;
import java.util.logging.Level;
import java.util.logging.Logger;
import org.pbroker.wire.CacheRef;
import org.pbroker.wire.CacheRelease;
import org.pbroker.wire.CacheUpdate;
import org.pbroker.wire.Message;

/**
 * One connection's held caches (docs/PROTOCOL.md section 16): the RemoteCache of each cache id,
 * held weakly, and the refs received for it, all released in one cache_release when it dies or
 * is released. Used under the session's lock, except {@link #releaseNow} and the Cleaner, which
 * only queue (the session flushes with its other releases).
 */
final class CacheHolder {
    private static final Logger LOG = Logger.getLogger(CacheHolder.class.getName());
    private static final Cleaner CLEANER = Cleaner.create();

    private static final class Entry {
        WeakReference<RemoteCache> ref;
        long count;

        Entry(RemoteCache cache) {
            this.ref = new WeakReference<>(cache);
            this.count = 1;
        }
    }

    private final Map<Long, Entry> held = new HashMap<>();
    private final ConcurrentLinkedQueue<Long> died = new ConcurrentLinkedQueue<>();
    private final ConcurrentLinkedQueue<Long> released = new ConcurrentLinkedQueue<>();
    private final Consumer<Message> send;
    private final Runnable releaseQueued;
    private final long maxLive;
    private final String owner;
    private Executor executor;
    private ExecutorService ownedExecutor;

    /**
     * @param send queues a message to the owner (under the session's lock)
     * @param releaseQueued asks for a flush, from any thread
     * @param executor runs updates in order, or null for a single thread of our own (made on
     *     the first update)
     */
    CacheHolder(Consumer<Message> send, Runnable releaseQueued, Executor executor, long maxLive,
            String owner) {
        this.send = send;
        this.releaseQueued = releaseQueued;
        this.executor = executor;
        this.maxLive = maxLive;
        this.owner = owner;
    }

    /** @return the caches held */
    int size() {
        return held.size();
    }

    boolean holds(long cacheId, RemoteCache cache) {
        synchronized (held) {
            Entry e = held.get(cacheId);
            return e != null && e.ref.get() == cache;
        }
    }

    /** Decoder hook: the RemoteCache a cache ref names, or null with a problem added. */
    Object received(CacheRef ref, List<RuntimeException> problems) {
        long id = ref.cacheId();
        synchronized (held) {
            Entry e = held.get(id);
            RemoteCache existing = e != null ? e.ref.get() : null;
            if (existing != null) {
                e.count++;
                return existing; // the same object for the same cache (a repeated state ignored)
            }
            if (!ref.first()) {
                return refuse(id, problems, new InvalidReferenceException("broker.NoSuchCache",
                        "cache " + id + " is not held here: it was released while this reference"
                        + " was on its way, or its state was never sent; ask for it again", null));
            }
            Class<? extends RemoteCache> cls = RemoteCache.registered(ref.typeName());
            if (cls == null) {
                return refuse(id, problems, new InvalidReferenceException(
                        "broker.UnregisteredCache", "cache type '" + ref.typeName()
                        + "' is not registered here; register a RemoteCache subclass with"
                        + " RemoteCache.register(\"" + ref.typeName() + "\", cls)", null));
            }
            if (e == null && held.size() >= maxLive) {
                return refuse(id, problems, new OverloadedException("broker.TooManyReferences",
                        "the limit of " + maxLive + " live caches is reached", null));
            }
            RemoteCache cache;
            try {
                cache = cls.getConstructor().newInstance();
                cache.setCopyableState(ref.state());
            } catch (ReflectiveOperationException | RuntimeException ex) {
                Throwable cause = ex.getCause() != null ? ex.getCause() : ex;
                return refuse(id, problems, new InvalidReferenceException("broker.BadCache",
                        "cannot build '" + ref.typeName() + "': " + cause, null));
            }
            cache.cacheId = id;
            cache.holder = this;
            if (e == null) {
                held.put(id, new Entry(cache));
            } else { // the old copy died, its release not sent yet: this one takes its count
                e.ref = new WeakReference<>(cache);
                e.count++;
            }
            CLEANER.register(cache, new Died(this, id));
            return cache;
        }
    }

    private Object refuse(long id, List<RuntimeException> problems, RuntimeException why) {
        send.accept(new CacheRelease(id, 1)); // at once: the owner's count stays right
        problems.add(why);
        return null;
    }

    /** The owner pushed a change: run it on the executor, in order. */
    void update(CacheUpdate update) {
        RemoteCache cache;
        synchronized (held) {
            Entry e = held.get(update.cacheId());
            cache = e != null ? e.ref.get() : null;
        }
        if (cache == null) {
            LOG.fine(owner + ": update '" + update.method() + "' of cache " + update.cacheId()
                    + " not held here (released): dropped");
            return;
        }
        RemoteCache target = cache;
        executor().execute(() -> {
            try {
                target.observe(update.method(), update.args(), update.kwargs());
            } catch (Exception ex) {
                LOG.log(Level.WARNING, owner + ": " + target.getClass().getSimpleName()
                        + ".observe_" + update.method() + " failed (the cache stays): " + ex, ex);
            }
        });
    }

    private synchronized Executor executor() {
        if (executor == null) {
            ownedExecutor = Executors.newSingleThreadExecutor(r -> {
                Thread t = new Thread(r, "pbroker-cache-updates");
                t.setDaemon(true);
                return t;
            });
            executor = ownedExecutor;
        }
        return executor;
    }

    /** Any thread: release {@code cacheId} at the next flush. */
    void releaseNow(long cacheId) {
        released.add(cacheId);
        releaseQueued.run();
    }

    /** Release every copy at the next flush (an application letting go of all of them). */
    void releaseAll() {
        synchronized (held) {
            released.addAll(held.keySet());
        }
    }

    /** @return whether releases wait for {@link #flush} */
    boolean pending() {
        return !died.isEmpty() || !released.isEmpty();
    }

    /** Queue the cache_release of every copy released or collected since the last flush. */
    void flush() {
        synchronized (held) {
            for (Long id; (id = released.poll()) != null; ) {
                Entry e = held.remove(id);
                if (e != null) {
                    send.accept(new CacheRelease(id, e.count));
                }
            }
            for (Long id; (id = died.poll()) != null; ) {
                Entry e = held.get(id);
                if (e != null && e.ref.get() == null) {
                    held.remove(id);
                    send.accept(new CacheRelease(id, e.count));
                }
            }
        }
    }

    /** The connection ended: nothing more to release; our update thread ends when idle. */
    void clear() {
        synchronized (held) {
            held.clear();
            died.clear();
            released.clear();
        }
        synchronized (this) {
            if (ownedExecutor != null) {
                ownedExecutor.shutdown(); // updates already queued still run, in order
            }
        }
    }

    private record Died(CacheHolder holder, long cacheId) implements Runnable {
        @Override
        public void run() {
            holder.died.add(cacheId);
            holder.releaseQueued.run();
        }
    }
}
