"""Frames carrying ext values (refs, copies, failures) decode without the Python walk (issue 13).

``WireDecoder._decoded_in_c`` puts each ext value's wire value in place by a second C pass
wherever the walk would have done nothing else, and leaves every other frame to the walk. It must
never change an outcome: every body here is decoded both ways (the walk forced by replacing that
method) and must give the same message or the same error and message, and the same resolve calls
in the same order, refusals included. Where the C path should be taken, the tests check it was.
Cost is checked without clocks: by the Python function calls one decode makes (``sys.setprofile``)
and the memory it allocates (``tracemalloc``).
"""

from __future__ import annotations

import struct
import subprocess
import sys
import textwrap
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgpack
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from broker import wire
from broker.messages import Answer, Call, CopyState, ExportedRef, FailureInfo, ReturnedRef
from broker.wire import WireDecoder, encode

REF = b"\xd4\x01\x05"  # fixext 1: a sender ref to object 5


@contextmanager
def short_bodies_in_c() -> Iterator[None]:
    """Let _decoded_in_c take bodies of any length (it leaves the shortest to the walk)."""
    saved = wire._IN_C_FROM
    wire._IN_C_FROM = 0  # type: ignore[misc]
    try:
        yield
    finally:
        wire._IN_C_FROM = saved  # type: ignore[misc]


def _resolve_into(calls: list[Any]) -> Any:
    """A resolve hook that records each value, refuses odd ReturnedRefs and raises for copies
    named "boom" (an error of the hook's own, which must propagate unchanged)."""

    def resolve(value: Any) -> Any:
        calls.append(value)
        if type(value) is ReturnedRef and value.object_id % 2:
            raise wire.Refused(LookupError(f"object {value.object_id} is not ours"))
        if type(value) is CopyState and value.type_name == "boom":
            raise RuntimeError("the copy's constructor failed")
        return ("resolved", value)

    return resolve


def _outcome(body: bytes, in_c: bool, resolve: bool = True, **limits: Any) -> tuple[str, str, bool]:
    """(result or error, resolve calls, whether the C path was taken), as reprs."""
    calls: list[Any] = []
    decoder = WireDecoder(expect_hello=False, resolve=_resolve_into(calls) if resolve else None, **limits)
    taken: list[bool] = []
    if in_c:
        real = decoder._decoded_in_c

        def spy(fields: list[Any], unwalked: tuple[int, ...]) -> Any:
            try:
                redone = real(fields, unwalked)
            except BaseException:  # only the resolve hook's own errors escape it
                taken.append(True)
                raise
            taken.append(redone is not None)
            return redone

        decoder._decoded_in_c = spy  # type: ignore[method-assign]
    else:
        decoder._decoded_in_c = lambda fields, unwalked: None  # type: ignore[method-assign]
    try:
        result: Any = decoder.decode_body(body)
    except wire.MessageRefused as exc:
        result = ("MessageRefused", exc.message, repr(exc.reason))
    except Exception as exc:  # protocol errors, and the hook's own
        result = (type(exc).__name__, str(exc))
    return repr(result), repr(calls), any(taken)


def _same(body: bytes, resolve: bool = True, **limits: Any) -> tuple[str, bool]:
    """Decode ``body`` both ways; assert the same outcome. Returns it and whether C was taken."""
    fast = _outcome(body, True, resolve, **limits)
    walked = _outcome(body, False, resolve, **limits)
    assert fast[:2] == walked[:2], body.hex()
    return fast[0], fast[2]


def _answer(value: bytes) -> bytes:
    return b"\x93\x04\x01" + value


def _call(args: bytes, kwargs: bytes = b"\x80") -> bytes:
    return b"\x97\x03\x01\x00\xa1m" + args + kwargs + b"\x00"


def _ext(code: int, payload: bytes) -> bytes:
    if len(payload) < 256:
        return b"\xc7" + bytes([len(payload), code]) + payload
    if len(payload) < 65536:
        return b"\xc8" + struct.pack(">HB", len(payload), code) + payload
    return b"\xc9" + struct.pack(">IB", len(payload), code) + payload


def _copy(name: str, state: bytes) -> bytes:
    return _ext(3, b"\x92" + msgpack.packb(name) + state)


def _nest(depth: int, inner: bytes) -> bytes:
    """``inner`` inside ``depth`` arrays."""
    return b"\x91" * depth + inner


# -- equivalence ----------------------------------------------------------------------------

ids = st.one_of(st.integers(0, 127), st.integers(0, 2**63 - 1))
failures = st.builds(
    FailureInfo, st.sampled_from(["failed", "invalid"]), st.text(max_size=5), st.text(max_size=5),
    st.none() | st.text(max_size=5),
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(), st.text(max_size=4),
                    st.binary(max_size=4))


def _values(keys: Any, leaves: Any) -> Any:
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(keys, inner, max_size=3),
            st.builds(CopyState, st.sampled_from(["P", "boom", "a-longer-type-name"]), inner),
        ),
        max_leaves=25,
    )


any_values = _values(
    st.one_of(st.text(max_size=3), st.integers(0, 3), st.binary(max_size=2)),
    scalars | st.builds(ExportedRef, ids) | st.builds(ReturnedRef, ids) | failures,
)


def _bodies(values: Any) -> Any:
    return st.one_of(
        st.builds(lambda v: encode(Answer(1, [v]))[4:], values),
        st.builds(lambda a, k: encode(Call(7, 3, "m", a, k, 0))[4:], st.lists(values, max_size=4),
                  st.dictionaries(st.text(max_size=3), values, max_size=3)),
    )


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_bodies(any_values), st.sampled_from([{}, {"max_depth": 5}, {"max_depth": 9},
                                             {"max_ext_values_per_frame": 6, "max_items_per_frame": 40}]))
def test_same_as_the_walk(body: bytes, limits: dict[str, Any]) -> None:
    with short_bodies_in_c():
        _same(body, **limits)
        _same(body, resolve=False, **limits)
    _same(body, **limits)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_bodies(any_values), st.data())
def test_same_as_the_walk_on_damaged_frames(body: bytes, data: Any) -> None:
    """Bytes changed, cut or repeated: every kind of error, met in both paths' orders."""
    at = data.draw(st.integers(0, len(body) - 1))
    edit = data.draw(st.sampled_from(["byte", "cut", "repeat", "insert"]))
    if edit == "byte":
        body = body[:at] + bytes([data.draw(st.integers(0, 255))]) + body[at + 1:]
    elif edit == "cut":
        body = body[:at] + body[data.draw(st.integers(at, len(body))):]
    elif edit == "repeat":
        body = body[:at] + body[at:] * 2
    else:
        body = body[:at] + data.draw(st.sampled_from([REF, b"\xd4\x09\x01", b"\xd6\xff\0\0\0\0", b"\x81\xa1a",
                                                      b"\xc7\x00\x03", b"\xd4\x02\x03"])) + body[at:]
    with short_bodies_in_c():
        _same(body, max_depth=data.draw(st.sampled_from([3, 8, 64])))


# Values the C path must take: str keys, no 0xff byte (no timestamp look-alike), copies inside
# at most two copies, in walked fields.
plain_values = _values(
    st.text(max_size=3),
    st.one_of(st.none(), st.booleans(), st.integers(0, 200), st.text(max_size=4), st.builds(ExportedRef, ids),
              st.builds(ReturnedRef, ids), failures),
)


def _has_ext(value: Any) -> bool:
    if isinstance(value, list):
        return any(map(_has_ext, value))
    if isinstance(value, dict):
        return any(map(_has_ext, value.values()))
    return type(value) in (ExportedRef, ReturnedRef, CopyState, FailureInfo)


def _copy_nesting(value: Any) -> int:
    if isinstance(value, list):
        return max(map(_copy_nesting, value), default=0)
    if isinstance(value, dict):
        return max(map(_copy_nesting, value.values()), default=0)
    if isinstance(value, CopyState):
        return 1 + _copy_nesting(value.state)
    return 0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(st.lists(plain_values, min_size=1, max_size=4))
def test_frames_with_ext_values_take_the_c_path(args: list[Any]) -> None:
    assume(_has_ext(args) and _copy_nesting(args) <= wire._MAX_PAYLOAD_NESTING)
    body = encode(Call(7, 3, "m", args, {}, 0))[4:]
    assume(b"\xff" not in body)
    with short_bodies_in_c():
        outcome, taken = _same(body)
    if "Error" not in outcome:
        assert taken, body.hex()


# -- what stays with the walk, and limits on frames with ext values --------------------------


def test_refs_in_a_thousand_dicts_take_the_c_path_and_resolve_in_order() -> None:
    body = encode(Answer(1, [{"a": i, "r": ExportedRef(i), "s": [ReturnedRef(2 * i)]} for i in range(1000)]))[4:]
    outcome, taken = _same(body)
    assert taken and outcome.startswith("Answer(")
    calls: list[Any] = []
    WireDecoder(expect_hello=False, resolve=_resolve_into(calls)).decode_body(body)
    assert calls == [x for i in range(1000) for x in (ExportedRef(i), ReturnedRef(2 * i))]


def test_refusals_and_hook_errors_are_the_walks() -> None:
    refused = encode(Answer(1, [{"r": ReturnedRef(i)} for i in range(100)]))[4:]  # odd ids refused
    outcome, taken = _same(refused)
    assert taken and outcome.startswith("('MessageRefused'") and "object 1 is not ours" in outcome
    boom = encode(Answer(1, [ExportedRef(i) for i in range(50)] + [CopyState("boom", [ExportedRef(1)])]))[4:]
    outcome, taken = _same(boom)
    assert taken and "RuntimeError" in outcome


def test_depth_at_the_limit() -> None:
    for max_depth in (3, 8, 64, 256):
        pad = b"\xc4\xa0" + b"x" * 160  # makes the body long enough for the C path
        # The answer's value (a 2-array) is at level 2; a ref in it sits at level 3 + depth.
        for depth, ok in ((max_depth - 3, True), (max_depth - 2, False)):
            body = _answer(b"\x92" + pad + _nest(depth, REF))
            outcome, taken = _same(body, max_depth=max_depth)
            assert ("NestingTooDeep" not in outcome) is ok and taken is ok, (max_depth, depth)
        # A copy whose state is a map: the map is one level below the copy.
        state = b"\x81\xa1x\x01"
        for depth, ok in ((max_depth - 4, True), (max_depth - 3, False)):
            if depth < 0:
                continue
            body = _answer(b"\x92" + pad + _nest(depth, _copy("P", state)))
            outcome, taken = _same(body, max_depth=max_depth)
            assert ("NestingTooDeep" not in outcome) is ok and taken is ok, (max_depth, depth)


def test_ext_value_count_at_the_limit() -> None:
    limits: dict[str, Any] = {
        "max_ext_values_per_frame": 64, "max_items_per_frame": 1000, "max_containers_per_frame": 1000,
    }
    for count, ok in ((64, True), (65, False)):
        body = _answer(b"\xdc" + struct.pack(">H", count) + REF * count)
        outcome, taken = _same(body, **limits)
        assert ("FrameTooComplex" not in outcome) is ok and taken is ok
    # Refs inside copies count too, as the walk's decoding of the payloads counts them.
    copies = b"".join(_copy("P", b"\x94" + REF * 4) for _ in range(16))
    for extra, ok in ((b"", True), (REF, False)):
        body = _answer(b"\xdc" + struct.pack(">H", 16 + len(extra) // 3) + copies + extra)
        outcome, taken = _same(body, max_ext_values_per_frame=80, max_items_per_frame=1000,
                               max_containers_per_frame=1000)
        assert ("FrameTooComplex" not in outcome) is ok and taken is ok


def test_items_inside_copies_count_against_the_frame() -> None:
    state = b"\x9a" + b"\x01" * 10
    body = _answer(b"\xdc\x00\x08" + _copy("P", state) * 8)  # 8 + 8 * (2 + 10) items, and the body's 3
    for items, ok in ((3 + 8 + 8 * 12, True), (3 + 8 + 8 * 12 - 1, False)):
        outcome, _ = _same(body, max_items_per_frame=items, max_containers_per_frame=100,
                           max_ext_values_per_frame=100)
        assert ("FrameTooComplex" not in outcome) is ok


def test_payload_bytes_are_limited() -> None:
    inner_payload = b"\x92\xa1P\xc5\x10\x00" + b"x" * 4096
    outer_payload = b"\x92\xa1Q" + _ext(3, inner_payload)
    body = _answer(b"\x92" + _ext(3, outer_payload) + REF)
    total = len(outer_payload) + len(inner_payload) + 1  # the inner payload counts twice
    for size, ok in ((total, True), (total - 1, False)):
        outcome, _ = _same(body, max_frame_size=size)
        assert ("bytes of ext payloads" not in outcome) is ok, size


def test_what_goes_to_the_walk_keeps_its_outcome() -> None:
    pad = b"\xc4\xa0" + b"x" * 160
    cases = {
        "unknown code": _answer(b"\x92" + pad + b"\xd4\x09\x01"),
        "ref in a field never walked": b"\x97\x03" + REF + b"\x00\xa1m\x92" + pad + REF + b"\x80\x00",
        "timestamp": _answer(b"\x93" + pad + REF + b"\xd6\xff\0\0\0\0"),
        "int keys": _answer(b"\x92" + pad + b"\x81\x01" + REF),
        "ext as a key": _answer(b"\x92" + pad + b"\x81" + REF + b"\x01"),
        "bad ref payload": _answer(b"\x92" + pad + _ext(1, b"\x91\x01")),
        "negative id": _answer(b"\x92" + pad + b"\xd4\x01\xff"),
        "id too big": _answer(b"\x92" + pad + _ext(1, b"\xcf" + b"\xff" * 8)),
        "two ints in a ref": _answer(b"\x92" + pad + _ext(1, b"\x01\x02")),
        "empty ref": _answer(b"\x92" + pad + _ext(2, b"")),
        "bad copy": _answer(b"\x92" + pad + _ext(3, b"\x91\xa1P")),
        "copy with int keys": _answer(b"\x92" + pad + _copy("P", b"\x81\x01\x01")),
        "copies nested 3 deep": _answer(b"\x92" + pad + _copy("A", _copy("B", _copy("C", REF)))),
        "bad failure": _answer(b"\x92" + pad + _ext(4, b"\x94\xa4nope\xa0\xa0\xc0")),
        "failure holding a ref": _answer(b"\x92" + pad + _ext(4, b"\x94\xa6failed" + REF + b"\xa0\xc0")),
    }
    for name, body in cases.items():
        outcome, taken = _same(body)
        assert not taken, name
    outcome, taken = _same(_answer(b"\x92" + pad + _copy("A", _copy("B", REF))))
    assert taken and "Error" not in outcome


def test_a_ref_in_a_replaced_map_entry_is_never_resolved() -> None:
    """{"a": ref, "a": 1} keeps the last entry: the walk never sees the ref, so neither may
    resolve, nor a refusal of it count (CPython's reference counts show the C path the loss)."""
    pad = b"\xc4\xa0" + b"x" * 160
    lost = b"\x82\xa1a\xd4\x02\x03\xa1a\x01"  # ReturnedRef(3), which the resolve hook refuses
    for body in (_answer(b"\x93" + pad + REF + lost), _answer(b"\x92" + pad + _copy("P", b"\x92" + REF + lost))):
        outcome, taken = _same(body)
        assert not taken and "MessageRefused" not in outcome


def test_copies_nested_deep_do_not_nest_c_parses() -> None:
    """Each copy decoded from inside another's ext hook keeps msgpack's parse stack (~40 KiB)
    on the C stack: copies a few hundred deep must go to the walk, even on a small thread stack."""
    script = textwrap.dedent(
        """
        import threading
        from broker import wire
        body = b"\\x01"
        for _ in range(300):
            body = b"\\xc9" + (len(body) + 3).to_bytes(4, "big") + b"\\x03\\x92\\xa1P" + body
        body = b"\\x93\\x04\\x01\\x92" + b"\\xc4\\xa0" + b"x" * 160 + body
        result = []
        def decode():
            try:
                wire.WireDecoder(expect_hello=False, max_depth=256).decode_body(body)
            except wire.NestingTooDeep as exc:
                result.append(type(exc).__name__)
        threading.stack_size(512 * 1024)
        thread = threading.Thread(target=decode)
        thread.start()
        thread.join()
        print(result)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "['NestingTooDeep']", done.stderr


# -- cost: linear, and no Python visit per container -----------------------------------------


def _python_calls(decoder: WireDecoder, body: bytes) -> int:
    """Function calls one decode makes: of the broker's Python functions, and of C functions
    from them (not of a gc callback some test plugin may have installed)."""
    calls = 0

    def count(frame: Any, event: str, arg: Any) -> None:
        nonlocal calls
        if event in ("call", "c_call") and "/broker/" in frame.f_code.co_filename:
            calls += 1

    sys.setprofile(count)
    try:
        decoder.decode_body(body)
    except wire.RemoteProtocolError:
        pass
    finally:
        sys.setprofile(None)
    return calls


def test_containers_cost_no_python_calls() -> None:
    body = _answer(b"\x92" + REF + b"\xdc\x4e\x20" + b"\x91\x90" * 20_000)  # 40,000 arrays, one ref
    limits: dict[str, Any] = {"max_containers_per_frame": 50_000}
    walked = WireDecoder(expect_hello=False, **limits)
    walked._decoded_in_c = lambda fields, unwalked: None  # type: ignore[method-assign]
    assert _python_calls(walked, body) > 40_000  # the walk visits each
    assert _python_calls(WireDecoder(expect_hello=False, **limits), body) < 100


def test_cost_is_linear_in_the_ext_values() -> None:
    def frame(n: int) -> bytes:
        return encode(Answer(1, [{"a": [i % 100], "r": ExportedRef(i % 100)} for i in range(n)]))[4:]

    decoder = WireDecoder(expect_hello=False, resolve=lambda value: value)
    small, big = _python_calls(decoder, frame(1000)), _python_calls(decoder, frame(2000))
    assert len(frame(2000)) <= decoder._count_above  # no per-frame counting hooks (PROTOCOL.md §8.2)
    assert big <= 2 * small + 50
    assert small < 6 * 1000  # a few calls per ref: noting it, building it, placing it, resolving it


def test_hostile_frames_with_refs_are_refused_early() -> None:
    deep = _answer((b"\x92" + REF) * 200_000 + b"\xc0")  # msgpack stops at 1,024 levels
    long = _answer(b"\xdd" + struct.pack(">I", 10**6) + REF * 10**6)  # over the ext-value limit
    for body, error in ((deep, wire.NestingTooDeep), (long, wire.FrameTooComplex)):
        decoder = WireDecoder(expect_hello=False)
        try:
            decoder.decode_body(body)
        except error:
            pass
        else:
            raise AssertionError(f"{error.__name__} not raised")
        assert _python_calls(WireDecoder(expect_hello=False), body) < 3 * wire.DEFAULT_MAX_EXT_VALUES_PER_FRAME


def test_nested_copies_allocate_within_the_payload_limit() -> None:
    """Each nested payload is a copy of the rest of the frame; their total is limited by
    max_frame_size (§8.2), so memory stays proportional to it, however deep they go."""
    body = b"\xc5\xff\xff" + b"x" * 0xFFFF
    for name in range(200):
        body = _copy(str(name), body)
    body = _answer(b"\x91" + body)
    limit = 1 << 20
    tracemalloc.start()
    try:
        outcome, _ = _same(body, max_frame_size=limit, max_depth=256)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "FrameTooComplex" in outcome
    assert peak < 8 * limit
