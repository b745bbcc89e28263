package org.pbroker.wire;

/**
 * "I will feed stream {@code streamId} to you" (ext 7, feature {@code "streams"}, PROTOCOL.md
 * section 17.1): the producer's stream id and the most items and bytes it wants in flight.
 *
 * @param streamId the producer's stream id, at least 1
 * @param windowItems the most items in flight the producer offers, at least 1
 * @param windowBytes the most bytes of stream_items bodies in flight it offers, at least 1
 */
public record StreamRef(long streamId, long windowItems, long windowBytes) implements WireValue {
    /** Validates the fields. */
    public StreamRef {
        StreamItems.checkStreamId(streamId);
        Wire.checkId("window_items", windowItems);
        Wire.checkId("window_bytes", windowBytes);
        if (windowItems == 0 || windowBytes == 0) {
            throw new IllegalArgumentException("a stream's window is at least 1 item and 1 byte");
        }
    }

    @Override
    public byte code() {
        return Wire.EXT_STREAM;
    }
}
