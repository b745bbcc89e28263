"""Property tests for net.basic: any chunking of a stream yields its messages once each, in order."""

from __future__ import annotations

import struct
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from net.basic import Int32StringReceiver, LineReceiver
from net.error import ProtocolViolation
from net.protocol import Protocol
from net.testing import MemoryTransport

# No timing assertions: a loaded machine must not fail these.
no_deadline = settings(deadline=None)

DELIMITERS = st.sampled_from([b"\r\n", b"\n", b"\x00", b"aa", b"<END>"])


def connect(proto: Protocol) -> Any:
    proto.make_connection(MemoryTransport())
    return proto


def close_reason(proto: Protocol) -> BaseException | None:
    transport: MemoryTransport = proto.transport
    return transport.close_reason


class Lines(LineReceiver):
    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def line_received(self, line: bytes) -> None:
        self.lines.append(line)


class Strings(Int32StringReceiver):
    def __init__(self) -> None:
        self.strings: list[bytes] = []

    def string_received(self, data: bytes) -> None:
        self.strings.append(data)


class Mixed(LineReceiver):
    """Lines, except that ``LEN n`` announces an n-byte raw blob, read in raw mode."""

    def __init__(self) -> None:
        self.events: list[tuple[str, bytes]] = []
        self.blob = bytearray()
        self.expected = 0

    def line_received(self, line: bytes) -> None:
        if line == b"LEN 0":
            self.events.append(("raw", b""))
        elif line.startswith(b"LEN "):
            self.expected = int(line[4:])
            self.set_raw_mode()
        else:
            self.events.append(("line", line))

    def raw_data_received(self, data: bytes) -> None:
        take = min(self.expected, len(data))
        self.blob += data[:take]
        self.expected -= take
        if not self.expected:
            self.events.append(("raw", bytes(self.blob)))
            self.blob.clear()
            self.set_line_mode(data[take:])


def chunked(data: bytes, draw: Any) -> list[bytes]:
    """``data`` cut at random places (possibly none, possibly every byte)."""
    cuts = sorted(draw(st.sets(st.integers(0, len(data)), max_size=len(data) + 1)))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


def line_for(delimiter: bytes, max_size: int = 40) -> st.SearchStrategy[bytes]:
    """Lines that, followed by ``delimiter``, contain it only at the end."""

    def clean(line: bytes) -> bytes:
        while (i := (line + delimiter).find(delimiter)) != len(line):
            line = line[:i] + line[i + 1 :]
        return line

    return st.binary(max_size=max_size).map(clean)


def deliver(proto: Protocol, chunks: list[bytes]) -> None:
    for chunk in chunks:
        proto.data_received(chunk)


@no_deadline
@given(st.data())
def test_lines_survive_any_chunking(data: st.DataObject) -> None:
    delimiter = data.draw(DELIMITERS)
    lines = data.draw(st.lists(line_for(delimiter)))
    proto = connect(Lines())
    proto.delimiter = delimiter
    deliver(proto, chunked(b"".join(line + delimiter for line in lines), data.draw))
    assert proto.lines == lines
    assert close_reason(proto) is None


@no_deadline
@given(st.data())
def test_strings_survive_any_chunking(data: st.DataObject) -> None:
    strings = data.draw(st.lists(st.binary(max_size=300)))
    proto = connect(Strings())
    deliver(proto, chunked(b"".join(struct.pack("!I", len(s)) + s for s in strings), data.draw))
    assert proto.strings == strings
    assert close_reason(proto) is None


RAW_OR_LINE = st.one_of(
    st.tuples(st.just("line"), line_for(b"\r\n").filter(lambda b: not b.startswith(b"LEN "))),
    st.tuples(st.just("raw"), st.binary(max_size=60)),
)


@no_deadline
@given(st.data())
def test_raw_mode_switches_at_any_point(data: st.DataObject) -> None:
    events = data.draw(st.lists(RAW_OR_LINE))
    stream = b"".join(
        body + b"\r\n" if kind == "line" else b"LEN %d\r\n" % len(body) + body
        for kind, body in events
    )
    proto = connect(Mixed())
    deliver(proto, chunked(stream, data.draw))
    assert proto.events == events


@no_deadline
@given(st.data())
def test_over_long_line_stops_delivery(data: st.DataObject) -> None:
    delimiter = data.draw(DELIMITERS)
    lines = data.draw(st.lists(line_for(delimiter, max_size=20)))
    terminated = data.draw(st.booleans())
    # An unterminated tail is known to be too long once it cannot be 20 bytes + part of a delimiter.
    shortest = 21 if terminated else 20 + len(delimiter)
    bad = b"x" * shortest + data.draw(line_for(delimiter))
    at = data.draw(st.integers(0, len(lines)))
    stream = b"".join(line + delimiter for line in lines[:at]) + bad
    if terminated:
        stream += delimiter + b"".join(line + delimiter for line in lines[at:])
    proto = connect(Lines())
    proto.delimiter, proto.max_length = delimiter, 20
    deliver(proto, chunked(stream, data.draw))
    assert proto.lines == lines[:at]
    assert isinstance(close_reason(proto), ProtocolViolation)


@no_deadline
@given(st.data())
def test_over_long_string_stops_delivery(data: st.DataObject) -> None:
    strings = data.draw(st.lists(st.binary(max_size=20)))
    at = data.draw(st.integers(0, len(strings)))
    bad = data.draw(st.binary(min_size=21, max_size=80))
    framed = [struct.pack("!I", len(s)) + s for s in [*strings[:at], bad, *strings[at:]]]
    proto = connect(Strings())
    proto.max_length = 20
    deliver(proto, chunked(b"".join(framed), data.draw))
    assert proto.strings == strings[:at]
    assert isinstance(close_reason(proto), ProtocolViolation)
