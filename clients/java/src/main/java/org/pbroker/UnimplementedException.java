package org.pbroker;

/** The remote object has no such remote method, or the peer does not know a message type. Kind "unimplemented". */
public class UnimplementedException extends RemoteException {
    private static final long serialVersionUID = 1L;

    /**
     * @param remoteType the remote exception type's name
     * @param remoteMessage the remote exception's message
     * @param remoteTraceback the remote traceback, or null
     */
    public UnimplementedException(String remoteType, String remoteMessage, String remoteTraceback) {
        super("unimplemented", remoteType, remoteMessage, remoteTraceback);
    }
}
