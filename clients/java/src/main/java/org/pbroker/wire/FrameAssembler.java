package org.pbroker.wire;

import java.nio.ByteBuffer;
import java.util.Arrays;

/**
 * Frames (docs/PROTOCOL.md section 2) from bytes that arrive in pieces of any size: the push-style
 * counterpart of {@link FrameReader}, for a sans-I/O session. {@link #feed} buffers the bytes
 * given; {@link #next} returns each complete body in turn. A length header is checked against the
 * limit as soon as its 4 bytes are in, before anything is allocated for the body. Not thread-safe.
 */
public final class FrameAssembler {
    private final int maxFrameSize;
    private byte[] buf = new byte[0];
    private int start;
    private int end;

    /** @param maxFrameSize the largest body accepted */
    public FrameAssembler(int maxFrameSize) {
        if (maxFrameSize < 1) {
            throw new IllegalArgumentException("max_frame_size must be positive");
        }
        this.maxFrameSize = maxFrameSize;
    }

    /** @param data bytes from the peer, all of them buffered */
    public void feed(ByteBuffer data) {
        int n = data.remaining();
        if (n == 0) {
            return;
        }
        if (end + n > buf.length) {
            int live = end - start;
            if (live + n <= buf.length && start > 0) {
                System.arraycopy(buf, start, buf, 0, live);
            } else {
                buf = Arrays.copyOfRange(buf, start, start + Math.max(live + n, 2 * live));
            }
            start = 0;
            end = live;
        }
        data.get(buf, end, n);
        end += n;
    }

    /**
     * The next complete frame's body.
     *
     * @return the body, or null if no complete frame is buffered
     * @throws FrameTooLargeException if the next header announces more than the limit (the
     *     assembler is then unusable: close the connection)
     */
    public byte[] next() throws FrameTooLargeException {
        if (end - start < 4) {
            return null;
        }
        long length = ((buf[start] & 0xffL) << 24) | ((buf[start + 1] & 0xff) << 16)
                | ((buf[start + 2] & 0xff) << 8) | (buf[start + 3] & 0xff);
        if (length > maxFrameSize) {
            throw new FrameTooLargeException(
                    "frame of " + length + " bytes announced; the limit is " + maxFrameSize);
        }
        if (end - start - 4 < length) {
            return null;
        }
        byte[] body = Arrays.copyOfRange(buf, start + 4, start + 4 + (int) length);
        start += 4 + (int) length;
        if (start == end) {
            start = 0;
            end = 0;
        }
        return body;
    }

    /** @return bytes buffered that do not (yet) make a whole frame */
    public int buffered() {
        return end - start;
    }

    /**
     * The stream ended.
     *
     * @throws TruncatedFrameException if it ended inside a frame
     */
    public void endOfStream() throws TruncatedFrameException {
        int left = end - start;
        if (left > 0) {
            throw new TruncatedFrameException("stream ended " + left + " bytes into a frame");
        }
    }
}
