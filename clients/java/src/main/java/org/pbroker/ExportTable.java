package org.pbroker;

import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.Map;

/**
 * Our objects the server holds references to: id to (object, times sent). Ids start at 1 (0 is
 * our bootstrap object, if any) and are never reused; an entry goes when the server released every
 * reference we sent. Thread-safe.
 */
final class ExportTable {
    private final Object bootstrap;
    private final Map<Long, Object> objects = new HashMap<>();
    private final Map<Long, Long> counts = new HashMap<>();
    private final Map<Object, Long> ids = new IdentityHashMap<>();
    private long nextId = 1;

    ExportTable(Object bootstrap) {
        this.bootstrap = bootstrap;
    }

    synchronized Object get(long objectId) {
        return objectId == 0 ? bootstrap : objects.get(objectId);
    }

    /** Record one more send of {@code obj}; return its id (allocated on first send). */
    synchronized long addSend(Object obj) {
        Long id = ids.get(obj);
        if (id == null) {
            id = nextId++;
            ids.put(obj, id);
            objects.put(id, obj);
            counts.put(id, 1L);
        } else {
            counts.merge(id, 1L, Long::sum);
        }
        return id;
    }

    /** Take back a send that never left. */
    synchronized void undoSend(long objectId) {
        release(objectId, 1);
    }

    /** The server released {@code count} sends; false if it held no such id or that many. */
    synchronized boolean release(long objectId, long count) {
        Long held = counts.get(objectId);
        if (held == null || count < 1 || count > held) {
            return false;
        }
        if (held == count) {
            counts.remove(objectId);
            ids.remove(objects.remove(objectId));
        } else {
            counts.put(objectId, held - count);
        }
        return true;
    }

    synchronized boolean isExported(Object obj) {
        return ids.containsKey(obj);
    }

    /** @return live exports, not counting the bootstrap object */
    synchronized int size() {
        return counts.size();
    }

    synchronized void clear() {
        objects.clear();
        counts.clear();
        ids.clear();
    }
}
