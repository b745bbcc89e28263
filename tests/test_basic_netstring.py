"""NetstringReceiver: ``b"5:hello,"`` framing, its checks, and its limit.

Over the in-memory transport, so each test controls the chunking exactly. The property tests
compare the framer, fed a stream in random pieces, with a reference parser (a regular expression
over the whole stream): same strings, in order, and the same verdict on whether the stream is
broken. Every violation drops the connection with a ProtocolViolation that says what was wrong.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from net.basic import NetstringReceiver
from net.error import ProtocolViolation
from net.protocol import Protocol
from net.testing import MemoryTransport, connect_protocols


class Netstrings(NetstringReceiver):
    def __init__(self, max_length: int | None = None) -> None:
        self.strings: list[bytes] = []
        if max_length is not None:
            self.max_length = max_length

    def string_received(self, data: bytes) -> None:
        if self.transport is not None:
            assert not self.transport.is_closing(), "delivered after the connection was dropped"
        self.strings.append(data)


def connected(max_length: int | None = None) -> Netstrings:
    proto = Netstrings(max_length)
    proto.make_connection(MemoryTransport())
    return proto


def feed(proto: Protocol, *chunks: bytes) -> None:
    for chunk in chunks:
        proto.data_received(chunk)


def reason(proto: Protocol) -> BaseException | None:
    transport: MemoryTransport = proto.transport
    return transport.close_reason if transport.is_closing() else None


def violation(proto: Protocol) -> str:
    """The message of the ProtocolViolation the connection was dropped with."""
    transport: MemoryTransport = proto.transport
    assert transport.disconnecting, "the connection was not dropped"
    assert isinstance(transport.close_reason, ProtocolViolation), transport.close_reason
    return str(transport.close_reason)


def encode(*items: bytes) -> bytes:
    return b"".join(b"%d:%s," % (len(item), item) for item in items)


# -- framing ------------------------------------------------------------------------------------


def test_strings_in_one_chunk() -> None:
    proto = connected()
    feed(proto, b"5:hello,0:,1:,,3:a:b,2:")
    assert proto.strings == [b"hello", b"", b",", b"a:b"]
    feed(proto, b"xy,")
    assert proto.strings[-1] == b"xy"
    assert reason(proto) is None


def test_byte_by_byte() -> None:
    proto = connected()
    data = encode(b"hello", b"", b"12:,", b"x" * 300)
    feed(proto, *(data[i : i + 1] for i in range(len(data))))
    assert proto.strings == [b"hello", b"", b"12:,", b"x" * 300]


def test_many_small_strings_in_one_chunk() -> None:
    items = [b"%d" % i for i in range(100_000)]
    proto = connected()
    feed(proto, encode(*items))
    assert proto.strings == items


def test_send_string_round_trip() -> None:
    pump = connect_protocols(Netstrings(), Netstrings(), chunk_size=3)
    pump.server.send_string(b"hello")
    pump.server.send_string(b"")
    pump.server.send_string(b"1:,")
    pump.pump()
    assert pump.server.transport.value() == b"5:hello,0:,3:1:,,"
    assert pump.client.strings == [b"hello", b"", b"1:,"]


def test_send_string_over_max_length_raises() -> None:
    proto = connected(max_length=4)
    proto.send_string(b"four")
    with pytest.raises(ValueError, match="5 bytes is over the limit of 4"):
        proto.send_string(b"five!")
    assert proto.transport.value() == b"4:four,"


# -- checks: lengths, leading zeros, the comma ----------------------------------------------------


@pytest.mark.parametrize("data", [b":", b"-1:", b"+1:", b" 1:", b"1 :", b"a:", b"1a:", b"0x1:",
                                  "\u0661:".encode(), b"1.0:", b",", b"\r\n"])
def test_bad_length(data: bytes) -> None:
    proto = connected()
    feed(proto, b"2:ok," + data + b"5:later,")
    assert proto.strings == [b"ok"]
    message = violation(proto)
    assert "netstring length" in message
    assert "not a decimal number" in message or "missing" in message


def test_bad_length_is_refused_before_the_colon() -> None:
    """A header that can no longer become a length is refused at once, not when a colon comes."""
    proto = connected()
    feed(proto, b"12x")
    assert violation(proto) == "netstring length is not a decimal number: b'12x'"


@pytest.mark.parametrize("data", [b"00:,", b"01:a,", b"007:abcdefg,"])
def test_leading_zeros_are_refused(data: bytes) -> None:
    proto = connected()
    feed(proto, data)
    assert proto.strings == []
    assert "leading zero" in violation(proto)


def test_leading_zero_refused_on_the_second_digit() -> None:
    proto = connected()
    feed(proto, b"0")
    assert reason(proto) is None  # may yet be b"0:,"
    feed(proto, b"1")
    assert violation(proto) == "netstring length has a leading zero: b'01'"


def test_zero_length() -> None:
    proto = connected()
    feed(proto, b"0:", b",0:,")
    assert proto.strings == [b"", b""]


@pytest.mark.parametrize("after", [b"X", b";", b"0", b":", b"\x00"])
def test_missing_comma(after: bytes) -> None:
    proto = connected()
    feed(proto, b"3:abc")
    assert proto.strings == [] and reason(proto) is None  # the comma may be next
    feed(proto, after + b"2:ok,")
    assert proto.strings == []
    assert violation(proto) == f"netstring of 3 bytes is not followed by a comma (got {after!r})"


def test_body_longer_than_announced() -> None:
    proto = connected()
    feed(proto, b"3:abcd,")
    assert proto.strings == []
    assert "not followed by a comma (got b'd')" in violation(proto)


# -- max_length ---------------------------------------------------------------------------------


def test_string_of_max_length_is_accepted() -> None:
    proto = connected(max_length=100)
    feed(proto, encode(b"x" * 100))
    assert proto.strings == [b"x" * 100]
    assert reason(proto) is None


def test_over_max_length_refused_before_the_body() -> None:
    proto = connected(max_length=100)
    feed(proto, b"101:")
    assert violation(proto) == "netstring of 101 bytes is longer than 100 bytes"
    assert not proto._buffer  # nothing was kept


def test_too_many_digits_refused_without_waiting_for_the_colon() -> None:
    """Endless digits cannot make us buffer: one digit more than max_length has is enough."""
    proto = connected(max_length=99_999)
    feed(proto, b"99999")
    assert reason(proto) is None  # may yet be b"99999:"
    feed(proto, b"9" * 1_000_000)
    assert violation(proto) == (
        "netstring length of more than 5 digits is over the limit of 99999 bytes")
    assert not proto._buffer


def test_as_many_digits_but_over_the_limit() -> None:
    proto = connected(max_length=150)
    feed(proto, b"200")
    assert reason(proto) is None
    feed(proto, b":")
    assert violation(proto) == "netstring of 200 bytes is longer than 150 bytes"


def test_default_max_length() -> None:
    assert NetstringReceiver.max_length == 99_999
    proto = connected()
    feed(proto, b"100000:")
    assert "over the limit of 99999 bytes" in violation(proto)


def test_nothing_delivered_after_a_violation() -> None:
    proto = connected()
    feed(proto, encode(b"one") + b"x:" + encode(b"two"))
    feed(proto, encode(b"three"))
    assert proto.strings == [b"one"]


def test_netstring_error_override_can_keep_the_connection() -> None:
    class Lenient(Netstrings):
        def __init__(self) -> None:
            super().__init__()
            self.errors: list[str] = []

        def netstring_error(self, message: str) -> None:
            self.errors.append(message)

    proto = Lenient()
    proto.make_connection(MemoryTransport())
    feed(proto, b"2:ok,zz")  # the bad input is discarded...
    feed(proto, b"2:go,")  # ...so the next netstring is read afresh
    assert proto.strings == [b"ok", b"go"]
    assert proto.errors == ["netstring length is not a decimal number: b'zz'"]
    assert reason(proto) is None


def test_no_transport_raises_the_violation() -> None:
    proto = Netstrings()
    proto.data_received(b"2:ok,")
    assert proto.strings == [b"ok"]
    with pytest.raises(ProtocolViolation, match="leading zero"):
        proto.data_received(b"01:x,")


# -- properties ---------------------------------------------------------------------------------

_HEADER = re.compile(rb"(0|[1-9][0-9]*):")
_DIGITS = re.compile(rb"0|[1-9][0-9]*")


def reference(data: bytes, max_length: int) -> tuple[list[bytes], bool]:
    """The strings in ``data`` and whether it is broken, read as a whole: the specification."""
    strings: list[bytes] = []
    i = 0
    while i < len(data):
        match = _HEADER.match(data, i)
        if match is None:
            rest = data[i:]
            # Still a possible length prefix: digits, no leading zero, no more than the limit has.
            waiting = _DIGITS.fullmatch(rest) is not None and len(rest) <= len(str(max_length))
            return strings, not waiting
        length = int(match.group(1))
        if length > max_length:
            return strings, True
        end = match.end() + length
        if len(data) <= end:
            return strings, False
        if data[end] != ord(","):
            return strings, True
        strings.append(data[match.end() : end])
        i = end + 1
    return strings, False


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]


MAX_LENGTHS = st.sampled_from([0, 1, 9, 10, 99, 150, 99_999])
ITEMS = st.lists(st.binary(max_size=300), max_size=20)
CUTS = st.lists(st.integers(min_value=0), max_size=30)
# Garbage from the alphabet that matters, so headers, colons and commas collide often.
GARBAGE = st.binary(max_size=12).map(lambda b: bytes(b"0123456789:,x"[c % 13] for c in b))


def run_framer(pieces: list[bytes], max_length: int) -> tuple[list[bytes], bool]:
    proto = connected(max_length)
    for piece in pieces:
        proto.data_received(piece)
    broken = proto.transport.is_closing()
    if broken:
        assert isinstance(proto.transport.close_reason, ProtocolViolation)
    return proto.strings, broken


@given(ITEMS, CUTS)
def test_any_split_delivers_every_string_once(items: list[bytes], cuts: list[int]) -> None:
    data = encode(*items)
    assert run_framer(split(data, cuts), 99_999) == (items, False)


@given(st.lists(st.one_of(ITEMS.map(lambda i: encode(*i)), GARBAGE), max_size=6), CUTS, MAX_LENGTHS)
def test_any_stream_any_split_matches_the_reference(parts: list[bytes], cuts: list[int],
                                                    max_length: int) -> None:
    data = b"".join(parts)
    assert run_framer(split(data, cuts), max_length) == reference(data, max_length)


@given(ITEMS, st.integers(min_value=1, max_value=300), CUTS)
def test_max_length_boundary(items: list[bytes], max_length: int, cuts: list[int]) -> None:
    """Strings up to max_length pass; the first longer one drops the connection, in any split."""
    data = encode(*items)
    expected: list[bytes] = []
    for item in items:
        if len(item) > max_length:
            break
        expected.append(item)
    over = len(expected) < len(items)
    assert run_framer(split(data, cuts), max_length) == (expected, over)


@given(ITEMS, st.integers(min_value=1, max_value=5), st.integers(min_value=0, max_value=300), CUTS)
def test_leading_zeros_any_split(items: list[bytes], zeros: int, length: int, cuts: list[int]) -> None:
    data = encode(*items) + b"0" * zeros + b"%d:" % length + b"x" * length + b","
    assert run_framer(split(data, cuts), 99_999) == (items, True)


@given(ITEMS, st.binary(min_size=1, max_size=50), st.binary(min_size=1, max_size=1), CUTS)
def test_missing_comma_any_split(items: list[bytes], body: bytes, after: bytes, cuts: list[int]) -> None:
    if after == b",":
        after = b";"
    data = encode(*items) + b"%d:" % len(body) + body + after + encode(b"later")
    assert run_framer(split(data, cuts), 99_999) == (items, True)


BAD_HEADERS = st.binary(min_size=1, max_size=8).filter(lambda b: b":" not in b and not b.isdigit())


@given(ITEMS, BAD_HEADERS, CUTS)
def test_bad_length_any_split(items: list[bytes], header: bytes, cuts: list[int]) -> None:
    data = encode(*items) + header + b":" + encode(b"later")
    assert run_framer(split(data, cuts), 99_999) == (items, True) == reference(data, 99_999)
