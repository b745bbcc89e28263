package org.pbroker.wire;

/** Arrays, maps and ext values nest deeper than {@code max_depth}. */
public class NestingTooDeepException extends RemoteProtocolException {
    private static final long serialVersionUID = 1L;

    /** @param message what went wrong */
    public NestingTooDeepException(String message) {
        super(message);
    }

    /**
     * @param message what went wrong
     * @param cause the underlying exception
     */
    public NestingTooDeepException(String message, Throwable cause) {
        super(message, cause);
    }
}
