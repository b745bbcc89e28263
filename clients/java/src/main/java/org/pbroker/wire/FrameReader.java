package org.pbroker.wire;

import java.io.IOException;
import java.io.InputStream;
import java.util.function.IntSupplier;

/**
 * Reads frames (docs/PROTOCOL.md section 2) from a blocking stream: a 4-byte big-endian length,
 * then that many body bytes. The length is checked against the limit as soon as the header is in,
 * <em>before</em> the body is allocated or read. Not thread-safe: one reader thread.
 */
public final class FrameReader {
    private final InputStream in;
    private final IntSupplier maxFrameSize;

    /**
     * @param in the stream (buffer it; the reader does small reads)
     * @param maxFrameSize the current limit, asked for each frame
     */
    public FrameReader(InputStream in, IntSupplier maxFrameSize) {
        this.in = in;
        this.maxFrameSize = maxFrameSize;
    }

    /**
     * The next frame's body.
     *
     * @return the body, or null if the stream ended cleanly at a frame boundary
     * @throws FrameTooLargeException if the header announces more than the limit
     * @throws TruncatedFrameException if the stream ends inside a header or body
     * @throws IOException if reading fails
     */
    public byte[] next() throws IOException {
        long length = 0;
        for (int i = 0; i < 4; i++) {
            int b = in.read();
            if (b < 0) {
                if (i == 0) {
                    return null;
                }
                throw new TruncatedFrameException("stream ended " + i + " bytes into a frame");
            }
            length = (length << 8) | b;
        }
        int limit = maxFrameSize.getAsInt();
        if (length > limit) {
            throw new FrameTooLargeException(
                    "frame of " + length + " bytes announced; the limit is " + limit);
        }
        byte[] body = new byte[(int) length];
        int off = 0;
        while (off < body.length) {
            int n = in.read(body, off, body.length - off);
            if (n < 0) {
                throw new TruncatedFrameException(
                        "stream ended " + (4 + off) + " bytes into a frame");
            }
            off += n;
        }
        return body;
    }
}
