package org.pbroker.net;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongConsumer;

/**
 * The questions we asked and have no answer for yet: request id to future.
 *
 * <p>Futures are completed on the callback {@link Executor}, never on the thread that calls
 * {@link #complete} (the socket reader), so dependent stages run user code off the reader. Once
 * {@link #failAll} ran (the connection is gone), every pending future and every later
 * registration fails with that reason: no future is ever left hanging.
 *
 * <p>A future that times out or that the caller cancels leaves the table, and the {@code abandoned}
 * callback is told its id (the broker then sends a cancel message); the late answer is dropped.
 */
public final class PendingCalls {
    private record Entry(CompletableFuture<Object> future, ScheduledFuture<?> timeout) {}

    private final Map<Long, Entry> pending = new ConcurrentHashMap<>();
    private final AtomicLong nextId = new AtomicLong(1);
    private final Executor executor;
    private final ScheduledExecutorService scheduler;
    private final LongConsumer abandoned;
    private volatile Throwable closedReason;

    /**
     * @param executor runs future completions (and so the callers' dependent stages)
     * @param scheduler runs timeouts; may be null if calls never have a timeout
     * @param abandoned told the id of a call that timed out or was cancelled by the caller
     */
    public PendingCalls(Executor executor, ScheduledExecutorService scheduler,
            LongConsumer abandoned) {
        this.executor = Objects.requireNonNull(executor, "executor");
        this.scheduler = scheduler;
        this.abandoned = abandoned == null ? id -> { } : abandoned;
    }

    /** @return a fresh request id (1, 2, 3, ...; never 0) */
    public long nextId() {
        return nextId.getAndIncrement();
    }

    /**
     * Enter a question.
     *
     * @param id its request id, from {@link #nextId}
     * @param timeout how long to wait for the answer; null or zero for no limit
     * @return the future the answer or error completes
     */
    public CompletableFuture<Object> register(long id, Duration timeout) {
        CompletableFuture<Object> future = new CompletableFuture<>();
        ScheduledFuture<?> timer = null;
        if (timeout != null && !timeout.isZero() && !timeout.isNegative()) {
            if (scheduler == null) {
                throw new IllegalStateException("no scheduler for call timeouts");
            }
            timer = scheduler.schedule(() -> {
                if (pending.remove(id) != null) {
                    deliver(future, null, new TimeoutException(
                            "no answer to request " + id + " within " + timeout));
                    abandoned.accept(id);
                }
            }, timeout.toNanos(), TimeUnit.NANOSECONDS);
        }
        pending.put(id, new Entry(future, timer));
        future.whenComplete((v, e) -> {
            if (e instanceof CancellationException) {
                Entry entry = pending.remove(id);
                if (entry != null) {
                    cancelTimer(entry);
                    abandoned.accept(id);
                }
            }
        });
        Throwable reason = closedReason;
        if (reason != null) {
            fail(id, reason);
        }
        return future;
    }

    /**
     * Deliver an answer.
     *
     * @param id the request id
     * @param value the result
     * @return false if no such question is pending (unknown id, timed out, or cancelled)
     */
    public boolean complete(long id, Object value) {
        Entry entry = pending.remove(id);
        if (entry == null) {
            return false;
        }
        cancelTimer(entry);
        deliver(entry.future, value, null);
        return true;
    }

    /**
     * Deliver an error.
     *
     * @param id the request id
     * @param error the failure
     * @return false if no such question is pending
     */
    public boolean fail(long id, Throwable error) {
        Entry entry = pending.remove(id);
        if (entry == null) {
            return false;
        }
        cancelTimer(entry);
        deliver(entry.future, null, error);
        return true;
    }

    /**
     * Fail every pending question, and every later one, with {@code reason}. Idempotent: the first
     * reason stays.
     *
     * @param reason why (typically: the connection was lost)
     */
    public void failAll(Throwable reason) {
        synchronized (this) {
            if (closedReason == null) {
                closedReason = reason;
            }
        }
        for (Long id : new ArrayList<>(pending.keySet())) {
            fail(id, closedReason);
        }
    }

    /** @return true once {@link #failAll} ran */
    public boolean isClosed() {
        return closedReason != null;
    }

    /** @return how many questions await an answer */
    public int size() {
        return pending.size();
    }

    /** @return the ids awaiting an answer (a snapshot) */
    public List<Long> pendingIds() {
        return new ArrayList<>(pending.keySet());
    }

    private static void cancelTimer(Entry entry) {
        if (entry.timeout != null) {
            entry.timeout.cancel(false);
        }
    }

    private void deliver(CompletableFuture<Object> future, Object value, Throwable error) {
        Runnable r = error == null ? () -> future.complete(value)
                : () -> future.completeExceptionally(error);
        try {
            executor.execute(r);
        } catch (RejectedExecutionException e) {
            r.run(); // the executor is shut down: better the wrong thread than a hung future
        }
    }
}
