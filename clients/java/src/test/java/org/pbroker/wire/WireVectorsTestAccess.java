package org.pbroker.wire;

import java.nio.ByteBuffer;

/** Test helper: raw frames of arbitrary msgpack values (for deliberately bad messages). */
public final class WireVectorsTestAccess {
    private WireVectorsTestAccess() {}

    /**
     * @param body any encodable value (need not be a valid message)
     * @return a frame holding it
     * @throws WireException if it cannot be encoded
     */
    public static byte[] frame(Object body) throws WireException {
        byte[] b = new WireEncoder().encodeValue(body);
        return ByteBuffer.allocate(4 + b.length).putInt(b.length).put(b).array();
    }
}
