package org.pbroker.wire;

/** The encoded frame is larger than the peer's announced {@code max_frame_size}. */
public class MessageTooLargeException extends LocalProtocolException {
    private static final long serialVersionUID = 1L;

    /** @param message what went wrong */
    public MessageTooLargeException(String message) {
        super(message);
    }

    /**
     * @param message what went wrong
     * @param cause the underlying exception
     */
    public MessageTooLargeException(String message, Throwable cause) {
        super(message, cause);
    }
}
