package org.pbroker;

import java.lang.ref.Cleaner;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.function.Consumer;

/**
 * What a {@link RemoteReference} proxy talks to: a {@link PBClient} (locks, a writer, timeouts, the
 * {@link Cleaner}) or a bare {@link Session} driven by hand (synchronous, no clock, explicit
 * release only).
 */
interface ProxyHost {
    /** A call through {@code target}; see {@link RemoteReference#callRemote}. */
    CompletableFuture<Object> call(RemoteReference target, String method, List<?> args,
            Map<String, ?> kwargs, boolean noAnswer, Duration timeout);

    /**
     * A call with options (section 18); a host without them makes a plain call with the timeout.
     */
    default CompletableFuture<Object> callWithOptions(RemoteReference target, String method,
            List<?> args, Map<String, ?> kwargs, boolean noAnswer, CallOptions options) {
        Duration timeout = options.timeout() != null ? options.timeout() : defaultTimeout();
        return call(target, method, args, kwargs, noAnswer, timeout);
    }

    /** @return the timeout of calls made without one, or null */
    Duration defaultTimeout();

    /** Run {@code listener} once when the connection closes. */
    void addDisconnectListener(Consumer<Throwable> listener);

    /** @return the client this proxy belongs to, or null for a bare session */
    PBClient client();

    /**
     * Arrange for {@code onUnreachable} to run (once) when {@code proxy} (a RemoteReference, a
     * RemoteStream) becomes unreachable; the returned cleanable runs it on explicit release.
     * Never does I/O.
     */
    Cleaner.Cleanable track(Object proxy, Runnable onUnreachable);

    /** A release was queued on the session (any thread): arrange for a flush. Never does I/O. */
    void releaseQueued();
}
