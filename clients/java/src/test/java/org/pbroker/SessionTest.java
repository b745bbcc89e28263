package org.pbroker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.TimeoutException;
import org.junit.jupiter.api.Test;
import org.pbroker.wire.HandshakeException;
import org.pbroker.wire.LocalProtocolException;
import org.pbroker.wire.UnknownMessageTypeException;

/** The socket-free session core, driven with byte frames only (docs/PROTOCOL.md hex). */
class SessionTest {
    /** Our hello and the peer's with the default limits: [1,"pbroker",1,16777216,64,1048576,[]]. */
    static final String HELLO = "000000179701a77062726f6b657201ce0100000040ce0010000090";
    /** Section 12: call [3, 1, 0, "add", [1, 2], {}, 0] and answer [4, 1, 3]. */
    static final String ADD = "0000000d97030100a36164649201028000";
    static final String THREE = "0000000493040103";

    private static byte[] hex(String s) {
        return HexFormat.of().parseHex(s);
    }

    private static String out(Session s) {
        return HexFormat.of().formatHex(s.dataToSend());
    }

    private static Throwable failure(CompletableFuture<?> f) {
        CompletionException e = assertThrows(CompletionException.class, f::join);
        return e.getCause();
    }

    private static Session opened(Session.Role role, Referenceable root) throws Exception {
        Session s = new Session(role, root);
        assertEquals(HELLO, out(s), "our hello is queued at once");
        s.receiveData(hex(HELLO));
        assertEquals(Session.State.OPEN, s.state());
        assertTrue(s.ready().isDone());
        return s;
    }

    @Test
    void handshakeThenACallAndItsAnswer() throws Exception {
        Session s = opened(Session.Role.CLIENT, null);
        CompletableFuture<Object> sum = s.call(0, "add", List.of(1, 2), Map.of(), false);
        assertEquals(ADD, out(s));
        assertFalse(sum.isDone());
        assertEquals(1, s.pendingCalls());
        byte[] answer = hex(THREE);
        for (byte b : answer) { // one byte at a time
            s.receiveData(new byte[] {b});
        }
        assertEquals(3L, sum.join());
        assertEquals(0, s.pendingCalls());
        assertEquals("", out(s));
        assertTrue(s.closeOutcome().isEmpty());
    }

    @Test
    void anIncomingCallIsAnsweredThroughTheSynchronousDispatcher() throws Exception {
        Session s = opened(Session.Role.SERVER, SessionFixtures.root("calc"));
        s.receiveData(hex(ADD));
        assertEquals(THREE, out(s));
        // a hello and a call in one piece: the call is handled after the hello (section 5.1)
        Session t = new Session(Session.Role.SERVER, SessionFixtures.root("calc"));
        t.dataToSend();
        t.receiveData(hex(HELLO + ADD));
        assertEquals(THREE, out(t));
    }

    @Test
    void aDeferredDispatcherAnswersWhenTheCallRuns() throws Exception {
        List<Session.IncomingCall> queued = new ArrayList<>();
        Session.Dispatcher sync = Session.Dispatcher.synchronous();
        Session s = new Session(Session.Role.SERVER, Session.Limits.defaults(), false,
                SessionFixtures.root("calc"), null, new Session.Dispatcher() {
                    @Override
                    public void dispatch(Session.IncomingCall call) {
                        queued.add(call);
                    }

                    @Override
                    public void deliver(Runnable completion) {
                        sync.deliver(completion);
                    }

                    @Override
                    public void reenter(Runnable task) {
                        sync.reenter(task);
                    }
                });
        s.dataToSend();
        s.receiveData(hex(HELLO + ADD));
        assertEquals("", out(s), "nothing until the call runs");
        assertEquals(1, queued.size());
        assertEquals("add", queued.get(0).method());
        queued.get(0).run();
        assertEquals(THREE, out(s));
    }

    @Test
    void thePeersGoodbyeClosesAndFailsPendingCalls() throws Exception {
        Session s = opened(Session.Role.CLIENT, null);
        CompletableFuture<Object> pending = s.call(0, "slow", List.of(), Map.of(), false);
        s.dataToSend();
        // [2, "normal", "bye"], then a call the peer should not have sent: discarded
        s.receiveData(hex("0000000d9302a66e6f726d616ca3627965" + ADD));
        assertEquals(Session.State.CLOSING, s.state());
        Session.CloseOutcome outcome = s.closeOutcome().orElseThrow();
        assertEquals("normal", outcome.kind());
        assertFalse(outcome.goodbyeSent());
        assertEquals("", out(s), "nothing is sent after the peer's goodbye");
        s.receiveData(hex(THREE)); // still closing: discarded
        s.connectionLost(outcome.reason());
        assertEquals(Session.State.CLOSED, s.state());
        Throwable e = assertInstanceOf(ConnectionLostException.class, failure(pending));
        assertTrue(e.getMessage().contains("bye"), e.getMessage());
        assertThrows(LocalProtocolException.class, () -> s.receiveData(hex(THREE)),
                "feeding a closed session is the I/O layer's mistake");
        assertInstanceOf(ConnectionLostException.class,
                failure(s.call(0, "add", List.of(), Map.of(), false)));
    }

    @Test
    void closingSaysGoodbyeOnce() throws Exception {
        Session s = opened(Session.Role.CLIENT, null);
        List<Throwable> told = new ArrayList<>();
        s.addDisconnectListener(told::add);
        s.close();
        s.close();
        assertEquals("0000000a9302a66e6f726d616ca0", out(s)); // [2, "normal", ""]
        assertTrue(s.closeOutcome().orElseThrow().goodbyeSent());
        s.connectionLost(s.closeOutcome().orElseThrow().reason());
        s.connectionLost(null);
        assertEquals(1, told.size());
        assertInstanceOf(ConnectionLostException.class, told.get(0));
    }

    @Test
    void protocolErrorsSayGoodbyeWithTheirKind() throws Exception {
        Session s = opened(Session.Role.CLIENT, null);
        s.receiveData(hex("00000003926301")); // [99, 1]
        String bye = out(s);
        assertTrue(bye.startsWith("00000"), bye);
        assertTrue(bye.contains(HexFormat.of().formatHex("unimplemented".getBytes())), bye);
        Session.CloseOutcome outcome = s.closeOutcome().orElseThrow();
        assertEquals("unimplemented", outcome.kind());
        assertInstanceOf(UnknownMessageTypeException.class, outcome.reason());
    }

    @Test
    void aCallBeforeTheHelloFailsTheHandshake() throws Exception {
        Session s = new Session(Session.Role.CLIENT, null);
        s.dataToSend();
        s.receiveData(hex(ADD));
        assertTrue(out(s).contains(HexFormat.of().formatHex("invalid".getBytes())));
        Session.CloseOutcome outcome = s.closeOutcome().orElseThrow();
        assertInstanceOf(HandshakeException.class, outcome.reason());
        s.connectionLost(outcome.reason());
        assertInstanceOf(HandshakeException.class, failure(s.ready()));
    }

    @Test
    void releasesAreBatchedIntoOneDecrefPerObject() throws Exception {
        Session s = opened(Session.Role.CLIENT, null);
        CompletableFuture<Object> a = s.call(0, "child", List.of(), Map.of(), false);
        CompletableFuture<Object> b = s.call(0, "child", List.of(), Map.of(), false);
        s.dataToSend();
        s.receiveData(hex("00000006930401d40105" + "00000006930402d40105")); // ref 5, twice
        RemoteReference ref = (RemoteReference) a.join();
        assertEquals(5, ref.objectId());
        assertEquals(ref, b.join());
        assertEquals(1, s.importedObjects());
        ref.close();
        assertTrue(s.releasesPending());
        assertEquals("", out(s), "nothing is sent until the flush");
        s.flushReleases();
        assertEquals("0000000493070502", out(s)); // [7, 5, 2]
        assertEquals(0, s.importedObjects());
    }

    @Test
    void cancelAndTimeoutSendCancel() throws Exception {
        Session s = opened(Session.Role.CLIENT, null);
        CompletableFuture<Object> f = s.call(0, "add", List.of(1, 2), Map.of(), false);
        s.dataToSend();
        f.cancel(false);
        assertEquals("00000003920601", out(s)); // [6, 1]
        s.receiveData(hex(THREE)); // the late answer is dropped
        Session.Question q = s.ask(0, "slow", List.of(), Map.of(), false);
        s.dataToSend();
        assertTrue(s.timeOut(q.requestId(), Duration.ofSeconds(1)));
        assertInstanceOf(TimeoutException.class, failure(q.answer()));
        assertEquals("00000003920602", out(s)); // [6, 2]
        assertFalse(s.timeOut(q.requestId(), Duration.ofSeconds(1)));
    }

    @Test
    void theLifecycleIsATable() {
        for (Session.State state : Session.State.values()) {
            assertTrue(Session.TRANSITIONS.containsKey(state));
            assertEquals(Session.State.CLOSED,
                    Session.TRANSITIONS.get(state).get(Session.Event.TRANSPORT_CLOSED));
        }
        assertEquals(Session.State.OPEN,
                Session.TRANSITIONS.get(Session.State.HANDSHAKE).get(Session.Event.PEER_HELLO));
        assertFalse(Session.TRANSITIONS.get(Session.State.CLOSING).containsKey(Session.Event.SEND),
                "nothing is sent once closing");
        assertFalse(Session.TRANSITIONS.get(Session.State.CLOSED).containsKey(Session.Event.DATA));
    }

    @Test
    void receiveFrameRefusesToInterleaveWithPartialData() throws Exception {
        Session s = opened(Session.Role.SERVER, SessionFixtures.root("calc"));
        s.receiveData(hex(ADD.substring(0, 10)));
        assertThrows(LocalProtocolException.class, () -> s.receiveFrame(hex(ADD.substring(8))));
        s.receiveData(hex(ADD.substring(10)));
        assertEquals(THREE, out(s));
        s.receiveFrame(hex(ADD.substring(8))); // a body, without its header
        assertEquals(THREE, out(s));
    }
}
