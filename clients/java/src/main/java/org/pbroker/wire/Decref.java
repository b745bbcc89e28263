package org.pbroker.wire;

/**
 * Release {@code count} of the references to {@code objectId} that the owner sent us. Counting
 * sends makes release race-free: a reference sent while this message is in flight still counts.
 *
 * @param objectId the object (never the bootstrap object 0)
 * @param count how many received references are released, at least 1
 */
public record Decref(long objectId, long count) implements Message {
    /** Validates the fields. */
    public Decref {
        Wire.checkId("object_id", objectId);
        Wire.checkId("count", count);
        if (objectId == Wire.BOOTSTRAP_ID) {
            throw new IllegalArgumentException("the bootstrap object (id 0) is never released");
        }
        if (count == 0) {
            throw new IllegalArgumentException("count must be at least 1");
        }
    }

    @Override
    public int type() {
        return Wire.DECREF;
    }
}
