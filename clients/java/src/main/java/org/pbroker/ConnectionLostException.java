package org.pbroker;

/**
 * The connection closed before the answer arrived (kind "disconnected"), or a call was made on a
 * closed connection. The cause, if any, is why the connection closed.
 */
public class ConnectionLostException extends BrokerException {
    private static final long serialVersionUID = 1L;

    /** @param message what happened */
    public ConnectionLostException(String message) {
        super(message);
    }

    /**
     * @param message what happened
     * @param cause why the connection closed
     */
    public ConnectionLostException(String message, Throwable cause) {
        super(message, cause);
    }

    /** @return the failure kind, "disconnected" */
    public String kind() {
        return "disconnected";
    }
}
