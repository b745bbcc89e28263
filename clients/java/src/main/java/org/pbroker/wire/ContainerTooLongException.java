package org.pbroker.wire;

/** An array or map has more entries than {@code max_container_length}. */
public class ContainerTooLongException extends RemoteProtocolException {
    private static final long serialVersionUID = 1L;

    /** @param message what went wrong */
    public ContainerTooLongException(String message) {
        super(message);
    }

    /**
     * @param message what went wrong
     * @param cause the underlying exception
     */
    public ContainerTooLongException(String message, Throwable cause) {
        super(message, cause);
    }
}
