package org.pbroker.wire;

/**
 * The holder releases {@code count} of the cache refs to {@code cacheId} it received (message
 * 18, feature {@code "cache"}, PROTOCOL.md section 16.3), as a decref does for objects.
 *
 * @param cacheId the owner's cache id, at least 1
 * @param count how many received refs are released, at least 1
 */
public record CacheRelease(long cacheId, long count) implements Message {
    /** Validates the fields. */
    public CacheRelease {
        Wire.checkId("cache_id", cacheId);
        Wire.checkId("count", count);
        if (cacheId == 0) {
            throw new IllegalArgumentException("cache_id 0 is never a cache");
        }
        if (count == 0) {
            throw new IllegalArgumentException("count must be at least 1");
        }
    }

    @Override
    public int type() {
        return Wire.CACHE_RELEASE;
    }
}
