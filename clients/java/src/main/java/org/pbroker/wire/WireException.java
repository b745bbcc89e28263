package org.pbroker.wire;

/**
 * Base of every exception of the wire codec. {@link #specName()} is the name docs/PROTOCOL.md gives the error class (the same as the Python implementation's class name).
 *
 * <pre>
 * WireException
 * ├── LocalProtocolException        the caller misused the encoder (nothing was sent)
 * │   ├── UnencodableValueException
 * │   └── MessageTooLargeException
 * └── RemoteProtocolException       the peer broke the protocol: send goodbye(kind()) and close
 *     ├── FrameTooLargeException
 *     ├── TruncatedFrameException
 *     ├── NestingTooDeepException
 *     ├── ContainerTooLongException
 *     ├── FrameTooComplexException
 *     ├── MalformedMessageException
 *     ├── UnknownMessageTypeException
 *     ├── UnknownExtCodeException
 *     └── HandshakeException
 *         └── VersionMismatchException
 * </pre>
 */
public class WireException extends java.io.IOException {
    private static final long serialVersionUID = 1L;

    /** @param message what went wrong */
    public WireException(String message) {
        super(message);
    }

    /**
     * @param message what went wrong
     * @param cause the underlying exception
     */
    public WireException(String message, Throwable cause) {
        super(message, cause);
    }

    /**
     * The error class name used by docs/PROTOCOL.md and the shared test vectors, e.g.
     * {@code "FrameTooLarge"} for {@link FrameTooLargeException}.
     *
     * @return the spec's name of this error class
     */
    public String specName() {
        String n = getClass().getSimpleName();
        n = n.endsWith("Exception") ? n.substring(0, n.length() - "Exception".length()) : n;
        // The spec's base classes and HandshakeError end in "Error"; the others name the problem.
        return switch (n) {
            case "Wire", "LocalProtocol", "RemoteProtocol", "Handshake" -> n + "Error";
            default -> n;
        };
    }
}
