package org.pbroker;

import java.lang.ref.Cleaner;
import java.lang.ref.WeakReference;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The imports table (docs/PROTOCOL.md section 6): proxies for the peer's objects, held weakly,
 * each with the number of times its id arrived.
 *
 * <p>When a proxy is closed (or, under a {@link PBClient}, garbage collected: the host's
 * {@link Cleaner}), its entry is marked dead and handed to {@code onDead} by the closing or
 * cleaning thread, which does no I/O; the session sends one decref with the entry's count when it
 * next flushes releases. An id that arrives again after its proxy died gets a new entry with its
 * own count, so counts are never lost or double-released. Thread-safe.
 */
final class ImportTable {
    /** One proxy's bookkeeping. Never references the proxy strongly. */
    final class Entry {
        final long objectId;
        long count = 1; // guarded by ImportTable.this
        boolean dead; // guarded by ImportTable.this
        WeakReference<RemoteReference> proxy;
        Cleaner.Cleanable cleanable;

        Entry(long objectId) {
            this.objectId = objectId;
        }

        /** Explicit release (RemoteReference.close); the cleaning action runs at most once. */
        void release() {
            cleanable.clean();
        }

        boolean isDead() {
            synchronized (ImportTable.this) {
                return dead;
            }
        }

        /** The cleaning action: mark dead, queue for decref. No I/O here. */
        private void died() {
            synchronized (ImportTable.this) {
                dead = true;
            }
            onDead.accept(this);
        }
    }

    private final Map<Long, Entry> entries = new HashMap<>();
    private final ProxyHost host;
    private final java.util.function.Consumer<Entry> onDead;

    ImportTable(ProxyHost host, java.util.function.Consumer<Entry> onDead) {
        this.host = host;
        this.onDead = onDead;
    }

    /** One more reference to {@code objectId} arrived; return its (possibly new) proxy. */
    synchronized RemoteReference received(long objectId) {
        Entry entry = entries.get(objectId);
        if (entry != null && !entry.dead) {
            RemoteReference proxy = entry.proxy.get();
            if (proxy != null) {
                entry.count++;
                return proxy;
            }
        }
        Entry fresh = new Entry(objectId);
        RemoteReference proxy = new RemoteReference(host, objectId, fresh);
        fresh.proxy = new WeakReference<>(proxy);
        fresh.cleanable = host.track(proxy, fresh::died);
        entries.put(objectId, fresh);
        return proxy;
    }

    /** Release every live entry, whether or not its proxy is still reachable. */
    void releaseAll() {
        List<Entry> live;
        synchronized (this) {
            live = entries.values().stream().filter(e -> !e.dead).toList();
        }
        live.forEach(Entry::release);
    }

    /** @return the live proxy for {@code objectId}, or null */
    synchronized RemoteReference proxy(long objectId) {
        Entry entry = entries.get(objectId);
        return entry == null || entry.dead ? null : entry.proxy.get();
    }

    /** Counts to decref for the given dead entries, consuming them. */
    synchronized Map<Long, Long> collectReleases(List<Entry> died) {
        Map<Long, Long> releases = new LinkedHashMap<>();
        for (Entry e : died) {
            if (entries.get(e.objectId) == e) {
                entries.remove(e.objectId);
            }
            releases.merge(e.objectId, e.count, Long::sum);
            e.count = 0;
        }
        releases.values().removeIf(c -> c == 0);
        return releases;
    }

    /** @return live proxies (not yet released) */
    synchronized int size() {
        int n = 0;
        for (Entry e : entries.values()) {
            if (!e.dead) {
                n++;
            }
        }
        return n;
    }

    synchronized void clear() {
        entries.clear();
    }
}
