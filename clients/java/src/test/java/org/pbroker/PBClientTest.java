package org.pbroker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.pbroker.wire.Answer;
import org.pbroker.wire.Call;
import org.pbroker.wire.Cancel;
import org.pbroker.wire.CopyState;
import org.pbroker.wire.Decref;
import org.pbroker.wire.ErrorMessage;
import org.pbroker.wire.ExportedRef;
import org.pbroker.wire.FailureInfo;
import org.pbroker.wire.Goodbye;
import org.pbroker.wire.Hello;
import org.pbroker.wire.Ping;
import org.pbroker.wire.ReturnedRef;
import org.pbroker.wire.Wire;
import org.pbroker.wire.WireEncoder;

/** The client against a scripted Java peer: every message the client sends is checked. */
class PBClientTest {
    private FakeServer server;
    private PBClient client;

    record Point(long x, double y) {}

    static final class Listener implements Referenceable {
        final LinkedBlockingQueue<String> got = new LinkedBlockingQueue<>();

        @Remote
        public int update(String key, int value) {
            got.add(key + "=" + value);
            return value * 2;
        }

        @Remote("async_twice")
        public CompletableFuture<Long> twice(long v) {
            return CompletableFuture.supplyAsync(() -> v * 2);
        }

        @Remote
        public void fail(String why) {
            throw new IllegalStateException(why);
        }

        public String notRemote() {
            return "secret";
        }
    }

    @BeforeEach
    void start() throws Exception {
        server = new FakeServer();
        client = PBClient.connect("127.0.0.1", server.port());
    }

    @AfterEach
    void stop() throws Exception {
        client.close();
        server.close();
    }

    private RemoteReference root() throws Exception {
        server.handshake();
        return client.getRootObject().get(10, TimeUnit.SECONDS);
    }

    private static Throwable failure(CompletableFuture<?> f) {
        ExecutionException e = assertThrows(ExecutionException.class,
                () -> f.get(10, TimeUnit.SECONDS));
        return e.getCause();
    }

    @Test
    void handshakeAnnouncesOurLimits() throws Exception {
        Hello hello = server.handshake();
        assertEquals(Wire.PROTOCOL_VERSION, hello.version());
        assertEquals(Wire.DEFAULT_MAX_FRAME_SIZE, hello.maxFrameSize());
        RemoteReference root = client.getRootObject().get(10, TimeUnit.SECONDS);
        assertEquals(0, root.objectId());
    }

    @Test
    void callAndAnswer() throws Exception {
        RemoteReference root = root();
        CompletableFuture<Integer> sum = root.callRemote(Integer.class, "add", 1, 2);
        Call call = server.expect(Call.class);
        assertEquals("add", call.method());
        assertEquals(List.of(1L, 2L), call.args());
        assertEquals(0, call.target());
        assertTrue(call.answerWanted());
        server.send(new Answer(call.requestId(), 3L));
        assertEquals(3, sum.get(10, TimeUnit.SECONDS));
    }

    @Test
    void callsBeforeTheHandshakeWaitForIt() throws Exception {
        CompletableFuture<Object> early = client.getRootObject()
                .thenCompose(r -> r.callRemote("ping"));
        server.handshake();
        Call call = server.expect(Call.class);
        server.send(new Answer(call.requestId(), "pong"));
        assertEquals("pong", early.get(10, TimeUnit.SECONDS));
    }

    @Test
    void keywordArgumentsAndOneWayCalls() throws Exception {
        RemoteReference root = root();
        root.callRemoteWithKeywords("greet", List.of("ada"), Map.of("times", 2));
        Call call = server.expect(Call.class);
        assertEquals(Map.of("times", 2L), call.kwargs());
        root.callRemoteNoAnswer("notify", "x");
        Call oneWay = server.expect(Call.class);
        assertFalse(oneWay.answerWanted());
        assertEquals(0, oneWay.requestId());
    }

    @Test
    void remoteErrorsCarryKindTypeAndMessage() throws Exception {
        RemoteReference root = root();
        CompletableFuture<Object> a = root.callRemote("div", 1, 0);
        CompletableFuture<Object> b = root.callRemote("nope");
        Call ca = server.expect(Call.class);
        Call cb = server.expect(Call.class);
        server.send(new ErrorMessage(ca.requestId(), new FailureInfo("failed",
                "builtins.ZeroDivisionError", "division by zero", null)));
        server.send(new ErrorMessage(cb.requestId(), new FailureInfo("unimplemented",
                "broker.NoSuchMethod", "no remote method 'nope'", null)));
        RemoteException ea = assertInstanceOf(RemoteException.class, failure(a));
        assertEquals("failed", ea.kind());
        assertEquals("builtins.ZeroDivisionError", ea.remoteType());
        assertEquals("division by zero", ea.remoteMessage());
        UnimplementedException eb = assertInstanceOf(UnimplementedException.class, failure(b));
        assertEquals("unimplemented", eb.kind());
    }

    @Test
    void referencesFromTheServerAreCallableAndReleasedOnClose() throws Exception {
        RemoteReference root = root();
        CompletableFuture<RemoteReference> child = root.callRemote(RemoteReference.class, "child");
        Call call = server.expect(Call.class);
        server.send(new Answer(call.requestId(), List.of(new ExportedRef(5), new ExportedRef(5))));
        // the same id twice gives one proxy (counted twice)
        CompletableFuture<Object> both = root.callRemote("children");
        Call c2 = server.expect(Call.class);
        server.send(new Answer(c2.requestId(), new ExportedRef(7)));
        assertInstanceOf(RemoteReference.class, both.get(10, TimeUnit.SECONDS));
        assertThrows(ExecutionException.class, () -> child.get(10, TimeUnit.SECONDS),
                "a list is not a RemoteReference");

        CompletableFuture<Object> list = root.callRemote("again");
        Call c3 = server.expect(Call.class);
        server.send(new Answer(c3.requestId(), List.of(new ExportedRef(9), new ExportedRef(9))));
        List<?> refs = (List<?>) list.get(10, TimeUnit.SECONDS);
        assertSame(refs.get(0), refs.get(1));
        RemoteReference ref = (RemoteReference) refs.get(0);
        assertEquals(9, ref.objectId());

        CompletableFuture<Object> r = ref.callRemote("hello");
        Call onRef = server.expect(Call.class);
        assertEquals(9, onRef.target());
        server.send(new Answer(onRef.requestId(), "hi"));
        assertEquals("hi", r.get(10, TimeUnit.SECONDS));

        // handing it back is a receiver ref
        root.callRemote("take", ref);
        assertEquals(List.of(new ReturnedRef(9)), server.expect(Call.class).args());

        ref.close();
        ref.close();
        assertEquals(new Decref(9, 2), server.expect(Decref.class));
        assertTrue(ref.isReleased());
        assertInstanceOf(IllegalStateException.class, failure(ref.callRemote("hello")));
        root.close(); // never released
    }

    @Test
    void unreachableReferencesAreReleasedAfterGarbageCollection() throws Exception {
        RemoteReference root = root();
        CompletableFuture<Object> f = root.callRemote("child");
        Call call = server.expect(Call.class);
        server.send(new Answer(call.requestId(), new ExportedRef(11)));
        assertEquals(11, ((RemoteReference) f.get(10, TimeUnit.SECONDS)).objectId());
        f = null; // drop every strong reference to the proxy
        Decref decref = null;
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        List<Object> seen = new ArrayList<>();
        while (decref == null && System.nanoTime() < deadline) {
            System.gc();
            for (Object m : server.drain()) {
                if (m instanceof Decref d) {
                    decref = d;
                } else {
                    seen.add(m);
                }
            }
            Thread.sleep(20); // GC is not something one can wait on
        }
        assertEquals(new Decref(11, 1), decref, "no decref after GC; other messages: " + seen);
    }

    @Test
    void referenceablesArePassedByReferenceAndCalledBack() throws Exception {
        RemoteReference root = root();
        Listener listener = new Listener();
        root.callRemote("subscribe", listener, listener);
        Call sub = server.expect(Call.class);
        assertEquals(List.of(new ExportedRef(1), new ExportedRef(1)), sub.args());
        assertEquals(1, client.exportedObjects());

        server.send(new Call(100, 1, "update", List.of("k", 7L), Map.of(), 0));
        assertEquals(new Answer(100, 14L), server.expect(Answer.class));
        assertEquals("k=7", listener.got.poll(10, TimeUnit.SECONDS));

        server.send(new Call(101, 1, "async_twice", List.of(21L), Map.of(), 0));
        assertEquals(new Answer(101, 42L), server.expect(Answer.class));

        server.send(new Call(102, 1, "fail", List.of("boom"), Map.of(), 0));
        ErrorMessage err = server.expect(ErrorMessage.class);
        assertEquals(new FailureInfo("failed", "java.lang.IllegalStateException", "boom", null),
                err.failure());

        server.send(new Call(103, 1, "notRemote", List.of(), Map.of(), 0));
        assertEquals("unimplemented", server.expect(ErrorMessage.class).failure().kind());

        server.send(new Call(104, 1, "update", List.of("k"), Map.of(), 0));
        assertEquals("failed", server.expect(ErrorMessage.class).failure().kind());

        server.send(new Call(107, 1, "update", List.of("k", 1L), Map.of(), 4));
        assertEquals("unimplemented", server.expect(ErrorMessage.class).failure().kind());

        server.send(new Call(105, 42, "update", List.of("k", 1L), Map.of(), 0));
        FailureInfo invalid = server.expect(ErrorMessage.class).failure();
        assertEquals("invalid", invalid.kind());
        assertEquals("broker.NoSuchObject", invalid.typeName());

        // the server hands our object back: we get the object itself
        CompletableFuture<Object> back = root.callRemote("give_back");
        Call gb = server.expect(Call.class);
        server.send(new Answer(gb.requestId(), new ReturnedRef(1)));
        assertSame(listener, back.get(10, TimeUnit.SECONDS));

        // two sends, two releases: the export goes away
        server.send(new Decref(1, 2));
        server.send(new Call(106, 1, "update", List.of("k", 1L), Map.of(), 0));
        assertEquals("invalid", server.expect(ErrorMessage.class).failure().kind());
        assertEquals(0, client.exportedObjects());
    }

    @Test
    void copyablesTravelAsRegisteredClasses() throws Exception {
        client.registerCopyable("example.Point", Point.class);
        RemoteReference root = root();
        root.callRemote("draw", new Point(1, 2.5));
        Call call = server.expect(Call.class);
        assertEquals(List.of(new CopyState("example.Point", Map.of("x", 1L, "y", 2.5))),
                call.args());

        CompletableFuture<Point> p = root.callRemote(Point.class, "origin");
        Call c2 = server.expect(Call.class);
        server.send(new Answer(c2.requestId(), new CopyState("example.Point",
                Map.of("x", 3L, "y", 4.0))));
        assertEquals(new Point(3, 4.0), p.get(10, TimeUnit.SECONDS));
    }

    @Test
    void unregisteredCopiesAreRefused() throws Exception {
        RemoteReference root = root();
        CompletableFuture<Object> f = root.callRemote("secret");
        Call call = server.expect(Call.class);
        server.send(new Answer(call.requestId(), new CopyState("os.system", "rm -rf /")));
        UnregisteredCopyException e = assertInstanceOf(UnregisteredCopyException.class,
                failure(f));
        assertEquals("os.system", e.typeName());
        assertTrue(e.getMessage().contains("registerCopyable"));

        // and an incoming call carrying one gets an error instead of running
        Listener listener = new Listener();
        root.callRemote("subscribe", listener);
        server.expect(Call.class);
        server.send(new Call(7, 1, "update", List.of(new CopyState("x.Y", null), 1L), Map.of(), 0));
        FailureInfo refused = server.expect(ErrorMessage.class).failure();
        assertEquals("invalid", refused.kind());
        assertEquals("broker.UnregisteredCopyError", refused.typeName());
        assertTrue(listener.got.isEmpty());
    }

    @Test
    void unencodableArgumentsFailTheCallWithoutSending() throws Exception {
        RemoteReference root = root();
        Throwable e = failure(root.callRemote("m", new Object()));
        assertInstanceOf(LimitExceededException.class, e);
        assertTrue(e.getMessage().contains("cannot encode"), e.getMessage());
        Throwable k = failure(root.callRemote("m", Map.of(List.of(1), 2)));
        assertTrue(k.getMessage().contains("map keys"), k.getMessage());
        root.callRemote("after");
        assertEquals("after", server.expect(Call.class).method());
    }

    @Test
    void disconnectFailsPendingCallsAndRunsListenersOnce() throws Exception {
        RemoteReference root = root();
        AtomicInteger listenerRuns = new AtomicInteger();
        LinkedBlockingQueue<Throwable> reasons = new LinkedBlockingQueue<>();
        client.addDisconnectListener(reason -> {
            listenerRuns.incrementAndGet();
            reasons.add(reason);
        });
        LinkedBlockingQueue<RemoteReference> refNotified = new LinkedBlockingQueue<>();
        root.notifyOnDisconnect(refNotified::add);
        CompletableFuture<Object> pending = root.callRemote("slow");
        server.expect(Call.class);
        server.send(new Goodbye("normal", "shutting down"));
        server.dropConnection();
        Throwable e = failure(pending);
        assertInstanceOf(ConnectionLostException.class, e);
        assertTrue(e.getMessage().contains("shutting down"), e.getMessage());
        assertInstanceOf(ConnectionLostException.class, reasons.poll(10, TimeUnit.SECONDS));
        assertSame(root, refNotified.poll(10, TimeUnit.SECONDS));
        client.close();
        assertEquals(1, listenerRuns.get());
        assertFalse(client.isConnected());
        assertInstanceOf(ConnectionLostException.class, failure(root.callRemote("later")));
        // a listener added afterwards runs at once
        CompletableFuture<Throwable> late = new CompletableFuture<>();
        client.addDisconnectListener(late::complete);
        assertInstanceOf(ConnectionLostException.class, late.get(10, TimeUnit.SECONDS));
    }

    /**
     * docs/PROTOCOL.md section 5.2: bytes of a frame still arriving count as hearing from the
     * server. The heartbeat checks run here with a made-up clock (dead_after one hour, so the
     * housekeeping thread's own checks never come in between); nothing about real time is
     * asserted.
     */
    @Test
    void aFrameStillArrivingIsNotSilence() throws Exception {
        Duration deadAfter = Duration.ofHours(1);
        long d = deadAfter.toNanos();
        try (FakeServer peer = new FakeServer(List.of(Wire.FEATURE_HEARTBEAT));
                PBClient c = PBClient.connect("127.0.0.1", peer.port(),
                        PBClient.Options.defaults().heartbeat(deadAfter))) {
            assertTrue(peer.handshake().features().contains(Wire.FEATURE_HEARTBEAT));
            RemoteReference root = c.getRootObject().get(10, TimeUnit.SECONDS);
            LinkedBlockingQueue<Throwable> lost = new LinkedBlockingQueue<>();
            c.addDisconnectListener(lost::add);
            CompletableFuture<Object> echo = root.callRemote("echo", "x");
            Call call = peer.expect(Call.class);
            long t0 = System.nanoTime();
            c.heartbeatCheck(t0); // last_heard = t0
            String big = "y".repeat(200_000);
            byte[] frame = new WireEncoder().encodeFrame(new Answer(call.requestId(), big));
            int half = frame.length / 2;
            long before = c.bytesReceived();
            peer.sendRaw(Arrays.copyOfRange(frame, 0, half));
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (c.bytesReceived() < before + half) {
                assertTrue(System.nanoTime() < deadline, "the first half never arrived");
                Thread.sleep(5);
            }
            c.heartbeatCheck(t0 + d * 9 / 10); // half a frame arrived: the server is alive
            // 1.5 dead_after since the last whole frame, 0.6 since the last bytes: not dead,
            // only idle (a ping)
            c.heartbeatCheck(t0 + d * 3 / 2);
            assertFalse(echo.isDone(), "the answer is still arriving");
            assertTrue(lost.isEmpty(), () -> "declared dead: " + lost.peek());
            peer.expect(Ping.class);
            peer.sendRaw(Arrays.copyOfRange(frame, half, frame.length));
            assertEquals(big, echo.get(10, TimeUnit.SECONDS));
            // and real silence is still noticed
            c.heartbeatCheck(t0 + 2 * d); // heard the rest
            c.heartbeatCheck(t0 + 3 * d); // dead_after of nothing
            Throwable reason = lost.poll(10, TimeUnit.SECONDS);
            assertInstanceOf(ConnectionLostException.class, reason);
            assertTrue(reason.getMessage().contains("stopped answering"), reason.getMessage());
        }
    }

    @Test
    void closeSaysGoodbye() throws Exception {
        root();
        client.close();
        Goodbye goodbye = server.expect(Goodbye.class);
        assertEquals("normal", goodbye.kind());
        assertEquals("EOF", server.next());
    }

    @Test
    void timeoutFailsTheCallAndCancelsItRemotely() throws Exception {
        RemoteReference root = root();
        CompletableFuture<Object> f = root.callRemoteWithTimeout(Duration.ofMillis(50), "slow");
        Call call = server.expect(Call.class);
        assertInstanceOf(TimeoutException.class, failure(f));
        assertEquals(new Cancel(call.requestId()), server.expect(Cancel.class));
        server.send(new Answer(call.requestId(), "too late")); // dropped
        CompletableFuture<Object> g = root.callRemote("next");
        Call c2 = server.expect(Call.class);
        server.send(new Answer(c2.requestId(), 1L));
        assertEquals(1L, g.get(10, TimeUnit.SECONDS));
    }

    @Test
    void callerCancelSendsCancel() throws Exception {
        RemoteReference root = root();
        CompletableFuture<Object> f = root.callRemote("slow");
        Call call = server.expect(Call.class);
        f.cancel(true);
        assertEquals(new Cancel(call.requestId()), server.expect(Cancel.class));
    }

    @Test
    void serverCancelCancelsOurRunningCall() throws Exception {
        RemoteReference root = root();
        CompletableFuture<String> never = new CompletableFuture<>();
        Referenceable slow = new Referenceable() {
            @Remote
            public CompletableFuture<String> wait1() {
                return never;
            }
        };
        root.callRemote("register", slow);
        server.expect(Call.class);
        server.send(new Call(50, 1, "wait1", List.of(), Map.of(), 0));
        // the call is running (its future is pending) once the next call is answered
        server.send(new Call(51, 0, "x", List.of(), Map.of(), 0));
        assertEquals("unimplemented", server.expect(ErrorMessage.class).failure().kind());
        server.send(new Cancel(50));
        ErrorMessage e = server.expect(ErrorMessage.class);
        assertEquals(50, e.requestId());
        assertEquals("cancelled", e.failure().kind());
        assertTrue(never.isCancelled());
    }

    @Test
    void versionMismatchFailsTheRootWithHandshakeError() throws Exception {
        server.expect(Hello.class);
        server.sendRaw(org.pbroker.wire.WireVectorsTestAccess.frame(
                List.of(1L, "pbroker", 2L, 1L << 24, 64L, 1L << 20, List.of())));
        Throwable e = failure(client.getRootObject());
        assertInstanceOf(org.pbroker.wire.VersionMismatchException.class, e);
        Goodbye bye = server.expect(Goodbye.class);
        assertEquals("unimplemented", bye.kind());
    }

    @Test
    void protocolErrorsSendGoodbyeAndClose() throws Exception {
        RemoteReference root = root();
        CompletableFuture<Object> pending = root.callRemote("x");
        server.expect(Call.class);
        server.sendRaw(org.pbroker.wire.WireVectorsTestAccess.frame(List.of(99L, 1L)));
        Goodbye bye = server.expect(Goodbye.class);
        assertEquals("unimplemented", bye.kind());
        assertInstanceOf(ConnectionLostException.class, failure(pending));
    }

    @Test
    void oversizedFrameHeaderSendsGoodbyeAndCloses() throws Exception {
        root();
        server.sendRaw(new byte[] {(byte) 0xff, (byte) 0xff, (byte) 0xff, (byte) 0xff});
        Goodbye bye = server.expect(Goodbye.class);
        assertEquals("invalid", bye.kind());
        assertTrue(bye.message().contains("4294967295"), bye.message());
    }

    @Test
    void calledBackCodeNeverRunsOnTheReaderThread() throws Exception {
        RemoteReference root = root();
        LinkedBlockingQueue<String> threads = new LinkedBlockingQueue<>();
        root.callRemote("m").thenRun(() -> threads.add(Thread.currentThread().getName()));
        Call call = server.expect(Call.class);
        server.send(new Answer(call.requestId(), null));
        String thread = threads.poll(10, TimeUnit.SECONDS);
        assertTrue(thread.startsWith("pbroker-callbacks"), thread);
        assertNotSame(null, thread);
    }
}
