package org.pbroker.wire;

/**
 * A frame is over a per-frame limit (docs/PROTOCOL.md section 8): too many items, containers or
 * ext values, or too many ext payload bytes.
 */
public class FrameTooComplexException extends RemoteProtocolException {
    private static final long serialVersionUID = 1L;

    /** @param message what went wrong */
    public FrameTooComplexException(String message) {
        super(message);
    }
}
