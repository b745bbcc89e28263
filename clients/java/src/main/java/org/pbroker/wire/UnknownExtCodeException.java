package org.pbroker.wire;

/** An ext type code is unknown or reserved in this protocol version. */
public class UnknownExtCodeException extends RemoteProtocolException {
    private static final long serialVersionUID = 1L;

    /** @param message what went wrong */
    public UnknownExtCodeException(String message) {
        super(message);
    }

    /**
     * @param message what went wrong
     * @param cause the underlying exception
     */
    public UnknownExtCodeException(String message, Throwable cause) {
        super(message, cause);
    }

    @Override
    public String kind() {
        return "unimplemented";
    }
}
