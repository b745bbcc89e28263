"""The decoder skips the walk over a frame whose C pass shows nothing to walk (issue 13).

The shortcut must never change an outcome: each body here is decoded with it and with the walk
forced, and both must give the same message or the same error, and the same resolve calls.
"""

from __future__ import annotations

import struct
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker import wire
from broker.messages import Answer, Call
from broker.wire import WireDecoder, encode


def _outcome(body: bytes, force_walk: bool, stream: bool = False, **limits: Any) -> tuple[Any, list[Any]]:
    calls: list[Any] = []

    def resolve(value: Any) -> Any:
        calls.append(value)
        return value

    decoder = WireDecoder(expect_hello=False, resolve=resolve, **limits)
    if force_walk:
        decoder._plain = lambda: False  # type: ignore[method-assign]
    try:
        if stream:
            decoder.receive_data(struct.pack(">I", len(body)) + body)
            result: Any = decoder.next_message()
        else:
            result = decoder.decode_body(body)
    except wire.WireError as exc:
        result = type(exc).__name__
    return result, calls


def _same(body: bytes, **limits: Any) -> Any:
    fast = _outcome(body, False, **limits)
    # Compared by repr: NaN is not equal to itself.
    assert repr(fast) == repr(_outcome(body, True, **limits)), body.hex()
    assert repr(fast) == repr(_outcome(body, False, stream=True, **limits)), body.hex()
    return fast[0]


def _nest(depth: int, inner: bytes = b"\x90") -> bytes:
    """``depth`` levels of arrays (the innermost ``inner``, itself a container)."""
    return b"\x91" * (depth - 1) + inner


def _answer(value: bytes) -> bytes:
    return b"\x93\x04\x01" + value


def _call(args: bytes, kwargs: bytes = b"\x80") -> bytes:
    return b"\x97\x03\x01\x00\xa1m" + args + kwargs + b"\x00"


@pytest.mark.parametrize("max_depth", [2, 3, 64, 256])
@pytest.mark.parametrize("inner", [b"\x90", b"\x80", b"\x91\x01", b"\x81\xa1k\x01"])
def test_depth_at_the_limit(max_depth: int, inner: bytes) -> None:
    # The answer's value is at level 2: a nest of max_depth - 1 levels fills the limit exactly.
    for extra, ok in ((-1, True), (0, True), (1, False)):
        body = _answer(_nest(max_depth - 1 + extra, inner)) if max_depth - 1 + extra >= 1 else None
        if body is None:
            continue
        outcome = _same(body, max_depth=max_depth)
        assert (outcome == "NestingTooDeep") is (not ok), (max_depth, extra)
        padded = _answer(b"\x92" + _nest(max_depth - 1 + extra - 1, inner) + b"\xc4\x40" + b"x" * 64) \
            if max_depth - 2 + extra >= 1 else None
        if padded is not None:
            _same(padded, max_depth=max_depth)


def test_depth_in_call_args_and_kwargs() -> None:
    for depth in (62, 63, 64, 65):
        inner = _nest(depth - 2)
        outcome = _same(_call(b"\x91" + inner))
        assert isinstance(outcome, Call) if depth <= 64 else outcome == "NestingTooDeep"
        _same(_call(b"\x90", b"\x81\xa1k" + inner))
        _same(_call(b"\x91" + inner, b"\x81\xa1k" + _nest(70)))


def test_deep_field_that_is_never_walked_keeps_its_error() -> None:
    # A decref's object_id is not walked: a deep array there is a bad field, not a deep one.
    assert _same(b"\x93\x07" + _nest(100) + b"\x01") == "MalformedMessage"
    assert _same(b"\x97\x03" + _nest(100) + b"\x00\xa1m\x90\x80\x00") == "MalformedMessage"


TIMESTAMPS = [
    b"\xd6\xff" + b"\x00" * 4,
    b"\xd7\xff" + b"\x00" * 8,
    b"\xc7\x0c\xff" + b"\x00" * 12,
    b"\xc7\x04\xff" + b"\x00" * 4,
    b"\xc8\x00\x08\xff" + b"\x00" * 8,
    b"\xc9\x00\x00\x00\x0c\xff" + b"\x00" * 12,
]


@pytest.mark.parametrize("stamp", TIMESTAMPS)
def test_timestamps_anywhere_are_unknown_ext_codes(stamp: bytes) -> None:
    assert msgpack.unpackb(stamp).__class__ is msgpack.Timestamp
    pad = b"\xc5\x20\x00" + b"\x00" * 0x2000  # a bin that makes the body a memoryview in streams
    assert _same(_answer(b"\x92" + pad + b"\x91" + stamp)) == "UnknownExtCode"
    assert _same(_answer(b"\x81\xa1k" + stamp)) == "UnknownExtCode"
    assert _same(_call(b"\x91\x91" + stamp)) == "UnknownExtCode"
    assert _same(_answer(b"\x81" + stamp + b"\x01")) == "MalformedMessage"  # as a map key
    # A timestamp is not walked in an unwalked field either way.
    assert _same(b"\x93\x07" + stamp + b"\x01") == "MalformedMessage"


def test_keys_other_than_str_still_walked() -> None:
    for key in (b"\x01", b"\xc0", b"\xc3", b"\xcb" + struct.pack(">d", 1.5), b"\xc4\x01k"):
        assert isinstance(_same(_answer(b"\x91\x81" + key + b"\x01")), Answer)
    for key in (b"\x90", b"\x80", b"\xd4\x01\x05", b"\xd4\x63\x05"):
        assert _same(_answer(b"\x91\x81" + key + b"\x01")) == "MalformedMessage"
    # The first non-str key comes after a limit is broken: the C pass's error still wins.
    assert _same(_answer(b"\x92\xdc\x00\x05" + b"\x01" * 5 + b"\x81\x01\x01"), max_container_length=4) \
        == "ContainerTooLong"
    assert _same(_answer(b"\x92\x81\x01\x01\xc1")) == "MalformedMessage"


def test_exts_are_walked() -> None:
    ref = b"\xd4\x01\x05"
    assert isinstance(_same(_answer(b"\x92" + ref + _nest(5))), Answer)
    assert _same(_answer(b"\x92" + ref + _nest(70))) == "NestingTooDeep"
    assert _same(_answer(b"\x92" + b"\xd4\x09\x05" + _nest(70))) == "UnknownExtCode"


def test_the_depth_checker_is_reused_and_renewed() -> None:
    decoder = WireDecoder(expect_hello=False)
    good = encode(Answer(1, [{"a": [1, [2]]} for _ in range(30)]))[4:]
    bad = _answer(b"\x92" + b"\xc4\x40" + b"x" * 64 + _nest(64))
    for _ in range(3):
        for _ in range(5):
            assert decoder.decode_body(good).value[0] == {"a": [1, [2]]}  # type: ignore[union-attr]
        checker = decoder._depth_checker
        assert checker is not None
        with pytest.raises(wire.NestingTooDeep):
            decoder.decode_body(bad)
        assert decoder._depth_checker is not checker
    big = encode(Answer(1, [[i, "x" * 8] for i in range(10_000)]))[4:]
    assert len(decoder.decode_body(big).value) == 10_000  # type: ignore[union-attr]
    assert decoder._depth_checker is None  # dropped: it held a big body


scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(), st.text(max_size=4),
                    st.binary(max_size=4))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(st.text(max_size=3), st.integers(0, 3)), inner, max_size=3)),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(values, st.integers(2, 8))
def test_same_as_the_walk(value: Any, max_depth: int) -> None:
    body = msgpack.packb([4, 1, value], use_bin_type=True)
    _same(body, max_depth=max_depth)
    _same(body + b"", max_depth=max_depth, max_items_per_frame=8, max_containers_per_frame=4)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=40), st.integers(2, 6))
def test_same_as_the_walk_on_noise(tail: bytes, max_depth: int) -> None:
    _same(b"\x93\x04\x01" + tail, max_depth=max_depth)
    _same(b"\x92\x04" + tail, max_depth=max_depth)
