package org.pbroker.net;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

class PendingCallsTest {
    private final ExecutorService callbacks =
            Executors.newSingleThreadExecutor(r -> new Thread(r, "callbacks"));
    private final ScheduledExecutorService scheduler = Executors.newSingleThreadScheduledExecutor();
    private final LinkedBlockingQueue<Long> abandoned = new LinkedBlockingQueue<>();
    private final PendingCalls calls = new PendingCalls(callbacks, scheduler, abandoned::add);

    @AfterEach
    void shutdown() {
        callbacks.shutdownNow();
        scheduler.shutdownNow();
    }

    @Test
    void answersCompleteOnTheCallbackExecutor() throws Exception {
        long id = calls.nextId();
        CompletableFuture<Object> f = calls.register(id, null);
        LinkedBlockingQueue<String> threads = new LinkedBlockingQueue<>();
        f.thenAccept(v -> threads.add(Thread.currentThread().getName() + ":" + v));
        Thread reader = new Thread(() -> assertTrue(calls.complete(id, "ok")), "reader");
        reader.start();
        reader.join();
        // polled, not f.get(): a thread blocked in get() may itself run dependent stages
        assertEquals("callbacks:ok", threads.poll(5, TimeUnit.SECONDS));
        assertFalse(calls.complete(id, "twice"));
        assertEquals(0, calls.size());
    }

    @Test
    void idsAreUniqueAndNonZero() {
        long a = calls.nextId();
        long b = calls.nextId();
        assertNotEquals(0, a);
        assertNotEquals(a, b);
    }

    @Test
    void errorsFailTheFuture() {
        long id = calls.nextId();
        CompletableFuture<Object> f = calls.register(id, null);
        IllegalStateException boom = new IllegalStateException("boom");
        calls.fail(id, boom);
        ExecutionException e = assertThrows(ExecutionException.class,
                () -> f.get(5, TimeUnit.SECONDS));
        assertSame(boom, e.getCause());
    }

    @Test
    void failAllFailsPendingAndLaterCalls() {
        CompletableFuture<Object> a = calls.register(calls.nextId(), null);
        CompletableFuture<Object> b = calls.register(calls.nextId(), Duration.ofHours(1));
        IOException lost = new IOException("lost");
        calls.failAll(lost);
        calls.failAll(new IOException("second reason is ignored"));
        for (CompletableFuture<Object> f : java.util.List.of(a, b)) {
            ExecutionException e = assertThrows(ExecutionException.class,
                    () -> f.get(5, TimeUnit.SECONDS));
            assertSame(lost, e.getCause());
        }
        CompletableFuture<Object> late = calls.register(calls.nextId(), null);
        ExecutionException e = assertThrows(ExecutionException.class,
                () -> late.get(5, TimeUnit.SECONDS));
        assertSame(lost, e.getCause());
        assertTrue(calls.isClosed());
        assertEquals(0, calls.size());
    }

    @Test
    void timeoutFailsTheCallAndReportsItAbandoned() throws Exception {
        long id = calls.nextId();
        CompletableFuture<Object> f = calls.register(id, Duration.ofMillis(20));
        ExecutionException e = assertThrows(ExecutionException.class,
                () -> f.get(5, TimeUnit.SECONDS));
        assertInstanceOf(TimeoutException.class, e.getCause());
        assertEquals(id, abandoned.poll(5, TimeUnit.SECONDS));
        assertFalse(calls.complete(id, "late answer is dropped"));
    }

    @Test
    void callerCancelReportsAbandoned() throws Exception {
        long id = calls.nextId();
        CompletableFuture<Object> f = calls.register(id, null);
        f.cancel(false);
        assertEquals(id, abandoned.poll(5, TimeUnit.SECONDS));
        assertEquals(0, calls.size());
        assertFalse(calls.complete(id, "late"));
    }

    @Test
    void shutDownExecutorStillCompletes() throws Exception {
        long id = calls.nextId();
        CompletableFuture<Object> f = calls.register(id, null);
        callbacks.shutdown();
        calls.complete(id, 42);
        assertEquals(42, f.get(5, TimeUnit.SECONDS));
    }
}
