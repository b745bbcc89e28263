package org.pbroker.wire;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.ByteArrayInputStream;
import java.io.InputStream;
import java.lang.reflect.RecordComponent;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicContainer;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * Runs every vector of the shared tests/vectors/wire.json (scheme: docs/PROTOCOL.md, "Test
 * vectors"). Valid: decoding gives the described message and re-encoding gives the same bytes (or
 * canonical_hex). Invalid: decoding fails with the named error class.
 *
 * <p>The file is found through the system property {@code pbroker.vectors}, else
 * {@code pbroker.root}/tests/vectors/wire.json (Maven sets pbroker.root to the checkout root), else
 * ../../tests/vectors/wire.json from the working directory. Each feature's codec file beside it
 * (pipelining.json, cache.json, call_options.json, streams.json: sections 15, 16, 18, 17) runs
 * the same way.
 */
class WireVectorsTest {
    static Path vectorsPath() {
        String explicit = System.getProperty("pbroker.vectors");
        if (explicit != null && !explicit.isEmpty()) {
            return Path.of(explicit);
        }
        String root = System.getProperty("pbroker.root", "../..");
        return Path.of(root, "tests", "vectors", "wire.json");
    }

    static List<Map<String, Object>> loadVectors() throws Exception {
        return load(vectorsPath());
    }

    @SuppressWarnings("unchecked")
    private static List<Map<String, Object>> load(Path path) throws Exception {
        assertTrue(Files.isRegularFile(path), "shared codec vectors not found at "
                + path.toAbsolutePath().normalize());
        return (List<Map<String, Object>>) Json.parse(Files.readString(path, StandardCharsets.UTF_8));
    }

    @TestFactory
    Stream<DynamicTest> sharedVectors() throws Exception {
        List<Map<String, Object>> vectors = loadVectors();
        assertTrue(vectors.size() > 50, "suspiciously few vectors: " + vectors.size());
        return vectors.stream().map(v -> DynamicTest.dynamicTest((String) v.get("name"),
                () -> run(v)));
    }

    @TestFactory
    Stream<DynamicContainer> featureVectors() throws Exception {
        return Stream.of(feature("pipelining.json", 15), feature("cache.json", 21),
                feature("call_options.json", 11), feature("streams.json", 30));
    }

    /** A feature's codec file beside wire.json; fewer than {@code atLeast} vectors is suspicious. */
    private static DynamicContainer feature(String file, int atLeast) throws Exception {
        return WireVectorsTestAccess.featureFile(file, load(vectorsPath().resolveSibling(file)), atLeast,
                v -> () -> run(v));
    }

    private static WireDecoder decoderFor(Map<String, Object> v) {
        int maxFrame = Wire.DEFAULT_MAX_FRAME_SIZE;
        int maxDepth = Wire.DEFAULT_MAX_DEPTH;
        int maxLen = Wire.DEFAULT_MAX_CONTAINER_LENGTH;
        int maxItems = Wire.DEFAULT_MAX_ITEMS_PER_FRAME;
        int maxContainers = Wire.DEFAULT_MAX_CONTAINERS_PER_FRAME;
        int maxExtValues = Wire.DEFAULT_MAX_EXT_VALUES_PER_FRAME;
        @SuppressWarnings("unchecked")
        Map<String, Object> limits = (Map<String, Object>) v.get("limits");
        if (limits != null) {
            for (Map.Entry<String, Object> e : limits.entrySet()) {
                int value = ((Long) e.getValue()).intValue();
                switch (e.getKey()) {
                    case "max_frame_size" -> maxFrame = value;
                    case "max_depth" -> maxDepth = value;
                    case "max_container_length" -> maxLen = value;
                    case "max_items_per_frame" -> maxItems = value;
                    case "max_containers_per_frame" -> maxContainers = value;
                    case "max_ext_values_per_frame" -> maxExtValues = value;
                    default -> fail("unknown limit " + e.getKey());
                }
            }
        }
        boolean handshake = Boolean.TRUE.equals(v.get("handshake"));
        @SuppressWarnings("unchecked")
        List<String> features = (List<String>) v.getOrDefault("features", List.of());
        return new WireDecoder(maxFrame, maxDepth, maxLen,
                new WireDecoder.FrameLimits(maxItems, maxContainers, maxExtValues), features,
                handshake, null);
    }

    /** A stream that hands out one byte per read, like a slow network. */
    private static final class OneByteAtATime extends InputStream {
        private final byte[] data;
        private int pos;

        OneByteAtATime(byte[] data) {
            this.data = data;
        }

        @Override
        public int read() {
            return pos < data.length ? data[pos++] & 0xff : -1;
        }

        @Override
        public int read(byte[] b, int off, int len) {
            if (len == 0) {
                return 0;
            }
            int c = read();
            if (c < 0) {
                return -1;
            }
            b[off] = (byte) c;
            return 1;
        }
    }

    static void run(Map<String, Object> v) throws Exception {
        byte[] bytes = HexFormat.of().parseHex((String) v.get("hex"));
        // docs/PROTOCOL.md section 13: the whole stream at once, and one byte at a time
        run(v, new ByteArrayInputStream(bytes));
        run(v, new OneByteAtATime(bytes));
    }

    @SuppressWarnings("unchecked")
    private static void run(Map<String, Object> v, InputStream in) throws Exception {
        WireDecoder decoder = decoderFor(v);
        if (v.containsKey("error")) {
            String expected = (String) v.get("error");
            WireException e = assertThrows(WireException.class, () -> decoder.decodeAll(in),
                    "expected " + expected);
            assertEquals(expected, e.specName(), "wrong error class; message: " + e.getMessage());
            return;
        }
        List<Message> messages = decoder.decodeAll(in);
        assertEquals(1, messages.size(), "a valid vector holds exactly one message");
        Message decoded = messages.get(0);
        Message expected = messageFromJson((Map<String, Object>) v.get("message"));
        assertDeepEquals(expected, decoded, "message");
        String canonical = (String) v.getOrDefault("canonical_hex", v.get("hex"));
        assertEquals(canonical, HexFormat.of().formatHex(new WireEncoder().encodeFrame(decoded)),
                "re-encoding the decoded message");
        assertEquals(canonical, HexFormat.of().formatHex(new WireEncoder().encodeFrame(expected)),
                "encoding the described message");
    }

    // --- the JSON description (reference implementation: tests/vectors/make_vectors.py) ------

    @SuppressWarnings("unchecked")
    static Message messageFromJson(Map<String, Object> j) {
        String type = (String) j.get("type");
        switch (type) {
            case "hello":
                return new Hello((Long) j.get("version"), (Long) j.get("max_frame_size"),
                        (Long) j.get("max_depth"), (Long) j.get("max_container_length"),
                        (List<String>) j.get("features"));
            case "goodbye":
                return new Goodbye((String) j.get("kind"), (String) j.get("message"));
            case "call": {
                Map<String, Object> kwargs = new LinkedHashMap<>();
                ((Map<String, Object>) j.get("kwargs")).forEach((k, x) -> kwargs.put(k,
                        valueFromJson(x)));
                return new Call((Long) j.get("request_id"), (Long) j.get("target"),
                        (String) j.get("method"), (List<Object>) valueFromJson(j.get("args")),
                        kwargs, (Long) j.get("flags"), j.containsKey("options") // section 18
                                ? (Map<String, Object>) valueFromJson(j.get("options")) : null);
            }
            case "answer":
                return new Answer((Long) j.get("request_id"), valueFromJson(j.get("value")));
            case "error": {
                List<Object> f = (List<Object>) j.get("failure");
                return new ErrorMessage((Long) j.get("request_id"), new FailureInfo(
                        (String) f.get(0), (String) f.get(1), (String) f.get(2), (String) f.get(3)));
            }
            case "cancel":
                return new Cancel((Long) j.get("request_id"));
            case "decref":
                return new Decref((Long) j.get("object_id"), (Long) j.get("count"));
            case "finish": { // feature "pipelining" (tests/vectors/pipelining.json)
                List<Long> ids = new ArrayList<>();
                for (Object id : (List<Object>) j.get("question_ids")) {
                    ids.add((Long) id);
                }
                return new Finish(ids);
            }
            case "decrefs": {
                Map<Long, Long> releases = new LinkedHashMap<>();
                for (Object pair : (List<Object>) j.get("releases")) {
                    List<Object> p = (List<Object>) pair;
                    releases.put((Long) p.get(0), (Long) p.get(1));
                }
                return new Decrefs(releases);
            }
            case "ping":
                return new Ping((Long) j.get("nonce"));
            case "pong":
                return new Pong((Long) j.get("nonce"));
            case "cache_update": { // feature "cache" (tests/vectors/cache.json)
                Map<String, Object> kwargs = new LinkedHashMap<>();
                ((Map<String, Object>) j.get("kwargs")).forEach((k, x) -> kwargs.put(k,
                        valueFromJson(x)));
                return new CacheUpdate((Long) j.get("cache_id"), (String) j.get("method"),
                        (List<Object>) valueFromJson(j.get("args")), kwargs);
            }
            case "cache_release":
                return new CacheRelease((Long) j.get("cache_id"), (Long) j.get("count"));
            case "stream_items": // feature "streams" (tests/vectors/streams.json)
                return new StreamItems((Long) j.get("stream_id"),
                        (List<Object>) valueFromJson(j.get("items")));
            case "stream_end": {
                List<Object> f = (List<Object>) j.get("failure");
                return new StreamEnd((Long) j.get("stream_id"), f == null ? null
                        : new FailureInfo((String) f.get(0), (String) f.get(1),
                                (String) f.get(2), (String) f.get(3)));
            }
            case "stream_credit":
                return new StreamCredit((Long) j.get("stream_id"), (Long) j.get("items"),
                        (Long) j.get("bytes"));
            default:
                throw new IllegalArgumentException("unknown message type " + type);
        }
    }

    @SuppressWarnings("unchecked")
    static Object valueFromJson(Object j) {
        if (j instanceof List<?> list) {
            List<Object> out = new ArrayList<>();
            for (Object x : list) {
                out.add(valueFromJson(x));
            }
            return out;
        }
        if (j instanceof Map<?, ?> m) {
            Map<String, Object> map = (Map<String, Object>) m;
            if (map.size() == 1) {
                Map.Entry<String, Object> e = map.entrySet().iterator().next();
                String tag = e.getKey();
                Object x = e.getValue();
                if (tag.startsWith("$")) {
                    switch (tag) {
                        case "$float":
                            return Double.parseDouble((String) x);
                        case "$bytes":
                            return HexFormat.of().parseHex((String) x);
                        case "$map": {
                            Map<Object, Object> out = new LinkedHashMap<>();
                            for (Object pair : (List<Object>) x) {
                                List<Object> kv = (List<Object>) pair;
                                out.put(valueFromJson(kv.get(0)), valueFromJson(kv.get(1)));
                            }
                            return out;
                        }
                        case "$ref_sender":
                            return new ExportedRef((Long) x);
                        case "$ref_receiver":
                            return new ReturnedRef((Long) x);
                        case "$copy": {
                            List<Object> c = (List<Object>) x;
                            return new CopyState((String) c.get(0), valueFromJson(c.get(1)));
                        }
                        case "$failure": {
                            List<Object> f = (List<Object>) x;
                            return new FailureInfo((String) f.get(0), (String) f.get(1),
                                    (String) f.get(2), (String) f.get(3));
                        }
                        case "$stream": {
                            List<Object> s = (List<Object>) x;
                            return new StreamRef((Long) s.get(0), (Long) s.get(1),
                                    (Long) s.get(2));
                        }
                        case "$cache_ref": {
                            List<Object> c = (List<Object>) x;
                            return c.size() == 1 ? new CacheRef((Long) c.get(0))
                                    : new CacheRef((Long) c.get(0), (String) c.get(1),
                                            valueFromJson(c.get(2)));
                        }
                        default:
                            throw new IllegalArgumentException("unknown tag " + tag);
                    }
                }
            }
            Map<Object, Object> out = new LinkedHashMap<>();
            map.forEach((k, x) -> out.put(k, valueFromJson(x)));
            return out;
        }
        return j;
    }

    // --- strict structural equality (byte[] by content, maps in order, floats bit-exact) -------

    static void assertDeepEquals(Object expected, Object actual, String path) {
        if (expected == null || actual == null) {
            assertEquals(expected, actual, path);
            return;
        }
        if (expected instanceof byte[] e) {
            assertTrue(actual instanceof byte[], path + ": expected bytes, got " + actual);
            assertTrue(Arrays.equals(e, (byte[]) actual), path + ": bytes differ");
            return;
        }
        if (expected instanceof List<?> e) {
            assertTrue(actual instanceof List<?>, path + ": expected a list, got " + actual);
            List<?> a = (List<?>) actual;
            assertEquals(e.size(), a.size(), path + ": list length");
            for (int k = 0; k < e.size(); k++) {
                assertDeepEquals(e.get(k), a.get(k), path + "[" + k + "]");
            }
            return;
        }
        if (expected instanceof Map<?, ?> e) {
            assertTrue(actual instanceof Map<?, ?>, path + ": expected a map, got " + actual);
            Map<?, ?> a = (Map<?, ?>) actual;
            assertEquals(e.size(), a.size(), path + ": map size");
            Iterator<? extends Map.Entry<?, ?>> ai = a.entrySet().iterator();
            for (Map.Entry<?, ?> ee : e.entrySet()) {
                Map.Entry<?, ?> ae = ai.next();
                assertDeepEquals(ee.getKey(), ae.getKey(), path + " key");
                assertDeepEquals(ee.getValue(), ae.getValue(), path + "[" + ee.getKey() + "]");
            }
            return;
        }
        if (expected instanceof Record r) {
            assertEquals(expected.getClass(), actual.getClass(), path + ": record class");
            for (RecordComponent c : r.getClass().getRecordComponents()) {
                try {
                    assertDeepEquals(c.getAccessor().invoke(expected), c.getAccessor().invoke(actual),
                            path + "." + c.getName());
                } catch (ReflectiveOperationException ex) {
                    throw new AssertionError(ex);
                }
            }
            return;
        }
        if (expected instanceof Double d) {
            assertTrue(actual instanceof Double, path + ": expected a float, got " + actual);
            assertEquals(Double.doubleToRawLongBits(d), Double.doubleToRawLongBits((Double) actual),
                    path + ": float bits (" + d + " vs " + actual + ")");
            return;
        }
        if (expected instanceof BigInteger || expected instanceof Long) {
            assertEquals(expected.getClass(), actual.getClass(), path + ": integer class");
        }
        assertEquals(expected, actual, path);
    }
}
