package org.pbroker.wire;

import java.util.List;
import java.util.Map;

/**
 * The owner of cache {@code cacheId} asks the holder to run {@code observe_<method>} on its copy
 * (message 17, feature {@code "cache"}, PROTOCOL.md section 16.2); never answered.
 *
 * @param cacheId the owner's cache id, at least 1
 * @param method the change, not empty
 * @param args positional arguments
 * @param kwargs keyword arguments
 */
public record CacheUpdate(long cacheId, String method, List<Object> args, Map<String, Object> kwargs)
        implements Message {
    /** Validates the fields. */
    public CacheUpdate {
        Wire.checkId("cache_id", cacheId);
        if (cacheId == 0) {
            throw new IllegalArgumentException("cache_id 0 is never a cache");
        }
        Wire.checkStr("method", method);
        if (method.isEmpty()) {
            throw new IllegalArgumentException("method must not be empty");
        }
        if (args == null || kwargs == null) {
            throw new IllegalArgumentException("args and kwargs must not be null");
        }
    }

    @Override
    public int type() {
        return Wire.CACHE_UPDATE;
    }
}
