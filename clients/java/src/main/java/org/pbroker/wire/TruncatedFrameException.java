package org.pbroker.wire;

/** The stream ended in the middle of a frame. */
public class TruncatedFrameException extends RemoteProtocolException {
    private static final long serialVersionUID = 1L;

    /** @param message what went wrong */
    public TruncatedFrameException(String message) {
        super(message);
    }

    /**
     * @param message what went wrong
     * @param cause the underlying exception
     */
    public TruncatedFrameException(String message, Throwable cause) {
        super(message, cause);
    }

    @Override
    public String kind() {
        return "disconnected";
    }
}
