package org.pbroker.wire;

import java.io.IOException;
import java.lang.reflect.Array;
import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import org.msgpack.core.MessageBufferPacker;
import org.msgpack.core.MessagePack;
import org.msgpack.core.MessagePacker;

/**
 * Messages to frame bodies (docs/PROTOCOL.md), in the canonical form the Python implementation
 * produces: smallest integer and length formats, {@code float64} for every floating-point number,
 * str for {@link String}, bin for {@code byte[]}, arrays for lists, sets and Java arrays, maps in
 * iteration order.
 *
 * <p>The {@code default} hook is asked about every object that is neither a msgpack native nor a
 * {@link WireValue} and must return something that is (a Referenceable becomes an
 * {@link ExportedRef}, a registered copyable a {@link CopyState}, ...).
 *
 * <p>Not thread-safe; the client encodes under its send lock.
 */
public final class WireEncoder {
    private static final BigInteger MIN_INT64 = BigInteger.valueOf(Long.MIN_VALUE);
    private static final BigInteger MAX_UINT64 = BigInteger.ONE.shiftLeft(64).subtract(BigInteger.ONE);
    /** Deeper values are refused, as by msgpack's packers (and a cycle ends here too). */
    private static final int MAX_ENCODE_DEPTH = 511;

    private final Function<Object, Object> defaultHook;
    private volatile long maxFrameSize;

    /** An encoder without hook or peer limit (tools, tests, vectors). */
    public WireEncoder() {
        this(null, Wire.MAX_U32);
    }

    /**
     * @param defaultHook maps non-native objects to encodable ones; null for none
     * @param maxFrameSize the peer's announced max_frame_size (update it with
     *     {@link #setMaxFrameSize} once the peer's hello arrives)
     */
    public WireEncoder(Function<Object, Object> defaultHook, long maxFrameSize) {
        this.defaultHook = defaultHook;
        this.maxFrameSize = maxFrameSize;
    }

    /** @param maxFrameSize the largest body the peer accepts */
    public void setMaxFrameSize(long maxFrameSize) {
        this.maxFrameSize = maxFrameSize;
    }

    /** @return the largest body this encoder produces */
    public long maxFrameSize() {
        return maxFrameSize;
    }

    /**
     * The body of one frame for {@code message}.
     *
     * @param message the message
     * @return the body bytes (without the length header)
     * @throws UnencodableValueException if a value cannot be encoded
     * @throws MessageTooLargeException if the body exceeds the peer's max_frame_size
     */
    public byte[] encodeBody(Message message) throws WireException {
        MessageBufferPacker p = MessagePack.newDefaultBufferPacker();
        try {
            pack(p, body(message), 0);
            p.flush();
        } catch (WireException e) {
            throw e;
        } catch (IOException | RuntimeException e) {
            throw new UnencodableValueException(
                    "cannot encode " + message.getClass().getSimpleName() + ": " + e, e);
        }
        byte[] body = p.toByteArray();
        if (body.length > maxFrameSize) {
            throw new MessageTooLargeException(message.getClass().getSimpleName() + " encodes to "
                    + body.length + " bytes; the peer accepts at most " + maxFrameSize);
        }
        return body;
    }

    /**
     * One whole frame (4-byte big-endian length header, then the body).
     *
     * @param message the message
     * @return the frame bytes
     * @throws WireException as {@link #encodeBody}
     */
    public byte[] encodeFrame(Message message) throws WireException {
        byte[] body = encodeBody(message);
        return ByteBuffer.allocate(4 + body.length).putInt(body.length).put(body).array();
    }

    private static List<Object> body(Message message) {
        List<Object> b = new ArrayList<>(7);
        b.add((long) message.type());
        if (message instanceof Hello m) {
            b.add(Wire.PROTOCOL_NAME);
            b.add(m.version());
            b.add(m.maxFrameSize());
            b.add(m.maxDepth());
            b.add(m.maxContainerLength());
            b.add(m.features());
        } else if (message instanceof Goodbye m) {
            b.add(m.kind());
            b.add(m.message());
        } else if (message instanceof Call m) {
            b.add(m.requestId());
            b.add(m.target());
            b.add(m.method());
            b.add(m.args());
            b.add(m.kwargs());
            b.add(m.flags());
            if (m.options() != null) { // field 8, only when "call-options" is negotiated
                b.add(m.options());
            }
        } else if (message instanceof Answer m) {
            b.add(m.requestId());
            b.add(m.value());
        } else if (message instanceof ErrorMessage m) {
            b.add(m.requestId());
            b.add(m.failure().kind());
            b.add(m.failure().typeName());
            b.add(m.failure().message());
            b.add(m.failure().traceback());
        } else if (message instanceof Cancel m) {
            b.add(m.requestId());
        } else if (message instanceof Decref m) {
            b.add(m.objectId());
            b.add(m.count());
        } else if (message instanceof Finish m) {
            b.add(new ArrayList<Object>(m.questionIds()));
        } else if (message instanceof Decrefs m) {
            List<Object> flat = new ArrayList<>(2 * m.releases().size());
            m.releases().forEach((id, count) -> {
                flat.add(id);
                flat.add(count);
            });
            b.add(flat);
        } else if (message instanceof Ping m) {
            b.add(m.nonce());
        } else if (message instanceof Pong m) {
            b.add(m.nonce());
        } else if (message instanceof CacheUpdate m) {
            b.add(m.cacheId());
            b.add(m.method());
            b.add(m.args());
            b.add(m.kwargs());
        } else if (message instanceof CacheRelease m) {
            b.add(m.cacheId());
            b.add(m.count());
        } else if (message instanceof StreamItems m) {
            b.add(m.streamId());
            b.add(m.items());
        } else if (message instanceof StreamEnd m) {
            b.add(m.streamId());
            b.add(m.failure());
        } else if (message instanceof StreamCredit m) {
            b.add(m.streamId());
            b.add(m.items());
            b.add(m.bytes());
        }
        return b;
    }

    /**
     * Encode one value on its own (an ext payload, or a test).
     *
     * @param value any encodable value
     * @return its msgpack bytes
     * @throws WireException if it cannot be encoded
     */
    public byte[] encodeValue(Object value) throws WireException {
        MessageBufferPacker p = MessagePack.newDefaultBufferPacker();
        try {
            pack(p, value, 0);
            p.flush();
        } catch (WireException e) {
            throw e;
        } catch (IOException | RuntimeException e) {
            throw new UnencodableValueException("cannot encode value: " + e, e);
        }
        return p.toByteArray();
    }

    private void pack(MessagePacker p, Object v, int depth) throws IOException {
        if (depth > MAX_ENCODE_DEPTH) {
            throw new UnencodableValueException("value nests deeper than " + MAX_ENCODE_DEPTH
                    + " levels (a cycle?)");
        }
        if (v == null) {
            p.packNil();
        } else if (v instanceof Boolean b) {
            p.packBoolean(b);
        } else if (v instanceof Long || v instanceof Integer || v instanceof Short
                || v instanceof Byte) {
            p.packLong(((Number) v).longValue());
        } else if (v instanceof BigInteger big) {
            if (big.compareTo(MIN_INT64) < 0 || big.compareTo(MAX_UINT64) > 0) {
                throw new UnencodableValueException("integer out of the 64-bit range: " + big);
            }
            p.packBigInteger(big);
        } else if (v instanceof Double || v instanceof Float) {
            p.packDouble(((Number) v).doubleValue());
        } else if (v instanceof String s) {
            byte[] raw = s.getBytes(StandardCharsets.UTF_8);
            p.packRawStringHeader(raw.length);
            p.writePayload(raw);
        } else if (v instanceof Character c) {
            pack(p, c.toString(), depth);
        } else if (v instanceof byte[] raw) {
            p.packBinaryHeader(raw.length);
            p.writePayload(raw);
        } else if (v instanceof ByteBuffer buf) {
            byte[] raw = new byte[buf.remaining()];
            buf.duplicate().get(raw);
            pack(p, raw, depth);
        } else if (v instanceof Collection<?> items) {
            p.packArrayHeader(items.size());
            for (Object item : items) {
                pack(p, item, depth + 1);
            }
        } else if (v instanceof Map<?, ?> map) {
            p.packMapHeader(map.size());
            for (Map.Entry<?, ?> e : map.entrySet()) {
                Object key = e.getKey();
                if (!(key == null || key instanceof Boolean || key instanceof Number
                        || key instanceof String || key instanceof Character
                        || key instanceof byte[] || key instanceof Enum<?>)) {
                    throw new UnencodableValueException("map keys must be nil, bool, int, float,"
                            + " str or bin, not " + key.getClass().getName());
                }
                pack(p, key, depth + 1);
                pack(p, e.getValue(), depth + 1);
            }
        } else if (v.getClass().isArray()) {
            int n = Array.getLength(v);
            p.packArrayHeader(n);
            for (int i = 0; i < n; i++) {
                pack(p, Array.get(v, i), depth + 1);
            }
        } else if (v instanceof WireValue w) {
            byte[] payload;
            if (w instanceof ExportedRef r) {
                payload = longPayload(r.objectId());
            } else if (w instanceof ReturnedRef r) {
                payload = longPayload(r.objectId());
            } else if (w instanceof CopyState c) {
                payload = nested(java.util.Arrays.asList(c.typeName(), c.state()), depth);
            } else if (w instanceof StreamRef s) { // section 17.1
                payload = nested(List.of((Object) s.streamId(), s.windowItems(), s.windowBytes()),
                        depth);
            } else if (w instanceof CacheRef c) { // section 16.1: the state only the first time
                payload = nested(c.first() ? java.util.Arrays.asList(c.cacheId(), c.typeName(),
                        c.state()) : List.of((Object) c.cacheId()), depth);
            } else {
                FailureInfo f = (FailureInfo) w;
                payload = nested(java.util.Arrays.asList(f.kind(), f.typeName(), f.message(),
                        f.traceback()), depth);
            }
            p.packExtensionTypeHeader(w.code(), payload.length);
            p.writePayload(payload);
        } else {
            Object mapped = defaultHook == null ? v : defaultHook.apply(v);
            if (mapped == v) {
                throw new UnencodableValueException("cannot encode a " + v.getClass().getName()
                        + ": it is not a msgpack native or a wire value, and no hook mapped it"
                        + " to one (register it as copyable or make it Referenceable)");
            }
            pack(p, mapped, depth);
        }
    }

    private static byte[] longPayload(long id) throws IOException {
        MessageBufferPacker p = MessagePack.newDefaultBufferPacker();
        p.packLong(id);
        p.flush();
        return p.toByteArray();
    }

    private byte[] nested(List<Object> payload, int depth) throws IOException {
        MessageBufferPacker p = MessagePack.newDefaultBufferPacker();
        pack(p, payload, depth + 1);
        p.flush();
        return p.toByteArray();
    }
}
