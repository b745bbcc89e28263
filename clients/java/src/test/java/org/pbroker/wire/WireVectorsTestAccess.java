package org.pbroker.wire;

import java.nio.ByteBuffer;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import org.junit.jupiter.api.Assertions;
import org.junit.jupiter.api.DynamicContainer;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.function.Executable;

/**
 * Test helper: raw frames of arbitrary msgpack values (for deliberately bad messages), the JSON
 * scheme of the shared vectors for tests in other packages, and one feature file's tests.
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

    /**
     * One test a vector, under the file's name: how the codec and session runners run each
     * feature's file beside their base file.
     *
     * @param file the file's name, the container's
     * @param vectors its vectors (those this client runs)
     * @param atLeast fewer is suspicious (a file cut short, a filter too wide): the factory fails
     * @param test the check of one vector
     * @return the tests
     */
    public static DynamicContainer featureFile(String file, List<Map<String, Object>> vectors,
            int atLeast, Function<Map<String, Object>, Executable> test) {
        Assertions.assertTrue(vectors.size() >= atLeast,
                file + ": suspiciously few vectors: " + vectors.size());
        return DynamicContainer.dynamicContainer(file, vectors.stream().map(v ->
                DynamicTest.dynamicTest((String) v.get("name"), test.apply(v))));
    }
}
