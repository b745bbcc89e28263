"""Build ``session.json``, the shared session-level conformance vectors (Python and Java run them).

A session vector is a scripted exchange: frames fed to a fresh session, the exact frames a
conforming peer answers with, what its application sees, and whether it closes. The scheme is
specified in ``docs/PROTOCOL.md`` ("Session vectors"). Every vector is written out here by hand
from the spec, message by message: nothing is produced by running a session, so the file states
what the spec requires, not what one implementation happens to do.

Run ``python tests/vectors/make_session_vectors.py`` after changing a vector;
``tests/test_session_vectors.py`` fails while the file and this script disagree.
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path
from typing import Any

import msgpack

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_vectors import to_json, value_to_json  # noqa: E402

from broker.messages import (  # noqa: E402
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
    Decrefs,
    Message,
    Ping,
    Pong,
    ReturnedRef,
)

__all__ = ["build", "PATH", "FIXTURES"]

PATH = Path(__file__).with_name("session.json")

#: Roots a vector may give the session under test (``"root"``). Implementations build them by name.
FIXTURES = {
    "calc": {
        "add(a, b)": "returns a + b",
        "fail()": 'raises an application error whose message is "boom"',
        "echo(x)": "returns x as received (a reference comes back as the same reference)",
        "drop(x)": "returns nil and keeps nothing of x",
        "child()": "returns a new object of its own (a fresh one each call) with method value() returning 42",
        "slow()": "returns a result that never completes unless the call is cancelled",
    },
    "none": {},
}

ANY: dict[str, Any] = {"$any": True}
#: The hello every session sends first; its limits and features are the implementation's own.
OUR_HELLO: dict[str, Any] = {
    "type": "hello",
    "version": 1,
    "max_frame_size": ANY,
    "max_depth": ANY,
    "max_container_length": ANY,
    "features": ANY,
}
def peer_hello(*features: str) -> Hello:
    """The peer's hello: default limits, naming ``features`` (negotiated if ours names them too,
    which a vector that counts on it requires of the session under test: "requires")."""
    return Hello(1, 16 * 1024 * 1024, 64, 1024 * 1024, features)


PEER_HELLO = peer_hello()
#: A peer naming the optional features of §3.8 and §3.9.
PEER_HELLO_FEATURES = peer_hello("heartbeat", "decrefs")


def _m(message: Message) -> dict[str, Any]:
    return to_json(message)


def call(request_id: int, method: str, *args: Any, target: int = 0, flags: int = 0, **kwargs: Any) -> dict[str, Any]:
    return _m(Call(request_id, target, method, list(args), kwargs, flags))


def answer(request_id: int, value: Any = None) -> dict[str, Any]:
    return _m(Answer(request_id, value))


def error(request_id: int, kind: str, type_name: Any = ANY, message: Any = ANY) -> dict[str, Any]:
    """An expected error: kind exact, texts as given (``ANY`` where implementations differ)."""
    return {"type": "error", "request_id": request_id, "failure": [kind, type_name, message, None]}


def goodbye(kind: str, message: Any = ANY) -> dict[str, Any]:
    return {"type": "goodbye", "kind": kind, "message": message}


def raw(body: list[Any]) -> str:
    """Hex of a frame built by hand: for input no valid message object can express."""
    packed = msgpack.packb(body, use_bin_type=True)
    return (struct.pack(">I", len(packed)) + packed).hex()


def opened_with(peer: Hello, *steps: dict[str, Any]) -> list[dict[str, Any]]:
    """Steps after a handshake with ``peer``: our hello goes out, its hello comes in, nothing answers."""
    return [{"out": [OUR_HELLO]}, {"in": [_m(peer)]}, {"out": []}, *steps]


def opened(*steps: dict[str, Any]) -> list[dict[str, Any]]:
    """Steps after a normal handshake (a peer naming no feature)."""
    return opened_with(PEER_HELLO, *steps)


def vector(name: str, description: str, steps: list[dict[str, Any]], *, role: str = "server",
           root: str = "calc", limits: dict[str, int] | None = None,
           requires: list[str] | None = None) -> dict[str, Any]:
    v: dict[str, Any] = {"name": name, "description": description, "role": role, "root": root}
    if limits:
        v["limits"] = limits
    if requires:
        v["requires"] = requires
    v["steps"] = steps
    return v


OPEN = {"closed": False}


def closed(kind: str | None = None) -> dict[str, Any]:
    return {"closed": True, "goodbye_kind": kind} if kind else {"closed": True}


def session_file(vectors: list[dict[str, Any]], fixtures: dict[str, Any] = FIXTURES) -> dict[str, Any]:
    """A session vector file (§13.1): its vectors, each named once, and the fixtures they use."""
    names = [v["name"] for v in vectors]
    assert len(names) == len(set(names)), "vector names must be unique"
    return {"version": 1, "fixtures": fixtures, "vectors": vectors}


def _handshake() -> list[dict[str, Any]]:
    return [
        vector("handshake", "Both hellos cross; nothing else is sent.", opened(OPEN)),
        vector("handshake-version-mismatch", "§5.2: another version gets goodbye unimplemented and a close.",
               [{"out": [OUR_HELLO]}, {"in_hex": raw([1, "pbroker", 2, 1 << 24, 64, 1 << 20, []])},
                {"out": [goodbye("unimplemented")]}, closed("unimplemented")]),
        vector("handshake-not-pbroker", "§5.2: a hello of another protocol gets goodbye invalid.",
               [{"out": [OUR_HELLO]}, {"in_hex": raw([1, "http", 1, 1 << 24, 64, 1 << 20, []])},
                {"out": [goodbye("invalid")]}, closed("invalid")]),
        vector("handshake-call-first", "§5.2: a call before the hello is a HandshakeError.",
               [{"out": [OUR_HELLO]}, {"in": [call(1, "add", 1, 2)]}, {"out": [goodbye("invalid")]},
                closed("invalid")]),
        vector("handshake-second-hello", "§5.3: a second hello is a HandshakeError.",
               opened({"in": [_m(PEER_HELLO)]}, {"out": [goodbye("invalid")]}, closed("invalid"))),
        vector("handshake-goodbye-first", "§5.2: a peer refusing us says goodbye instead of hello: we close, answering nothing.",
               [{"out": [OUR_HELLO]}, {"in": [_m(Goodbye("unimplemented", "version 2 only"))]}, {"out": []},
                closed("unimplemented")]),
        vector("handshake-hello-and-call-together", "§5.1: messages right after the hello are processed after it.",
               [{"out": [OUR_HELLO]}, {"in": [_m(PEER_HELLO), call(1, "add", 1, 2)]}, {"out": [answer(1, 3)]}, OPEN]),
    ]


def _calls() -> list[dict[str, Any]]:
    return [
        vector("call-answer", "§12: add(1, 2) answers 3.", opened({"in": [call(1, "add", 1, 2)]}, {"out": [answer(1, 3)]}, OPEN)),
        vector("call-kwargs", "§3.3: keyword arguments.", opened({"in": [call(1, "add", a=1, b=2)]}, {"out": [answer(1, 3)]})),
        vector("call-pipelined", "Answers keep the order of calls that complete at once.",
               opened({"in": [call(1, "add", 1, 2), call(2, "add", 3, 4), call(3, "add", 5, 6)]},
                      {"out": [answer(1, 3), answer(2, 7), answer(3, 11)]})),
        vector("call-failed", "§7: the method raised: kind failed, no traceback unless debugging.",
               opened({"in": [call(1, "fail")]}, {"out": [error(1, "failed", ANY, "boom")]}, OPEN)),
        vector("call-no-such-method", "§14: an unknown method is unimplemented; the connection stays.",
               opened({"in": [call(1, "nope")]}, {"out": [error(1, "unimplemented")]}, {"in": [call(2, "add", 1, 1)]},
                      {"out": [answer(2, 2)]}, OPEN)),
        vector("call-no-such-object", "§4.2/§14: a target never exported is invalid.",
               opened({"in": [call(1, "add", 1, 2, target=7)]}, {"out": [error(1, "invalid")]}, OPEN)),
        vector("call-no-root", "§11: a call on object 0 of a peer with no root is unimplemented.",
               opened({"in": [call(1, "add", 1, 2)]}, {"out": [error(1, "unimplemented")]}, OPEN), root="none"),
        vector("call-reserved-flag", "§3.3: a reserved flag bit is unimplemented; the method does not run.",
               opened({"in": [call(1, "add", 1, 2, flags=4)]}, {"out": [error(1, "unimplemented")]}, OPEN)),
        vector("call-pipelining-flag-not-negotiated", "§3.1: flag bit 1 without the pipelining feature is unimplemented.",
               opened({"in": [call(1, "add", 1, 2, flags=2)]}, {"out": [error(1, "unimplemented")]}, OPEN)),
        vector("call-reserved-flag-one-way", "§3.3: with bit 0 set as well, nothing is answered.",
               opened({"in": [call(0, "add", 1, 2, flags=5)]}, {"out": []}, OPEN)),
        vector("call-one-way", "§3.3: a no-answer call is run and never answered, even when it fails.",
               opened({"in": [call(0, "add", 1, 2, flags=1), call(0, "fail", flags=1), call(0, "nope", flags=1),
                              call(0, "add", 1, 2, target=9, flags=1)]}, {"out": []},
                      {"in": [call(1, "add", 2, 2)]}, {"out": [answer(1, 4)]}, OPEN)),
        vector("call-unregistered-copy", "§4.3: a copy of an unregistered type fails the call with kind invalid.",
               opened({"in": [call(1, "echo", CopyState("nobody.Registered", {"x": 1}))]}, {"out": [error(1, "invalid")]}, OPEN)),
        vector("precedence-flags-before-target", "§8.1: a reserved flag bit is reported before a bad target.",
               opened({"in": [call(1, "add", 1, 2, target=7, flags=4)]}, {"out": [error(1, "unimplemented")]}, OPEN)),
        vector("precedence-target-before-method", "§8.1: a bad target is reported before an unknown method.",
               opened({"in": [call(1, "nope", target=7)]}, {"out": [error(1, "invalid")]}, OPEN)),
        vector("precedence-limit-before-method", "§8.1: the running-calls limit is reported before an unknown method.",
               opened({"in": [call(1, "slow"), call(2, "nope")]}, {"out": [error(2, "overloaded")]}, OPEN),
               limits={"max_running_calls": 1}),
        vector("call-unknown-message-type", "§8: a reserved message type closes with goodbye unimplemented.",
               opened({"in_hex": raw([8, 1, 2])}, {"out": [goodbye("unimplemented")]}, closed("unimplemented"))),
        vector("call-malformed", "§8: a call with a missing field closes with goodbye invalid.",
               opened({"in_hex": raw([3, 1, 0, "add", [1, 2], {}])}, {"out": [goodbye("invalid")]}, closed("invalid"))),
    ]


def _references() -> list[dict[str, Any]]:
    return [
        vector("ref-out", "§4.1: a returned object travels as a sender ref and can be called.",
               opened({"in": [call(1, "child")]}, {"out": [answer(1, ExportedRef(1))]},
                      {"in": [call(2, "value", target=1)]}, {"out": [answer(2, 42)]}, OPEN)),
        vector("ref-in-and-back", "§4.2: a proxy sent back to its owner travels as a receiver ref.",
               opened({"in": [call(1, "echo", ExportedRef(5))]}, {"out": [answer(1, ReturnedRef(5))]},
                      {"release": "all"}, {"out": [_m(Decref(5, 1))]}, OPEN)),
        vector("ref-returned-resolves", "§4.2: our own object coming back is itself; sending it again counts again.",
               opened({"in": [call(1, "child")]}, {"out": [answer(1, ExportedRef(1))]},
                      {"in": [call(2, "echo", ReturnedRef(1))]}, {"out": [answer(2, ExportedRef(1))]},
                      {"in": [_m(Decref(1, 1))]}, {"out": []},
                      {"in": [call(3, "value", target=1)]}, {"out": [answer(3, 42)]},
                      {"in": [_m(Decref(1, 1))]}, {"out": []},
                      {"in": [call(4, "value", target=1)]}, {"out": [error(4, "invalid")]}, OPEN)),
        vector("ref-returned-unknown", "§4.2: a receiver ref to an id we never exported fails the call with invalid.",
               opened({"in": [call(1, "echo", ReturnedRef(3))]}, {"out": [error(1, "invalid")]}, OPEN)),
        vector("decref-batch", "§6.3: each import is released with its whole count, in one burst.",
               opened({"in": [call(1, "drop", [ExportedRef(5), ExportedRef(6), ExportedRef(5)])]}, {"out": [answer(1)]},
                      {"release": "all"}, {"out_set": [_m(Decref(5, 2)), _m(Decref(6, 1))]}, OPEN)),
        vector("decref-bootstrap-not-counted", "§4.1/§6.6: a sender ref to object 0 is never counted or released; the others are.",
               opened({"in": [call(1, "drop", [ExportedRef(0), ExportedRef(5)])]}, {"out": [answer(1)]},
                      {"release": "all"}, {"out": [_m(Decref(5, 1))]}, OPEN)),
        vector("decref-unknown", "§6.4: a decref for an id not exported is logged and ignored.",
               opened({"in": [_m(Decref(9, 1))]}, {"out": []}, {"in": [call(1, "add", 1, 1)]}, {"out": [answer(1, 2)]}, OPEN)),
        vector("decref-too-many", "§6.4: a decref for more than was sent is ignored; the object stays.",
               opened({"in": [call(1, "child")]}, {"out": [answer(1, ExportedRef(1))]},
                      {"in": [_m(Decref(1, 2))]}, {"out": []},
                      {"in": [call(2, "value", target=1)]}, {"out": [answer(2, 42)]}, OPEN)),
        vector("decref-bootstrap-malformed", "§3.7: decref(0) is malformed: goodbye invalid.",
               opened({"in_hex": raw([7, 0, 1])}, {"out": [goodbye("invalid")]}, closed("invalid"))),
        vector("answer-unknown-request-counts-refs", "§6.2: refs in an answer nobody asked for are still counted and released.",
               opened({"in": [answer(99, ExportedRef(3))]}, {"out": []}, {"release": "all"}, {"out": [_m(Decref(3, 1))]}, OPEN)),
    ]


def _cancel_goodbye_limits() -> list[dict[str, Any]]:
    return [
        vector("cancel-running", "§9.2: cancelling a running call answers it with kind cancelled.",
               opened({"in": [call(1, "slow")]}, {"out": []}, {"in": [_m(Cancel(1))]}, {"out": [error(1, "cancelled")]}, OPEN)),
        vector("cancel-unknown", "§9.2: a cancel for a finished or unknown call does nothing.",
               opened({"in": [call(1, "add", 1, 2)]}, {"out": [answer(1, 3)]}, {"in": [_m(Cancel(1)), _m(Cancel(7))]},
                      {"out": []}, OPEN)),
        vector("goodbye-received-open", "§3.2: after the peer's goodbye we close and send nothing.",
               opened({"in": [_m(Goodbye("normal", ""))]}, {"out": []}, closed("normal"))),
        vector("goodbye-then-call", "§3.2: a call behind the peer's goodbye is not dispatched.",
               opened({"in": [_m(Goodbye("normal", "")), call(1, "add", 1, 2)]}, {"out": []}, closed("normal"))),
        vector("goodbye-received-while-running", "§10: the peer leaving cancels running calls; nothing is answered.",
               opened({"in": [call(1, "slow")]}, {"out": []}, {"in": [_m(Goodbye("normal", ""))]}, {"out": []}, closed("normal"))),
        vector("goodbye-sent", "§3.2: our goodbye is the last thing we send; calls that follow are not dispatched.",
               opened({"goodbye": True}, {"out": [goodbye("normal", "")]}, closed(),
                      {"in": [call(1, "add", 1, 2)]}, {"out": []})),
        vector("goodbye-sent-handshake", "§3.2: closing before the handshake completes sends no goodbye.",
               [{"out": [OUR_HELLO]}, {"goodbye": True}, {"out": []}, closed()]),
        vector("limit-running-calls", "§8: a call beyond max_running_calls is overloaded; the connection stays.",
               opened({"in": [call(1, "slow"), call(2, "slow")]}, {"out": [error(2, "overloaded")]},
                      {"in": [_m(Cancel(1))]}, {"out": [error(1, "cancelled")]},
                      {"in": [call(3, "add", 1, 2)]}, {"out": [answer(3, 3)]}, OPEN), limits={"max_running_calls": 1}),
        vector("limit-running-calls-one-way", "§8: one-way calls count against max_running_calls too.",
               opened({"in": [call(0, "slow", flags=1), call(2, "slow")]}, {"out": [error(2, "overloaded")]}, OPEN),
               limits={"max_running_calls": 1}),
        vector("limit-frame-size", "§8: a length header above our max_frame_size closes with goodbye invalid at once.",
               opened({"in_hex": "00010001"}, {"out": [goodbye("invalid")]}, closed("invalid")),
               limits={"max_frame_size": 65536}),
    ]


def _features() -> list[dict[str, Any]]:
    """The optional features, negotiated (the session under test must announce them) or not."""
    with_features = opened_with(PEER_HELLO_FEATURES)
    return [
        vector("ping-answered", "§3.9: a ping is answered at once with a pong of the same nonce.",
               [*with_features, {"in": [_m(Ping(7))]}, {"out": [_m(Pong(7))]}, OPEN], requires=["heartbeat"]),
        vector("ping-answered-before-later-frames", "§3.9: the pong goes before the answers to frames behind the ping.",
               [*with_features, {"in": [_m(Ping(1)), call(1, "add", 1, 2)]}, {"out": [_m(Pong(1)), answer(1, 3)]}, OPEN],
               requires=["heartbeat"]),
        vector("ping-answered-while-busy", "§3.9: running calls do not hold back the pong.",
               [*with_features, {"in": [call(1, "slow"), _m(Ping(2))]}, {"out": [_m(Pong(2))]}, OPEN], requires=["heartbeat"]),
        vector("pong-unasked-ignored", "§3.9: a pong nobody asked for is ignored.",
               [*with_features, {"in": [_m(Pong(99))]}, {"out": []}, OPEN], requires=["heartbeat"]),
        vector("ping-not-negotiated", "§3.1: without the feature in both hellos a ping is an unknown message type.",
               opened({"in_hex": raw([10, 1])}, {"out": [goodbye("unimplemented")]}, closed("unimplemented"))),
        vector("decrefs-received", "§3.8: decrefs releases each pair as a decref would.",
               [*with_features, {"in": [call(1, "child"), call(2, "child")]},
                {"out": [answer(1, ExportedRef(1)), answer(2, ExportedRef(2))]},
                {"in": [_m(Decrefs({1: 1, 2: 1}))]}, {"out": []},
                {"in": [call(3, "value", target=1), call(4, "value", target=2)]},
                {"out": [error(3, "invalid"), error(4, "invalid")]}, OPEN], requires=["decrefs"]),
        vector("decrefs-sent-for-a-batch", "§3.8: a batch of releases goes out as one decrefs when negotiated.",
               [*with_features, {"in": [call(1, "drop", [ExportedRef(5), ExportedRef(6), ExportedRef(5)])]},
                {"out": [answer(1)]}, {"release": "all"},
                {"out": [{"type": "decrefs", "releases": {"$unordered": [[5, 2], [6, 1]]}}]}, OPEN],
               requires=["decrefs"]),
        vector("decrefs-not-negotiated", "§3.1: without the feature a decrefs is an unknown message type.",
               opened({"in_hex": raw([12, [1, 1]])}, {"out": [goodbye("unimplemented")]}, closed("unimplemented"))),
    ]


def _client() -> list[dict[str, Any]]:
    """The session under test is the caller: the script plays the callee."""
    client = {"role": "client", "root": "none"}
    kinds = ["failed", "overloaded", "unimplemented", "invalid", "cancelled"]
    vectors = [
        vector("client-call", "The application's call goes out as request 1; the answer completes it.",
               opened({"call": {"target": 0, "method": "add", "args": [1, 2], "kwargs": {}}},
                      {"out": [call(1, "add", 1, 2)]}, {"result": {"call": 0, "pending": True}},
                      {"in": [answer(1, 3)]}, {"result": {"call": 0, "value": 3}}, OPEN), **client),
        vector("client-one-way", "§3.3: a one-way call goes out with request id 0 and flag 1.",
               opened({"call": {"target": 0, "method": "add", "args": [1, 2], "kwargs": {}, "one_way": True}},
                      {"out": [call(0, "add", 1, 2, flags=1)]}, OPEN), **client),
        vector("client-cancel", "§9: cancelling sends cancel, fails locally at once, and a late answer's refs are released.",
               opened({"call": {"target": 0, "method": "slow", "args": [], "kwargs": {}}}, {"out": [call(1, "slow")]},
                      {"cancel": 0}, {"out": [_m(Cancel(1))]}, {"result": {"call": 0, "error_kind": "cancelled"}},
                      {"in": [answer(1, ExportedRef(4))]}, {"out": []}, {"release": "all"}, {"out": [_m(Decref(4, 1))]},
                      OPEN), **client),
        vector("client-disconnect-fails-pending", "§10: end of stream fails open questions with disconnected.",
               opened({"call": {"target": 0, "method": "slow", "args": [], "kwargs": {}}}, {"out": [call(1, "slow")]},
                      {"eof": True}, {"result": {"call": 0, "error_kind": "disconnected"}}, closed()), **client),
        vector("client-goodbye-fails-pending", "§10: the peer's goodbye fails open questions with disconnected.",
               opened({"call": {"target": 0, "method": "slow", "args": [], "kwargs": {}}}, {"out": [call(1, "slow")]},
                      {"in": [_m(Goodbye("overloaded", "bye"))]}, {"out": []},
                      {"result": {"call": 0, "error_kind": "disconnected"}}, closed("overloaded")), **client),
        vector("client-call-after-close", "A call on a closed session fails with disconnected and sends nothing.",
               opened({"goodbye": True}, {"out": [goodbye("normal", "")]},
                      {"call": {"target": 0, "method": "add", "args": [1, 2], "kwargs": {}}}, {"out": []},
                      {"result": {"call": 0, "error_kind": "disconnected"}}), **client),
        vector("client-answer-ref", "§4.1: a sender ref in an answer becomes a proxy; releasing it sends decref.",
               opened({"call": {"target": 0, "method": "child", "args": [], "kwargs": {}}}, {"out": [call(1, "child")]},
                      {"in": [answer(1, ExportedRef(3))]}, {"result": {"call": 0, "value": {"$proxy": 3}}},
                      {"release": "all"}, {"out": [_m(Decref(3, 1))]}, OPEN), **client),
        vector("client-exports-nothing", "§11: a call on an id a client never exported is invalid.",
               opened({"in": [call(1, "notify", "x", target=4)]}, {"out": [error(1, "invalid")]}, OPEN), **client),
    ]
    for i, kind in enumerate(kinds):
        vectors.append(vector(
            f"client-error-{kind}", f"§7: an error of kind {kind} fails the call with that kind.",
            opened({"call": {"target": 0, "method": "m", "args": [], "kwargs": {}}}, {"out": [call(1, "m")]},
                   {"in": [_m(Error(1, FailureInfo(kind, "t.T", "text", None)))]},
                   {"result": {"call": 0, "error_kind": kind}}, OPEN), **client))
    return vectors


def build() -> dict[str, Any]:
    return session_file(_handshake() + _calls() + _references() + _cancel_goodbye_limits() + _features() + _client())


def main() -> None:
    PATH.write_text(json.dumps(build(), indent=1) + "\n")
    print(f"wrote {PATH}")


if __name__ == "__main__":
    main()
