package org.pbroker.wire;

/** The first message was not a pbroker hello, or a hello came later. */
public class HandshakeException extends RemoteProtocolException {
    private static final long serialVersionUID = 1L;

    /** @param message what went wrong */
    public HandshakeException(String message) {
        super(message);
    }

    /**
     * @param message what went wrong
     * @param cause the underlying exception
     */
    public HandshakeException(String message, Throwable cause) {
        super(message, cause);
    }
}
