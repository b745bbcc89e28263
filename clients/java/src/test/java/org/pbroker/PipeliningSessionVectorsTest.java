package org.pbroker;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * The "pipelining" feature's session vectors, tests/vectors/pipelining_session.json
 * (docs/PROTOCOL.md section 15, the scheme of section 13.1), run by {@link SessionVectorsTest}'s
 * runner: the Java session as callee (pipelined calls on its own answers) and as caller (finish).
 */
class PipeliningSessionVectorsTest {
    @TestFactory
    Stream<DynamicTest> pipeliningSessionVectors() throws Exception {
        Path path = SessionVectorsTest.sharedPath().resolveSibling("pipelining_session.json");
        assertTrue(Files.isRegularFile(path), "no pipelining session vectors at "
                + path.toAbsolutePath().normalize());
        List<Map<String, Object>> vectors = SessionVectorsTest.vectors(
                Files.readString(path, StandardCharsets.UTF_8));
        assertTrue(vectors.size() >= 10, "suspiciously few vectors: " + vectors.size());
        return vectors.stream().map(v -> DynamicTest.dynamicTest((String) v.get("name"),
                () -> new SessionVectorsTest.Runner(v).run()));
    }
}
