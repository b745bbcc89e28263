package org.pbroker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;

/**
 * A Python helper process from src/test/resources, run with the project's virtualenv
 * ({@code pbroker.python}, default {@code <root>/.venv/bin/python}). It prints one line
 * {@code READY name=port ...} and exits when its stdin closes, so a dead test never leaves it
 * behind. Tests using it are skipped (not failed) without that Python or the broker package.
 */
final class PythonFixture implements AutoCloseable {
    private final Process process;
    private final Map<String, Integer> ports;

    private PythonFixture(Process process, Map<String, Integer> ports) {
        this.process = process;
        this.ports = ports;
    }

    /** The checkout root. */
    static Path root() {
        return Path.of(System.getProperty("pbroker.root", "../..")).toAbsolutePath().normalize();
    }

    /** The Python to use; assumption failure (skip) if it or the broker package is missing. */
    static String python() throws Exception {
        String python = System.getProperty("pbroker.python",
                root().resolve(".venv/bin/python").toString());
        Assumptions.assumeTrue(Files.isExecutable(Path.of(python)),
                "no Python at " + python + " (run `make venv`); interop tests skipped");
        Process probe = new ProcessBuilder(python, "-c", "import broker.api, cred.portal")
                .directory(root().toFile()).redirectErrorStream(true).start();
        String output = new String(probe.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        Assumptions.assumeTrue(probe.waitFor() == 0,
                "the Python broker is not importable; interop tests skipped: " + output);
        return python;
    }

    /** Run {@code python args...} in the checkout root and wait for it to finish. */
    static void run(String... args) throws Exception {
        List<String> command = new ArrayList<>();
        command.add(python());
        command.addAll(List.of(args));
        Process p = new ProcessBuilder(command).directory(root().toFile())
                .redirectErrorStream(true).start();
        String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), "timed out: " + command);
        assertEquals(0, p.exitValue(), command + " said: " + output);
    }

    /** Start {@code src/test/resources/<script> args...} and wait for its READY line. */
    static PythonFixture start(String script, String... args) throws Exception {
        List<String> command = new ArrayList<>();
        command.add(python());
        command.add(root().resolve("clients/java/src/test/resources").resolve(script).toString());
        command.addAll(List.of(args));
        Process process = new ProcessBuilder(command).directory(root().toFile())
                .redirectError(ProcessBuilder.Redirect.INHERIT).start();
        BufferedReader out = new BufferedReader(
                new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8));
        CompletableFuture<String> line = CompletableFuture.supplyAsync(() -> {
            try {
                return out.readLine();
            } catch (IOException e) {
                throw new RuntimeException(e);
            }
        });
        String first;
        try {
            first = line.get(30, TimeUnit.SECONDS);
        } catch (Exception e) {
            process.destroyForcibly();
            throw e;
        }
        if (first == null || !first.startsWith("READY ")) {
            process.destroyForcibly();
            throw new AssertionError(script + " did not start; it said: " + first);
        }
        Map<String, Integer> ports = new LinkedHashMap<>();
        for (String word : first.substring("READY ".length()).trim().split(" ")) {
            String[] kv = word.split("=", 2);
            ports.put(kv[0], Integer.parseInt(kv[1]));
        }
        return new PythonFixture(process, ports);
    }

    /** The port the fixture printed for {@code name}. */
    int port(String name) {
        Integer port = ports.get(name);
        if (port == null) {
            throw new IllegalArgumentException("the fixture has no port " + name + ": " + ports);
        }
        return port;
    }

    @Override
    public void close() throws Exception {
        process.getOutputStream().close(); // the fixture exits when stdin closes
        if (!process.waitFor(10, TimeUnit.SECONDS)) {
            process.destroyForcibly();
        }
    }
}
