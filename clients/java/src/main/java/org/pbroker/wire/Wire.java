package org.pbroker.wire;

import java.util.Set;

/** Numbers and names of the wire protocol (docs/PROTOCOL.md), defined once. */
public final class Wire {
    private Wire() {}

    /** The string every hello starts with. */
    public static final String PROTOCOL_NAME = "pbroker";
    /** Bumped on any incompatible change; peers with different versions refuse each other. */
    public static final long PROTOCOL_VERSION = 1;
    /** Request ids, object ids and counts are in 0..MAX_ID (a Java {@code long}). */
    public static final long MAX_ID = Long.MAX_VALUE;
    /** Each side's bootstrap object (the server's root); never released. */
    public static final long BOOTSTRAP_ID = 0;
    /** Largest value of a 32-bit limit or flags field. */
    public static final long MAX_U32 = 0xFFFF_FFFFL;

    /** Default largest frame body accepted: 16 MiB. */
    public static final int DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024;
    /** Default deepest nesting accepted (the body array is level 1). */
    public static final int DEFAULT_MAX_DEPTH = 64;
    /** Default longest array or map accepted. */
    public static final int DEFAULT_MAX_CONTAINER_LENGTH = 1024 * 1024;
    /** Default most elements of all arrays and maps in one frame (section 8, not announced). */
    public static final int DEFAULT_MAX_ITEMS_PER_FRAME = 512 * 1024;
    /** Default most arrays and maps in one frame. */
    public static final int DEFAULT_MAX_CONTAINERS_PER_FRAME = 32 * 1024;
    /** Default most ext values (refs, copies, failures) in one frame. */
    public static final int DEFAULT_MAX_EXT_VALUES_PER_FRAME = 16 * 1024;
    /** Deeper limits are refused. */
    public static final int MAX_DEPTH_CAP = 256;

    /** Message type: hello. */
    public static final int HELLO = 1;
    /** Message type: goodbye. */
    public static final int GOODBYE = 2;
    /** Message type: call. */
    public static final int CALL = 3;
    /** Message type: answer. */
    public static final int ANSWER = 4;
    /** Message type: error. */
    public static final int ERROR = 5;
    /** Message type: cancel. */
    public static final int CANCEL = 6;
    /** Message type: decref. */
    public static final int DECREF = 7;
    /** Message type: ping (feature "heartbeat"). */
    public static final int PING = 10;
    /** Message type: pong (feature "heartbeat"). */
    public static final int PONG = 11;
    /** Message type: decrefs (feature "decrefs"). */
    public static final int DECREFS = 12;
    /** Message type: finish (feature "pipelining", section 15.2). */
    public static final int FINISH = 9;
    /** Message type: stream_items (feature "streams", section 17.2). */
    public static final int STREAM_ITEMS = 13;
    /** Message type: stream_end (feature "streams", section 17.3). */
    public static final int STREAM_END = 14;
    /** Message type: stream_credit (feature "streams", section 17.2). */
    public static final int STREAM_CREDIT = 15;
    /** Message type: cache_update (feature "cache", section 16.2). */
    public static final int CACHE_UPDATE = 17;
    /** Message type: cache_release (feature "cache", section 16.3). */
    public static final int CACHE_RELEASE = 18;

    /** Feature: ping and pong, the heartbeat (section 5.2). */
    public static final String FEATURE_HEARTBEAT = "heartbeat";
    /** Feature: the decrefs message. */
    public static final String FEATURE_DECREFS = "decrefs";
    /** Feature: promise pipelining (finish, call flag bit 1; section 15). */
    public static final String FEATURE_PIPELINING = "pipelining";
    /** Feature: Cacheable / RemoteCache (ext 6, cache_update, cache_release; section 16). */
    public static final String FEATURE_CACHE = "cache";
    /** Feature: streams with credit-based flow control (ext 7, messages 13-15; section 17). */
    public static final String FEATURE_STREAMS = "streams";
    /** Feature: call options, field 8 of a call (deadline, metadata; section 18). */
    public static final String FEATURE_CALL_OPTIONS = "call-options";
    /** Default time after which a silent peer is declared dead (section 5.2). */
    public static final java.time.Duration DEFAULT_HEARTBEAT_DEAD_AFTER =
            java.time.Duration.ofSeconds(30);

    /** Ext code: a reference to an object the sender of the message owns. */
    public static final byte EXT_SENDER_REF = 1;
    /** Ext code: a reference to an object the receiver of the message owns. */
    public static final byte EXT_RECEIVER_REF = 2;
    /** Ext code: a copyable (type name, state). */
    public static final byte EXT_COPY = 3;
    /** Ext code: a failure (kind, type name, message, traceback). */
    public static final byte EXT_FAILURE = 4;
    /** Ext code: a cache ref (feature "cache", section 16.1). */
    public static final byte EXT_CACHE_REF = 6;
    /** Ext code: a stream the sender will feed (feature "streams", section 17.1). */
    public static final byte EXT_STREAM = 7;

    /** Call flag bit 0: the caller wants no answer. */
    public static final long CALL_NO_ANSWER = 1;
    /** Call flag bit 1 (feature "pipelining"): the target is one of the caller's question ids. */
    public static final long CALL_TARGET_IS_QUESTION = 2;

    /** Failure kind: the method raised. */
    public static final String FAILED = "failed";
    /** Failure kind: a limit was hit; retrying later may work. */
    public static final String OVERLOADED = "overloaded";
    /** Failure kind: the connection went away (only ever produced locally). */
    public static final String DISCONNECTED = "disconnected";
    /** Failure kind: unknown method, message type or ext code. */
    public static final String UNIMPLEMENTED = "unimplemented";
    /** Failure kind: the caller cancelled the call. */
    public static final String CANCELLED = "cancelled";
    /** Failure kind: unknown object id, or a malformed request. */
    public static final String INVALID = "invalid";
    /** Failure kind (feature "call-options", section 18): the call's deadline passed. */
    public static final String DEADLINE = "deadline";
    /** Goodbye kind of an orderly close. */
    public static final String NORMAL = "normal";

    /** Every failure kind. */
    public static final Set<String> FAILURE_KINDS =
            Set.of(FAILED, OVERLOADED, DISCONNECTED, UNIMPLEMENTED, CANCELLED, INVALID, DEADLINE);
    /** Every goodbye kind: "normal" and the failure kinds. */
    public static final Set<String> GOODBYE_KINDS =
            Set.of(NORMAL, FAILED, OVERLOADED, DISCONNECTED, UNIMPLEMENTED, CANCELLED, INVALID);

    static long checkId(String name, long value) {
        if (value < 0) {
            throw new IllegalArgumentException(name + " must be in 0..2**63-1, got " + value);
        }
        return value;
    }

    static long checkU32(String name, long value, long min) {
        if (value < min || value > MAX_U32) {
            throw new IllegalArgumentException(
                    name + " must be in " + min + "..2**32-1, got " + value);
        }
        return value;
    }

    static String checkStr(String name, String value) {
        if (value == null) {
            throw new IllegalArgumentException(name + " must be a str, not nil");
        }
        return value;
    }
}
