package org.pbroker;

/** The call named an object id the caller was never given (or already released), or the request was malformed. Kind "invalid". */
public class InvalidReferenceException extends RemoteException {
    private static final long serialVersionUID = 1L;

    /**
     * @param remoteType the remote exception type's name
     * @param remoteMessage the remote exception's message
     * @param remoteTraceback the remote traceback, or null
     */
    public InvalidReferenceException(String remoteType, String remoteMessage, String remoteTraceback) {
        super("invalid", remoteType, remoteMessage, remoteTraceback);
    }
}
