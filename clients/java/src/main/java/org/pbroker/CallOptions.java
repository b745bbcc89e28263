package org.pbroker;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Per-call options (docs/PROTOCOL.md section 18), never in the remote method's own keyword
 * arguments: {@code ref.options(CallOptions.timeout(Duration.ofSeconds(2))).callRemote("m")}.
 * With "call-options" negotiated the budget and the metadata travel with the call (the server
 * stops the method when the budget runs out); either way the call fails locally with
 * {@link DeadlineExceededException} when it passes.
 *
 * @param timeout how long the caller waits, or null for the connection's default
 * @param metadata str to str, at most {@link #MAX_METADATA_ENTRIES} entries and
 *     {@link #MAX_METADATA_BYTES} bytes (e.g. W3C {@code traceparent})
 */
public record CallOptions(Duration timeout, Map<String, String> metadata) {
    /** Most metadata entries a call may carry (section 18.1). */
    public static final int MAX_METADATA_ENTRIES = 32;
    /** Most UTF-8 bytes of metadata keys and values together (section 18.1). */
    public static final int MAX_METADATA_BYTES = 8 * 1024;

    /** Validates: a wrong value fails here, where the caller wrote it. */
    public CallOptions {
        if (timeout != null && (timeout.isNegative() || timeout.getSeconds() > 1_000_000_000L)) {
            throw new IllegalArgumentException("CallOptions timeout must be between 0 and 1e9 s, got "
                    + timeout);
        }
        metadata = metadata == null ? Map.of()
                : Collections.unmodifiableMap(new LinkedHashMap<>(metadata));
        String why = metadataError(metadata);
        if (why != null) {
            throw new IllegalArgumentException("CallOptions metadata: " + why);
        }
    }

    /**
     * @param timeout how long to wait for the answer
     * @return options with only a deadline
     */
    public static CallOptions timeout(Duration timeout) {
        return new CallOptions(timeout, Map.of());
    }

    /**
     * @param metadata the metadata to add
     * @return these options with {@code metadata} added
     */
    public CallOptions withMetadata(Map<String, String> metadata) {
        Map<String, String> all = new LinkedHashMap<>(this.metadata);
        all.putAll(metadata);
        return new CallOptions(timeout, all);
    }

    /**
     * Field 8 of a call (section 18.1) for a budget of {@code budget} (null: none).
     *
     * @param budget the effective timeout (these options', else the connection's default)
     * @return the map, or null when there is nothing to send
     */
    Map<String, Object> toWire(Duration budget) {
        Map<String, Object> wire = new LinkedHashMap<>();
        if (budget != null) {
            wire.put("timeout", budget.toNanos() / 1e9);
        }
        if (!metadata.isEmpty()) {
            wire.put("metadata", new LinkedHashMap<String, Object>(metadata));
        }
        return wire.isEmpty() ? null : wire;
    }

    /**
     * Why a received call's options break section 18.2, or null (unknown keys are ignored).
     *
     * @param options field 8 as decoded
     * @return the reason, for an error of kind "invalid"
     */
    static String refusal(Map<String, Object> options) {
        Object timeout = options.get("timeout");
        if (timeout != null) {
            if (!(timeout instanceof Long || timeout instanceof Double || timeout instanceof Float)) {
                return "timeout must be seconds (an int or float), not " + timeout;
            }
            double t = ((Number) timeout).doubleValue();
            if (!(t >= 0 && t <= 1e9)) {
                return "timeout must be between 0 and 1e9 seconds, got " + timeout;
            }
        }
        Object metadata = options.get("metadata");
        if (metadata != null && !(metadata instanceof Map<?, ?>)) {
            return "metadata must be a map";
        }
        return metadata == null ? null : metadataError((Map<?, ?>) metadata);
    }

    private static String metadataError(Map<?, ?> metadata) {
        if (metadata.size() > MAX_METADATA_ENTRIES) {
            return metadata.size() + " metadata entries; the limit is " + MAX_METADATA_ENTRIES;
        }
        long size = 0;
        for (Map.Entry<?, ?> e : metadata.entrySet()) {
            if (!(e.getKey() instanceof String k) || !(e.getValue() instanceof String v)) {
                return "metadata maps str to str";
            }
            if (k.isEmpty()) {
                return "metadata keys must not be empty";
            }
            size += k.getBytes(StandardCharsets.UTF_8).length + v.getBytes(StandardCharsets.UTF_8).length;
        }
        if (size > MAX_METADATA_BYTES) {
            return size + " bytes of metadata; the limit is " + MAX_METADATA_BYTES;
        }
        return null;
    }
}
