package org.pbroker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.pbroker.wire.FrameTooLargeException;
import org.pbroker.wire.HandshakeException;
import org.pbroker.wire.WireException;

/**
 * A misbehaving Python server (src/test/resources/garbage_server.py) sends garbage after the
 * hello, and keeps the socket open: the client must fail the pending call with a clear exception
 * naming the problem, close the connection, and tell its disconnect listeners, never leave a
 * future hanging. Skipped without the project's Python.
 */
class MalformedServerTest {
    private static PythonFixture fixture;

    @BeforeAll
    static void start() throws Exception {
        fixture = PythonFixture.start("garbage_server.py");
    }

    @AfterAll
    static void stop() throws Exception {
        if (fixture != null) {
            fixture.close();
        }
    }

    private static Throwable failure(CompletableFuture<?> f) {
        // well under the fixture's patience: the server never closes on its own
        return assertThrows(ExecutionException.class, () -> f.get(10, TimeUnit.SECONDS))
                .getCause();
    }

    @ParameterizedTest(name = "{0} -> {1}")
    @CsvSource({
        "body, MalformedMessageException",
        "type, UnknownMessageTypeException",
        "huge, FrameTooLargeException",
        "truncated, TruncatedFrameException",
    })
    void garbageAfterHelloFailsThePendingCallAndCloses(String mode, String expected)
            throws Exception {
        try (PBClient c = PBClient.connect("127.0.0.1", fixture.port(mode))) {
            CompletableFuture<Throwable> listener = new CompletableFuture<>();
            c.addDisconnectListener(listener::complete);
            RemoteReference root = c.getRootObject().get(10, TimeUnit.SECONDS);
            CompletableFuture<Object> pending = root.callRemote("anything", 1);

            ConnectionLostException lost =
                    assertInstanceOf(ConnectionLostException.class, failure(pending));
            WireException cause = assertInstanceOf(WireException.class, lost.getCause(),
                    "the cause names the protocol problem: " + lost);
            assertEquals(expected, cause.getClass().getSimpleName(), lost.toString());
            assertNotNull(cause.specName());
            assertTrue(lost.getMessage().contains(cause.getMessage()), lost.getMessage());

            assertFalse(c.isConnected());
            assertEquals(lost, listener.get(10, TimeUnit.SECONDS));
            // and later calls fail at once instead of waiting for an answer that cannot come
            assertInstanceOf(ConnectionLostException.class,
                    failure(root.callRemote("anything", 2)));
        }
    }

    @Test
    void garbageInsteadOfHelloFailsTheHandshake() throws Exception {
        try (PBClient c = PBClient.connect("127.0.0.1", fixture.port("nohello"))) {
            Throwable e = failure(c.getRootObject());
            assertTrue(e instanceof HandshakeException || e instanceof ConnectionLostException,
                    e.toString());
            assertFalse(c.isConnected());
        }
    }

    @Test
    void frameTooLargeIsTheSpecsName() throws Exception {
        assertEquals("FrameTooLarge", new FrameTooLargeException("x").specName());
    }
}
