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
 * The "cache" feature's session vectors, tests/vectors/cache_session.json (docs/PROTOCOL.md
 * section 16, the scheme of section 13.1), run by {@link SessionVectorsTest}'s runner. This client
 * holds caches but owns none, so the vectors whose session serves the owner fixture
 * {@code "board"} are Python's only.
 */
class CacheSessionVectorsTest {
    static {
        RemoteCache.register("vectors.Board", SessionFixtures.Board.class);
    }

    @TestFactory
    Stream<DynamicTest> cacheSessionVectors() throws Exception {
        Path path = SessionVectorsTest.sharedPath().resolveSibling("cache_session.json");
        assertTrue(Files.isRegularFile(path), "no cache session vectors at "
                + path.toAbsolutePath().normalize());
        List<Map<String, Object>> vectors = SessionVectorsTest.vectors(
                Files.readString(path, StandardCharsets.UTF_8));
        List<Map<String, Object>> ours = vectors.stream()
                .filter(v -> !"board".equals(v.get("root"))).toList();
        assertTrue(ours.size() >= 7, "suspiciously few holder vectors: " + ours.size());
        return ours.stream().map(v -> DynamicTest.dynamicTest((String) v.get("name"),
                () -> new SessionVectorsTest.Runner(v).run()));
    }
}
