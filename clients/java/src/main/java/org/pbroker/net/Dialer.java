package org.pbroker.net;

import java.io.IOException;
import java.net.ConnectException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Proxy;
import java.net.Socket;
import java.net.SocketException;
import java.net.SocketTimeoutException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.net.UnknownHostException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.channels.SocketChannel;
import java.util.Objects;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Pattern;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;

/**
 * Opens what a {@link FramedConnection} carries: a TCP socket (direct or through a SOCKS5
 * proxy), TLS over any connected socket, or a Unix domain socket channel.
 *
 * <p>Failures are {@link IOException}s whose message names the endpoint in the endpoint-string
 * form ({@code tcp:HOST:PORT}, {@code socks5:PROXY:PORT:tcp:HOST:PORT}, {@code unix:PATH}) and
 * says what to check; the JDK's own exception is the cause. Their types stay meaningful:
 * {@link SocketTimeoutException} for a timeout, {@link UnknownHostException} for a name that does
 * not resolve, {@link ConnectException} for the rest of what stops a connection being made.
 */
public final class Dialer {
    private static final Pattern IPV4 = Pattern.compile(
            "(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)(\\.(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)){3}");

    /** Closes Unix socket channels whose connect outlived its timeout; idle, it has no thread. */
    private static final ScheduledThreadPoolExecutor WATCHDOG = watchdog();

    private Dialer() {
    }

    private static ScheduledThreadPoolExecutor watchdog() {
        ScheduledThreadPoolExecutor executor = new ScheduledThreadPoolExecutor(1, r -> {
            Thread t = new Thread(r, "pbroker-connect-watchdog");
            t.setDaemon(true);
            return t;
        });
        executor.setKeepAliveTime(1, TimeUnit.SECONDS);
        executor.allowCoreThreadTimeOut(true);
        executor.setRemoveOnCancelPolicy(true);
        return executor;
    }

    /**
     * Open a TCP connection, directly or through a SOCKS proxy (TCP_NODELAY on).
     *
     * <p>Through a proxy, {@code host} goes to the proxy as it is written: a name is sent as a
     * name and resolved by the proxy (remote DNS; this machine may not even know it), an IP
     * literal as an address. Java's SOCKS implementation speaks SOCKS5 (unless the system
     * property {@code socksProxyVersion} says 4); a proxy asking for a user name and password
     * gets them from the default {@link java.net.Authenticator} (requesting protocol
     * {@code "SOCKS5"}, host and port of the proxy).
     *
     * @param host host name or address of the server
     * @param port port of the server
     * @param proxy null or {@link Proxy#NO_PROXY} for a direct connection, else a
     *     {@link Proxy.Type#SOCKS} proxy
     * @param connectTimeoutMillis bounds the connect, and the proxy's negotiation with it; 0 for
     *     none (the system's)
     * @return the connected socket
     * @throws IllegalArgumentException for a proxy that is not SOCKS
     * @throws IOException if the connection fails (the message names server and proxy)
     */
    public static Socket openSocket(String host, int port, Proxy proxy, int connectTimeoutMillis)
            throws IOException {
        Objects.requireNonNull(host, "host");
        boolean direct = proxy == null || proxy.type() == Proxy.Type.DIRECT;
        if (!direct && proxy.type() != Proxy.Type.SOCKS) {
            throw new IllegalArgumentException("only SOCKS proxies are supported "
                    + "(new Proxy(Proxy.Type.SOCKS, address)), got " + proxy);
        }
        Socket s = direct ? new Socket() : new Socket(proxy);
        try {
            s.connect(direct ? new InetSocketAddress(host, port) : proxiedTarget(host, port),
                    connectTimeoutMillis);
            s.setTcpNoDelay(true);
            return s;
        } catch (IOException e) {
            closeQuietly(s, e);
            throw direct ? translate(e, "cannot connect to " + tcp(host, port) + ": "
                    + e.getMessage() + hintForDirect(e))
                    : translate(e, "cannot connect to " + tcp(host, port) + " through the SOCKS "
                    + "proxy " + proxy.address() + ": " + e.getMessage() + hintForProxy(e));
        } catch (RuntimeException e) {
            closeQuietly(s, e);
            throw e;
        }
    }

    /**
     * Start TLS on a connected socket and complete the handshake, verifying the server
     * certificate against {@code context}'s trust managers <em>and</em> that it names
     * {@code hostname} (HTTPS endpoint identification, RFC 2818 / RFC 6125); server name
     * indication carries {@code hostname}. Works the same over a socket through a proxy: the name
     * checked is the server's, never the proxy's.
     *
     * @param connected a connected socket (closed if this fails)
     * @param hostname the name (or IP literal) the certificate must match
     * @param port the server's port (for the TLS session cache)
     * @param context trust material (and a client key for mutual TLS)
     * @param handshakeTimeoutMillis bounds the handshake; 0 for none
     * @return the TLS socket, handshake done
     * @throws IOException if the handshake fails (including a certificate that does not match
     *     {@code hostname}) or times out
     */
    public static SSLSocket startTls(Socket connected, String hostname, int port,
            SSLContext context, int handshakeTimeoutMillis) throws IOException {
        try {
            SSLSocket tls = (SSLSocket) context.getSocketFactory()
                    .createSocket(connected, hostname, port, true);
            SSLParameters params = tls.getSSLParameters();
            params.setEndpointIdentificationAlgorithm("HTTPS");
            tls.setSSLParameters(params);
            tls.setUseClientMode(true);
            tls.setSoTimeout(handshakeTimeoutMillis);
            try {
                tls.startHandshake();
            } catch (SocketTimeoutException e) {
                throw translate(e, "the TLS handshake with " + hostname + ":" + port
                        + " timed out after " + handshakeTimeoutMillis + " ms (is it a TLS "
                        + "server?)");
            }
            tls.setSoTimeout(0); // the reader thread blocks; the heartbeat watches for silence
            return tls;
        } catch (IOException | RuntimeException e) {
            closeQuietly(connected, e);
            throw e;
        }
    }

    /**
     * Connect to a Unix domain stream socket.
     *
     * <p>A path with no socket behind it fails at once, with a message naming the path; so does
     * one where nothing listens. A server whose backlog is full leaves the connect waiting, which
     * {@code connectTimeoutMillis} bounds (the channel is closed when it runs out).
     *
     * @param path the socket's file
     * @param connectTimeoutMillis bounds the connect; 0 for none
     * @return the connected channel, in blocking mode
     * @throws IOException if the connection fails (the message names the path)
     */
    public static SocketChannel openUnix(Path path, int connectTimeoutMillis) throws IOException {
        Objects.requireNonNull(path, "path");
        UnixDomainSocketAddress address = UnixDomainSocketAddress.of(path);
        SocketChannel channel = SocketChannel.open(StandardProtocolFamily.UNIX);
        final int connecting = 0;
        final int connected = 1;
        final int timedOut = 2;
        AtomicInteger state = new AtomicInteger(connecting);
        ScheduledFuture<?> alarm = connectTimeoutMillis <= 0 ? null : WATCHDOG.schedule(() -> {
            if (state.compareAndSet(connecting, timedOut)) {
                closeQuietly(channel, null); // wakes the blocked connect
            }
        }, connectTimeoutMillis, TimeUnit.MILLISECONDS);
        try {
            channel.connect(address);
            if (!state.compareAndSet(connecting, connected)) {
                throw new SocketTimeoutException("closed by the watchdog");
            }
            return channel;
        } catch (IOException e) {
            closeQuietly(channel, e);
            if (state.get() == timedOut) {
                throw translate(new SocketTimeoutException(e.getMessage()),
                        "connecting to unix:" + path + " timed out after " + connectTimeoutMillis
                        + " ms: the server is not accepting connections (its backlog is full)");
            }
            throw translate(e, "cannot connect to unix:" + path + ": " + unixReason(path, e));
        } catch (RuntimeException e) {
            closeQuietly(channel, e);
            throw e;
        } finally {
            if (alarm != null) {
                alarm.cancel(false);
            }
        }
    }

    private static String unixReason(Path path, IOException e) {
        BasicFileAttributes attributes;
        try {
            attributes = Files.readAttributes(path, BasicFileAttributes.class,
                    LinkOption.NOFOLLOW_LINKS);
        } catch (IOException missing) {
            return "no such file (is the server running, listening on that path?)";
        }
        if (attributes.isRegularFile() || attributes.isDirectory()) {
            return "it is a " + (attributes.isDirectory() ? "directory" : "regular file")
                    + ", not a socket";
        }
        if (e instanceof ConnectException) {
            return e.getMessage() + ": nothing is listening there (a socket file left behind by "
                    + "a server that stopped?)";
        }
        return e.getMessage();
    }

    /** A SOCKS target: a name stays unresolved (the proxy resolves it), a literal is parsed. */
    private static InetSocketAddress proxiedTarget(String host, int port)
            throws UnknownHostException {
        if (host.indexOf(':') >= 0 || IPV4.matcher(host).matches()) {
            return new InetSocketAddress(InetAddress.getByName(host), port); // a literal: no DNS
        }
        return InetSocketAddress.createUnresolved(host, port);
    }

    private static String hintForDirect(IOException e) {
        if (e instanceof ConnectException) {
            return " (is the server running, listening on that address and port?)";
        }
        return "";
    }

    private static String hintForProxy(IOException e) {
        String message = String.valueOf(e.getMessage());
        if (message.contains("authentication")) {
            return " (the proxy wants a user name and password: install a java.net.Authenticator"
                    + " that answers for the requesting protocol \"SOCKS5\")";
        }
        if (message.startsWith("SOCKS") || message.contains("SOCKS server")) {
            return " (the proxy answered: it could not reach the server; is the server running,"
                    + " and may the proxy reach it?)";
        }
        return " (is the proxy running at that address?)";
    }

    private static String tcp(String host, int port) {
        return "tcp:" + (host.indexOf(':') >= 0 ? "[" + host + "]" : host) + ":" + port;
    }

    /** The same kind of exception with our message, the original as the cause. */
    private static IOException translate(IOException e, String message) {
        IOException out;
        if (e instanceof SocketTimeoutException) {
            out = new SocketTimeoutException(message);
        } else if (e instanceof UnknownHostException) {
            out = new UnknownHostException(message);
        } else if (e instanceof SocketException) {
            out = new ConnectException(message);
        } else {
            out = new IOException(message);
        }
        out.initCause(e);
        return out;
    }

    private static void closeQuietly(AutoCloseable c, Throwable failure) {
        try {
            c.close();
        } catch (Exception suppressed) {
            if (failure != null) {
                failure.addSuppressed(suppressed);
            }
        }
    }
}
