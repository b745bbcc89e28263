package org.pbroker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import org.junit.jupiter.api.Test;
import org.pbroker.wire.Answer;
import org.pbroker.wire.Call;
import org.pbroker.wire.Decref;
import org.pbroker.wire.Decrefs;
import org.pbroker.wire.ExportedRef;
import org.pbroker.wire.Goodbye;
import org.pbroker.wire.Hello;
import org.pbroker.wire.Message;
import org.pbroker.wire.Ping;
import org.pbroker.wire.Pong;
import org.pbroker.wire.Wire;
import org.pbroker.wire.WireDecoder;
import org.pbroker.wire.WireEncoder;

/** The optional messages of docs/PROTOCOL.md sections 3.8, 3.9 and 5.2 in the session core. */
class HeartbeatAndDecrefsTest {
    private static final List<String> BOTH = List.of(Wire.FEATURE_HEARTBEAT, Wire.FEATURE_DECREFS);

    private static byte[] frames(Message... messages) throws Exception {
        WireEncoder encoder = new WireEncoder();
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        for (Message m : messages) {
            out.write(encoder.encodeFrame(m));
        }
        return out.toByteArray();
    }

    /** What the session queued, decoded (everything negotiable enabled). */
    private static List<Message> sent(Session s) throws Exception {
        return sent(s, false);
    }

    private static List<Message> sent(Session s, boolean hello) throws Exception {
        WireDecoder decoder = new WireDecoder(Wire.DEFAULT_MAX_FRAME_SIZE, Wire.DEFAULT_MAX_DEPTH,
                Wire.DEFAULT_MAX_CONTAINER_LENGTH, WireDecoder.FrameLimits.defaults(), BOTH,
                hello, null);
        List<Message> out = new ArrayList<>();
        for (byte[] body : s.drainOutbox()) {
            out.add(decoder.decodeBody(body));
        }
        return out;
    }

    private static Session opened(Session.Role role, Referenceable root, List<String> ours,
            List<String> theirs) throws Exception {
        Session s = Session.withFeatures(role, Session.Limits.defaults(), root,
                Session.Dispatcher.synchronous(), ours);
        List<Message> hello = sent(s, true);
        assertEquals(1, hello.size());
        assertEquals(ours, ((Hello) hello.get(0)).features());
        s.receiveData(frames(new Hello(1, Wire.DEFAULT_MAX_FRAME_SIZE, Wire.DEFAULT_MAX_DEPTH,
                Wire.DEFAULT_MAX_CONTAINER_LENGTH, theirs)));
        assertEquals(Session.State.OPEN, s.state());
        return s;
    }

    @Test
    void aPingIsAnsweredAtOnceWithItsNonce() throws Exception {
        Session s = opened(Session.Role.SERVER, SessionFixtures.root("calc"), BOTH, BOTH);
        assertTrue(s.heartbeatActive());
        s.receiveData(frames(new Ping(7), new Call(1, 0, "add", List.of(1L, 2L), Map.of(), 0),
                new Ping(8)));
        assertEquals(List.of(new Pong(7), new Answer(1, 3L), new Pong(8)), sent(s));
        s.receiveData(frames(new Pong(99))); // unsolicited: ignored
        assertEquals(List.of(), sent(s));
        assertTrue(s.closeOutcome().isEmpty());
    }

    @Test
    void pingsNeedTheFeatureInBothHellos() throws Exception {
        Session s = opened(Session.Role.CLIENT, null, BOTH, List.of(Wire.FEATURE_DECREFS));
        assertFalse(s.heartbeatActive());
        assertFalse(s.ping(), "no ping to a peer that did not name heartbeat");
        assertEquals(List.of(), sent(s));
        s.receiveData(frames(new Ping(1)));
        List<Message> out = sent(s);
        assertEquals(1, out.size());
        assertEquals(Wire.UNIMPLEMENTED, ((Goodbye) out.get(0)).kind());
        assertEquals(Wire.UNIMPLEMENTED, s.closeOutcome().orElseThrow().kind());
    }

    @Test
    void pingQueuesAPingWithAFreshNonce() throws Exception {
        Session s = opened(Session.Role.CLIENT, null, BOTH, BOTH);
        assertTrue(s.ping());
        assertTrue(s.ping());
        assertEquals(List.of(new Ping(1), new Ping(2)), sent(s));
    }

    @Test
    void decrefsReleaseEveryObjectNamed() throws Exception {
        Session s = opened(Session.Role.SERVER, SessionFixtures.root("calc"), BOTH, BOTH);
        s.receiveData(frames(new Call(1, 0, "child", List.of(), Map.of(), 0),
                new Call(2, 0, "child", List.of(), Map.of(), 0)));
        List<Message> out = sent(s);
        assertEquals(2, out.size());
        assertEquals(2, s.exportedObjects());
        Map<Long, Long> releases = new LinkedHashMap<>();
        for (Message m : out) {
            releases.put(((ExportedRef) ((Answer) m).value()).objectId(), 1L);
        }
        s.receiveData(frames(new Decrefs(releases)));
        assertEquals(0, s.exportedObjects());
        assertTrue(s.closeOutcome().isEmpty());
    }

    private static Session holdingTwoRefs(List<String> theirs) throws Exception {
        Session s = opened(Session.Role.CLIENT, null, BOTH, theirs);
        CompletableFuture<Object> a = s.call(0, "child", List.of(), Map.of(), false);
        CompletableFuture<Object> b = s.call(0, "child", List.of(), Map.of(), false);
        sent(s);
        s.receiveData(frames(new Answer(1, new ExportedRef(5)), new Answer(2, new ExportedRef(6)),
                new Answer(99, new ExportedRef(5))));
        ((RemoteReference) a.join()).close();
        ((RemoteReference) b.join()).close();
        s.flushReleases();
        return s;
    }

    @Test
    void releasesGoOutAsOneDecrefsWhenNegotiated() throws Exception {
        Session s = holdingTwoRefs(BOTH);
        List<Message> out = sent(s);
        assertEquals(1, out.size());
        assertEquals(Map.of(5L, 2L, 6L, 1L), ((Decrefs) out.get(0)).releases());
        assertEquals(0, s.importedObjects());
    }

    @Test
    void releasesGoOutAsDecrefsOtherwise() throws Exception {
        Session s = holdingTwoRefs(List.of(Wire.FEATURE_HEARTBEAT));
        List<Message> out = sent(s);
        assertEquals(2, out.size());
        assertTrue(out.contains(new Decref(5, 2)) && out.contains(new Decref(6, 1)), out::toString);
    }

    @Test
    void aSilentPeerIsDeclaredDeadAndItsQuestionsFail() throws Exception {
        Session s = opened(Session.Role.CLIENT, null, BOTH, BOTH);
        long before = s.receivedCount();
        CompletableFuture<Object> pending = s.call(0, "slow", List.of(), Map.of(), false);
        sent(s);
        s.receiveData(frames(new Pong(1)));
        assertEquals(before + 1, s.receivedCount(), "anything received counts");
        s.peerSilent(Duration.ofSeconds(30));
        Session.CloseOutcome outcome = s.closeOutcome().orElseThrow();
        assertEquals(Wire.DISCONNECTED, outcome.kind());
        assertFalse(outcome.goodbyeSent());
        assertEquals(List.of(), sent(s), "no goodbye to a dead peer");
        s.connectionLost(outcome.reason());
        CompletionException e = assertThrows(CompletionException.class, pending::join);
        assertInstanceOf(ConnectionLostException.class, e.getCause());
        assertTrue(e.getCause().getMessage().contains("stopped answering"),
                e.getCause().getMessage());
    }
}
