package org.pbroker;

import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.Proxy;
import java.net.Socket;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.NoSuchAlgorithmException;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.time.Duration;
import java.util.Collection;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;
import org.pbroker.net.Dialer;
import org.pbroker.net.FramedConnection;

/**
 * Turns an {@link Endpoint} into a connected, not yet started {@link FramedConnection}: picks the
 * transport, the proxy and the TLS context, and the timeout (the endpoint's, else the options').
 */
final class Transports {
    private Transports() {
    }

    /**
     * @param endpoint where to connect
     * @param connectTimeoutMillis used when the endpoint gives no timeout; 0 for none
     * @param proxy the options' proxy, or null
     * @param sslContext the options' TLS context, or null
     * @return the connection, not started
     * @throws IOException if connecting fails (or a {@code ca=} file cannot be read)
     * @throws IllegalArgumentException for a combination that cannot work (a proxy for a Unix
     *     socket, two proxies, two sources of trust)
     */
    static FramedConnection open(Endpoint endpoint, int connectTimeoutMillis, Proxy proxy,
            SSLContext sslContext) throws IOException {
        int timeout = endpoint.timeout() == null ? connectTimeoutMillis
                : millis(endpoint.timeout());
        boolean proxied = proxy != null && proxy.type() != Proxy.Type.DIRECT;
        if (endpoint instanceof Endpoint.Unix unix) {
            if (proxied) {
                throw new IllegalArgumentException("a Unix socket (" + endpoint + ") cannot be "
                        + "reached through a proxy; Options.proxy is " + proxy);
            }
            return wrap(Dialer.openUnix(unix.path(), timeout));
        }
        Endpoint target = endpoint;
        if (endpoint instanceof Endpoint.Socks5 socks) {
            if (proxied) {
                throw new IllegalArgumentException("the endpoint " + endpoint + " names its "
                        + "proxy, and Options.proxy gives another (" + proxy + "): give one");
            }
            proxy = new Proxy(Proxy.Type.SOCKS,
                    new InetSocketAddress(socks.proxyHost(), socks.proxyPort()));
            target = socks.target();
        }
        if (target instanceof Endpoint.Tcp tcp) {
            return wrap(Dialer.openSocket(tcp.host(), tcp.port(), proxy, timeout));
        }
        Endpoint.Tls tls = (Endpoint.Tls) target;
        SSLContext context = tlsContext(tls, sslContext);
        Socket plain = Dialer.openSocket(tls.host(), tls.port(), proxy, timeout);
        return wrap(Dialer.startTls(plain, tls.verifiedName(), tls.port(), context, timeout));
    }

    private static int millis(Duration timeout) {
        if (timeout.isZero()) {
            return 0; // timeout=none
        }
        return (int) Math.max(1, Math.min(Integer.MAX_VALUE, timeout.toMillis()));
    }

    private static SSLContext tlsContext(Endpoint.Tls tls, SSLContext fromOptions)
            throws IOException {
        if (tls.ca() == null) {
            if (fromOptions != null) {
                return fromOptions;
            }
            try {
                return SSLContext.getDefault();
            } catch (NoSuchAlgorithmException e) {
                throw new IllegalStateException("this JVM has no default TLS context", e);
            }
        }
        if (fromOptions != null) {
            throw new IllegalArgumentException("the endpoint " + tls + " names the certificates "
                    + "to trust (ca=), and Options.sslContext gives a TLS context too: give one "
                    + "(put the CA in the context's trust managers)");
        }
        return trusting(tls.ca());
    }

    /** A TLS context trusting exactly the certificates in a PEM file, as Python's ca= does. */
    static SSLContext trusting(Path pemFile) throws IOException {
        try (InputStream in = Files.newInputStream(pemFile)) {
            Collection<? extends Certificate> certificates =
                    CertificateFactory.getInstance("X.509").generateCertificates(in);
            if (certificates.isEmpty()) {
                throw new IOException("no certificate in " + pemFile + " (ca= wants a PEM file of"
                        + " CA certificates)");
            }
            KeyStore trust = KeyStore.getInstance(KeyStore.getDefaultType());
            trust.load(null, null);
            int i = 0;
            for (Certificate certificate : certificates) {
                trust.setCertificateEntry("ca-" + i++, certificate);
            }
            TrustManagerFactory tmf =
                    TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
            tmf.init(trust);
            SSLContext context = SSLContext.getInstance("TLS");
            context.init(null, tmf.getTrustManagers(), null);
            return context;
        } catch (java.nio.file.NoSuchFileException e) {
            throw new java.nio.file.NoSuchFileException(pemFile.toString(), null,
                    "no such file (ca= names the PEM file of the certificates to trust)");
        } catch (GeneralSecurityException e) {
            throw new IOException("cannot read the CA certificates in " + pemFile + " (ca= wants "
                    + "a PEM file of CA certificates): " + e.getMessage(), e);
        }
    }

    static FramedConnection wrap(Socket socket) throws IOException {
        try {
            return new FramedConnection(socket);
        } catch (IOException | RuntimeException e) {
            close(socket, e);
            throw e;
        }
    }

    static FramedConnection wrap(SocketChannel channel) throws IOException {
        try {
            return new FramedConnection(channel);
        } catch (IOException | RuntimeException e) {
            close(channel, e);
            throw e;
        }
    }

    private static void close(AutoCloseable c, Throwable failure) {
        try {
            c.close();
        } catch (Exception suppressed) {
            failure.addSuppressed(suppressed);
        }
    }
}
