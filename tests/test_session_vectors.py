"""The shared session vectors run against :class:`broker.Session`: tests/vectors/session.json and
every feature's session file but cache_session.json (``vector_files.SESSION_FILES``), whose
fixtures tests/test_cache_vectors.py builds and runs with this runner.

No sockets, no reactor, no clock: the session's output is collected from its ``send`` callable
and decoded with the codec (itself held to tests/vectors/wire.json), and a close it asks for is
delivered back as ``connection_lost`` at the end of the step, as a transport would. How a vector
runs is specified in docs/PROTOCOL.md ("Session vectors"); the Java client runs the same file.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import pytest
from vector_files import SESSION_FILES, load_generator, read_vectors, vector_id

import broker
from broker import wire
from broker.lifecycle import State
from broker.messages import FEATURE_CACHE, FEATURE_CALL_OPTIONS, FEATURE_DECREFS, FEATURE_HEARTBEAT, FEATURE_PIPELINING
from net.defer import CancelledError, Deferred, Failure

_load = load_generator  # the name feature test modules have imported
make_vectors = load_generator("make_vectors")
FILE = read_vectors("session.json")
#: The files run here: every session file but those whose fixtures only their feature's module builds.
RUN_HERE = [name for name in SESSION_FILES if name != "cache_session.json"]


@pytest.mark.parametrize("file_name", SESSION_FILES)
def test_file_matches_generator(file_name: str) -> None:
    generator, build = SESSION_FILES[file_name]
    assert getattr(load_generator(generator), build)() == read_vectors(file_name), f"run: python tests/vectors/{generator}.py"


# -- the fixtures the vectors name ---------------------------------------------------------------


class Child(broker.Referenceable):
    def remote_value(self) -> int:
        return 42


class Calc(broker.Referenceable):
    def remote_add(self, a: Any, b: Any) -> Any:
        return a + b

    def remote_fail(self) -> None:
        raise ValueError("boom")

    def remote_echo(self, x: Any) -> Any:
        return x

    def remote_drop(self, x: Any) -> None:
        return None

    def remote_child(self) -> Child:
        return Child()

    def remote_slow(self) -> Deferred[None]:
        return Deferred()


ALL_FEATURES = (FEATURE_HEARTBEAT, FEATURE_DECREFS, FEATURE_PIPELINING)
#: What this implementation announces; vectors requiring others would be skipped.
OFFERED = {FEATURE_HEARTBEAT, FEATURE_DECREFS, FEATURE_PIPELINING, FEATURE_CALL_OPTIONS, FEATURE_CACHE}

ROOTS: dict[str, Callable[[], broker.Referenceable | None]] = {"calc": Calc, "none": lambda: None}


@pytest.mark.parametrize("file_name", RUN_HERE)
def test_fixtures_are_the_specified_ones(file_name: str) -> None:
    assert set(ROOTS) == set(read_vectors(file_name)["fixtures"])


# -- matching --------------------------------------------------------------------------------------


def matches(expected: Any, actual: Any) -> bool:
    """JSON equality where ``{"$any": true}`` matches anything."""
    if expected == {"$any": True}:
        return True
    if isinstance(expected, dict) and list(expected) == ["$unordered"]:
        rest = list(actual) if isinstance(actual, list) else None
        if rest is None or len(rest) != len(expected["$unordered"]):
            return False
        for item in expected["$unordered"]:
            hit = next((i for i, a in enumerate(rest) if matches(item, a)), None)
            if hit is None:
                return False
            del rest[hit]
        return True
    if isinstance(expected, dict) and isinstance(actual, dict):
        return expected.keys() == actual.keys() and all(matches(v, actual[k]) for k, v in expected.items())
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(matches(e, a) for e, a in zip(expected, actual))
    return type(expected) is type(actual) and expected == actual


def error_kind(failure: Failure) -> str:
    exc = failure.value
    if isinstance(exc, CancelledError):
        return "cancelled"
    kind = getattr(exc, "kind", None)
    assert isinstance(kind, str), f"{exc!r} names no failure kind"
    return kind


def result_json(value: Any) -> Any:
    if isinstance(value, broker.RemoteReference):
        return {"$proxy": value.object_id}
    return make_vectors.value_to_json(value)


# -- the runner ------------------------------------------------------------------------------------


class Run:
    """One vector's session and everything the script observes of it.

    A feature's subclass names the messages it reads and the roots its file adds, and handles
    the steps whose meaning it extends."""

    #: What the session may send, from its hello on: every optional message it may use.
    features: tuple[str, ...] = ALL_FEATURES
    #: The roots the vectors may name ("root").
    roots: dict[str, Callable[[], broker.Referenceable | None]] = ROOTS

    def __init__(self, vector: dict[str, Any]) -> None:
        self.releases_due = 0
        self.connection_ended = False
        self.calls: list[Deferred[Any]] = []
        self.outcomes: list[tuple[str, Any] | None] = []
        self.out_decoder = wire.WireDecoder(max_frame_size=2**32 - 1, features=self.features)
        self.session = broker.Session(
            root=self.roots[vector["root"]](),
            limits=broker.Limits(**vector.get("limits", {})),
            name=vector["name"],
            release_due=self._release_due,
        )

    def _release_due(self) -> None:
        self.releases_due += 1

    @property
    def close_requested(self) -> bool:
        return self.session.state in (State.CLOSING, State.CLOSED)

    def goodbye_kind(self) -> str | None:
        """The kind of the goodbye the session sent or received, as it reports it."""
        lost = self.session.lost
        if lost is not None and lost.cause == "goodbye":
            return lost.goodbye_kind
        reason = self.session.close_reason
        return reason.kind if isinstance(reason, wire.RemoteProtocolError) else None

    def end_of_step(self) -> None:
        """A transport closes once the session asked it to: tell the session, once."""
        if self.close_requested and not self.connection_ended:
            self.connection_ended = True
            self.output_pending = self.session.data_to_send()  # the adapter writes it, then closes
            self.session.connection_lost(self.session.close_reason)

    output_pending: bytes | bytearray = b""

    def output(self) -> list[Any]:
        data = bytes(self.output_pending) + bytes(self.session.data_to_send())
        self.output_pending = b""
        if data:
            self.out_decoder.receive_data(data)
        return [make_vectors.to_json(m) for m in self.out_decoder.messages()]

    def record(self, index: int) -> Callable[[Any], None]:
        def on_result(value: Any) -> None:
            self.outcomes[index] = ("value", value)

        return on_result

    def record_failure(self, index: int) -> Callable[[Failure], None]:
        def on_failure(failure: Failure) -> None:
            self.outcomes[index] = ("error", error_kind(failure))

        return on_failure

    def feed(self, data: bytes) -> None:
        if self.session.state is not State.CLOSED:
            self.session.receive_data(data)
            self.session.process()

    def step(self, step: dict[str, Any]) -> None:
        (action, arg), = step.items()
        if action == "in":
            self.feed(b"".join(wire.encode(make_vectors.from_json(m)) for m in arg))
        elif action == "in_hex":
            self.feed(bytes.fromhex(arg))
        elif action == "out":
            got = self.output()
            assert matches(arg, got), f"expected {arg}\n     got {got}"
        elif action == "out_set":
            got = self.output()
            assert len(got) == len(arg) and all(any(matches(e, g) for g in got) for e in arg), f"expected {arg} in any order\n     got {got}"
        elif action == "call":
            index = len(self.calls)
            ref = self.session.root()
            assert arg["target"] == 0
            self.outcomes.append(None)
            if arg.get("one_way"):
                ref.call_remote_no_answer(arg["method"], *arg["args"], **arg["kwargs"])
                d: Deferred[Any] = Deferred()
            else:
                d = ref.call_remote(arg["method"], *arg["args"], **arg["kwargs"])
                d.add_callbacks(self.record(index), self.record_failure(index))
            self.calls.append(d)
        elif action == "cancel":
            self.calls[arg].cancel()
        elif action == "result":
            outcome = self.outcomes[arg["call"]]
            if arg.get("pending"):
                assert outcome is None, outcome
            elif "value" in arg:
                assert outcome is not None and outcome[0] == "value", outcome
                assert result_json(outcome[1]) == arg["value"]
            else:
                assert outcome == ("error", arg["error_kind"]), outcome
        elif action == "release":
            assert arg == "all"
            self.outcomes = [None if o is None else (o[0], None) for o in self.outcomes]
            gc.collect()
            self.session.flush_releases()
        elif action == "goodbye":
            self.session.disconnect()
        elif action == "eof":
            self.connection_ended = True
            self.session.connection_lost(None)
        else:
            raise AssertionError(f"unknown step {action!r}")
        self.end_of_step()


def _run(vector: dict[str, Any], runner: type[Run] = Run) -> None:
    """Run the vector's steps with a fresh ``runner`` (a feature's subclass brings its fixtures)."""
    run = runner(vector)
    for step in vector["steps"]:
        if "closed" in step:
            assert run.close_requested == step["closed"], f"closed: expected {step['closed']}, got {run.close_requested}"
            assert run.goodbye_kind() == step.get("goodbye_kind"), (run.session.lost, run.session.close_reason)
            continue
        run.step(step)


EVERY_VECTOR = [pytest.param(v, id=vector_id(f, v)) for f in RUN_HERE
                for v in (FILE if f == "session.json" else read_vectors(f))["vectors"]]


@pytest.mark.parametrize("vector", EVERY_VECTOR)
def test_session_vector(vector: dict[str, Any]) -> None:
    assert set(vector.get("requires", ())) <= OFFERED  # we skip none: we offer every feature
    _run(vector)
