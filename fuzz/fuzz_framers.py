"""net.basic's framers (LineReceiver, Int32/16/8StringReceiver) fed bytes over a MemoryTransport.

Input: one control byte, then the stream. ``(control >> 5) % 4`` picks the framer: 0 a
LineReceiver (delimiter ``\\r\\n``, max_length 64) whose line ``raw`` switches to raw mode, in
which a ``!`` switches back to lines (the rest of that chunk handed back as ``extra``) and whose
line ``pause`` pauses it until the next chunk; 1, 2, 3 an Int32/16/8StringReceiver (max_length
200). ``control & 0x1f`` seeds the split points.

Checked: no exception; what is delivered (lines, raw bytes, strings, and whether the limit
closed the connection) does not depend on how the stream was split, and for the length-prefixed
framers equals what a ten-line reference parser makes of the whole stream; nothing is delivered
after the framer dropped the connection.
"""

from __future__ import annotations

import struct
from typing import Any

from fuzz import _util

with _util.instrument(__name__):
    from net.basic import Int8StringReceiver, Int16StringReceiver, Int32StringReceiver, LineReceiver
    from net.testing import MemoryTransport

MAX_LENGTH_LINE = 64
MAX_LENGTH_STRING = 200


class Lines(LineReceiver):
    max_length = MAX_LENGTH_LINE

    def __init__(self) -> None:
        self.events: list[tuple[str, bytes]] = []

    def _record(self, kind: str, data: bytes) -> None:
        assert not self.transport.is_closing(), f"{kind} delivered after the connection was dropped"
        if kind == "raw" and self.events and self.events[-1][0] == "raw":
            self.events[-1] = ("raw", self.events[-1][1] + data)  # raw chunking is arbitrary
        elif kind != "raw" or data:
            self.events.append((kind, data))

    def line_received(self, line: bytes) -> None:
        self._record("line", line)
        if line == b"raw":
            self.set_raw_mode()
        elif line == b"pause":
            self.pause_producing()

    def raw_data_received(self, data: bytes) -> None:
        data, bang, extra = data.partition(b"!")
        self._record("raw", data)
        if bang:
            self._record("switch", b"")
            self.set_line_mode(extra)


def _strings(base: type) -> type:
    class Strings(base):  # type: ignore[misc, valid-type]
        max_length = MAX_LENGTH_STRING

        def __init__(self) -> None:
            self.events: list[tuple[str, bytes]] = []

        def string_received(self, data: bytes) -> None:
            assert not self.transport.is_closing(), "string delivered after the connection was dropped"
            self.events.append(("string", data))

    return Strings


FRAMERS: list[Any] = [Lines, _strings(Int32StringReceiver), _strings(Int16StringReceiver), _strings(Int8StringReceiver)]
PREFIXES = [None, "!I", "!H", "!B"]


def _feed(framer_class: Any, pieces: list[bytes]) -> tuple[list[tuple[str, bytes]], bool]:
    proto = framer_class()
    transport = MemoryTransport()
    transport.protocol = proto
    proto.make_connection(transport)
    for piece in pieces:
        proto.data_received(piece)
        if proto.paused and not transport.is_closing():
            proto.resume_producing()
    while proto.paused and not transport.is_closing():  # a pause in the last chunk
        proto.resume_producing()
    return proto.events, transport.is_closing()


def _reference(prefix: str, stream: bytes) -> tuple[list[tuple[str, bytes]], bool]:
    """The length-prefixed framing, parsed the obvious way."""
    header, position = struct.calcsize(prefix), 0
    out: list[tuple[str, bytes]] = []
    while len(stream) - position >= header:
        (length,) = struct.unpack_from(prefix, stream, position)
        if length > MAX_LENGTH_STRING:
            return out, True
        if len(stream) - position - header < length:
            break
        out.append(("string", stream[position + header : position + header + length]))
        position += header + length
    return out, False


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    control, payload = data[0], data[1:]
    which = (control >> 5) % 4
    framer = FRAMERS[which]
    whole = _feed(framer, [payload] if payload else [])
    split = _feed(framer, list(_util.chunks(payload, control & 0x1F)))
    assert split == whole, (split, whole)
    prefix = PREFIXES[which]
    if prefix is not None:
        expected = _reference(prefix, payload)
        assert whole == expected, (whole, expected)


if __name__ == "__main__":
    _util.main(TestOneInput)
