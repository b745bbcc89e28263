package org.pbroker.wire;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Several releases in one message (feature "decrefs", docs/PROTOCOL.md section 3.8): the same as
 * one {@link Decref} per entry, in order. On the wire {@code [12, [id, count, id, count, ...]]}.
 *
 * @param releases object id to count, in wire order; at least one entry, ids and counts in
 *     1..2^63-1 (the ids are distinct by construction)
 */
public record Decrefs(Map<Long, Long> releases) implements Message {
    /** Validates the fields and keeps an unmodifiable copy in order. */
    public Decrefs {
        if (releases == null || releases.isEmpty()) {
            throw new IllegalArgumentException("releases must not be empty");
        }
        Map<Long, Long> copy = new LinkedHashMap<>();
        for (Map.Entry<Long, Long> e : releases.entrySet()) {
            long id = Wire.checkId("object_id", e.getKey());
            long count = Wire.checkId("count", e.getValue());
            if (id == Wire.BOOTSTRAP_ID) {
                throw new IllegalArgumentException("the bootstrap object (id 0) is never released");
            }
            if (count == 0) {
                throw new IllegalArgumentException("count must be at least 1");
            }
            copy.put(id, count);
        }
        releases = Collections.unmodifiableMap(copy);
    }

    @Override
    public int type() {
        return Wire.DECREFS;
    }
}
