package org.pbroker.wire;

/** The body is not valid msgpack, or a message has the wrong arity, field types or field values. */
public class MalformedMessageException extends RemoteProtocolException {
    private static final long serialVersionUID = 1L;

    /** @param message what went wrong */
    public MalformedMessageException(String message) {
        super(message);
    }

    /**
     * @param message what went wrong
     * @param cause the underlying exception
     */
    public MalformedMessageException(String message, Throwable cause) {
        super(message, cause);
    }
}
