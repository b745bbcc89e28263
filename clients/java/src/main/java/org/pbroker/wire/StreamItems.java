package org.pbroker.wire;

import java.util.List;

/**
 * The producer of stream {@code streamId} sends its next items, in order (message 13, feature
 * {@code "streams"}, PROTOCOL.md section 17.2). The consumer counts the frame's body length
 * against its byte window; that length is the frame's, not a field.
 *
 * @param streamId the producer's stream id, at least 1
 * @param items at least one wire value
 */
public record StreamItems(long streamId, List<Object> items) implements Message {
    /** Validates the fields. */
    public StreamItems {
        checkStreamId(streamId);
        if (items == null || items.isEmpty()) {
            throw new IllegalArgumentException("stream_items carries at least one item");
        }
    }

    static void checkStreamId(long streamId) {
        Wire.checkId("stream_id", streamId);
        if (streamId == 0) {
            throw new IllegalArgumentException("stream_id 0 is never a stream");
        }
    }

    @Override
    public int type() {
        return Wire.STREAM_ITEMS;
    }
}
