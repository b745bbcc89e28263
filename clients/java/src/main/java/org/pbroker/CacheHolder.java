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
 * held weakly, and the refs received for it, released in one cache_release when it dies or is
 * released. Used under the session's lock, except {@link #release} and the Cleaner, which only
 * decide and queue (the session flushes with its other releases).
 *
 * <p>A release is decided at once and sent later (the next flush), so each entry keeps two
 * counts, as the imports table does for proxies: {@code releasing}, the refs received before a
 * release was decided (what the next flush sends), and {@code count}, the refs received since.
 * A ref that arrives after the decision but before the flush is one the owner sent before it
 * could see the release: the entry is still held (the table of section 16 removes it only when
 * the release of its whole count is sent), so the same copy is handed out again and lives on
 * with that count; the flush then releases only what was decided and keeps the entry. Only a
 * ref that arrives after the release was sent is the crossing of section 16.4 (refused,
 * {@code broker.NoSuchCache}).
 */
final class CacheHolder {
    private static final Logger LOG = Logger.getLogger(CacheHolder.class.getName());
    private static final Cleaner CLEANER = Cleaner.create();

    private static final class Entry {
        WeakReference<RemoteCache> ref;
        /** Refs received since the last release was decided. */
        long count;
        /** Refs a decided release covers, sent by the next flush. */
        long releasing;
        /** The application let go of the copy and no ref came since: the flush removes it. */
        boolean released;

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
            return e != null && !e.released && e.ref.get() == cache;
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
                if (e.released) { // released, not yet sent: this ref keeps the copy (see above)
                    e.released = false;
                    existing.holder = this;
                }
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
                e.released = false;
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

    /**
     * The owner pushed a change: run it on the executor, in order. A copy whose release is
     * decided but not sent still gets it (a ref arriving before the flush revives the copy,
     * which must then be current); once the release is sent, updates are dropped (16.2).
     */
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

    /**
     * Any thread ({@link RemoteCache#releaseCache}): decide now to release every ref of
     * {@code cache} received so far; the next flush sends it. False if it is not held here (an
     * old copy, or already released).
     */
    boolean release(RemoteCache cache) {
        long id = cache.cacheId;
        synchronized (held) {
            Entry e = held.get(id);
            if (e == null || e.released || e.ref.get() != cache) {
                return false;
            }
            decide(e, cache);
        }
        released.add(id);
        releaseQueued.run();
        return true;
    }

    /** Under the lock: the refs received so far go to the next flush; the copy is not live. */
    private static void decide(Entry e, RemoteCache cache) {
        e.releasing += e.count;
        e.count = 0;
        e.released = true;
        if (cache != null) {
            cache.holder = null;
        }
    }

    /** Release every copy at the next flush (an application letting go of all of them). */
    void releaseAll() {
        synchronized (held) {
            for (Map.Entry<Long, Entry> each : held.entrySet()) {
                Entry e = each.getValue();
                if (!e.released) {
                    decide(e, e.ref.get());
                    released.add(each.getKey());
                }
            }
        }
    }

    /** @return whether releases wait for {@link #flush} */
    boolean pending() {
        return !died.isEmpty() || !released.isEmpty();
    }

    /**
     * Queue the cache_release of every copy released or collected since the last flush: the
     * refs its release covers (a collected copy: all of them). An entry stays if refs came
     * after the release was decided (its copy lives on with them), else it is removed.
     */
    void flush() {
        synchronized (held) {
            java.util.Set<Long> ids = new java.util.LinkedHashSet<>();
            for (Long id; (id = released.poll()) != null; ) {
                ids.add(id);
            }
            for (Long id; (id = died.poll()) != null; ) {
                ids.add(id);
            }
            for (long id : ids) {
                Entry e = held.get(id);
                if (e == null) {
                    continue;
                }
                long n = e.releasing;
                e.releasing = 0;
                boolean collected = e.ref.get() == null;
                if (collected) {
                    n += e.count;
                    e.count = 0;
                }
                if (collected || e.released) {
                    held.remove(id);
                }
                if (n > 0) {
                    send.accept(new CacheRelease(id, n));
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
