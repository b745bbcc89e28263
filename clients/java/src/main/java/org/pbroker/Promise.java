package org.pbroker;

import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;

/**
 * The answer of a call, and a reference to the object it will be (promise pipelining, feature
 * "pipelining", docs/PROTOCOL.md section 15). {@link #callRemote} on it calls that object: sent
 * at once, addressed to the question, while the answer is on its way and the server negotiated
 * the feature; on the reference directly once the answer is here; after the answer otherwise.
 * It returns a Promise too, so a chain of dependent calls costs one round trip:
 *
 * <pre>{@code
 * Object name = root.callRemote("get_user", 7).callRemote("rename", "x")
 *         .callRemote("describe").get();
 * }</pre>
 *
 * If the call fails, every call made through it fails with a {@link RemoteException} of the same
 * kind whose message names the cause ({@code "pipelined on question 3, which failed: ..."}).
 * Cancelling a Promise cancels its call.
 */
public final class Promise extends CompletableFuture<Object> {
    private final PBClient client; // null: a bare session's call, never pipelined
    private final long questionId; // 0: no question of its own to pipeline on
    private final CompletableFuture<Object> answer;
    private final boolean pipelined;

    Promise(PBClient client, long questionId, CompletableFuture<Object> answer, boolean pipelined) {
        this.client = client;
        this.questionId = questionId;
        this.answer = answer;
        this.pipelined = pipelined;
        answer.whenComplete((value, error) -> {
            if (error != null) {
                completeExceptionally(error);
            } else {
                complete(value);
            }
        });
    }

    /** {@code future} as a Promise with no question (calls through it wait for its answer). */
    static Promise of(CompletableFuture<Object> future, PBClient client) {
        return future instanceof Promise p ? p : new Promise(client, 0, future, false);
    }

    /** @return the request id of this call's question (0 if it has none) */
    public long questionId() {
        return questionId;
    }

    /** @return whether this call was sent pipelined, addressed to another call's answer */
    public boolean pipelined() {
        return pipelined;
    }

    /**
     * Call a method on the object this call's answer is (or will be).
     *
     * @param method the remote method name
     * @param args positional arguments
     * @return the call's answer, itself a promise
     */
    public Promise callRemote(String method, Object... args) {
        return callRemoteWithKeywords(method, Arrays.asList(args), Map.of());
    }

    /**
     * {@link #callRemote} with keyword arguments.
     *
     * @param method the remote method name
     * @param args positional arguments
     * @param kwargs keyword arguments
     * @return the call's answer, itself a promise
     */
    public Promise callRemoteWithKeywords(String method, List<?> args, Map<String, ?> kwargs) {
        if (client != null && questionId != 0 && !answer.isDone()) {
            Promise sent = client.callPipelined(this, method, args, kwargs, false);
            if (sent != null) {
                return sent;
            }
        }
        CompletableFuture<Object> later = answer.handle((value, error) -> onAnswer(value, error))
                .thenCompose(ref -> ref.callRemoteWithKeywords(method, args, kwargs));
        return new Promise(client, 0, later, false);
    }

    /**
     * A one-way call on the object this call's answer is (or will be).
     *
     * @param method the remote method name
     * @param args positional arguments
     */
    public void callRemoteNoAnswer(String method, Object... args) {
        if (client != null && questionId != 0 && !answer.isDone()) {
            if (client.callPipelined(this, method, Arrays.asList(args), Map.of(), true) != null) {
                return;
            }
        }
        answer.handle((value, error) -> onAnswer(value, error))
                .thenAccept(ref -> ref.callRemoteNoAnswer(method, args));
    }

    private RemoteReference onAnswer(Object value, Throwable error) {
        if (error != null) {
            Throwable cause = error instanceof CompletionException && error.getCause() != null
                    ? error.getCause() : error;
            if (cause instanceof RemoteException r) {
                throw Pipeline.pipelinedFailure(questionId, r.toFailureInfo());
            }
            throw cause instanceof RuntimeException re ? re : new CompletionException(cause);
        }
        if (value instanceof RemoteReference ref) {
            return ref;
        }
        throw new InvalidReferenceException("broker.NotAReference", "question " + questionId
                + "'s answer is not a reference", null);
    }

    @Override
    public boolean cancel(boolean mayInterruptIfRunning) {
        answer.cancel(mayInterruptIfRunning);
        return super.cancel(mayInterruptIfRunning);
    }
}
