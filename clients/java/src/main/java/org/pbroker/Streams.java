package org.pbroker;

import java.lang.ref.WeakReference;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.Flow;
import java.util.logging.Level;
import java.util.logging.Logger;
import org.pbroker.wire.FailureInfo;
import org.pbroker.wire.MalformedMessageException;
import org.pbroker.wire.StreamCredit;
import org.pbroker.wire.StreamEnd;
import org.pbroker.wire.StreamItems;
import org.pbroker.wire.StreamRef;
import org.pbroker.wire.Wire;

/**
 * Both sides' streams on one connection (docs/PROTOCOL.md section 17; the Python broker's
 * {@code broker/streams.py}): the streams we consume ({@link RemoteStream}s, made as their ext 7
 * arrives, each granted its first credit at once) and those we produce (iterators a Java method
 * returned, pulled only while the consumer's credit lasts). Made by the session on first use and
 * dropped when the connection ends.
 *
 * <p>Every method runs in the session's context (its lock), except {@link #giveCredit},
 * {@link #cancel} and {@link #pin}, which the application's threads call and which re-enter the
 * session through its dispatcher.
 */
final class Streams {
    private static final Logger LOG = Logger.getLogger(Streams.class.getName());
    /** The default window (the Python broker's Limits.stream_window_items / _bytes). */
    static final long DEFAULT_WINDOW_ITEMS = 64;
    static final long DEFAULT_WINDOW_BYTES = 1024 * 1024;
    /** Most items one stream_items carries (well inside the per-frame limits, section 8). */
    static final int MAX_BATCH = 4096;
    /** Most streams open each way (the Python broker's max_live_references). */
    static final int MAX_STREAMS = 100_000;

    private final Session session;
    private final Session.Dispatcher dispatcher;
    private final long windowItems;
    private final long windowBytes;
    private final Map<Long, WeakReference<RemoteStream>> consumed = new HashMap<>();
    /** Subscribed streams: the session feeds them, so nothing else need hold them. */
    private final Map<Long, RemoteStream> pinned = new HashMap<>();
    private final Map<Long, Producer> produced = new HashMap<>();
    private final List<Producer> unconfirmed = new ArrayList<>();
    /** Streams the application dropped unread (any thread): cancelled at the next flush. */
    private final ConcurrentLinkedQueue<Long> dropped = new ConcurrentLinkedQueue<>();
    private long lastId;

    Streams(Session session, Session.Dispatcher dispatcher, long windowItems, long windowBytes) {
        this.session = session;
        this.dispatcher = dispatcher;
        this.windowItems = windowItems;
        this.windowBytes = windowBytes;
    }

    // --- consuming ---------------------------------------------------------------------------

    /** Decoder hook: a peer's stream; its first credit goes out at once (section 17.1). */
    Object received(StreamRef ref, List<RuntimeException> problems) {
        if (consumed.size() >= MAX_STREAMS) {
            session.queueMessage(new StreamEnd(ref.streamId(), StreamEnd.CANCEL));
            problems.add(new OverloadedException("broker.TooManyStreams", "the limit of "
                    + MAX_STREAMS + " open streams is reached", null));
            return null;
        }
        RemoteStream stream = new RemoteStream(this, ref.streamId(),
                Math.min(windowItems, ref.windowItems()), Math.min(windowBytes, ref.windowBytes()),
                dispatcher::deliver);
        WeakReference<RemoteStream> old = consumed.put(ref.streamId(), new WeakReference<>(stream));
        RemoteStream previous = old == null ? null : old.get();
        if (previous != null) { // the producer's bug: the old one ends (section 17.1)
            pinned.remove(ref.streamId());
            previous.ended(new ConnectionLostException("the peer reused stream id "
                    + ref.streamId()));
        }
        long id = ref.streamId();
        session.track(stream, () -> {
            dropped.add(id);
        });
        long[] grant = stream.firstGrant();
        if (grant != null) {
            session.queueMessage(new StreamCredit(id, grant[0], grant[1]));
        }
        return stream;
    }

    private RemoteStream consumedStream(long id) {
        WeakReference<RemoteStream> ref = consumed.get(id);
        return ref == null ? null : ref.get();
    }

    /** stream_items of {@code nbytes} body bytes (ignored for a stream we no longer have). */
    void items(StreamItems message, long nbytes) {
        RemoteStream stream = consumedStream(message.streamId());
        if (stream == null) {
            return; // crossed our cancel; its refs are released with the values
        }
        String wrong = stream.received(message.items(), nbytes);
        if (wrong != null) {
            session.streamProtocolError(new MalformedMessageException(
                    "the peer broke its stream credit: " + wrong));
        }
    }

    /** stream_end: the cancel of a stream we produce, or the end of one we consume. */
    void end(StreamEnd message) {
        long id = message.streamId();
        if (message.isCancel()) {
            Producer p = produced.get(id);
            if (p != null) {
                p.stop();
            }
            return;
        }
        RemoteStream stream = consumedStream(id);
        consumed.remove(id);
        pinned.remove(id);
        if (stream != null) {
            stream.ended(message.failure() == null ? null
                    : session.exceptionFromFailure(message.failure()));
        }
    }

    /** The application took items: give the credit back (any thread). */
    void giveCredit(RemoteStream stream, long nItems, long nBytes) {
        dispatcher.reenter(() -> {
            if (session.isOpen() && consumedStream(stream.streamId()) == stream) {
                session.queueMessage(new StreamCredit(stream.streamId(), nItems, nBytes));
            }
        });
    }

    /** The application cancelled (any thread). */
    void cancel(RemoteStream stream) {
        dispatcher.reenter(() -> {
            long id = stream.streamId();
            if (consumedStream(id) == stream) {
                consumed.remove(id);
                pinned.remove(id);
                if (session.isOpen()) {
                    session.queueMessage(new StreamEnd(id, StreamEnd.CANCEL));
                }
            }
        });
    }

    /** A subscriber took the stream: keep it alive while the session feeds it (any thread). */
    void pin(RemoteStream stream) {
        dispatcher.reenter(() -> {
            if (consumedStream(stream.streamId()) == stream) {
                pinned.put(stream.streamId(), stream);
            }
        });
    }

    /** @return whether dropped streams wait for {@link #flushDropped} */
    boolean dropsPending() {
        return !dropped.isEmpty();
    }

    /** Cancel the streams the application dropped unread (section 17.3), from the session. */
    void flushDropped() {
        for (Long id; (id = dropped.poll()) != null; ) {
            WeakReference<RemoteStream> ref = consumed.get(id);
            if (ref != null && ref.get() == null) {
                consumed.remove(id);
                if (session.isOpen()) {
                    session.queueMessage(new StreamEnd(id, StreamEnd.CANCEL));
                }
            }
        }
    }

    /** @return streams of the peer's we consume */
    int consumedCount() {
        return consumed.size();
    }

    /** @return streams we produce */
    int producedCount() {
        return produced.size();
    }

    // --- producing ---------------------------------------------------------------------------

    /** Encoder hook: {@code source} becomes a stream of ours; it starts when credit arrives. */
    StreamRef toWire(OutgoingStream source) {
        if (!session.negotiated().contains(Wire.FEATURE_STREAMS)) {
            throw new UnimplementedException("broker.StreamsNotNegotiated", "the " + "peer does"
                    + " not support streams (its hello lacks \"streams\"); send a list instead,"
                    + " or upgrade the peer", null);
        }
        if (produced.size() >= MAX_STREAMS) {
            throw new OverloadedException("broker.TooManyStreams", produced.size()
                    + " streams open; the limit is " + MAX_STREAMS, null);
        }
        long id = ++lastId;
        Producer p = new Producer(id, source);
        produced.put(id, p);
        unconfirmed.add(p);
        return new StreamRef(id, source.windowItems() > 0 ? source.windowItems() : windowItems,
                source.windowBytes() > 0 ? source.windowBytes() : windowBytes);
    }

    /** The message carrying them could not be encoded: those streams never existed. */
    void undoSends() {
        List<Producer> undo = new ArrayList<>(unconfirmed);
        unconfirmed.clear();
        for (Producer p : undo) {
            p.stop();
        }
    }

    void confirmSends() {
        unconfirmed.clear();
    }

    /** stream_credit: more room for a stream we produce; pump it. */
    void credit(StreamCredit message) {
        Producer p = produced.get(message.streamId());
        if (p == null) {
            return; // it ended (or was never ours): the credit crossed our stream_end
        }
        p.items += message.items();
        p.bytes += message.bytes();
        p.pump();
    }

    /** Every consumer fails with {@code lost}; every producer's source is closed. */
    void connectionEnded(ConnectionLostException lost) {
        for (Producer p : new ArrayList<>(produced.values())) {
            p.stop();
        }
        produced.clear();
        List<WeakReference<RemoteStream>> all = new ArrayList<>(consumed.values());
        consumed.clear();
        pinned.clear();
        for (WeakReference<RemoteStream> ref : all) {
            RemoteStream stream = ref.get();
            if (stream != null) {
                stream.ended(new ConnectionLostException(lost.getMessage(), lost.getCause()));
            }
        }
    }

    /** Stands for a nil item from a publisher (ArrayDeque holds no nulls). */
    private static final Object NIL = new Object();

    /**
     * Subscribes the session to a publisher we feed from: each signal re-enters the session
     * (from whatever thread the publisher uses) and pumps the stream.
     */
    private final class Feeder implements Flow.Subscriber<Object> {
        private final Producer p;

        Feeder(Producer p) {
            this.p = p;
        }

        @Override
        public void onSubscribe(Flow.Subscription s) {
            dispatcher.reenter(() -> {
                if (p.ended || p.subscription != null) {
                    s.cancel();
                    return;
                }
                p.subscription = s;
                p.pump();
            });
        }

        @Override
        public void onNext(Object item) {
            dispatcher.reenter(() -> {
                if (p.ended) {
                    return;
                }
                if (p.requested <= 0) { // the publisher broke rule 1.1: we asked for less
                    p.completed = true;
                    p.completedWith = new IllegalStateException("the publisher of stream "
                            + p.streamId + " sent more items than were requested");
                } else {
                    p.requested--;
                    p.arrived.add(item == null ? NIL : item);
                }
                p.pump();
            });
        }

        @Override
        public void onError(Throwable t) {
            dispatcher.reenter(() -> {
                p.completed = true;
                p.completedWith = t;
                p.pump();
            });
        }

        @Override
        public void onComplete() {
            dispatcher.reenter(() -> {
                p.completed = true;
                p.pump();
            });
        }
    }

    /** One stream we feed: its source, the consumer's credit, how big its items are. */
    private final class Producer {
        final long streamId;
        final Iterator<?> source; // or:
        final Flow.Publisher<?> publisher;
        final AutoCloseable closer;
        long items; // credit left: items, and bytes of stream_items bodies (may go below 0)
        long bytes;
        long perItem; // body bytes per item of the last stream_items sent (0: none yet)
        boolean ended;
        boolean pumping;
        // a publisher's side: what it was asked for, what came, how it ended
        Flow.Subscription subscription;
        boolean subscribed;
        long requested;
        final ArrayDeque<Object> arrived = new ArrayDeque<>();
        boolean completed;
        Throwable completedWith;

        Producer(long streamId, OutgoingStream stream) {
            this.streamId = streamId;
            this.source = stream.source();
            this.publisher = stream.publisher();
            this.closer = stream.closer();
        }

        /** Send what the credit allows: pull, batch, send; end when the source does. */
        void pump() {
            if (pumping) {
                return; // a publisher's onNext inside our request(): the loop below takes it
            }
            pumping = true;
            try {
                pumpNow();
            } finally {
                pumping = false;
            }
        }

        private void pumpNow() {
            while (!ended && items > 0 && bytes > 0) {
                List<Object> batch = new ArrayList<>();
                boolean done = false;
                boolean later = false;
                Throwable failure = null;
                long limit = batchLimit();
                while (batch.size() < limit) {
                    if (publisher != null) {
                        if (arrived.isEmpty() && !completed) {
                            requestMore();
                        }
                        if (!arrived.isEmpty()) {
                            Object item = arrived.poll();
                            batch.add(item == NIL ? null : item);
                            continue;
                        }
                        if (completed) {
                            done = completedWith == null;
                            failure = completedWith;
                        } else {
                            later = true; // sent when it comes
                        }
                        break;
                    }
                    try {
                        if (!source.hasNext()) {
                            done = true;
                            break;
                        }
                        batch.add(source.next());
                    } catch (RuntimeException | Error e) {
                        failure = e;
                        break;
                    }
                }
                if (!batch.isEmpty() && !send(batch)) {
                    return;
                }
                if (done || failure != null) {
                    finish(failure);
                    return;
                }
                if (later) {
                    return;
                }
            }
        }

        /** Ask the publisher for what the item credit allows, beyond what it was asked for. */
        private void requestMore() {
            if (!subscribed) {
                subscribed = true;
                publisher.subscribe(new Feeder(this)); // an onSubscribe later pumps again
            }
            long want = items - requested - arrived.size();
            if (subscription != null && want > 0) {
                requested += want;
                subscription.request(want);
            }
        }

        /**
         * How many items the next stream_items may carry (section 17.2): one at first; then as
         * many as the byte credit holds at the last batch's bytes per item (at least one),
         * within the item credit.
         */
        long batchLimit() {
            if (perItem == 0) {
                return 1;
            }
            return Math.min(Math.min(items, MAX_BATCH), Math.max(1, bytes / perItem));
        }

        private boolean send(List<Object> batch) {
            if (!session.isOpen()) {
                return false;
            }
            byte[] body;
            try {
                body = session.encodeItems(new StreamItems(streamId, batch));
            } catch (RuntimeException e) {
                if (batch.size() > 1) { // too big as one frame, maybe: one item a frame
                    for (Object item : batch) {
                        if (!send(java.util.Collections.singletonList(item))) {
                            return false;
                        }
                    }
                    return true;
                }
                RuntimeException why = e instanceof LimitExceededException
                        ? new OverloadedException("broker.FrameTooLarge",
                                "a stream item cannot be sent: " + e.getMessage(), null) : e;
                finish(why); // the stream fails there, in order
                return false;
            }
            items -= batch.size();
            bytes -= body.length;
            perItem = Math.max(1, body.length / batch.size());
            session.queueBody(body);
            return true;
        }

        /** The source ended (or failed): tell the consumer, forget the stream. */
        void finish(Throwable failure) {
            ended = true;
            produced.remove(streamId);
            FailureInfo info = null;
            if (failure != null) {
                info = session.failureInfoOf(failure);
                if (Wire.CANCELLED.equals(info.kind())) { // "cancelled" is the consumer's word
                    info = new FailureInfo(Wire.FAILED, info.typeName(), info.message(),
                            info.traceback());
                }
                LOG.log(Level.FINE, "stream " + streamId + " failed", failure);
            }
            close();
            session.queueMessage(new StreamEnd(streamId, info));
        }

        /** Cancelled by the consumer, or the connection ended: close the source, once. */
        void stop() {
            if (ended) {
                return;
            }
            ended = true;
            produced.remove(streamId);
            close();
        }

        private void close() {
            arrived.clear();
            if (subscription != null) {
                subscription.cancel();
            }
            if (closer != null) {
                try {
                    closer.close();
                } catch (Exception e) {
                    LOG.log(Level.WARNING, "closing stream " + streamId + "'s source failed", e);
                }
            }
        }
    }
}
