package org.pbroker.wire;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Invoke {@code method} on object {@code target} (an id in the receiver's exports; 0 is the
 * bootstrap object). With the {@link Wire#CALL_NO_ANSWER} flag the callee sends nothing back.
 *
 * @param requestId question id chosen by the caller (0 for a call without answer)
 * @param target object id in the receiver's exports
 * @param method the method name, not empty
 * @param args positional arguments
 * @param kwargs keyword arguments (string keys, order kept)
 * @param flags bit set, 0..2^32-1
 * @param options field 8 (feature "call-options", section 18): a map, or null for none
 */
public record Call(long requestId, long target, String method, List<Object> args,
        Map<String, Object> kwargs, long flags, Map<String, Object> options) implements Message {
    /**
     * A call without options (field 8 absent), as in version 1.
     *
     * @param requestId question id chosen by the caller (0 for a call without answer)
     * @param target object id in the receiver's exports
     * @param method the method name, not empty
     * @param args positional arguments
     * @param kwargs keyword arguments (string keys, order kept)
     * @param flags bit set, 0..2^32-1
     */
    public Call(long requestId, long target, String method, List<Object> args,
            Map<String, Object> kwargs, long flags) {
        this(requestId, target, method, args, kwargs, flags, null);
    }

    /** Validates the fields; args, kwargs and options become unmodifiable views. */
    public Call {
        Wire.checkId("request_id", requestId);
        Wire.checkId("target", target);
        Wire.checkStr("method", method);
        if (method.isEmpty()) {
            throw new IllegalArgumentException("method must not be empty");
        }
        if (args == null) {
            throw new IllegalArgumentException("args must be a list");
        }
        if (kwargs == null) {
            throw new IllegalArgumentException("kwargs must be a map");
        }
        for (Object key : ((Map<?, ?>) kwargs).keySet()) {
            if (!(key instanceof String)) {
                throw new IllegalArgumentException("kwargs keys must be str");
            }
        }
        Wire.checkU32("flags", flags, 0);
        args = Collections.unmodifiableList(new ArrayList<>(args));
        kwargs = Collections.unmodifiableMap(new LinkedHashMap<>(kwargs));
        if (options != null) {
            options = Collections.unmodifiableMap(new LinkedHashMap<>(options));
        }
    }

    /** @return false for a one-way call: no answer or error will ever come back */
    public boolean answerWanted() {
        return (flags & Wire.CALL_NO_ANSWER) == 0;
    }

    @Override
    public int type() {
        return Wire.CALL;
    }
}
