package org.pbroker;

import org.pbroker.wire.FailureInfo;
import org.pbroker.wire.Wire;

/**
 * The remote side reported a failure. {@link #kind()} is the spec's failure kind,
 * {@link #remoteType()} the remote exception class name (e.g. {@code builtins.ValueError}),
 * {@link #remoteMessage()} its message, and {@link #remoteTraceback()} the remote traceback when
 * the server runs in debug mode (else null).
 */
public class RemoteException extends BrokerException {
    private static final long serialVersionUID = 1L;
    private final String kind;
    private final String remoteType;
    private final String remoteMessage;
    private final String remoteTraceback;

    /**
     * @param kind the failure kind ("failed", "overloaded", ...)
     * @param remoteType the remote exception type's name
     * @param remoteMessage the remote exception's message
     * @param remoteTraceback the remote traceback, or null
     */
    public RemoteException(String kind, String remoteType, String remoteMessage,
            String remoteTraceback) {
        super(remoteType == null || remoteType.isEmpty() ? remoteMessage
                : remoteType + ": " + remoteMessage);
        this.kind = kind;
        this.remoteType = remoteType == null ? "" : remoteType;
        this.remoteMessage = remoteMessage == null ? "" : remoteMessage;
        this.remoteTraceback = remoteTraceback;
    }

    /**
     * The exception for a failure received from the wire: the subclass its kind calls for.
     *
     * @param f the failure
     * @return a RemoteException (or subclass), or a {@link ConnectionLostException}-like
     *     RemoteException for kind "disconnected"
     */
    public static RemoteException of(FailureInfo f) {
        return switch (f.kind()) {
            case Wire.OVERLOADED -> new OverloadedException(f.typeName(), f.message(), f.traceback());
            case Wire.UNIMPLEMENTED -> new UnimplementedException(f.typeName(), f.message(),
                    f.traceback());
            case Wire.INVALID -> new InvalidReferenceException(f.typeName(), f.message(),
                    f.traceback());
            case Wire.DEADLINE -> new DeadlineExceededException(f.typeName(), f.message(),
                    f.traceback());
            case Wire.CANCELLED -> DeadlineExceededException.TYPE_NAME.equals(f.typeName())
                    ? new DeadlineExceededException(f.typeName(), f.message(), f.traceback())
                    : new RemoteCancelledException(f.typeName(), f.message(), f.traceback());
            default -> new RemoteException(f.kind(), f.typeName(), f.message(), f.traceback());
        };
    }

    /** @return the failure kind */
    public String kind() {
        return kind;
    }

    /** @return the remote exception type's name */
    public String remoteType() {
        return remoteType;
    }

    /** @return the remote exception's message */
    public String remoteMessage() {
        return remoteMessage;
    }

    /** @return the remote traceback (servers in debug mode only), or null */
    public String remoteTraceback() {
        return remoteTraceback;
    }

    /** @return this failure as it travels on the wire */
    public FailureInfo toFailureInfo() {
        return new FailureInfo(kind, remoteType, remoteMessage, remoteTraceback);
    }
}
