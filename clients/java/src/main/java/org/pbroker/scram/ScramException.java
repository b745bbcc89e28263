package org.pbroker.scram;

/**
 * A SCRAM exchange failed: a malformed or hostile server message, an iteration count outside the
 * accepted range, a server error ({@code e=}), or a server signature that does not verify.
 */
public class ScramException extends Exception {
    private static final long serialVersionUID = 1L;

    /** @param message what went wrong */
    public ScramException(String message) {
        super(message);
    }
}
