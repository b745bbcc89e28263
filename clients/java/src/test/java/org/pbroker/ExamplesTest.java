package org.pbroker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * examples/java/run.sh, the one command in examples/java/README.md, run as it is: the Java
 * examples against the Python calculator and the TLS notes service. Skipped without the
 * project's Python.
 */
class ExamplesTest {
    @Test
    void runShWorks() throws Exception {
        String python = PythonFixture.python();
        Path root = PythonFixture.root();
        ProcessBuilder pb = new ProcessBuilder("bash", root.resolve("examples/java/run.sh").toString())
                .directory(root.toFile()).redirectErrorStream(true);
        pb.environment().put("PYTHON", python);
        pb.environment().put("JAVA", Path.of(System.getProperty("java.home"), "bin", "java").toString());
        pb.environment().put("PBROKER_SKIP_BUILD", "1"); // Maven has just compiled target/classes
        Process p = pb.start();
        p.getOutputStream().close();
        CompletableFuture<String> output = CompletableFuture.supplyAsync(() -> {
            try {
                return new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            } catch (java.io.IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        });
        if (!p.waitFor(120, TimeUnit.SECONDS)) {
            p.destroy(); // its EXIT trap stops the servers it started
            p.waitFor(10, TimeUnit.SECONDS);
            throw new AssertionError("run.sh did not finish: " + output.getNow("(no output)"));
        }
        String out = output.get(10, TimeUnit.SECONDS);
        assertEquals(0, p.exitValue(), out);
        for (String expected : new String[] {
            "add(1, 2.5) = 3.5",
            "sum of squares of [1, 2, 3] = 14.0",
            "scale(Vector(1, 2), 3) = Vector[x=3.0, y=6.0]",
            "norm(Vector(3, 4)) = 5.0",
            "memory recalls 42.5",
            "divide(1, 0) failed: builtins.ZeroDivisionError - division by zero",
            "alice's notes: [a note from Java]",
            "board as alice sees it: [(you): a note from Java]",
            "alice: login failed: invalid credentials (cred.error.UnauthorizedLogin)",
            "== done",
        }) {
            assertTrue(out.contains(expected), "missing \"" + expected + "\" in:\n" + out);
        }
    }
}
