package org.pbroker.net;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.Closeable;
import java.io.EOFException;
import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.net.SocketAddress;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.SocketChannel;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLSocket;
import org.pbroker.wire.FrameReader;
import org.pbroker.wire.TruncatedFrameException;
import org.pbroker.wire.WireException;
import org.pbroker.wire.MessageTooLargeException;

/**
 * A socket (TCP, TLS, or a Unix socket's channel) carrying length-prefixed frames: a 4-byte
 * big-endian unsigned length, then that many bytes of body. Knows nothing about what the bodies
 * mean.
 *
 * <p>One reader thread (a daemon) reads frames and hands each body to {@link Handler#onFrame}; the
 * handler must be quick and must not run user code (hand that to an executor). The inbound limit
 * is checked against the length prefix <em>before</em> the body is allocated. Writes are
 * thread-safe: {@link #send} writes whole frames under a lock, so frames from several threads never
 * interleave. {@link Handler#onClosed} runs exactly once, whoever closes first (the peer, an I/O
 * error, a handler exception, or {@link #close}).
 *
 * <p>{@link #bytesReceived()} counts every byte the socket delivered, as it is read and before
 * the frame it belongs to is complete: what a heartbeat watches (docs/PROTOCOL.md section 5.2),
 * so a big frame arriving slowly is not taken for silence.
 */
public final class FramedConnection implements AutoCloseable {
    /** Receives frames and the end of the connection. */
    public interface Handler {
        /**
         * One frame arrived. Runs on the reader thread, in order. Throwing closes the connection
         * with the exception as the reason.
         *
         * @param body the frame body (owned by the handler)
         * @throws Exception to close the connection
         */
        void onFrame(byte[] body) throws Exception;

        /**
         * The connection is closed; called exactly once.
         *
         * @param reason why: an {@link EOFException} for a clean close by the peer, the exception
         *     given to {@link #close(Throwable)}, or the I/O error
         */
        void onClosed(Throwable reason);

        /**
         * Frames to send before the connection closes because reading failed (e.g. a goodbye
         * naming the protocol error). Best effort; the default sends nothing.
         *
         * @param reason why reading failed
         * @return frame bodies to write before closing
         */
        default List<byte[]> lastWords(Throwable reason) {
            return List.of();
        }
    }

    /** Default largest frame accepted or sent: 16 MiB. */
    public static final int DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024;

    private final Socket socket; // null over a Unix socket channel
    private final Closeable transport; // what closing the connection closes
    private final String peer;
    private final FrameReader frames;
    private final OutputStream out;
    private final AtomicLong bytesReceived = new AtomicLong();
    private final ReentrantLock writeLock = new ReentrantLock();
    private final AtomicBoolean started = new AtomicBoolean();
    private final AtomicBoolean closed = new AtomicBoolean();
    /** Counted down once the transport is closed, so every close() returns after that. */
    private final CountDownLatch transportClosed = new CountDownLatch(1);
    private final AtomicBoolean notified = new AtomicBoolean();
    private volatile int maxInboundFrameSize = DEFAULT_MAX_FRAME_SIZE;
    private volatile int maxOutboundFrameSize = DEFAULT_MAX_FRAME_SIZE;
    private volatile Handler handler;
    private volatile Throwable closeReason;

    /**
     * Wrap a connected socket; call {@link #start} to begin reading.
     *
     * @param socket a connected socket (plain or TLS, direct or through a proxy)
     * @throws IOException if the socket's streams cannot be obtained
     */
    public FramedConnection(Socket socket) throws IOException {
        this(Objects.requireNonNull(socket, "socket").getInputStream(), socket.getOutputStream(),
                socket, String.valueOf(socket.getRemoteSocketAddress()), socket);
    }

    /**
     * Wrap a connected stream channel, such as a Unix domain socket's (see
     * {@link Dialer#openUnix}); call {@link #start} to begin reading.
     *
     * @param channel a connected channel in blocking mode
     * @throws IOException if the channel's peer address cannot be read
     */
    public FramedConnection(SocketChannel channel) throws IOException {
        this(ChannelStreams.input(channel), ChannelStreams.output(channel), channel,
                describe(channel.getRemoteAddress()), null);
    }

    private FramedConnection(InputStream in, OutputStream out, Closeable transport, String peer,
            Socket socket) {
        this.socket = socket;
        this.transport = transport;
        this.peer = peer;
        // counted beneath the buffer: every read from the socket, however little of a frame it is
        this.frames = new FrameReader(new BufferedInputStream(
                new CountingInputStream(in, bytesReceived), 64 * 1024),
                () -> maxInboundFrameSize);
        this.out = new BufferedOutputStream(out, 64 * 1024);
    }

    private static String describe(SocketAddress remote) {
        return remote instanceof UnixDomainSocketAddress unix ? "unix:" + unix.getPath()
                : String.valueOf(remote);
    }

    /**
     * Open a TCP connection (TCP_NODELAY on); {@link Dialer#openSocket} without a proxy.
     *
     * @param host host name or address
     * @param port port
     * @param connectTimeoutMillis 0 for the system default
     * @return the connected socket
     * @throws IOException if the connection fails
     */
    public static Socket openSocket(String host, int port, int connectTimeoutMillis)
            throws IOException {
        return Dialer.openSocket(host, port, null, connectTimeoutMillis);
    }

    /**
     * Open a TLS connection and complete the handshake, verifying the server certificate against
     * {@code context}'s trust managers <em>and</em> that it names {@code host} (see
     * {@link Dialer#startTls}).
     *
     * @param host host name the certificate must match
     * @param port port
     * @param context the TLS context (trust store, optional client key for mutual TLS)
     * @param connectTimeoutMillis bounds the connect and the handshake; 0 for the system default
     * @return the connected socket, handshake done
     * @throws IOException if the connection or the handshake fails (including a certificate that
     *     does not match {@code host})
     */
    public static SSLSocket openTlsSocket(String host, int port, SSLContext context,
            int connectTimeoutMillis) throws IOException {
        return Dialer.startTls(openSocket(host, port, connectTimeoutMillis), host, port, context,
                connectTimeoutMillis);
    }

    /**
     * Start the reader thread.
     *
     * @param handler receives frames and the close
     * @throws IllegalStateException if already started
     */
    public void start(Handler handler) {
        Objects.requireNonNull(handler, "handler");
        if (!started.compareAndSet(false, true)) {
            throw new IllegalStateException("already started");
        }
        this.handler = handler;
        if (closed.get()) {
            notifyClosed(); // closed before start: the handler still hears of it, once
            return;
        }
        Thread reader = new Thread(this::readLoop, "pbroker-reader-" + describePeer());
        reader.setDaemon(true);
        reader.start();
    }

    /** @param size the largest frame body the peer may send us (checked before allocation) */
    public void setMaxInboundFrameSize(int size) {
        if (size < 1) {
            throw new IllegalArgumentException("frame size limit must be positive");
        }
        maxInboundFrameSize = size;
    }

    /** @param size the largest frame body we may send (the peer's announced limit) */
    public void setMaxOutboundFrameSize(int size) {
        if (size < 1) {
            throw new IllegalArgumentException("frame size limit must be positive");
        }
        maxOutboundFrameSize = size;
    }

    /** @return the largest frame body accepted from the peer */
    public int maxInboundFrameSize() {
        return maxInboundFrameSize;
    }

    /** @return the largest frame body we may send */
    public int maxOutboundFrameSize() {
        return maxOutboundFrameSize;
    }

    /**
     * Write one frame. Thread-safe; blocks while the socket's send buffer is full.
     *
     * @param body the frame body
     * @throws MessageTooLargeException if the body exceeds the outbound limit (nothing is written)
     * @throws IOException if the connection is closed or the write fails (the connection is then
     *     closed with that error)
     */
    public void send(byte[] body) throws IOException {
        sendAll(List.of(body));
    }

    /**
     * Write several frames, contiguously and in order, with one flush.
     *
     * @param bodies the frame bodies
     * @throws MessageTooLargeException if any body exceeds the outbound limit (nothing is written)
     * @throws IOException if the connection is closed or the write fails
     */
    public void sendAll(List<byte[]> bodies) throws IOException {
        int limit = maxOutboundFrameSize;
        for (byte[] body : bodies) {
            if (body.length > limit) {
                throw new MessageTooLargeException("refusing to send a frame of " + body.length
                        + " bytes; the peer accepts at most " + limit);
            }
        }
        writeLock.lock();
        try {
            if (closed.get()) {
                throw new IOException("connection is closed", closeReason);
            }
            for (byte[] body : bodies) {
                int n = body.length;
                out.write(new byte[] {(byte) (n >>> 24), (byte) (n >>> 16), (byte) (n >>> 8),
                        (byte) n});
                out.write(body);
            }
            out.flush();
        } catch (IOException e) {
            closeWith(e);
            throw e;
        } finally {
            writeLock.unlock();
        }
    }

    /**
     * @return how many bytes were read from the socket so far (any thread): it grows while a
     *     frame is still arriving, before {@link Handler#onFrame} sees it
     */
    public long bytesReceived() {
        return bytesReceived.get();
    }

    /** @return true once the connection is closed (by either side) */
    public boolean isClosed() {
        return closed.get();
    }

    /** @return the local and remote address, for thread names and messages */
    public String describePeer() {
        return peer;
    }

    /**
     * @return the underlying socket (for its addresses or TLS session); null for a connection
     *     over a channel (a Unix socket)
     */
    public Socket socket() {
        return socket;
    }

    /** Close the connection; the handler sees an {@link EOFException} "closed locally". */
    @Override
    public void close() {
        closeWith(new EOFException("connection closed locally"));
    }

    /**
     * Close the connection with a reason, which the handler receives. Only the first close counts.
     *
     * @param reason why
     */
    public void close(Throwable reason) {
        closeWith(reason);
    }

    /**
     * Flush and close the write side after the given frames, so the peer reads them before EOF;
     * then close.
     *
     * @param lastFrames frames to write first (e.g. a goodbye message); may be empty
     * @param reason the reason the handler receives
     */
    public void closeAfter(List<byte[]> lastFrames, Throwable reason) {
        try {
            if (!lastFrames.isEmpty()) {
                sendAll(lastFrames);
            }
        } catch (IOException ignored) {
            // closing anyway
        }
        closeWith(reason);
    }

    private void closeWith(Throwable reason) {
        boolean first;
        synchronized (closed) {
            first = !closed.get();
            if (first) {
                closeReason = reason;
                closed.set(true);
            }
        }
        if (!first) {
            awaitTransportClosed(); // another thread is closing it: return once it is closed
            return;
        }
        try {
            transport.close();
        } catch (IOException ignored) {
            // nothing more to do
        } finally {
            transportClosed.countDown();
        }
        notifyClosed();
    }

    private void awaitTransportClosed() {
        try {
            // Closing a socket takes microseconds; the bound only keeps a stuck close from
            // hanging the caller forever.
            transportClosed.await(5, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private void notifyClosed() {
        Handler h = handler;
        if (h != null && notified.compareAndSet(false, true)) {
            h.onClosed(closeReason);
        }
    }

    /** Adds up the bytes each read returns. */
    private static final class CountingInputStream extends FilterInputStream {
        private final AtomicLong count;

        CountingInputStream(InputStream in, AtomicLong count) {
            super(in);
            this.count = count;
        }

        @Override
        public int read() throws IOException {
            int b = in.read();
            if (b >= 0) {
                count.incrementAndGet();
            }
            return b;
        }

        @Override
        public int read(byte[] b, int off, int len) throws IOException {
            int n = in.read(b, off, len);
            if (n > 0) {
                count.addAndGet(n);
            }
            return n;
        }

        @Override
        public long skip(long n) throws IOException {
            long skipped = in.skip(n);
            if (skipped > 0) {
                count.addAndGet(skipped);
            }
            return skipped;
        }
    }

    private void readLoop() {
        try {
            while (!closed.get()) {
                byte[] body = frames.next();
                if (body == null) {
                    throw new EOFException("connection closed by peer");
                }
                handler.onFrame(body);
            }
        } catch (Throwable t) {
            if (closed.get()) {
                return; // closed by someone else: their reason stands
            }
            List<byte[]> last = List.of();
            boolean peerGone = t instanceof TruncatedFrameException
                    || (t instanceof IOException && !(t instanceof WireException));
            if (!peerGone) {
                try {
                    last = handler.lastWords(t);
                } catch (RuntimeException ignored) {
                    // close anyway
                }
            }
            closeAfter(last, t);
        }
    }
}
