package org.pbroker.net;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.DataInputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.ConnectException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Proxy;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * What {@link Dialer#openSocket} asks a SOCKS5 proxy for, read off the wire by a scripted proxy
 * (RFC 1928): a host name goes to the proxy as a name (remote DNS), an IP literal as an address.
 * The scripted proxy then refuses the tunnel ("connection refused", reply 5), and the exception
 * must say so, naming the server and the proxy. The real proxy is in Socks5InteropTest.
 */
class Socks5RequestTest {
    /** A CONNECT request as received: address type, address bytes, port. */
    record Request(int addressType, byte[] address, int port) {
        String name() {
            return new String(address, StandardCharsets.US_ASCII);
        }
    }

    private ServerSocket listener;
    private CompletableFuture<Request> request;

    @BeforeEach
    void startScriptedProxy() throws IOException {
        listener = new ServerSocket(0, 5, InetAddress.getLoopbackAddress());
        request = new CompletableFuture<>();
        Thread t = new Thread(this::serveOne, "scripted-socks5");
        t.setDaemon(true);
        t.start();
    }

    @AfterEach
    void stop() throws IOException {
        listener.close();
    }

    private void serveOne() {
        try (Socket s = listener.accept()) {
            DataInputStream in = new DataInputStream(s.getInputStream());
            OutputStream out = s.getOutputStream();
            assertEquals(5, in.readUnsignedByte(), "greeting version");
            in.readFully(new byte[in.readUnsignedByte()]); // the methods offered
            out.write(new byte[] {5, 0}); // no authentication
            out.flush();
            assertEquals(5, in.readUnsignedByte(), "request version");
            assertEquals(1, in.readUnsignedByte(), "command CONNECT");
            in.readUnsignedByte(); // reserved
            int type = in.readUnsignedByte();
            int length = type == 1 ? 4 : type == 4 ? 16 : in.readUnsignedByte();
            byte[] address = new byte[length];
            in.readFully(address);
            int port = in.readUnsignedShort();
            request.complete(new Request(type, address, port));
            out.write(new byte[] {5, 5, 0, 1, 0, 0, 0, 0, 0, 0}); // connection refused
            out.flush();
        } catch (Throwable e) {
            request.completeExceptionally(e);
        }
    }

    private Proxy proxy() {
        return new Proxy(Proxy.Type.SOCKS,
                new InetSocketAddress(InetAddress.getLoopbackAddress(), listener.getLocalPort()));
    }

    private Request refusedRequestFor(String host, int port) throws Exception {
        ConnectException e = assertThrows(ConnectException.class,
                () -> Dialer.openSocket(host, port, proxy(), 5000));
        String target = host.contains(":") ? "[" + host + "]" : host;
        assertTrue(e.getMessage().startsWith("cannot connect to tcp:" + target + ":" + port
                + " through the SOCKS proxy "), e.getMessage());
        assertTrue(e.getMessage().contains(":" + listener.getLocalPort()), e.getMessage());
        assertTrue(e.getMessage().contains("Connection refused"), e.getMessage());
        assertTrue(e.getMessage().contains("the proxy answered"), e.getMessage());
        return request.get(5, TimeUnit.SECONDS);
    }

    @Test
    void aHostNameIsSentForTheProxyToResolve() throws Exception {
        // .invalid never resolves (RFC 2606): resolving it here would fail before the proxy
        Request r = refusedRequestFor("pbroker-server.invalid", 8800);
        assertEquals(3, r.addressType(), "DOMAINNAME");
        assertEquals("pbroker-server.invalid", r.name());
        assertEquals(8800, r.port());
    }

    @Test
    void anIpv4LiteralIsSentAsAnAddress() throws Exception {
        Request r = refusedRequestFor("127.0.0.1", 65535);
        assertEquals(1, r.addressType(), "IPv4");
        assertArrayEquals(new byte[] {127, 0, 0, 1}, r.address());
        assertEquals(65535, r.port());
    }

    @Test
    void anIpv6LiteralIsSentAsAnAddress() throws Exception {
        Request r = refusedRequestFor("::1", 1);
        assertEquals(4, r.addressType(), "IPv6");
        byte[] loopback = new byte[16];
        loopback[15] = 1;
        assertArrayEquals(loopback, r.address());
    }

    @Test
    void aProxyThatIsNotThereIsNamed() throws Exception {
        int dead;
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            dead = s.getLocalPort();
        }
        Proxy nobody = new Proxy(Proxy.Type.SOCKS,
                new InetSocketAddress(InetAddress.getLoopbackAddress(), dead));
        ConnectException e = assertThrows(ConnectException.class,
                () -> Dialer.openSocket("127.0.0.1", 8800, nobody, 5000));
        assertTrue(e.getMessage().contains(":" + dead), e.getMessage());
        assertTrue(e.getMessage().contains("is the proxy running"), e.getMessage());
    }

    @Test
    void onlySocksProxiesAreTaken() {
        Proxy http = new Proxy(Proxy.Type.HTTP,
                new InetSocketAddress(InetAddress.getLoopbackAddress(), listener.getLocalPort()));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Dialer.openSocket("127.0.0.1", 8800, http, 5000));
        assertTrue(e.getMessage().contains("only SOCKS proxies"), e.getMessage());
    }
}
