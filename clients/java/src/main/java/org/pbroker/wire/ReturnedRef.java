package org.pbroker.wire;

/**
 * A reference to an object the <em>receiver</em> of the message owns (ext code 2): the sender
 * imported it earlier and hands it back; no count changes.
 *
 * @param objectId the id in the receiver's exports
 */
public record ReturnedRef(long objectId) implements WireValue {
    /** Validates the id. */
    public ReturnedRef {
        Wire.checkId("object_id", objectId);
    }

    @Override
    public byte code() {
        return Wire.EXT_RECEIVER_REF;
    }
}
