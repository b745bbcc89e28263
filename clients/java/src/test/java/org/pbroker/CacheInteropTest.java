package org.pbroker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.pbroker.InteropFixtures.get;

import java.util.LinkedHashMap;
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
            assertTrue(copy.updateThread.startsWith("pbroker-cache"), copy.updateThread);
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
