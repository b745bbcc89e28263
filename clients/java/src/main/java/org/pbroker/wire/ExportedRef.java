package org.pbroker.wire;

/**
 * A reference to an object the <em>sender</em> of the message owns (ext code 1). Each one sent
 * adds one to the owner's export count and the receiver's import count.
 *
 * @param objectId the id in the sender's exports
 */
public record ExportedRef(long objectId) implements WireValue {
    /** Validates the id. */
    public ExportedRef {
        Wire.checkId("object_id", objectId);
    }

    @Override
    public byte code() {
        return Wire.EXT_SENDER_REF;
    }
}
