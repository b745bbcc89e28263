package org.pbroker.wire;

/**
 * The caller no longer wants the answer to {@code requestId}; the callee still replies once.
 *
 * @param requestId the question id
 */
public record Cancel(long requestId) implements Message {
    /** Validates the fields. */
    public Cancel {
        Wire.checkId("request_id", requestId);
    }

    @Override
    public int type() {
        return Wire.CANCEL;
    }
}
