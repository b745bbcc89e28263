package org.pbroker.wire;

import java.io.IOException;
import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.function.Function;
import org.msgpack.core.MessageFormat;
import org.msgpack.core.MessagePack;
import org.msgpack.core.MessagePackException;
import org.msgpack.core.MessageUnpacker;
import org.msgpack.core.buffer.ArrayBufferInput;
import org.msgpack.value.ValueType;

/**
 * Frame bodies to messages, enforcing our limits while decoding (docs/PROTOCOL.md).
 *
 * <p>Decoded values are: {@code null}, {@link Boolean}, {@link Long} (or {@link BigInteger} above
 * {@link Long#MAX_VALUE}), {@link Double} (float32 too), {@link String}, {@code byte[]},
 * {@link List}, {@link Map} (insertion-ordered) and ext values, each passed through the
 * {@code resolve} hook ({@link ExportedRef}, {@link ReturnedRef}, {@link CopyState},
 * {@link FailureInfo} by default).
 *
 * <p>Decoding runs the same two passes as the Python implementation, so the same bad input gives
 * the same error class: first the msgpack structure (container lengths, valid msgpack, UTF-8),
 * then a walk over the message's fields (arity, nesting depth, map keys, ext values, field
 * values). With {@code expectHello} (the default for a connection) the first body must be a
 * pbroker hello of our version, and no hello may follow.
 *
 * <p>Not thread-safe: one decoder per connection, used by its reader thread.
 */
public final class WireDecoder {
    /** Nesting at which the structural pass gives up (msgpack-python's unpacker stack). */
    private static final int STRUCTURE_DEPTH_LIMIT = 1024;

    private final int maxFrameSize;
    private final int maxDepth;
    private final int maxContainerLength;
    private final FrameLimits frameLimits;
    private final Function<WireValue, Object> resolve;
    private boolean expectHello;
    private List<String> features;
    private Set<String> negotiated;
    // Counts of the frame being decoded (section 8, per-frame limits).
    private long items;
    private long containers;
    private long extValues;
    private long payloadBytes;

    /**
     * The per-frame limits of docs/PROTOCOL.md section 8: the same for every version-1 peer and
     * not announced. Raise them to accept more from a trusted peer; lowering them is for tests.
     *
     * @param maxItems most elements of all arrays and maps in one frame (2 per map entry)
     * @param maxContainers most arrays and maps in one frame
     * @param maxExtValues most ext values in one frame
     */
    public record FrameLimits(int maxItems, int maxContainers, int maxExtValues) {
        /** Validates the limits. */
        public FrameLimits {
            if (maxItems < 1 || maxContainers < 1 || maxExtValues < 1) {
                throw new IllegalArgumentException("per-frame limits must be positive");
            }
        }

        /** @return the protocol's per-frame limits */
        public static FrameLimits defaults() {
            return new FrameLimits(Wire.DEFAULT_MAX_ITEMS_PER_FRAME,
                    Wire.DEFAULT_MAX_CONTAINERS_PER_FRAME, Wire.DEFAULT_MAX_EXT_VALUES_PER_FRAME);
        }
    }

    /** A raw ext value from the structural pass, converted by the walk. */
    private record RawExt(byte code, byte[] data) {}

    /**
     * A decoder with the default limits that expects a hello first and leaves ext values as they
     * are.
     */
    public WireDecoder() {
        this(Wire.DEFAULT_MAX_FRAME_SIZE, Wire.DEFAULT_MAX_DEPTH, Wire.DEFAULT_MAX_CONTAINER_LENGTH,
                true, null);
    }

    /**
     * @param maxFrameSize largest frame body accepted, at least 1
     * @param maxDepth deepest nesting accepted, 2..{@link Wire#MAX_DEPTH_CAP}
     * @param maxContainerLength longest array or map accepted, at least 1
     * @param expectHello whether the first message must be a hello
     * @param resolve maps each decoded wire value to what takes its place (innermost first); null
     *     keeps the values
     */
    public WireDecoder(int maxFrameSize, int maxDepth, int maxContainerLength,
            boolean expectHello, Function<WireValue, Object> resolve) {
        this(maxFrameSize, maxDepth, maxContainerLength, FrameLimits.defaults(), List.of(),
                expectHello, resolve);
    }

    /**
     * @param maxFrameSize largest frame body accepted, at least 1
     * @param maxDepth deepest nesting accepted, 2..{@link Wire#MAX_DEPTH_CAP}
     * @param maxContainerLength longest array or map accepted, at least 1
     * @param frameLimits the per-frame limits
     * @param features the optional features we implement and announce; once the peer's hello
     *     arrives only those both hellos named decode (without {@code expectHello}: these are
     *     taken as negotiated)
     * @param expectHello whether the first message must be a hello
     * @param resolve maps each decoded wire value to what takes its place; null keeps them
     */
    public WireDecoder(int maxFrameSize, int maxDepth, int maxContainerLength,
            FrameLimits frameLimits, List<String> features, boolean expectHello,
            Function<WireValue, Object> resolve) {
        if (maxFrameSize < 1) {
            throw new IllegalArgumentException("max_frame_size must be positive");
        }
        if (maxDepth < 2 || maxDepth > Wire.MAX_DEPTH_CAP) {
            throw new IllegalArgumentException(
                    "max_depth must be in 2.." + Wire.MAX_DEPTH_CAP + ", got " + maxDepth);
        }
        if (maxContainerLength < 1) {
            throw new IllegalArgumentException("max_container_length must be positive");
        }
        this.maxFrameSize = maxFrameSize;
        this.maxDepth = maxDepth;
        this.maxContainerLength = maxContainerLength;
        this.frameLimits = Objects.requireNonNull(frameLimits, "frameLimits");
        this.features = List.copyOf(features);
        this.negotiated = expectHello ? Set.of() : Set.copyOf(this.features);
        this.expectHello = expectHello;
        this.resolve = resolve;
    }

    /** @return the per-frame limits */
    public FrameLimits frameLimits() {
        return frameLimits;
    }

    /** @return the features both hellos named (none before the peer's hello) */
    public Set<String> negotiated() {
        return negotiated;
    }

    /** @return our hello, announcing our limits and the features we were made with */
    public Hello hello() {
        return new Hello(Wire.PROTOCOL_VERSION, maxFrameSize, maxDepth, maxContainerLength,
                features);
    }

    /** @return the largest frame body this decoder accepts */
    public int maxFrameSize() {
        return maxFrameSize;
    }

    /** @return the deepest nesting this decoder accepts */
    public int maxDepth() {
        return maxDepth;
    }

    /** @return the longest array or map this decoder accepts */
    public int maxContainerLength() {
        return maxContainerLength;
    }

    /**
     * Our hello, announcing the limits this decoder enforces.
     *
     * @param features optional extensions we support (they replace those given at construction)
     * @return the hello to send
     */
    public Hello hello(List<String> features) {
        this.features = List.copyOf(features);
        if (!expectHello) {
            negotiate(this.features);
        }
        return hello();
    }

    private void negotiate(List<String> theirs) {
        Set<String> both = new java.util.LinkedHashSet<>(features);
        both.retainAll(theirs);
        negotiated = Set.copyOf(both);
    }

    /**
     * Decode exactly one frame (4-byte big-endian length header, then the body) from a complete
     * byte stream.
     *
     * @param stream the whole stream
     * @return the message
     * @throws FrameTooLargeException if the header announces more than max_frame_size
     * @throws TruncatedFrameException if the stream ends inside the frame (or holds no frame)
     * @throws MalformedMessageException if a second frame follows
     * @throws WireException for everything {@link #decodeBody} refuses
     */
    public Message decodeStream(byte[] stream) throws WireException {
        List<Message> messages = decodeAll(new java.io.ByteArrayInputStream(stream));
        if (messages.isEmpty()) {
            throw new TruncatedFrameException("no frame in the data");
        }
        if (messages.size() > 1) {
            throw new MalformedMessageException("more than one frame in the data");
        }
        return messages.get(0);
    }

    /**
     * Read frames from {@code in} until it ends cleanly and decode each, in order (the procedure
     * of the test vectors, and of a connection's reader).
     *
     * @param in the stream
     * @return every message
     * @throws WireException at the first bad frame
     */
    public List<Message> decodeAll(java.io.InputStream in) throws WireException {
        FrameReader frames = new FrameReader(in, () -> maxFrameSize);
        List<Message> out = new ArrayList<>();
        try {
            for (byte[] body; (body = frames.next()) != null; ) {
                out.add(decodeBody(body));
            }
        } catch (WireException e) {
            throw e;
        } catch (IOException e) {
            throw new TruncatedFrameException("reading failed: " + e.getMessage(), e);
        }
        return out;
    }

    /**
     * Decode one frame body (without its length header).
     *
     * @param body the body bytes
     * @return the message
     * @throws WireException naming what is wrong ({@link RemoteProtocolException} subclasses);
     *     exceptions of the resolve hook propagate unchanged
     */
    public Message decodeBody(byte[] body) throws WireException {
        if (body.length > maxFrameSize) {
            throw new FrameTooLargeException(
                    "frame of " + body.length + " bytes; the limit is " + maxFrameSize);
        }
        items = containers = extValues = payloadBytes = 0;
        Object top = unpack(body);
        if (!(top instanceof List<?> fields) || fields.isEmpty()) {
            throw new MalformedMessageException("a message body must be a non-empty array");
        }
        if (!(fields.get(0) instanceof Long mtypeBoxed)) {
            throw new MalformedMessageException(
                    "message type must be an int, not " + typeName(fields.get(0)));
        }
        long mtype = mtypeBoxed;
        @SuppressWarnings("unchecked")
        List<Object> f = (List<Object>) fields;
        if (expectHello) {
            if (mtype == Wire.GOODBYE) {
                return goodbye(f); // a peer refusing us says why instead of hello (section 5)
            }
            if (mtype != Wire.HELLO) {
                throw new HandshakeException(
                        "expected hello as the first message, got message type " + mtype);
            }
            Hello hello = decodeHello(f);
            expectHello = false;
            negotiate(hello.features());
            return hello;
        }
        switch ((int) Math.max(Math.min(mtype, Integer.MAX_VALUE), Integer.MIN_VALUE)) {
            case Wire.GOODBYE:
                return goodbye(f);
            case Wire.CALL:
                return call(f);
            case Wire.ANSWER:
                return answer(f);
            case Wire.ERROR:
                return error(f);
            case Wire.CANCEL:
                return cancel(f);
            case Wire.DECREF:
                return decref(f);
            case Wire.PING, Wire.PONG:
                if (negotiated.contains(Wire.FEATURE_HEARTBEAT)) {
                    return mtype == Wire.PING ? new Ping(nonce(f, "ping")) : new Pong(nonce(f, "pong"));
                }
                throw new UnknownMessageTypeException("message type " + mtype
                        + " needs the feature \"heartbeat\" in both hellos");
            case Wire.DECREFS:
                if (negotiated.contains(Wire.FEATURE_DECREFS)) {
                    return decrefs(f);
                }
                throw new UnknownMessageTypeException("message type " + mtype
                        + " needs the feature \"decrefs\" in both hellos");
            case Wire.FINISH:
                if (negotiated.contains(Wire.FEATURE_PIPELINING)) {
                    return finish(f);
                }
                throw new UnknownMessageTypeException("message type " + mtype
                        + " needs the feature \"pipelining\" in both hellos");
            case Wire.CACHE_UPDATE, Wire.CACHE_RELEASE:
                if (negotiated.contains(Wire.FEATURE_CACHE)) {
                    return mtype == Wire.CACHE_UPDATE ? cacheUpdate(f) : cacheRelease(f);
                }
                throw new UnknownMessageTypeException("message type " + mtype
                        + " needs the feature \"cache\" in both hellos");
            case Wire.STREAM_ITEMS, Wire.STREAM_END, Wire.STREAM_CREDIT:
                if (negotiated.contains(Wire.FEATURE_STREAMS)) {
                    return mtype == Wire.STREAM_ITEMS ? streamItems(f)
                            : mtype == Wire.STREAM_END ? streamEnd(f) : streamCredit(f);
                }
                throw new UnknownMessageTypeException("message type " + mtype
                        + " needs the feature \"streams\" in both hellos");
            case Wire.HELLO:
                throw new HandshakeException("hello received after the handshake");
            default:
                throw new UnknownMessageTypeException(
                        "message type " + mtype + " is not implemented");
        }
    }

    // --- messages ------------------------------------------------------------------------------

    private Hello decodeHello(List<Object> f) throws WireException {
        if (f.size() < 3 || !Wire.PROTOCOL_NAME.equals(f.get(1))) {
            throw new HandshakeException("the peer does not speak the pbroker protocol");
        }
        if (!(f.get(2) instanceof Long v && v == Wire.PROTOCOL_VERSION)) {
            throw new VersionMismatchException(f.get(2));
        }
        if (f.size() != 7 || !(f.get(6) instanceof List<?>)) {
            throw new HandshakeException("malformed hello: expected [1, name, version, "
                    + "max_frame_size, max_depth, max_container_length, features]");
        }
        try {
            @SuppressWarnings("unchecked")
            List<String> features = (List<String>) f.get(6);
            return new Hello(id(f.get(2), "version"), u32(f.get(3), "max_frame_size"),
                    u32(f.get(4), "max_depth"), u32(f.get(5), "max_container_length"), features);
        } catch (IllegalArgumentException e) {
            throw new HandshakeException("malformed hello: " + e.getMessage(), e);
        }
    }

    private Goodbye goodbye(List<Object> f) throws WireException {
        arity(f, 3, "goodbye");
        try {
            return new Goodbye(str(f.get(1), "kind"), str(f.get(2), "message"));
        } catch (IllegalArgumentException e) {
            throw malformed("Goodbye", e);
        }
    }

    /** A call's (or cache update's) positional and keyword arguments, decoded. */
    private record Arguments(List<Object> args, Map<String, Object> kwargs) {
    }

    /**
     * The args array at {@code at} and the kwargs map after it, their values converted; a kwargs
     * key that is not a str is an IllegalArgumentException (the caller names the message).
     */
    private Arguments arguments(List<Object> f, int at, String what) throws WireException {
        if (!(f.get(at) instanceof List<?>)) {
            throw new MalformedMessageException(what + " args must be an array");
        }
        if (!(f.get(at + 1) instanceof Map<?, ?>)) {
            throw new MalformedMessageException(what + " kwargs must be a map");
        }
        @SuppressWarnings("unchecked")
        List<Object> args = (List<Object>) f.get(at);
        @SuppressWarnings("unchecked")
        Map<Object, Object> kwargs = (Map<Object, Object>) f.get(at + 1);
        if (!args.isEmpty()) {
            convert(args, 2);
        }
        if (!kwargs.isEmpty()) {
            convert(kwargs, 2);
        }
        for (Object key : kwargs.keySet()) {
            if (!(key instanceof String)) {
                throw new IllegalArgumentException("kwargs keys must be str");
            }
        }
        @SuppressWarnings("unchecked")
        Map<String, Object> kw = (Map<String, Object>) (Map<?, ?>) kwargs;
        return new Arguments(args, kw);
    }

    private Call call(List<Object> f) throws WireException {
        Map<String, Object> options = null;
        if (f.size() == 8 && negotiated.contains(Wire.FEATURE_CALL_OPTIONS)) {
            options = callOptions(f.remove(7)); // section 18.1
        }
        arity(f, 7, "call");
        try {
            Arguments a = arguments(f, 4, "call");
            return new Call(id(f.get(1), "request_id"), id(f.get(2), "target"),
                    str(f.get(3), "method"), a.args(), a.kwargs(), u32(f.get(6), "flags"), options);
        } catch (IllegalArgumentException e) {
            throw malformed("Call", e);
        }
    }

    /** Field 8's shape (section 18.1): a map of scalars and maps of scalars, str keys at the top. */
    @SuppressWarnings("unchecked")
    private static Map<String, Object> callOptions(Object o) throws WireException {
        if (!(o instanceof Map<?, ?> m)) {
            throw new MalformedMessageException("call options must be a map");
        }
        for (Map.Entry<?, ?> e : m.entrySet()) {
            Object v = e.getValue();
            boolean ok = isOptionScalar(v);
            if (v instanceof Map<?, ?> inner) {
                ok = true;
                for (Object x : inner.values()) {
                    ok &= isOptionScalar(x);
                }
            }
            if (!ok || !(e.getKey() instanceof String)) {
                throw new MalformedMessageException(
                        "call options must be a map of scalars and maps of scalars");
            }
        }
        return (Map<String, Object>) m;
    }

    private static boolean isOptionScalar(Object v) {
        return v == null || v instanceof Boolean || v instanceof Number || v instanceof String
                || v instanceof byte[];
    }

    private Answer answer(List<Object> f) throws WireException {
        arity(f, 3, "answer");
        Object value = convert(f.get(2), 2);
        try {
            return new Answer(id(f.get(1), "request_id"), value);
        } catch (IllegalArgumentException e) {
            throw malformed("Answer", e);
        }
    }

    private ErrorMessage error(List<Object> f) throws WireException {
        arity(f, 6, "error");
        FailureInfo failure = failure(f.get(2), f.get(3), f.get(4), f.get(5));
        try {
            return new ErrorMessage(id(f.get(1), "request_id"), failure);
        } catch (IllegalArgumentException e) {
            throw malformed("Error", e);
        }
    }

    private Cancel cancel(List<Object> f) throws WireException {
        arity(f, 2, "cancel");
        try {
            return new Cancel(id(f.get(1), "request_id"));
        } catch (IllegalArgumentException e) {
            throw malformed("Cancel", e);
        }
    }

    private Decref decref(List<Object> f) throws WireException {
        arity(f, 3, "decref");
        try {
            return new Decref(id(f.get(1), "object_id"), id(f.get(2), "count"));
        } catch (IllegalArgumentException e) {
            throw malformed("Decref", e);
        }
    }

    private CacheUpdate cacheUpdate(List<Object> f) throws WireException {
        arity(f, 5, "cache_update");
        try {
            Arguments a = arguments(f, 3, "cache_update");
            return new CacheUpdate(id(f.get(1), "cache_id"), str(f.get(2), "method"), a.args(), a.kwargs());
        } catch (IllegalArgumentException e) {
            throw malformed("CacheUpdate", e);
        }
    }

    private CacheRelease cacheRelease(List<Object> f) throws WireException {
        arity(f, 3, "cache_release");
        try {
            return new CacheRelease(id(f.get(1), "cache_id"), id(f.get(2), "count"));
        } catch (IllegalArgumentException e) {
            throw malformed("CacheRelease", e);
        }
    }

    private StreamItems streamItems(List<Object> f) throws WireException {
        arity(f, 3, "stream_items");
        if (!(f.get(2) instanceof List<?>)) {
            throw new MalformedMessageException("stream_items items must be an array");
        }
        @SuppressWarnings("unchecked")
        List<Object> items = (List<Object>) f.get(2);
        if (!items.isEmpty()) {
            convert(items, 2);
        }
        try {
            return new StreamItems(id(f.get(1), "stream_id"), items);
        } catch (IllegalArgumentException e) {
            throw malformed("StreamItems", e);
        }
    }

    private StreamEnd streamEnd(List<Object> f) throws WireException {
        arity(f, 3, "stream_end");
        Object failure = f.get(2);
        if (failure != null) {
            if (!(failure instanceof RawExt ext) || ext.code != Wire.EXT_FAILURE) {
                throw new MalformedMessageException("stream_end failure must be a failure ext"
                        + " value or nil, not " + typeName(failure));
            }
            Object payload = unpack(ext.data);
            if (!(payload instanceof List<?> p) || p.size() != 4) {
                throw new MalformedMessageException(
                        "a failure's payload must be [kind, type_name, message, traceback]");
            }
            failure = failure(p.get(0), p.get(1), p.get(2), p.get(3));
        }
        try {
            return new StreamEnd(id(f.get(1), "stream_id"), (FailureInfo) failure);
        } catch (IllegalArgumentException e) {
            throw malformed("StreamEnd", e);
        }
    }

    private static StreamCredit streamCredit(List<Object> f) throws WireException {
        arity(f, 4, "stream_credit");
        try {
            return new StreamCredit(id(f.get(1), "stream_id"), id(f.get(2), "items"),
                    id(f.get(3), "bytes"));
        } catch (IllegalArgumentException e) {
            throw malformed("StreamCredit", e);
        }
    }

    private static long nonce(List<Object> f, String name) throws WireException {
        arity(f, 2, name);
        try {
            return id(f.get(1), "nonce");
        } catch (IllegalArgumentException e) {
            throw malformed(name, e);
        }
    }

    private Finish finish(List<Object> f) throws WireException {
        arity(f, 2, "finish");
        try {
            if (!(f.get(1) instanceof List<?> ids)) {
                throw new IllegalArgumentException("question ids must be an array, not "
                        + typeName(f.get(1)));
            }
            List<Long> questionIds = new ArrayList<>(ids.size());
            for (Object id : ids) {
                questionIds.add(id(id, "question_id"));
            }
            return new Finish(questionIds);
        } catch (IllegalArgumentException e) {
            throw malformed("Finish", e);
        }
    }

    private Decrefs decrefs(List<Object> f) throws WireException {
        arity(f, 2, "decrefs");
        try {
            if (!(f.get(1) instanceof List<?> flat)) {
                throw new IllegalArgumentException("releases must be an array, not "
                        + typeName(f.get(1)));
            }
            if (flat.isEmpty() || flat.size() % 2 != 0) {
                throw new IllegalArgumentException("releases must be a non-empty array of"
                        + " (object_id, count) pairs, got " + flat.size() + " values");
            }
            Map<Long, Long> releases = new LinkedHashMap<>();
            for (int i = 0; i < flat.size(); i += 2) {
                long objectId = id(flat.get(i), "object_id");
                if (releases.put(objectId, id(flat.get(i + 1), "count")) != null) {
                    throw new IllegalArgumentException("object id " + objectId + " appears twice");
                }
            }
            return new Decrefs(releases);
        } catch (IllegalArgumentException e) {
            throw malformed("Decrefs", e);
        }
    }

    private static FailureInfo failure(Object kind, Object typeName, Object message,
            Object traceback) throws MalformedMessageException {
        try {
            if (traceback != null && !(traceback instanceof String)) {
                throw new IllegalArgumentException(
                        "traceback must be a str or nil, not " + typeName(traceback));
            }
            return new FailureInfo(str(kind, "kind"), str(typeName, "type_name"),
                    str(message, "message"), (String) traceback);
        } catch (IllegalArgumentException e) {
            throw malformed("FailureInfo", e);
        }
    }

    // --- the walk: depth, map keys, ext values ----------------------------------------------

    /** Check and convert a value found at {@code level}; returns its replacement. */
    private Object convert(Object obj, int level) throws WireException {
        if (obj instanceof List<?> list) {
            if (level > maxDepth) {
                throw new NestingTooDeepException("nesting deeper than " + maxDepth);
            }
            @SuppressWarnings("unchecked")
            List<Object> items = (List<Object>) list;
            for (int i = 0; i < items.size(); i++) {
                Object item = items.get(i);
                if (!isScalar(item)) {
                    items.set(i, convert(item, level + 1));
                }
            }
            return items;
        }
        if (obj instanceof Map<?, ?> map) {
            if (level > maxDepth) {
                throw new NestingTooDeepException("nesting deeper than " + maxDepth);
            }
            for (Object key : map.keySet()) {
                if (!isScalar(key)) {
                    throw new MalformedMessageException(
                            "map keys must be nil, bool, int, float, str or bin");
                }
            }
            @SuppressWarnings("unchecked")
            Map<Object, Object> entries = (Map<Object, Object>) map;
            for (Map.Entry<Object, Object> e : entries.entrySet()) {
                if (!isScalar(e.getValue())) {
                    e.setValue(convert(e.getValue(), level + 1));
                }
            }
            return entries;
        }
        if (obj instanceof RawExt ext) {
            return ext(ext, level);
        }
        return obj;
    }

    private Object ext(RawExt ext, int level) throws WireException {
        if (level > maxDepth) {
            throw new NestingTooDeepException("nesting deeper than " + maxDepth);
        }
        if ((ext.code < Wire.EXT_SENDER_REF || ext.code > Wire.EXT_FAILURE)
                && !(ext.code == Wire.EXT_CACHE_REF && negotiated.contains(Wire.FEATURE_CACHE))
                && !(ext.code == Wire.EXT_STREAM && negotiated.contains(Wire.FEATURE_STREAMS))) {
            throw new UnknownExtCodeException("ext code " + ext.code + " is not implemented");
        }
        byte[] data = ext.data;
        payloadBytes += data.length;
        if (payloadBytes > maxFrameSize) {
            throw tooComplex();
        }
        WireValue value;
        switch (ext.code) {
            case Wire.EXT_SENDER_REF, Wire.EXT_RECEIVER_REF -> {
                Object objectId = (data.length == 1 && data[0] >= 0) ? (Object) (long) data[0]
                        : unpack(data);
                try {
                    long id = id(objectId, "object_id");
                    value = ext.code == Wire.EXT_SENDER_REF ? new ExportedRef(id)
                            : new ReturnedRef(id);
                } catch (IllegalArgumentException e) {
                    throw malformed(ext.code == Wire.EXT_SENDER_REF ? "ExportedRef"
                            : "ReturnedRef", e);
                }
            }
            case Wire.EXT_COPY -> {
                Object payload = unpack(data);
                if (!(payload instanceof List<?> p) || p.size() != 2) {
                    throw new MalformedMessageException(
                            "a copy's payload must be [type_name, state]");
                }
                Object state = p.get(1);
                if (!isScalar(state)) {
                    state = convert(state, level + 1);
                }
                try {
                    value = new CopyState(str(p.get(0), "type_name"), state);
                } catch (IllegalArgumentException e) {
                    throw malformed("CopyState", e);
                }
            }
            case Wire.EXT_FAILURE -> {
                Object payload = unpack(data);
                if (!(payload instanceof List<?> p) || p.size() != 4) {
                    throw new MalformedMessageException(
                            "a failure's payload must be [kind, type_name, message, traceback]");
                }
                value = failure(p.get(0), p.get(1), p.get(2), p.get(3));
            }
            case Wire.EXT_CACHE_REF -> value = cacheRef(unpack(data), level);
            case Wire.EXT_STREAM -> value = streamRef(unpack(data));
            default -> throw new UnknownExtCodeException(
                    "ext code " + ext.code + " is not implemented");
        }
        return resolve == null ? value : resolve.apply(value);
    }

    /** Ext 7 (section 17.1): {@code [stream_id, window_items, window_bytes]}, all at least 1. */
    private static StreamRef streamRef(Object payload) throws WireException {
        if (!(payload instanceof List<?> p) || p.size() != 3) {
            throw new MalformedMessageException(
                    "a stream's payload must be [stream_id, window_items, window_bytes]");
        }
        try {
            return new StreamRef(id(p.get(0), "stream_id"), id(p.get(1), "window_items"),
                    id(p.get(2), "window_bytes"));
        } catch (IllegalArgumentException e) {
            throw malformed("StreamRef", e);
        }
    }

    /** Ext 6 (section 16.1): {@code [cache_id]}, or {@code [cache_id, type_name, state]}. */
    private CacheRef cacheRef(Object payload, int level) throws WireException {
        if (!(payload instanceof List<?> p) || (p.size() != 1 && p.size() != 3)) {
            throw new MalformedMessageException(
                    "a cache ref's payload must be [cache_id] or [cache_id, type_name, state]");
        }
        try {
            long cacheId = id(p.get(0), "cache_id");
            if (p.size() == 1) {
                return new CacheRef(cacheId);
            }
            Object state = p.get(2);
            if (!isScalar(state)) {
                state = convert(state, level + 1);
            }
            return new CacheRef(cacheId, str(p.get(1), "type_name"), state);
        } catch (IllegalArgumentException e) {
            throw malformed("CacheRef", e);
        }
    }

    // --- the structural pass: msgpack to plain Java values ------------------------------------

    private Object unpack(byte[] data) throws WireException {
        MessageUnpacker u = MessagePack.newDefaultUnpacker(new ArrayBufferInput(data));
        try {
            Object value = read(u, data.length, 1);
            if (u.hasNext()) {
                throw new MalformedMessageException("not a msgpack value: extra data");
            }
            return value;
        } catch (WireException e) {
            throw e;
        } catch (MessagePackException | IOException | IllegalStateException e) {
            String text = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
            throw new MalformedMessageException("not a msgpack value: " + text, e);
        }
    }

    private Object read(MessageUnpacker u, int size, int depth) throws IOException {
        if (!u.hasNext()) {
            throw new MalformedMessageException("not a msgpack value: incomplete input");
        }
        MessageFormat format = u.getNextFormat();
        ValueType type = format.getValueType();
        switch (type) {
            case NIL:
                u.unpackNil();
                return null;
            case BOOLEAN:
                return u.unpackBoolean();
            case INTEGER:
                if (format == MessageFormat.UINT64) {
                    BigInteger big = u.unpackBigInteger();
                    return big.bitLength() < 64 ? (Object) big.longValue() : big;
                }
                return u.unpackLong();
            case FLOAT:
                return u.unpackDouble();
            case STRING: {
                byte[] raw = payload(u, u.unpackRawStringHeader(), size);
                try {
                    return StandardCharsets.UTF_8.newDecoder()
                            .onMalformedInput(CodingErrorAction.REPORT)
                            .onUnmappableCharacter(CodingErrorAction.REPORT)
                            .decode(ByteBuffer.wrap(raw)).toString();
                } catch (CharacterCodingException e) {
                    throw new MalformedMessageException("not a msgpack value: invalid UTF-8", e);
                }
            }
            case BINARY:
                return payload(u, u.unpackBinaryHeader(), size);
            case ARRAY: {
                long n = arrayHeader(u, format);
                checkStructure(n, depth, size);
                List<Object> list = new ArrayList<>((int) Math.min(n, size));
                for (long i = 0; i < n; i++) {
                    list.add(read(u, size, depth + 1));
                }
                counted(n); // at the container's end, as the Python decoder's list_hook
                return list;
            }
            case MAP: {
                long n = mapHeader(u, format);
                checkStructure(n, depth, size);
                Map<Object, Object> map = new LinkedHashMap<>((int) Math.min(n, size));
                for (long i = 0; i < n; i++) {
                    ValueType keyType = u.hasNext() ? u.getNextFormat().getValueType() : null;
                    if (keyType == ValueType.ARRAY || keyType == ValueType.MAP) {
                        throw new MalformedMessageException(
                                "not a msgpack value: unhashable map key (" + keyType + ")");
                    }
                    Object key = read(u, size, depth + 1);
                    map.put(key, read(u, size, depth + 1));
                }
                counted(2L * map.size()); // entries as decoded: duplicate keys count once
                return map;
            }
            case EXTENSION: {
                var header = u.unpackExtensionTypeHeader();
                byte[] data = payload(u, header.getLength(), size);
                if (header.getType() == -1 && data.length != 4 && data.length != 8
                        && data.length != 12) {
                    throw new MalformedMessageException(
                            "not a msgpack value: bad timestamp length " + data.length);
                }
                if (header.getType() != -1 && ++extValues > frameLimits.maxExtValues()) {
                    throw tooComplex(); // the timestamp is not counted (section 8)
                }
                return new RawExt(header.getType(), data);
            }
            default:
                throw new MalformedMessageException("not a msgpack value: " + format);
        }
    }

    /** Array length as unsigned (array32 headers can exceed Integer.MAX_VALUE). */
    private static long arrayHeader(MessageUnpacker u, MessageFormat format) throws IOException {
        if (format == MessageFormat.ARRAY32) {
            u.readPayload(1); // the format byte
            return Integer.toUnsignedLong(ByteBuffer.wrap(u.readPayload(4)).getInt());
        }
        return u.unpackArrayHeader();
    }

    private static long mapHeader(MessageUnpacker u, MessageFormat format) throws IOException {
        if (format == MessageFormat.MAP32) {
            u.readPayload(1);
            return Integer.toUnsignedLong(ByteBuffer.wrap(u.readPayload(4)).getInt());
        }
        return u.unpackMapHeader();
    }

    private void checkStructure(long n, int depth, int size) throws WireException {
        if (n > maxContainerLength) {
            throw new ContainerTooLongException(
                    "container of " + n + " entries; the limit is " + maxContainerLength);
        }
        if (depth > STRUCTURE_DEPTH_LIMIT) {
            throw new NestingTooDeepException("nesting deeper than " + maxDepth);
        }
    }

    /** One array or map ended, with {@code n} elements. */
    private void counted(long n) throws FrameTooComplexException {
        items += n;
        containers++;
        if (items > frameLimits.maxItems() || containers > frameLimits.maxContainers()) {
            throw tooComplex();
        }
    }

    private FrameTooComplexException tooComplex() {
        String what;
        if (items > frameLimits.maxItems()) {
            what = "more than " + frameLimits.maxItems() + " items";
        } else if (containers > frameLimits.maxContainers()) {
            what = "more than " + frameLimits.maxContainers() + " arrays and maps";
        } else if (extValues > frameLimits.maxExtValues()) {
            what = "more than " + frameLimits.maxExtValues() + " ext values";
        } else {
            what = "more than " + maxFrameSize + " bytes of ext payloads";
        }
        return new FrameTooComplexException("the frame holds " + what);
    }

    private static byte[] payload(MessageUnpacker u, long length, int size) throws IOException {
        if (length < 0 || length > size) {
            throw new MalformedMessageException("not a msgpack value: incomplete input");
        }
        return u.readPayload((int) length);
    }

    // --- field helpers ---------------------------------------------------------------------------

    private static boolean isScalar(Object o) {
        return o == null || o instanceof Boolean || o instanceof Long || o instanceof BigInteger
                || o instanceof Double || o instanceof String || o instanceof byte[];
    }

    private static void arity(List<Object> f, int n, String name) throws MalformedMessageException {
        if (f.size() != n) {
            throw new MalformedMessageException(
                    name + " has " + (f.size() - 1) + " fields; expected " + (n - 1));
        }
    }

    private static long id(Object o, String name) {
        if (o instanceof Long l) {
            return Wire.checkId(name, l);
        }
        if (o instanceof BigInteger) {
            throw new IllegalArgumentException(name + " must be in 0..2**63-1, got " + o);
        }
        throw new IllegalArgumentException(name + " must be an int, not " + typeName(o));
    }

    private static long u32(Object o, String name) {
        if (o instanceof Long l) {
            return l;
        }
        if (o instanceof BigInteger) {
            throw new IllegalArgumentException(name + " must be in 0..2**32-1, got " + o);
        }
        throw new IllegalArgumentException(name + " must be an int, not " + typeName(o));
    }

    private static String str(Object o, String name) {
        if (o instanceof String s) {
            return s;
        }
        throw new IllegalArgumentException(name + " must be a str, not " + typeName(o));
    }

    private static MalformedMessageException malformed(String what, IllegalArgumentException e) {
        return new MalformedMessageException("bad " + what + ": " + e.getMessage(), e);
    }

    static String typeName(Object o) {
        if (o == null) {
            return "nil";
        }
        if (o instanceof RawExt) {
            return "ext";
        }
        return o.getClass().getSimpleName();
    }
}
