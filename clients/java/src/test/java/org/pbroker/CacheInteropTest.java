package org.pbroker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.pbroker.InteropFixtures.get;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Caches live against the Python broker (docs/PROTOCOL.md section 16): a Python Cacheable
 * scoreboard (src/test/resources/fixture_server.py) arrives as a {@link RemoteCache} with its
 * state, follows the server's updates, is the same object when sent again, and its release or
 * the connection's end makes the server's {@code stopped_observing} run exactly once.
 */
class CacheInteropTest {
    @RegisterExtension
    static final FixtureServer SERVER = new FixtureServer("fixture_server.py");

    /** The Java copy: updates land in {@code scores} and are announced on {@code events}. */
    public static class ScoreboardCopy extends RemoteCache {
        final Map<String, Long> scores = new LinkedHashMap<>();
        final BlockingQueue<String> events = new LinkedBlockingQueue<>();
        volatile String updateThread;

        public ScoreboardCopy() {}

        @Override
        protected void setCopyableState(Object state) {
            ((Map<?, ?>) state).forEach((k, v) -> scores.put((String) k, (Long) v));
        }

        public void observe_set_score(String player, long score) {
            scores.put(player, score);
            updateThread = Thread.currentThread().getName();
            events.add(player + "=" + score);
        }
    }

    @BeforeAll
    static void registerTheCopy() {
        RemoteCache.register("interop.Scoreboard", ScoreboardCopy.class);
    }

    @Test
    void stateOnceThenLiveUpdatesThenReleaseStopsObservingOnce() throws Exception {
        try (PBClient client = SERVER.connect()) {
            RemoteReference root = get(client.getRootObject());
            ScoreboardCopy copy = assertInstanceOf(ScoreboardCopy.class,
                    get(root.callRemote("scoreboard", "release")));
            assertEquals(Map.of(), copy.scores);
            get(root.callRemote("set_score", "release", "ann", 3));
            assertEquals("ann=3", copy.events.poll(10, TimeUnit.SECONDS));
            get(root.callRemote("set_score", "release", "bob", 4));
            assertEquals("bob=4", copy.events.poll(10, TimeUnit.SECONDS));
            assertEquals(Map.of("ann", 3L, "bob", 4L), copy.scores);
            // by default on the callback executor, with the calls and answers (wire order)
            assertTrue(copy.updateThread.startsWith("pbroker-callbacks"), copy.updateThread);
            // The same Cacheable again: the same object, its state not sent again.
            assertSame(copy, get(root.callRemote("scoreboard", "release")));
            assertTrue(copy.isLive());
            copy.releaseCache();
            assertFalse(copy.isLive());
            assertEquals(1L, get(root.callRemote("wait_stopped", "release", 1)));
            get(root.callRemote("set_score", "release", "ann", 5)); // nobody watching now
            @SuppressWarnings("unchecked")
            Map<String, Object> stats = (Map<String, Object>) get(
                    root.callRemote("scoreboard_stats", "release"));
            assertEquals(Map.of("watching", 0L, "stopped", 1L), stats);
            assertNull(copy.events.poll());
            assertEquals(Map.of("ann", 3L, "bob", 4L), copy.scores);
        }
    }

    /** The server calls this after each update: it must see that update, not a later one. */
    public static final class Witness implements Referenceable {
        final ScoreboardCopy copy;
        final List<String> late = new java.util.concurrent.CopyOnWriteArrayList<>();

        Witness(ScoreboardCopy copy) {
            this.copy = copy;
        }

        @Remote
        public long seen(String player, long score) {
            Long now = copy.scores.get(player);
            if (now == null || now != score) {
                late.add("call seen(" + score + ") found the copy at " + now);
            }
            return score;
        }
    }

    @Test
    void updatesAndTheServersCallsAndAnswersArriveInWireOrder() throws Exception {
        // Each round the server pushes an update (set_score), answers, then calls the Java
        // witness (call_back): on the wire update, answer, call. Sent without waiting, so the
        // rounds' messages stream in while earlier ones are delivered.
        try (PBClient client = SERVER.connect()) {
            RemoteReference root = get(client.getRootObject());
            ScoreboardCopy copy = (ScoreboardCopy) get(root.callRemote("scoreboard", "order"));
            Witness witness = new Witness(copy);
            List<String> lateAnswers = new java.util.concurrent.CopyOnWriteArrayList<>();
            List<java.util.concurrent.CompletableFuture<?>> rounds = new java.util.ArrayList<>();
            for (long i = 1; i <= 300; i++) {
                long score = i;
                rounds.add(root.callRemote("set_score", "order", "p", score).thenRun(() -> {
                    Long now = copy.scores.get("p");
                    if (now == null || now < score) {
                        lateAnswers.add("answer " + score + " found the copy at " + now);
                    }
                }));
                rounds.add(root.callRemote("call_back", witness, "seen", "p", score));
            }
            for (java.util.concurrent.CompletableFuture<?> f : rounds) {
                get(f);
            }
            assertTrue(witness.late.isEmpty(), witness.late.size() + " calls out of wire order"
                    + " with the updates, first: " + witness.late.subList(0, Math.min(3,
                    witness.late.size())));
            assertTrue(lateAnswers.isEmpty(), lateAnswers.size() + " answers before their"
                    + " update, first: " + lateAnswers.subList(0, Math.min(3, lateAnswers.size())));
            assertEquals(300L, copy.scores.get("p"));
        }
    }

    @Test
    void aSeparateCacheExecutorRunsUpdatesThere() throws Exception {
        java.util.concurrent.ExecutorService own = java.util.concurrent.Executors
                .newSingleThreadExecutor(r -> new Thread(r, "my-cache-thread"));
        try (PBClient client = PBClient.connect("127.0.0.1", SERVER.port("plain"),
                PBClient.Options.defaults().cacheExecutor(own))) {
            RemoteReference root = get(client.getRootObject());
            ScoreboardCopy copy = (ScoreboardCopy) get(root.callRemote("scoreboard", "own"));
            get(root.callRemote("set_score", "own", "dee", 2));
            assertEquals("dee=2", copy.events.poll(10, TimeUnit.SECONDS));
            assertEquals("my-cache-thread", copy.updateThread);
        } finally {
            own.shutdown();
        }
    }

    @Test
    void aCopyNoLongerReferencedIsReleased() throws Exception {
        try (PBClient client = SERVER.connect()) {
            RemoteReference root = get(client.getRootObject());
            Object copy = get(root.callRemote("scoreboard", "gc"));
            assertInstanceOf(ScoreboardCopy.class, copy);
            copy = null;
            // The server answers once its stopped_observing has run: the event we wait for (the
            // collector is only asked, again, while it has not come).
            java.util.concurrent.CompletableFuture<Object> stopped =
                    root.callRemote("wait_stopped", "gc", 1);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            while (!stopped.isDone() && System.nanoTime() < deadline) {
                System.gc();
                try {
                    stopped.get(100, TimeUnit.MILLISECONDS);
                } catch (java.util.concurrent.TimeoutException notYet) {
                    // not collected yet
                }
            }
            assertEquals(1L, get(stopped));
            @SuppressWarnings("unchecked")
            Map<String, Object> stats = (Map<String, Object>) get(
                    root.callRemote("scoreboard_stats", "gc"));
            assertEquals(Map.of("watching", 0L, "stopped", 1L), stats);
        }
    }

    @Test
    void stateSentOnceThenANewConnectionGetsTheLatestAndDisconnectStopsOnce() throws Exception {
        ScoreboardCopy first;
        try (PBClient watcher = SERVER.connect()) {
            RemoteReference root = get(watcher.getRootObject());
            first = (ScoreboardCopy) get(root.callRemote("scoreboard", "disconnect"));
            get(root.callRemote("set_score", "disconnect", "cy", 1));
            assertEquals("cy=1", first.events.poll(10, TimeUnit.SECONDS));
        } // the connection ends: the server stops observing it, once
        try (PBClient client = SERVER.connect()) {
            RemoteReference root = get(client.getRootObject());
            assertEquals(1L, get(root.callRemote("wait_stopped", "disconnect", 1)));
            ScoreboardCopy second = (ScoreboardCopy) get(root.callRemote("scoreboard", "disconnect"));
            assertEquals(Map.of("cy", 1L), second.scores); // the latest state, once
            @SuppressWarnings("unchecked")
            Map<String, Object> stats = (Map<String, Object>) get(
                    root.callRemote("scoreboard_stats", "disconnect"));
            assertEquals(Map.of("watching", 1L, "stopped", 1L), stats);
            assertFalse(first.isLive());
            assertTrue(second.isLive());
        }
    }
}
