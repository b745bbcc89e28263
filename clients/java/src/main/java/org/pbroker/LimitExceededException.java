package org.pbroker;

/**
 * A local limit refused the call before it was sent (too many outstanding calls, a message larger
 * than the peer accepts, a value that cannot be encoded).
 */
public class LimitExceededException extends BrokerException {
    private static final long serialVersionUID = 1L;

    /** @param message what limit and why */
    public LimitExceededException(String message) {
        super(message);
    }

    /**
     * @param message what limit and why
     * @param cause the underlying exception
     */
    public LimitExceededException(String message, Throwable cause) {
        super(message, cause);
    }
}
