package org.pbroker;

/** A limit was hit on the remote side (outstanding calls, references, frame size); retrying later may work. Kind "overloaded". */
public class OverloadedException extends RemoteException {
    private static final long serialVersionUID = 1L;

    /**
     * @param remoteType the remote exception type's name
     * @param remoteMessage the remote exception's message
     * @param remoteTraceback the remote traceback, or null
     */
    public OverloadedException(String remoteType, String remoteMessage, String remoteTraceback) {
        super("overloaded", remoteType, remoteMessage, remoteTraceback);
    }
}
