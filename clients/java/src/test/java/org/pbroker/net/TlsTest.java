package org.pbroker.net;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLException;
import javax.net.ssl.SSLServerSocket;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** TLS with certificate and host name verification, using a self-signed cert made by keytool. */
class TlsTest {
    private static final char[] PASSWORD = "changeit".toCharArray();
    private static SSLContext serverContext;
    private static SSLContext clientContext;

    @BeforeAll
    static void makeCertificate(@TempDir Path dir) throws Exception {
        Path store = dir.resolve("server.p12");
        String keytool = Path.of(System.getProperty("java.home"), "bin", "keytool").toString();
        Process p = new ProcessBuilder(keytool, "-genkeypair", "-alias", "server", "-keyalg", "EC",
                "-groupname", "secp256r1", "-dname", "CN=localhost", "-ext", "san=dns:localhost",
                "-validity", "2", "-storetype", "PKCS12", "-keystore", store.toString(),
                "-storepass", new String(PASSWORD)).redirectErrorStream(true).start();
        String output = new String(p.getInputStream().readAllBytes());
        assertEquals(0, p.waitFor(), output);

        KeyStore keys = KeyStore.getInstance("PKCS12");
        try (InputStream in = Files.newInputStream(store)) {
            keys.load(in, PASSWORD);
        }
        KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        kmf.init(keys, PASSWORD);
        serverContext = SSLContext.getInstance("TLS");
        serverContext.init(kmf.getKeyManagers(), null, null);

        KeyStore trust = KeyStore.getInstance("PKCS12");
        trust.load(null, null);
        trust.setCertificateEntry("server", keys.getCertificate("server"));
        TrustManagerFactory tmf =
                TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(trust);
        clientContext = SSLContext.getInstance("TLS");
        clientContext.init(null, tmf.getTrustManagers(), null);
    }

    /** A TLS server that echoes one frame; returns its port. */
    private static SSLServerSocket echoServer() throws IOException {
        SSLServerSocket server = (SSLServerSocket) serverContext.getServerSocketFactory()
                .createServerSocket(0, 5, InetAddress.getLoopbackAddress());
        Thread t = new Thread(() -> {
            try (SSLSocket s = (SSLSocket) server.accept()) {
                DataInputStream in = new DataInputStream(s.getInputStream());
                byte[] body = new byte[in.readInt()];
                in.readFully(body);
                DataOutputStream out = new DataOutputStream(s.getOutputStream());
                out.writeInt(body.length);
                out.write(body);
                out.flush();
                in.read(); // wait for the client to close
            } catch (IOException ignored) {
                // the hostname-mismatch test makes the handshake fail here too
            }
        });
        t.setDaemon(true);
        t.start();
        return server;
    }

    @Test
    void framesOverTlsWithMatchingHostName() throws Exception {
        try (SSLServerSocket server = echoServer();
                FramedConnection conn = new FramedConnection(FramedConnection.openTlsSocket(
                        "localhost", server.getLocalPort(), clientContext, 5000))) {
            CompletableFuture<byte[]> got = new CompletableFuture<>();
            conn.start(new FramedConnection.Handler() {
                @Override
                public void onFrame(byte[] body) {
                    got.complete(body);
                }

                @Override
                public void onClosed(Throwable reason) {
                    got.completeExceptionally(reason);
                }
            });
            conn.send(new byte[] {4, 2});
            assertArrayEquals(new byte[] {4, 2}, got.get(10, TimeUnit.SECONDS));
        }
    }

    @Test
    void hostNameMismatchIsRefused() throws Exception {
        // The certificate names "localhost" only; 127.0.0.1 is the same server under another name.
        try (SSLServerSocket server = echoServer()) {
            assertThrows(SSLException.class, () -> FramedConnection.openTlsSocket(
                    "127.0.0.1", server.getLocalPort(), clientContext, 5000));
        }
    }

    @Test
    void untrustedCertificateIsRefused() throws Exception {
        SSLContext defaultTrust = SSLContext.getInstance("TLS");
        defaultTrust.init(null, null, null); // the JDK's CA store: does not know our self-signed cert
        try (SSLServerSocket server = echoServer()) {
            assertThrows(SSLException.class, () -> FramedConnection.openTlsSocket(
                    "localhost", server.getLocalPort(), defaultTrust, 5000));
        }
    }
}
