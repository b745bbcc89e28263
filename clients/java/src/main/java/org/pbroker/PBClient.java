package org.pbroker;

import java.io.IOException;
import java.lang.ref.Cleaner;
import java.net.Proxy;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.Executor;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Consumer;
import java.util.function.Function;
import java.util.logging.Logger;
import javax.net.ssl.SSLContext;
import org.pbroker.Session.CloseOutcome;
import org.pbroker.net.FramedConnection;
import org.pbroker.scram.ScramClient;
import org.pbroker.scram.ScramException;
import org.pbroker.wire.HandshakeException;
import org.pbroker.wire.Hello;
import org.pbroker.wire.LocalProtocolException;
import org.pbroker.wire.RemoteProtocolException;
import org.pbroker.wire.Wire;

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
 * <p>The protocol itself (handshake, lifecycle, tables, calls both ways, releases, goodbye) is the
 * socket-free {@link Session}; this class is its I/O adapter: socket and TLS, the reader thread
 * feeding it frames, an ordered write queue, the callback executor, timeouts, Cleaner-driven
 * releases and login. Every use of the session is under one lock; frames it queues are written
 * after the lock is released, in order, by the thread that caused them (the reader thread leaves
 * that to the housekeeping thread, so it never blocks on a full socket).
 *
 * <p>Threads: one daemon reader thread per connection decodes frames; user code (future
 * completions, remote calls into {@link Referenceable}s, {@link RemoteCache} updates, disconnect
 * listeners; the first three in the order they came on the wire) runs on the
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
        private Executor cacheExecutor;
        private long streamWindowItems = Streams.DEFAULT_WINDOW_ITEMS;
        private long streamWindowBytes = Streams.DEFAULT_WINDOW_BYTES;
        private java.util.Set<String> withheld = java.util.Set.of();
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
        private Duration heartbeat = Wire.DEFAULT_HEARTBEAT_DEAD_AFTER;
        private Proxy proxy;
        private SSLContext sslContext;

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
         * By default {@link RemoteCache} updates ({@code observe_*}) run on the callback executor
         * ({@link #executor}), one at a time and in wire order with the server's calls to this
         * client's objects and its answers: an update the server sent before a call (or an
         * answer) has run when that call starts. Set an executor here to run updates apart (for
         * example so a slow {@code observe_} method does not hold up calls); then they keep
         * their order among themselves only, and a call or answer may be seen before an update
         * the server sent earlier.
         *
         * @param executor runs updates, which must stay in order: a single-thread executor
         * @return this
         */
        public Options cacheExecutor(Executor executor) {
            this.cacheExecutor = executor;
            return this;
        }

        /**
         * Do not announce these optional features: behave as a client that lacks them (the
         * interop tests of section 17.4).
         */
        Options withholdFeatures(String... names) {
            this.withheld = java.util.Set.of(names);
            return this;
        }

        /**
         * The window of every stream (docs/PROTOCOL.md section 17): the most items, and bytes of
         * stream_items bodies, in flight — what a {@link RemoteStream} buffers at most (the
         * smaller of this and the producer's offer), and what streams we produce offer.
         *
         * @param items at least 1 (default 64)
         * @param bytes at least 1 (default 1 MiB)
         * @return this
         */
        public Options streamWindow(long items, long bytes) {
            if (items < 1 || bytes < 1) {
                throw new IllegalArgumentException("a stream window is at least 1 item and 1"
                        + " byte, got " + items + " items, " + bytes + " bytes");
            }
            this.streamWindowItems = items;
            this.streamWindowBytes = bytes;
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
         * @param millis connect timeout (TCP or Unix socket; with a proxy, the proxy's negotiation
         *     too; with TLS, the handshake too), 0 for none; an endpoint string's
         *     {@code timeout=} overrides it
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

        /**
         * @param deadAfter declare the server dead when nothing arrived from it for this long
         *     (docs/PROTOCOL.md section 5.2; it is pinged after a third of it in silence); at
         *     least 1 s, default 30 s; null turns the heartbeat off (the "heartbeat" feature is
         *     then not announced)
         * @return this
         */
        public Options heartbeat(Duration deadAfter) {
            if (deadAfter != null && deadAfter.compareTo(Duration.ofSeconds(1)) < 0) {
                throw new IllegalArgumentException("heartbeat must be at least 1 s, got "
                        + deadAfter);
            }
            this.heartbeat = deadAfter;
            return this;
        }

        /**
         * @param proxy a SOCKS proxy ({@code new Proxy(Proxy.Type.SOCKS, address)}) for
         *     {@link #connect(String, int, Options)}, {@link #connectTls} and {@code tcp:} /
         *     {@code tls:} endpoint strings; the server's host name is resolved by the proxy. A
         *     proxy wanting a user name and password gets them from the default
         *     {@link java.net.Authenticator} (requesting protocol {@code "SOCKS5"}). Null or
         *     {@link Proxy#NO_PROXY} (the default) connects directly.
         * @return this
         * @throws IllegalArgumentException for an HTTP proxy
         */
        public Options proxy(Proxy proxy) {
            if (proxy != null && proxy.type() == Proxy.Type.HTTP) {
                throw new IllegalArgumentException("only SOCKS proxies are supported "
                        + "(new Proxy(Proxy.Type.SOCKS, address)), got " + proxy);
            }
            this.proxy = proxy;
            return this;
        }

        /**
         * @param context the TLS context (trust material, client key) for {@code tls:} endpoint
         *     strings without {@code ca=}; null (the default) for the JVM's default context
         * @return this
         */
        public Options sslContext(SSLContext context) {
            this.sslContext = context;
            return this;
        }

        /** @return the proxy, or null for a direct connection */
        public Proxy proxy() {
            return proxy;
        }

        /** @return the heartbeat's dead_after, or null when it is off */
        public Duration heartbeat() {
            return heartbeat;
        }

        /** @return the default call timeout, or null */
        public Duration callTimeout() {
            return callTimeout;
        }
    }

    private static final Cleaner CLEANER = Cleaner.create();

    private final FramedConnection conn;
    private final Options options;
    private final Executor executor;
    private final ExecutorService ownedExecutor;
    /** Cache updates, incoming calls and completions onto {@link #executor}, in wire order. */
    private final OrderedDelivery delivery;
    private final ScheduledThreadPoolExecutor housekeeping;
    private final CopyRegistry registry;
    private final String name;
    /** The protocol core; every use is under {@link #lock} (see {@link #withSession}). */
    private final Session session;
    private final Object lock = new Object();
    /** Frame bodies in session order, waiting for {@link #pump}; filled under {@link #lock}. */
    private final ConcurrentLinkedQueue<byte[]> toWrite = new ConcurrentLinkedQueue<>();
    private final ReentrantLock pumpLock = new ReentrantLock();
    private final AtomicBoolean pumpScheduled = new AtomicBoolean();
    private final AtomicBoolean releaseScheduled = new AtomicBoolean();
    private final AtomicBoolean disconnected = new AtomicBoolean();
    private boolean closing; // guarded by lock: the close outcome was acted on
    private volatile ConnectionLostException lost;

    private PBClient(FramedConnection conn, Options options) {
        this.options = options;
        this.conn = conn;
        this.name = conn.describePeer();
        if (options.executor != null) {
            this.executor = options.executor;
            this.ownedExecutor = null;
        } else {
            this.ownedExecutor = Executors.newSingleThreadExecutor(daemon("pbroker-callbacks-"
                    + name));
            this.executor = ownedExecutor;
        }
        this.delivery = new OrderedDelivery(executor);
        this.housekeeping = new ScheduledThreadPoolExecutor(1, daemon("pbroker-housekeeping-"
                + name));
        this.housekeeping.setRemoveOnCancelPolicy(true);
        this.registry = options.copyRegistry != null ? options.copyRegistry : new CopyRegistry();
        Session.Limits limits = new Session.Limits(options.maxFrameSize, options.maxDepth,
                options.maxContainerLength, options.maxOutstandingCalls, options.maxRunningCalls);
        List<String> features = options.heartbeat != null
                ? List.of(Wire.FEATURE_HEARTBEAT, Wire.FEATURE_DECREFS, Wire.FEATURE_CACHE,
                        Wire.FEATURE_CALL_OPTIONS, Wire.FEATURE_PIPELINING, Wire.FEATURE_STREAMS)
                : List.of(Wire.FEATURE_DECREFS, Wire.FEATURE_CACHE, Wire.FEATURE_CALL_OPTIONS,
                        Wire.FEATURE_PIPELINING, Wire.FEATURE_STREAMS);
        features = features.stream().filter(f -> !options.withheld.contains(f)).toList();
        this.session = new Session(Session.Role.CLIENT, limits, options.debug, options.localRoot,
                registry, new Driver(), new Host(), features); // queues our hello
        // Default: updates share the callback executor's lane, in wire order with calls and answers.
        this.session.cacheExecutor(options.cacheExecutor != null ? options.cacheExecutor
                : delivery::update);
        this.session.streamWindow(options.streamWindowItems, options.streamWindowBytes);
        conn.setMaxInboundFrameSize(options.maxFrameSize);
        if (options.heartbeat != null) {
            long every = Math.max(options.heartbeat.toMillis() / 6, 50); // idle_interval / 2
            housekeeping.scheduleWithFixedDelay(this::heartbeat, every, every,
                    TimeUnit.MILLISECONDS);
        }
    }

    // --- heartbeat (docs/PROTOCOL.md section 5.2) --------------------------------------------

    private long heardCount = -1; // guarded by lock
    private long lastHeard; // System.nanoTime(); guarded by lock
    private long lastPing; // guarded by lock
    private volatile boolean declaredDead;

    /** Housekeeping thread: ping an idle server, declare a silent one dead. */
    private void heartbeat() {
        heartbeatCheck(System.nanoTime());
    }

    /**
     * One look at the silence, at {@code now} (a {@link System#nanoTime()} reading; tests pass
     * their own): anything received since the last look, down to a single byte of a frame still
     * arriving, means the server is alive (section 5.2: implementations SHOULD count bytes, so a
     * big frame on a slow link is not mistaken for silence).
     */
    void heartbeatCheck(long now) {
        withSession(s -> {
            if (!s.heartbeatActive()) {
                heardCount = -1; // not yet (the handshake), or not negotiated
                return;
            }
            // bytes read from the socket, plus the frames the session was fed (each grows only)
            long heard = conn.bytesReceived() + s.receivedCount();
            if (heard != heardCount) {
                heardCount = heard;
                lastHeard = now;
                lastPing = now;
                return;
            }
            long deadAfter = options.heartbeat.toNanos();
            long silence = now - lastHeard;
            if (silence >= deadAfter) {
                declaredDead = true;
                s.peerSilent(Duration.ofNanos(silence));
            } else if (now - lastPing >= deadAfter / 3) {
                lastPing = now;
                s.ping();
            }
        });
    }

    /** @return bytes read from the server so far, frames still arriving included (tests) */
    long bytesReceived() {
        return conn.bytesReceived();
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
     * Connect over TCP, through {@link Options#proxy} if one is set, and start the handshake.
     *
     * @param host server host (through a proxy, resolved by the proxy)
     * @param port server port
     * @param options connection options
     * @return the client
     * @throws IOException if the connection fails (the message names the server, and the proxy)
     */
    public static PBClient connect(String host, int port, Options options) throws IOException {
        return connect(new Endpoint.Tcp(host, port, null), options);
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
     * Connect over TLS, through {@link Options#proxy} if one is set (the certificate must still
     * name {@code host}, the server, never the proxy).
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
        Objects.requireNonNull(context, "context");
        return start(Transports.open(new Endpoint.Tls(host, port, null, null, null),
                options.connectTimeoutMillis, options.proxy, context), options);
    }

    /**
     * Connect to a Unix domain socket with default options and start the handshake.
     *
     * @param path the server's socket file (e.g. what {@code broker.serve(reactor,
     *     "unix:/run/app.sock", root)} listens on)
     * @return the client
     * @throws IOException if the connection fails: at once, naming the path, when no server
     *     listens there
     */
    public static PBClient connectUnix(Path path) throws IOException {
        return connectUnix(path, Options.defaults());
    }

    /**
     * Connect to a Unix domain socket and start the handshake.
     *
     * @param path the server's socket file
     * @param options connection options ({@link Options#connectTimeoutMillis} bounds a connect
     *     to a server that does not accept; a proxy cannot be used)
     * @return the client
     * @throws IOException if the connection fails (the message names the path)
     */
    public static PBClient connectUnix(Path path, Options options) throws IOException {
        return connect(new Endpoint.Unix(path, null), options);
    }

    /**
     * Connect to an endpoint string with default options and start the handshake. The grammar is
     * the Python side's ({@code net.endpoints}); see {@link Endpoint}:
     *
     * <pre>{@code
     * PBClient.connect("tcp:localhost:8800")
     * PBClient.connect("tls:server.example:8443:ca=ca.pem")
     * PBClient.connect("unix:/run/pbroker.sock")
     * PBClient.connect("socks5:127.0.0.1:1080:tcp:server.example:8800")
     * PBClient.connect("socks5:127.0.0.1:1080:tls:server.example:8443:ca=ca.pem")
     * }</pre>
     *
     * @param endpoint the endpoint string
     * @return the client
     * @throws IllegalArgumentException if the string is malformed (the message shows the form)
     * @throws IOException if the connection fails
     */
    public static PBClient connect(String endpoint) throws IOException {
        return connect(endpoint, Options.defaults());
    }

    /**
     * Connect to an endpoint string (see {@link #connect(String)}) and start the handshake.
     *
     * @param endpoint the endpoint string
     * @param options connection options: its proxy applies to {@code tcp:} and {@code tls:}
     *     endpoints, its TLS context to {@code tls:} endpoints without {@code ca=}
     * @return the client
     * @throws IllegalArgumentException if the string is malformed, or asks for something the
     *     options contradict (two proxies, two sources of trust, a proxy for a Unix socket)
     * @throws IOException if the connection fails
     */
    public static PBClient connect(String endpoint, Options options) throws IOException {
        return connect(Endpoint.parse(endpoint), options);
    }

    /**
     * Connect to an endpoint and start the handshake.
     *
     * @param endpoint where to connect
     * @param options connection options (see {@link #connect(String, Options)})
     * @return the client
     * @throws IOException if the connection fails
     */
    public static PBClient connect(Endpoint endpoint, Options options) throws IOException {
        Objects.requireNonNull(endpoint, "endpoint");
        return start(Transports.open(endpoint, options.connectTimeoutMillis, options.proxy,
                options.sslContext), options);
    }

    private static PBClient start(FramedConnection conn, Options options) {
        PBClient client;
        try {
            client = new PBClient(conn, options);
        } catch (RuntimeException e) {
            conn.close();
            throw e;
        }
        client.conn.start(client.new Handler());
        client.withSession(s -> { }); // send the hello the session queued
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
        return session.ready().thenApply(r -> r);
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

    /**
     * Run {@code listener} once when the connection closes, on the callback executor (at once if
     * it already has). It receives the reason, a {@link ConnectionLostException}.
     *
     * @param listener the listener
     */
    public void addDisconnectListener(Consumer<Throwable> listener) {
        Objects.requireNonNull(listener, "listener");
        withSession(s -> s.addDisconnectListener(listener));
    }

    /** @return true until the connection closes */
    public boolean isConnected() {
        return lost == null && session.state() != Session.State.CLOSED;
    }

    /** @return the options this client was made with */
    public Options options() {
        return options;
    }

    /** @return calls awaiting an answer */
    public int pendingCalls() {
        return session.pendingCalls(); // PendingCalls is thread-safe
    }

    /** @return our objects the server holds references to (not counting our root) */
    public int exportedObjects() {
        return session.exportedObjects(); // ExportTable is thread-safe
    }

    /** @return proxies for server objects not yet released */
    public int importedObjects() {
        return session.importedObjects(); // ImportTable is thread-safe
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
        withSession(s -> {
            s.flushReleases(); // tell the server what we no longer need, then say goodbye
            s.close(Wire.NORMAL, "client closing",
                    new ConnectionLostException("connection closed locally"));
        });
        conn.close(new ConnectionLostException("connection closed locally")); // if not yet
    }

    @Override
    public String toString() {
        return "PBClient(" + name + (isConnected() ? "" : ", closed") + ")";
    }

    // --- calls out -------------------------------------------------------------------------------

    CompletableFuture<Object> call(RemoteReference target, String method, List<?> args,
            Map<String, ?> kwargs, boolean noAnswer, Duration timeout) {
        return call(target, method, args, kwargs, noAnswer, timeout, null);
    }

    CompletableFuture<Object> callWithOptions(RemoteReference target, String method,
            List<?> args, Map<String, ?> kwargs, boolean noAnswer, CallOptions options) {
        Duration timeout = options.timeout() != null ? options.timeout() : options().callTimeout();
        return call(target, method, args, kwargs, noAnswer, timeout, options);
    }

    /**
     * A call; with {@code options} (section 18) the budget and metadata travel when negotiated,
     * the connection's default timeout too, and the local timeout is a deadline.
     */
    private CompletableFuture<Object> call(RemoteReference target, String method, List<?> args,
            Map<String, ?> kwargs, boolean noAnswer, Duration timeout, CallOptions options) {
        Objects.requireNonNull(method, "method");
        if (target.isReleased()) {
            return CompletableFuture.failedFuture(new IllegalStateException(
                    "cannot call '" + method + "': the reference was released (closed)"));
        }
        CallContext serving = CallContext.current().orElse(null);
        if (serving != null) { // a nested call: at most the budget left, the trace keys on (18.2)
            Duration left = serving.remaining().orElse(null);
            if (left != null && (timeout == null || left.compareTo(timeout) < 0)) {
                timeout = left;
            }
            Map<String, String> trace = new java.util.LinkedHashMap<>();
            for (String key : List.of("traceparent", "tracestate")) {
                String value = serving.metadata().get(key);
                if (value != null && (options == null || !options.metadata().containsKey(key))) {
                    trace.put(key, value);
                }
            }
            if (left != null || !trace.isEmpty()) {
                options = (options == null ? new CallOptions(null, Map.of()) : options)
                        .withMetadata(trace);
            }
        }
        return callNow(target, method, args, kwargs, noAnswer, timeout, options);
    }

    private CompletableFuture<Object> callNow(RemoteReference target, String method, List<?> args,
            Map<String, ?> kwargs, boolean noAnswer, Duration timeout, CallOptions options) {
        ConnectionLostException reason = lost;
        if (reason != null) {
            return CompletableFuture.failedFuture(new ConnectionLostException(
                    "cannot call '" + method + "': the connection is closed", reason));
        }
        CompletableFuture<RemoteReference> ready = session.ready();
        if (!ready.isDone()) {
            // the handshake must be done first: wait for it, then call
            return ready.thenCompose(r -> callNow(target, method, args, kwargs, noAnswer, timeout,
                    options));
        }
        // Only calls made with CallOptions send field 8 (their budget: theirs, else the default);
        // a plain call keeps its TimeoutException contract and sends none.
        Map<String, Object> field8 = options == null ? null
                : options.toWire(noAnswer ? options.timeout() : timeout);
        Session.Question question = use(s -> s.ask(target.objectId(), method, args,
                kwargs, noAnswer, field8));
        CompletableFuture<Object> answer = question.answer();
        if (!noAnswer && timeout != null && !timeout.isZero() && !timeout.isNegative()
                && !answer.isDone()) {
            long id = question.requestId();
            try {
                ScheduledFuture<?> timer = housekeeping.schedule(
                        () -> use(s -> options != null ? s.deadlinePassed(id, timeout)
                                : s.timeOut(id, timeout)),
                        timeout.toNanos(), TimeUnit.NANOSECONDS);
                answer.whenComplete((v, e) -> timer.cancel(false));
            } catch (RejectedExecutionException e) {
                // closed meanwhile: the question fails with the connection
            }
        }
        return new Promise(this, noAnswer ? 0 : question.requestId(), answer, false);
    }

    /**
     * A call through {@code on} while its answer has not arrived: sent pipelined, addressed to
     * its question (docs/PROTOCOL.md section 15), if the feature is negotiated and the session
     * has not processed that answer yet (checked under the lock, so the finish for it cannot
     * have gone out first). Null otherwise: the caller then waits for the answer.
     */
    Promise callPipelined(Promise on, String method, List<?> args, Map<String, ?> kwargs,
            boolean noAnswer) {
        if (lost != null || !session.ready().isDone()) {
            return null;
        }
        Session.Question question = use(s -> s.negotiated().contains(Wire.FEATURE_PIPELINING)
                && s.pending(on.questionId())
                ? s.askPipelined(on.questionId(), method, List.copyOf(args), kwargs, noAnswer)
                : null);
        if (question == null) {
            return null;
        }
        return new Promise(this, noAnswer ? 0 : question.requestId(), question.answer(), true);
    }

    // --- driving the session ---------------------------------------------------------------------

    /**
     * Use the session under the lock, move what it queued to the write queue, then (unless this
     * thread is already inside) write it and act on its close outcome. The reader thread leaves
     * the writing to the housekeeping thread, so it never blocks on a full socket buffer.
     */
    private <T> T use(Function<Session, T> op, boolean onReader) {
        boolean nested = Thread.holdsLock(lock); // re-entered: the outer use writes and closes
        T result;
        CloseOutcome closeNow = null;
        synchronized (lock) {
            result = op.apply(session);
            for (byte[] body : session.drainOutbox()) {
                toWrite.add(body);
            }
            if (nested) {
                return result;
            }
            if (!peerLimitSet && session.peerHello().isPresent()) {
                peerLimitSet = true;
                conn.setMaxOutboundFrameSize((int) Math.min(
                        session.peerHello().get().maxFrameSize(), Integer.MAX_VALUE));
            }
            if (!closing && session.state() != Session.State.CLOSED) {
                closeNow = session.closeOutcome().orElse(null);
                closing = closeNow != null;
            }
        }
        if (closeNow != null && declaredDead) {
            toWrite.clear(); // the server stopped answering: do not wait on its socket
            conn.close(closeNow.reason());
        } else if (closeNow != null) {
            pump(); // the goodbye and whatever preceded it, then close
            conn.close(closeNow.reason());
        } else if (onReader) {
            schedulePump();
        } else {
            pump();
        }
        return result;
    }

    private boolean peerLimitSet; // guarded by lock

    private <T> T use(Function<Session, T> op) {
        return use(op, false);
    }

    private void withSession(Consumer<Session> op) {
        use(s -> {
            op.accept(s);
            return null;
        }, false);
    }

    /** Write everything queued, in order (whoever holds the pump lock writes for everyone). */
    private void pump() {
        pumpScheduled.set(false);
        if (toWrite.isEmpty()) {
            return;
        }
        pumpLock.lock();
        try {
            List<byte[]> batch = new ArrayList<>();
            for (byte[] body; (body = toWrite.poll()) != null; ) {
                batch.add(body);
            }
            if (!batch.isEmpty()) {
                conn.sendAll(batch);
            }
        } catch (IOException e) {
            // the connection closed itself with this error; the session hears of it in onClosed
            LOG.fine(this + ": could not send: " + e);
            toWrite.clear();
        } finally {
            pumpLock.unlock();
        }
    }

    private void schedulePump() {
        if (toWrite.isEmpty() || !pumpScheduled.compareAndSet(false, true)) {
            return;
        }
        try {
            housekeeping.execute(this::pump);
        } catch (RejectedExecutionException e) {
            pump();
        }
    }

    /** How the session runs user code and comes back in: the callback executor and the lock. */
    private final class Driver implements Session.Dispatcher {
        @Override
        public void dispatch(Session.IncomingCall call) {
            delivery.deliver(call::run);
        }

        @Override
        public void deliver(Runnable completion) {
            delivery.deliver(completion);
        }

        @Override
        public void reenter(Runnable task) {
            withSession(s -> task.run());
        }

        @Override
        public Runnable schedule(Duration delay, Runnable task) {
            try {
                ScheduledFuture<?> timer = housekeeping.schedule(() -> withSession(s -> task.run()),
                        delay.toNanos(), TimeUnit.NANOSECONDS);
                return () -> timer.cancel(false);
            } catch (RejectedExecutionException e) {
                return null; // closed: the call goes with the connection
            }
        }
    }

    /** What this client's proxies talk to. */
    private final class Host implements ProxyHost {
        @Override
        public CompletableFuture<Object> call(RemoteReference target, String method,
                List<?> args, Map<String, ?> kwargs, boolean noAnswer, Duration timeout) {
            return PBClient.this.call(target, method, args, kwargs, noAnswer, timeout);
        }

        @Override
        public CompletableFuture<Object> callWithOptions(RemoteReference target, String method,
                List<?> args, Map<String, ?> kwargs, boolean noAnswer, CallOptions callOptions) {
            return PBClient.this.callWithOptions(target, method, args, kwargs, noAnswer,
                    callOptions);
        }

        @Override
        public Duration defaultTimeout() {
            return options.callTimeout();
        }

        @Override
        public void addDisconnectListener(Consumer<Throwable> listener) {
            PBClient.this.addDisconnectListener(listener);
        }

        @Override
        public PBClient client() {
            return PBClient.this;
        }

        @Override
        public Cleaner.Cleanable track(Object proxy, Runnable onUnreachable) {
            return CLEANER.register(proxy, onUnreachable);
        }

        /** Cleaner thread or closing thread: schedule only, never send here. */
        @Override
        public void releaseQueued() {
            if (releaseScheduled.compareAndSet(false, true)) {
                try {
                    housekeeping.execute(() -> {
                        releaseScheduled.set(false);
                        withSession(Session::flushReleases);
                    });
                } catch (RejectedExecutionException e) {
                    releaseScheduled.set(false); // closed: nothing to release any more
                }
            }
        }

        @Override
        public String toString() {
            return PBClient.this.toString();
        }
    }

    // --- incoming bytes (reader thread) ----------------------------------------------------------

    private final class Handler implements FramedConnection.Handler {
        @Override
        public void onFrame(byte[] body) {
            use(s -> {
                if (s.state() != Session.State.CLOSED) {
                    try {
                        s.receiveFrame(body);
                    } catch (LocalProtocolException e) {
                        throw new IllegalStateException(e);
                    }
                }
                return null;
            }, true);
        }

        @Override
        public List<byte[]> lastWords(Throwable reason) {
            if (reason instanceof RemoteProtocolException e) {
                // the goodbye goes out through the write queue, behind what is already there
                withSession(s -> {
                    if (s.state() != Session.State.CLOSED) {
                        try {
                            s.framingFailed(e);
                        } catch (LocalProtocolException ignored) {
                            // closed meanwhile
                        }
                    }
                });
            }
            return List.of();
        }

        @Override
        public void onClosed(Throwable reason) {
            connectionLost(reason);
        }
    }

    // --- the end ---------------------------------------------------------------------------------

    private void connectionLost(Throwable reason) {
        if (!disconnected.compareAndSet(false, true)) {
            return;
        }
        withSession(s -> {
            s.connectionLost(reason);
            lost = s.lostReason();
        });
        toWrite.clear();
        housekeeping.shutdown();
        if (ownedExecutor != null) {
            ownedExecutor.shutdown(); // queued completions and listeners still run
        }
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
