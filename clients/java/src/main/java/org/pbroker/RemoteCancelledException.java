package org.pbroker;

/** The remote side cancelled the call. Kind "cancelled". */
public class RemoteCancelledException extends RemoteException {
    private static final long serialVersionUID = 1L;

    /**
     * @param remoteType the remote exception type's name
     * @param remoteMessage the remote exception's message
     * @param remoteTraceback the remote traceback, or null
     */
    public RemoteCancelledException(String remoteType, String remoteMessage, String remoteTraceback) {
        super("cancelled", remoteType, remoteMessage, remoteTraceback);
    }
}
