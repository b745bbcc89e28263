package org.pbroker;

import java.time.Duration;
import java.util.Map;
import java.util.Optional;

/**
 * The call being served on this thread (docs/PROTOCOL.md section 18.2): its deadline, if the
 * caller sent a budget, and its metadata. Set while a {@link Referenceable}'s method runs (its
 * synchronous part, on the callback executor's thread); calls made meanwhile through a
 * {@link PBClient} get at most the budget left and pass the caller's trace keys on (rule 3).
 * Work handed to other threads does not see it: take {@link #current()} along.
 */
public final class CallContext {
    private static final ThreadLocal<CallContext> CURRENT = new ThreadLocal<>();

    private final Long deadlineNanos; // System.nanoTime() when the budget runs out, or null
    private final Map<String, String> metadata;

    CallContext(Long deadlineNanos, Map<String, String> metadata) {
        this.deadlineNanos = deadlineNanos;
        this.metadata = metadata;
    }

    /** @return the call this thread is serving, if any */
    public static Optional<CallContext> current() {
        return Optional.ofNullable(CURRENT.get());
    }

    /** @return the budget left (zero once passed), or empty for a call without a deadline */
    public Optional<Duration> remaining() {
        if (deadlineNanos == null) {
            return Optional.empty();
        }
        return Optional.of(Duration.ofNanos(Math.max(0, deadlineNanos - System.nanoTime())));
    }

    /** @return the caller's metadata (empty if none) */
    public Map<String, String> metadata() {
        return metadata;
    }

    /** Run {@code body} with this as the current call. */
    <T> T run(java.util.concurrent.Callable<T> body) throws Exception {
        CallContext outer = CURRENT.get();
        CURRENT.set(this);
        try {
            return body.call();
        } finally {
            if (outer == null) {
                CURRENT.remove();
            } else {
                CURRENT.set(outer);
            }
        }
    }

    /** Field 8 as decoded: its metadata if well-formed (checked before), else none. */
    @SuppressWarnings("unchecked")
    static Map<String, String> metadataOf(Map<String, Object> options) {
        Object m = options == null ? null : options.get("metadata");
        return m instanceof Map<?, ?> map ? Map.copyOf((Map<String, String>) map) : Map.of();
    }
}
