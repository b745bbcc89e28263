package org.pbroker;

import java.util.concurrent.TimeoutException;

/**
 * The call's deadline passed before its answer came (docs/PROTOCOL.md section 18): either our
 * own timer fired (the cause is then a {@link TimeoutException}, and the server was asked to
 * cancel), or the server stopped the call and answered kind "deadline" (or, from a peer without
 * "call-options", kind "cancelled" with type name {@code broker.DeadlineExceeded}). The Java
 * counterpart of Python's {@code broker.DeadlineExceeded}, itself a {@code TimeoutError}: catch
 * it where you would catch a timeout.
 */
public class DeadlineExceededException extends RemoteException {
    private static final long serialVersionUID = 1L;

    /** The type name both ends use for this failure. */
    public static final String TYPE_NAME = "broker.DeadlineExceeded";

    /**
     * @param remoteType the remote exception type's name
     * @param remoteMessage the remote exception's message
     * @param remoteTraceback the remote traceback, or null
     */
    public DeadlineExceededException(String remoteType, String remoteMessage,
            String remoteTraceback) {
        super("deadline", remoteType, remoteMessage, remoteTraceback);
    }

    /**
     * Our own timer fired first.
     *
     * @param timeout what it waited for
     * @return the exception, its cause the TimeoutException of the timer
     */
    static DeadlineExceededException local(TimeoutException timeout) {
        DeadlineExceededException e = new DeadlineExceededException(TYPE_NAME,
                timeout.getMessage(), null);
        e.initCause(timeout);
        return e;
    }
}
