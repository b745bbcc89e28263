package org.pbroker.wire;

/** The peer's hello names a protocol version other than ours. */
public class VersionMismatchException extends HandshakeException {
    private static final long serialVersionUID = 1L;
    private final transient Object peerVersion;

    /** @param peerVersion the version the peer's hello named (whatever type it had) */
    public VersionMismatchException(Object peerVersion) {
        super("peer speaks pbroker protocol version " + peerVersion + ", we speak "
                + Hello.PROTOCOL_VERSION);
        this.peerVersion = peerVersion;
    }

    /** @return the version the peer's hello named */
    public Object peerVersion() {
        return peerVersion;
    }

    @Override
    public String kind() {
        return "unimplemented";
    }
}
