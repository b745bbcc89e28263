package org.pbroker.wire;

/**
 * A reference to a Cacheable of the sender (ext code 6, feature {@code "cache"}, PROTOCOL.md
 * section 16). The first ref to a cache on a connection carries its type name and state; later
 * ones only the id ({@code typeName} null, {@code state} null). Counted like a sender ref.
 *
 * @param cacheId the owner's cache id, at least 1
 * @param typeName the registered RemoteCache type name, or null after the first ref
 * @param state the state (any wire value), or null
 */
public record CacheRef(long cacheId, String typeName, Object state) implements WireValue {
    /** Validates the fields. */
    public CacheRef {
        Wire.checkId("cache_id", cacheId);
        if (cacheId == 0) {
            throw new IllegalArgumentException("cache_id 0 is never a cache");
        }
        if (typeName != null && typeName.isEmpty()) {
            throw new IllegalArgumentException("type_name must not be empty");
        }
        if (typeName == null && state != null) {
            throw new IllegalArgumentException("a cache ref without a type_name carries no state");
        }
    }

    /** A later ref: the id only. @param cacheId the cache id */
    public CacheRef(long cacheId) {
        this(cacheId, null, null);
    }

    /** @return whether this ref carries the state (the first on the connection) */
    public boolean first() {
        return typeName != null;
    }

    @Override
    public byte code() {
        return Wire.EXT_CACHE_REF;
    }
}
