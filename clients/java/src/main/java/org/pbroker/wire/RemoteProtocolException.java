package org.pbroker.wire;

/** The peer sent bytes that break the protocol. {@link #kind()} is the failure kind to put in the goodbye sent before closing. */
public class RemoteProtocolException extends WireException {
    private static final long serialVersionUID = 1L;

    /** @param message what went wrong */
    public RemoteProtocolException(String message) {
        super(message);
    }

    /**
     * @param message what went wrong
     * @param cause the underlying exception
     */
    public RemoteProtocolException(String message, Throwable cause) {
        super(message, cause);
    }

    /**
     * The failure kind to send in the goodbye before closing: "invalid" unless a subclass says
     * otherwise ("disconnected" for a truncated frame, "unimplemented" for unknown types and
     * versions).
     *
     * @return the goodbye kind
     */
    public String kind() {
        return "invalid";
    }
}
