"""LineOnlyReceiver: lines and nothing else, over the in-memory transport.

It shares LineReceiver's line parsing (delimiter, max_length, the violation on an over-long line)
but has no raw mode, so everything the peer sends is parsed as lines.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from net.basic import LineOnlyReceiver, LineReceiver
from net.error import ProtocolViolation
from net.protocol import Protocol
from net.testing import MemoryTransport, connect_protocols


class Lines(LineOnlyReceiver):
    def __init__(self, max_length: int | None = None) -> None:
        self.lines: list[bytes] = []
        if max_length is not None:
            self.max_length = max_length

    def line_received(self, line: bytes) -> None:
        self.lines.append(line)


class Sink(Protocol):
    def __init__(self) -> None:
        self.data = bytearray()

    def data_received(self, data: bytes) -> None:
        self.data += data


def connected(proto: Lines | None = None) -> Lines:
    proto = proto if proto is not None else Lines()
    proto.make_connection(MemoryTransport())
    return proto


def violation(proto: Protocol) -> str:
    transport: MemoryTransport = proto.transport
    assert transport.disconnecting, "the connection was not dropped"
    assert isinstance(transport.close_reason, ProtocolViolation), transport.close_reason
    return str(transport.close_reason)


def test_is_not_a_line_receiver() -> None:
    """No raw mode to switch into: the methods are not there at all."""
    assert not issubclass(LineOnlyReceiver, LineReceiver)
    for name in ("set_raw_mode", "set_line_mode", "raw_data_received", "line_mode"):
        assert not hasattr(LineOnlyReceiver, name), name


def test_lines_in_one_chunk_and_partial_tail() -> None:
    proto = connected()
    proto.data_received(b"one\r\ntwo\r\n\r\nthree\r\npartial")
    assert proto.lines == [b"one", b"two", b"", b"three"]
    proto.data_received(b" line\r\n")
    assert proto.lines[-1] == b"partial line"


def test_bare_cr_and_lf_are_not_delimiters() -> None:
    proto = connected()
    proto.data_received(b"a\rb\nc\r")
    proto.data_received(b"\n")
    assert proto.lines == [b"a\rb\nc"]


def test_delimiter_per_instance_and_send_line() -> None:
    proto = Lines()
    proto.delimiter = b"<END>"
    pump = connect_protocols(proto, Sink())
    for piece in (b"abc<E", b"N", b"D>de<END", b">"):
        proto.data_received(piece)
    assert proto.lines == [b"abc", b"de"]
    proto.send_line(b"hi")
    pump.pump()
    assert pump.client.data == b"hi<END>"


def test_many_small_lines_in_one_chunk() -> None:
    lines = [b"%08d" % i for i in range(100_000)]
    proto = connected()
    proto.data_received(b"\r\n".join(lines) + b"\r\n")
    assert proto.lines == lines


def test_line_of_max_length_is_accepted() -> None:
    proto = connected(Lines(max_length=10))
    proto.data_received(b"x" * 10 + b"\r\n")
    assert proto.lines == [b"x" * 10]
    assert not proto.transport.is_closing()


def test_terminated_line_too_long_drops_connection() -> None:
    proto = connected(Lines(max_length=10))
    proto.data_received(b"ok\r\n" + b"x" * 11 + b"\r\nlater\r\n")
    proto.data_received(b"much later\r\n")
    assert proto.lines == [b"ok"]
    assert violation(proto) == "line longer than 10 bytes"


def test_unterminated_line_too_long_drops_without_waiting() -> None:
    proto = connected(Lines(max_length=10))
    proto.data_received(b"x" * 10 + b"\r")  # may yet be a line of 10
    assert not proto.transport.is_closing()
    proto.data_received(b"x")
    assert violation(proto) == "line longer than 10 bytes"
    assert not proto._buffer


def test_line_length_exceeded_override_can_carry_on() -> None:
    class Lenient(Lines):
        def __init__(self) -> None:
            super().__init__(max_length=3)
            self.too_long: list[bytes] = []

        def line_length_exceeded(self, line: bytes) -> None:
            self.too_long.append(line)

    proto = connected(Lenient())
    proto.data_received(b"abcdef\r\nok\r\n")
    assert proto.lines == [b"ok"]
    assert proto.too_long == [b"abcdef"]
    assert not proto.transport.is_closing()


def test_hang_up_from_line_received_stops_delivery() -> None:
    class Once(Lines):
        def line_received(self, line: bytes) -> None:
            super().line_received(line)
            self.transport.lose_connection()

    proto = connected(Once())
    proto.data_received(b"a\r\nb\r\nc\r\n")
    assert proto.lines == [b"a"]


def test_pause_and_resume() -> None:
    class Pausing(Lines):
        def line_received(self, line: bytes) -> None:
            super().line_received(line)
            if line == b"pause":
                self.pause_producing()

    proto = connected(Pausing())
    proto.data_received(b"a\r\npause\r\nb\r\nc\r\n")
    assert proto.lines == [b"a", b"pause"]
    assert proto.transport.reading_paused
    proto.resume_producing()
    assert proto.lines == [b"a", b"pause", b"b", b"c"]
    assert not proto.transport.reading_paused


def test_clear_line_buffer() -> None:
    class Clearing(Lines):
        def line_received(self, line: bytes) -> None:
            super().line_received(line)
            self.cleared = self.clear_line_buffer()

    proto = connected(Clearing())
    proto.data_received(b"first\r\nsecond\r\nthird")
    assert proto.lines == [b"first"]
    assert proto.cleared == b"second\r\nthird"


def test_missing_line_received_is_a_clear_error() -> None:
    proto: Any = LineOnlyReceiver()
    with pytest.raises(NotImplementedError, match="LineOnlyReceiver must override line_received"):
        proto.data_received(b"x\r\n")


DELIMITERS = st.sampled_from([b"\r\n", b"\n", b"\x00", b"aa", b"<END>"])


@given(DELIMITERS, st.lists(st.binary(max_size=50), max_size=20), st.data())
def test_any_split_delivers_every_line_once(delimiter: bytes, items: list[bytes], data: Any) -> None:
    items = [item.replace(delimiter, b"") for item in items]
    items = [item for item in items if delimiter not in item]  # b"<E<END>ND>" -> b"<END>"
    # A line ending in part of the delimiter would merge with it (b"a" + b"aa"): not a valid item.
    items = [item for item in items if not any(
        item.endswith(delimiter[:k]) for k in range(1, len(delimiter)))]
    stream = b"".join(item + delimiter for item in items)
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(stream)), max_size=20))))
    proto = Lines()
    proto.delimiter = delimiter
    connected(proto)
    for a, b in zip([0, *cuts], [*cuts, len(stream)]):
        proto.data_received(stream[a:b])
    assert proto.lines == items
