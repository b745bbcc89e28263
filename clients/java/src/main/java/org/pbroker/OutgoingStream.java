package org.pbroker;

import java.util.Iterator;
import java.util.concurrent.Flow;
import java.util.stream.BaseStream;

/**
 * Something a Java {@link Referenceable} sends as a stream (docs/PROTOCOL.md section 17): a
 * remote method that returns an {@link Iterator}, a {@link java.util.stream.Stream} or a
 * {@link Flow.Publisher} sends it as one by itself (so does a call argument); wrap a collection
 * (which would go whole, as an array) or set a window of its own with
 * {@code OutgoingStream.of(list).window(16, 65536)}.
 *
 * <p>Only what the consumer's credit allows is taken from the source, so nothing buffers more
 * than a window. An iterator is pulled on the connection's thread, so {@code next()} should be
 * quick; a publisher is subscribed when the first credit arrives and asked ({@code request(n)})
 * for no more items than the credit, and may call {@code onNext} from any thread. When the
 * consumer cancels or the connection ends, a {@link java.util.stream.BaseStream} (or an
 * AutoCloseable iterator) is closed, a publisher's subscription cancelled.
 *
 * @param source the items, or null for a publisher
 * @param publisher the items, or null for an iterator
 * @param closer closed when the stream stops (null: nothing to close)
 * @param windowItems the most items in flight offered (0: the connection's default)
 * @param windowBytes the most bytes in flight offered (0: the connection's default)
 */
public record OutgoingStream(Iterator<?> source, Flow.Publisher<?> publisher,
        AutoCloseable closer, long windowItems, long windowBytes) {
    /** Validates the fields. */
    public OutgoingStream {
        if ((source == null) == (publisher == null)) {
            throw new IllegalArgumentException("an OutgoingStream has an iterator or a publisher");
        }
        if (windowItems < 0 || windowBytes < 0) {
            throw new IllegalArgumentException("OutgoingStream window must be >= 1 (0: default),"
                    + " got " + windowItems + " items, " + windowBytes + " bytes");
        }
    }

    /**
     * @param items the items
     * @return a stream of them
     */
    public static OutgoingStream of(Iterable<?> items) {
        return new OutgoingStream(items.iterator(), null, null, 0, 0);
    }

    /**
     * @param items the items
     * @return a stream of them, taken as the consumer's credit allows
     */
    public static OutgoingStream of(Flow.Publisher<?> items) {
        return new OutgoingStream(null, items, null, 0, 0);
    }

    /**
     * @param items the items
     * @return a stream of them (closed if it is AutoCloseable)
     */
    public static OutgoingStream of(Iterator<?> items) {
        return new OutgoingStream(items, null, items instanceof AutoCloseable c ? c : null, 0, 0);
    }

    /**
     * @param items the items
     * @return a stream of them, closed when the stream stops
     */
    public static OutgoingStream of(BaseStream<?, ?> items) {
        return new OutgoingStream(items.iterator(), null, items, 0, 0);
    }

    /**
     * @param items the most items in flight, at least 1
     * @param bytes the most bytes in flight, at least 1
     * @return this stream with its own window
     */
    public OutgoingStream window(long items, long bytes) {
        if (items < 1 || bytes < 1) {
            throw new IllegalArgumentException("window must be at least 1 item and 1 byte");
        }
        return new OutgoingStream(source, publisher, closer, items, bytes);
    }

    /** @return what {@code obj} sends as a stream, or null if it is not streamable */
    static OutgoingStream from(Object obj) {
        if (obj instanceof OutgoingStream s) {
            return s;
        }
        if (obj instanceof Iterator<?> it) {
            return of(it);
        }
        if (obj instanceof BaseStream<?, ?> s) {
            return of(s);
        }
        if (obj instanceof Flow.Publisher<?> p) {
            return of(p);
        }
        return null;
    }
}
