package org.pbroker;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.pbroker.InteropFixtures.assertConcurrentCallersAllAnswered;
import static org.pbroker.InteropFixtures.get;

import java.io.IOException;
import java.net.ConnectException;
import java.net.InetSocketAddress;
import java.net.Proxy;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.pbroker.InteropFixtures.Listener;
import org.pbroker.InteropFixtures.Point;
import org.pbroker.net.OpenUnixSockets;

/**
 * The Java client over a Unix domain socket against the real Python broker:
 * src/test/resources/fixture_server.py {@code --unix PATH} serves its {@code Fixture} root on
 * {@code unix:PATH} ({@code net.unix}). The path has a colon in it, so the endpoint strings of
 * both sides must escape it. Skipped without the project's Python.
 */
class UnixSocketInteropTest {
    @TempDir
    static Path dir;
    private static Path socket;
    private static PythonFixture server;

    @BeforeAll
    static void startServer() throws Exception {
        socket = dir.resolve("pb:fixture.sock");
        server = PythonFixture.start("fixture_server.py", "--unix", socket.toString());
        assertTrue(Files.exists(socket), "the fixture said READY without its socket file");
    }

    @AfterAll
    static void stopServer() throws Exception {
        if (server != null) {
            server.close();
        }
    }

    private static String unixEndpoint() {
        return "unix:" + socket.toString().replace(":", "\\:");
    }

    @Test
    void callsReferencesCallbacksAndCopiesOverAUnixSocket() throws Exception {
        try (PBClient client = PBClient.connectUnix(socket)) {
            assertTrue(client.toString().contains("unix:" + socket), client.toString());
            RemoteReference root = get(client.getRootObject());
            assertEquals(3L, get(root.callRemote("add", 1, 2)));
            byte[] big = new byte[3 << 20]; // several reads and writes each way
            new Random(15).nextBytes(big);
            assertArrayEquals(big, (byte[]) get(root.callRemote("echo", big)));

            RemoteReference counter = get(root.callRemote(RemoteReference.class, "counter", 10));
            assertEquals(11L, get(counter.callRemote("increment")));
            counter.close();

            assertEquals("HEY!", get(root.callRemote("call_back", new Listener(), "shout",
                    "hey")));
            client.registerCopyable("interop.Point", Point.class);
            assertEquals(new Point(3, 4.5), get(root.callRemote(Point.class, "point", 3, 4.5)));
        }
    }

    @Test
    void theEndpointStringEscapesTheColonInThePath() throws Exception {
        try (PBClient client = PBClient.connect(unixEndpoint())) {
            assertEquals("ab", get(get(client.getRootObject()).callRemote("add", "a", "b")));
        }
        try (PBClient client = PBClient.connect(unixEndpoint() + ":timeout=5")) {
            assertEquals(7L, get(get(client.getRootObject()).callRemote("add", 3, 4)));
        }
    }

    @Test
    void manyConcurrentCallers() throws Exception {
        try (PBClient client = PBClient.connectUnix(socket)) {
            assertConcurrentCallersAllAnswered(get(client.getRootObject()));
        }
    }

    @Test
    void closingFailsPendingCalls() throws Exception {
        PBClient client = PBClient.connectUnix(socket);
        CompletableFuture<Object> pending = get(client.getRootObject()).callRemote("slow", 5.0);
        client.close();
        Throwable e = assertThrows(ExecutionException.class,
                () -> pending.get(10, TimeUnit.SECONDS)).getCause();
        assertInstanceOf(ConnectionLostException.class, e);
    }

    @Test
    void aMissingPathFailsAtOnceNamingThePath() {
        Path missing = dir.resolve("no-server-here.sock");
        ConnectException e = assertThrows(ConnectException.class,
                () -> PBClient.connectUnix(missing, PBClient.Options.defaults()
                        .connectTimeoutMillis(0)));
        assertTrue(e.getMessage().contains("unix:" + missing), e.getMessage());
        assertTrue(e.getMessage().contains("no such file"), e.getMessage());
    }

    @Test
    void aProxyCannotReachAUnixSocket() {
        PBClient.Options viaProxy = PBClient.Options.defaults().proxy(
                new Proxy(Proxy.Type.SOCKS, new InetSocketAddress("127.0.0.1", 1080)));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> PBClient.connectUnix(socket, viaProxy));
        assertTrue(e.getMessage().contains("cannot be reached through a proxy"), e.getMessage());
    }

    @Test
    void connectionsLeaveNoDescriptorOpen() throws Exception {
        Runnable round = () -> {
            try (PBClient client = PBClient.connectUnix(socket)) {
                assertEquals(2L, get(get(client.getRootObject()).callRemote("add", 1, 1)));
            } catch (Exception e) {
                throw new AssertionError(e);
            }
            assertThrows(IOException.class, () -> PBClient.connectUnix(dir.resolve("none")));
        };
        Set<String> before = OpenUnixSockets.now();
        for (int i = 0; i < 5; i++) {
            round.run();
        }
        assertEquals(Set.of(), OpenUnixSockets.openedSince(before));
    }
}
