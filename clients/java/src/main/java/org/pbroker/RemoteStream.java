package org.pbroker;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.NoSuchElementException;
import java.util.Objects;
import java.util.concurrent.CancellationException;
import java.util.concurrent.Executor;
import java.util.concurrent.Flow;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The consumer's side of a peer's stream (docs/PROTOCOL.md section 17): what a call whose answer
 * is a stream completes with. Its items arrive in order and never more than a window of them
 * (in items and in bytes, the smaller of the producer's offer and ours: {@link
 * PBClient.Options#streamWindow}) wait here; credit goes back as the application takes them.
 *
 * <p>Two ways to take them, one per stream:
 * <ul>
 *   <li>blocking: {@code for (Object item : stream)}, or {@link #iterator()} and
 *       {@link BlockingIterator#close()} (try-with-resources) to stop early. {@code hasNext()}
 *       blocks until an item or the end arrives; a stream the producer failed throws its failure
 *       ({@link RemoteException}) there, after the items before it; a lost connection throws
 *       {@link ConnectionLostException}.
 *   <li>{@link java.util.concurrent.Flow.Publisher}: {@link #subscribe} one subscriber; items go
 *       to {@code onNext} as it requests them (on the client's callback executor, one at a time),
 *       then {@code onComplete} or {@code onError}; {@code Subscription.cancel()} cancels the
 *       stream.
 * </ul>
 *
 * <p>{@link #cancel()} (or {@link #close()}) stops the stream from this end: the producer stops
 * and nothing more arrives. Thread-safe.
 */
public final class RemoteStream implements Flow.Publisher<Object>, Iterable<Object>,
        AutoCloseable {
    /** Stands for a nil item (ArrayDeque holds no nulls). */
    private static final Object NIL = new Object();
    /** {@link #poll()}: nothing is buffered. */
    static final Object EMPTY = new Object();
    /** The ending of a stream that is done (or that we cancelled). */
    private static final Throwable DONE = new Throwable("done", null, false, false) {
        private static final long serialVersionUID = 1L;
    };

    private final long streamId;
    private final long windowItems;
    private final long windowBytes;
    private final Executor deliver;
    /** Sends credit and cancels (in the session's context); null once ended or cancelled. */
    private Streams tables;
    private final ArrayDeque<Object> items = new ArrayDeque<>();
    private final ArrayDeque<long[]> batches = new ArrayDeque<>(); // [items left, body bytes]
    private long creditItems; // what the producer may still send
    private long creditBytes;
    private long returnedItems; // taken, not yet given back as credit
    private long returnedBytes;
    private Throwable ending; // DONE, or the failure
    private boolean cancelled;
    // the Flow side
    private Flow.Subscriber<? super Object> subscriber;
    private long demand;
    private boolean signalledEnd;
    private boolean subscribed; // onSubscribe has returned: other signals may follow (rule 1.9)
    private final AtomicInteger wip = new AtomicInteger();

    RemoteStream(Streams tables, long streamId, long windowItems, long windowBytes,
            Executor deliver) {
        this.tables = tables;
        this.streamId = streamId;
        this.windowItems = windowItems;
        this.windowBytes = windowBytes;
        this.deliver = deliver;
    }

    /** @return the producer's stream id */
    public long streamId() {
        return streamId;
    }

    /** @return the window in items (the most that are ever buffered here) */
    public long windowItems() {
        return windowItems;
    }

    /** @return the window in bytes of stream_items bodies (overshot by one frame at most) */
    public long windowBytes() {
        return windowBytes;
    }

    /** @return items received and not yet taken */
    public synchronized int buffered() {
        return items.size();
    }

    /** @return body bytes received whose items are not all taken yet */
    public synchronized long bufferedBytes() {
        long n = 0;
        for (long[] b : batches) {
            n += b[1];
        }
        return n;
    }

    /** @return whether the stream has ended (done, failed, cancelled or disconnected) */
    public synchronized boolean isEnded() {
        return ending != null;
    }

    /**
     * Stop the stream from this end: a cancel goes to the producer, which stops; items buffered
     * are dropped; a blocked {@code hasNext()} returns false; a subscriber hears nothing more.
     * Idempotent; nothing happens once the stream ended.
     */
    public void cancel() {
        Streams t;
        synchronized (this) {
            if (ending != null) {
                return;
            }
            ending = DONE;
            cancelled = true;
            signalledEnd = true; // Flow: after cancel, no more signals
            items.clear();
            batches.clear();
            t = tables;
            tables = null;
            notifyAll();
        }
        if (t != null) {
            t.cancel(this);
        }
    }

    /** The same as {@link #cancel()}. */
    @Override
    public void close() {
        cancel();
    }

    /** @return a blocking iterator over the items (one consumer per stream) */
    @Override
    public BlockingIterator iterator() {
        return new BlockingIterator();
    }

    /** A blocking iterator over the stream; {@link #close()} cancels it. */
    public final class BlockingIterator implements Iterator<Object>, AutoCloseable {
        private Object next = EMPTY;

        private BlockingIterator() {}

        /**
         * Wait for the next item or the end.
         *
         * @return false at the end (or after a cancel)
         * @throws RemoteException the producer's failure, after the items before it
         * @throws ConnectionLostException the connection ended first
         * @throws CancellationException the thread was interrupted while waiting (its interrupt
         *     flag stays set)
         */
        @Override
        public boolean hasNext() {
            if (next != EMPTY) {
                return true;
            }
            next = take();
            return next != EMPTY;
        }

        @Override
        public Object next() {
            if (!hasNext()) {
                throw new NoSuchElementException("stream " + streamId + " has ended");
            }
            Object item = next;
            next = EMPTY;
            return item;
        }

        /** Cancel the stream (the producer stops). */
        @Override
        public void close() {
            cancel();
        }
    }

    /** Block for the next item; EMPTY at the end; throws the stream's failure. */
    private Object take() {
        Object item;
        long[] grant;
        synchronized (this) {
            while (items.isEmpty() && ending == null) {
                try {
                    wait();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new CancellationException("interrupted while waiting for stream "
                            + streamId);
                }
            }
            if (items.isEmpty()) {
                if (ending == DONE) {
                    return EMPTY;
                }
                throw failure();
            }
            item = items.poll();
            grant = takenLocked();
        }
        sendGrant(grant);
        return item == NIL ? null : item;
    }

    /** The next buffered item without waiting, EMPTY if none (the session vectors' runner). */
    Object poll() {
        Object item;
        long[] grant;
        synchronized (this) {
            if (items.isEmpty()) {
                return EMPTY;
            }
            item = items.poll();
            grant = takenLocked();
        }
        sendGrant(grant);
        return item == NIL ? null : item;
    }

    /** @return the failure it ended with; null while open, when done or cancelled */
    synchronized Throwable endingFailure() {
        return ending == null || ending == DONE ? null : ending;
    }

    private RuntimeException failure() {
        return ending instanceof RuntimeException re ? re : new RemoteException(
                org.pbroker.wire.Wire.FAILED, ending.getClass().getName(),
                String.valueOf(ending.getMessage()), null);
    }

    /** One item was taken: the credit to give back now (section 17.2), or null. */
    private long[] takenLocked() {
        long[] head = batches.peek();
        head[0]--;
        returnedItems++;
        if (head[0] == 0) {
            batches.poll();
            returnedBytes += head[1];
        }
        if (returnedItems * 2 >= windowItems || returnedBytes * 2 >= windowBytes) {
            long[] grant = grantLocked(returnedItems, returnedBytes);
            returnedItems = 0;
            returnedBytes = 0;
            return grant;
        }
        return null;
    }

    /** Count a grant as given (before it is sent: the producer cannot have used it yet). */
    private long[] grantLocked(long nItems, long nBytes) {
        if (tables == null || ending != null || (nItems == 0 && nBytes == 0)) {
            return null;
        }
        creditItems += nItems;
        creditBytes += nBytes;
        return new long[] {nItems, nBytes};
    }

    /** The first credit, the whole window (called by the session as the stream arrives). */
    synchronized long[] firstGrant() {
        return grantLocked(windowItems, windowBytes);
    }

    private void sendGrant(long[] grant) {
        Streams t;
        synchronized (this) {
            t = tables;
        }
        if (grant != null && t != null) {
            t.giveCredit(this, grant[0], grant[1]);
        }
    }

    // --- the session's side (under the session's lock) -----------------------------------------

    /**
     * A stream_items message of {@code nbytes} body bytes.
     *
     * @return why it breaks the credit (the peer's fault), or null
     */
    String received(List<Object> newItems, long nbytes) {
        synchronized (this) {
            if (cancelled || ending != null) {
                return null; // crossed our cancel
            }
            if (newItems.size() > creditItems || creditBytes <= 0) {
                return "stream " + streamId + ": " + newItems.size() + " items sent with credit"
                        + " for " + creditItems + " items and " + creditBytes + " bytes";
            }
            creditItems -= newItems.size();
            creditBytes -= nbytes;
            for (Object item : newItems) {
                items.add(item == null ? NIL : item);
            }
            batches.add(new long[] {newItems.size(), nbytes});
            notifyAll();
        }
        drain();
        return null;
    }

    /** The producer ended it, or the connection went: after the buffered items. */
    void ended(Throwable why) {
        synchronized (this) {
            if (ending != null) {
                return;
            }
            ending = why == null ? DONE : why;
            tables = null;
            notifyAll();
        }
        drain();
    }

    // --- Flow.Publisher ---------------------------------------------------------------------

    /**
     * Deliver the items to {@code subscriber} as it requests them. One subscriber per stream
     * (and not together with the iterator); a second one gets {@code onError} at once.
     *
     * @param subscriber the subscriber
     */
    @Override
    public void subscribe(Flow.Subscriber<? super Object> subscriber) {
        Objects.requireNonNull(subscriber, "subscriber");
        boolean taken;
        synchronized (this) {
            taken = this.subscriber != null;
            if (!taken) {
                this.subscriber = subscriber;
            }
        }
        if (taken) {
            subscriber.onSubscribe(new Flow.Subscription() {
                @Override
                public void request(long n) {}

                @Override
                public void cancel() {}
            });
            subscriber.onError(new IllegalStateException("stream " + streamId
                    + " already has a subscriber"));
            return;
        }
        Streams t;
        synchronized (this) {
            t = tables;
        }
        if (t != null) {
            t.pin(this); // a subscribed stream stays alive while the session feeds it
        }
        deliver.execute(() -> {
            subscriber.onSubscribe(new Flow.Subscription() {
                @Override
                public void request(long n) {
                    if (n <= 0) {
                        RemoteStream.this.cancel();
                        deliver.execute(() -> subscriber.onError(new IllegalArgumentException(
                                "Subscription.request(" + n + "): n must be positive (rule 3.9)")));
                        return;
                    }
                    synchronized (RemoteStream.this) {
                        demand = demand + n < 0 ? Long.MAX_VALUE : demand + n;
                    }
                    drain();
                }

                @Override
                public void cancel() {
                    RemoteStream.this.cancel();
                }
            });
            synchronized (this) {
                subscribed = true;
            }
            drain();
        });
    }

    /** Schedule a delivery round if a subscriber is there (one round at a time). */
    private void drain() {
        synchronized (this) {
            if (subscriber == null) {
                return;
            }
        }
        if (wip.getAndIncrement() == 0) {
            deliver.execute(this::deliverLoop);
        }
    }

    private void deliverLoop() {
        int missed = 1;
        while (true) {
            while (true) {
                Object item;
                long[] grant = null;
                Throwable end = null;
                Flow.Subscriber<? super Object> s;
                synchronized (this) {
                    s = subscriber;
                    if (signalledEnd || !subscribed) {
                        break;
                    }
                    if (demand > 0 && !items.isEmpty()) {
                        item = items.poll();
                        demand--;
                        grant = takenLocked();
                    } else if (items.isEmpty() && ending != null) {
                        signalledEnd = true;
                        item = EMPTY;
                        end = ending;
                    } else {
                        break;
                    }
                }
                sendGrant(grant);
                if (item != EMPTY) {
                    s.onNext(item == NIL ? null : item);
                } else if (end == DONE) {
                    s.onComplete();
                } else {
                    s.onError(end);
                }
            }
            missed = wip.addAndGet(-missed);
            if (missed == 0) {
                return;
            }
        }
    }

    /**
     * Every item buffered now, taken one by one (credit may go out), for the vector runner.
     *
     * @return the items
     */
    List<Object> takeBuffered() {
        List<Object> out = new ArrayList<>();
        for (Object item; (item = poll()) != EMPTY; ) {
            out.add(item);
        }
        return out;
    }

    @Override
    public synchronized String toString() {
        return "RemoteStream(" + streamId + ", " + (ending == null ? "open" : "ended") + ", "
                + items.size() + " buffered)";
    }
}
