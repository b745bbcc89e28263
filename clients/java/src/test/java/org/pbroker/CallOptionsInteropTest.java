package org.pbroker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.pbroker.InteropFixtures.get;

import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Deadlines and metadata live against the Python broker (docs/PROTOCOL.md section 18): a Java
 * call with a 0.2 s budget to a Python method that waits on a Deferred nobody fires fails with
 * {@link DeadlineExceededException}, and a later call shows the Python method was cancelled.
 * No sleeps: the test waits on the call's own outcome.
 */
class CallOptionsInteropTest {
    @RegisterExtension
    static final FixtureServer SERVER = new FixtureServer("fixture_server.py");

    @Test
    void aDeadlineCancelsThePythonMethodAndFailsTheJavaCall() throws Exception {
        try (PBClient client = SERVER.connect()) {
            RemoteReference root = get(client.getRootObject());
            CompletableFuture<Object> call = root.options(
                    CallOptions.timeout(Duration.ofMillis(200))).callRemote("wait_forever", "j1");
            ExecutionException e = assertThrows(ExecutionException.class, () -> get(call));
            DeadlineExceededException deadline = assertInstanceOf(DeadlineExceededException.class,
                    e.getCause());
            assertEquals("deadline", deadline.kind());
            // Whichever timer fired first (ours: a cancel went out; the server's: it answered
            // "deadline"), the cancel or the deadline reached the method before this next call.
            Object how = get(root.callRemote("was_cancelled", "j1"));
            assertTrue("deadline".equals(how) || "cancelled".equals(how), "not cancelled: " + how);
        }
    }

    @Test
    void metadataAndTheBudgetTravelWithTheCall() throws Exception {
        try (PBClient client = SERVER.connect()) {
            RemoteReference root = get(client.getRootObject());
            String traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
            Map<?, ?> seen = (Map<?, ?>) get(root.options(CallOptions.timeout(Duration.ofSeconds(5))
                    .withMetadata(Map.of("traceparent", traceparent))).callRemote("call_options"));
            double remaining = ((Number) seen.get("remaining")).doubleValue();
            assertTrue(remaining > 0 && remaining <= 5.0, "remaining " + remaining);
            assertEquals(Map.of("traceparent", traceparent), seen.get("metadata"));
            assertEquals("4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", seen.get("call_id"));
            Map<?, ?> plain = (Map<?, ?>) get(root.callRemote("call_options"));
            assertNull(plain.get("remaining")); // no default timeout on this client: nothing sent
        }
    }

    /** A Java object Python calls with a deadline (section 18.2: Java as the callee). */
    static final class Slow implements Referenceable {
        final CompletableFuture<String> hung = new CompletableFuture<>();
        private final RemoteReference root;

        Slow(RemoteReference root) {
            this.root = root;
        }

        /** Never answers: only the deadline ends it. */
        @Remote
        public CompletableFuture<String> hang() {
            return hung;
        }

        /** Calls Python back while serving: the nested call inherits the budget left. */
        @Remote
        public CompletableFuture<Object> nested() {
            return root.callRemote("call_options");
        }
    }

    @Test
    void aPythonDeadlineStopsTheJavaMethod() throws Exception {
        try (PBClient client = SERVER.connect()) {
            RemoteReference root = get(client.getRootObject());
            Slow slow = new Slow(root);
            Map<?, ?> outcome = (Map<?, ?>) get(root.callRemote("call_with_deadline", slow, "hang",
                    0.2));
            assertEquals(Map.of("error", "DeadlineExceeded", "kind", "deadline"), outcome);
            // the method's future is cancelled (by the deadline's timer, or the caller's cancel)
            assertThrows(java.util.concurrent.CancellationException.class, () -> get(slow.hung));
        }
    }

    @Test
    void aNestedJavaCallInheritsTheBudgetLeft() throws Exception {
        try (PBClient client = SERVER.connect()) {
            RemoteReference root = get(client.getRootObject());
            Map<?, ?> outcome = (Map<?, ?>) get(root.callRemote("call_with_deadline",
                    new Slow(root), "nested", 5.0));
            Map<?, ?> seen = (Map<?, ?>) outcome.get("value");
            double remaining = ((Number) seen.get("remaining")).doubleValue();
            assertTrue(remaining > 0 && remaining < 5.0, "the nested call's budget: " + remaining);
        }
    }

    @Test
    void badOptionsAreRefusedWhereTheyAreWritten() {
        assertThrows(IllegalArgumentException.class,
                () -> CallOptions.timeout(Duration.ofSeconds(-1)));
        assertThrows(IllegalArgumentException.class,
                () -> new CallOptions(null, Map.of("k", "x".repeat(CallOptions.MAX_METADATA_BYTES))));
    }
}
