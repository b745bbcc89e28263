package org.pbroker.wire;

/**
 * A failure (ext code 4, and the fields of the error message).
 *
 * @param kind one of {@link Wire#FAILURE_KINDS}
 * @param typeName the remote exception type's name
 * @param message the exception's message
 * @param traceback the remote traceback (only from servers in debug mode), or null
 */
public record FailureInfo(String kind, String typeName, String message, String traceback)
        implements WireValue {
    /** Validates the fields. */
    public FailureInfo {
        Wire.checkStr("kind", kind);
        if (!Wire.FAILURE_KINDS.contains(kind)) {
            throw new IllegalArgumentException("failure kind must be one of "
                    + new java.util.TreeSet<>(Wire.FAILURE_KINDS) + ", got '" + kind + "'");
        }
        Wire.checkStr("type_name", typeName);
        Wire.checkStr("message", message);
    }

    @Override
    public byte code() {
        return Wire.EXT_FAILURE;
    }
}
