"""Promise pipelining (feature "pipelining", PROTOCOL.md §15).

Sans-I/O: two real :class:`broker.Session` objects joined by a loop that moves their bytes, so a
test counts round trips on the wire exactly (one delivery client -> server and back is one).
Then loopback TCP on every reactor backend, and the codec of finish (9).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from broker_pair import decode_all

import broker.session as session_module
from broker import wire
from broker.errors import ConnectionLost, InvalidReferenceError, RemoteError, UnimplementedError
from broker.flavors import Referenceable
from broker.messages import (
    CALL_TARGET_IS_QUESTION,
    FEATURE_DECREFS,
    FEATURE_HEARTBEAT,
    FEATURE_PIPELINING,
    Call,
    Error,
    Finish,
)
from broker.pipelining import Promise
from broker.session import RemoteReference, Session
from net.defer import CancelledError, Deferred, Failure

ROOT = Path(__file__).resolve().parent.parent
WITHOUT = (FEATURE_HEARTBEAT, FEATURE_DECREFS)


class User(Referenceable):
    def __init__(self, directory: Directory, uid: int) -> None:
        self.directory = directory
        self.name = f"user{uid}"

    def remote_rename(self, name: str) -> User:
        self.name = name
        return self

    def remote_describe(self) -> str:
        self.directory.described += 1
        return f"<{self.name}>"

    def remote_record(self, item: Any) -> None:
        self.directory.log.append(item)

    def remote_number(self) -> int:
        return 42


class Directory(Referenceable):
    def __init__(self) -> None:
        self.users: dict[int, User] = {}
        self.log: list[Any] = []
        self.slow: list[tuple[Deferred[Any], int]] = []
        self.described = 0

    def remote_get_user(self, uid: int) -> User:
        return self.users.setdefault(uid, User(self, uid))

    def remote_slow_user(self, uid: int) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.slow.append((d, uid))
        return d

    def remote_fail(self, text: str) -> None:
        raise ValueError(text)

    def remote_number(self) -> int:
        return 7

    def finish_slow(self) -> None:
        for d, uid in self.slow:
            d.callback(self.remote_get_user(uid))
        self.slow.clear()


class Link:
    """A client and a server session and the bytes between them, moved only when asked."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, client_features: tuple[str, ...] | None = None,
                 server_features: tuple[str, ...] | None = None) -> None:
        self.directory = Directory()
        defaults = session_module._FEATURES
        monkeypatch.setattr(session_module, "_FEATURES", server_features or defaults)
        self.server = Session(root=self.directory, side="server", name="server")
        monkeypatch.setattr(session_module, "_FEATURES", client_features or defaults)
        self.client = Session(side="client", name="client")
        monkeypatch.setattr(session_module, "_FEATURES", defaults)
        self.sent_by_client = bytearray()
        self.round_trips = 0
        self.settle()
        self.root = self.client.root()

    def _deliver(self, src: Session, dst: Session) -> bool:
        data = src.data_to_send()
        if not data:
            return False
        if src is self.client:
            self.sent_by_client += data
        dst.receive_data(data)
        dst.process()
        return True

    def round_trip(self) -> None:
        """Client -> server, then server -> client: one round trip if the client sent anything."""
        if self._deliver(self.client, self.server):
            self.round_trips += 1
        self._deliver(self.server, self.client)

    def until(self, d: Deferred[Any], limit: int = 10) -> Any:
        """Round trips until ``d`` has fired; its outcome (a Failure is returned, not raised)."""
        for _ in range(limit):
            if d.called:
                break
            self.round_trip()
        box: list[Any] = []
        d.add_both(box.append)
        assert box, "never fired"
        return box[0]

    def settle(self) -> None:
        while self._deliver(self.client, self.server) | self._deliver(self.server, self.client):
            pass

    @property
    def retained(self) -> int:
        pipeline = self.server._pipeline
        return len(pipeline.retained) if pipeline is not None else 0

    def client_messages(self) -> list[Any]:
        return decode_all(bytes(self.sent_by_client))


def failure_of(outcome: Any) -> BaseException:
    if isinstance(outcome, Deferred):
        box: list[Any] = []
        outcome.add_both(box.append)
        assert box, f"{outcome!r} has not fired"
        outcome = box[0]
    assert isinstance(outcome, Failure), f"expected a failure, got {outcome!r}"
    return outcome.value


# -- round trips ---------------------------------------------------------------------------------


def test_negotiated_by_both_hellos(monkeypatch: pytest.MonkeyPatch) -> None:
    assert FEATURE_PIPELINING in Link(monkeypatch).client.negotiated
    assert FEATURE_PIPELINING not in Link(monkeypatch, server_features=WITHOUT).client.negotiated


def test_a_chain_of_three_dependent_calls_is_one_round_trip(monkeypatch: pytest.MonkeyPatch) -> None:
    link = Link(monkeypatch)
    user = link.root.call_remote("get_user", 7)
    assert isinstance(user, Promise)
    renamed = user.call_remote("rename", "x")
    described = renamed.call_remote("describe")
    assert link.until(described) == "<x>"
    assert link.round_trips == 1
    calls = [m for m in link.client_messages() if isinstance(m, Call)]
    assert [(c.target, c.flags) for c in calls] == [(0, 0), (calls[0].request_id, 2), (calls[1].request_id, 2)]


def test_without_the_feature_the_same_chain_costs_three_round_trips(monkeypatch: pytest.MonkeyPatch) -> None:
    link = Link(monkeypatch, server_features=WITHOUT)
    described = link.root.call_remote("get_user", 7).call_remote("rename", "x").call_remote("describe")
    assert link.until(described) == "<x>"
    assert link.round_trips == 3
    assert all(m.flags == 0 for m in link.client_messages() if isinstance(m, Call))
    assert not any(isinstance(m, Finish) for m in link.client_messages())


def test_after_the_answer_arrived_calls_go_to_the_reference_directly(monkeypatch: pytest.MonkeyPatch) -> None:
    link = Link(monkeypatch)
    user = link.root.call_remote("get_user", 1)
    ref = link.until(user)
    assert isinstance(ref, RemoteReference)
    described = user.call_remote("describe")
    assert link.until(described) == "<user1>"
    last = [m for m in link.client_messages() if isinstance(m, Call)][-1]
    assert (last.target, last.flags) == (ref.object_id, 0)


# -- E-order ----------------------------------------------------------------------------------------


def test_calls_on_one_reference_arrive_in_order_pipelined_or_not(monkeypatch: pytest.MonkeyPatch) -> None:
    link = Link(monkeypatch)
    user = link.root.call_remote("slow_user", 3)
    user.call_remote("record", 1)
    user.call_remote_no_answer("record", 2)
    three = user.call_remote("record", 3)
    link.settle()  # all queued on the running question
    assert link.directory.log == [] and not user.called
    link.directory.finish_slow()  # they run before its answer is sent
    assert link.directory.log == [1, 2, 3]
    ref = link.until(user)
    ref.call_remote("record", 4)  # direct, after the answer
    user.call_remote("record", 5)  # through the promise, after the answer: direct too
    user.call_remote_no_answer("record", 6)
    link.settle()
    assert link.directory.log == [1, 2, 3, 4, 5, 6]
    assert three.called


def test_pipelined_calls_that_reach_an_answered_question_run_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    link = Link(monkeypatch)
    user = link.root.call_remote("get_user", 3)  # answered at once on the server
    for i in range(5):
        user.call_remote_no_answer("record", i)
    link.round_trip()
    ref = link.until(user)
    ref.call_remote_no_answer("record", "direct")
    link.settle()
    assert link.directory.log == [0, 1, 2, 3, 4, "direct"]


# -- errors ----------------------------------------------------------------------------------------


def test_an_error_fails_every_call_pipelined_on_it_naming_the_cause(monkeypatch: pytest.MonkeyPatch) -> None:
    link = Link(monkeypatch)
    first = link.root.call_remote("fail", "no such user")
    second = first.call_remote("rename", "x")
    third = second.call_remote("describe")
    error = failure_of(link.until(third))
    assert link.round_trips == 1
    assert isinstance(error, RemoteError) and error.kind == "failed"
    assert "which failed: pipelined on question" in error.message and "no such user" in error.message
    second_error = failure_of(link.until(second))
    assert f"pipelined on question {first.question_id}, which failed: no such user" in str(second_error)
    assert isinstance(failure_of(link.until(first)), RemoteError)
    assert link.directory.described == 0


def test_a_call_on_a_failed_promise_after_the_failure_arrived_names_the_cause(monkeypatch: pytest.MonkeyPatch) -> None:
    link = Link(monkeypatch)
    first = link.root.call_remote("fail", "gone")
    failure_of(link.until(first))
    error = failure_of(link.until(first.call_remote("describe")))
    assert isinstance(error, RemoteError) and "which failed: gone" in error.message


def test_a_call_on_an_answer_that_is_not_a_reference_fails_invalid(monkeypatch: pytest.MonkeyPatch) -> None:
    link = Link(monkeypatch)
    number = link.root.call_remote("number")
    pipelined = number.call_remote("describe")
    assert isinstance(failure_of(link.until(pipelined)), InvalidReferenceError)
    assert link.until(number) == 7
    after = failure_of(link.until(number.call_remote("describe")))
    assert isinstance(after, InvalidReferenceError) and "not a reference" in str(after)


def test_a_call_on_a_running_question_whose_answer_is_not_a_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    link = Link(monkeypatch)
    slow = link.root.call_remote("slow_user", 1)
    pipelined = slow.call_remote("describe")
    link.settle()
    d, _ = link.directory.slow.pop()
    d.callback(5)
    error = failure_of(link.until(pipelined))
    assert isinstance(error, InvalidReferenceError) and "answer is not a reference" in str(error)


def test_a_pipelined_call_on_an_unknown_question_is_invalid(monkeypatch: pytest.MonkeyPatch) -> None:
    link = Link(monkeypatch)
    d = link.client.call(999, "describe", (), {}, CALL_TARGET_IS_QUESTION)
    error = failure_of(link.until(d))
    assert isinstance(error, InvalidReferenceError) and "question 999" in str(error)


# -- finish keeps the callee's table bounded ---------------------------------------------------------


def test_finish_empties_the_retained_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    link = Link(monkeypatch)
    users = [link.root.call_remote("get_user", i) for i in range(50)]
    failures = [link.root.call_remote("fail", "x") for _ in range(5)]
    for f in failures:
        f.add_errback(lambda _f: None)
    link.round_trip()
    assert link.retained == 55  # every reference answer and every error, until finished
    link.settle()
    assert link.retained == 0
    finishes = [m for m in link.client_messages() if isinstance(m, Finish)]
    assert len(finishes) == 1 and len(finishes[0].question_ids) == 55  # batched
    assert all(u.called for u in users)
    assert link.server.answers == {} or not link.server.answers


def test_plain_answers_are_neither_retained_nor_finished(monkeypatch: pytest.MonkeyPatch) -> None:
    link = Link(monkeypatch)
    assert link.until(link.root.call_remote("number")) == 7
    link.round_trip()
    assert link.retained == 0 and link.server._pipeline is None
    assert not any(isinstance(m, Finish) for m in link.client_messages())


def test_a_finished_question_can_no_longer_be_named(monkeypatch: pytest.MonkeyPatch) -> None:
    link = Link(monkeypatch)
    user = link.root.call_remote("get_user", 1)
    link.settle()
    late = link.client.call(user.question_id, "describe", (), {}, CALL_TARGET_IS_QUESTION)
    assert isinstance(failure_of(link.until(late)), InvalidReferenceError)


def test_an_idle_session_holds_no_pipelining_state(monkeypatch: pytest.MonkeyPatch) -> None:
    link = Link(monkeypatch)
    assert link.server._pipeline is None and link.client._pipeline is None


# -- cancel and disconnect --------------------------------------------------------------------------


def test_cancelling_a_pipelined_call(monkeypatch: pytest.MonkeyPatch) -> None:
    link = Link(monkeypatch)
    user = link.root.call_remote("slow_user", 1)
    described = user.call_remote("describe")
    link.settle()
    described.cancel()
    assert isinstance(failure_of(described), CancelledError)
    link.settle()
    link.directory.finish_slow()
    assert isinstance(link.until(user), RemoteReference)
    link.settle()
    assert link.directory.described == 0
    assert not link.server.answers and link.retained == 0 and not link.client.questions


def test_cancelling_the_first_call_fails_the_calls_pipelined_on_it(monkeypatch: pytest.MonkeyPatch) -> None:
    link = Link(monkeypatch)
    user = link.root.call_remote("slow_user", 1)
    described = user.call_remote("describe")
    link.settle()
    user.cancel()
    error = failure_of(link.until(described))
    assert error.kind == "cancelled" and "pipelined on question" in str(error)  # type: ignore[attr-defined]
    link.settle()
    assert not link.server.answers and link.retained == 0


def test_disconnect_fails_pipelined_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    link = Link(monkeypatch)
    user = link.root.call_remote("slow_user", 1)
    described = user.call_remote("describe")
    link.settle()
    link.server.disconnect()
    link.settle()
    link.client.connection_lost()
    link.server.connection_lost()
    assert isinstance(failure_of(described), ConnectionLost)
    assert isinstance(failure_of(user), ConnectionLost)
    assert link.server._pipeline is None
    with pytest.raises(ConnectionLost):
        Promise.call_remote_no_answer(user, "describe")


def test_waiting_calls_count_against_max_running_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    from broker.session import Limits

    link = Link(monkeypatch)
    link.server.limits = Limits(max_running_calls=3)
    user = link.root.call_remote("slow_user", 1)
    calls = [user.call_remote("describe") for _ in range(4)]
    link.settle()
    outcomes = [c.called for c in calls]
    assert outcomes == [False, False, True, True]
    assert failure_of(calls[3]).kind == "overloaded"  # type: ignore[attr-defined]
    for c in calls:
        c.add_errback(lambda _f: None)


# -- negotiation -------------------------------------------------------------------------------------


def test_a_peer_without_the_feature_answers_flag_bit_1_unimplemented(monkeypatch: pytest.MonkeyPatch) -> None:
    link = Link(monkeypatch, server_features=WITHOUT)
    d = link.client.call(1, "describe", (), {}, CALL_TARGET_IS_QUESTION)
    assert isinstance(failure_of(link.until(d)), UnimplementedError)
    assert link.server.state.value == "open"


def test_finish_from_a_peer_that_did_not_negotiate_is_an_unknown_message() -> None:
    frame = wire.encode(Finish([1, 2]))
    decoder = wire.WireDecoder(max_frame_size=1000, features=WITHOUT, expect_hello=False)
    decoder.receive_data(frame)
    with pytest.raises(wire.UnknownMessageType):
        decoder.next_message()
    decoder = wire.WireDecoder(max_frame_size=1000, features=(FEATURE_PIPELINING,), expect_hello=False)
    decoder.receive_data(frame)
    assert decoder.next_message() == Finish((1, 2))
    assert frame == bytes.fromhex("00000005920992 0102".replace(" ", ""))


@pytest.mark.parametrize("body", ["920990", "920991 00", "92099201 01", "9209a178", "93099101 01", "920991a178"])
def test_malformed_finish(body: str) -> None:
    payload = bytes.fromhex(body.replace(" ", ""))
    decoder = wire.WireDecoder(max_frame_size=1000, features=(FEATURE_PIPELINING,), expect_hello=False)
    decoder.receive_data(len(payload).to_bytes(4, "big") + payload)
    with pytest.raises(wire.MalformedMessage):
        decoder.next_message()


def test_a_client_without_the_feature_still_gets_the_same_results(monkeypatch: pytest.MonkeyPatch) -> None:
    link = Link(monkeypatch, client_features=WITHOUT)
    described = link.root.call_remote("get_user", 2).call_remote("describe")
    assert link.until(described) == "<user2>"
    assert link.round_trips == 2
    assert link.server._pipeline is None  # nothing kept for a peer that will never finish


def test_errors_are_not_retained_without_the_feature(monkeypatch: pytest.MonkeyPatch) -> None:
    link = Link(monkeypatch, client_features=WITHOUT)
    failure_of(link.until(link.root.call_remote("fail", "x")))
    assert link.server._pipeline is None
    assert not [m for m in decode_all(bytes(link.sent_by_client)) if isinstance(m, (Finish, Error))]


# -- loopback, every backend, and the example --------------------------------------------------------


def test_pipelining_over_tcp(reactor: Any, run: Any) -> None:
    import broker

    async def check() -> None:
        directory = Directory()
        port = await broker.serve(reactor, "tcp:0:interface=127.0.0.1", directory)
        root = await broker.connect(reactor, f"tcp:127.0.0.1:{port.get_host().port}")
        assert FEATURE_PIPELINING in root.session.negotiated
        assert await root.call_remote("get_user", 9).call_remote("rename", "nine").call_remote("describe") == "<nine>"
        with pytest.raises(RemoteError, match="which failed: boom"):
            await root.call_remote("fail", "boom").call_remote("describe")
        await root.call_remote("number")  # the finishes went out before this call's answer came
        assert len(directory.log) == 0
        root.session.disconnect()
        await port.stop_listening()

    run(reactor, check())


def test_example_runs() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "pipelining.py")], capture_output=True,
                         text=True, timeout=60, env=env, check=True).stdout
    assert "with pipelining: <renamed> in 1 round trip" in out
    assert "without pipelining: <renamed> in 3 round trips" in out


def test_a_peer_that_never_finishes_cannot_grow_the_retained_table() -> None:
    from broker.messages import Hello
    from broker.session import Limits

    server = Session(root=Directory(), side="server", limits=Limits(max_running_calls=8))
    server.data_to_send()
    hello = Hello(1, 1 << 24, 64, 1 << 20, (FEATURE_PIPELINING,))
    server.receive_data(wire.encode(hello) + b"".join(wire.encode(Call(i, 0, "get_user", [i], {}, 0))
                                                      for i in range(1, 41)))
    server.process()
    pipeline = server._pipeline
    assert pipeline is not None and len(pipeline.retained) == 8  # the oldest were forgotten
    assert sorted(pipeline.retained) == list(range(33, 41))
