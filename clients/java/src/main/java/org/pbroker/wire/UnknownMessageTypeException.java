package org.pbroker.wire;

/** The message type is unknown or reserved in this protocol version. */
public class UnknownMessageTypeException extends RemoteProtocolException {
    private static final long serialVersionUID = 1L;

    /** @param message what went wrong */
    public UnknownMessageTypeException(String message) {
        super(message);
    }

    /**
     * @param message what went wrong
     * @param cause the underlying exception
     */
    public UnknownMessageTypeException(String message, Throwable cause) {
        super(message, cause);
    }

    @Override
    public String kind() {
        return "unimplemented";
    }
}
