package org.pbroker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.pbroker.InteropFixtures.get;

import java.util.concurrent.ExecutionException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Promise pipelining live against the Python broker (docs/PROTOCOL.md section 15): calls made
 * through a Promise whose answer the server holds back are sent pipelined (flag bit 1), wait on
 * the server in order, and run when it answers; a failure names its cause. No sleeps: the server
 * answers only when the test tells it to.
 */
class PipeliningInteropTest {
    @RegisterExtension
    static final FixtureServer SERVER = new FixtureServer("fixture_server.py");

    @Test
    void callsOnAnAnswerNotYetSentArePipelinedAndRunInOrder() throws Exception {
        try (PBClient client = SERVER.connect()) {
            RemoteReference root = get(client.getRootObject());
            Promise counter = root.callRemote("counter_later", "p1", 5);
            Promise one = counter.callRemote("increment", 1);
            Promise two = counter.callRemote("increment", 2);
            counter.callRemoteNoAnswer("increment", 3);
            Promise value = counter.callRemote("value");
            assertTrue(one.pipelined() && two.pipelined() && value.pipelined());
            assertFalse(counter.isDone());
            get(root.callRemote("release_counter", "p1"));
            assertEquals(6L, get(one));
            assertEquals(8L, get(two));
            assertEquals(11L, get(value));
            RemoteReference ref = (RemoteReference) get(counter);
            assertEquals(12L, get(ref.callRemote("increment", 1))); // direct, after them
            Promise after = counter.callRemote("value"); // through the promise, after: direct
            assertFalse(after.pipelined());
            assertEquals(12L, get(after));
        }
    }

    @Test
    void aChainOfDependentCalls() throws Exception {
        try (PBClient client = SERVER.connect()) {
            RemoteReference root = get(client.getRootObject());
            Promise counter = root.callRemote("counter_later", "p2", 1);
            Promise pair = counter.callRemote("increment", 1);
            get(root.callRemote("release_counter", "p2"));
            assertEquals(2L, get(pair));
            assertEquals(7L, get(root.callRemote("counter", 7).callRemote("value")));
        }
    }

    /** Hands out Listeners: the Python side pipelines a call on the one it gets. */
    public static final class Maker implements Referenceable {
        @Remote
        public InteropFixtures.Listener make() {
            return new InteropFixtures.Listener();
        }

        @Remote
        public void explode() {
            throw new UnsupportedOperationException("no way");
        }
    }

    @Test
    void pythonPipelinesCallsOnTheAnswersOfJavaObjects() throws Exception {
        try (PBClient client = SERVER.connect()) {
            RemoteReference root = get(client.getRootObject());
            Maker maker = new Maker();
            assertEquals("PIPED!", get(root.callRemote("pipeline_on", maker, "make")));
            ExecutionException e = assertThrows(ExecutionException.class,
                    () -> get(root.callRemote("pipeline_on", maker, "explode")));
            assertTrue(e.getCause().getMessage().contains("which failed: no way"),
                    e.getCause().getMessage());
        }
    }

    @Test
    void aFailureFailsTheCallsPipelinedOnItNamingTheCause() throws Exception {
        try (PBClient client = SERVER.connect()) {
            RemoteReference root = get(client.getRootObject());
            Promise failed = root.callRemote("fail", "no such user");
            Promise through = failed.callRemote("value");
            ExecutionException e = assertThrows(ExecutionException.class, () -> get(through));
            RemoteException remote = assertInstanceOf(RemoteException.class, e.getCause());
            assertEquals("failed", remote.kind());
            assertTrue(remote.getMessage().contains("which failed: no such user"),
                    remote.getMessage());
            ExecutionException notRef = assertThrows(ExecutionException.class,
                    () -> get(root.callRemote("add", 1, 2).callRemote("value")));
            assertInstanceOf(InvalidReferenceException.class, notRef.getCause());
            assertEquals(3L, get(root.callRemote("add", 1, 2))); // the connection goes on
        }
    }
}
