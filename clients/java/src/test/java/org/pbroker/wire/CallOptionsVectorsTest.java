package org.pbroker.wire;

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
 * The "call-options" feature's codec vectors, tests/vectors/call_options.json (PROTOCOL.md section 18), run as
 * {@link WireVectorsTest} runs wire.json: whole and one byte at a time.
 */
class CallOptionsVectorsTest {
    @TestFactory
    @SuppressWarnings("unchecked")
    Stream<DynamicTest> callOptionsVectors() throws Exception {
        Path path = WireVectorsTest.vectorsPath().resolveSibling("call_options.json");
        assertTrue(Files.isRegularFile(path), "call-options vectors not found at "
                + path.toAbsolutePath().normalize());
        List<Map<String, Object>> vectors = (List<Map<String, Object>>) Json.parse(
                Files.readString(path, StandardCharsets.UTF_8));
        assertTrue(vectors.size() > 10, "suspiciously few vectors: " + vectors.size());
        return vectors.stream().map(v -> DynamicTest.dynamicTest((String) v.get("name"),
                () -> WireVectorsTest.run(v)));
    }
}
