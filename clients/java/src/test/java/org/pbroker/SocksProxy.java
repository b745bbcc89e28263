package org.pbroker;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Proxy;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;

/**
 * A real SOCKS5 proxy for the tests: {@code microsocks} (Debian package {@code microsocks}, which
 * {@code build.sh} installs), listening on a free loopback port, optionally asking for a user name
 * and password. Tests using it are skipped (not failed) when the program is not installed.
 * {@link #close} kills it and reaps it.
 */
final class SocksProxy implements AutoCloseable {
    private final Process process;
    private final int port;
    private final Path log;

    private SocksProxy(Process process, int port, Path log) {
        this.process = process;
        this.port = port;
        this.log = log;
    }

    /** The microsocks binary: {@code pbroker.microsocks}, else the first on PATH. */
    static Path binary() {
        String configured = System.getProperty("pbroker.microsocks");
        if (configured != null) {
            return Path.of(configured);
        }
        for (String dir : System.getenv().getOrDefault("PATH", "/usr/bin").split(":")) {
            Path candidate = Path.of(dir.isEmpty() ? "." : dir, "microsocks");
            if (Files.isExecutable(candidate)) {
                return candidate;
            }
        }
        return Path.of("/usr/bin/microsocks");
    }

    /** Start microsocks without authentication. */
    static SocksProxy start() throws Exception {
        return start(null, null);
    }

    /**
     * Start microsocks; with a user, it accepts only that user name and password (RFC 1929).
     * A free port is picked and, should another process take it first, another one.
     */
    static SocksProxy start(String user, String password) throws Exception {
        Path microsocks = binary();
        Assumptions.assumeTrue(Files.isExecutable(microsocks), "no microsocks at " + microsocks
                + " (apt-get install microsocks, or bash clients/java/build.sh deps); SOCKS "
                + "tests skipped");
        String failures = "";
        for (int attempt = 0; attempt < 5; attempt++) {
            int port = freePort();
            List<String> command = new ArrayList<>(List.of(microsocks.toString(), "-i",
                    "127.0.0.1", "-p", Integer.toString(port)));
            if (user != null) {
                command.addAll(List.of("-u", user, "-P", password));
            }
            Path log = Files.createTempFile("microsocks", ".log");
            Process process = new ProcessBuilder(command).redirectErrorStream(true)
                    .redirectOutput(log.toFile())
                    .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")))
                    .start();
            if (awaitListening(process, port)) {
                return new SocksProxy(process, port, log);
            }
            process.destroyForcibly();
            process.waitFor(10, TimeUnit.SECONDS);
            failures += " [" + Files.readString(log, StandardCharsets.UTF_8).strip() + "]";
            Files.deleteIfExists(log);
        }
        throw new AssertionError("microsocks would not start:" + failures);
    }

    /**
     * True once the proxy accepts a connection, false if it exits first (its port was taken).
     * Between attempts it waits on the process's exit, so a dead proxy ends the wait at once.
     */
    private static boolean awaitListening(Process process, int port) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (System.nanoTime() < deadline) {
            try (Socket probe = new Socket(InetAddress.getLoopbackAddress(), port)) {
                return true;
            } catch (IOException notYet) {
                if (process.waitFor(20, TimeUnit.MILLISECONDS)) {
                    return false;
                }
            }
        }
        return false;
    }

    /** A port nothing listens on (at the time of asking). */
    static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }

    int port() {
        return port;
    }

    /** @return the proxy for {@link PBClient.Options#proxy} */
    Proxy proxy() {
        return new Proxy(Proxy.Type.SOCKS, new InetSocketAddress("127.0.0.1", port));
    }

    /** @return {@code socks5:127.0.0.1:PORT:} followed by the target endpoint */
    String via(String target) {
        return "socks5:127.0.0.1:" + port + ":" + target;
    }

    @Override
    public void close() throws Exception {
        process.destroy();
        if (!process.waitFor(10, TimeUnit.SECONDS)) {
            process.destroyForcibly();
            process.waitFor(10, TimeUnit.SECONDS);
        }
        Files.deleteIfExists(log);
    }
}
