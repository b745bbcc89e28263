package org.pbroker.net;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.EOFException;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.ConnectException;
import java.net.SocketTimeoutException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Unix domain sockets below the protocol: {@link Dialer#openUnix} and a {@link FramedConnection}
 * over the channel, against a Java {@link ServerSocketChannel} (no Python needed).
 */
class UnixSocketTest {
    @TempDir
    Path dir;

    private static ByteBuffer frame(byte[] body) {
        ByteBuffer b = ByteBuffer.allocate(4 + body.length);
        b.putInt(body.length).put(body).flip();
        return b;
    }

    private static byte[] readFrame(SocketChannel peer) throws IOException {
        ByteBuffer header = ByteBuffer.allocate(4);
        readFully(peer, header);
        ByteBuffer body = ByteBuffer.allocate(header.flip().getInt());
        readFully(peer, body);
        return body.array();
    }

    private static void readFully(SocketChannel peer, ByteBuffer b) throws IOException {
        while (b.hasRemaining()) {
            if (peer.read(b) < 0) {
                throw new EOFException();
            }
        }
    }

    /** Wait until the thread named {@code name} is inside the channel's read (data or not). */
    private static void awaitBlockedInRead(String name) {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (System.nanoTime() < deadline) {
            for (Map.Entry<Thread, StackTraceElement[]> t : Thread.getAllStackTraces().entrySet()) {
                if (t.getKey().getName().equals(name) && Arrays.stream(t.getValue()).anyMatch(
                        f -> f.getClassName().equals("sun.nio.ch.SocketChannelImpl")
                                && f.getMethodName().equals("read"))) {
                    return;
                }
            }
            LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(1)); // polling a thread's state
        }
        throw new AssertionError(name + " never reached SocketChannelImpl.read");
    }

    @Test
    void framesFlowBothWaysWhileTheReaderThreadWaits() throws Exception {
        Path path = dir.resolve("s.sock");
        try (ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            server.bind(UnixDomainSocketAddress.of(path));
            try (FramedConnection conn = new FramedConnection(Dialer.openUnix(path, 5000));
                    SocketChannel peer = server.accept()) {
                assertEquals("unix:" + path, conn.describePeer());
                assertNull(conn.socket());
                FramedConnectionTest.Recorder rec = new FramedConnectionTest.Recorder();
                conn.start(rec);
                awaitBlockedInRead("pbroker-reader-" + conn.describePeer());
                // a write while the reader waits must not wait for it (Channels.newInputStream's
                // streams would, forever: they hold the channel's blocking lock across the read)
                CompletableFuture.runAsync(() -> {
                    try {
                        conn.send(new byte[] {1, 2, 3});
                        conn.send(new byte[200_000]);
                    } catch (IOException e) {
                        throw new UncheckedIOException(e);
                    }
                }).get(10, TimeUnit.SECONDS);
                assertArrayEquals(new byte[] {1, 2, 3}, readFrame(peer));
                assertEquals(200_000, readFrame(peer).length);
                peer.write(frame(new byte[] {9}));
                assertArrayEquals(new byte[] {9}, rec.frames.poll(10, TimeUnit.SECONDS));
                assertTrue(rec.frameThread.getName().startsWith("pbroker-reader-unix:"));

                peer.close(); // the server goes away: the reader sees the end, once
                assertInstanceOf(EOFException.class, rec.closed.get(10, TimeUnit.SECONDS));
                assertEquals(1, rec.closeCalls.get());
            }
        }
    }

    @Test
    void aMissingPathFailsAtOnceNamingThePath() throws Exception {
        Path path = dir.resolve("nobody-here.sock");
        // no timeout at all: the failure must not depend on one
        ConnectException e = assertThrows(ConnectException.class, () -> Dialer.openUnix(path, 0));
        assertTrue(e.getMessage().contains("unix:" + path), e.getMessage());
        assertTrue(e.getMessage().contains("no such file"), e.getMessage());
        assertTrue(e.getCause() instanceof IOException, "the JDK's exception is the cause");
    }

    @Test
    void aSocketFileNobodyListensOnIsCalledThat() throws Exception {
        Path path = dir.resolve("stale.sock");
        try (ServerSocketChannel gone = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            gone.bind(UnixDomainSocketAddress.of(path));
        } // closed: the file stays, like one left by a server that crashed
        assertTrue(Files.exists(path));
        ConnectException e = assertThrows(ConnectException.class, () -> Dialer.openUnix(path, 0));
        assertTrue(e.getMessage().contains("unix:" + path), e.getMessage());
        assertTrue(e.getMessage().contains("nothing is listening there"), e.getMessage());
    }

    @Test
    void aFileThatIsNotASocketIsCalledThat() throws Exception {
        Path path = Files.writeString(dir.resolve("plain.txt"), "not a socket");
        ConnectException e = assertThrows(ConnectException.class, () -> Dialer.openUnix(path, 0));
        assertTrue(e.getMessage().contains("regular file, not a socket"), e.getMessage());
    }

    @Test
    void theConnectTimeoutBoundsAServerThatDoesNotAccept() throws Exception {
        Path path = dir.resolve("busy.sock");
        List<SocketChannel> queued = new ArrayList<>();
        try (ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            server.bind(UnixDomainSocketAddress.of(path), 1); // never accepts
            // fill its backlog: a non-blocking connect fails ("try again") once it is full
            while (true) {
                SocketChannel c = SocketChannel.open(StandardProtocolFamily.UNIX);
                c.configureBlocking(false);
                try {
                    c.connect(UnixDomainSocketAddress.of(path));
                    queued.add(c);
                } catch (IOException full) {
                    c.close();
                    break;
                }
                assertTrue(queued.size() < 1000, "the backlog never filled");
            }
            SocketTimeoutException e = assertThrows(SocketTimeoutException.class,
                    () -> Dialer.openUnix(path, 200));
            assertTrue(e.getMessage().contains("unix:" + path), e.getMessage());
            assertTrue(e.getMessage().contains("timed out after 200 ms"), e.getMessage());
        } finally {
            for (SocketChannel c : queued) {
                c.close();
            }
        }
    }

    @Test
    void failedAndClosedConnectionsLeaveNoDescriptorOpen() throws Exception {
        Path path = dir.resolve("fds.sock");
        Path missing = dir.resolve("missing.sock");
        try (ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            server.bind(UnixDomainSocketAddress.of(path));
            Runnable round = () -> {
                try {
                    assertThrows(ConnectException.class, () -> Dialer.openUnix(missing, 1000));
                    FramedConnectionTest.Recorder rec = new FramedConnectionTest.Recorder();
                    FramedConnection conn = new FramedConnection(Dialer.openUnix(path, 1000));
                    try (SocketChannel peer = server.accept()) {
                        conn.start(rec);
                        conn.close();
                        rec.closed.get(10, TimeUnit.SECONDS);
                    }
                } catch (Exception e) {
                    throw new AssertionError(e);
                }
            };
            Set<String> before = OpenUnixSockets.now();
            for (int i = 0; i < 5; i++) {
                round.run();
            }
            assertEquals(Set.of(), OpenUnixSockets.openedSince(before));
        }
    }
}
