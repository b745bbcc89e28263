"""Build ``wire.json``, the shared wire-format test vectors (Python and Java run the same file).

Run ``python tests/vectors/make_vectors.py`` after changing the wire format; ``tests/test_wire.py``
fails while the file and this script disagree. The JSON scheme is specified in
``docs/PROTOCOL.md`` ("Test vectors"); ``to_json`` / ``from_json`` below are its reference
implementation. Valid vectors are produced by our encoder and checked against hand-assembled
bytes where it matters (see ``_check_known_bytes``); invalid ones are assembled by hand.
"""

from __future__ import annotations

import json
import math
import struct
import sys
from pathlib import Path
from typing import Any

import msgpack

from broker.messages import (
    Answer,
    CacheRef,
    CacheRelease,
    CacheUpdate,
    Call,
    Cancel,
    CopyState,
    Decref,
    Decrefs,
    Error,
    ExportedRef,
    FailureInfo,
    Finish,
    Goodbye,
    Hello,
    Message,
    Ping,
    Pong,
    ReturnedRef,
    StreamCredit,
    StreamEnd,
    StreamItems,
    StreamRef,
)
from broker.wire import encode

__all__ = ["build", "to_json", "from_json", "value_to_json", "value_from_json", "write", "PATH"]

PATH = Path(__file__).with_name("wire.json")

# ---------------------------------------------------------------------------------------------
# JSON description of values and messages
# ---------------------------------------------------------------------------------------------


def _float_text(x: float) -> str:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return repr(x)


def value_to_json(v: Any) -> Any:
    """A decoded wire value as JSON (tags are one-member objects whose name starts with ``$``)."""
    t = type(v)
    if v is None or t is bool or t is int or t is str:
        return v
    if t is float:
        return {"$float": _float_text(v)}
    if t is bytes:
        return {"$bytes": v.hex()}
    if t is list or t is tuple:
        return [value_to_json(x) for x in v]
    if t is dict:
        if all(type(k) is str for k in v) and not (len(v) == 1 and next(iter(v)).startswith("$")):
            return {k: value_to_json(x) for k, x in v.items()}
        return {"$map": [[value_to_json(k), value_to_json(x)] for k, x in v.items()]}
    if t is ExportedRef:
        return {"$ref_sender": v.object_id}
    if t is ReturnedRef:
        return {"$ref_receiver": v.object_id}
    if t is CopyState:
        return {"$copy": [v.type_name, value_to_json(v.state)]}
    if t is FailureInfo:
        return {"$failure": [v.kind, v.type_name, v.message, v.traceback]}
    if t is CacheRef:  # "cache" (PROTOCOL.md §16): [id], or [id, type_name, state] the first time
        return {"$cache_ref": [v.cache_id, v.type_name, value_to_json(v.state)] if v.first else [v.cache_id]}
    if t is StreamRef:  # "streams" (PROTOCOL.md §17)
        return {"$stream": [v.stream_id, v.window_items, v.window_bytes]}
    raise TypeError(f"no JSON form for {t.__name__}")


def value_from_json(j: Any) -> Any:
    """The inverse of ``value_to_json``."""
    if isinstance(j, list):
        return [value_from_json(x) for x in j]
    if isinstance(j, dict):
        if len(j) == 1:
            ((tag, x),) = j.items()
            if tag.startswith("$"):
                if tag == "$float":
                    return float(x)
                if tag == "$bytes":
                    return bytes.fromhex(x)
                if tag == "$map":
                    return {value_from_json(k): value_from_json(y) for k, y in x}
                if tag == "$ref_sender":
                    return ExportedRef(x)
                if tag == "$ref_receiver":
                    return ReturnedRef(x)
                if tag == "$copy":
                    return CopyState(x[0], value_from_json(x[1]))
                if tag == "$failure":
                    return FailureInfo(*x)
                if tag == "$cache_ref":
                    return CacheRef(x[0]) if len(x) == 1 else CacheRef(x[0], x[1], value_from_json(x[2]))
                if tag == "$stream":
                    return StreamRef(*x)
                raise ValueError(f"unknown tag {tag}")
        return {k: value_from_json(x) for k, x in j.items()}
    return j


def to_json(m: Message) -> dict[str, Any]:
    """A message as JSON: ``{"type": name, field: value, ...}`` in spec field order."""
    if isinstance(m, Hello):
        return {
            "type": "hello",
            "version": m.version,
            "max_frame_size": m.max_frame_size,
            "max_depth": m.max_depth,
            "max_container_length": m.max_container_length,
            "features": list(m.features),
        }
    if isinstance(m, Goodbye):
        return {"type": "goodbye", "kind": m.kind, "message": m.message}
    if isinstance(m, Call):
        return {
            "type": "call",
            "request_id": m.request_id,
            "target": m.target,
            "method": m.method,
            "args": value_to_json(m.args),
            "kwargs": {k: value_to_json(v) for k, v in m.kwargs.items()},
            "flags": m.flags,
            **({} if m.options is None else {"options": value_to_json(m.options)}),  # §18, call-options.json
        }
    if isinstance(m, Answer):
        return {"type": "answer", "request_id": m.request_id, "value": value_to_json(m.value)}
    if isinstance(m, Error):
        f = m.failure
        return {
            "type": "error",
            "request_id": m.request_id,
            "failure": [f.kind, f.type_name, f.message, f.traceback],
        }
    if isinstance(m, Cancel):
        return {"type": "cancel", "request_id": m.request_id}
    if isinstance(m, Decref):
        return {"type": "decref", "object_id": m.object_id, "count": m.count}
    if isinstance(m, Decrefs):
        return {"type": "decrefs", "releases": [[i, n] for i, n in m.releases.items()]}
    if isinstance(m, Ping):
        return {"type": "ping", "nonce": m.nonce}
    if isinstance(m, Pong):
        return {"type": "pong", "nonce": m.nonce}
    if isinstance(m, Finish):  # "pipelining" (PROTOCOL.md §15)
        return {"type": "finish", "question_ids": list(m.question_ids)}
    if isinstance(m, CacheUpdate):
        return {
            "type": "cache_update",
            "cache_id": m.cache_id,
            "method": m.method,
            "args": value_to_json(m.args),
            "kwargs": {k: value_to_json(v) for k, v in m.kwargs.items()},
        }
    if isinstance(m, CacheRelease):
        return {"type": "cache_release", "cache_id": m.cache_id, "count": m.count}
    if isinstance(m, StreamItems):  # "streams" (PROTOCOL.md §17)
        return {"type": "stream_items", "stream_id": m.stream_id, "items": value_to_json(m.items)}
    if isinstance(m, StreamEnd):
        f = m.failure
        return {"type": "stream_end", "stream_id": m.stream_id,
                "failure": None if f is None else [f.kind, f.type_name, f.message, f.traceback]}
    if isinstance(m, StreamCredit):
        return {"type": "stream_credit", "stream_id": m.stream_id, "items": m.items, "bytes": m.nbytes}
    raise TypeError(f"not a message: {m!r}")


def from_json(j: dict[str, Any]) -> Message:
    """The inverse of ``to_json``."""
    kind = j["type"]
    if kind == "hello":
        limits = j["max_frame_size"], j["max_depth"], j["max_container_length"]
        return Hello(j["version"], *limits, j["features"])
    if kind == "goodbye":
        return Goodbye(j["kind"], j["message"])
    if kind == "call":
        kwargs = {k: value_from_json(v) for k, v in j["kwargs"].items()}
        args = value_from_json(j["args"])
        options = value_from_json(j["options"]) if "options" in j else None  # §18
        return Call(j["request_id"], j["target"], j["method"], args, kwargs, j["flags"], options)
    if kind == "answer":
        return Answer(j["request_id"], value_from_json(j["value"]))
    if kind == "error":
        return Error(j["request_id"], FailureInfo(*j["failure"]))
    if kind == "cancel":
        return Cancel(j["request_id"])
    if kind == "decref":
        return Decref(j["object_id"], j["count"])
    if kind == "decrefs":
        return Decrefs({i: n for i, n in j["releases"]})
    if kind == "ping":
        return Ping(j["nonce"])
    if kind == "pong":
        return Pong(j["nonce"])
    if kind == "finish":
        return Finish(j["question_ids"])
    if kind == "cache_update":
        kwargs = {k: value_from_json(v) for k, v in j["kwargs"].items()}
        return CacheUpdate(j["cache_id"], j["method"], value_from_json(j["args"]), kwargs)
    if kind == "cache_release":
        return CacheRelease(j["cache_id"], j["count"])
    if kind == "stream_items":
        return StreamItems(j["stream_id"], value_from_json(j["items"]))
    if kind == "stream_end":
        return StreamEnd(j["stream_id"], None if j["failure"] is None else FailureInfo(*j["failure"]))
    if kind == "stream_credit":
        return StreamCredit(j["stream_id"], j["items"], j["bytes"])
    raise ValueError(f"unknown message type {kind!r}")


# ---------------------------------------------------------------------------------------------
# The vectors
# ---------------------------------------------------------------------------------------------


def _frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def _pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)  # type: ignore[no-any-return]


def _ext(code: int, payload: Any) -> msgpack.ExtType:
    return msgpack.ExtType(code, _pack(payload))


def _valid(name: str, message: Message, **extra: Any) -> dict[str, Any]:
    return {"name": name, "hex": encode(message).hex(), "message": to_json(message), **extra}


def _noncanonical(name: str, frame: bytes, message: Message) -> dict[str, Any]:
    return {
        "name": name,
        "hex": frame.hex(),
        "message": to_json(message),
        "canonical_hex": encode(message).hex(),
    }


def _invalid(name: str, frame: bytes, error: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "hex": frame.hex(), "error": error, **extra}


def _bad(name: str, body: Any, error: str, **extra: Any) -> dict[str, Any]:
    """An invalid vector whose body is ``body`` packed as it is."""
    return _invalid(name, _frame(_pack(body)), error, **extra)


def _deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


def build() -> list[dict[str, Any]]:
    """Every vector, in file order."""
    fail = FailureInfo("failed", "builtins.ValueError", "bad value", None)
    v: list[dict[str, Any]] = [
        # --- handshake -----------------------------------------------------------------------
        _valid("hello", Hello(), handshake=True),
        _valid(
            "hello with features and small limits",
            Hello(1, 65536, 16, 1000, ["x-example"]),
            handshake=True,
        ),
        _bad(
            "hello with another version",
            [1, "pbroker", 2, 1 << 24, 64, 1 << 20, []],
            "VersionMismatch",
            handshake=True,
        ),
        _bad(
            "hello of a future version with more fields",
            [1, "pbroker", 7, 1 << 24, 64, 1 << 20, [], "more"],
            "VersionMismatch",
            handshake=True,
        ),
        _bad(
            "hello from another protocol",
            [1, "other", 1, 1 << 24, 64, 1 << 20, []],
            "HandshakeError",
            handshake=True,
        ),
        _bad(
            "hello with a missing field",
            [1, "pbroker", 1, 1 << 24, 64, 1 << 20],
            "HandshakeError",
            handshake=True,
        ),
        _bad(
            "hello with a zero limit",
            [1, "pbroker", 1, 0, 64, 1 << 20, []],
            "HandshakeError",
            handshake=True,
        ),
        _invalid("call before hello", encode(Call(1, 0, "m")), "HandshakeError", handshake=True),
        _valid("goodbye instead of hello", Goodbye("unimplemented", "version 2 only"), handshake=True),
        _invalid("hello after the handshake", encode(Hello()), "HandshakeError"),
        # --- goodbye -------------------------------------------------------------------------
        _valid("goodbye normal", Goodbye("normal", "server shutting down")),
        _valid("goodbye invalid", Goodbye("invalid", "frame of 99999999 bytes announced")),
        _bad("goodbye with unknown kind", [2, "bored", ""], "MalformedMessage"),
        # --- call ----------------------------------------------------------------------------
        _valid("call on bootstrap", Call(1, 0, "add", [1, 2], {}, 0)),
        _valid("call without answer", Call(0, 0, "notify", ["x"], {}, 1)),
        _valid("call with kwargs", Call(7, 3, "greet", ["ada"], {"greeting": "hi", "times": 2})),
        _valid("call with no args", Call(2, 0, "ping")),
        _valid(
            "call passing refs both ways",
            Call(9, 4, "register", [ExportedRef(12), ReturnedRef(4)], {"cb": ExportedRef(13)}),
        ),
        _valid("call with large ids", Call((1 << 63) - 1, (1 << 32) + 5, "m", [], {}, 0)),
        _bad("call with 5 fields", [3, 1, 0, "m", [], {}], "MalformedMessage"),
        _bad(
            "call with 7 fields", [3, 1, 0, "m", [], {}, 0, 0], "MalformedMessage"
        ),
        _bad(
            "call with a non-str kwargs key",
            [3, 1, 0, "m", [], {1: "x"}, 0],
            "MalformedMessage",
        ),
        _bad(
            "call with args as a map",
            [3, 1, 0, "m", {}, {}, 0],
            "MalformedMessage",
        ),
        _bad(
            "call with negative request id",
            [3, -1, 0, "m", [], {}, 0],
            "MalformedMessage",
        ),
        _bad(
            "call with request id above 2**63-1",
            [3, 1 << 63, 0, "m", [], {}, 0],
            "MalformedMessage",
        ),
        _bad(
            "call with bool request id",
            [3, True, 0, "m", [], {}, 0],
            "MalformedMessage",
        ),
        _bad(
            "call with empty method", [3, 1, 0, "", [], {}, 0], "MalformedMessage"
        ),
        _bad(
            "call with bin method", [3, 1, 0, b"m", [], {}, 0], "MalformedMessage"
        ),
        _bad(
            "call with negative flags", [3, 1, 0, "m", [], {}, -1], "MalformedMessage"
        ),
        # --- answer: every value type --------------------------------------------------------
        _valid("answer nil", Answer(1, None)),
        _valid("answer true", Answer(1, True)),
        _valid("answer false", Answer(1, False)),
        _valid(
            "answer ints",
            Answer(1, [0, 1, 127, 128, 255, 256, 65535, 65536, -1, -32, -33, -128, -129]),
        ),
        _valid(
            "answer int64 extremes",
            Answer(1, [(1 << 63) - 1, -(1 << 63), 1 << 32, -(1 << 31) - 1]),
        ),
        _valid("answer uint64 max", Answer(1, (1 << 64) - 1)),
        _valid("answer floats", Answer(1, [1.5, -0.0, 0.1, 1e300, -2.5e-310])),
        _valid("answer float infinities", Answer(1, [math.inf, -math.inf])),
        _valid("answer float nan", Answer(1, math.nan)),
        _valid("answer unicode", Answer(1, "héllo ☃ 日本 😀")),
        _valid("answer empty str", Answer(1, "")),
        _valid("answer long str", Answer(1, "x" * 300)),
        _valid("answer bytes", Answer(1, bytes(range(16)))),
        _valid("answer empty bytes", Answer(1, b"")),
        _valid("answer empty containers", Answer(1, [[], {}, ""])),
        _valid("answer nested", Answer(1, {"a": [1, {"b": [None, True]}], "c": {}})),
        _valid(
            "answer map with non-str keys",
            Answer(1, {1: "one", b"\x00": "bin", None: 0, 2.5: "f"}),
        ),
        _valid("answer map whose only key starts with $", Answer(1, {"$float": "not a float"})),
        _valid("answer sender ref", Answer(1, ExportedRef(5))),
        _valid("answer bootstrap ref", Answer(1, ExportedRef(0))),
        _valid("answer receiver ref", Answer(1, ReturnedRef(300))),
        _valid("answer ref with large id", Answer(1, ExportedRef((1 << 63) - 1))),
        _valid("answer copy", Answer(1, CopyState("example.Point", {"x": 1, "y": 2.0}))),
        _valid(
            "answer copy holding refs and a copy",
            Answer(
                1,
                CopyState(
                    "example.Team",
                    {
                        "lead": ExportedRef(8),
                        "mascot": CopyState("example.Pet", ["rex", ReturnedRef(2)]),
                    },
                ),
            ),
        ),
        _valid(
            "answer failure value",
            Answer(1, [fail, FailureInfo("overloaded", "", "busy", "tb\n")]),
        ),
        _valid(
            "answer refs in map values",
            Answer(1, {"a": ExportedRef(1), "b": [ReturnedRef(2)]}),
        ),
        # --- error, cancel, decref -----------------------------------------------------------
        _valid("error failed", Error(3, fail)),
        _valid(
            "error with traceback",
            Error(4, FailureInfo("failed", "builtins.ZeroDivisionError", "x / 0", "tb\n")),
        ),
        _valid(
            "error cancelled",
            Error(5, FailureInfo("cancelled", "", "cancelled by the caller")),
        ),
        _valid(
            "error invalid",
            Error(6, FailureInfo("invalid", "broker.NoSuchObject", "object 9")),
        ),
        _valid(
            "error unimplemented",
            Error(6, FailureInfo("unimplemented", "broker.NoSuchMethod", "m")),
        ),
        _bad(
            "error with unknown kind",
            [5, 1, "oops", "", "", None],
            "MalformedMessage",
        ),
        _bad(
            "error with int traceback",
            [5, 1, "failed", "", "", 5],
            "MalformedMessage",
        ),
        _valid("cancel", Cancel(11)),
        _valid("decref", Decref(5, 3)),
        _bad("decref of bootstrap", [7, 0, 1], "MalformedMessage"),
        _bad("decref with count 0", [7, 5, 0], "MalformedMessage"),
        _bad("cancel with 2 fields", [6, 1, 2], "MalformedMessage"),
        # --- non-canonical but valid encodings -----------------------------------------------
        _noncanonical(
            "answer with int in uint32 encoding",
            _frame(bytes.fromhex("93 04 ce00000001 ce00000007".replace(" ", ""))),
            Answer(1, 7),
        ),
        _noncanonical(
            "answer with float32",
            _frame(bytes.fromhex("930401ca3fc00000")),
            Answer(1, 1.5),
        ),
        _noncanonical(
            "answer with str8 for a short string",
            _frame(bytes.fromhex("930401d9026869")),
            Answer(1, "hi"),
        ),
        _noncanonical(
            "answer with ext8 for a ref",
            _frame(bytes.fromhex("930401c7010105")),
            Answer(1, ExportedRef(5)),
        ),
        # --- framing -------------------------------------------------------------------------
        _invalid("truncated body", encode(Answer(1, "hello"))[:-2], "TruncatedFrame"),
        _invalid("truncated header", bytes.fromhex("0000"), "TruncatedFrame"),
        _invalid("oversized length header", bytes.fromhex("ffffffff93040101"), "FrameTooLarge"),
        _bad(
            "frame above a small limit",
            [4, 1, "x" * 20],
            "FrameTooLarge",
            limits={"max_frame_size": 16},
        ),
        _valid("frame at a small limit", Answer(1, "x" * 11), limits={"max_frame_size": 16}),
        _invalid("empty frame", _frame(b""), "MalformedMessage"),
        _invalid(
            "trailing bytes in a frame",
            _frame(_pack([4, 1, 2]) + b"\x00"),
            "MalformedMessage",
        ),
        _invalid(
            "msgpack cut short inside a frame",
            _frame(_pack([4, 1, "abc"])[:-1]),
            "MalformedMessage",
        ),
        _invalid("reserved msgpack byte", _frame(bytes.fromhex("930401c1")), "MalformedMessage"),
        _invalid("invalid utf-8", _frame(bytes.fromhex("930401a2fffe")), "MalformedMessage"),
        # --- bodies --------------------------------------------------------------------------
        _bad("body is not an array", 4, "MalformedMessage"),
        _bad("body is an empty array", [], "MalformedMessage"),
        _bad("message type is a str", ["call"], "MalformedMessage"),
        _bad("message type is bool", [True, 1], "MalformedMessage"),
        _bad("message type 0", [0, 1], "UnknownMessageType"),
        _bad("unknown message type", [99, 1, 2], "UnknownMessageType"),
        _bad("reserved message type resolve", [8, 1, 2], "UnknownMessageType"),
        _bad("reserved message type cache", [17, 1, 2], "UnknownMessageType"),
        _bad("negative message type", [-1, 1], "UnknownMessageType"),
        # --- ext values ----------------------------------------------------------------------
        _bad("unknown ext code", [4, 1, _ext(42, 1)], "UnknownExtCode"),
        _bad("reserved ext code promised answer", [4, 1, _ext(5, [1])], "UnknownExtCode"),
        _bad("reserved ext code cache ref", [4, 1, _ext(6, [1, None])], "UnknownExtCode"),
        _bad(
            "msgpack timestamp ext",
            [4, 1, msgpack.Timestamp(1, 0)],
            "UnknownExtCode",
        ),
        _bad(
            "unknown ext code inside a copy",
            [4, 1, _ext(3, ["t", [_ext(9, 0)]])],
            "UnknownExtCode",
        ),
        _bad("ref with negative id", [4, 1, _ext(1, -1)], "MalformedMessage"),
        _bad("ref with str id", [4, 1, _ext(2, "5")], "MalformedMessage"),
        _bad("ref with empty payload", [4, 1, msgpack.ExtType(1, b"")], "MalformedMessage"),
        _bad(
            "ref with trailing payload bytes",
            [4, 1, msgpack.ExtType(1, b"\x05\x06")],
            "MalformedMessage",
        ),
        _bad("copy without state", [4, 1, _ext(3, ["t"])], "MalformedMessage"),
        _bad("copy with empty type name", [4, 1, _ext(3, ["", None])], "MalformedMessage"),
        _bad("failure with 3 fields", [4, 1, _ext(4, ["failed", "", ""])], "MalformedMessage"),
        _bad("map with an array key", [4, 1, {(1,): 2}], "MalformedMessage"),
        _invalid(
            "map with a map key",
            _frame(bytes.fromhex("930401 81 80 01".replace(" ", ""))),
            "MalformedMessage",
        ),
        _bad("map with a ref key", [4, 1, {_ext(1, 5): 2}], "MalformedMessage"),
        # --- limits --------------------------------------------------------------------------
        _valid("nesting at the limit", Answer(1, _deep(3)), limits={"max_depth": 4}),
        _bad(
            "nesting above the limit",
            [4, 1, _deep(4)],
            "NestingTooDeep",
            limits={"max_depth": 4},
        ),
        _valid(
            "ext nesting at the limit",
            Answer(1, [CopyState("t", [1])]),
            limits={"max_depth": 4},
        ),
        _bad(
            "ext nesting above the limit",
            [4, 1, [_ext(3, ["t", [[1]]])]],
            "NestingTooDeep",
            limits={"max_depth": 4},
        ),
        _bad("nesting above the default limit", [4, 1, _deep(64)], "NestingTooDeep"),
        _valid("nesting at the default limit", Answer(1, _deep(63))),
        _invalid(
            "nesting above msgpack's own stack",
            _frame(b"\x93\x04\x01" + b"\x91" * 2000 + b"\x01"),
            "NestingTooDeep",
        ),
        _valid(
            "array at the length limit",
            Answer(1, [1, 2, 3]),
            limits={"max_container_length": 3},
        ),
        _bad(
            "array above the length limit",
            [4, 1, [1, 2, 3, 4]],
            "ContainerTooLong",
            limits={"max_container_length": 3},
        ),
        _bad(
            "map above the length limit",
            [4, 1, {"a": 1, "b": 2, "c": 3, "d": 4}],
            "ContainerTooLong",
            limits={"max_container_length": 3},
        ),
        _bad(
            "body above the length limit",
            [3, 1, 0, "m", [], {}, 0],
            "ContainerTooLong",
            limits={"max_container_length": 3},
        ),
        _invalid(
            "array header above the length limit with no elements",
            _frame(bytes.fromhex("930401 dd7fffffff".replace(" ", ""))),
            "ContainerTooLong",
        ),
        # --- per-frame limits (§8.2) -----------------------------------------------------------
        # Items: the elements of every array and map (2 per map entry), the body's included.
        _valid("items at the frame limit", Answer(1, [1, 2]), limits={"max_items_per_frame": 5}),
        _bad("items above the frame limit", [4, 1, [1, 2, 3]], "FrameTooComplex",
             limits={"max_items_per_frame": 5}),
        _valid("map items at the frame limit", Answer(1, {"a": 1, "b": 2}),
               limits={"max_items_per_frame": 7}),
        _bad("map items above the frame limit", [4, 1, {"a": 1, "b": 2}], "FrameTooComplex",
             limits={"max_items_per_frame": 6}),
        _valid("items in a copy payload at the frame limit", Answer(1, CopyState("t", [1, 2, 3])),
               limits={"max_items_per_frame": 8}),
        _bad("items in a copy payload above the frame limit", [4, 1, _ext(3, ["t", [1, 2, 3]])],
             "FrameTooComplex", limits={"max_items_per_frame": 7}),
        # Containers: arrays and maps, the body and ext payloads' arrays included.
        _valid("containers at the frame limit", Answer(1, [[], {}]),
               limits={"max_containers_per_frame": 4}),
        _bad("containers above the frame limit", [4, 1, [[], {}]], "FrameTooComplex",
             limits={"max_containers_per_frame": 3}),
        _bad("containers in a failure payload above the frame limit",
             [4, 1, [_ext(4, ["failed", "", "", None])]], "FrameTooComplex",
             limits={"max_containers_per_frame": 2}),
        # Ext values: every ext value at every level but msgpack's timestamp (-1).
        _valid("ext values at the frame limit", Answer(1, [ExportedRef(1), ReturnedRef(2), fail]),
               limits={"max_ext_values_per_frame": 3}),
        _bad("ext values above the frame limit", [4, 1, [_ext(1, 1), _ext(2, 2), _ext(1, 3)]],
             "FrameTooComplex", limits={"max_ext_values_per_frame": 2}),
        _valid("ext values in a copy at the frame limit",
               Answer(1, CopyState("t", [ExportedRef(1), ExportedRef(2)])),
               limits={"max_ext_values_per_frame": 3}),
        _bad("ext values in a copy above the frame limit",
             [4, 1, _ext(3, ["t", [_ext(1, 1), _ext(1, 2)]])], "FrameTooComplex",
             limits={"max_ext_values_per_frame": 2}),
        _bad("timestamps are not counted as ext values",
             [4, 1, [msgpack.Timestamp(1, 0), msgpack.Timestamp(2, 0)]], "UnknownExtCode",
             limits={"max_ext_values_per_frame": 1}),
        # Ext payload bytes: all payloads, at every level, add up to at most max_frame_size.
        _valid("ext payload bytes at the frame limit",
               Answer(1, CopyState("t", CopyState("u", "x" * 20))),
               limits={"max_frame_size": 54}),
        _bad("ext payload bytes above the frame limit",
             [4, 1, _ext(3, ["t", _ext(3, ["u", "x" * 21])])], "FrameTooComplex",
             limits={"max_frame_size": 55}),
        # Which error wins (§8.1): in byte order with the structural ones; before the walk's.
        _invalid(
            "frame limit met before a bad byte",
            _frame(bytes.fromhex("9404 01 93010203 c1".replace(" ", ""))),
            "FrameTooComplex",
            limits={"max_items_per_frame": 2},
        ),
        _invalid(
            "bad byte met before the frame limit",
            _frame(bytes.fromhex("9404 01 c1 93010203".replace(" ", ""))),
            "MalformedMessage",
            limits={"max_items_per_frame": 2},
        ),
        _bad("container length checked before the frame limit", [4, 1, [1, 2, 3, 4]],
             "ContainerTooLong", limits={"max_container_length": 3, "max_items_per_frame": 2}),
        _bad("frame limit before an unknown ext code", [4, 1, [_ext(42, 1), 1, 2]],
             "FrameTooComplex", limits={"max_items_per_frame": 4}),
        _bad("frame limit before nesting", [4, 1, _deep(5)], "FrameTooComplex",
             limits={"max_depth": 4, "max_containers_per_frame": 3}),
        _bad("frame limit before the message type", [99, [1, 2, 3]], "FrameTooComplex",
             limits={"max_items_per_frame": 4}),
        _invalid("negative ext code", _frame(bytes.fromhex("930401 d4fb05".replace(" ", ""))),
                 "UnknownExtCode"),
        # --- optional messages: decrefs (feature "decrefs"), ping and pong ("heartbeat") ------
        _valid("decrefs", Decrefs({5: 3, 300: 1, (1 << 63) - 1: 2}), features=["decrefs"]),
        _valid("decrefs of one object", Decrefs({7: 1}), features=["decrefs", "heartbeat"]),
        _invalid("decrefs without the feature", encode(Decrefs({5: 3})), "UnknownMessageType"),
        _invalid("decrefs with only the heartbeat feature", encode(Decrefs({5: 3})),
                 "UnknownMessageType", features=["heartbeat"]),
        _bad("decrefs empty", [12, []], "MalformedMessage", features=["decrefs"]),
        _bad("decrefs with an odd length", [12, [5, 1, 6]], "MalformedMessage", features=["decrefs"]),
        _bad("decrefs of bootstrap", [12, [5, 1, 0, 1]], "MalformedMessage", features=["decrefs"]),
        _bad("decrefs with count 0", [12, [5, 0]], "MalformedMessage", features=["decrefs"]),
        _bad("decrefs with an id twice", [12, [5, 1, 5, 2]], "MalformedMessage",
             features=["decrefs"]),
        _bad("decrefs as pairs", [12, [[5, 1]]], "MalformedMessage", features=["decrefs"]),
        _bad("decrefs with a bool count", [12, [5, True]], "MalformedMessage",
             features=["decrefs"]),
        _bad("decrefs with an id above 2**63-1", [12, [1 << 63, 1]], "MalformedMessage",
             features=["decrefs"]),
        _bad("decrefs with 2 fields", [12, [5, 1], [6, 1]], "MalformedMessage",
             features=["decrefs"]),
        _valid("ping", Ping(1), features=["heartbeat"]),
        _valid("pong", Pong(1), features=["heartbeat"]),
        _valid("ping with a large nonce", Ping((1 << 63) - 1), features=["heartbeat"]),
        _valid("pong with nonce 0", Pong(0), features=["heartbeat", "decrefs"]),
        _invalid("ping without the feature", encode(Ping(1)), "UnknownMessageType"),
        _invalid("pong with only the decrefs feature", encode(Pong(1)), "UnknownMessageType",
                 features=["decrefs"]),
        _bad("ping with a str nonce", [10, "1"], "MalformedMessage", features=["heartbeat"]),
        _bad("pong with a negative nonce", [11, -1], "MalformedMessage", features=["heartbeat"]),
        _bad("ping with 2 fields", [10, 1, 2], "MalformedMessage", features=["heartbeat"]),
        _bad("pong without a nonce", [11], "MalformedMessage", features=["heartbeat"]),
        _invalid(
            "ping after a hello without the feature",
            encode(Hello(features=["decrefs"])) + encode(Ping(1)),
            "UnknownMessageType",
            handshake=True,
            features=["heartbeat", "decrefs"],
        ),
        _invalid(
            "decrefs after a hello without the feature",
            encode(Hello(features=["heartbeat"])) + encode(Decrefs({5: 1})),
            "UnknownMessageType",
            handshake=True,
            features=["heartbeat", "decrefs"],
        ),
        _invalid(
            "ping after our hello without the feature",
            encode(Hello(features=["heartbeat"])) + encode(Ping(1)),
            "UnknownMessageType",
            handshake=True,
        ),
    ]
    _check_known_bytes(v)
    names = [x["name"] for x in v]
    assert len(names) == len(set(names)), "vector names must be unique"
    return v


def _check_known_bytes(vectors: list[dict[str, Any]]) -> None:
    """Hand-assembled frames for a few vectors: the encoder is not only checked against itself."""
    known = {
        "call on bootstrap": "0000000d 97 03 01 00 a3616464 92 01 02 80 00",
        "answer sender ref": "00000006 93 04 01 d4 01 05",
        "answer receiver ref": "00000009 93 04 01 c7 03 02 cd012c",
        "error failed": "00000029 96 05 03 a6 6661696c6564"
        " b3 6275696c74696e732e56616c75654572726f72 a9 6261642076616c7565 c0",
        "decref": "00000004 93 07 05 03",
        "cancel": "00000003 92 06 0b",
        "decrefs": "00000013 92 0c 96 05 03 cd012c 01 cf7fffffffffffffff 02",
        "ping": "00000003 92 0a 01",
        "pong": "00000003 92 0b 01",
    }
    by_name = {x["name"]: x for x in vectors}
    for name, text in known.items():
        assert by_name[name]["hex"] == text.replace(" ", ""), name


def write(path: Path, data: list[dict[str, Any]] | dict[str, Any]) -> None:
    """Write a vector file as every generator does (session.json's excepted), and say how many.

    ``data`` is a codec file's list of vectors or a session file's ``{"vectors": [...], ...}``.
    """
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    vectors = data if isinstance(data, list) else data["vectors"]
    print(f"wrote {path} ({len(vectors)} vectors)", file=sys.stderr)


def main() -> None:
    write(PATH, build())


if __name__ == "__main__":
    main()
