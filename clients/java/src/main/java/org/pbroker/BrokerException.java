package org.pbroker;

/**
 * Base of every broker error a call can fail with. The class says how to react:
 *
 * <pre>
 * BrokerException
 * ├── RemoteException              kind "failed": the remote method raised; remoteType / remoteMessage
 * │   ├── OverloadedException      kind "overloaded": a limit was hit; retry later
 * │   ├── UnimplementedException   kind "unimplemented": no such method, message or ext type
 * │   ├── InvalidReferenceException kind "invalid": the call named an object we were never given
 * │   └── RemoteCancelledException kind "cancelled": the callee cancelled the call
 * ├── ConnectionLostException      kind "disconnected": the connection closed before the answer
 * ├── UnregisteredCopyException    a copyable arrived whose type name is not registered here
 * └── LimitExceededException       a local limit refused the call before it was sent
 * </pre>
 */
public class BrokerException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    /** @param message what went wrong */
    public BrokerException(String message) {
        super(message);
    }

    /**
     * @param message what went wrong
     * @param cause the underlying exception
     */
    public BrokerException(String message, Throwable cause) {
        super(message, cause);
    }
}
