"""The broker between two BrokerProtocols over memory transports, on a fake clock.

No ports, no event loop, no waiting: ``tests/broker_pair.py`` joins a client and a server, and
``pair.pump()`` moves bytes and runs due work until both are quiet, so every outcome is checked
synchronously, and "nothing happened" is a fact rather than a guess. Time passes only in
``pair.advance()``. The tests where real sockets matter are in ``tests/test_broker_tcp.py``.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import struct
from typing import Any

import pytest
from broker_pair import MemoryPair, decode_all, memory_pair, raw_peer, releases_in, result_of

import broker
from broker import (
    ConnectionLost,
    CopyRegistry,
    InvalidReferenceError,
    LimitExceeded,
    Limits,
    OverloadedError,
    Referenceable,
    RemoteError,
    RemoteReference,
    Root,
    UnimplementedError,
    UnregisteredCopyError,
    Viewable,
    copyable,
    wire,
)
from broker.errors import CAUSES
from broker.lifecycle import State
from broker.messages import Answer, Call, Decref, Decrefs, Error, ExportedRef, Goodbye, Hello, ReturnedRef
from broker.protocol import BrokerFactory
from net.defer import CancelledError, Deferred
from net.testing import Clock


@copyable("tests.Point")
@dataclasses.dataclass
class Point:
    x: int
    y: int


@dataclasses.dataclass
class Unregistered:
    a: int


@copyable("tests.Rejected")
class Rejected(Exception):
    """Registered exception class: re-raised as itself on the caller's side."""


class Counter(Referenceable):
    def __init__(self) -> None:
        self.value = 0

    def remote_add(self, n: int) -> int:
        self.value += n
        return self.value


class Callback(Referenceable):
    def __init__(self) -> None:
        self.received: list[Any] = []

    def remote_notify(self, value: Any) -> str:
        self.received.append(value)
        return f"got {value}"


class Whoami(Viewable):
    def view_whoami(self, perspective: Any) -> str:
        return repr(perspective)


class Service(Root):
    """The root used by these tests; remembers the server side of each connection."""

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.sessions: list[broker.Session] = []
        self.hung: list[Deferred[Any]] = []
        self.cancelled = 0
        self.one_way: list[Any] = []
        self.kept: list[Any] = []

    def root_object(self, caller: Any) -> Referenceable:
        self.sessions.append(caller)
        return self

    def remote_echo(self, value: Any) -> Any:
        return value

    def remote_add(self, a: int, b: int = 0) -> int:
        return a + b

    def remote_fail(self, message: str) -> None:
        raise ValueError(message)

    def remote_reject(self, message: str) -> None:
        raise Rejected(message)

    def remote_counter(self) -> Counter:
        return Counter()

    def remote_nested(self) -> dict[str, Any]:
        return {"counters": [Counter(), Counter()], "point": Point(1, 2)}

    def remote_call_back(self, callback: RemoteReference, value: Any) -> Deferred[Any]:
        return callback.call_remote("notify", value)

    def remote_same(self, a: Any, b: Any) -> bool:
        return a is b

    def remote_give_back(self, obj: Any) -> Any:
        return obj

    def remote_keep(self, *objs: Any) -> None:
        self.kept.extend(objs)

    def remote_later(self, value: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.reactor.call_later(0, d.callback, value)
        return d

    async def remote_coro(self, value: Any) -> Any:
        d: Deferred[Any] = Deferred()
        self.reactor.call_later(0, d.callback, value)
        return await d

    def remote_hang(self) -> Deferred[Any]:
        def cancelled(d: Deferred[Any]) -> None:
            self.cancelled += 1

        d: Deferred[Any] = Deferred(cancelled)
        self.hung.append(d)
        return d

    def remote_record(self, value: Any) -> None:
        self.one_way.append(value)

    def remote_whoami(self) -> Whoami:
        return Whoami()

    def remote_secret(self) -> Unregistered:
        return Unregistered(1)


def open_pair(*, client_options: dict[str, Any] | None = None, **server_options: Any) -> tuple[Service, MemoryPair]:
    clock = Clock()
    service = Service(clock)
    pair = memory_pair(service, clock=clock, server_options=server_options, client_options=client_options)
    assert service.sessions == [pair.server_session]
    return service, pair


def sent_messages(transport: Any) -> list[Any]:
    """Every message written on ``transport`` since the connection began (hello first)."""
    return decode_all(transport.value())


VALUES = [
    None, True, False, 0, -1, 2**63 - 1, -(2**63), 1.5, "", "héllo ✓", b"", b"\x00\xff" * 10,
    [], [1, [2, [3]]], {}, {"a": 1, "b": [None, {"c": b"x"}]}, {1: "int key"},
]


# -- values, references, copies ------------------------------------------------------------------


def test_every_value_type() -> None:
    _, pair = open_pair()
    for value in VALUES:
        assert pair.call("echo", value) == value
    assert pair.call("echo", (1, 2)) == [1, 2]
    assert pair.call("add", 2, b=3) == 5
    assert pair.call("echo", "x" * (5 * 1024 * 1024)) == "x" * (5 * 1024 * 1024)


def test_values_survive_byte_by_byte_delivery() -> None:
    clock = Clock()
    pair = memory_pair(Service(clock), clock=clock, chunk_size=1)
    for value in VALUES:
        assert pair.call("echo", value) == value
    counter = pair.call("counter")
    assert pair.result(counter.call_remote("add", 4)) == 4


def test_deferred_and_coroutine_results() -> None:
    _, pair = open_pair()
    d = pair.root.call_remote("later", 7)
    pair.transports.pump()  # bytes only: the server's call_later(0) has not run yet
    assert not d.called
    assert pair.result(d) == 7
    assert pair.call("coro", [8]) == [8]


def test_references_both_ways_and_nested() -> None:
    _, pair = open_pair()
    counter = pair.call("counter")
    assert isinstance(counter, RemoteReference)
    assert pair.result(counter.call_remote("add", 2)) == 2
    assert pair.result(counter.call_remote("add", 3)) == 5
    callback = Callback()
    assert pair.call("call_back", callback, "hi") == "got hi"
    assert callback.received == ["hi"]
    nested = pair.call("nested")
    assert [pair.result(c.call_remote("add", 1)) for c in nested["counters"]] == [1, 1]
    assert nested["point"] == Point(1, 2)
    # A reference handed back arrives as the original object, not a proxy.
    assert pair.call("same", counter, counter) is True
    assert pair.call("give_back", counter) is counter
    # The same proxy every time the same object comes back; the server's own root handed back is itself.
    assert nested["counters"][0] is not nested["counters"][1]
    assert pair.call("same", pair.root, pair.root) is True


def test_copyables() -> None:
    server_registry = CopyRegistry()
    server_registry.register("tests.Point", Point)
    server_registry.register("tests.Secret", Unregistered)  # the client never registered it
    _, pair = open_pair(registry=server_registry)
    assert pair.call("echo", Point(3, 4)) == Point(3, 4)
    with pytest.raises(TypeError, match="register it as copyable"):
        pair.call("echo", Unregistered(1))
    with pytest.raises(UnregisteredCopyError, match="tests.Secret"):
        pair.call("secret")
    # The connection survives a refused copy.
    assert pair.call("add", 1, 1) == 2
    assert pair.client_session.state is State.OPEN and pair.server_session.state is State.OPEN


def test_remote_errors() -> None:
    _, pair = open_pair()
    with pytest.raises(RemoteError) as info:
        pair.call("fail", "boom")
    assert info.value.remote_type == "builtins.ValueError"
    assert info.value.message == "boom"
    assert info.value.remote_traceback is None
    with pytest.raises(Rejected, match="no way"):
        pair.call("reject", "no way")
    with pytest.raises(UnimplementedError, match="nope"):
        pair.call("nope")
    with pytest.raises(RemoteError):
        pair.call("add", "wrong", "arity", "too many")


def test_debug_sends_traceback() -> None:
    _, pair = open_pair(debug=True)
    with pytest.raises(RemoteError) as info:
        pair.call("fail", "boom")
    assert "remote_fail" in (info.value.remote_traceback or "")


def test_viewable_receives_perspective() -> None:
    _, pair = open_pair()
    view = pair.call("whoami")
    assert pair.result(view.call_remote("whoami")) == "<anonymous>"


def test_dispatcher_is_not_a_remote_method() -> None:
    _, pair = open_pair()
    with pytest.raises(UnimplementedError):
        pair.call("message_received", None, "add", [1, 2], {})


# -- one-way calls -------------------------------------------------------------------------------


def test_one_way_calls() -> None:
    service, pair = open_pair()
    pair.root.call_remote_no_answer("record", 1)
    pair.root.call_remote_no_answer("fail", "ignored")
    pair.root.call_remote_no_answer("later", "deferred, twice")
    pair.root.call_remote_no_answer("later", "deferred, twice")
    pair.root.call_remote_no_answer("record", 2)
    assert pair.call("add", 0) == 0  # ordered after the one-way calls
    assert service.one_way == [1, 2]
    assert service.sessions[0].answers == {}
    # Nothing answered the one-way calls: one answer (to add) is all the server sent.
    assert [type(m) for m in sent_messages(pair.server_transport)] == [Hello, Answer]


def test_one_way_call_that_cannot_be_encoded_raises_at_the_call_site() -> None:
    service, pair = open_pair()
    before = pair.client_transport.value()
    with pytest.raises(TypeError, match="register it as copyable"):
        pair.root.call_remote_no_answer("record", [Counter(), Unregistered(1)])
    assert len(pair.client_session.exports) == 0  # the Counter in the refused call was not counted
    pair.pump()
    assert pair.client_transport.value() == before  # nothing was sent
    assert service.one_way == []
    pair.root.call_remote_no_answer("record", 3)
    assert pair.call("add", 0) == 0
    assert service.one_way == [3]


def test_one_way_call_on_a_closed_connection_raises() -> None:
    _, pair = open_pair()
    pair.client_session.disconnect()
    pair.pump()
    with pytest.raises(ConnectionLost, match="cannot call 'record'"):
        pair.root.call_remote_no_answer("record", 1)


def test_one_way_calls_count_against_max_running_calls(caplog: pytest.LogCaptureFixture) -> None:
    service, pair = open_pair(limits=Limits(max_running_calls=2))
    pair.root.call_remote_no_answer("hang")
    pair.root.call_remote_no_answer("hang")
    pair.pump()
    assert len(service.hung) == 2 and pair.server_session.answers == {}
    with pytest.raises(OverloadedError, match="2 calls running; the limit is 2"):
        pair.call("add", 1, 1)
    with caplog.at_level(logging.INFO, logger="broker.calls"):
        pair.root.call_remote_no_answer("record", "refused")
        pair.pump()
    assert service.one_way == []  # refused, not run
    assert "refused one-way call 'record'" in caplog.text
    service.hung[0].callback(None)  # one finishes: room for one more
    assert pair.call("add", 1, 1) == 2
    pair.root.call_remote_no_answer("record", "runs")
    pair.pump()
    assert service.one_way == ["runs"]


@pytest.mark.parametrize("how", ["goodbye", "reset"])
def test_running_one_way_calls_are_cancelled_when_the_peer_disconnects(how: str) -> None:
    service, pair = open_pair()
    pair.root.call_remote_no_answer("hang")
    pair.root.call_remote_no_answer("hang")
    pair.pump()
    assert len(service.hung) == 2 and service.cancelled == 0
    if how == "goodbye":
        pair.client_session.disconnect()
        pair.pump()
    else:
        pair.lose("client")
    assert service.cancelled == 2
    assert all(d.called for d in service.hung)
    assert pair.server_session.lost is not None and pair.server_session.lost.cause == how


# -- the bootstrap object ------------------------------------------------------------------------


def test_a_sender_ref_to_object_0_is_the_peers_bootstrap_reference_never_released() -> None:
    clock = Clock()
    service = Service(clock)
    factory = BrokerFactory(clock, service)
    raw = raw_peer(factory)
    session = raw.server.session
    encoder = wire.WireEncoder()
    hello = encoder.encode(wire.WireDecoder().hello())
    raw.send(hello + encoder.encode(Call(1, 0, "keep", [ExportedRef(0), ExportedRef(0)], {}, 0)))
    assert session.state is State.OPEN
    first, second = service.kept
    assert first is session.root() and second is first  # the bootstrap proxy, not a counted import
    assert first.object_id == 0
    assert len(session.imports) == 0
    del first, second
    service.kept.clear()
    gc.collect()
    raw.pump()
    raw.send(encoder.encode(Call(2, 0, "add", [1, 2], {}, 0)))
    assert raw.peer.messages()[1:] == [Answer(1, None), Answer(2, 3)]  # no decref of object 0, ever
    assert session.root() is session.root()


def test_the_bootstrap_reference_is_not_released_when_dropped() -> None:
    service, pair = open_pair()
    root = pair.root
    assert root is pair.client_session.root()
    del root
    pair.root = None  # type: ignore[assignment]
    gc.collect()
    pair.pump()
    assert not any(isinstance(m, Decref) for m in sent_messages(pair.client_transport))
    assert pair.result(pair.client_session.root().call_remote("add", 1, 2)) == 3


# -- cancel, disconnect, goodbye -------------------------------------------------------------------


def test_disconnect_fails_pending_calls_and_notifies_once() -> None:
    service, pair = open_pair()
    root = pair.root
    counter = pair.call("counter")
    notified: list[Any] = []
    root.notify_on_disconnect(notified.append)
    counter.notify_on_disconnect(notified.append)
    ignored: list[Any] = []
    root.notify_on_disconnect(ignored.append)
    root.dont_notify_on_disconnect(ignored.append)
    pending = root.call_remote("hang")
    pair.pump()
    assert len(service.hung) == 1 and not pending.called  # the hang call is running on the server now
    service.sessions[0].disconnect()
    with pytest.raises(ConnectionLost) as info:
        pair.result(pending)
    assert info.value.cause == "goodbye" and info.value.goodbye_kind == "normal"
    assert sorted(r.object_id for r in notified) == [0, counter.object_id]
    assert ignored == []
    with pytest.raises(ConnectionLost):
        pair.call("add", 1)
    assert service.cancelled == 1  # the server cancelled the running call
    assert len(root.session.questions) == 0 and len(root.session.imports) == 0
    pair.pump()
    assert len(notified) == 2  # once
    late: list[Any] = []
    root.notify_on_disconnect(late.append)  # after the close: runs at once
    assert late == [root]


def test_goodbye_is_the_last_message_and_the_peer_sees_its_kind() -> None:
    service, pair = open_pair()
    pending = pair.root.call_remote("hang")
    pair.pump()
    pair.client_session.disconnect()
    pair.pump()
    sent = sent_messages(pair.client_transport)
    assert sent[-1] == Goodbye("normal", "")
    assert not any(isinstance(m, Goodbye) for m in sent_messages(pair.server_transport))  # none back
    server_lost = pair.server_session.lost
    assert server_lost is not None
    assert (server_lost.cause, server_lost.goodbye_kind) == ("goodbye", "normal")
    assert service.cancelled == 1
    client_lost = pair.client_session.lost
    assert client_lost is not None and client_lost.cause == "local"
    with pytest.raises(ConnectionLost):
        result_of(pending)
    assert pair.client_session.state is State.CLOSED and pair.server_session.state is State.CLOSED
    assert pair.client_transport.disconnected and pair.server_transport.disconnected


def test_lost_transport_mid_call_fails_calls_and_cancels_the_server_side() -> None:
    service, pair = open_pair()
    notified: list[Any] = []
    pair.root.notify_on_disconnect(notified.append)
    pending = pair.root.call_remote("hang")
    pair.pump()
    pair.lose("server")  # the server's transport resets: no goodbye from anyone
    with pytest.raises(ConnectionLost) as info:
        result_of(pending)
    assert info.value.cause == "reset" and info.value.cause in CAUSES
    assert info.value.goodbye_kind is None
    assert service.cancelled == 1
    assert notified == [pair.root]
    assert not any(isinstance(m, Goodbye) for m in sent_messages(pair.client_transport))
    assert not any(isinstance(m, Goodbye) for m in sent_messages(pair.server_transport))


def test_cancel_reaches_server() -> None:
    service, pair = open_pair()
    pending = pair.root.call_remote("hang")
    pair.pump()
    assert len(service.hung) == 1
    pending.cancel()
    with pytest.raises(CancelledError):
        result_of(pending)
    pair.pump()  # the cancel message was handled
    assert service.cancelled == 1
    assert service.sessions[0].answers == {}
    assert pair.client_session.questions == {}
    assert pair.call("add", 0) == 0


# -- reference counting, forged ids, limits --------------------------------------------------------


def test_references_released_back_to_baseline() -> None:
    service, pair = open_pair()
    server = service.sessions[0]
    refs = [pair.call("counter") for _ in range(20)]
    nested = pair.call("nested")
    assert len(server.exports) == 22
    assert len(pair.client_session.imports) == 22
    del refs, nested
    gc.collect()
    pair.pump()  # the releases were queued from the collector and sent
    assert len(server.exports) == 0
    assert len(pair.client_session.imports) == 0
    messages = sent_messages(pair.client_transport)
    assert sorted(count for _, count in releases_in(messages)) == [1] * 22
    assert sum(isinstance(m, Decrefs) for m in messages) == 1  # one message for the whole batch


def test_a_reference_received_twice_is_released_with_its_count() -> None:
    service, pair = open_pair()
    counter = pair.call("counter")
    counter_id = counter.object_id
    assert pair.call("give_back", counter) is counter  # the server sends it again: received twice
    again = pair.call("echo", counter)  # three times
    assert again is counter
    assert len(service.sessions[0].exports) == 1
    del counter, again
    gc.collect()
    pair.pump()
    assert releases_in(sent_messages(pair.client_transport)) == [(counter_id, 3)]
    assert len(service.sessions[0].exports) == 0


def test_call_to_unknown_object_fails_without_closing() -> None:
    _, pair = open_pair()
    forged = RemoteReference(pair.client_session, 4242)
    with pytest.raises(InvalidReferenceError, match="never given"):
        pair.result(forged.call_remote("add", 1))
    assert pair.call("add", 1, 2) == 3


def test_forged_returned_ref_is_refused_without_closing() -> None:
    clock = Clock()
    raw = raw_peer(BrokerFactory(clock, Service(clock)))
    encoder = wire.WireEncoder()
    raw.send(encoder.encode(wire.WireDecoder().hello())
             + encoder.encode(Call(1, 0, "echo", [ReturnedRef(99)], {}, 0))
             + encoder.encode(Call(2, 0, "add", [2, 2], {}, 0)))
    replies = raw.peer.messages()[1:]
    assert isinstance(replies[0], Error)
    assert replies[0].request_id == 1 and replies[0].failure.kind == "invalid"
    assert "not ours to return" in replies[0].failure.message
    assert replies[1] == Answer(2, 4)
    assert raw.server.session.state is State.OPEN


def test_outstanding_call_limit() -> None:
    _, pair = open_pair(client_options={"limits": Limits(max_outstanding_calls=2)})
    first, second = pair.root.call_remote("later", 1), pair.root.call_remote("later", 2)
    with pytest.raises(LimitExceeded, match="outstanding"):
        result_of(pair.root.call_remote("add", 1))  # refused at once, before any pump
    assert [pair.result(first), pair.result(second)] == [1, 2]
    assert pair.call("add", 1) == 1  # room again


def test_frame_size_limit_gives_caller_an_error() -> None:
    _, pair = open_pair(limits=Limits(max_frame_size=64 * 1024))
    with pytest.raises(LimitExceeded, match="at most 65536"):
        pair.call("echo", b"x" * 100_000)
    assert pair.call("add", 1, 2) == 3


def test_live_reference_limit_gives_overloaded() -> None:
    service, pair = open_pair(limits=Limits(max_live_references=3))
    kept = [pair.call("counter") for _ in range(3)]
    with pytest.raises(OverloadedError, match="live references"):
        pair.call("counter")
    assert len(service.sessions[0].exports) == 3  # the refused reference was not counted
    del kept
    gc.collect()
    pair.pump()
    assert len(service.sessions[0].exports) == 0
    assert pair.call("counter") is not None  # room again after releases


# -- time: call_timeout and the handshake timeout, on the fake clock --------------------------------


def test_call_timeout_cancels_on_the_server() -> None:
    service, pair = open_pair(client_options={"limits": Limits(call_timeout=5.0)})
    pending = pair.root.call_remote("hang")  # the server never answers this one
    pair.advance(4.999)
    assert not pending.called and service.cancelled == 0
    pair.advance(0.001)
    with pytest.raises(TimeoutError):
        result_of(pending)
    assert service.cancelled == 1  # the cancel reached the server
    assert service.sessions[0].answers == {}
    assert pair.client_session.questions == {}
    assert pair.call("add", 0) == 0  # the connection lives on


def test_call_timeout_does_not_fire_for_an_answered_call() -> None:
    no_heartbeat = Limits(dead_after=None)  # its timers would be pending too
    _, pair = open_pair(client_options={"limits": Limits(call_timeout=5.0, dead_after=None)},
                        limits=no_heartbeat)
    assert pair.call("later", 1) == 1
    assert pair.clock.get_delayed_calls() == []  # the answer cancelled the timer
    pair.advance(10)
    assert pair.call("add", 1) == 1


def test_silent_peer_times_out_the_handshake() -> None:
    clock = Clock()
    raw = raw_peer(BrokerFactory(clock, Service(clock), handshake_timeout=30.0))
    clock.advance(29.999)
    raw.pump()
    assert raw.peer.lost is None and raw.server.session.state is State.HANDSHAKE
    clock.advance(0.001)
    raw.pump()
    assert raw.peer.lost is not None
    assert [type(m) for m in raw.peer.messages()] == [Hello]  # no goodbye before a hello
    lost = raw.server.session.lost
    assert lost is not None and lost.cause == "timeout"


# -- peers that are not pbroker --------------------------------------------------------------------


def test_garbage_closes_only_that_connection(caplog: pytest.LogCaptureFixture) -> None:
    _, pair = open_pair()
    with caplog.at_level(logging.WARNING, logger="broker"):
        garbage = raw_peer(pair.server_factory, 40001)
        garbage.send(b"GET / HTTP/1.1\r\n\r\n" * 10)
        oversized = raw_peer(pair.server_factory, 40002)
        oversized.send(struct.pack(">I", 2**31) + b"x" * 100)
    for raw in (garbage, oversized):
        hello, goodbye = raw.peer.messages()
        assert isinstance(hello, Hello)
        assert isinstance(goodbye, Goodbye) and goodbye.kind == "invalid"
        assert raw.peer.lost is not None  # the server closed it
        assert raw.server.session.lost is not None and raw.server.session.lost.cause == "protocol"
    assert "not a pbroker peer: it sent 'GET / HT'" in caplog.text
    assert "peer sent bad data" in caplog.text
    assert pair.call("add", 2, 2) == 4  # the good connection is untouched


def test_version_mismatch_is_refused() -> None:
    _, pair = open_pair()
    raw = raw_peer(pair.server_factory)
    raw.send(wire.WireEncoder().encode(Hello(wire.PROTOCOL_VERSION + 99)))
    hello, goodbye = raw.peer.messages()  # the server's own hello, then a goodbye, then it closed
    assert isinstance(hello, Hello) and hello.version == wire.PROTOCOL_VERSION
    assert isinstance(goodbye, Goodbye) and goodbye.kind == "unimplemented"
    assert f"version {wire.PROTOCOL_VERSION + 99}" in goodbye.message
    assert raw.peer.lost is not None
    assert pair.call("add", 1, 1) == 2
