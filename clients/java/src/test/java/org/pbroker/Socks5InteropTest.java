package org.pbroker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.pbroker.InteropFixtures.get;

import java.net.Authenticator;
import java.net.ConnectException;
import java.net.PasswordAuthentication;
import java.nio.file.Path;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLHandshakeException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.pbroker.InteropFixtures.Listener;

/**
 * The Java client through a real SOCKS5 proxy ({@code microsocks}, started on a free loopback
 * port) to the real Python broker: src/test/resources/fixture_server.py over TCP, and
 * portal_fixture.py over TLS (certificates from {@code python -m net.tls make-dev-certs}).
 * Skipped without microsocks or the project's Python.
 */
class Socks5InteropTest {
    @TempDir
    static Path tmp;
    private static SocksProxy proxy;
    private static PythonFixture server;
    private static PythonFixture portal;
    private static Path ca;

    @BeforeAll
    static void start() throws Exception {
        proxy = SocksProxy.start();
        server = PythonFixture.start("fixture_server.py");
        Path certs = tmp.resolve("certs");
        PythonFixture.run("-m", "net.tls", "make-dev-certs", certs.toString());
        portal = PythonFixture.start("portal_fixture.py", certs.toString());
        ca = certs.resolve("ca.pem");
    }

    @AfterAll
    static void stop() throws Exception {
        for (AutoCloseable c : new AutoCloseable[] {portal, server, proxy}) {
            if (c != null) {
                c.close();
            }
        }
    }

    private static void assertCallsWork(PBClient client) throws Exception {
        RemoteReference root = get(client.getRootObject());
        assertEquals(3L, get(root.callRemote("add", 1, 2)));
        RemoteReference counter = get(root.callRemote(RemoteReference.class, "counter", 41));
        assertEquals(42L, get(counter.callRemote("increment")));
        // the server calls back into Java through the same tunnel
        assertEquals("HEY!", get(root.callRemote("call_back", new Listener(), "shout", "hey")));
    }

    @Test
    void callsThroughTheProxyByEndpointString() throws Exception {
        int port = server.port("plain");
        try (PBClient client = PBClient.connect(proxy.via("tcp:127.0.0.1:" + port))) {
            assertCallsWork(client);
        }
        // the tunnel's own timeout, between the proxy's port and the server's endpoint
        try (PBClient client = PBClient.connect("socks5:127.0.0.1:" + proxy.port()
                + ":timeout=10:tcp:127.0.0.1:" + port)) {
            assertCallsWork(client);
        }
    }

    @Test
    void callsThroughTheProxyByOptions() throws Exception {
        PBClient.Options options = PBClient.Options.defaults().proxy(proxy.proxy());
        try (PBClient client = PBClient.connect("127.0.0.1", server.port("plain"), options)) {
            assertCallsWork(client);
        }
        try (PBClient client = PBClient.connect("tcp:127.0.0.1:" + server.port("plain"),
                options)) {
            assertCallsWork(client);
        }
    }

    @Test
    void aRefusedTargetIsAClearException() throws Exception {
        int nobody = SocksProxy.freePort();
        ConnectException e = assertThrows(ConnectException.class,
                () -> PBClient.connect(proxy.via("tcp:127.0.0.1:" + nobody)));
        String message = e.getMessage();
        assertTrue(message.startsWith("cannot connect to tcp:127.0.0.1:" + nobody
                + " through the SOCKS proxy "), message);
        assertTrue(message.contains(":" + proxy.port()), message);
        assertTrue(message.contains("Connection refused"), message);
        assertTrue(message.contains("the proxy answered"), message);
    }

    @Test
    void tlsThroughTheProxyVerifiesTheServer() throws Exception {
        int tls = portal.port("tls");
        try (PBClient client = PBClient.connect(proxy.via("tls:127.0.0.1:" + tls + ":ca="
                + ca))) {
            assertEquals("anonymous", get(get(client.loginAnonymous(null)).callRemote("whoami")));
        }
        // hostname=: connect to the address, check the certificate for the name
        try (PBClient client = PBClient.connect(proxy.via("tls:127.0.0.1:" + tls
                + ":hostname=localhost:ca=" + ca))) {
            assertEquals("anonymous", get(get(client.loginAnonymous(null)).callRemote("whoami")));
        }
        // connectTls with Options.proxy
        SSLContext trustCa = Transports.trusting(ca);
        try (PBClient client = PBClient.connectTls("127.0.0.1", tls, trustCa,
                PBClient.Options.defaults().proxy(proxy.proxy()))) {
            assertEquals("anonymous", get(get(client.loginAnonymous(null)).callRemote("whoami")));
        }
    }

    @Test
    void tlsThroughTheProxyRefusesACertificateForAnotherName() {
        // "other" has a certificate from the same CA naming only pbroker-other.invalid
        int other = portal.port("other");
        SSLHandshakeException e = assertThrows(SSLHandshakeException.class,
                () -> PBClient.connect(proxy.via("tls:127.0.0.1:" + other + ":ca=" + ca)));
        assertTrue(String.valueOf(e.getMessage()).contains("127.0.0.1"), e.getMessage());
    }

    @Test
    void aProxyWantingAPasswordGetsItFromTheAuthenticator() throws Exception {
        try (SocksProxy guarded = SocksProxy.start("pbroker", "s3cret-proxy")) {
            String endpoint = guarded.via("tcp:127.0.0.1:" + server.port("plain"));
            Authenticator before = Authenticator.getDefault();
            try {
                Authenticator.setDefault(null);
                ConnectException e = assertThrows(ConnectException.class,
                        () -> PBClient.connect(endpoint));
                assertTrue(e.getMessage().contains("authentication"), e.getMessage());
                assertTrue(e.getMessage().contains("java.net.Authenticator"), e.getMessage());

                Authenticator.setDefault(new Authenticator() {
                    @Override
                    protected PasswordAuthentication getPasswordAuthentication() {
                        if ("SOCKS5".equals(getRequestingProtocol())
                                && getRequestingPort() == guarded.port()) {
                            return new PasswordAuthentication("pbroker",
                                    "s3cret-proxy".toCharArray());
                        }
                        return null;
                    }
                });
                try (PBClient client = PBClient.connect(endpoint)) {
                    assertCallsWork(client);
                }
            } finally {
                Authenticator.setDefault(before);
            }
        }
    }
}
