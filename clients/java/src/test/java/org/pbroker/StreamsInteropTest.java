package org.pbroker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.pbroker.InteropFixtures.get;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Flow;
import java.util.stream.LongStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.pbroker.wire.Wire;

/**
 * Streams live against the Python broker (docs/PROTOCOL.md section 17), both directions: the
 * Java client consumes Python generators (as a blocking iterator and as a Flow.Publisher) within
 * its window, cancels them, sees their failures in order and fails them when the connection goes;
 * and serves Java iterators to Python. The fixture counts what its generators were pulled, so
 * the window is checked on the producer's side too. No sleeps: every wait is on an answer.
 */
class StreamsInteropTest {
    @RegisterExtension
    static final FixtureServer SERVER = new FixtureServer("fixture_server.py");

    private static final int WINDOW = 8;

    private static PBClient connect(PBClient.Options options) throws Exception {
        return PBClient.connect("127.0.0.1", SERVER.port("plain"), options);
    }

    @Test
    void tenThousandItemsCrossAWindowOfEight() throws Exception {
        try (PBClient client = connect(PBClient.Options.defaults().streamWindow(WINDOW, 1 << 20))) {
            RemoteReference root = get(client.getRootObject());
            RemoteStream stream = (RemoteStream) get(root.callRemote("counted", "big", 10_000));
            assertEquals(WINDOW, stream.windowItems(), "the smaller of Python's 64 and our 8");
            long taken = 0;
            long sum = 0;
            long maxAhead = 0; // the producer's pulls beyond what we took, at the checks
            int maxBuffered = 0;
            for (Object item : stream) {
                assertEquals(taken, item, "in order");
                sum += (Long) item;
                taken++;
                maxBuffered = Math.max(maxBuffered, stream.buffered());
                if (taken % 250 == 0) {
                    // every credit we sent was for items taken by now, so Python cannot have
                    // pulled more than the window beyond them (section 17.2)
                    long pulled = ((Number) ((Map<?, ?>) get(root.callRemote("stream_stats",
                            "big"))).get("pulled")).longValue();
                    maxAhead = Math.max(maxAhead, pulled - taken);
                    assertTrue(pulled - taken <= WINDOW, "pulled " + pulled + " with " + taken
                            + " taken: over the window of " + WINDOW);
                }
            }
            assertEquals(10_000, taken);
            assertEquals(9_999L * 10_000 / 2, sum);
            assertTrue(maxBuffered <= WINDOW, "buffered " + maxBuffered);
            assertTrue(maxAhead > 0, "the producer never ran ahead: the check saw nothing");
            System.out.println("StreamsInteropTest: 10000 items, window " + WINDOW
                    + ": at most " + maxAhead + " pulled ahead by Python, " + maxBuffered
                    + " buffered in Java");
        }
    }

    @Test
    void aPublisherGetsTheItemsAsItRequestsThem() throws Exception {
        try (PBClient client = connect(PBClient.Options.defaults().streamWindow(4, 1 << 20))) {
            RemoteReference root = get(client.getRootObject());
            RemoteStream stream = (RemoteStream) get(root.callRemote("numbers", 1000));
            Collector collector = new Collector(1);
            stream.subscribe(collector);
            assertEquals(LongStream.range(0, 1000).boxed().toList(), get(collector.done));
        }
    }

    @Test
    void closingTheIteratorStopsThePythonGenerator() throws Exception {
        try (PBClient client = connect(PBClient.Options.defaults().streamWindow(WINDOW, 1 << 20))) {
            RemoteReference root = get(client.getRootObject());
            RemoteStream stream = (RemoteStream) get(root.callRemote("counted", "endless", null));
            try (RemoteStream.BlockingIterator it = stream.iterator()) {
                for (long i = 0; i < 100; i++) {
                    assertEquals(i, it.next());
                }
            }
            long pulled = ((Number) get(root.callRemote("wait_closed", "endless"))).longValue();
            assertTrue(pulled >= 100 && pulled <= 100 + WINDOW, "pulled " + pulled);
            assertFalse(stream.iterator().hasNext(), "a cancelled stream has ended");
        }
    }

    @Test
    void cancellingTheSubscriptionStopsThePythonGenerator() throws Exception {
        try (PBClient client = connect(PBClient.Options.defaults())) {
            RemoteReference root = get(client.getRootObject());
            RemoteStream stream = (RemoteStream) get(root.callRemote("counted", "flow", null));
            Collector collector = new Collector(50);
            stream.subscribe(collector);
            assertEquals(50, get(collector.cancelledAfter).size());
            long pulled = ((Number) get(root.callRemote("wait_closed", "flow"))).longValue();
            assertTrue(pulled >= 50 && pulled <= 50 + 64, "pulled " + pulled);
        }
    }

    @Test
    void aStreamDroppedUnreadIsCancelledAfterGarbageCollection() throws Exception {
        try (PBClient client = connect(PBClient.Options.defaults())) {
            RemoteReference root = get(client.getRootObject());
            CompletableFuture<Object> f = root.callRemote("counted", "dropped", null);
            assertInstanceOf(RemoteStream.class, get(f));
            f = null; // drop every strong reference to the stream
            CompletableFuture<Object> closed = root.callRemote("wait_closed", "dropped");
            long deadline = System.nanoTime() + java.util.concurrent.TimeUnit.SECONDS.toNanos(20);
            while (!closed.isDone() && System.nanoTime() < deadline) {
                System.gc();
                try {
                    closed.get(20, java.util.concurrent.TimeUnit.MILLISECONDS); // GC is not
                } catch (java.util.concurrent.TimeoutException notYet) { //   something to wait on
                    // collect again
                }
            }
            assertTrue(closed.isDone(), "the dropped stream's generator was never closed");
        }
    }

    @Test
    void aFailureArrivesAfterTheItemsBeforeIt() throws Exception {
        try (PBClient client = connect(PBClient.Options.defaults())) {
            RemoteReference root = get(client.getRootObject());
            Iterator<Object> it = ((RemoteStream) get(root.callRemote("failing", 5))).iterator();
            for (long i = 0; i < 5; i++) {
                assertEquals(i, it.next());
            }
            RemoteException e = assertThrows(RemoteException.class, it::hasNext);
            assertEquals(Wire.FAILED, e.kind());
            assertEquals("builtins.ValueError", e.remoteType());
            assertEquals("ran dry after 5", e.remoteMessage());
            // the same, as a publisher
            Collector collector = new Collector(1);
            ((RemoteStream) get(root.callRemote("failing", 3))).subscribe(collector);
            ExecutionException failed = assertThrows(ExecutionException.class,
                    () -> get(collector.done));
            assertEquals(List.of(0L, 1L, 2L), collector.items);
            assertEquals("ran dry after 3",
                    assertInstanceOf(RemoteException.class, failed.getCause()).remoteMessage());
        }
    }

    @Test
    void losingTheConnectionFailsAnOpenStreamAfterItsItems() throws Exception {
        PBClient client = connect(PBClient.Options.defaults().streamWindow(WINDOW, 1 << 20));
        RemoteReference root = get(client.getRootObject());
        RemoteStream stream = (RemoteStream) get(root.callRemote("slow_numbers", 1000, 0.01));
        Iterator<Object> it = stream.iterator();
        assertEquals(0L, it.next());
        client.close();
        long next = 1;
        try {
            while (it.hasNext()) { // what was buffered, in order, then the failure
                assertEquals(next++, it.next());
            }
            throw new AssertionError("the stream ended normally after " + next + " items");
        } catch (ConnectionLostException expected) {
            assertTrue(stream.isEnded());
        }
    }

    @Test
    void aClientWithoutTheFeatureGetsUnimplemented() throws Exception {
        try (PBClient client = connect(PBClient.Options.defaults()
                .withholdFeatures(Wire.FEATURE_STREAMS))) {
            RemoteReference root = get(client.getRootObject());
            ExecutionException e = assertThrows(ExecutionException.class,
                    () -> get(root.callRemote("numbers", 3)));
            UnimplementedException u = assertInstanceOf(UnimplementedException.class, e.getCause());
            assertEquals("broker.StreamsNotNegotiated", u.remoteType());
            assertEquals(3L, get(root.callRemote("add", 1, 2)), "the connection goes on");
        }
    }

    /** What Python consumes from Java: a stream in an answer, cancelled; one in call args. */
    static final class Source implements Referenceable {
        final CompletableFuture<Boolean> closed = new CompletableFuture<>();

        @Remote
        public Object count() {
            return LongStream.iterate(0, i -> i + 1).boxed().onClose(() -> closed.complete(true));
        }
    }

    @Test
    void javaServesStreamsToPython() throws Exception {
        try (PBClient client = connect(PBClient.Options.defaults())) {
            RemoteReference root = get(client.getRootObject());
            Source source = new Source();
            assertEquals(List.of(0L, 1L, 2L, 3L, 4L), get(root.callRemote("take", source, "count", 5)));
            assertTrue(get(source.closed), "Python's cancel closed the Java stream");
            List<Object> sent = new ArrayList<>();
            for (int i = 0; i < 300; i++) {
                sent.add(i % 3 == 0 ? null : "item " + i);
            }
            assertEquals(sent, get(root.callRemote("consume",
                    OutgoingStream.of(sent).window(5, 100))));
        }
    }

    /**
     * A publisher of 0 … n−1 (endless for n &lt; 0) that emits on a thread of its own, as much as
     * is requested, and notes the most demand outstanding at once and whether it was cancelled.
     */
    static final class RangePublisher implements Flow.Publisher<Object> {
        final long n;
        final java.util.concurrent.ExecutorService thread =
                java.util.concurrent.Executors.newSingleThreadExecutor();
        final CompletableFuture<Long> cancelled = new CompletableFuture<>();
        final java.util.concurrent.atomic.AtomicLong maxOutstanding =
                new java.util.concurrent.atomic.AtomicLong();

        RangePublisher(long n) {
            this.n = n;
        }

        @Override
        public void subscribe(Flow.Subscriber<? super Object> subscriber) {
            subscriber.onSubscribe(new Flow.Subscription() {
                private long next;
                private long outstanding;
                private boolean stopped;

                @Override
                public void request(long k) {
                    thread.execute(() -> {
                        outstanding += k;
                        maxOutstanding.accumulateAndGet(outstanding, Math::max);
                        while (!stopped && outstanding > 0 && (n < 0 || next < n)) {
                            outstanding--;
                            subscriber.onNext(next++);
                        }
                        if (!stopped && n >= 0 && next == n) {
                            stopped = true;
                            subscriber.onComplete();
                        }
                    });
                }

                @Override
                public void cancel() {
                    thread.execute(() -> {
                        stopped = true;
                        cancelled.complete(next);
                    });
                }
            });
        }
    }

    /** Serves {@link RangePublisher}s. */
    static final class Publishing implements Referenceable {
        final RangePublisher endless = new RangePublisher(-1);

        @Remote
        public Object publisher() {
            return endless;
        }
    }

    @Test
    void javaServesAPublisherWithinTheCredit() throws Exception {
        try (PBClient client = connect(PBClient.Options.defaults())) {
            RemoteReference root = get(client.getRootObject());
            RangePublisher numbers = new RangePublisher(500);
            assertEquals(LongStream.range(0, 500).boxed().toList(), get(root.callRemote("consume",
                    OutgoingStream.of(numbers).window(4, 1 << 20))));
            assertTrue(numbers.maxOutstanding.get() <= 4, "asked for "
                    + numbers.maxOutstanding.get() + " at once with a window of 4");
            Publishing publishing = new Publishing();
            assertEquals(List.of(0L, 1L, 2L), get(root.callRemote("take", publishing, "publisher", 3)));
            long emitted = get(publishing.endless.cancelled);
            assertTrue(emitted >= 3 && emitted <= 3 + 64, "emitted " + emitted);
            numbers.thread.shutdown();
            publishing.endless.thread.shutdown();
        }
    }

    /** Sums a stream Python passes as an argument, iterating it on the callback executor. */
    static final class Summer implements Referenceable {
        @Remote
        public long total(RemoteStream numbers) {
            long total = 0;
            for (Object item : numbers) {
                total += (Long) item;
            }
            return total;
        }
    }

    @Test
    void aStreamAsAnArgumentOfACallToJava() throws Exception {
        try (PBClient client = connect(PBClient.Options.defaults().streamWindow(WINDOW, 1 << 20))) {
            RemoteReference root = get(client.getRootObject());
            assertEquals(999L * 1000 / 2, get(root.callRemote("send_stream", new Summer(), "total",
                    1000)));
        }
    }

    /** A subscriber that requests one at a time and cancels after {@code cancelAt} items. */
    private static final class Collector implements Flow.Subscriber<Object> {
        final List<Object> items = new ArrayList<>();
        final CompletableFuture<List<Object>> done = new CompletableFuture<>();
        final CompletableFuture<List<Object>> cancelledAfter = new CompletableFuture<>();
        private final int cancelAt;
        private Flow.Subscription subscription;

        Collector(int cancelAt) {
            this.cancelAt = cancelAt;
        }

        @Override
        public void onSubscribe(Flow.Subscription s) {
            subscription = s;
            s.request(1);
        }

        @Override
        public void onNext(Object item) {
            items.add(item);
            if (cancelAt > 1 && items.size() == cancelAt) {
                subscription.cancel();
                cancelledAfter.complete(List.copyOf(items));
                return;
            }
            subscription.request(1);
        }

        @Override
        public void onError(Throwable t) {
            done.completeExceptionally(t);
        }

        @Override
        public void onComplete() {
            done.complete(List.copyOf(items));
        }
    }
}
