package org.pbroker.wire;

/** A frame's length header exceeds {@code max_frame_size}; refused before the body was read or allocated. */
public class FrameTooLargeException extends RemoteProtocolException {
    private static final long serialVersionUID = 1L;

    /** @param message what went wrong */
    public FrameTooLargeException(String message) {
        super(message);
    }

    /**
     * @param message what went wrong
     * @param cause the underlying exception
     */
    public FrameTooLargeException(String message, Throwable cause) {
        super(message, cause);
    }
}
