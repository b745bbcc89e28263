package org.pbroker;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.lang.reflect.InvocationTargetException;
import java.net.Socket;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executor;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Consumer;
import java.util.logging.Level;
import java.util.logging.Logger;
import javax.net.ssl.SSLContext;
import org.pbroker.net.FramedConnection;
import org.pbroker.net.PendingCalls;
import org.pbroker.scram.ScramClient;
import org.pbroker.scram.ScramException;
import org.pbroker.wire.Answer;
import org.pbroker.wire.Call;
import org.pbroker.wire.Cancel;
import org.pbroker.wire.CopyState;
import org.pbroker.wire.Decref;
import org.pbroker.wire.ErrorMessage;
import org.pbroker.wire.ExportedRef;
import org.pbroker.wire.FailureInfo;
import org.pbroker.wire.Goodbye;
import org.pbroker.wire.HandshakeException;
import org.pbroker.wire.Hello;
import org.pbroker.wire.Message;
import org.pbroker.wire.MessageTooLargeException;
import org.pbroker.wire.RemoteProtocolException;
import org.pbroker.wire.ReturnedRef;
import org.pbroker.wire.Wire;
import org.pbroker.wire.WireDecoder;
import org.pbroker.wire.WireEncoder;
import org.pbroker.wire.WireException;
import org.pbroker.wire.WireValue;

/**
 * A connection to a pbroker server.
 *
 * <pre>{@code
 * try (PBClient client = PBClient.connect("localhost", 8789)) {
 *     RemoteReference root = client.getRootObject().get();
 *     int sum = root.callRemote(Integer.class, "add", 1, 2).get();
 * }
 * }</pre>
 *
 * <p>Threads: one daemon reader thread per connection decodes frames; user code (future
 * completions, remote calls into {@link Referenceable}s, disconnect listeners) runs on the
 * callback executor ({@link Options#executor}, by default one daemon thread per client, which keeps
 * everything in order; do not block it waiting for another answer, or pass your own executor). A
 * housekeeping thread runs timeouts and sends reference releases. Sending is thread-safe: any
 * thread may call.
 *
 * <p>When the connection closes, every pending call fails with {@link ConnectionLostException} and
 * disconnect listeners run once.
 */
public final class PBClient implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(PBClient.class.getName());

    /** Login object method starting a SCRAM exchange: {@code (client_first) -> server_first}. */
    public static final String LOGIN_START = "login_scram_start";
    /**
     * Login object method finishing a SCRAM exchange:
     * {@code (client_final, mind) -> {"server_final": str, "avatar": ref}}.
     */
    public static final String LOGIN_FINISH = "login_scram_finish";
    /** Login object method for an anonymous login: {@code (mind) -> avatar}. */
    public static final String LOGIN_ANONYMOUS = "login_anonymous";
    /** Login object method logging in with the TLS client certificate: {@code (mind) -> avatar}. */
    public static final String LOGIN_CERTIFICATE = "login_certificate";

    /** Connection options; the setters return {@code this} for chaining. */
    public static final class Options {
        private Executor executor;
        private Duration callTimeout;
        private int connectTimeoutMillis = 30_000;
        private int maxFrameSize = Wire.DEFAULT_MAX_FRAME_SIZE;
        private int maxDepth = Wire.DEFAULT_MAX_DEPTH;
        private int maxContainerLength = Wire.DEFAULT_MAX_CONTAINER_LENGTH;
        private int maxOutstandingCalls = 10_000;
        private int maxRunningCalls = 10_000;
        private CopyRegistry copyRegistry;
        private Referenceable localRoot;
        private boolean debug;
        private int minScramIterations = ScramClient.MIN_ITERATIONS;

        /** @return options with every default */
        public static Options defaults() {
            return new Options();
        }

        /**
         * @param executor runs user code: future completions, incoming calls, listeners (default:
         *     one daemon thread per client)
         * @return this
         */
        public Options executor(Executor executor) {
            this.executor = executor;
            return this;
        }

        /**
         * @param timeout default timeout of every call; null (the default) for none
         * @return this
         */
        public Options callTimeout(Duration timeout) {
            this.callTimeout = timeout;
            return this;
        }

        /**
         * @param millis TCP connect timeout, 0 for the system's
         * @return this
         */
        public Options connectTimeoutMillis(int millis) {
            this.connectTimeoutMillis = millis;
            return this;
        }

        /**
         * @param bytes largest frame we accept (announced in our hello)
         * @return this
         */
        public Options maxFrameSize(int bytes) {
            this.maxFrameSize = bytes;
            return this;
        }

        /**
         * @param depth deepest nesting we accept (announced in our hello)
         * @return this
         */
        public Options maxDepth(int depth) {
            this.maxDepth = depth;
            return this;
        }

        /**
         * @param length longest array or map we accept (announced in our hello)
         * @return this
         */
        public Options maxContainerLength(int length) {
            this.maxContainerLength = length;
            return this;
        }

        /**
         * @param n calls awaiting an answer before further calls fail with
         *     {@link LimitExceededException}
         * @return this
         */
        public Options maxOutstandingCalls(int n) {
            this.maxOutstandingCalls = n;
            return this;
        }

        /**
         * @param n incoming calls running at once before further ones are refused as overloaded
         * @return this
         */
        public Options maxRunningCalls(int n) {
            this.maxRunningCalls = n;
            return this;
        }

        /**
         * @param registry the copyable classes (default: a fresh registry per client)
         * @return this
         */
        public Options copyRegistry(CopyRegistry registry) {
            this.copyRegistry = registry;
            return this;
        }

        /**
         * @param root the object the server reaches as our bootstrap object (id 0); none by
         *     default
         * @return this
         */
        public Options localRoot(Referenceable root) {
            this.localRoot = root;
            return this;
        }

        /**
         * @param debug send Java stack traces with failures of incoming calls
         * @return this
         */
        public Options debug(boolean debug) {
            this.debug = debug;
            return this;
        }

        /**
         * @param iterations lowest SCRAM iteration count {@link #login} accepts (tests only; the
         *     default is RFC 7677's 4096)
         * @return this
         */
        public Options minScramIterations(int iterations) {
            this.minScramIterations = iterations;
            return this;
        }

        /** @return the default call timeout, or null */
        public Duration callTimeout() {
            return callTimeout;
        }
    }

    private final FramedConnection conn;
    private final Options options;
    private final Executor executor;
    private final ExecutorService ownedExecutor;
    private final ScheduledThreadPoolExecutor housekeeping;
    private final PendingCalls questions;
    private final Map<Long, CompletableFuture<?>> answers = new ConcurrentHashMap<>();
    private final ExportTable exports;
    private final ImportTable imports;
    private final CopyRegistry registry;
    private final WireDecoder decoder;
    private final CompletableFuture<RemoteReference> ready = new CompletableFuture<>();
    private final RemoteReference bootstrap;
    private final List<Consumer<Throwable>> disconnectListeners = new CopyOnWriteArrayList<>();
    private final AtomicBoolean disconnected = new AtomicBoolean();
    private final ConcurrentLinkedQueue<ImportTable.Entry> deadProxies = new ConcurrentLinkedQueue<>();
    private final AtomicBoolean releaseScheduled = new AtomicBoolean();
    private final String name;
    private volatile Hello peerHello;
    private volatile Goodbye peerGoodbye;
    private volatile ConnectionLostException lost;
    /** Problems found while decoding the current message (reader thread only). */
    private final List<RuntimeException> problems = new ArrayList<>();

    private PBClient(Socket socket, Options options) throws IOException {
        this.options = options;
        this.conn = new FramedConnection(socket);
        this.name = String.valueOf(socket.getRemoteSocketAddress());
        if (options.executor != null) {
            this.executor = options.executor;
            this.ownedExecutor = null;
        } else {
            this.ownedExecutor = Executors.newSingleThreadExecutor(daemon("pbroker-callbacks-"
                    + name));
            this.executor = ownedExecutor;
        }
        this.housekeeping = new ScheduledThreadPoolExecutor(1, daemon("pbroker-housekeeping-"
                + name));
        this.housekeeping.setRemoveOnCancelPolicy(true);
        this.questions = new PendingCalls(executor, housekeeping, this::abandon);
        this.registry = options.copyRegistry != null ? options.copyRegistry : new CopyRegistry();
        this.exports = new ExportTable(options.localRoot);
        this.imports = new ImportTable(this, this::proxyDied);
        this.bootstrap = new RemoteReference(this, Wire.BOOTSTRAP_ID, null);
        this.decoder = new WireDecoder(options.maxFrameSize, options.maxDepth,
                options.maxContainerLength, true, this::resolve);
        conn.setMaxInboundFrameSize(options.maxFrameSize);
    }

    private static java.util.concurrent.ThreadFactory daemon(String threadName) {
        return r -> {
            Thread t = new Thread(r, threadName);
            t.setDaemon(true);
            return t;
        };
    }

    // --- connecting --------------------------------------------------------------------------

    /**
     * Connect over TCP with default options and start the handshake.
     *
     * @param host server host
     * @param port server port
     * @return the client; {@link #getRootObject()} completes when the handshake is done
     * @throws IOException if the TCP connection fails
     */
    public static PBClient connect(String host, int port) throws IOException {
        return connect(host, port, Options.defaults());
    }

    /**
     * Connect over TCP and start the handshake.
     *
     * @param host server host
     * @param port server port
     * @param options connection options
     * @return the client
     * @throws IOException if the TCP connection fails
     */
    public static PBClient connect(String host, int port, Options options) throws IOException {
        Socket socket = FramedConnection.openSocket(host, port, options.connectTimeoutMillis);
        return start(socket, options);
    }

    /**
     * Connect over TLS with default options: the server certificate must be trusted by
     * {@code context} and name {@code host} (hostname verification is on).
     *
     * @param host server host name (checked against the certificate)
     * @param port server port
     * @param context trust material (and a client key for mutual TLS)
     * @return the client
     * @throws IOException if the connection or the TLS handshake fails
     */
    public static PBClient connectTls(String host, int port, SSLContext context)
            throws IOException {
        return connectTls(host, port, context, Options.defaults());
    }

    /**
     * Connect over TLS.
     *
     * @param host server host name (checked against the certificate)
     * @param port server port
     * @param context trust material (and a client key for mutual TLS)
     * @param options connection options
     * @return the client
     * @throws IOException if the connection or the TLS handshake fails
     */
    public static PBClient connectTls(String host, int port, SSLContext context, Options options)
            throws IOException {
        Socket socket = FramedConnection.openTlsSocket(host, port, context,
                options.connectTimeoutMillis);
        return start(socket, options);
    }

    private static PBClient start(Socket socket, Options options) throws IOException {
        PBClient client;
        try {
            client = new PBClient(socket, options);
        } catch (IOException | RuntimeException e) {
            socket.close();
            throw e;
        }
        client.conn.start(client.new Handler());
        try {
            client.conn.send(new WireEncoder().encodeBody(client.decoder.hello(List.of())));
        } catch (IOException e) {
            client.conn.close(e);
        }
        return client;
    }

    // --- public API -----------------------------------------------------------------------------

    /**
     * The server's root object.
     *
     * @return completes with the root reference once the handshake is done; fails with
     *     {@link HandshakeException} (another protocol or version) or
     *     {@link ConnectionLostException}
     */
    public CompletableFuture<RemoteReference> getRootObject() {
        return ready.thenApply(r -> r);
    }

    /**
     * Log in with SCRAM-SHA-256 on the server's login object (object 0 of a server serving a
     * portal; see {@code broker/login.py} and docs/CRED.md): {@code login_scram_start(client_first)}
     * then {@code login_scram_finish(client_final, mind)}. The password never leaves this process,
     * and the server's signature is verified before the avatar is handed out.
     *
     * @param username the user name
     * @param password the password
     * @return the avatar; fails with {@link RemoteException} of remote type
     *     {@code cred.error.UnauthorizedLogin} for any refused login, or with
     *     {@link ScramException} if the server cannot prove it knows the user's key (the connection
     *     is then closed: the server is an impostor)
     */
    public CompletableFuture<RemoteReference> login(String username, String password) {
        return login(username, password, null);
    }

    /**
     * Log in with SCRAM-SHA-256, passing a "mind": an object of ours the server's realm receives
     * by reference and may call back.
     *
     * @param username the user name
     * @param password the password
     * @param mind an object for the realm, or null
     * @return the avatar
     */
    public CompletableFuture<RemoteReference> login(String username, String password,
            Referenceable mind) {
        ScramClient scram;
        try {
            scram = new ScramClient(username, password, null, options.minScramIterations,
                    ScramClient.MAX_ITERATIONS);
        } catch (IllegalArgumentException e) {
            return CompletableFuture.failedFuture(e);
        }
        return getRootObject().thenCompose(login -> login
                .callRemote(String.class, LOGIN_START, scram.clientFirst())
                .thenCompose(serverFirst -> {
                    String clientFinal;
                    try {
                        clientFinal = scram.clientFinal(serverFirst);
                    } catch (ScramException e) {
                        close();
                        throw new CompletionException(e);
                    }
                    return login.callRemote(LOGIN_FINISH, clientFinal, mind);
                })
                .thenApply(result -> {
                    Object serverFinal = result instanceof Map<?, ?> m ? m.get("server_final") : null;
                    Object avatar = result instanceof Map<?, ?> m ? m.get("avatar") : null;
                    if (!(serverFinal instanceof String text)) {
                        close();
                        throw new CompletionException(new ScramException(
                                "malformed login_scram_finish answer: " + result));
                    }
                    try {
                        scram.verifyServerFinal(text); // mutual authentication
                    } catch (ScramException e) {
                        if (avatar instanceof RemoteReference ref) {
                            ref.close();
                        }
                        close();
                        throw new CompletionException(e);
                    }
                    return avatar(avatar);
                }));
    }

    /**
     * Log in anonymously ({@code login_anonymous(mind)}), if the server's portal allows it.
     *
     * @param mind an object for the realm, or null
     * @return the avatar
     */
    public CompletableFuture<RemoteReference> loginAnonymous(Referenceable mind) {
        return getRootObject().thenCompose(login -> login.callRemote(LOGIN_ANONYMOUS, mind))
                .thenApply(PBClient::avatar);
    }

    /**
     * Log in with the certificate this client presented in the TLS handshake
     * ({@code login_certificate(mind)}; connect with {@link #connectTls} and an SSLContext holding
     * the client key).
     *
     * @param mind an object for the realm, or null
     * @return the avatar
     */
    public CompletableFuture<RemoteReference> loginWithCertificate(Referenceable mind) {
        return getRootObject().thenCompose(login -> login.callRemote(LOGIN_CERTIFICATE, mind))
                .thenApply(PBClient::avatar);
    }

    private static RemoteReference avatar(Object avatar) {
        if (avatar instanceof RemoteReference ref) {
            return ref;
        }
        throw new CompletionException(new BrokerException(
                "the server answered the login with " + Values.describe(avatar)
                        + ", not an avatar reference"));
    }

    /**
     * Let {@code cls} travel by copy under {@code typeName}, both ways (see {@link CopyRegistry}).
     *
     * @param typeName the wire type name
     * @param cls a record, exception, or class with a no-argument constructor
     */
    public void registerCopyable(String typeName, Class<?> cls) {
        registry.register(typeName, cls);
    }

    /** @return the copy registry of this client */
    public CopyRegistry copyRegistry() {
        return registry;
    }

    /**
     * Run {@code listener} once when the connection closes, on the callback executor (at once if
     * it already has). It receives the reason, a {@link ConnectionLostException}.
     *
     * @param listener the listener
     */
    public void addDisconnectListener(Consumer<Throwable> listener) {
        Objects.requireNonNull(listener, "listener");
        disconnectListeners.add(listener);
        ConnectionLostException reason = lost;
        if (reason != null && disconnectListeners.remove(listener)) {
            runListener(listener, reason);
        }
    }

    /** @return true until the connection closes */
    public boolean isConnected() {
        return lost == null;
    }

    /** @return the options this client was made with */
    public Options options() {
        return options;
    }

    /** @return calls awaiting an answer */
    public int pendingCalls() {
        return questions.size();
    }

    /** @return our objects the server holds references to (not counting our root) */
    public int exportedObjects() {
        return exports.size();
    }

    /** @return proxies for server objects not yet released */
    public int importedObjects() {
        return imports.size();
    }

    /**
     * Close the connection cleanly: send a "normal" goodbye, then close. Pending calls fail with
     * {@link ConnectionLostException}. Idempotent.
     */
    @Override
    public void close() {
        if (conn.isClosed()) {
            return;
        }
        List<byte[]> last = new ArrayList<>();
        try {
            flushReleases(); // tell the server what we no longer need, then say goodbye
            last.add(new WireEncoder().encodeBody(new Goodbye(Wire.NORMAL, "client closing")));
        } catch (WireException ignored) {
            // cannot happen for a goodbye
        }
        conn.closeAfter(last, new ConnectionLostException("connection closed locally"));
    }

    @Override
    public String toString() {
        return "PBClient(" + name + (isConnected() ? "" : ", closed") + ")";
    }

    // --- calls out -------------------------------------------------------------------------------

    CompletableFuture<Object> call(RemoteReference target, String method, List<?> args,
            Map<String, ?> kwargs, boolean noAnswer, Duration timeout) {
        Objects.requireNonNull(method, "method");
        if (target.isReleased()) {
            return CompletableFuture.failedFuture(new IllegalStateException(
                    "cannot call '" + method + "': the reference was released (closed)"));
        }
        ConnectionLostException reason = lost;
        if (reason != null) {
            return CompletableFuture.failedFuture(new ConnectionLostException(
                    "cannot call '" + method + "': the connection is closed", reason));
        }
        if (!ready.isDone()) {
            // the handshake must be done first: wait for it, then call
            return ready.thenCompose(r -> call(target, method, args, kwargs, noAnswer, timeout));
        }
        if (!noAnswer && questions.size() >= options.maxOutstandingCalls) {
            return CompletableFuture.failedFuture(new LimitExceededException(questions.size()
                    + " calls outstanding; the limit is " + options.maxOutstandingCalls));
        }
        long requestId = noAnswer ? 0 : questions.nextId();
        byte[] body;
        try {
            @SuppressWarnings("unchecked")
            Map<String, Object> kw = (Map<String, Object>) kwargs;
            @SuppressWarnings("unchecked")
            List<Object> a = (List<Object>) args;
            body = encodeWithRefs(new Call(requestId, target.objectId(), method, a, kw,
                    noAnswer ? Wire.CALL_NO_ANSWER : 0));
        } catch (RuntimeException e) {
            return CompletableFuture.failedFuture(e);
        }
        CompletableFuture<Object> future = noAnswer ? CompletableFuture.completedFuture(null)
                : questions.register(requestId, timeout);
        try {
            conn.send(body);
        } catch (IOException e) {
            ConnectionLostException failure = new ConnectionLostException(
                    "cannot call '" + method + "': " + e.getMessage(), e);
            if (noAnswer) {
                return CompletableFuture.failedFuture(failure);
            }
            questions.fail(requestId, failure);
        }
        return future;
    }

    /** A timed-out or caller-cancelled question: ask the server to cancel it. */
    private void abandon(long requestId) {
        if (isConnected()) {
            housekeeping.execute(() -> sendQuietly(new Cancel(requestId)));
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
            return encoder.encodeBody(message);
        } catch (WireException e) {
            for (long id : sent) {
                exports.undoSend(id);
            }
            Throwable cause = e.getCause();
            if (cause instanceof BrokerException b) {
                throw b;
            }
            if (cause instanceof IllegalArgumentException || cause instanceof IllegalStateException) {
                throw (RuntimeException) cause;
            }
            String what = message.getClass().getSimpleName().toLowerCase(java.util.Locale.ROOT);
            if (e instanceof MessageTooLargeException) {
                throw new LimitExceededException(e.getMessage(), e);
            }
            throw new LimitExceededException("cannot encode the " + what + ": " + e.getMessage(),
                    e);
        }
    }

    private long peerMaxFrameSize() {
        Hello hello = peerHello;
        return hello != null ? hello.maxFrameSize() : options.maxFrameSize;
    }

    /** Encoder hook: what a non-native object becomes on the wire. */
    private Object toWire(Object obj, List<Long> sent) {
        if (obj instanceof RemoteReference ref) {
            if (ref.client() != this) {
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
        String typeName = registry.nameFor(obj);
        if (typeName != null) {
            return new CopyState(typeName, registry.stateOf(obj));
        }
        if (obj instanceof Enum<?> e) {
            return e.name();
        }
        return obj; // not encodable: the encoder says so
    }

    // --- values from the wire ------------------------------------------------------------------

    /** Decoder hook (reader thread): what a wire value becomes here. */
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
        return exceptionFrom((FailureInfo) value);
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

    // --- incoming messages (reader thread) ----------------------------------------------------

    private final class Handler implements FramedConnection.Handler {
        @Override
        public void onFrame(byte[] body) {
            Message message;
            problems.clear();
            try {
                message = decoder.decodeBody(body);
            } catch (RemoteProtocolException e) {
                LOG.log(Level.WARNING, PBClient.this + ": closing, server sent bad data: " + e);
                goodbyeAndClose(new Goodbye(e.kind(), e.getMessage()), e);
                return;
            } catch (WireException e) {
                goodbyeAndClose(new Goodbye(Wire.INVALID, e.getMessage()), e);
                return;
            }
            if (LOG.isLoggable(Level.FINEST)) {
                LOG.finest(PBClient.this + " <- " + message);
            }
            if (!problems.isEmpty()) {
                RuntimeException problem = problems.get(0);
                problems.clear();
                handleUndecodable(message, problem);
                return;
            }
            dispatch(message);
        }

        @Override
        public List<byte[]> lastWords(Throwable reason) {
            if (reason instanceof RemoteProtocolException e) {
                try {
                    return List.of(new WireEncoder().encodeBody(new Goodbye(e.kind(),
                            String.valueOf(e.getMessage()))));
                } catch (WireException ignored) {
                    // nothing to say then
                }
            }
            return List.of();
        }

        @Override
        public void onClosed(Throwable reason) {
            connectionLost(reason);
        }
    }

    private void goodbyeAndClose(Goodbye goodbye, Throwable reason) {
        List<byte[]> last = new ArrayList<>();
        try {
            last.add(new WireEncoder().encodeBody(goodbye));
        } catch (WireException ignored) {
            // close without
        }
        conn.closeAfter(last, reason);
    }

    private void dispatch(Message message) {
        if (message instanceof Hello hello) {
            peerHello = hello;
            conn.setMaxOutboundFrameSize((int) Math.min(hello.maxFrameSize(), Integer.MAX_VALUE));
            deliver(() -> ready.complete(bootstrap));
        } else if (message instanceof Answer answer) {
            questions.complete(answer.requestId(), answer.value());
        } else if (message instanceof ErrorMessage error) {
            questions.fail(error.requestId(), exceptionFrom(error.failure()));
        } else if (message instanceof Call call) {
            // Look the target up now, in message order: a decref that follows this call on the
            // wire must not free the object before the call runs.
            Object target = exports.get(call.target());
            deliver(() -> handleCall(call, target));
        } else if (message instanceof Cancel cancel) {
            CompletableFuture<?> running = answers.get(cancel.requestId());
            if (running != null) {
                running.cancel(true);
            }
        } else if (message instanceof Decref decref) {
            if (!exports.release(decref.objectId(), decref.count())) {
                LOG.warning(this + ": server released " + decref.count() + " of object "
                        + decref.objectId() + " it does not hold");
            }
        } else if (message instanceof Goodbye goodbye) {
            peerGoodbye = goodbye; // the peer sends nothing more: stop and close (section 3.2)
            conn.close(new ConnectionLostException("server closed the connection ("
                    + goodbye.kind() + (goodbye.message().isEmpty() ? "" : ": " + goodbye.message())
                    + ")"));
        }
    }

    /** A message decoded but named something we refuse (unregistered copy, unknown object). */
    private void handleUndecodable(Message message, RuntimeException problem) {
        if (message instanceof Call call) {
            if (call.answerWanted()) {
                sendQuietly(new ErrorMessage(call.requestId(), failureInfo(problem)));
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

    // --- incoming calls (callback executor) ---------------------------------------------------

    private void handleCall(Call call, Object target) {
        boolean noAnswer = !call.answerWanted();
        if ((call.flags() & ~Wire.CALL_NO_ANSWER) != 0) {
            reply(call, null, new UnimplementedException("broker.UnsupportedFlags", "call flags "
                    + call.flags() + " use bits this peer does not implement", null));
            return;
        }
        if (target == null && call.target() == Wire.BOOTSTRAP_ID) {
            reply(call, null, new UnimplementedException("broker.NoSuchObject",
                    "this client has no bootstrap object", null));
            return;
        }
        if (!(target instanceof Referenceable referenceable)) {
            reply(call, null, new InvalidReferenceException("broker.NoSuchObject", "object "
                    + call.target() + " does not exist or was never given to you", null));
            return;
        }
        if (answers.size() >= options.maxRunningCalls) {
            reply(call, null, new OverloadedException("broker.Overloaded", answers.size()
                    + " calls running; the limit is " + options.maxRunningCalls, null));
            return;
        }
        Object result;
        try {
            result = referenceable.remoteMessageReceived(call.method(), call.args(), call.kwargs());
        } catch (Exception e) {
            reply(call, null, e);
            return;
        }
        if (result instanceof CompletionStage<?> stage) {
            CompletableFuture<?> future = stage.toCompletableFuture();
            long id = call.requestId();
            if (!noAnswer) {
                answers.put(id, future);
            }
            future.whenComplete((value, error) -> {
                if (noAnswer || answers.remove(id) != null) {
                    reply(call, value, error);
                }
            });
        } else {
            reply(call, result, null);
        }
    }

    private void reply(Call call, Object value, Throwable error) {
        if (!call.answerWanted()) {
            if (error != null) {
                LOG.log(Level.WARNING, this + ": one-way call '" + call.method() + "' failed",
                        error);
            }
            return;
        }
        if (!isConnected()) {
            return;
        }
        if (error == null) {
            try {
                byte[] body = encodeWithRefs(new Answer(call.requestId(), value));
                conn.send(body);
                return;
            } catch (LimitExceededException e) {
                error = e.getCause() instanceof MessageTooLargeException
                        ? new OverloadedException("broker.FrameTooLarge", e.getMessage(), null) : e;
            } catch (RuntimeException e) {
                error = e;
            } catch (IOException e) {
                return; // the connection is gone
            }
        }
        sendQuietly(new ErrorMessage(call.requestId(), failureInfo(error)));
    }

    private FailureInfo failureInfo(Throwable exc) {
        while ((exc instanceof CompletionException || exc instanceof ExecutionException
                || exc instanceof InvocationTargetException) && exc.getCause() != null) {
            exc = exc.getCause();
        }
        String traceback = null;
        if (options.debug) {
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

    private void sendQuietly(Message message) {
        if (LOG.isLoggable(Level.FINEST)) {
            LOG.finest(this + " -> " + message);
        }
        try {
            conn.send(new WireEncoder().encodeBody(message));
        } catch (IOException e) {
            LOG.fine(this + ": could not send " + message + ": " + e);
        }
    }

    // --- releases ------------------------------------------------------------------------------

    /** Cleaner thread or closing thread: queue only, never send here. */
    private void proxyDied(ImportTable.Entry entry) {
        deadProxies.add(entry);
        if (releaseScheduled.compareAndSet(false, true)) {
            try {
                housekeeping.execute(this::flushReleases);
            } catch (RejectedExecutionException e) {
                releaseScheduled.set(false); // closed: nothing to release any more
            }
        }
    }

    /** Send the pending releases together (housekeeping thread, or close()). */
    private final Object releaseLock = new Object();

    /**
     * Serialised: {@code close()} flushes before its goodbye, and must wait for a flush another
     * thread has already drained from the queue, or the goodbye could overtake those releases.
     */
    private void flushReleases() {
        synchronized (releaseLock) {
            flushReleasesLocked();
        }
    }

    private void flushReleasesLocked() {
        releaseScheduled.set(false);
        List<ImportTable.Entry> died = new ArrayList<>();
        for (ImportTable.Entry e; (e = deadProxies.poll()) != null; ) {
            died.add(e);
        }
        if (died.isEmpty() || !isConnected()) {
            return;
        }
        Map<Long, Long> releases = imports.collectReleases(died);
        List<byte[]> frames = new ArrayList<>();
        WireEncoder encoder = new WireEncoder();
        try {
            for (Map.Entry<Long, Long> r : releases.entrySet()) {
                frames.add(encoder.encodeBody(new Decref(r.getKey(), r.getValue())));
            }
            if (!frames.isEmpty()) {
                conn.sendAll(frames);
            }
        } catch (IOException e) {
            LOG.fine(this + ": could not send releases: " + e);
        }
    }

    // --- the end -------------------------------------------------------------------------------

    private void connectionLost(Throwable reason) {
        if (!disconnected.compareAndSet(false, true)) {
            return;
        }
        Goodbye goodbye = peerGoodbye;
        String text;
        if (reason instanceof ConnectionLostException local) {
            text = local.getMessage();
        } else if (goodbye != null) {
            text = "server closed the connection (" + goodbye.kind()
                    + (goodbye.message().isEmpty() ? "" : ": " + goodbye.message()) + ")";
        } else {
            text = "connection lost: " + reason;
        }
        ConnectionLostException failure = reason instanceof ConnectionLostException local
                ? local : new ConnectionLostException(text, reason);
        lost = failure;
        questions.failAll(failure);
        Throwable handshakeFailure = reason instanceof HandshakeException ? reason : failure;
        deliver(() -> ready.completeExceptionally(handshakeFailure));
        for (CompletableFuture<?> running : answers.values()) {
            running.cancel(true);
        }
        answers.clear();
        exports.clear();
        imports.clear();
        deadProxies.clear();
        for (Consumer<Throwable> listener : disconnectListeners) {
            if (disconnectListeners.remove(listener)) {
                runListener(listener, failure);
            }
        }
        housekeeping.shutdown();
        if (ownedExecutor != null) {
            ownedExecutor.shutdown(); // queued completions and listeners still run
        }
    }

    private void runListener(Consumer<Throwable> listener, Throwable reason) {
        deliver(() -> {
            try {
                listener.accept(reason);
            } catch (RuntimeException e) {
                LOG.log(Level.WARNING, this + ": disconnect listener failed", e);
            }
        });
    }

    /** Run user-facing work on the callback executor (inline if it is shut down). */
    private void deliver(Runnable r) {
        try {
            executor.execute(r);
        } catch (RejectedExecutionException e) {
            r.run();
        }
    }
}
