package org.pbroker.wire;

/**
 * The end of stream {@code streamId} (message 14, feature {@code "streams"}, PROTOCOL.md section
 * 17.3). From its producer: done ({@code failure} null) or failed; from its consumer: a cancel,
 * a failure of kind "cancelled" (which a producer never sends: that tells the two apart).
 *
 * @param streamId the producer's stream id, at least 1
 * @param failure why it ended, or null when it is done
 */
public record StreamEnd(long streamId, FailureInfo failure) implements Message {
    /** The failure a consumer's cancel carries (the Python broker's, word for word). */
    public static final FailureInfo CANCEL = new FailureInfo(Wire.CANCELLED,
            "broker.StreamCancelled", "the consumer cancelled the stream", null);

    /** Validates the fields. */
    public StreamEnd {
        StreamItems.checkStreamId(streamId);
    }

    /** @return whether the consumer sent it: it wants no more items */
    public boolean isCancel() {
        return failure != null && Wire.CANCELLED.equals(failure.kind());
    }

    @Override
    public int type() {
        return Wire.STREAM_END;
    }
}
