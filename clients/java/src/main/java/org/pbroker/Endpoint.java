package org.pbroker;

import java.nio.file.Path;
import java.time.Duration;
import java.util.Objects;

/**
 * Where to connect, as one string in the grammar of the Python side's {@code net.endpoints}, so
 * a Java program and a Python one can share their configuration:
 *
 * <pre>
 * tcp:HOST:PORT[:timeout=SECONDS]
 * tls:HOST:PORT[:ca=FILE][:hostname=NAME][:timeout=SECONDS]
 * unix:PATH[:timeout=SECONDS]
 * socks5:PROXYHOST:PROXYPORT[:timeout=SECONDS]:INNER      INNER: a tcp: or tls: endpoint
 * </pre>
 *
 * <p>Segments are separated by {@code :}; a backslash escapes the next character ({@code \:} for
 * a colon in a path); an IPv6 address may be written in brackets ({@code tcp:[::1]:8000}).
 * {@code key=value} segments are keywords. A {@code socks5:} endpoint names the proxy, its own
 * options, then the server it is to reach (INNER, from the first segment without {@code =}), as
 * a {@code tcp:} or {@code tls:} endpoint string of its own, as {@code net.tunnels} has it; the
 * server's host goes to the proxy as written, so a name is resolved by the proxy. The tunnel's
 * {@code timeout} is the one that counts (INNER's is not used: the proxy makes that connection);
 * the Java client takes no {@code user=}/{@code password=} (a proxy's credentials come from the
 * default {@link java.net.Authenticator}), and no tunnel inside a tunnel. {@code timeout} bounds
 * the connect (with a proxy, the proxy's negotiation too; with TLS, the handshake too);
 * {@code none} for no bound; without it, {@link PBClient.Options#connectTimeoutMillis} applies.
 * {@code ca} is a PEM file of the certificates to trust (instead of the default trust store or
 * {@link PBClient.Options#sslContext}); {@code hostname} is the name the server certificate must
 * carry when {@code HOST} is an address. A client certificate is given with an
 * {@link javax.net.ssl.SSLContext} in {@link PBClient.Options#sslContext}, not as
 * {@code cert=}/{@code key=}.
 *
 * <p>{@link #parse} turns a string into one of the records below (or an
 * {@link IllegalArgumentException} that quotes the string and shows the expected form);
 * {@code toString()} turns a record back into its string.
 */
public sealed interface Endpoint permits Endpoint.Tcp, Endpoint.Tls, Endpoint.Unix,
        Endpoint.Socks5 {

    /**
     * @return the connect timeout the string gave: null for none given (the options decide),
     *     {@link Duration#ZERO} for {@code timeout=none}
     */
    Duration timeout();

    /**
     * A TCP server.
     *
     * @param host host name or address
     * @param port port, 1 to 65535
     * @param timeout see {@link Endpoint#timeout()}
     */
    record Tcp(String host, int port, Duration timeout) implements Endpoint {
        public Tcp {
            requireHost(host);
            requirePort(port);
            requireTimeout(timeout);
        }

        @Override
        public String toString() {
            return "tcp:" + hostPort(host, port) + timeoutSuffix(timeout);
        }
    }

    /**
     * A TLS server: the certificate must be trusted and name {@code hostname} (or {@code host}).
     *
     * @param host host name or address to connect to
     * @param port port, 1 to 65535
     * @param ca PEM file of the certificates to trust, or null
     * @param hostname the name the certificate must carry, or null for {@code host}
     * @param timeout see {@link Endpoint#timeout()}
     */
    record Tls(String host, int port, Path ca, String hostname, Duration timeout)
            implements Endpoint {
        public Tls {
            requireHost(host);
            requirePort(port);
            requireTimeout(timeout);
            if (hostname != null && hostname.isEmpty()) {
                throw new IllegalArgumentException("hostname must not be empty");
            }
        }

        /** @return the name the server certificate must carry */
        public String verifiedName() {
            return hostname != null ? hostname : host;
        }

        @Override
        public String toString() {
            return "tls:" + hostPort(host, port)
                    + (ca != null ? ":ca=" + escape(ca.toString()) : "")
                    + (hostname != null ? ":hostname=" + escape(hostname) : "")
                    + timeoutSuffix(timeout);
        }
    }

    /**
     * A Unix domain stream socket.
     *
     * @param path the socket's file
     * @param timeout see {@link Endpoint#timeout()}
     */
    record Unix(Path path, Duration timeout) implements Endpoint {
        public Unix {
            Objects.requireNonNull(path, "path");
            if (path.toString().isEmpty()) {
                throw new IllegalArgumentException("path must not be empty");
            }
            requireTimeout(timeout);
        }

        @Override
        public String toString() {
            return "unix:" + escape(path.toString()) + timeoutSuffix(timeout);
        }
    }

    /**
     * A TCP or TLS server reached through a SOCKS5 proxy.
     *
     * @param proxyHost the proxy's host name or address (resolved here)
     * @param proxyPort the proxy's port, 1 to 65535
     * @param timeout bounds the connection to the proxy, its negotiation and a TLS handshake;
     *     see {@link Endpoint#timeout()}
     * @param target the server, a {@link Tcp} or {@link Tls} endpoint; its host is resolved by
     *     the proxy, its timeout is not used
     */
    record Socks5(String proxyHost, int proxyPort, Duration timeout, Endpoint target)
            implements Endpoint {
        public Socks5 {
            requireHost(proxyHost);
            requirePort(proxyPort);
            requireTimeout(timeout);
            if (!(target instanceof Tcp || target instanceof Tls)) {
                throw new IllegalArgumentException("a SOCKS5 proxy reaches tcp: and tls: servers"
                        + " only, not " + target);
            }
        }

        @Override
        public String toString() {
            return "socks5:" + hostPort(proxyHost, proxyPort) + timeoutSuffix(timeout) + ":"
                    + target;
        }
    }

    /**
     * Parse an endpoint string (see the grammar above).
     *
     * @param spec e.g. {@code "unix:/run/pbroker.sock"} or
     *     {@code "socks5:127.0.0.1:1080:tcp:server.example:8800"}
     * @return the endpoint
     * @throws IllegalArgumentException naming the string, what is wrong, and the expected form
     */
    static Endpoint parse(String spec) {
        return EndpointParser.parse(spec);
    }

    private static void requireHost(String host) {
        if (host == null || host.isEmpty()) {
            throw new IllegalArgumentException("host must not be empty");
        }
    }

    private static void requirePort(int port) {
        if (port < 1 || port > 65535) {
            throw new IllegalArgumentException("port must be an integer from 1 to 65535, got "
                    + port);
        }
    }

    private static void requireTimeout(Duration timeout) {
        if (timeout != null && timeout.isNegative()) {
            throw new IllegalArgumentException("timeout must not be negative, got " + timeout);
        }
    }

    private static String hostPort(String host, int port) {
        return (EndpointParser.IPV6ISH.matcher(host).matches() ? "[" + host + "]" : escape(host))
                + ":" + port;
    }

    private static String timeoutSuffix(Duration timeout) {
        if (timeout == null) {
            return "";
        }
        if (timeout.isZero()) {
            return ":timeout=none";
        }
        return ":timeout=" + java.math.BigDecimal.valueOf(timeout.toNanos(), 9)
                .stripTrailingZeros().toPlainString();
    }

    /** A value written so that {@link #parse} reads it back unchanged. */
    private static String escape(String value) {
        StringBuilder out = new StringBuilder(value.length() + 8);
        for (int i = 0; i < value.length(); i++) {
            char c = value.charAt(i);
            if (c == '\\' || c == ':' || c == '=' || c == '[' || c == ']') {
                out.append('\\');
            }
            out.append(c);
        }
        if (value.startsWith("//")) {
            out.insert(0, '\\'); // "tcp://..." would be taken for a URL
        }
        // the parser strips one pair of outer brackets from a value: give it one to strip
        boolean bracketed = value.length() >= 2 && value.startsWith("[") && value.endsWith("]");
        return bracketed ? "[" + out + "]" : out.toString();
    }
}
