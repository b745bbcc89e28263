package org.pbroker.wire;

import java.util.Objects;

/**
 * The spec's "error" message: the failed result of the call with {@code requestId} (also the reply
 * to a cancel). Named ErrorMessage so it does not shadow {@link java.lang.Error}.
 *
 * @param requestId the question id
 * @param failure what went wrong
 */
public record ErrorMessage(long requestId, FailureInfo failure) implements Message {
    /** Validates the fields. */
    public ErrorMessage {
        Wire.checkId("request_id", requestId);
        Objects.requireNonNull(failure, "failure");
    }

    @Override
    public int type() {
        return Wire.ERROR;
    }
}
