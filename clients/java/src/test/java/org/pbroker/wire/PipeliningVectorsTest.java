package org.pbroker.wire;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/**
 * The "pipelining" feature's codec vectors, tests/vectors/pipelining.json (PROTOCOL.md section
 * 15), run as {@link WireVectorsTest} runs wire.json: whole and one byte at a time.
 */
class PipeliningVectorsTest {
    @TestFactory
    @SuppressWarnings("unchecked")
    Stream<DynamicTest> pipeliningVectors() throws Exception {
        Path path = WireVectorsTest.vectorsPath().resolveSibling("pipelining.json");
        assertTrue(Files.isRegularFile(path), "pipelining vectors not found at "
                + path.toAbsolutePath().normalize());
        List<Map<String, Object>> vectors = (List<Map<String, Object>>) Json.parse(
                Files.readString(path, StandardCharsets.UTF_8));
        assertTrue(vectors.size() >= 15, "suspiciously few vectors: " + vectors.size());
        return vectors.stream().map(v -> DynamicTest.dynamicTest((String) v.get("name"),
                () -> WireVectorsTest.run(v)));
    }

    @Test
    void finishValidatesItself() {
        assertThrows(IllegalArgumentException.class, () -> new Finish(List.of()));
        assertThrows(IllegalArgumentException.class, () -> new Finish(List.of(3L, 3L)));
        assertThrows(IllegalArgumentException.class, () -> new Finish(List.of(0L)));
        assertEquals(List.of(1L, 2L), new Finish(List.of(1L, 2L)).questionIds());
        assertEquals(Wire.FINISH, new Finish(List.of(1L)).type());
        assertEquals("0000000592099201" + "02", HexFormat.of().formatHex(new byte[] {0, 0, 0, 5,
                (byte) 0x92, 9, (byte) 0x92, 1, 2}));
    }
}
