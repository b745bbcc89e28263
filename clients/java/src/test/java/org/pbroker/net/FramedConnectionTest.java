package org.pbroker.net;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.pbroker.wire.FrameTooLargeException;
import org.pbroker.wire.MessageTooLargeException;
import org.pbroker.wire.TruncatedFrameException;

class FramedConnectionTest {
    private ServerSocket server;

    @BeforeEach
    void listen() throws IOException {
        server = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
    }

    @AfterEach
    void stop() throws IOException {
        server.close();
    }

    /** Records frames and the close reason. */
    static final class Recorder implements FramedConnection.Handler {
        final BlockingQueue<byte[]> frames = new LinkedBlockingQueue<>();
        final CompletableFuture<Throwable> closed = new CompletableFuture<>();
        final AtomicInteger closeCalls = new AtomicInteger();
        volatile Thread frameThread;

        @Override
        public void onFrame(byte[] body) {
            frameThread = Thread.currentThread();
            frames.add(body);
        }

        @Override
        public void onClosed(Throwable reason) {
            closeCalls.incrementAndGet();
            closed.complete(reason);
        }
    }

    private FramedConnection connect() throws IOException {
        return new FramedConnection(FramedConnection.openSocket(
                InetAddress.getLoopbackAddress().getHostAddress(), server.getLocalPort(), 5000));
    }

    private static void writeFrame(DataOutputStream out, byte[] body) throws IOException {
        out.writeInt(body.length);
        out.write(body);
        out.flush();
    }

    private static byte[] readFrame(DataInputStream in) throws IOException {
        byte[] body = new byte[in.readInt()];
        in.readFully(body);
        return body;
    }

    @Test
    void framesBothWays() throws Exception {
        try (FramedConnection conn = connect(); Socket peer = server.accept()) {
            Recorder rec = new Recorder();
            conn.start(rec);
            conn.send(new byte[] {1, 2, 3});
            conn.send(new byte[0]);
            DataInputStream in = new DataInputStream(peer.getInputStream());
            assertArrayEquals(new byte[] {1, 2, 3}, readFrame(in));
            assertArrayEquals(new byte[0], readFrame(in));

            DataOutputStream out = new DataOutputStream(peer.getOutputStream());
            writeFrame(out, new byte[] {9});
            writeFrame(out, new byte[100_000]);
            assertArrayEquals(new byte[] {9}, rec.frames.poll(5, TimeUnit.SECONDS));
            assertEquals(100_000, rec.frames.poll(5, TimeUnit.SECONDS).length);
            assertTrue(rec.frameThread.getName().startsWith("pbroker-reader-"));
            assertTrue(rec.frameThread.isDaemon());
        }
    }

    @Test
    void concurrentWritersNeverInterleave() throws Exception {
        int threads = 8;
        int perThread = 300;
        try (FramedConnection conn = connect(); Socket peer = server.accept()) {
            conn.start(new Recorder());
            CountDownLatch go = new CountDownLatch(1);
            List<Thread> writers = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                int tid = t;
                Thread w = new Thread(() -> {
                    try {
                        go.await();
                        for (int i = 0; i < perThread; i++) {
                            // length varies so a torn write would desynchronize the reader
                            ByteBuffer b = ByteBuffer.allocate(8 + (i % 50) * 37);
                            b.putInt(tid).putInt(i);
                            conn.send(b.array());
                        }
                    } catch (Exception e) {
                        throw new RuntimeException(e);
                    }
                });
                w.start();
                writers.add(w);
            }
            go.countDown();
            DataInputStream in = new DataInputStream(peer.getInputStream());
            int[] next = new int[threads];
            Set<Long> seen = new HashSet<>();
            for (int n = 0; n < threads * perThread; n++) {
                ByteBuffer b = ByteBuffer.wrap(readFrame(in));
                int tid = b.getInt();
                int i = b.getInt();
                assertEquals(8 + (i % 50) * 37, b.capacity());
                assertEquals(next[tid]++, i, "frames of one thread arrive in order");
                assertTrue(seen.add(((long) tid << 32) | i));
            }
            for (Thread w : writers) {
                w.join();
            }
        }
    }

    @Test
    void oversizedInboundFrameIsRefusedBeforeAllocation() throws Exception {
        try (FramedConnection conn = connect(); Socket peer = server.accept()) {
            conn.setMaxInboundFrameSize(1024);
            Recorder rec = new Recorder();
            conn.start(rec);
            DataOutputStream out = new DataOutputStream(peer.getOutputStream());
            out.writeInt(0xFFFFFFF0); // ~4 GiB announced, no body: allocating would fail
            out.flush();
            Throwable reason = rec.closed.get(5, TimeUnit.SECONDS);
            FrameTooLargeException e = assertInstanceOf(FrameTooLargeException.class, reason);
            assertTrue(e.getMessage().contains(Long.toString(0xFFFFFFF0L)), e.getMessage());
            assertTrue(conn.isClosed());
        }
    }

    @Test
    void endOfStreamInsideAFrameIsATruncatedFrame() throws Exception {
        FramedConnection conn = connect();
        Recorder rec = new Recorder();
        conn.start(rec);
        try (Socket peer = server.accept()) {
            DataOutputStream out = new DataOutputStream(peer.getOutputStream());
            out.writeInt(10);
            out.write(new byte[] {1, 2, 3});
            out.flush();
        }
        assertInstanceOf(TruncatedFrameException.class, rec.closed.get(5, TimeUnit.SECONDS));
    }

    /** Wait (up to 10 s) until the reader has read {@code n} bytes; no timing is asserted. */
    private static void awaitBytesReceived(FramedConnection conn, long n) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (conn.bytesReceived() < n) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("only " + conn.bytesReceived() + " of " + n
                        + " bytes read within 10 s");
            }
            Thread.sleep(5);
        }
    }

    @Test
    void bytesOfAFrameStillArrivingAreCounted() throws Exception {
        // docs/PROTOCOL.md section 5.2: any bytes received show the peer is alive, not only whole
        // frames (a big frame on a slow link is not silence)
        try (FramedConnection conn = connect(); Socket peer = server.accept()) {
            Recorder rec = new Recorder();
            conn.start(rec);
            assertEquals(0, conn.bytesReceived());
            DataOutputStream out = new DataOutputStream(peer.getOutputStream());
            out.writeInt(300_000);
            out.write(new byte[1000]);
            out.flush();
            awaitBytesReceived(conn, 4 + 1000);
            assertEquals(4 + 1000, conn.bytesReceived());
            assertTrue(rec.frames.isEmpty(), "the frame is not complete");
            out.write(new byte[200_000]);
            out.flush();
            awaitBytesReceived(conn, 4 + 201_000); // read straight past the buffer: counted too
            assertTrue(rec.frames.isEmpty(), "the frame is not complete");
            out.write(new byte[99_000]);
            out.flush();
            assertEquals(300_000, rec.frames.poll(10, TimeUnit.SECONDS).length);
            assertEquals(4 + 300_000, conn.bytesReceived());
        }
    }

    @Test
    void frameAtTheLimitIsAccepted() throws Exception {
        try (FramedConnection conn = connect(); Socket peer = server.accept()) {
            conn.setMaxInboundFrameSize(1024);
            Recorder rec = new Recorder();
            conn.start(rec);
            writeFrame(new DataOutputStream(peer.getOutputStream()), new byte[1024]);
            assertEquals(1024, rec.frames.poll(5, TimeUnit.SECONDS).length);
        }
    }

    @Test
    void oversizedOutboundFrameIsRefusedAndConnectionStaysUp() throws Exception {
        try (FramedConnection conn = connect(); Socket peer = server.accept()) {
            conn.setMaxOutboundFrameSize(10);
            conn.start(new Recorder());
            assertThrows(MessageTooLargeException.class, () -> conn.send(new byte[11]));
            assertFalse(conn.isClosed());
            conn.send(new byte[10]);
            assertEquals(10, readFrame(new DataInputStream(peer.getInputStream())).length);
        }
    }

    @Test
    void peerCloseIsReportedOnceAsEof() throws Exception {
        FramedConnection conn = connect();
        Recorder rec = new Recorder();
        conn.start(rec);
        server.accept().close();
        assertInstanceOf(EOFException.class, rec.closed.get(5, TimeUnit.SECONDS));
        conn.close();
        conn.close(new IOException("again"));
        assertEquals(1, rec.closeCalls.get());
        assertThrows(IOException.class, () -> conn.send(new byte[1]));
    }

    @Test
    void concurrentClosesNotifyExactlyOnce() throws Exception {
        for (int round = 0; round < 20; round++) {
            FramedConnection conn = connect();
            Socket peer = server.accept();
            Recorder rec = new Recorder();
            conn.start(rec);
            CountDownLatch go = new CountDownLatch(1);
            List<Thread> closers = new ArrayList<>();
            for (int i = 0; i < 4; i++) {
                Thread t = new Thread(() -> {
                    try {
                        go.await();
                    } catch (InterruptedException e) {
                        return;
                    }
                    conn.close();
                });
                t.start();
                closers.add(t);
            }
            go.countDown();
            peer.close();
            for (Thread t : closers) {
                t.join();
            }
            rec.closed.get(5, TimeUnit.SECONDS);
            assertEquals(1, rec.closeCalls.get());
        }
    }

    @Test
    void closeBeforeStartStillNotifies() throws Exception {
        FramedConnection conn = connect();
        server.accept().close();
        conn.close(new IOException("early"));
        Recorder rec = new Recorder();
        conn.start(rec);
        assertEquals("early", rec.closed.get(5, TimeUnit.SECONDS).getMessage());
        assertEquals(1, rec.closeCalls.get());
    }

    @Test
    void handlerExceptionClosesTheConnection() throws Exception {
        try (FramedConnection conn = connect(); Socket peer = server.accept()) {
            CompletableFuture<Throwable> closed = new CompletableFuture<>();
            conn.start(new FramedConnection.Handler() {
                @Override
                public void onFrame(byte[] body) {
                    throw new IllegalStateException("bad frame");
                }

                @Override
                public void onClosed(Throwable reason) {
                    closed.complete(reason);
                }
            });
            writeFrame(new DataOutputStream(peer.getOutputStream()), new byte[] {1});
            assertEquals("bad frame", closed.get(5, TimeUnit.SECONDS).getMessage());
        }
    }
}
