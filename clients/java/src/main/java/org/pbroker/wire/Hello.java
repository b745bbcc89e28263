package org.pbroker.wire;

import java.util.List;

/**
 * First message in each direction: the protocol version and the limits the sender enforces when
 * decoding. The peer must not send frames, nesting or containers beyond them.
 *
 * @param version the protocol version ({@link Wire#PROTOCOL_VERSION})
 * @param maxFrameSize largest frame body the sender accepts, 1..2^32-1
 * @param maxDepth deepest nesting the sender accepts, 1..2^32-1
 * @param maxContainerLength longest array or map the sender accepts, 1..2^32-1
 * @param features optional extensions the sender supports
 */
public record Hello(long version, long maxFrameSize, long maxDepth, long maxContainerLength,
        List<String> features) implements Message {
    /** Same as {@link Wire#PROTOCOL_VERSION}. */
    public static final long PROTOCOL_VERSION = Wire.PROTOCOL_VERSION;

    /** Validates the fields. */
    public Hello {
        Wire.checkId("version", version);
        Wire.checkU32("max_frame_size", maxFrameSize, 1);
        Wire.checkU32("max_depth", maxDepth, 1);
        Wire.checkU32("max_container_length", maxContainerLength, 1);
        if (features == null) {
            throw new IllegalArgumentException("features must be a list of str");
        }
        for (Object f : features) {
            if (!(f instanceof String)) {
                throw new IllegalArgumentException("feature must be a str, not " + typeName(f));
            }
        }
        features = List.copyOf(features);
    }

    /**
     * A hello of this protocol version without features.
     *
     * @param maxFrameSize largest frame body accepted
     * @param maxDepth deepest nesting accepted
     * @param maxContainerLength longest array or map accepted
     */
    public Hello(long maxFrameSize, long maxDepth, long maxContainerLength) {
        this(PROTOCOL_VERSION, maxFrameSize, maxDepth, maxContainerLength, List.of());
    }

    @Override
    public int type() {
        return Wire.HELLO;
    }

    static String typeName(Object o) {
        return o == null ? "nil" : o.getClass().getSimpleName();
    }
}
