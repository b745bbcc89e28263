package org.pbroker;

import java.io.EOFException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.lang.ref.Cleaner;
import java.lang.reflect.InvocationTargetException;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.EnumMap;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Consumer;
import java.util.logging.Level;
import java.util.logging.Logger;
import org.pbroker.net.PendingCalls;
import org.pbroker.wire.Answer;
import org.pbroker.wire.CacheRef;
import org.pbroker.wire.CacheRelease;
import org.pbroker.wire.CacheUpdate;
import org.pbroker.wire.Call;
import org.pbroker.wire.Cancel;
import org.pbroker.wire.CopyState;
import org.pbroker.wire.Decref;
import org.pbroker.wire.Decrefs;
import org.pbroker.wire.ErrorMessage;
import org.pbroker.wire.ExportedRef;
import org.pbroker.wire.FailureInfo;
import org.pbroker.wire.Finish;
import org.pbroker.wire.FrameAssembler;
import org.pbroker.wire.FrameTooLargeException;
import org.pbroker.wire.Goodbye;
import org.pbroker.wire.HandshakeException;
import org.pbroker.wire.Hello;
import org.pbroker.wire.LocalProtocolException;
import org.pbroker.wire.MalformedMessageException;
import org.pbroker.wire.Message;
import org.pbroker.wire.MessageTooLargeException;
import org.pbroker.wire.Ping;
import org.pbroker.wire.Pong;
import org.pbroker.wire.RemoteProtocolException;
import org.pbroker.wire.ReturnedRef;
import org.pbroker.wire.StreamCredit;
import org.pbroker.wire.StreamEnd;
import org.pbroker.wire.StreamItems;
import org.pbroker.wire.StreamRef;
import org.pbroker.wire.TruncatedFrameException;
import org.pbroker.wire.Wire;
import org.pbroker.wire.WireDecoder;
import org.pbroker.wire.WireEncoder;
import org.pbroker.wire.WireException;
import org.pbroker.wire.WireValue;

/**
 * One connection's broker, without I/O (sans-I/O in the manner of h11): bytes from the peer go in
 * through {@link #receiveData}, frames to send queue up in the outbox ({@link #drainOutbox} /
 * {@link #dataToSend}), and {@link #closeOutcome()} says when the connection should end and why.
 * No socket, thread, timer or executor is touched here ({@link System#nanoTime()} only stamps a
 * callee deadline's budget for {@link CallContext}; its timer is the {@link Dispatcher}'s);
 * {@link PBClient} is the I/O adapter (reader thread, writer, callback executor, timeouts,
 * Cleaner-driven releases, TLS, login).
 *
 * <p>The session owns the handshake, the lifecycle, the four tables of docs/PROTOCOL.md section 6
 * (questions: {@link PendingCalls}; answers; exports: {@link ExportTable}; imports:
 * {@link ImportTable}), calls out ({@link #call}: futures complete when the answers are fed in),
 * calls in (handed to the {@link Dispatcher}, which may run them at once or on an executor),
 * batched releases ({@link #flushReleases}) and goodbye; the negotiated features keep their
 * state in classes of their own, made on first use ({@link Pipeline}, {@link CacheHolder},
 * {@link Streams}, the callee deadlines). Either role: a client's session and a server's differ
 * only in wording; both may export objects (Java {@link Referenceable}s) and
 * have a root (bootstrap object 0).
 *
 * <p>Lifecycle, one table ({@link #TRANSITIONS}; a missing entry is illegal):
 *
 * <pre>
 * state      event             next      what happens
 * HANDSHAKE  SEND              HANDSHAKE our hello is queued at construction; calls may follow it
 * HANDSHAKE  PEER_HELLO        OPEN      the root future completes
 * HANDSHAKE  PEER_GOODBYE      CLOSING   the peer refuses us (instead of its hello): close
 * HANDSHAKE  PEER_ERROR        CLOSING   not a hello, another protocol or version: goodbye queued
 * OPEN       SEND, PEER_MESSAGE OPEN     calls, answers, errors, cancels, decrefs
 * OPEN       PEER_GOODBYE      CLOSING   stop sending; close with the peer's reason
 * OPEN       PEER_ERROR        CLOSING   RemoteProtocolException: goodbye(kind) queued, close
 * OPEN       LOCAL_CLOSE       CLOSING   goodbye queued (HANDSHAKE: closes without one)
 * any open   PEER_EOF          CLOSING   the stream ended (TruncatedFrame inside a frame)
 * CLOSING    DATA              CLOSING   bytes after a goodbye are discarded
 * any        TRANSPORT_CLOSED  CLOSED    questions fail "disconnected", tables cleared, listeners run
 * CLOSED     DATA, PEER_EOF    —         LocalProtocolException: the I/O layer fed a closed session
 * </pre>
 *
 * <p>The peer's faults (bad bytes, second hello, …) never throw: they queue a goodbye and set the
 * close outcome, whose reason is the {@link RemoteProtocolException}. Our own misuse throws
 * {@link LocalProtocolException}. Calls made while closing fail with
 * {@link ConnectionLostException} (that is a race, not a misuse).
 *
 * <p>Not thread-safe: one thread at a time (the I/O layer serialises access), except
 * {@link ImportTable} releases, which any thread may queue. Code outside the session that has to
 * come back into it (a dispatched call finished, a caller cancelled a question) does so through
 * {@link Dispatcher#reenter}.
 */
public final class Session {
    private static final Logger LOG = Logger.getLogger(Session.class.getName());
    /** Most of the peer's caches held at once (the Python broker's max_live_references). */
    static final long MAX_LIVE_CACHES = 100_000;

    /** Which end of the connection this is; only the wording of messages depends on it. */
    public enum Role {
        /** The side that connected. */
        CLIENT,
        /** The side that accepted. */
        SERVER;

        String peerName() {
            return this == CLIENT ? "server" : "client";
        }
    }

    /** The lifecycle states. */
    public enum State {
        /** Our hello is queued; the peer's has not arrived. */
        HANDSHAKE,
        /** Both hellos done: calls both ways. */
        OPEN,
        /** A goodbye was sent or received, or the stream ended: nothing more is sent. */
        CLOSING,
        /** The transport is gone; tables dropped. */
        CLOSED
    }

    /** What can happen to a session (the columns of the lifecycle table). */
    enum Event {
        /** We queue a frame. */
        SEND,
        /** Bytes or a frame arrive. */
        DATA,
        /** The peer's hello arrives. */
        PEER_HELLO,
        /** Any other message from the peer but goodbye. */
        PEER_MESSAGE,
        /** The peer's goodbye arrives. */
        PEER_GOODBYE,
        /** The peer broke the protocol. */
        PEER_ERROR,
        /** The peer's stream ended. */
        PEER_EOF,
        /** We close. */
        LOCAL_CLOSE,
        /** The I/O layer reports that the transport is closed. */
        TRANSPORT_CLOSED
    }

    /** The lifecycle table: state, event, next state. */
    static final Map<State, Map<Event, State>> TRANSITIONS = transitions();

    private static Map<State, Map<Event, State>> transitions() {
        Map<State, Map<Event, State>> t = new EnumMap<>(State.class);
        for (State s : State.values()) {
            t.put(s, new EnumMap<>(Event.class));
        }
        t.get(State.HANDSHAKE).putAll(Map.of(Event.SEND, State.HANDSHAKE,
                Event.DATA, State.HANDSHAKE, Event.PEER_HELLO, State.OPEN,
                Event.PEER_GOODBYE, State.CLOSING, Event.PEER_ERROR, State.CLOSING, Event.PEER_EOF, State.CLOSING,
                Event.LOCAL_CLOSE, State.CLOSING, Event.TRANSPORT_CLOSED, State.CLOSED));
        t.get(State.OPEN).putAll(Map.of(Event.SEND, State.OPEN, Event.DATA, State.OPEN,
                Event.PEER_MESSAGE, State.OPEN, Event.PEER_GOODBYE, State.CLOSING,
                Event.PEER_ERROR, State.CLOSING, Event.PEER_EOF, State.CLOSING,
                Event.LOCAL_CLOSE, State.CLOSING, Event.TRANSPORT_CLOSED, State.CLOSED));
        t.get(State.CLOSING).putAll(Map.of(Event.DATA, State.CLOSING,
                Event.PEER_EOF, State.CLOSING, Event.LOCAL_CLOSE, State.CLOSING,
                Event.TRANSPORT_CLOSED, State.CLOSED));
        t.get(State.CLOSED).putAll(Map.of(Event.LOCAL_CLOSE, State.CLOSED,
                Event.TRANSPORT_CLOSED, State.CLOSED));
        return t;
    }

    /**
     * Limits of one connection.
     *
     * @param maxFrameSize largest frame body we accept (announced in our hello)
     * @param maxDepth deepest nesting we accept (announced)
     * @param maxContainerLength longest array or map we accept (announced)
     * @param maxOutstandingCalls questions awaiting an answer before further calls fail with
     *     {@link LimitExceededException}
     * @param maxRunningCalls incoming calls running at once before further ones are refused as
     *     overloaded
     */
    public record Limits(int maxFrameSize, int maxDepth, int maxContainerLength,
            int maxOutstandingCalls, int maxRunningCalls) {
        /** @return the protocol's default limits, 10,000 calls each way */
        public static Limits defaults() {
            return new Limits(Wire.DEFAULT_MAX_FRAME_SIZE, Wire.DEFAULT_MAX_DEPTH,
                    Wire.DEFAULT_MAX_CONTAINER_LENGTH, 10_000, 10_000);
        }
    }

    /**
     * The session wants the connection closed once the outbox is sent.
     *
     * @param kind the goodbye kind we sent or received ("normal", "invalid", ...), or
     *     "disconnected" when the stream ended without one
     * @param reason why, for the I/O layer to pass back to {@link #connectionLost}: the
     *     {@link RemoteProtocolException} the peer caused, a {@link ConnectionLostException} for a
     *     goodbye or a local close, an {@link EOFException} for the end of the stream
     * @param goodbyeSent whether we queued a goodbye
     */
    public record CloseOutcome(String kind, Throwable reason, boolean goodbyeSent) {}

    /**
     * A call made by {@link #ask}.
     *
     * @param requestId its request id (0 for a call without answer)
     * @param answer completes with the result, or fails
     */
    public record Question(long requestId, CompletableFuture<Object> answer) {}

    /**
     * Where the code the session does not run itself runs: the pluggable dispatcher. The
     * {@link #synchronous()} one runs everything at once (tests, vectors); {@link PBClient}'s runs
     * calls and completions on its callback executor and re-enters under its session lock.
     */
    public interface Dispatcher {
        /**
         * Run an incoming call, now or later, exactly once ({@link IncomingCall#run()}).
         *
         * @param call the call, its target already looked up (in message order)
         */
        void dispatch(IncomingCall call);

        /**
         * Run user-facing work: completing a future, a disconnect listener.
         *
         * @param completion the work
         */
        void deliver(Runnable completion);

        /**
         * Run {@code task} with exclusive access to the session (and send what it queued): how
         * code outside a session method gets back in (a dispatched call's result, a cancelled
         * future). May be called while the session is already being used on this thread.
         *
         * @param task the task
         */
        void reenter(Runnable task);

        /**
         * Run {@code task} in the session's context (as {@link #reenter} does) once
         * {@code delay} has passed: the timers of callee deadlines (section 18.2). The default
         * has no clock and schedules nothing.
         *
         * @param delay how long from now
         * @param task the task
         * @return cancels the timer (harmless once it ran), or null if nothing was scheduled
         */
        default Runnable schedule(Duration delay, Runnable task) {
            return null;
        }

        /** @return a dispatcher that runs everything at once, on the calling thread */
        static Dispatcher synchronous() {
            return new Dispatcher() {
                @Override
                public void dispatch(IncomingCall call) {
                    call.run();
                }

                @Override
                public void deliver(Runnable completion) {
                    completion.run();
                }

                @Override
                public void reenter(Runnable task) {
                    task.run();
                }
            };
        }
    }

    /** A call from the peer, checked and with its target looked up; {@link #run()} it once. */
    public final class IncomingCall {
        private final Call call;
        private final Referenceable target;
        private final RuntimeException refusal;

        private IncomingCall(Call call, Referenceable target, RuntimeException refusal) {
            this.call = call;
            this.target = target;
            this.refusal = refusal;
        }

        /** @return the request id (0 for a call without answer) */
        public long requestId() {
            return call.requestId();
        }

        /** @return the target's object id in our exports */
        public long targetId() {
            return call.target();
        }

        /** @return the method name */
        public String method() {
            return call.method();
        }

        /** @return the positional arguments, decoded */
        public List<Object> args() {
            return call.args();
        }

        /** @return the keyword arguments, decoded */
        public Map<String, Object> kwargs() {
            return call.kwargs();
        }

        /** @return false for a one-way call */
        public boolean answerWanted() {
            return call.answerWanted();
        }

        /**
         * Invoke the target (user code) and hand the result back to the session through
         * {@link Dispatcher#reenter}; a refused call (unknown object, reserved flags, overload)
         * just sends its error.
         */
        public void run() {
            if (refusal != null) {
                dispatcher.reenter(() -> reply(call, null, refusal));
                return;
            }
            Deadline d = deadlineOf(call);
            if (d != null && d.fired) { // answered "deadline" while it waited to run: skip it
                dispatcher.reenter(() -> reply(call, null, null));
                return;
            }
            Object result;
            try {
                if (call.options() == null) {
                    result = target.remoteMessageReceived(call.method(), call.args(), call.kwargs());
                } else { // what nested calls inherit (section 18.2 rule 3)
                    result = new CallContext(d == null ? null : d.atNanos,
                            CallContext.metadataOf(call.options())).run(() ->
                            target.remoteMessageReceived(call.method(), call.args(), call.kwargs()));
                }
            } catch (Exception e) {
                dispatcher.reenter(() -> reply(call, null, e));
                return;
            }
            if (result instanceof CompletionStage<?> stage) {
                CompletableFuture<?> future = stage.toCompletableFuture();
                dispatcher.reenter(() -> awaitResult(call, future));
            } else {
                dispatcher.reenter(() -> reply(call, result, null));
            }
        }

        @Override
        public String toString() {
            return "IncomingCall(" + call + ")";
        }
    }

    private final Role role;
    private final Limits limits;
    private final boolean debug;
    private final CopyRegistry registry;
    private final Dispatcher dispatcher;
    private final ProxyHost host;
    private final WireDecoder decoder;
    private final FrameAssembler frames;
    private final PendingCalls questions;
    private final Map<Long, CompletableFuture<?>> answers = new HashMap<>();
    private Pipeline pipeline; // "pipelining" (section 15), made on first use
    private long pipelinedFlag; // CALL_TARGET_IS_QUESTION while askPipelined sends
    /** Running one-way calls: no table entry on the wire, but they count as running (section 8). */
    private final Set<CompletableFuture<?>> oneWayRunning =
            Collections.newSetFromMap(new IdentityHashMap<>());
    private final ExportTable exports;
    private final ImportTable imports;
    private final ConcurrentLinkedQueue<ImportTable.Entry> deadProxies =
            new ConcurrentLinkedQueue<>();
    private final List<Consumer<Throwable>> disconnectListeners = new ArrayList<>();
    /** Timers of incoming calls with a budget (section 18.2), made on first use. */
    private Map<Call, Deadline> deadlines;
    private final CompletableFuture<RemoteReference> ready = new CompletableFuture<>();
    private final RemoteReference bootstrap;
    private final List<byte[]> outbox = new ArrayList<>();
    /** Problems found while decoding the current message. */
    private final List<RuntimeException> problems = new ArrayList<>();
    /** Caches held (feature "cache", section 16), made with the first cache ref. */
    private CacheHolder caches;
    /** Runs RemoteCache updates in order; null: one thread of the holder's own. */
    private java.util.concurrent.Executor cacheExecutor;
    /** Streams both ways (feature "streams", section 17), made on first use. */
    private Streams streams;
    private long streamWindowItems = Streams.DEFAULT_WINDOW_ITEMS;
    private long streamWindowBytes = Streams.DEFAULT_WINDOW_BYTES;
    private volatile State state = State.HANDSHAKE;
    private Hello peerHello;
    private Goodbye peerGoodbye;
    private CloseOutcome outcome;
    private ConnectionLostException lost;
    /** Calls of receiveData / receiveFrame with bytes: what the heartbeat watches (section 5.2). */
    private long received;
    private long nextNonce = 1;

    /**
     * A session driven by hand: calls in and completions run through {@code dispatcher}, proxies
     * are released explicitly ({@link RemoteReference#close()}, then {@link #flushReleases()}),
     * timeouts are not available (there is no clock). Our hello is queued at once.
     *
     * @param role which end this is
     * @param limits our limits
     * @param debug send Java stack traces with failures of incoming calls
     * @param root our bootstrap object (id 0), or null for none
     * @param registry the copyable classes (null: a fresh registry)
     * @param dispatcher runs incoming calls and completions
     */
    public Session(Role role, Limits limits, boolean debug, Referenceable root,
            CopyRegistry registry, Dispatcher dispatcher) {
        this(role, limits, debug, root, registry, dispatcher, null);
    }

    /**
     * A session with the default limits and the synchronous dispatcher.
     *
     * @param role which end this is
     * @param root our bootstrap object, or null
     */
    public Session(Role role, Referenceable root) {
        this(role, Limits.defaults(), false, root, null, Dispatcher.synchronous());
    }

    Session(Role role, Limits limits, boolean debug, Referenceable root, CopyRegistry registry,
            Dispatcher dispatcher, ProxyHost host) {
        this(role, limits, debug, root, registry, dispatcher, host, List.of());
    }

    /**
     * A session announcing optional features (docs/PROTOCOL.md section 3.1: {@link
     * Wire#FEATURE_HEARTBEAT}, {@link Wire#FEATURE_DECREFS}); the others announce none.
     */
    Session(Role role, Limits limits, boolean debug, Referenceable root, CopyRegistry registry,
            Dispatcher dispatcher, ProxyHost host, List<String> features) {
        this.role = Objects.requireNonNull(role, "role");
        this.limits = Objects.requireNonNull(limits, "limits");
        this.debug = debug;
        this.registry = registry != null ? registry : new CopyRegistry();
        this.dispatcher = Objects.requireNonNull(dispatcher, "dispatcher");
        this.host = host != null ? host : new DirectHost();
        this.decoder = new WireDecoder(limits.maxFrameSize(), limits.maxDepth(),
                limits.maxContainerLength(), WireDecoder.FrameLimits.defaults(), features, true,
                this::resolve);
        this.frames = new FrameAssembler(limits.maxFrameSize());
        this.questions = new PendingCalls(dispatcher::deliver, null,
                id -> dispatcher.reenter(() -> abandoned(id)));
        this.exports = new ExportTable(root);
        this.imports = new ImportTable(this.host, this::queueRelease);
        this.bootstrap = new RemoteReference(this.host, Wire.BOOTSTRAP_ID, null);
        queuePlain(decoder.hello());
    }

    /**
     * A session driven by hand that announces {@code features}.
     *
     * @param role which end this is
     * @param limits our limits
     * @param root our bootstrap object, or null
     * @param dispatcher runs incoming calls and completions
     * @param features the optional features to announce ("heartbeat", "decrefs")
     * @return the session, its hello queued
     */
    public static Session withFeatures(Role role, Limits limits, Referenceable root,
            Dispatcher dispatcher, List<String> features) {
        Session session = new Session(role, limits, false, root, null, dispatcher, null, features);
        session.cacheExecutor(Runnable::run); // driven by hand: RemoteCache updates run at once
        return session;
    }

    /** @return the features both hellos named (none before the peer's hello) */
    public Set<String> negotiated() {
        return decoder.negotiated();
    }

    // --- heartbeat (docs/PROTOCOL.md section 5.2); the I/O layer owns the clock -------------------

    /**
     * @return how many times bytes from the peer arrived so far: the I/O layer's clock notes
     *     when this changes (anything received shows the peer is alive)
     */
    public long receivedCount() {
        return received;
    }

    /** @return whether both hellos named "heartbeat" and the connection is open */
    public boolean heartbeatActive() {
        return state == State.OPEN && decoder.negotiated().contains(Wire.FEATURE_HEARTBEAT);
    }

    /**
     * The peer has been silent for a while: queue a ping (only if {@link #heartbeatActive()}).
     *
     * @return whether a ping was queued
     */
    public boolean ping() {
        if (!heartbeatActive()) {
            return false;
        }
        queuePlain(new Ping(nextNonce++));
        return true;
    }

    /**
     * The I/O layer's clock says nothing arrived for {@code silence} (its dead_after): the peer
     * is dead. The session wants the connection closed at once (no goodbye; the outbox need not
     * be sent) and every question fails with a {@link ConnectionLostException} saying the peer
     * stopped answering. No-op unless open or in the handshake.
     *
     * @param silence how long nothing arrived
     */
    public void peerSilent(Duration silence) {
        if (!sending()) {
            return;
        }
        advance(Event.PEER_EOF);
        outbox.clear();
        outcome = new CloseOutcome(Wire.DISCONNECTED, new ConnectionLostException(
                "the " + role.peerName() + " stopped answering (nothing received for "
                + silence.toMillis() / 1000.0 + " s)"), false);
    }

    // --- state -----------------------------------------------------------------------------------

    /** @return the lifecycle state (safe to read from any thread) */
    public State state() {
        return state;
    }

    /** @return which end this is */
    public Role role() {
        return role;
    }

    /** @return our limits */
    public Limits limits() {
        return limits;
    }

    /** @return the peer's hello, once it arrived */
    public Optional<Hello> peerHello() {
        return Optional.ofNullable(peerHello);
    }

    /** @return the peer's goodbye, if one arrived */
    public Optional<Goodbye> peerGoodbye() {
        return Optional.ofNullable(peerGoodbye);
    }

    /**
     * What the I/O layer should do: empty to keep the connection open; otherwise send the outbox,
     * close the transport and report it with {@link #connectionLost}.
     *
     * @return the close outcome, if the session wants the connection closed (or it is closed)
     */
    public Optional<CloseOutcome> closeOutcome() {
        if (outcome == null && state == State.CLOSED) {
            return Optional.of(new CloseOutcome(Wire.DISCONNECTED, lost, false));
        }
        return Optional.ofNullable(outcome);
    }

    /** @return why the connection ended, once it has; null before */
    public ConnectionLostException lostReason() {
        return lost;
    }

    /** @return completes with the peer's bootstrap object once the handshake is done */
    public CompletableFuture<RemoteReference> ready() {
        return ready;
    }

    /** @return the peer's bootstrap object (id 0), usable once {@link #ready()} completed */
    public RemoteReference root() {
        return bootstrap;
    }

    /** @return the copy registry */
    public CopyRegistry registry() {
        return registry;
    }

    /** @return questions awaiting an answer */
    public int pendingCalls() {
        return questions.size();
    }

    /** @return incoming calls whose result is still pending (one-way calls too) */
    public int runningCalls() {
        return answers.size() + oneWayRunning.size();
    }

    /** @return our objects the peer holds references to (not counting our root) */
    public int exportedObjects() {
        return exports.size();
    }

    /** @return proxies for the peer's objects not yet released */
    public int importedObjects() {
        return imports.size();
    }

    /** @return the largest body the peer accepts (ours until its hello arrives) */
    public long peerMaxFrameSize() {
        Hello hello = peerHello;
        return hello != null ? hello.maxFrameSize() : limits.maxFrameSize();
    }

    private boolean sending() {
        return state == State.HANDSHAKE || state == State.OPEN;
    }

    /** A public entry point: an illegal event is our (the I/O layer's) misuse. */
    private void require(Event event) throws LocalProtocolException {
        State next = TRANSITIONS.get(state).get(event);
        if (next == null) {
            throw new LocalProtocolException(event + " is not allowed in state " + state);
        }
        state = next;
    }

    /** An internal step: an illegal event is a bug in this class. */
    private void advance(Event event) {
        State next = TRANSITIONS.get(state).get(event);
        if (next == null) {
            throw new IllegalStateException(event + " is not allowed in state " + state);
        }
        state = next;
    }

    @Override
    public String toString() {
        return "Session(" + role.name().toLowerCase(Locale.ROOT) + ", " + state + ")";
    }

    // --- bytes in --------------------------------------------------------------------------------

    /**
     * Feed bytes from the peer (any amount: part of a frame, several frames). Everything they
     * cause is queued before this returns (with a synchronous dispatcher, answers to incoming
     * calls too). Bytes that arrive while closing are discarded.
     *
     * @param data the bytes
     * @throws LocalProtocolException if the session is closed
     */
    public void receiveData(byte[] data) throws LocalProtocolException {
        receiveData(ByteBuffer.wrap(data));
    }

    /**
     * Feed bytes from the peer.
     *
     * @param data the bytes (consumed)
     * @throws LocalProtocolException if the session is closed
     */
    public void receiveData(ByteBuffer data) throws LocalProtocolException {
        require(Event.DATA);
        if (state == State.CLOSING) {
            data.position(data.limit());
            return;
        }
        if (data.hasRemaining()) {
            received++;
        }
        frames.feed(data);
        while (sending()) {
            byte[] body;
            try {
                body = frames.next();
            } catch (FrameTooLargeException e) {
                protocolError(e);
                return;
            }
            if (body == null) {
                flushFinishes();
                return;
            }
            handleBody(body);
        }
    }

    /**
     * Feed one frame body, for I/O layers that do the framing themselves (and check the length
     * header before reading the body, as {@link org.pbroker.wire.FrameReader} does).
     *
     * @param body the frame body, without its length header
     * @throws LocalProtocolException if the session is closed, or holds part of a frame from
     *     {@link #receiveData}
     */
    public void receiveFrame(byte[] body) throws LocalProtocolException {
        if (frames.buffered() > 0) {
            throw new LocalProtocolException("receiveFrame while " + frames.buffered()
                    + " bytes of a frame from receiveData are buffered");
        }
        require(Event.DATA);
        if (state == State.CLOSING) {
            return;
        }
        received++;
        handleBody(body);
        flushFinishes();
    }

    /**
     * The I/O layer's own framing found the peer's bytes bad (an oversized length header, a
     * truncated frame): handled like the same error found here.
     *
     * @param error what is wrong
     * @throws LocalProtocolException if the session is closed
     */
    public void framingFailed(RemoteProtocolException error) throws LocalProtocolException {
        require(Event.DATA);
        if (sending()) {
            protocolError(error);
        }
    }

    /**
     * The peer's stream ended. Inside a frame that is a {@link TruncatedFrameException}; either
     * way the session wants the connection closed (kind "disconnected", no goodbye: nobody is
     * left to read it).
     *
     * @throws LocalProtocolException if the session is closed
     */
    public void receiveEof() throws LocalProtocolException {
        State before = state;
        require(Event.PEER_EOF);
        if (before == State.CLOSING) {
            return;
        }
        Throwable reason;
        try {
            frames.endOfStream();
            reason = new EOFException("connection closed by " + role.peerName());
        } catch (TruncatedFrameException e) {
            reason = e;
        }
        outcome = new CloseOutcome(Wire.DISCONNECTED, reason, false);
    }

    private void handleBody(byte[] body) {
        Message message;
        problems.clear();
        try {
            message = decoder.decodeBody(body);
        } catch (RemoteProtocolException e) {
            protocolError(e);
            return;
        } catch (WireException e) {
            protocolError(new MalformedMessageException(String.valueOf(e.getMessage()), e));
            return;
        }
        if (LOG.isLoggable(Level.FINEST)) {
            LOG.finest(this + " <- " + message);
        }
        if (message instanceof Hello hello) {
            advance(Event.PEER_HELLO);
            peerHello = hello;
            dispatcher.deliver(() -> ready.complete(bootstrap));
            return;
        }
        if (message instanceof Goodbye goodbye) {
            // the peer sends nothing more: stop sending and close (section 3.2)
            advance(Event.PEER_GOODBYE);
            peerGoodbye = goodbye;
            outcome = new CloseOutcome(goodbye.kind(),
                    new ConnectionLostException(peerClosed(goodbye)), false);
            return;
        }
        advance(Event.PEER_MESSAGE);
        if (!problems.isEmpty()) {
            RuntimeException problem = problems.get(0);
            problems.clear();
            handleUndecodable(message, problem);
            return;
        }
        if (message instanceof Answer answer) {
            if (answer.value() instanceof RemoteReference && pipelining()) {
                pipeline().toFinish(answer.requestId()); // the callee keeps it (15.2)
            }
            questions.complete(answer.requestId(), answer.value());
        } else if (message instanceof ErrorMessage error) {
            if (pipelining()) {
                pipeline().toFinish(error.requestId());
            }
            questions.fail(error.requestId(), exceptionFrom(error.failure()));
        } else if (message instanceof Call call) {
            handleCall(call);
        } else if (message instanceof Cancel cancel) {
            CompletableFuture<?> running = answers.get(cancel.requestId());
            if (running != null) {
                running.cancel(true);
            } else if (pipeline != null) { // a pipelined call waiting on its question (15.1)
                Call waiting = pipeline.cancelWaiting(cancel.requestId());
                if (waiting != null) {
                    reply(waiting, null, new CancellationException("cancelled while waiting"));
                }
            }
        } else if (message instanceof Finish finish) {
            if (pipeline != null) {
                pipeline.finish(finish);
            }
        } else if (message instanceof Decref decref) {
            release(decref.objectId(), decref.count());
        } else if (message instanceof Ping ping) {
            queuePlain(new Pong(ping.nonce())); // at once, before the frames behind it (3.9)
        } else if (message instanceof Decrefs decrefs) {
            decrefs.releases().forEach(this::release);
        } else if (message instanceof StreamItems items) { // section 17.2
            if (streams != null) {
                streams.items(items, body.length);
            }
        } else if (message instanceof StreamCredit credit) {
            if (streams != null) {
                streams.credit(credit);
            }
        } else if (message instanceof StreamEnd end) { // section 17.3
            if (streams != null) {
                streams.end(end);
            }
        } else if (message instanceof CacheUpdate update) {
            caches().update(update); // section 16.2
        } else if (message instanceof CacheRelease release) {
            LOG.warning(this + ": " + role.peerName() + " released " + release.count()
                    + " of cache " + release.cacheId() + ": this client owns no caches");
        }
        // a Pong needs nothing: receiving it (like any frame) is what the heartbeat watches
    }

    private void release(long objectId, long count) {
        if (!exports.release(objectId, count)) {
            LOG.warning(this + ": " + role.peerName() + " released " + count
                    + " of object " + objectId + " it does not hold");
        }
    }

    private String peerClosed(Goodbye goodbye) {
        return role.peerName() + " closed the connection (" + goodbye.kind()
                + (goodbye.message().isEmpty() ? "" : ": " + goodbye.message()) + ")";
    }

    /** The peer broke the protocol: say why in a goodbye (if anyone is left to read it), close. */
    private void protocolError(RemoteProtocolException e) {
        LOG.log(Level.WARNING, this + ": closing, " + role.peerName() + " sent bad data: " + e);
        boolean tell = !(e instanceof TruncatedFrameException);
        if (tell) {
            queuePlain(new Goodbye(e.kind(), String.valueOf(e.getMessage())));
        }
        advance(Event.PEER_ERROR);
        outcome = new CloseOutcome(e.kind(), e, tell);
    }

    /** A message decoded but named something we refuse (unregistered copy, unknown object). */
    private void handleUndecodable(Message message, RuntimeException problem) {
        if (message instanceof Call call) {
            if (call.answerWanted()) {
                queuePlain(new ErrorMessage(call.requestId(), failureInfo(problem)));
            } else {
                LOG.warning(this + ": refused one-way call '" + call.method() + "': " + problem);
            }
        } else if (message instanceof Answer answer) {
            questions.fail(answer.requestId(), problem);
        } else if (message instanceof ErrorMessage error) {
            questions.fail(error.requestId(), problem);
        } else {
            LOG.warning(this + ": refused " + message + ": " + problem);
        }
    }

    // --- bytes out -------------------------------------------------------------------------------

    /**
     * Take the queued frames, in order.
     *
     * @return the frame bodies, without their 4-byte length headers (for a framed transport)
     */
    public List<byte[]> drainOutbox() {
        List<byte[]> out = List.copyOf(outbox);
        outbox.clear();
        return out;
    }

    /** @return the queued frames as one byte stream, length headers included; the outbox empties */
    public byte[] dataToSend() {
        int n = 0;
        for (byte[] body : outbox) {
            n += 4 + body.length;
        }
        ByteBuffer out = ByteBuffer.allocate(n);
        for (byte[] body : outbox) {
            out.putInt(body.length).put(body);
        }
        outbox.clear();
        return out.array();
    }

    /** @return whether frames are queued */
    public boolean hasDataToSend() {
        return !outbox.isEmpty();
    }

    private void queue(byte[] body) {
        advance(Event.SEND);
        outbox.add(body);
    }

    /** Queue a message that carries no references or copies. */
    private void queuePlain(Message message) {
        if (LOG.isLoggable(Level.FINEST)) {
            LOG.finest(this + " -> " + message);
        }
        try {
            queue(new WireEncoder(null, peerMaxFrameSize()).encodeBody(message));
        } catch (WireException e) {
            LOG.warning(this + ": cannot send " + message.getClass().getSimpleName() + ": " + e);
        }
    }

    // --- calls out -------------------------------------------------------------------------------

    /**
     * Call {@code method} on the peer's object {@code target}.
     *
     * @param target an object id in the peer's exports (0: its root)
     * @param method the method name
     * @param args positional arguments (natives, Referenceables, copyables, proxies of this
     *     session)
     * @param kwargs keyword arguments
     * @param noAnswer a one-way call (its future completes with null once queued)
     * @return the answer's future
     */
    public CompletableFuture<Object> call(long target, String method, List<?> args,
            Map<String, ?> kwargs, boolean noAnswer) {
        return ask(target, method, args, kwargs, noAnswer).answer();
    }

    /**
     * {@link #call}, also giving the request id (for {@link #timeOut}).
     *
     * @param target an object id in the peer's exports
     * @param method the method name
     * @param args positional arguments
     * @param kwargs keyword arguments
     * @param noAnswer a one-way call
     * @return the request id and the answer's future
     */
    public Question ask(long target, String method, List<?> args, Map<String, ?> kwargs,
            boolean noAnswer) {
        return ask(target, method, args, kwargs, noAnswer, null);
    }

    /**
     * {@link #ask} with call options (docs/PROTOCOL.md section 18): {@code options} is field 8,
     * sent only when both hellos named "call-options" (else the call goes without it).
     *
     * @param target an object id in the peer's exports
     * @param method the method name
     * @param args positional arguments
     * @param kwargs keyword arguments
     * @param noAnswer a one-way call
     * @param options field 8 (from {@link CallOptions}), or null
     * @return the request id and the answer's future
     */
    public Question ask(long target, String method, List<?> args, Map<String, ?> kwargs,
            boolean noAnswer, Map<String, Object> options) {
        Objects.requireNonNull(method, "method");
        if (options != null && !decoder.negotiated().contains(Wire.FEATURE_CALL_OPTIONS)) {
            options = null; // an old peer: the local deadline still holds (section 18.5)
        }
        if (!sending()) {
            String text = "cannot call '" + method + "': the connection is "
                    + (state == State.CLOSED ? "closed" : "closing");
            return failed(lost != null ? new ConnectionLostException(text, lost)
                    : new ConnectionLostException(text));
        }
        if (!noAnswer && questions.size() >= limits.maxOutstandingCalls()) {
            return failed(new LimitExceededException(questions.size()
                    + " calls outstanding; the limit is " + limits.maxOutstandingCalls()));
        }
        long requestId = noAnswer ? 0 : questions.nextId();
        byte[] body;
        try {
            @SuppressWarnings("unchecked")
            List<Object> a = (List<Object>) args;
            @SuppressWarnings("unchecked")
            Map<String, Object> kw = (Map<String, Object>) kwargs;
            body = encodeWithRefs(new Call(requestId, target, method, a, kw,
                    (noAnswer ? Wire.CALL_NO_ANSWER : 0) | pipelinedFlag, options));
        } catch (RuntimeException e) {
            return failed(e);
        }
        CompletableFuture<Object> future = noAnswer ? CompletableFuture.completedFuture(null)
                : questions.register(requestId, null);
        queue(body);
        return new Question(requestId, future);
    }

    private static Question failed(Throwable e) {
        return new Question(0, CompletableFuture.failedFuture(e));
    }

    /**
     * The I/O layer's clock says question {@code requestId} waited too long: it fails with a
     * {@link TimeoutException} and the peer is asked to cancel it.
     *
     * @param requestId the question
     * @param after how long it waited (for the message)
     * @return false if it was no longer pending
     */
    public boolean timeOut(long requestId, Duration after) {
        if (!questions.fail(requestId, new TimeoutException(
                "no answer to request " + requestId + " within " + after))) {
            return false;
        }
        abandoned(requestId);
        return true;
    }

    /**
     * Question {@code requestId}'s deadline (section 18.3) passed: it fails with a
     * {@link DeadlineExceededException} and the peer is asked to cancel it.
     *
     * @param requestId the question
     * @param after its budget (for the message)
     * @return false if it was no longer pending
     */
    public boolean deadlinePassed(long requestId, Duration after) {
        if (!questions.fail(requestId, DeadlineExceededException.local(new TimeoutException(
                "no answer to request " + requestId + " within its deadline of " + after)))) {
            return false;
        }
        abandoned(requestId);
        return true;
    }

    /** A question timed out or its caller cancelled it: ask the peer to cancel (section 9). */
    private void abandoned(long requestId) {
        if (sending()) {
            queuePlain(new Cancel(requestId));
        }
    }

    /**
     * Encode a message whose values may contain Referenceables (exported, counted) and copyables;
     * undo the export counts if encoding fails.
     */
    private byte[] encodeWithRefs(Message message) {
        if (LOG.isLoggable(Level.FINEST)) {
            LOG.finest(this + " -> " + message);
        }
        List<Long> sent = new ArrayList<>();
        WireEncoder encoder = new WireEncoder(obj -> toWire(obj, sent), peerMaxFrameSize());
        try {
            byte[] body = encoder.encodeBody(message);
            if (streams != null) {
                streams.confirmSends();
            }
            return body;
        } catch (WireException e) {
            for (long id : sent) {
                exports.undoSend(id);
            }
            if (streams != null) {
                streams.undoSends(); // the streams it carried never existed (section 17)
            }
            Throwable cause = e.getCause();
            if (cause instanceof BrokerException b) {
                throw b;
            }
            if (cause instanceof IllegalArgumentException || cause instanceof IllegalStateException) {
                throw (RuntimeException) cause;
            }
            String what = message.getClass().getSimpleName().toLowerCase(Locale.ROOT);
            if (e instanceof MessageTooLargeException) {
                throw new LimitExceededException(e.getMessage(), e);
            }
            throw new LimitExceededException("cannot encode the " + what + ": " + e.getMessage(),
                    e);
        }
    }

    /** Encoder hook: what a non-native object becomes on the wire. */
    private Object toWire(Object obj, List<Long> sent) {
        if (obj instanceof RemoteReference ref) {
            if (ref.host() != host) {
                throw new IllegalArgumentException("a reference from another connection cannot be"
                        + " passed on (no third-party hand-off)");
            }
            if (ref.isReleased()) {
                throw new IllegalStateException("cannot pass a released (closed) reference");
            }
            return new ReturnedRef(ref.objectId());
        }
        if (obj instanceof Referenceable) {
            long id = exports.addSend(obj);
            sent.add(id);
            return new ExportedRef(id);
        }
        OutgoingStream stream = OutgoingStream.from(obj);
        if (stream != null) {
            return streams().toWire(stream); // section 17.1
        }
        String typeName = registry.nameFor(obj);
        if (typeName != null) {
            return new CopyState(typeName, registry.stateOf(obj));
        }
        if (obj instanceof Enum<?> e) {
            return e.name();
        }
        return obj; // not encodable: the encoder says so
    }

    // --- values from the wire --------------------------------------------------------------------

    /** Decoder hook: what a wire value becomes here. */
    private Object resolve(WireValue value) {
        if (value instanceof ExportedRef ref) {
            return ref.objectId() == Wire.BOOTSTRAP_ID ? bootstrap : imports.received(ref.objectId());
        }
        if (value instanceof ReturnedRef ref) {
            Object obj = exports.get(ref.objectId());
            if (obj == null) {
                problems.add(new InvalidReferenceException("broker.NoSuchObject",
                        "object " + ref.objectId() + " is not ours to return", null));
            }
            return obj;
        }
        if (value instanceof CopyState copy) {
            try {
                return registry.build(copy.typeName(), copy.state());
            } catch (UnregisteredCopyException e) {
                problems.add(e);
            } catch (RuntimeException e) {
                problems.add(new RemoteException(Wire.FAILED, "broker.BadCopy",
                        "cannot build '" + copy.typeName() + "': " + e.getMessage(), null));
            }
            return null;
        }
        if (value instanceof CacheRef ref) {
            return caches().received(ref, problems); // section 16.1
        }
        if (value instanceof StreamRef ref) {
            return streams().received(ref, problems); // section 17.1
        }
        return exceptionFrom((FailureInfo) value);
    }

    /**
     * Run RemoteCache updates on {@code executor} (in the order they arrive; default: one
     * thread per connection, made with the first update; {@link PBClient} passes its callback
     * executor's ordered lane, {@link OrderedDelivery}, unless told otherwise). Set it before
     * the first cache.
     *
     * @param executor an executor that keeps submission order, or null for the default
     */
    public void cacheExecutor(java.util.concurrent.Executor executor) {
        this.cacheExecutor = executor;
    }

    /** @return the number of the peer's caches held here (section 16) */
    public int heldCaches() {
        return caches == null ? 0 : caches.size();
    }

    // --- streams (feature "streams", section 17) -----------------------------------------------

    /**
     * The window this side offers and grants, per stream (default 64 items, 1 MiB: the Python
     * broker's). Set it before the first stream.
     *
     * @param items the most items in flight, at least 1
     * @param bytes the most bytes of stream_items bodies in flight, at least 1
     */
    public void streamWindow(long items, long bytes) {
        if (items < 1 || bytes < 1) {
            throw new IllegalArgumentException("a stream window is at least 1 item and 1 byte,"
                    + " got " + items + " items, " + bytes + " bytes");
        }
        streamWindowItems = items;
        streamWindowBytes = bytes;
    }

    /** @return the peer's streams we consume (section 17) */
    public int consumedStreams() {
        return streams == null ? 0 : streams.consumedCount();
    }

    /** @return the streams we produce for the peer */
    public int producedStreams() {
        return streams == null ? 0 : streams.producedCount();
    }

    private Streams streams() {
        if (streams == null) {
            streams = new Streams(this, dispatcher, streamWindowItems, streamWindowBytes);
        }
        return streams;
    }

    boolean isOpen() {
        return state == State.OPEN;
    }

    void queueMessage(Message message) {
        queuePlain(message);
    }

    byte[] encodeItems(StreamItems message) {
        return encodeWithRefs(message);
    }

    void queueBody(byte[] body) {
        queue(body);
    }

    void track(Object stream, Runnable onUnreachable) {
        host.track(stream, () -> {
            onUnreachable.run();
            host.releaseQueued();
        });
    }

    void streamProtocolError(RemoteProtocolException e) {
        protocolError(e);
    }

    RuntimeException exceptionFromFailure(FailureInfo info) {
        return exceptionFrom(info);
    }

    FailureInfo failureInfoOf(Throwable exc) {
        return failureInfo(exc);
    }

    private CacheHolder caches() {
        if (caches == null) {
            caches = new CacheHolder(this::queuePlain, host::releaseQueued, cacheExecutor,
                    MAX_LIVE_CACHES, toString());
        }
        return caches;
    }

    private RuntimeException exceptionFrom(FailureInfo info) {
        if (Wire.FAILED.equals(info.kind()) && registry.isRegistered(info.typeName())) {
            try {
                Object built = registry.build(info.typeName(),
                        Map.of("args", List.of(info.message()), "attrs", Map.of()));
                if (built instanceof RuntimeException re) {
                    return re;
                }
                if (built instanceof Throwable t) {
                    return new CompletionException(t);
                }
            } catch (RuntimeException ignored) {
                // fall back to a RemoteException
            }
        }
        return RemoteException.of(info);
    }

    // --- calls in --------------------------------------------------------------------------------

    private void handleCall(Call call) {
        if (pipelining()) {
            if ((call.flags() & Wire.CALL_TARGET_IS_QUESTION) != 0) {
                handlePipelinedCall(call);
                return;
            }
            if (call.answerWanted()) {
                pipeline().started(call.requestId());
            }
        }
        // Look the target up now, in message order: a decref that follows this call on the wire
        // must not free the object before the call runs.
        Object target = exports.get(call.target());
        RuntimeException refusal = null;
        if ((call.flags() & ~Wire.CALL_NO_ANSWER) != 0) {
            refusal = new UnimplementedException("broker.UnsupportedFlags", "call flags "
                    + call.flags() + " use bits this peer does not implement", null);
        } else if (target == null && call.target() == Wire.BOOTSTRAP_ID) {
            refusal = new UnimplementedException("broker.NoSuchObject", "this "
                    + role.name().toLowerCase(Locale.ROOT) + " has no bootstrap object", null);
        } else if (!(target instanceof Referenceable)) {
            refusal = new InvalidReferenceException("broker.NoSuchObject", "object "
                    + call.target() + " does not exist or was never given to you", null);
        } else if (call.options() != null && CallOptions.refusal(call.options()) != null) {
            refusal = new InvalidReferenceException("broker.BadCallOptions", // section 18.2
                    CallOptions.refusal(call.options()), null);
        } else if (runningCalls() >= limits.maxRunningCalls()) {
            refusal = new OverloadedException("broker.Overloaded", runningCalls()
                    + " calls running; the limit is " + limits.maxRunningCalls(), null);
        }
        if (refusal == null && call.options() != null) {
            startDeadline(call);
        }
        // Refusals go through the dispatcher too, so every call is answered in arrival order.
        dispatcher.dispatch(new IncomingCall(call,
                refusal == null ? (Referenceable) target : null, refusal));
    }

    private boolean pipelining() {
        return decoder.negotiated().contains(Wire.FEATURE_PIPELINING);
    }

    private Pipeline pipeline() {
        if (pipeline == null) {
            pipeline = new Pipeline();
        }
        return pipeline;
    }

    /** A call whose target is one of the peer's question ids (flag bit 1; section 15.1). */
    private void handlePipelinedCall(Call call) {
        Pipeline p = pipeline();
        RuntimeException refusal = null;
        Referenceable target = null;
        if ((call.flags() & ~(Wire.CALL_NO_ANSWER | Wire.CALL_TARGET_IS_QUESTION)) != 0) {
            refusal = new UnimplementedException("broker.UnsupportedFlags", "call flags "
                    + call.flags() + " use bits this peer does not implement", null);
        } else if (runningCalls() + p.waitingCount() >= limits.maxRunningCalls()) {
            refusal = new OverloadedException("broker.Overloaded", runningCalls()
                    + " calls running; the limit is " + limits.maxRunningCalls(), null);
        }
        if (call.answerWanted()) {
            p.started(call.requestId());
        }
        if (refusal == null) {
            Pipeline.Target where = p.lookUp(call, call.target());
            if (where instanceof Pipeline.Wait) {
                return; // runs when its question resolves, before that question's answer
            }
            if (where instanceof Pipeline.OnObject on) {
                target = on.object();
            } else {
                refusal = ((Pipeline.Refused) where).reason();
            }
        }
        dispatcher.dispatch(new IncomingCall(call, target, refusal));
    }

    /**
     * Question {@code call} is being answered: keep it if pipelined calls may name it, and run
     * the calls that waited on it first (section 15.1).
     */
    private void questionResolved(Call call, Object value, Throwable error) {
        Object outcome = error != null ? failureInfo(error) : value;
        for (Map.Entry<Call, Pipeline.Target> e : pipeline.resolved(call.requestId(), outcome,
                limits.maxRunningCalls())) {
            Pipeline.Target where = e.getValue();
            dispatcher.dispatch(where instanceof Pipeline.OnObject on
                    ? new IncomingCall(e.getKey(), on.object(), null)
                    : new IncomingCall(e.getKey(), null, ((Pipeline.Refused) where).reason()));
        }
    }

    /** One finish for the reference answers and errors of this read (section 15.2). */
    private void flushFinishes() {
        if (pipeline != null && sending()) {
            long per = peerHello != null ? peerHello.maxContainerLength() : 1;
            for (Finish f : pipeline.takeFinishes(per)) {
                queuePlain(f);
            }
        }
    }

    /**
     * A call addressed to the answer of our question {@code questionId}, still on its way
     * (feature "pipelining", section 15.1): sent at once with call flag bit 1.
     *
     * @param questionId the request id of one of our questions
     * @param method the method name
     * @param args positional arguments
     * @param kwargs keyword arguments
     * @param noAnswer a one-way call
     * @return the request id and the answer's future
     */
    public Question askPipelined(long questionId, String method, List<?> args,
            Map<String, ?> kwargs, boolean noAnswer) {
        if (!pipelining()) {
            return failed(new IllegalStateException("cannot pipeline '" + method
                    + "': the peer did not negotiate \"pipelining\""));
        }
        pipelinedFlag = Wire.CALL_TARGET_IS_QUESTION;
        try {
            return ask(questionId, method, args, kwargs, noAnswer);
        } finally {
            pipelinedFlag = 0;
        }
    }

    /** @return whether our question {@code requestId} still waits for its answer */
    public boolean pending(long requestId) {
        return questions.pendingIds().contains(requestId);
    }

    /** @return outcomes kept for the peer's pipelined calls until it finishes them */
    public int retainedAnswers() {
        return pipeline == null ? 0 : pipeline.retainedCount();
    }

    // --- callee deadlines (section 18.2) ---------------------------------------------------------

    /** One incoming call's budget: its timer, and what to stop when it passes. */
    private static final class Deadline {
        final long atNanos;
        final double seconds;
        Runnable cancelTimer;
        CompletableFuture<?> future; // the method's, once it returned one
        volatile boolean fired; // read by IncomingCall.run on the executor's thread

        Deadline(long atNanos, double seconds) {
            this.atNanos = atNanos;
            this.seconds = seconds;
        }
    }

    /** A call with a "timeout" arrived: time it (nothing without a clock, or without one). */
    private void startDeadline(Call call) {
        if (!(call.options().get("timeout") instanceof Number n)) {
            return;
        }
        double seconds = n.doubleValue();
        long nanos = (long) Math.min(seconds * 1e9, Long.MAX_VALUE / 4.0);
        Deadline d = new Deadline(System.nanoTime() + nanos, seconds);
        Runnable cancel = dispatcher.schedule(Duration.ofNanos(nanos), () -> deadlinePassed(call, d));
        if (cancel == null) {
            return;
        }
        d.cancelTimer = cancel;
        synchronized (this) { // IncomingCall.run reads it from the executor's thread
            if (deadlines == null) {
                deadlines = new IdentityHashMap<>();
            }
            deadlines.put(call, d);
        }
    }

    private Deadline deadlineOf(Call call) {
        Deadline d;
        synchronized (this) { // IncomingCall.run may be on another thread: a glance only
            d = deadlines == null ? null : deadlines.get(call);
        }
        return d;
    }

    /**
     * The budget passed before the method finished: cancel it as for a cancel (section 9) and
     * answer kind "deadline" (a one-way call: nothing); its result, if it comes, is dropped.
     */
    private void deadlinePassed(Call call, Deadline d) {
        if (deadlines == null || deadlines.get(call) != d || d.fired) {
            return;
        }
        d.fired = true;
        CompletableFuture<?> running = d.future;
        if (running != null) { // its completion will not reply: nothing more to wait for
            synchronized (this) {
                deadlines.remove(call);
            }
            if (call.answerWanted() ? answers.remove(call.requestId()) == null
                    : !oneWayRunning.remove(running)) {
                return; // it finished meanwhile
            }
            running.cancel(true);
        }
        if (call.answerWanted()) {
            replyNow(call, null, new DeadlineExceededException(DeadlineExceededException.TYPE_NAME,
                    "the call's deadline of " + d.seconds + " s passed before '" + call.method()
                    + "' finished", null));
        }
    }

    /** Whether {@code call}'s deadline already answered it; else its timer is stopped. */
    private boolean answeredByDeadline(Call call) {
        if (deadlines == null) {
            return false;
        }
        Deadline d;
        synchronized (this) {
            d = deadlines.remove(call);
        }
        if (d == null) {
            return false;
        }
        if (!d.fired) {
            d.cancelTimer.run();
        }
        return d.fired;
    }

    /** A dispatched call returned a future: it is running until that completes (or a cancel). */
    private void awaitResult(Call call, CompletableFuture<?> future) {
        long id = call.requestId();
        boolean noAnswer = !call.answerWanted();
        if (!sending()) {
            future.cancel(true); // the connection is going: nobody waits for it
            return;
        }
        Deadline d = deadlines == null ? null : deadlines.get(call);
        if (d != null && d.fired) { // answered already: stop it
            synchronized (this) {
                deadlines.remove(call);
            }
            future.cancel(true);
            return;
        }
        if (d != null) {
            d.future = future;
        }
        if (noAnswer) {
            oneWayRunning.add(future);
        } else {
            answers.put(id, future);
        }
        future.whenComplete((value, error) -> dispatcher.reenter(() -> {
            if (noAnswer ? oneWayRunning.remove(future) : answers.remove(id) != null) {
                reply(call, value, error);
            }
        }));
    }

    private void reply(Call call, Object value, Throwable error) {
        if (answeredByDeadline(call)) {
            return; // too late: the deadline answered it (section 18.2)
        }
        replyNow(call, value, error);
    }

    private void replyNow(Call call, Object value, Throwable error) {
        if (!call.answerWanted()) {
            if (error != null) {
                LOG.log(Level.WARNING, this + ": one-way call '" + call.method() + "' failed",
                        error);
            }
            return;
        }
        if (!sending()) {
            return; // too late: the connection is going
        }
        if (pipeline != null && pipelining()) {
            questionResolved(call, value, error);
        }
        if (error == null) {
            try {
                queue(encodeWithRefs(new Answer(call.requestId(), value)));
                return;
            } catch (LimitExceededException e) {
                error = e.getCause() instanceof MessageTooLargeException
                        ? new OverloadedException("broker.FrameTooLarge", e.getMessage(), null) : e;
            } catch (RuntimeException e) {
                error = e;
            }
        }
        queuePlain(new ErrorMessage(call.requestId(), failureInfo(error)));
    }

    private FailureInfo failureInfo(Throwable exc) {
        while ((exc instanceof CompletionException || exc instanceof ExecutionException
                || exc instanceof InvocationTargetException) && exc.getCause() != null) {
            exc = exc.getCause();
        }
        String traceback = null;
        if (debug) {
            StringWriter sw = new StringWriter();
            exc.printStackTrace(new PrintWriter(sw));
            traceback = sw.toString();
        }
        if (exc instanceof RemoteException r) {
            return new FailureInfo(r.kind(), r.remoteType(), r.remoteMessage(),
                    traceback != null ? traceback : r.remoteTraceback());
        }
        if (exc instanceof CancellationException) {
            return new FailureInfo(Wire.CANCELLED, "java.util.concurrent.CancellationException",
                    "call was cancelled", traceback);
        }
        if (exc instanceof UnregisteredCopyException) {
            return new FailureInfo(Wire.INVALID, "broker.UnregisteredCopyError",
                    exc.getMessage(), traceback);
        }
        String copyName = registry.nameFor(exc);
        String type = copyName != null ? copyName : exc.getClass().getName();
        String message = exc.getMessage() == null ? "" : exc.getMessage();
        return new FailureInfo(Wire.FAILED, type, message, traceback);
    }

    // --- releases --------------------------------------------------------------------------------

    /** Any thread (Cleaner, closing thread): queue only. */
    private void queueRelease(ImportTable.Entry entry) {
        deadProxies.add(entry);
        host.releaseQueued();
    }

    /** @return whether released proxies wait for {@link #flushReleases} */
    public boolean releasesPending() {
        return !deadProxies.isEmpty() || (caches != null && caches.pending())
                || (streams != null && streams.dropsPending());
    }

    /** Queue one decref per object whose proxies were released since the last flush. */
    public void flushReleases() {
        List<ImportTable.Entry> died = new ArrayList<>();
        for (ImportTable.Entry e; (e = deadProxies.poll()) != null; ) {
            died.add(e);
        }
        if (caches != null && sending()) {
            caches.flush(); // RemoteCaches released or collected (section 16.3)
        }
        if (streams != null) {
            streams.flushDropped(); // RemoteStreams dropped unread: cancelled (section 17.3)
        }
        if (died.isEmpty() || !sending()) {
            return;
        }
        Map<Long, Long> releases = imports.collectReleases(died);
        if (releases.size() > 1 && decoder.negotiated().contains(Wire.FEATURE_DECREFS)) {
            // one decrefs per batch (section 3.8), split to fit the peer's container length and
            // the per-frame item limit (2 items per release, 3 for the body)
            long peerLength = peerHello != null ? peerHello.maxContainerLength()
                    : limits.maxContainerLength();
            int chunk = (int) Math.max(1, Math.min(Math.min(peerLength / 2,
                    (Wire.DEFAULT_MAX_ITEMS_PER_FRAME - 3) / 2), peerMaxFrameSize() / 20));
            Map<Long, Long> batch = new java.util.LinkedHashMap<>();
            for (Map.Entry<Long, Long> r : releases.entrySet()) {
                batch.put(r.getKey(), r.getValue());
                if (batch.size() == chunk) {
                    queuePlain(new Decrefs(batch));
                    batch.clear();
                }
            }
            if (!batch.isEmpty()) {
                queuePlain(new Decrefs(batch));
            }
            return;
        }
        for (Map.Entry<Long, Long> r : releases.entrySet()) {
            queuePlain(new Decref(r.getKey(), r.getValue()));
        }
    }

    /**
     * Release every import, as an application letting go of all its proxies would (vectors);
     * the decrefs are queued by the next {@link #flushReleases}.
     */
    void releaseAllImports() {
        imports.releaseAll();
        if (caches != null) {
            caches.releaseAll(); // and every RemoteCache (section 16.3)
        }
    }

    /** @return the live proxy for the peer's object {@code objectId}, if there is one */
    Optional<RemoteReference> importedProxy(long objectId) {
        return Optional.ofNullable(imports.proxy(objectId));
    }

    // --- the end ---------------------------------------------------------------------------------

    /**
     * Close cleanly: queue a goodbye (if the handshake is done and no goodbye was sent or
     * received yet) and ask for the connection to be closed. Idempotent.
     *
     * @param kind the goodbye kind ("normal" for an orderly close)
     * @param message text for the peer (may be empty)
     * @param reason the close outcome's reason (null: "connection closed locally")
     */
    public void close(String kind, String message, Throwable reason) {
        State before = state;
        boolean tell = before == State.OPEN; // before the handshake nobody listens (vectors)
        if (tell) {
            queuePlain(new Goodbye(kind, message));
        }
        advance(Event.LOCAL_CLOSE);
        if (before == State.HANDSHAKE || tell) {
            outcome = new CloseOutcome(tell ? kind : Wire.DISCONNECTED, reason != null ? reason
                    : new ConnectionLostException("connection closed locally"), tell);
        }
    }

    /** Close with goodbye "normal" and an empty message. */
    public void close() {
        close(Wire.NORMAL, "", null);
    }

    /**
     * Run {@code listener} once when the connection closes, through the dispatcher (at once if it
     * has). It receives a {@link ConnectionLostException}.
     *
     * @param listener the listener
     */
    public void addDisconnectListener(Consumer<Throwable> listener) {
        Objects.requireNonNull(listener, "listener");
        if (state == State.CLOSED) {
            runListener(listener, lost);
        } else {
            disconnectListeners.add(listener);
        }
    }

    /**
     * The transport is closed (after the close outcome, or on its own: an I/O error, the peer
     * went away). Every question fails with {@link ConnectionLostException} (or the root future
     * with the {@link HandshakeException}), running calls are cancelled, the tables dropped, and
     * the disconnect listeners run once. Idempotent.
     *
     * @param reason why: the close outcome's reason, or the transport's error
     */
    public void connectionLost(Throwable reason) {
        if (state == State.CLOSED) {
            return;
        }
        advance(Event.TRANSPORT_CLOSED);
        String text;
        if (reason instanceof ConnectionLostException local) {
            text = local.getMessage();
        } else if (peerGoodbye != null) {
            text = peerClosed(peerGoodbye);
        } else {
            text = "connection lost: " + reason;
        }
        ConnectionLostException failure = reason instanceof ConnectionLostException local
                ? local : new ConnectionLostException(text, reason);
        lost = failure;
        outbox.clear();
        questions.failAll(failure);
        pipeline = null; // what was kept for pipelined calls dies with the connection (15.3)
        Throwable handshakeFailure = reason instanceof HandshakeException ? reason : failure;
        dispatcher.deliver(() -> ready.completeExceptionally(handshakeFailure));
        List<CompletableFuture<?>> running = new ArrayList<>(answers.values());
        running.addAll(oneWayRunning);
        answers.clear();
        oneWayRunning.clear();
        for (CompletableFuture<?> f : running) {
            f.cancel(true);
        }
        if (deadlines != null) {
            List<Deadline> timers;
            synchronized (this) {
                timers = new ArrayList<>(deadlines.values());
                deadlines = null;
            }
            for (Deadline d : timers) {
                d.cancelTimer.run();
            }
        }
        exports.clear();
        imports.clear();
        deadProxies.clear();
        if (caches != null) {
            caches.clear();
        }
        if (streams != null) {
            Streams ending = streams;
            streams = null;
            ending.connectionEnded(failure); // consumers fail after their items (section 17.3)
        }
        List<Consumer<Throwable>> listeners = List.copyOf(disconnectListeners);
        disconnectListeners.clear();
        for (Consumer<Throwable> listener : listeners) {
            runListener(listener, failure);
        }
    }

    private void runListener(Consumer<Throwable> listener, Throwable reason) {
        dispatcher.deliver(() -> {
            try {
                listener.accept(reason);
            } catch (RuntimeException e) {
                LOG.log(Level.WARNING, this + ": disconnect listener failed", e);
            }
        });
    }

    // --- a session without a PBClient ------------------------------------------------------------

    /** The proxies' host when the session is driven by hand: direct calls, explicit release. */
    private final class DirectHost implements ProxyHost {
        @Override
        public CompletableFuture<Object> call(RemoteReference target, String method,
                List<?> args, Map<String, ?> kwargs, boolean noAnswer, Duration timeout) {
            if (target.isReleased()) {
                return CompletableFuture.failedFuture(new IllegalStateException(
                        "cannot call '" + method + "': the reference was released (closed)"));
            }
            return Session.this.call(target.objectId(), method, args, kwargs, noAnswer);
        }

        @Override
        public Duration defaultTimeout() {
            return null;
        }

        @Override
        public void addDisconnectListener(Consumer<Throwable> listener) {
            Session.this.addDisconnectListener(listener);
        }

        @Override
        public PBClient client() {
            return null;
        }

        @Override
        public Cleaner.Cleanable track(Object proxy, Runnable onUnreachable) {
            AtomicBoolean done = new AtomicBoolean();
            return () -> {
                if (done.compareAndSet(false, true)) {
                    onUnreachable.run();
                }
            };
        }

        @Override
        public void releaseQueued() {
            // flushed explicitly
        }

        @Override
        public String toString() {
            return Session.this.toString();
        }
    }
}
