package org.pbroker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.pbroker.wire.CacheRef;
import org.pbroker.wire.CacheRelease;
import org.pbroker.wire.CacheUpdate;
import org.pbroker.wire.Message;

/**
 * The holder's counts across a release that is decided at once and sent at the next flush
 * (docs/PROTOCOL.md sections 16.3, 16.4), driven by hand: what it sends is collected, updates
 * run inline, the flush is called by the test. No connection, no thread, no collector.
 */
class CacheHolderTest {
    /** A copy that records its updates. */
    public static class Board extends RemoteCache {
        final List<String> seen = new ArrayList<>();

        public Board() {}

        public void observe_set(String value) {
            seen.add(value);
        }
    }

    private final List<Message> sent = new ArrayList<>();
    private final AtomicInteger flushesAsked = new AtomicInteger();
    private final CacheHolder holder = new CacheHolder(sent::add, flushesAsked::incrementAndGet,
            Runnable::run, 100, "test");

    @BeforeAll
    static void register() {
        RemoteCache.register("test.HolderBoard", Board.class);
    }

    private Object receive(CacheRef ref, List<RuntimeException> problems) {
        return holder.received(ref, problems);
    }

    private Board first(long id) {
        List<RuntimeException> problems = new ArrayList<>();
        Board b = (Board) receive(new CacheRef(id, "test.HolderBoard", Map.of()), problems);
        assertEquals(List.of(), problems);
        return b;
    }

    private Object again(long id) {
        List<RuntimeException> problems = new ArrayList<>();
        Object got = receive(new CacheRef(id), problems);
        assertEquals(List.of(), problems);
        return got;
    }

    private void update(long id, String value) {
        holder.update(new CacheUpdate(id, "set", List.of(value), Map.of()));
    }

    @Test
    void aRefArrivingAfterTheReleaseIsDecidedKeepsTheCopyAndTheReleaseCarriesTheEarlierCount() {
        Board board = first(7);
        assertSame(board, again(7)); // 2 refs received
        board.releaseCache();
        assertFalse(board.isLive());
        assertEquals(List.of(), sent); // decided, not sent: the flush sends it
        assertEquals(1, flushesAsked.get());
        assertTrue(holder.pending());
        update(7, "while-released"); // the owner still holds the entry: it still applies

        assertSame(board, again(7)); // the owner sent it again before it saw the release
        assertTrue(board.isLive());
        holder.flush();
        assertEquals(List.of(new CacheRelease(7, 2)), sent); // only what was decided
        assertEquals(1, holder.size()); // the copy lives on with the ref that came after
        assertTrue(board.isLive());
        update(7, "after-flush");
        assertEquals(List.of("while-released", "after-flush"), board.seen);

        sent.clear();
        board.releaseCache();
        holder.flush();
        assertEquals(List.of(new CacheRelease(7, 1)), sent); // the remaining count, once
        assertEquals(0, holder.size());
        update(7, "dropped"); // released and sent: updates are ignored (16.2)
        assertEquals(List.of("while-released", "after-flush"), board.seen);
        assertFalse(board.isLive());
    }

    @Test
    void aRefArrivingAfterTheReleaseWasSentIsTheCrossingOfSection16_4() {
        Board board = first(3);
        board.releaseCache();
        holder.flush();
        assertEquals(List.of(new CacheRelease(3, 1)), sent);
        sent.clear();
        List<RuntimeException> problems = new ArrayList<>();
        assertNull(receive(new CacheRef(3), problems));
        InvalidReferenceException e = assertInstanceOf(InvalidReferenceException.class,
                problems.get(0));
        assertEquals("broker.NoSuchCache", e.remoteType());
        assertEquals(List.of(new CacheRelease(3, 1)), sent); // released at once: counts balance
        assertFalse(board.isLive());
    }

    @Test
    void aReleaseWithNoRefAfterItRemovesTheEntryOnceAndASecondReleaseIsNothing() {
        Board board = first(4);
        again(4);
        again(4);
        board.releaseCache();
        board.releaseCache();
        holder.flush();
        holder.flush();
        assertEquals(List.of(new CacheRelease(4, 3)), sent);
        assertEquals(0, holder.size());
        assertFalse(holder.pending());
    }

    @Test
    void releaseAllThenARefBeforeTheFlushKeepsThatCopyOnly() {
        Board kept = first(1);
        Board gone = first(2);
        again(1);
        holder.releaseAll();
        assertFalse(kept.isLive());
        assertFalse(gone.isLive());
        assertSame(kept, again(1));
        holder.flush();
        assertEquals(List.of(new CacheRelease(1, 2), new CacheRelease(2, 1)), sent);
        assertEquals(1, holder.size());
        assertTrue(kept.isLive());
        assertFalse(gone.isLive());
        kept.releaseCache(); // releaseAll's entry came back live: it can be released again
        sent.clear();
        holder.flush();
        assertEquals(List.of(new CacheRelease(1, 1)), sent);
    }

    @Test
    void aReleaseAndARefRacingFromTwoThreadsNeverLoseOrDoubleACount() throws Exception {
        // Each round: the owner's count is what we received; what we sent plus what we still
        // hold must equal it, whichever of the two threads takes the lock first.
        long received;
        long id = 50;
        for (int round = 0; round < 200; round++) {
            Board board = first(id);
            received = 1;
            java.util.concurrent.CountDownLatch go = new java.util.concurrent.CountDownLatch(1);
            Thread releaser = new Thread(() -> {
                try {
                    go.await();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                board.releaseCache();
            });
            releaser.start();
            go.countDown();
            assertSame(board, again(id)); // the session's thread: a ref, as the decoder would
            received++;
            releaser.join();
            holder.flush();
            long released = sent.stream().mapToLong(m -> ((CacheRelease) m).count()).sum();
            assertEquals(holder.size() == 1, board.isLive());
            assertTrue(released >= 1 && released <= received, "released " + released);
            if (holder.size() == 1) {
                board.releaseCache();
                holder.flush();
            }
            long total = sent.stream().mapToLong(m -> ((CacheRelease) m).count()).sum();
            assertEquals(received, total, "round " + round);
            assertEquals(0, holder.size());
            sent.clear();
            id++;
        }
    }
}
