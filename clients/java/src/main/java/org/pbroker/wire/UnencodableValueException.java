package org.pbroker.wire;

/** A value is neither a msgpack native nor a wire value, and no hook mapped it to one. */
public class UnencodableValueException extends LocalProtocolException {
    private static final long serialVersionUID = 1L;

    /** @param message what went wrong */
    public UnencodableValueException(String message) {
        super(message);
    }

    /**
     * @param message what went wrong
     * @param cause the underlying exception
     */
    public UnencodableValueException(String message, Throwable cause) {
        super(message, cause);
    }
}
