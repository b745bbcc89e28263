package org.pbroker;

import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.function.Consumer;

/**
 * A proxy for an object the server owns: call its remote methods with {@link #callRemote}.
 *
 * <p>References come from {@link PBClient#getRootObject()} and from answers and calls (a server
 * method may return or pass other references; they are proxies like this one). Results complete
 * on the client's callback executor. Passing a reference back to the server in an argument hands
 * the server its own object.
 *
 * <p>Releasing: {@link #close()} tells the server this client no longer needs the object (a
 * decref, batched and sent from the client's housekeeping thread); a reference that becomes
 * unreachable is released the same way once it is garbage collected. The root object is never
 * released. Thread-safe.
 */
public final class RemoteReference implements AutoCloseable {
    private final ProxyHost host;
    private final long objectId;
    private final ImportTable.Entry entry; // null for the bootstrap object

    RemoteReference(ProxyHost host, long objectId, ImportTable.Entry entry) {
        this.host = host;
        this.objectId = objectId;
        this.entry = entry;
    }

    /** @return the object's id in the server's export table (0 for the root object) */
    public long objectId() {
        return objectId;
    }

    /**
     * @return the connection this reference belongs to (null for a reference of a bare
     *     {@link Session} driven without a client)
     */
    public PBClient client() {
        return host.client();
    }

    ProxyHost host() {
        return host;
    }

    /**
     * Call a remote method.
     *
     * @param method the remote method name (the Python side's {@code remote_<method>})
     * @param args positional arguments: msgpack natives, {@link Referenceable}s (passed by
     *     reference), registered copyables, RemoteReferences of this connection
     * @return the result; fails with {@link RemoteException} (the method raised),
     *     {@link ConnectionLostException}, {@link LimitExceededException} or a timeout. It is a
     *     {@link Promise}: {@code callRemote} on it calls the answer before it has arrived
     */
    public Promise callRemote(String method, Object... args) {
        return Promise.of(host.call(this, method, Arrays.asList(args), Map.of(), false,
                host.defaultTimeout()), host.client());
    }

    /**
     * Call a remote method and convert the result to {@code type} (see {@link Values}).
     *
     * @param type the result type: {@code Integer.class}, {@code String.class}, a registered
     *     record, {@code RemoteReference.class}, ...
     * @param method the remote method name
     * @param args positional arguments
     * @param <T> the result type
     * @return the converted result; fails with {@link IllegalArgumentException} if it does not fit
     */
    public <T> CompletableFuture<T> callRemote(Class<T> type, String method, Object... args) {
        return callRemote(method, args).thenApply(v -> Values.convert(v, type));
    }

    /**
     * Call a remote method with keyword arguments (Python {@code **kwargs}).
     *
     * @param method the remote method name
     * @param args positional arguments
     * @param kwargs keyword arguments, in order
     * @return the result
     */
    public CompletableFuture<Object> callRemoteWithKeywords(String method, List<?> args,
            Map<String, ?> kwargs) {
        return host.call(this, method, List.copyOf(args), kwargs, false,
                host.defaultTimeout());
    }

    /**
     * Call a remote method with a timeout: if no answer arrives in time the future fails with
     * {@link java.util.concurrent.TimeoutException} and the server is asked to cancel the call.
     *
     * @param timeout how long to wait
     * @param method the remote method name
     * @param args positional arguments
     * @return the result
     */
    public CompletableFuture<Object> callRemoteWithTimeout(Duration timeout, String method,
            Object... args) {
        return host.call(this, method, Arrays.asList(args), Map.of(), false, timeout);
    }

    /**
     * This reference seen through call options (docs/PROTOCOL.md section 18): a deadline and
     * metadata for the calls made through the view, never in the method's own arguments.
     *
     * @param options the deadline and metadata
     * @return a view whose calls carry them
     */
    public WithOptions options(CallOptions options) {
        return new WithOptions(this, java.util.Objects.requireNonNull(options, "options"));
    }

    /**
     * A reference with call options: {@code ref.options(o).callRemote("m", ...)}. The call fails
     * with {@link DeadlineExceededException} when its deadline passes (the server is told).
     *
     * @param reference the reference called
     * @param callOptions the options of its calls
     */
    public record WithOptions(RemoteReference reference, CallOptions callOptions) {
        /**
         * @param method the remote method name
         * @param args positional arguments
         * @return the result
         */
        public CompletableFuture<Object> callRemote(String method, Object... args) {
            return reference.host.callWithOptions(reference, method, Arrays.asList(args),
                    Map.of(), false, callOptions);
        }

        /**
         * @param method the remote method name
         * @param args positional arguments
         * @param kwargs keyword arguments
         * @return the result
         */
        public CompletableFuture<Object> callRemoteWithKeywords(String method, List<?> args,
                Map<String, ?> kwargs) {
            return reference.host.callWithOptions(reference, method, List.copyOf(args), kwargs,
                    false, callOptions);
        }
    }

    /**
     * A one-way call: no answer is sent, not even an error (the server logs failures).
     *
     * @param method the remote method name
     * @param args positional arguments
     * @throws ConnectionLostException if the connection is closed
     * @throws LimitExceededException if the call cannot be encoded or is too large
     */
    public void callRemoteNoAnswer(String method, Object... args) {
        CompletableFuture<Object> sent = host.call(this, method, Arrays.asList(args), Map.of(),
                true, null);
        if (sent.isCompletedExceptionally()) {
            sent.join(); // throws the CompletionException around the reason
        }
    }

    /**
     * Run {@code listener} once when the connection closes (at once, on the callback executor,
     * if it already has).
     *
     * @param listener receives this reference
     */
    public void notifyOnDisconnect(Consumer<RemoteReference> listener) {
        host.addDisconnectListener(reason -> listener.accept(this));
    }

    /** @return true once {@link #close()} ran (or the proxy was released) */
    public boolean isReleased() {
        return entry != null && entry.isDead();
    }

    /**
     * Release the server's object: no more calls through this proxy. Idempotent; a no-op for the
     * root object.
     */
    @Override
    public void close() {
        if (entry != null) {
            entry.release();
        }
    }

    boolean isBootstrap() {
        return entry == null;
    }

    @Override
    public String toString() {
        return "RemoteReference(" + objectId + " via " + host + (isReleased() ? ", released" : "")
                + ")";
    }
}
