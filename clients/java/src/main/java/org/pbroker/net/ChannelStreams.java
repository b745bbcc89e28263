package org.pbroker.net;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.util.Objects;

/**
 * Blocking streams over a blocking {@link SocketChannel} (a Unix domain socket has no
 * {@link java.net.Socket}), for {@link FramedConnection}'s reader thread and locked writer.
 *
 * <p>Why not {@link java.nio.channels.Channels#newInputStream}: on Java 17 its streams hold the
 * channel's blocking lock for the whole of a read, so a write from another thread waits until
 * the reader thread receives something: a client sending a call while its reader waits for the
 * answer would never send it. These streams call {@link SocketChannel#read} and
 * {@link SocketChannel#write} directly, which lock the read and write sides separately.
 * Closing a stream does not close the channel; {@link FramedConnection} closes the channel.
 */
final class ChannelStreams {
    private ChannelStreams() {
    }

    /** @return a stream reading from {@code channel}, which must be in blocking mode */
    static InputStream input(SocketChannel channel) {
        requireBlocking(channel);
        return new InputStream() {
            @Override
            public int read() throws IOException {
                byte[] one = new byte[1];
                int n = read(one, 0, 1);
                return n < 0 ? -1 : one[0] & 0xff;
            }

            @Override
            public int read(byte[] b, int off, int len) throws IOException {
                Objects.checkFromIndexSize(off, len, b.length);
                if (len == 0) {
                    return 0;
                }
                return channel.read(ByteBuffer.wrap(b, off, len)); // blocking: >= 1, or -1 at EOF
            }
        };
    }

    /** @return a stream writing to {@code channel}, which must be in blocking mode */
    static OutputStream output(SocketChannel channel) {
        requireBlocking(channel);
        return new OutputStream() {
            @Override
            public void write(int b) throws IOException {
                write(new byte[] {(byte) b}, 0, 1);
            }

            @Override
            public void write(byte[] b, int off, int len) throws IOException {
                Objects.checkFromIndexSize(off, len, b.length);
                ByteBuffer buffer = ByteBuffer.wrap(b, off, len);
                while (buffer.hasRemaining()) {
                    channel.write(buffer); // blocking: writes at least one byte
                }
            }
        };
    }

    private static void requireBlocking(SocketChannel channel) {
        if (!channel.isBlocking()) {
            throw new IllegalArgumentException("the channel must be in blocking mode");
        }
    }
}
