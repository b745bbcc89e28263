package org.pbroker.wire;

/**
 * The consumer of stream {@code streamId} lets its producer send {@code items} more items and
 * {@code bytes} more bytes of stream_items bodies (message 15, feature {@code "streams"},
 * PROTOCOL.md section 17.2), added to what it had.
 *
 * @param streamId the producer's stream id, at least 1
 * @param items more items, at least 0
 * @param bytes more bytes, at least 0 (not both 0)
 */
public record StreamCredit(long streamId, long items, long bytes) implements Message {
    /** Validates the fields. */
    public StreamCredit {
        StreamItems.checkStreamId(streamId);
        Wire.checkId("items", items);
        Wire.checkId("bytes", bytes);
        if (items == 0 && bytes == 0) {
            throw new IllegalArgumentException("a credit of 0 items and 0 bytes says nothing");
        }
    }

    @Override
    public int type() {
        return Wire.STREAM_CREDIT;
    }
}
