package org.pbroker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.InputStream;
import java.lang.reflect.RecordComponent;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.stream.Stream;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.DynamicContainer;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;
import org.pbroker.wire.CopyState;
import org.pbroker.wire.Decrefs;
import org.pbroker.wire.ExportedRef;
import org.pbroker.wire.FailureInfo;
import org.pbroker.wire.Message;
import org.pbroker.wire.ReturnedRef;
import org.pbroker.wire.Wire;
import org.pbroker.wire.WireDecoder;
import org.pbroker.wire.WireEncoder;
import org.pbroker.wire.WireException;
import org.pbroker.wire.WireVectorsTestAccess;

/**
 * Session-level conformance vectors (docs/PROTOCOL.md section 13.1): a {@link Session} with no
 * socket and the synchronous dispatcher is fed frames and must queue the frames, show the results
 * and ask to close exactly as each vector says. Runs the shared {@code tests/vectors/session.json}
 * if it exists (system property {@code pbroker.sessionVectors}, else
 * {@code pbroker.root}/tests/vectors/session.json, as {@code WireVectorsTest} finds wire.json;
 * skipped if absent), and always the hand-made {@code src/test/resources/session-sample.json}.
 *
 * <p>The format is section 13.1's: {@code {"version": 1, "fixtures": {...}, "vectors": [{"name",
 * "description", "role": "client"|"server", "root": "calc"|"none", "limits"?: {...}, "steps":
 * [...]}]}} with the steps {@code in} (messages in wire.json's JSON scheme), {@code in_hex},
 * {@code out} (everything queued since the last out, decoded, in order; {@code {"$any": true}}
 * matches anything), {@code out_set} (any order), {@code call}, {@code cancel}, {@code result}
 * ({@code pending}, {@code value} with {@code {"$proxy": id}}, {@code error_kind}),
 * {@code release: "all"}, {@code goodbye}, {@code eof} and {@code closed} (with
 * {@code goodbye_kind}, checked when present). When the session asks to close, the runner reports
 * the connection gone at the end of that step, as a transport would; input for a closed session is
 * dropped (a transport delivers nothing after it closed). In expected values
 * {@code {"$unordered": [...]}} matches an array of the same elements in any order (a decrefs'
 * releases, which are {@code [[object_id, count], ...]} in the JSON scheme).
 *
 * <p>A vector with {@code "requires": [feature, ...]} runs with a session that announces those
 * features ({@link Session#withFeatures}); without it the session announces none. A vector that
 * requires a feature this client does not implement ({@link #SUPPORTED_FEATURES}) is skipped.
 *
 * <p>One extension, used by the hand-made sample: {@code {"out_hex": [hex, ...]}} is {@code out}
 * compared byte for byte (frames with their length headers), for frames written by hand from the
 * spec.
 *
 * <p>Each feature's session file beside session.json (pipelining_session.json,
 * cache_session.json, call_options_session.json, streams_session.json: sections 15, 16, 18, 17)
 * runs the same way (streams_session.json's results that are streams as its fixtures say), but for
 * the vectors whose session serves the cache owner fixture {@code "board"}: this client holds
 * caches but owns none, so those are Python's only.
 *
 * <p>Fixtures: {@link SessionFixtures}.
 */
class SessionVectorsTest {
    /** The optional features (docs/PROTOCOL.md section 3.1) the Java session implements. */
    static final Set<String> SUPPORTED_FEATURES =
            Set.of(Wire.FEATURE_HEARTBEAT, Wire.FEATURE_DECREFS, Wire.FEATURE_CACHE,
                    Wire.FEATURE_PIPELINING, Wire.FEATURE_CALL_OPTIONS, Wire.FEATURE_STREAMS);

    /** Roots of vectors only a cache owner can run (this client is none). */
    private static final Set<String> OWNER_ROOTS = Set.of("board");

    static {
        RemoteCache.register("vectors.Board", SessionFixtures.Board.class); // cache_session.json's
    }

    static Path sharedPath() {
        String explicit = System.getProperty("pbroker.sessionVectors");
        if (explicit != null && !explicit.isEmpty()) {
            return Path.of(explicit);
        }
        String root = System.getProperty("pbroker.root", "../..");
        return Path.of(root, "tests", "vectors", "session.json");
    }

    @SuppressWarnings("unchecked")
    static List<Map<String, Object>> vectors(String json) {
        Map<String, Object> file = (Map<String, Object>) WireVectorsTestAccess.parseJson(json);
        assertEquals(1L, file.get("version"), "session vector file version");
        return (List<Map<String, Object>>) file.get("vectors");
    }

    private static Stream<DynamicTest> tests(List<Map<String, Object>> vectors) {
        return vectors.stream().map(v -> DynamicTest.dynamicTest((String) v.get("name"),
                () -> new Runner(v).run()));
    }

    @TestFactory
    Stream<DynamicTest> sharedVectors() throws Exception {
        Path path = sharedPath();
        Assumptions.assumeTrue(Files.isRegularFile(path),
                "no shared session vectors at " + path.toAbsolutePath().normalize());
        List<Map<String, Object>> vectors = vectors(Files.readString(path, StandardCharsets.UTF_8));
        assertFalse(vectors.isEmpty(), "no vectors in " + path);
        return tests(vectors);
    }

    @TestFactory
    Stream<DynamicContainer> featureVectors() throws Exception {
        return Stream.of(feature("pipelining_session.json", 10), feature("cache_session.json", 7),
                feature("call_options_session.json", 8), feature("streams_session.json", 11));
    }

    /** A feature's session file beside session.json; fewer than {@code atLeast} to run is suspicious. */
    private static DynamicContainer feature(String file, int atLeast) throws Exception {
        Path path = sharedPath().resolveSibling(file);
        assertTrue(Files.isRegularFile(path), "no session vectors at " + path.toAbsolutePath().normalize());
        List<Map<String, Object>> ours = vectors(Files.readString(path, StandardCharsets.UTF_8)).stream()
                .filter(v -> !OWNER_ROOTS.contains(v.get("root"))).toList();
        return WireVectorsTestAccess.featureFile(file, ours, atLeast, v -> () -> new Runner(v).run());
    }

    @TestFactory
    Stream<DynamicTest> sampleVectors() throws Exception {
        try (InputStream in = SessionVectorsTest.class.getResourceAsStream("/session-sample.json")) {
            assertNotNull(in, "session-sample.json is missing from the test resources");
            List<Map<String, Object>> vectors =
                    vectors(new String(in.readAllBytes(), StandardCharsets.UTF_8));
            assertTrue(vectors.size() >= 5, "the sample should exercise the runner");
            return tests(vectors);
        }
    }

    @Test
    void unorderedMatchesTheSameElementsInAnyOrder() {
        Object want = Map.of("$unordered", List.of(List.of(5L, 2L), List.of(6L, 1L)));
        assertTrue(Runner.matches(want, List.of(List.of(6L, 1L), List.of(5L, 2L))));
        assertTrue(Runner.matches(want, List.of(List.of(5L, 2L), List.of(6L, 1L))));
        assertFalse(Runner.matches(want, List.of(List.of(5L, 2L))), "one missing");
        assertFalse(Runner.matches(want, List.of(List.of(5L, 2L), List.of(6L, 1L),
                List.of(7L, 1L))), "one too many");
        assertFalse(Runner.matches(want, List.of(List.of(5L, 2L), List.of(5L, 2L))),
                "each element once");
        assertFalse(Runner.matches(want, List.of(List.of(5L, 1L), List.of(6L, 2L))));
        assertFalse(Runner.matches(want, Map.of("a", 1L)), "not an array");
        // a wildcard takes any element, so matching has to try the other assignments
        Object wild = Map.of("$unordered", List.of(Map.of("$any", true), 1L));
        assertTrue(Runner.matches(wild, List.of(1L, 2L)));
    }

    /** One vector's run. */
    static final class Runner {
        private final Map<String, Object> vector;
        private final Session session;
        /** Everything the session queued since the last out step, whole frames. */
        private final List<byte[]> output = new ArrayList<>();
        /**
         * Decodes our output stream (its first frame is our hello, so the optional messages
         * decode only if the session announced their features).
         */
        private final WireDecoder outputDecoder = new WireDecoder(Wire.MAX_U32 > Integer.MAX_VALUE
                ? Integer.MAX_VALUE : (int) Wire.MAX_U32, Wire.MAX_DEPTH_CAP, Integer.MAX_VALUE,
                WireDecoder.FrameLimits.defaults(), List.copyOf(SUPPORTED_FEATURES), true, null);
        private final List<CompletableFuture<Object>> calls = new ArrayList<>();
        private int step;

        @SuppressWarnings("unchecked")
        Runner(Map<String, Object> vector) {
            this.vector = vector;
            Session.Role role = switch (String.valueOf(vector.get("role"))) {
                case "client" -> Session.Role.CLIENT;
                case "server" -> Session.Role.SERVER;
                default -> throw new IllegalArgumentException("role must be client or server");
            };
            Session.Limits d = Session.Limits.defaults();
            Map<String, Object> l = (Map<String, Object>) vector.getOrDefault("limits", Map.of());
            for (String k : l.keySet()) {
                if (!List.of("max_frame_size", "max_depth", "max_container_length",
                        "max_outstanding_calls", "max_running_calls").contains(k)) {
                    throw new IllegalArgumentException("unknown limit " + k);
                }
            }
            Session.Limits limits = new Session.Limits(
                    limit(l, "max_frame_size", d.maxFrameSize()),
                    limit(l, "max_depth", d.maxDepth()),
                    limit(l, "max_container_length", d.maxContainerLength()),
                    limit(l, "max_outstanding_calls", d.maxOutstandingCalls()),
                    limit(l, "max_running_calls", d.maxRunningCalls()));
            List<String> features = (List<String>) vector.getOrDefault("requires", List.of());
            List<String> missing = features.stream()
                    .filter(f -> !SUPPORTED_FEATURES.contains(f)).toList();
            Assumptions.assumeTrue(missing.isEmpty(),
                    "requires features this session does not implement: " + missing);
            this.session = Session.withFeatures(role, limits,
                    SessionFixtures.root((String) vector.getOrDefault("root", "none")),
                    Session.Dispatcher.synchronous(), features);
        }

        private static int limit(Map<String, Object> l, String name, int otherwise) {
            Object v = l.get(name);
            return v == null ? otherwise : ((Long) v).intValue();
        }

        private String where() {
            return vector.get("name") + ", step " + step;
        }

        /** Move what the session queued to {@link #output}; report a requested close as done. */
        private void settle() {
            for (byte[] body : session.drainOutbox()) {
                output.add(ByteBuffer.allocate(4 + body.length).putInt(body.length).put(body)
                        .array());
            }
            if (session.state() != Session.State.CLOSED) {
                session.closeOutcome().ifPresent(o -> session.connectionLost(o.reason()));
            }
        }

        private void feed(byte[] data) throws Exception {
            if (session.state() != Session.State.CLOSED) {
                session.receiveData(data);
            }
        }

        @SuppressWarnings("unchecked")
        void run() throws Exception {
            settle();
            List<Map<String, Object>> steps = (List<Map<String, Object>>) vector.get("steps");
            for (Map<String, Object> s : steps) {
                if (s.containsKey("in")) {
                    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
                    for (Object m : (List<Object>) s.get("in")) {
                        bytes.write(new WireEncoder().encodeFrame(
                                WireVectorsTestAccess.messageFromJson((Map<String, Object>) m)));
                    }
                    feed(bytes.toByteArray());
                } else if (s.containsKey("in_hex")) {
                    feed(HexFormat.of().parseHex((String) s.get("in_hex")));
                } else if (s.containsKey("out")) {
                    out((List<Object>) s.get("out"), false);
                } else if (s.containsKey("out_set")) {
                    out((List<Object>) s.get("out_set"), true);
                } else if (s.containsKey("out_hex")) {
                    List<String> got = output.stream().map(HexFormat.of()::formatHex).toList();
                    output.clear();
                    assertEquals(s.get("out_hex"), got, where());
                } else if (s.containsKey("closed")) {
                    closed(s);
                } else if (s.containsKey("call")) {
                    call((Map<String, Object>) s.get("call"));
                } else if (s.containsKey("result")) {
                    result((Map<String, Object>) s.get("result"));
                } else if (s.containsKey("cancel")) {
                    calls.get(((Long) s.get("cancel")).intValue()).cancel(false);
                } else if (s.containsKey("release")) {
                    assertEquals("all", s.get("release"), where());
                    session.releaseAllImports();
                    session.flushReleases();
                } else if (s.containsKey("goodbye")) {
                    session.close(Wire.NORMAL, "", null);
                } else if (s.containsKey("eof")) {
                    session.connectionLost(new EOFException("the transport reports the end"));
                } else {
                    fail(where() + ": unknown step " + s.keySet());
                }
                settle();
                step++;
            }
        }

        private void out(List<Object> want, boolean anyOrder) throws WireException {
            List<Message> got = new ArrayList<>();
            for (byte[] frame : output) {
                got.add(outputDecoder.decodeStream(frame));
            }
            output.clear();
            assertEquals(want.size(), got.size(), where() + ": frames queued " + got
                    + ", expected " + want);
            List<Message> left = new ArrayList<>(got);
            for (int i = 0; i < want.size(); i++) {
                Object w = want.get(i);
                if (anyOrder) {
                    Message match = left.stream().filter(m -> matches(w, messageJson(m)))
                            .findFirst().orElse(null);
                    assertNotNull(match, where() + ": nothing like " + w + " in " + got);
                    left.remove(match);
                } else {
                    assertTrue(matches(w, messageJson(got.get(i))), where() + ": frame " + i
                            + " is " + messageJson(got.get(i)) + ", expected " + w);
                }
            }
        }

        private void closed(Map<String, Object> s) {
            var outcome = session.closeOutcome();
            assertEquals(s.get("closed"), outcome.isPresent(), where() + ": close requested ("
                    + outcome.orElse(null) + ")");
            if (s.containsKey("goodbye_kind")) {
                assertEquals(s.get("goodbye_kind"), outcome.map(Session.CloseOutcome::kind)
                        .orElse(null), where() + ": goodbye kind");
            }
        }

        @SuppressWarnings("unchecked")
        private void call(Map<String, Object> c) {
            List<Object> args = (List<Object>) WireVectorsTestAccess.valueFromJson(
                    c.getOrDefault("args", List.of()));
            Map<String, Object> kwargs = new LinkedHashMap<>();
            ((Map<String, Object>) c.getOrDefault("kwargs", Map.of())).forEach(
                    (k, x) -> kwargs.put(k, WireVectorsTestAccess.valueFromJson(x)));
            calls.add(session.call((Long) c.getOrDefault("target", 0L), (String) c.get("method"),
                    args, kwargs, Boolean.TRUE.equals(c.get("one_way"))));
        }

        private void result(Map<String, Object> r) {
            CompletableFuture<Object> f = calls.get(((Long) r.get("call")).intValue());
            if (Boolean.TRUE.equals(r.get("pending"))) {
                assertFalse(f.isDone(), where() + ": the call is not pending");
                return;
            }
            assertTrue(f.isDone(), where() + ": the call is still pending");
            if (r.containsKey("error_kind")) {
                Throwable e = null;
                try {
                    Object v = f.join();
                    fail(where() + ": the call succeeded with " + v);
                } catch (CancellationException ex) {
                    e = ex;
                } catch (CompletionException ex) {
                    e = ex.getCause();
                }
                assertEquals(r.get("error_kind"), kindOf(e), where() + ": " + e);
                return;
            }
            Object value = f.join();
            if (value instanceof RemoteStream stream) { // streams_session.json: take what is buffered
                Map<String, Object> now = new LinkedHashMap<>();
                now.put("items", valueJson(stream.takeBuffered()));
                Throwable failure = stream.endingFailure();
                now.put("end", !stream.isEnded() ? null : failure == null ? "done" : kindOf(failure));
                value = Map.of("$stream", now);
                assertTrue(matches(r.get("value"), value), where() + ": result " + value
                        + ", expected " + r.get("value"));
                return;
            }
            assertTrue(matches(r.get("value"), valueJson(value)), where() + ": result "
                    + valueJson(value) + ", expected " + r.get("value"));
        }

        private static String kindOf(Throwable e) {
            if (e instanceof RemoteException re) {
                return re.kind();
            }
            if (e instanceof ConnectionLostException) {
                return Wire.DISCONNECTED;
            }
            if (e instanceof CancellationException) {
                return Wire.CANCELLED;
            }
            return "not a failure kind: " + e;
        }

        // --- the JSON scheme of wire.json, with {"$any": true}, {"$unordered": [...]} and
        // {"$proxy": id} ------------------------------------------------------------------------

        /** Does actual (already in the JSON scheme) match the expected JSON? */
        static boolean matches(Object want, Object actual) {
            if (want instanceof Map<?, ?> w && w.size() == 1 && w.containsKey("$any")) {
                return true;
            }
            if (want instanceof Map<?, ?> w && w.size() == 1 && w.containsKey("$unordered")) {
                if (!(w.get("$unordered") instanceof List<?> elements)) {
                    throw new IllegalArgumentException("$unordered takes an array, not "
                            + w.get("$unordered"));
                }
                return actual instanceof List<?> a && a.size() == elements.size()
                        && matchesInSomeOrder(elements, new ArrayList<>(a));
            }
            if (want instanceof Map<?, ?> w && actual instanceof Map<?, ?> a) {
                if (!new ArrayList<>(w.keySet()).equals(new ArrayList<>(a.keySet()))) {
                    return false;
                }
                return w.keySet().stream().allMatch(k -> matches(w.get(k), a.get(k)));
            }
            if (want instanceof List<?> w && actual instanceof List<?> a) {
                if (w.size() != a.size()) {
                    return false;
                }
                for (int i = 0; i < w.size(); i++) {
                    if (!matches(w.get(i), a.get(i))) {
                        return false;
                    }
                }
                return true;
            }
            return want == null ? actual == null
                    : want.equals(actual) && want.getClass() == actual.getClass();
        }

        /**
         * Can the elements of {@code left} be matched one to one by {@code want}'s, in any order?
         * Backtracks, since a wildcard may match several elements.
         */
        private static boolean matchesInSomeOrder(List<?> want, List<Object> left) {
            if (want.isEmpty()) {
                return left.isEmpty();
            }
            Object first = want.get(0);
            List<?> rest = want.subList(1, want.size());
            for (int i = 0; i < left.size(); i++) {
                if (matches(first, left.get(i))) {
                    Object taken = left.remove(i);
                    if (matchesInSomeOrder(rest, left)) {
                        return true;
                    }
                    left.add(i, taken);
                }
            }
            return false;
        }

        /** A message in the JSON scheme (section 13). */
        private static Map<String, Object> messageJson(Message m) {
            Map<String, Object> out = new LinkedHashMap<>();
            String type = snake(m.getClass().getSimpleName().replace("Message", ""))
                    .substring(1); // CacheUpdate: cache_update
            out.put("type", type);
            for (RecordComponent c : m.getClass().getRecordComponents()) {
                Object v;
                try {
                    v = c.getAccessor().invoke(m);
                } catch (ReflectiveOperationException ex) {
                    throw new AssertionError(ex);
                }
                if (m instanceof Decrefs && v instanceof Map<?, ?> releases) {
                    List<Object> pairs = new ArrayList<>(); // [[object_id, count], ...]
                    releases.forEach((id, count) -> pairs.add(Arrays.asList(id, count)));
                    out.put("releases", pairs);
                } else if (m instanceof org.pbroker.wire.Call && v == null
                        && c.getName().equals("options")) {
                    continue; // no field 8 (section 18): the member is absent
                } else if (v instanceof FailureInfo f) {
                    out.put("failure", Arrays.asList(f.kind(), f.typeName(), f.message(),
                            f.traceback()));
                } else {
                    out.put(snake(c.getName()), valueJson(v));
                }
            }
            return out;
        }

        /** A decoded value in the JSON scheme; proxies are {"$proxy": id}. */
        private static Object valueJson(Object v) {
            if (v instanceof RemoteReference ref) {
                return Map.of("$proxy", ref.objectId());
            }
            if (v instanceof SessionFixtures.Board board) { // cache_session.json's holder fixture
                return Map.of("$cache", Arrays.asList(board.cacheId, valueJson(board.state)));
            }
            if (v instanceof ExportedRef r) {
                return Map.of("$ref_sender", r.objectId());
            }
            if (v instanceof org.pbroker.wire.StreamRef s) {
                return Map.of("$stream", Arrays.asList(s.streamId(), s.windowItems(),
                        s.windowBytes()));
            }
            if (v instanceof ReturnedRef r) {
                return Map.of("$ref_receiver", r.objectId());
            }
            if (v instanceof CopyState c) {
                return Map.of("$copy", Arrays.asList(c.typeName(), valueJson(c.state())));
            }
            if (v instanceof FailureInfo f) {
                return Map.of("$failure", Arrays.asList(f.kind(), f.typeName(), f.message(),
                        f.traceback()));
            }
            if (v instanceof RemoteException e) {
                return valueJson(e.toFailureInfo());
            }
            if (v instanceof byte[] b) {
                return Map.of("$bytes", HexFormat.of().formatHex(b));
            }
            if (v instanceof Double d) {
                return Map.of("$float", d.isNaN() || d.isInfinite() ? d.toString()
                        : Double.toString(d));
            }
            if (v instanceof List<?> list) {
                List<Object> out = new ArrayList<>();
                list.forEach(x -> out.add(valueJson(x)));
                return out;
            }
            if (v instanceof Map<?, ?> map) {
                boolean plain = map.keySet().stream().allMatch(k -> k instanceof String)
                        && !(map.size() == 1 && ((String) map.keySet().iterator().next())
                                .startsWith("$"));
                if (plain) {
                    Map<Object, Object> out = new LinkedHashMap<>();
                    map.forEach((k, x) -> out.put(k, valueJson(x)));
                    return out;
                }
                List<Object> pairs = new ArrayList<>();
                map.forEach((k, x) -> pairs.add(Arrays.asList(valueJson(k), valueJson(x))));
                return Map.of("$map", pairs);
            }
            return v;
        }

        private static String snake(String camel) {
            return camel.replaceAll("([A-Z])", "_$1").toLowerCase(Locale.ROOT);
        }
    }
}
