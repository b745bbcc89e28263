package org.pbroker.wire;

/**
 * A copyable object on the wire (ext code 3): its registered type name and its state.
 *
 * @param typeName the registered type name, not empty
 * @param state the state (any wire value; a map of field names for records)
 */
public record CopyState(String typeName, Object state) implements WireValue {
    /** Validates the type name. */
    public CopyState {
        Wire.checkStr("type_name", typeName);
        if (typeName.isEmpty()) {
            throw new IllegalArgumentException("type_name must not be empty");
        }
    }

    @Override
    public byte code() {
        return Wire.EXT_COPY;
    }
}
