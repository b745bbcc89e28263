"""WireDecoder's reused receive buffer (get_buffer / buffer_updated) and WireEncoder.encode_frame."""

from __future__ import annotations

import os
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.messages import Answer, Call, Cancel, Decref
from broker.wire import NEED_DATA, MessageTooLarge, TruncatedFrame, WireDecoder, WireEncoder, encode

MIB = 1024 * 1024

messages = st.one_of(
    st.builds(Cancel, st.integers(1, 2**31)),
    st.builds(Decref, st.integers(1, 2**31), st.integers(1, 1000)),
    st.builds(Answer, st.integers(1, 2**31), st.binary(max_size=20_000)),
    st.builds(Answer, st.integers(1, 2**31), st.lists(st.text(max_size=50), max_size=20)),
    st.builds(
        Call, st.integers(0, 100), st.integers(0, 100), st.text(min_size=1, max_size=20),
        st.lists(st.integers(-(2**63), 2**64 - 1), max_size=5),
        st.dictionaries(st.text(max_size=5), st.integers(-(2**63), 2**64 - 1), max_size=3),
        st.just(0),
    ),
)


def feed_lent(decoder: WireDecoder, data: bytes) -> None:
    """Deliver ``data`` the way a transport does: copied into the lent buffer, maybe partly."""
    while data:
        view = decoder.get_buffer(-1)
        n = min(len(view), len(data))
        view[:n] = data[:n]
        view.release()
        decoder.buffer_updated(n)
        data = data[n:]


@given(st.lists(messages, min_size=1, max_size=30), st.lists(st.integers(1, 5000), max_size=40),
       st.lists(st.booleans(), max_size=40))
def test_random_splits_decode_identically(msgs: list[Any], cuts: list[int], lent: list[bool]) -> None:
    stream = b"".join(encode(m) for m in msgs)
    decoder = WireDecoder(expect_hello=False)
    out: list[Any] = []
    pos = 0
    i = 0
    while pos < len(stream):
        size = cuts[i % len(cuts)] if cuts else len(stream)
        chunk = stream[pos : pos + size]
        if lent[i % len(lent)] if lent else True:
            feed_lent(decoder, chunk)
        else:
            decoder.receive_data(chunk)
        out.extend(decoder.messages())
        pos += size
        i += 1
    assert out == msgs
    assert decoder.buffered == 0
    decoder.receive_data(b"")
    assert decoder.messages() == []


def capacity(decoder: WireDecoder) -> int:
    """The size of the decoder's receive buffer (what it holds on to), via a lent view."""
    with decoder.get_buffer(-1) as view:
        size = len(view.obj)  # type: ignore[arg-type]
    decoder.buffer_updated(0)
    return size


def test_a_header_alone_does_not_make_room_for_its_frame() -> None:
    # A length header is a promise: the buffer grows with bytes received, not with the promise
    # (issue 12: 16 peers each announcing 16 MiB cost the server 256 MiB, held forever).
    decoder = WireDecoder(expect_hello=False)
    feed_lent(decoder, struct.pack(">I", 16 * MIB))  # the default limit: a legal frame
    assert decoder.next_message() is NEED_DATA
    assert capacity(decoder) < 256 * 1024
    for _ in range(20):  # trickled bytes: still only what arrived counts
        feed_lent(decoder, b"\x00" * 50)
        assert decoder.next_message() is NEED_DATA
        assert capacity(decoder) < 256 * 1024
    decoder = WireDecoder(expect_hello=False)  # the copying path likewise
    decoder.receive_data(struct.pack(">I", 16 * MIB) + b"\x00")
    assert decoder.next_message() is NEED_DATA and capacity(decoder) < 256 * 1024


def test_a_big_frame_grows_the_buffer_geometrically() -> None:
    blob = os.urandom(16 * MIB - 64)
    frame = encode(Answer(1, blob))
    decoder = WireDecoder(expect_hello=False)
    received = 0
    sizes = []
    copied = 0  # at most what was pending each time the buffer changed
    while received < len(frame):
        view = decoder.get_buffer(-1)  # and the peer fills every view offered
        buffer = (id(view.obj), len(view.obj))  # type: ignore[arg-type]
        if not sizes or sizes[-1] != buffer:
            sizes.append(buffer)
            copied += decoder.buffered
        assert buffer[1] <= 4 * received + 512 * 1024  # proportional to what arrived
        n = min(len(view), len(frame) - received)
        view[:n] = frame[received : received + n]
        view.release()
        decoder.buffer_updated(n)
        received += n
    assert decoder.messages() == [Answer(1, blob)]
    assert len(sizes) <= 16  # few steps (4 KiB → 16 MiB), not one per read
    assert copied <= 2 * len(frame)  # amortised O(n): each byte copied about once at most
    assert capacity(decoder) < MIB  # and once the frame is decoded it is not kept


def test_a_big_frame_is_not_retained_when_bytes_follow_it() -> None:
    blob = os.urandom(16 * MIB - 64)
    second = encode(Answer(2, b"after"))
    decoder = WireDecoder(expect_hello=False)
    feed_lent(decoder, encode(Answer(1, blob)) + second[:7])
    assert decoder.messages() == [Answer(1, blob)]
    assert capacity(decoder) < MIB  # idle now, a partial frame pending: 16 MiB given back
    feed_lent(decoder, second[7:])
    assert decoder.messages() == [Answer(2, b"after")]


def test_the_buffer_is_reused_across_frames() -> None:
    blob = os.urandom(MIB)
    frame = encode(Answer(1, blob))
    decoder = WireDecoder(expect_hello=False)
    owners = set()
    for _ in range(5):
        feed_lent(decoder, frame)
        with decoder.get_buffer(-1) as view:
            owners.add(id(view.obj))
        decoder.buffer_updated(0)
        assert decoder.messages() == [Answer(1, blob)]
    assert len(owners) == 1


def test_pending_bytes_move_to_the_front_only_when_needed() -> None:
    stream = b"".join(encode(Cancel(i)) for i in range(1, 20_001))
    decoder = WireDecoder(expect_hello=False)
    out = []
    for i in range(0, len(stream), 4099):  # a partial frame pending after almost every read
        feed_lent(decoder, stream[i : i + 4099])
        out.extend(decoder.messages())
        with decoder.get_buffer(-1) as view:
            assert len(view.obj) <= 64 * 1024  # type: ignore[arg-type]  # compacted, not grown
        decoder.buffer_updated(0)
    assert out == [Cancel(i) for i in range(1, 20_001)]


def test_a_view_kept_too_long_does_not_break_the_decoder() -> None:
    decoder = WireDecoder(expect_hello=False)
    kept = decoder.get_buffer(-1)
    decoder.buffer_updated(0)
    feed_lent(decoder, encode(Answer(1, os.urandom(2 * MIB))))  # grows: a new buffer
    assert len(decoder.messages()) == 1
    kept.release()


def test_huge_buffers_are_not_retained() -> None:
    blob = os.urandom(16 * MIB - 64)
    decoder = WireDecoder(expect_hello=False)
    feed_lent(decoder, encode(Answer(1, blob)))
    assert decoder.messages() == [Answer(1, blob)]
    with decoder.get_buffer(-1) as view:
        assert len(view) < MIB


def test_buffer_updated_checks_its_argument() -> None:
    decoder = WireDecoder(expect_hello=False)
    size = len(decoder.get_buffer(100))
    assert size >= 100
    with pytest.raises(ValueError):
        decoder.buffer_updated(size + 1)
    with pytest.raises(ValueError):
        decoder.buffer_updated(-1)


def test_end_of_stream_inside_a_lent_frame_is_truncation() -> None:
    decoder = WireDecoder(expect_hello=False)
    feed_lent(decoder, encode(Cancel(1))[:-1])
    decoder.receive_data(b"")
    with pytest.raises(TruncatedFrame):
        decoder.next_message()
    with pytest.raises(RuntimeError):
        decoder.get_buffer(-1)


def test_receive_data_accepts_any_buffer() -> None:
    frame = encode(Answer(3, os.urandom(10_000)))
    decoder = WireDecoder(expect_hello=False)
    decoder.receive_data(bytearray(frame[:5000]))
    decoder.receive_data(memoryview(frame)[5000:])
    assert decoder.messages() == [Answer(3, frame[-10_000:])]


# -- encode_frame -----------------------------------------------------------------------------


@given(messages)
def test_encode_frame_equals_encode(message: Any) -> None:
    assert bytes(WireEncoder().encode_frame(message)) == encode(message)


def test_encode_frame_reuses_its_buffer_once_it_is_free() -> None:
    encoder = WireEncoder()
    first = encoder.encode_frame(Answer(1, b"a" * MIB))
    assert isinstance(first, bytearray)
    kept = first
    second = encoder.encode_frame(Answer(2, b"b" * MIB))
    assert second is not kept and kept == encode(Answer(1, b"a" * MIB))  # still in use: untouched
    del first, kept
    ident = id(second)
    del second
    third = encoder.encode_frame(Answer(3, b"c" * (MIB - 100)))  # smaller: same buffer, trimmed
    assert id(third) == ident and third == encode(Answer(3, b"c" * (MIB - 100)))
    with memoryview(third) as view:  # an export (a transport sending it) counts as a reference
        fourth = encoder.encode_frame(Answer(4, b"d" * MIB))
        assert fourth is not third and view[-1:] == b"c"
    assert type(encoder.encode_frame(Cancel(1))) is bytes  # small frames: plain bytes


def test_encode_frame_respects_the_peer_limit() -> None:
    encoder = WireEncoder(max_frame_size=MIB)
    with pytest.raises(MessageTooLarge):
        encoder.encode_frame(Answer(1, b"x" * MIB))
    assert encoder.encode_frame(Answer(1, b"x" * 1000)) == encode(Answer(1, b"x" * 1000))
