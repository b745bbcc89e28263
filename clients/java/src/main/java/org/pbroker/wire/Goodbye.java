package org.pbroker.wire;

/**
 * Sent just before closing, so the peer can tell why.
 *
 * @param kind "normal" or a failure kind ({@link Wire#GOODBYE_KINDS})
 * @param message human-readable detail
 */
public record Goodbye(String kind, String message) implements Message {
    /** Validates the fields. */
    public Goodbye {
        Wire.checkStr("kind", kind);
        Wire.checkStr("message", message);
        if (!Wire.GOODBYE_KINDS.contains(kind)) {
            throw new IllegalArgumentException("goodbye kind must be one of "
                    + new java.util.TreeSet<>(Wire.GOODBYE_KINDS) + ", got '" + kind + "'");
        }
    }

    @Override
    public int type() {
        return Wire.GOODBYE;
    }
}
