package org.pbroker.wire;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.HexFormat;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The "pipelining" feature's {@link Finish} message (PROTOCOL.md section 15.2) beyond its codec
 * vectors, which {@link WireVectorsTest} runs: it refuses the id lists the decoder refuses, and
 * encodes as the spec's example.
 */
class FinishTest {
    @Test
    void finishValidatesItself() throws WireException {
        assertThrows(IllegalArgumentException.class, () -> new Finish(List.of()));
        assertThrows(IllegalArgumentException.class, () -> new Finish(List.of(3L, 3L)));
        assertThrows(IllegalArgumentException.class, () -> new Finish(List.of(0L)));
        assertEquals(List.of(1L, 2L), new Finish(List.of(1L, 2L)).questionIds());
        assertEquals(Wire.FINISH, new Finish(List.of(1L)).type());
        // the spec's example, section 15.4, assembled by hand
        assertEquals("00000005" + "92099201" + "02",
                HexFormat.of().formatHex(new WireEncoder().encodeFrame(new Finish(List.of(1L, 2L)))));
    }
}
