package org.pbroker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyFactory;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLException;
import javax.net.ssl.TrustManagerFactory;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Login against the real Python side (broker/login.py, cred): a Portal with SCRAM users, anonymous
 * access and client certificates, served by src/test/resources/portal_fixture.py over TCP, TLS
 * and mutual TLS, with certificates made at test time by {@code python -m net.tls make-dev-certs}
 * in a temporary directory. Skipped without the project's Python.
 */
class LoginInteropTest {
    private static final String UNAUTHORIZED = "cred.error.UnauthorizedLogin";
    private static final String UNAUTHORIZED_MESSAGE = "login failed: invalid credentials";

    @TempDir
    static Path tmp;
    private static PythonFixture fixture;
    private static SSLContext trustCa;
    private static SSLContext trustCaWithClientKey;

    @BeforeAll
    static void start() throws Exception {
        Path certs = tmp.resolve("certs");
        PythonFixture.run("-m", "net.tls", "make-dev-certs", certs.toString());
        fixture = PythonFixture.start("portal_fixture.py", certs.toString());

        X509Certificate ca = loadCertificate(certs.resolve("ca.pem"));
        KeyStore trust = KeyStore.getInstance("PKCS12");
        trust.load(null, null);
        trust.setCertificateEntry("pbroker-dev-ca", ca);
        TrustManagerFactory tmf =
                TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(trust);
        trustCa = SSLContext.getInstance("TLS");
        trustCa.init(null, tmf.getTrustManagers(), null);

        char[] password = "in-memory".toCharArray();
        KeyStore keys = KeyStore.getInstance("PKCS12");
        keys.load(null, null);
        keys.setKeyEntry("client", loadPrivateKey(certs), password, new Certificate[] {
            loadCertificate(certs.resolve("client.pem")), ca});
        KeyManagerFactory kmf =
                KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        kmf.init(keys, password);
        trustCaWithClientKey = SSLContext.getInstance("TLS");
        trustCaWithClientKey.init(kmf.getKeyManagers(), tmf.getTrustManagers(), null);
    }

    @AfterAll
    static void stop() throws Exception {
        if (fixture != null) {
            fixture.close();
        }
    }

    static X509Certificate loadCertificate(Path pem) throws Exception {
        try (InputStream in = Files.newInputStream(pem)) {
            return (X509Certificate) CertificateFactory.getInstance("X.509")
                    .generateCertificate(in);
        }
    }

    /**
     * The dev client key: PEM "PRIVATE KEY" is PKCS#8 and Java reads it after base64; any other
     * PEM flavour (PKCS#1 "RSA PRIVATE KEY", SEC1 "EC PRIVATE KEY") is read from the PKCS#8 DER
     * copy the fixture writes with the {@code cryptography} package.
     */
    static PrivateKey loadPrivateKey(Path certs) throws Exception {
        String pem = Files.readString(certs.resolve("client.key"), StandardCharsets.US_ASCII);
        byte[] der;
        if (pem.contains("-----BEGIN PRIVATE KEY-----")) {
            String base64 = pem.replaceAll("-----(BEGIN|END) PRIVATE KEY-----", "")
                    .replaceAll("\\s", "");
            der = Base64.getDecoder().decode(base64);
        } else {
            der = Files.readAllBytes(certs.resolve("client.key.der"));
        }
        PKCS8EncodedKeySpec spec = new PKCS8EncodedKeySpec(der);
        for (String algorithm : List.of("EC", "RSA", "Ed25519")) {
            try {
                return KeyFactory.getInstance(algorithm).generatePrivate(spec);
            } catch (java.security.spec.InvalidKeySpecException wrongAlgorithm) {
                // try the next
            }
        }
        throw new AssertionError("cannot read the client key");
    }

    private static <T> T get(CompletableFuture<T> f) throws Exception {
        return f.get(20, TimeUnit.SECONDS);
    }

    private static Throwable failure(CompletableFuture<?> f) {
        return assertThrows(ExecutionException.class, () -> f.get(20, TimeUnit.SECONDS))
                .getCause();
    }

    private static void assertUnauthorized(CompletableFuture<?> login) {
        RemoteException e = assertInstanceOf(RemoteException.class, failure(login));
        assertEquals("failed", e.kind());
        assertEquals(UNAUTHORIZED, e.remoteType());
        assertEquals(UNAUTHORIZED_MESSAGE, e.remoteMessage());
    }

    /** The client's mind: the server's realm gets it at login and calls it. */
    static final class Mind implements Referenceable {
        final CompletableFuture<String> notice = new CompletableFuture<>();

        @Remote
        public String hello(String who) {
            return "hello from Java, " + who;
        }

        @Remote
        public String notice(String text) {
            notice.complete(text);
            return "got " + text;
        }
    }

    @Test
    void scramLoginGivesAUsableAvatar() throws Exception {
        try (PBClient c = PBClient.connect("127.0.0.1", fixture.port("tcp"))) {
            Mind mind = new Mind();
            RemoteReference avatar = get(c.login("alice", "s3cret", mind));
            assertEquals("alice", get(avatar.callRemote("whoami")));
            assertEquals(true, get(avatar.callRemote("has_mind")));
            assertEquals(List.of(1L, "two"), get(avatar.callRemote("echo", List.of(1, "two"))));
            RemoteReference counter = get(avatar.callRemote(RemoteReference.class, "counter", 40));
            assertEquals(42L, get(counter.callRemote("increment", 2)));
            // the realm calls the mind while our call runs
            assertEquals("hello from Java, py", get(avatar.callRemote("ask_mind", "hello", "py")));
            // only perspective_ methods are reachable
            assertInstanceOf(RemoteException.class, failure(avatar.callRemote("no_such_thing")));
        }
    }

    @Test
    void wrongPasswordAndUnknownUserGetTheSameRealError() throws Exception {
        try (PBClient c = PBClient.connect("127.0.0.1", fixture.port("tcp"))) {
            assertUnauthorized(c.login("alice", "wrong"));
            assertUnauthorized(c.login("mallory", "s3cret"));
            // a refused login returns the login object to idle: try again on this connection
            RemoteReference avatar = get(c.login("bob", "hunter2"));
            assertEquals("bob", get(avatar.callRemote("whoami")));
            assertTrue(c.isConnected());
        }
    }

    @Test
    void secondLoginOnAConnectionIsAlreadyLoggedIn() throws Exception {
        try (PBClient c = PBClient.connect("127.0.0.1", fixture.port("tcp"))) {
            get(c.login("alice", "s3cret"));
            RemoteException e = assertInstanceOf(RemoteException.class,
                    failure(c.loginAnonymous(null)));
            assertEquals("broker.AlreadyLoggedIn", e.remoteType());
        }
    }

    @Test
    void beforeLoginObjectZeroIsTheLoginObjectOnly() throws Exception {
        try (PBClient c = PBClient.connect("127.0.0.1", fixture.port("tcp"))) {
            RemoteReference login = get(c.getRootObject());
            assertInstanceOf(UnimplementedException.class, failure(login.callRemote("whoami")));
            RemoteException e = assertInstanceOf(RemoteException.class,
                    failure(login.callRemote(PBClient.LOGIN_FINISH, "c=biws,r=x,p=eA==", null)));
            assertEquals("broker.LoginSequenceError", e.remoteType());
        }
    }

    @Test
    void anonymousLogin() throws Exception {
        try (PBClient c = PBClient.connect("127.0.0.1", fixture.port("tcp"))) {
            RemoteReference avatar = get(c.loginAnonymous(null));
            assertEquals("anonymous", get(avatar.callRemote("whoami")));
            assertEquals(false, get(avatar.callRemote("has_mind")));
        }
    }

    @Test
    void theServerCallsTheMindOfItsOwnAccord() throws Exception {
        try (PBClient c = PBClient.connect("127.0.0.1", fixture.port("tcp"))) {
            Mind mind = new Mind();
            RemoteReference avatar = get(c.loginAnonymous(mind));
            assertNull(get(avatar.callRemote("notify_later", 0.05, "tick")));
            assertEquals("tick", mind.notice.get(20, TimeUnit.SECONDS)); // no call of ours pending
            List<?> replies = List.of();
            for (int i = 0; i < 200 && replies.isEmpty(); i++) {
                replies = (List<?>) get(avatar.callRemote("replies"));
                Thread.sleep(10);
            }
            assertEquals(List.of("got tick"), replies); // and the server got our answer
        }
    }

    @Test
    void disconnectingLogsOut() throws Exception {
        PBClient c = PBClient.connect("127.0.0.1", fixture.port("tcp"));
        get(c.login("bob", "hunter2"));
        c.close();
        try (PBClient other = PBClient.connect("127.0.0.1", fixture.port("tcp"))) {
            RemoteReference avatar = get(other.loginAnonymous(null));
            List<?> logouts = List.of();
            for (int i = 0; i < 200 && !logouts.contains("bob"); i++) {
                logouts = (List<?>) get(avatar.callRemote("logouts"));
                Thread.sleep(10);
            }
            assertTrue(logouts.contains("bob"), "logouts: " + logouts);
        }
    }

    @Test
    void tlsWithHostNameVerificationByIpAndByName() throws Exception {
        for (String host : List.of("127.0.0.1", "localhost")) {
            try (PBClient c = PBClient.connectTls(host, fixture.port("tls"), trustCa)) {
                Mind mind = new Mind();
                RemoteReference avatar = get(c.login("alice", "s3cret", mind));
                assertEquals("alice", get(avatar.callRemote("whoami")));
                assertEquals("hello from Java, tls",
                        get(avatar.callRemote("ask_mind", "hello", "tls")));
            }
        }
    }

    @Test
    void aCertificateForAnotherHostIsRefused() {
        // same trusted CA, but the certificate names only pbroker-other.invalid
        SSLException e = assertThrows(SSLException.class,
                () -> PBClient.connectTls("127.0.0.1", fixture.port("other"), trustCa));
        assertTrue(String.valueOf(e.getMessage()).contains("127.0.0.1"), e.toString());
    }

    @Test
    void anUntrustedCertificateIsRefused() throws Exception {
        SSLContext jdkDefaults = SSLContext.getInstance("TLS");
        jdkDefaults.init(null, null, null); // the JDK's CA store does not know the dev CA
        assertThrows(SSLException.class,
                () -> PBClient.connectTls("localhost", fixture.port("tls"), jdkDefaults));
    }

    @Test
    void certificateLoginOverMutualTls() throws Exception {
        try (PBClient c = PBClient.connectTls("localhost", fixture.port("mtls"),
                trustCaWithClientKey)) {
            Mind mind = new Mind();
            RemoteReference avatar = get(c.loginWithCertificate(mind));
            assertEquals("pbroker-dev-client", get(avatar.callRemote("whoami")));
            assertEquals("hello from Java, mtls",
                    get(avatar.callRemote("ask_mind", "hello", "mtls")));
        }
    }

    @Test
    void certificateLoginWithoutACertificateIsRefused() throws Exception {
        try (PBClient c = PBClient.connectTls("localhost", fixture.port("tls"), trustCa)) {
            assertUnauthorized(c.loginWithCertificate(null));
        }
        try (PBClient c = PBClient.connect("127.0.0.1", fixture.port("tcp"))) {
            assertUnauthorized(c.loginWithCertificate(null));
        }
    }

    @Test
    void mutualTlsWithoutAClientCertificateFailsInsteadOfHanging() throws Exception {
        PBClient c;
        try {
            c = PBClient.connectTls("localhost", fixture.port("mtls"), trustCa);
        } catch (java.io.IOException refusedInTheHandshake) {
            return; // TLS 1.2: the server's refusal ends the handshake
        }
        try (c) { // TLS 1.3: the refusal arrives after the client's side of the handshake
            ConnectionLostException e =
                    assertInstanceOf(ConnectionLostException.class, failure(c.getRootObject()));
            // the alert certificate_required, or a reset if our Hello was still being sent
            assertInstanceOf(java.io.IOException.class, e.getCause());
            assertFalse(c.isConnected());
        }
    }
}
