package org.pbroker.wire;

/** The caller asked the encoder for something the protocol cannot carry; nothing was produced or sent. */
public class LocalProtocolException extends WireException {
    private static final long serialVersionUID = 1L;

    /** @param message what went wrong */
    public LocalProtocolException(String message) {
        super(message);
    }

    /**
     * @param message what went wrong
     * @param cause the underlying exception
     */
    public LocalProtocolException(String message, Throwable cause) {
        super(message, cause);
    }
}
