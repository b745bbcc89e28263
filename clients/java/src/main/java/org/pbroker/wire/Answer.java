package org.pbroker.wire;

/**
 * The successful result of the call with {@code requestId}.
 *
 * @param requestId the question id
 * @param value the result (any wire value)
 */
public record Answer(long requestId, Object value) implements Message {
    /** Validates the fields. */
    public Answer {
        Wire.checkId("request_id", requestId);
    }

    @Override
    public int type() {
        return Wire.ANSWER;
    }
}
