"""Property tests of the wire codec: round trips, garbage in, and arbitrary read boundaries."""

from __future__ import annotations

import math
import struct
from typing import Any

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.messages import (
    FAILURE_KINDS,
    GOODBYE_KINDS,
    MAX_ID,
    Answer,
    Call,
    Cancel,
    CopyState,
    Decref,
    Error,
    ExportedRef,
    FailureInfo,
    Goodbye,
    Hello,
    ReturnedRef,
)
from broker.wire import CLOSED, NEED_DATA, WireDecoder, WireEncoder, WireError, decode, encode

ids = st.integers(0, MAX_ID)
small_ids = st.integers(0, 1000)
names = st.text(min_size=1, max_size=20)
failures = st.builds(
    FailureInfo,
    st.sampled_from(sorted(FAILURE_KINDS)),
    st.text(max_size=30),
    st.text(max_size=30),
    st.none() | st.text(max_size=50),
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(1 << 63), (1 << 64) - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | st.binary(max_size=30)
)
# Keys: scalars that stay distinct in a dict (1, 1.0 and True would collapse into one key).
keys = st.none() | st.integers(-1000, 1000) | st.text(max_size=10) | st.binary(max_size=10)
values = st.recursive(
    scalars | st.builds(ExportedRef, ids) | st.builds(ReturnedRef, ids) | failures,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(keys, inner, max_size=5)
        | st.builds(CopyState, names, inner)
    ),
    max_leaves=20,
)
messages = st.one_of(
    st.builds(Hello, st.just(1), st.integers(1, (1 << 32) - 1), st.integers(1, 1000),
              st.integers(1, (1 << 32) - 1), st.lists(st.text(max_size=10), max_size=3)),  # fmt: skip
    st.builds(Goodbye, st.sampled_from(sorted(GOODBYE_KINDS)), st.text(max_size=30)),
    st.builds(
        Call,
        ids,
        ids,
        names,
        st.lists(values, max_size=4),
        st.dictionaries(st.text(max_size=10), values, max_size=4),
        st.integers(0, (1 << 32) - 1),
    ),
    st.builds(Answer, ids, values),
    st.builds(Error, ids, failures),
    st.builds(Cancel, ids),
    st.builds(Decref, st.integers(1, MAX_ID), st.integers(1, MAX_ID)),
)


def _decode_one(frame: bytes, message: Any) -> Any:
    return decode(frame, expect_hello=isinstance(message, Hello))


@given(messages)
def test_every_valid_message_round_trips(message: Any) -> None:
    frame = encode(message)
    decoded = _decode_one(frame, message)
    assert decoded == message
    assert encode(decoded) == frame  # equal *and* byte-identical: no True/1 or -0.0/0.0 slips


@given(st.binary(max_size=200))
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_random_bytes_raise_only_codec_errors(data: bytes) -> None:
    for expect_hello in (False, True):
        decoder = WireDecoder(expect_hello=expect_hello, max_depth=8, max_container_length=16)
        try:
            decoder.receive_data(data)
            decoder.receive_data(b"")
            while decoder.next_message() is not CLOSED:
                pass
        except WireError:
            pass


@given(st.binary(max_size=200))
def test_random_bodies_raise_only_codec_errors(body: bytes) -> None:
    try:
        decode(struct.pack(">I", len(body)) + body, max_depth=8, max_container_length=16)
    except WireError:
        pass


# Random msgpack documents (not just random bytes) reach deeper into the message decoders.
documents = st.recursive(
    scalars
    | st.builds(msgpack.ExtType, st.integers(0, 8), st.binary(max_size=10))
    | st.builds(msgpack.ExtType, st.integers(0, 8), scalars.map(msgpack.packb))
    | st.builds(msgpack.ExtType, st.integers(3, 4), st.lists(scalars, max_size=5).map(msgpack.packb))
    | st.builds(msgpack.Timestamp, st.integers(0, 1 << 32)),
    lambda inner: st.lists(inner, max_size=8) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=15,
)


@given(st.integers(0, 10), documents)
def test_random_msgpack_bodies_raise_only_codec_errors(mtype: int, rest: Any) -> None:
    fields = [mtype, *rest] if isinstance(rest, list) else [mtype, rest]
    body = msgpack.packb(fields, use_bin_type=True)
    try:
        decode(struct.pack(">I", len(body)) + body)
    except WireError:
        pass


@given(st.lists(messages.filter(lambda m: not isinstance(m, Hello)), max_size=8), st.data())
def test_any_split_decodes_the_same(batch: list[Any], data: st.DataObject) -> None:
    stream = WireEncoder().encode_all(batch)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)])]
    decoder = WireDecoder(expect_hello=False)
    out: list[Any] = []
    use_iterator = data.draw(st.booleans())
    for piece in pieces:
        if piece:
            decoder.receive_data(piece)
        if use_iterator:
            out.extend(decoder.messages())
        else:
            while (message := decoder.next_message()) is not NEED_DATA:
                out.append(message)
    decoder.receive_data(b"")
    assert decoder.next_message() is CLOSED
    assert out == batch


@given(st.floats())
def test_floats_keep_every_bit(x: float) -> None:
    (y,) = decode(encode(Answer(1, [x]))).value  # type: ignore[union-attr]
    assert struct.pack(">d", x) == struct.pack(">d", y) or (math.isnan(x) and math.isnan(y))
