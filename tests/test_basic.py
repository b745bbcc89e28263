"""Unit tests for net.basic's framing, over an in-memory transport.

The protocol under test is the pair's ``server`` end. Data is fed to it with ``data_received``
directly, so each test controls the chunking exactly; what it writes and how it closes are
observed through the ``client`` end after ``pump()``.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest

from net.basic import (
    Int8StringReceiver,
    Int16StringReceiver,
    Int32StringReceiver,
    IntNStringReceiver,
    LineReceiver,
)
from net.error import ConnectionDone, ProtocolViolation
from net.protocol import Protocol
from net.testing import Pump, connect_protocols



class Lines(LineReceiver):
    """Records lines, raw data and the close reason."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.raw: list[bytes] = []
        self.reason: Any = None

    def line_received(self, line: bytes) -> None:
        self.lines.append(line)

    def raw_data_received(self, data: bytes) -> None:
        self.raw.append(data)

    def connection_lost(self, reason: Any) -> None:
        self.reason = reason


class Strings(Int32StringReceiver):
    def __init__(self) -> None:
        self.strings: list[bytes] = []
        self.reason: Any = None

    def string_received(self, data: bytes) -> None:
        self.strings.append(data)

    def connection_lost(self, reason: Any) -> None:
        self.reason = reason


class Sink(Protocol):
    """The peer: collects what the protocol under test wrote."""

    def __init__(self) -> None:
        self.data = bytearray()

    def data_received(self, data: bytes) -> None:
        self.data += data


def lines_pair(proto: LineReceiver | None = None) -> Pump:
    return connect_protocols(proto if proto is not None else Lines(), Sink())


def feed(proto: Protocol, *chunks: bytes) -> None:
    for chunk in chunks:
        proto.data_received(chunk)


def violation(reason: Any) -> ProtocolViolation:
    assert reason is not None, "connection was not closed"
    assert isinstance(reason.value, ProtocolViolation), reason.value
    return reason.value


# --- LineReceiver: framing ---------------------------------------------------------------------


def test_lines_in_one_chunk() -> None:
    p = lines_pair()
    feed(p.server, b"one\r\ntwo\r\n\r\nthree\r\npartial")
    assert p.server.lines == [b"one", b"two", b"", b"three"]
    feed(p.server, b" line\r\n")
    assert p.server.lines[-1] == b"partial line"


def test_lines_byte_by_byte() -> None:
    p = lines_pair()
    data = b"hello\r\nworld\r\n"
    feed(p.server, *(data[i : i + 1] for i in range(len(data))))
    assert p.server.lines == [b"hello", b"world"]


def test_bare_cr_and_lf_are_not_delimiters() -> None:
    p = lines_pair()
    feed(p.server, b"a\rb\nc\r", b"\n")
    assert p.server.lines == [b"a\rb\nc"]


def test_delimiter_per_class() -> None:
    class NewlineLines(Lines):
        delimiter = b"\n"

    p = lines_pair(NewlineLines())
    feed(p.server, b"a\nb\r\n")
    assert p.server.lines == [b"a", b"b\r"]
    p.server.send_line(b"x")
    p.pump()
    assert p.client.data == b"x\n"


def test_multibyte_delimiter_split_across_chunks() -> None:
    proto = Lines()
    proto.delimiter = b"<END>"
    p = lines_pair(proto)
    feed(p.server, b"abc<E", b"N", b"D>de<END", b">")
    assert p.server.lines == [b"abc", b"de"]


def test_delimiter_changed_between_chunks() -> None:
    p = lines_pair()
    feed(p.server, b"a\nb")  # searched for b"\r\n": none
    p.server.delimiter = b"\n"
    feed(p.server, b"\n")
    assert p.server.lines == [b"a", b"b"]


def test_delimiter_changed_from_line_received() -> None:
    class Switch(Lines):
        def line_received(self, line: bytes) -> None:
            super().line_received(line)
            self.delimiter = b"\n"

    p = lines_pair(Switch())
    feed(p.server, b"first\r\nsecond\nthird\n")
    assert p.server.lines == [b"first", b"second", b"third"]


def test_send_line() -> None:
    p = lines_pair()
    p.server.send_line(b"hello")
    p.server.send_line(b"")
    p.pump()
    assert p.client.data == b"hello\r\n\r\n"


def test_many_small_lines_in_one_chunk() -> None:
    # Quadratic trimming or searching would make this take minutes rather than milliseconds.
    lines = [b"%08d" % i for i in range(100_000)]
    p = lines_pair()
    feed(p.server, b"\r\n".join(lines) + b"\r\n")
    assert p.server.lines == lines


def test_long_line_in_many_chunks() -> None:
    proto = Lines()
    proto.max_length = 1 << 20
    p = lines_pair(proto)
    line = bytes(range(256)).replace(b"\r", b"") * 2000
    feed(p.server, *(line[i : i + 100] for i in range(0, len(line), 100)), b"\r\n")
    assert p.server.lines == [line]


# --- LineReceiver: limits ----------------------------------------------------------------------


def small(max_length: int = 10) -> Lines:
    proto = Lines()
    proto.max_length = max_length
    return proto


def test_line_of_max_length_is_accepted() -> None:
    p = lines_pair(small())
    feed(p.server, b"x" * 10 + b"\r", b"\n")
    feed(p.server, b"y" * 10 + b"\r\n")
    p.pump()
    assert p.server.lines == [b"x" * 10, b"y" * 10]
    assert p.server.reason is None


def test_terminated_line_too_long_drops_connection() -> None:
    p = lines_pair(small())
    feed(p.server, b"ok\r\n" + b"x" * 11 + b"\r\nlater\r\n")
    feed(p.server, b"much later\r\n")
    p.pump()
    assert p.server.lines == [b"ok"]
    assert str(violation(p.server.reason)) == "line longer than 10 bytes"


def test_unterminated_line_too_long_drops_connection_without_waiting() -> None:
    p = lines_pair(small())
    feed(p.server, b"x" * 10 + b"\r")  # may yet be a line of 10
    p.pump()
    assert p.server.reason is None
    feed(p.server, b"x")  # may not
    p.pump()
    violation(p.server.reason)
    feed(p.server, b"\r\nlater\r\n")
    assert p.server.lines == []


def test_line_length_exceeded_override_can_carry_on() -> None:
    class Lenient(Lines):
        max_length = 3

        def line_length_exceeded(self, line: bytes) -> None:
            self.lines.append(b"TOO LONG: " + line)

    p = lines_pair(Lenient())
    feed(p.server, b"abcd\r\nabc\r\n")
    p.pump()
    assert p.server.lines == [b"TOO LONG: abcd", b"abc"]
    assert p.server.reason is None


# --- LineReceiver: modes -----------------------------------------------------------------------


class HeaderThenBody(Lines):
    """``LEN n`` announces n raw bytes; then back to lines."""

    expected = 0

    def line_received(self, line: bytes) -> None:
        super().line_received(line)
        if line.startswith(b"LEN "):
            self.expected = int(line[4:])
            self.set_raw_mode()

    def raw_data_received(self, data: bytes) -> None:
        body, rest = data[: self.expected], data[self.expected :]
        self.raw.append(body)
        self.expected -= len(body)
        if not self.expected:
            self.set_line_mode(rest)


def test_raw_mode_switched_mid_buffer() -> None:
    p = lines_pair(HeaderThenBody())
    feed(p.server, b"a\r\nLEN 5\r\n12\r\n4after\r\nb\r\n")
    assert p.server.lines == [b"a", b"LEN 5", b"after", b"b"]
    assert p.server.raw == [b"12\r\n4"]


@pytest.mark.parametrize("size", [1, 2, 3, 7])
def test_raw_mode_any_chunking(size: int) -> None:
    data = b"LEN 3\r\nxyzLEN 0\r\nLEN 2\r\n\r\n\r\nend\r\n"
    p = lines_pair(HeaderThenBody())
    feed(p.server, *(data[i : i + size] for i in range(0, len(data), size)))
    assert p.server.lines == [b"LEN 3", b"LEN 0", b"LEN 2", b"", b"end"]
    assert b"".join(p.server.raw) == b"xyz\r\n"


def test_set_raw_mode_outside_callbacks_delivers_the_buffer() -> None:
    p = lines_pair()
    feed(p.server, b"line\r\npart")
    p.server.set_raw_mode()
    assert p.server.raw == [b"part"]
    feed(p.server, b"more\r\n")
    assert p.server.raw == [b"part", b"more\r\n"]
    assert p.server.lines == [b"line"]


def test_set_line_mode_reprocesses_extra() -> None:
    p = lines_pair()
    p.server.set_raw_mode()
    feed(p.server, b"raw")
    p.server.set_line_mode(b"x\r\ny")
    assert p.server.lines == [b"x"]
    feed(p.server, b"z\r\n")
    assert p.server.lines == [b"x", b"yz"]
    assert p.server.raw == [b"raw"]


def test_clear_line_buffer_from_line_received() -> None:
    class Clear(Lines):
        cleared = b""

        def line_received(self, line: bytes) -> None:
            super().line_received(line)
            self.cleared = self.clear_line_buffer()

    p = lines_pair(Clear())
    feed(p.server, b"one\r\ntwo\r\nthr")
    assert p.server.lines == [b"one"]
    assert p.server.cleared == b"two\r\nthr"
    feed(p.server, b"four\r\n")
    assert p.server.lines == [b"one", b"four"]


def test_no_lines_after_protocol_closes() -> None:
    class Quit(Lines):
        def line_received(self, line: bytes) -> None:
            super().line_received(line)
            if line == b"QUIT":
                self.transport.lose_connection()

    p = lines_pair(Quit())
    feed(p.server, b"a\r\nQUIT\r\nb\r\n")
    feed(p.server, b"c\r\n")
    p.pump()
    assert p.server.lines == [b"a", b"QUIT"]
    assert isinstance(p.server.reason.value, ConnectionDone)


def test_reentrant_data_received() -> None:
    class Echo(Lines):
        def line_received(self, line: bytes) -> None:
            super().line_received(line)
            if line == b"inject":
                self.data_received(b"injected\r\n")

    p = lines_pair(Echo())
    feed(p.server, b"inject\r\nafter\r\n")
    assert p.server.lines == [b"inject", b"after", b"injected"]


def test_pause_and_resume_producing() -> None:
    class Pausing(Lines):
        def line_received(self, line: bytes) -> None:
            super().line_received(line)
            if line == b"pause":
                self.pause_producing()

    p = lines_pair(Pausing())
    feed(p.server, b"a\r\npause\r\nb\r\n")
    feed(p.server, b"c\r\n")
    assert p.server.lines == [b"a", b"pause"]
    p.server.resume_producing()
    assert p.server.lines == [b"a", b"pause", b"b", b"c"]


def test_line_received_must_be_overridden() -> None:
    p = connect_protocols(LineReceiver(), Sink())
    with pytest.raises(NotImplementedError):
        feed(p.server, b"x\r\n")


# --- Int32StringReceiver and friends -----------------------------------------------------------


def framed(*strings: bytes, fmt: str = "!I") -> bytes:
    return b"".join(struct.pack(fmt, len(s)) + s for s in strings)


def test_strings_in_one_chunk_and_byte_by_byte() -> None:
    data = framed(b"hello", b"", b"world" * 100)
    p = connect_protocols(Strings(), Sink())
    feed(p.server, data)
    feed(p.server, *(data[i : i + 1] for i in range(len(data))))
    assert p.server.strings == [b"hello", b"", b"world" * 100] * 2


def test_send_string_round_trip() -> None:
    p = connect_protocols(Strings(), Strings())
    p.server.send_string(b"abc")
    p.server.send_string(b"")
    p.pump()
    assert p.client.strings == [b"abc", b""]


def test_send_string_too_long_raises_locally() -> None:
    p = connect_protocols(Strings(), Sink())
    p.server.max_length = 3
    with pytest.raises(ValueError, match="4 bytes"):
        p.server.send_string(b"abcd")
    p.pump()
    assert p.client.data == b""
    assert p.server.reason is None


@pytest.mark.parametrize(
    ("cls", "fmt", "limit"), [(Int16StringReceiver, "!H", 65535), (Int8StringReceiver, "!B", 255)]
)
def test_shorter_prefixes(cls: type[IntNStringReceiver], fmt: str, limit: int) -> None:
    class Short(cls):  # type: ignore[valid-type,misc]
        def __init__(self) -> None:
            self.strings: list[bytes] = []

        def string_received(self, data: bytes) -> None:
            self.strings.append(data)

    p = connect_protocols(Short(), Short())
    p.server.send_string(b"x" * limit)
    p.pump()
    assert p.client.strings == [b"x" * limit]
    with pytest.raises(ValueError):
        p.server.send_string(b"x" * (limit + 1))
    feed(p.server, framed(b"ab", b"c", fmt=fmt))
    assert p.server.strings == [b"ab", b"c"]


def test_string_of_max_length_is_accepted() -> None:
    p = connect_protocols(Strings(), Sink())
    p.server.max_length = 5
    feed(p.server, framed(b"12345"))
    p.pump()
    assert p.server.strings == [b"12345"]
    assert p.server.reason is None


def test_length_over_limit_drops_before_the_body() -> None:
    p = connect_protocols(Strings(), Sink())
    p.server.max_length = 5
    feed(p.server, framed(b"ok"), struct.pack("!I", 6))  # the header alone is enough
    p.pump()
    assert str(violation(p.server.reason)) == "string of 6 bytes is longer than 5 bytes"
    feed(p.server, b"x" * 6 + framed(b"later"))
    assert p.server.strings == [b"ok"]
    assert not p.server._buffer  # the announced body was never buffered


def test_huge_length_is_refused_with_default_limit() -> None:
    p = connect_protocols(Strings(), Sink())
    feed(p.server, struct.pack("!I", 2**32 - 1))
    p.pump()
    violation(p.server.reason)


def test_no_strings_after_protocol_closes() -> None:
    class Quit(Strings):
        def string_received(self, data: bytes) -> None:
            super().string_received(data)
            self.transport.lose_connection()

    p = connect_protocols(Quit(), Sink())
    feed(p.server, framed(b"a", b"b"))
    p.pump()
    assert p.server.strings == [b"a"]
