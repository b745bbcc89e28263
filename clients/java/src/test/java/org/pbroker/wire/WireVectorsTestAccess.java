package org.pbroker.wire;

import java.nio.ByteBuffer;
import java.util.Map;

/**
 * Test helper: raw frames of arbitrary msgpack values (for deliberately bad messages), and the
 * JSON scheme of the shared vectors for tests in other packages.
 */
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

    /**
     * @param text JSON
     * @return objects as LinkedHashMap, arrays as ArrayList, integers as Long or BigInteger
     */
    public static Object parseJson(String text) {
        return Json.parse(text);
    }

    /**
     * @param json a message in the vectors' JSON scheme (docs/PROTOCOL.md section 13)
     * @return the message
     */
    public static Message messageFromJson(Map<String, Object> json) {
        return WireVectorsTest.messageFromJson(json);
    }

    /**
     * @param json a value in the vectors' JSON scheme
     * @return the wire value ($ref_sender as ExportedRef, ...)
     */
    public static Object valueFromJson(Object json) {
        return WireVectorsTest.valueFromJson(json);
    }

    /**
     * Strict structural equality: byte[] by content, maps in order, floats bit for bit, Long is
     * not Double.
     *
     * @param expected expected
     * @param actual actual
     * @param path where, for the message
     */
    public static void assertDeepEquals(Object expected, Object actual, String path) {
        WireVectorsTest.assertDeepEquals(expected, actual, path);
    }
}
