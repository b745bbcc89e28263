"""The broker over real loopback sockets, on every reactor backend."""

from __future__ import annotations

import dataclasses
import gc
import logging
import socket
import struct
from typing import Any

import pytest

import broker
from broker import (
    ConnectionLost,
    CopyRegistry,
    InvalidReferenceError,
    LimitExceeded,
    Limits,
    Referenceable,
    RemoteError,
    RemoteReference,
    Root,
    UnimplementedError,
    UnregisteredCopyError,
    Viewable,
    copyable,
)
from net.defer import CancelledError, Deferred


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
        self.pending: Deferred[Any] | None = None
        self.cancelled = 0
        self.one_way: list[Any] = []

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

        self.pending = Deferred(cancelled)
        return self.pending

    def remote_record(self, value: Any) -> None:
        self.one_way.append(value)

    def remote_whoami(self) -> Whoami:
        return Whoami()

    def remote_secret(self) -> Unregistered:
        return Unregistered(1)


async def open_pair(reactor: Any, **server_options: Any) -> tuple[Service, Any, RemoteReference]:
    service = Service(reactor)
    port = await broker.serve(reactor, "tcp:0:interface=127.0.0.1", service, **server_options)
    root = await broker.connect(reactor, f"tcp:127.0.0.1:{port.get_host().port}")
    return service, port, root


async def turn(reactor: Any) -> None:
    """Wait until work queued with call_from_thread so far (scheduled releases) has run: FIFO."""
    d: Deferred[None] = Deferred()
    reactor.call_from_thread(d.callback, None)
    await d


VALUES = [
    None, True, False, 0, -1, 2**63 - 1, -(2**63), 1.5, "", "héllo ✓", b"", b"\x00\xff" * 10,
    [], [1, [2, [3]]], {}, {"a": 1, "b": [None, {"c": b"x"}]}, {1: "int key"},
]


def test_every_value_type(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        _, port, root = await open_pair(reactor)
        for value in VALUES:
            assert await root.call_remote("echo", value) == value
        assert await root.call_remote("echo", (1, 2)) == [1, 2]
        assert await root.call_remote("add", 2, b=3) == 5
        assert await root.call_remote("echo", "x" * (5 * 1024 * 1024)) == "x" * (5 * 1024 * 1024)
        await port.stop_listening()

    run(reactor, scenario())


def test_deferred_and_coroutine_results(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        _, _, root = await open_pair(reactor)
        assert await root.call_remote("later", 7) == 7
        assert await root.call_remote("coro", [8]) == [8]

    run(reactor, scenario())


def test_references_both_ways_and_nested(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        service, _, root = await open_pair(reactor)
        counter = await root.call_remote("counter")
        assert isinstance(counter, RemoteReference)
        assert await counter.call_remote("add", 2) == 2
        assert await counter.call_remote("add", 3) == 5
        callback = Callback()
        assert await root.call_remote("call_back", callback, "hi") == "got hi"
        assert callback.received == ["hi"]
        nested = await root.call_remote("nested")
        assert [await c.call_remote("add", 1) for c in nested["counters"]] == [1, 1]
        assert nested["point"] == Point(1, 2)
        # A reference handed back arrives as the original object, not a proxy.
        assert await root.call_remote("same", counter, counter) is True
        assert await root.call_remote("give_back", counter) is counter

    run(reactor, scenario())


def test_copyables(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        server_registry = CopyRegistry()
        server_registry.register("tests.Point", Point)
        server_registry.register("tests.Secret", Unregistered)  # the client never registered it
        _, _, root = await open_pair(reactor, registry=server_registry)
        assert await root.call_remote("echo", Point(3, 4)) == Point(3, 4)
        with pytest.raises(TypeError, match="register it as copyable"):
            await root.call_remote("echo", Unregistered(1))
        with pytest.raises(UnregisteredCopyError, match="tests.Secret"):
            await root.call_remote("secret")
        # The connection survives a refused copy.
        assert await root.call_remote("add", 1, 1) == 2

    run(reactor, scenario())


def test_remote_errors(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        _, _, root = await open_pair(reactor)
        with pytest.raises(RemoteError) as info:
            await root.call_remote("fail", "boom")
        assert info.value.remote_type == "builtins.ValueError"
        assert info.value.message == "boom"
        assert info.value.remote_traceback is None
        with pytest.raises(Rejected, match="no way"):
            await root.call_remote("reject", "no way")
        with pytest.raises(UnimplementedError, match="nope"):
            await root.call_remote("nope")
        with pytest.raises(RemoteError):
            await root.call_remote("add", "wrong", "arity", "too many")

    run(reactor, scenario())


def test_debug_sends_traceback(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        _, _, root = await open_pair(reactor, debug=True)
        with pytest.raises(RemoteError) as info:
            await root.call_remote("fail", "boom")
        assert "remote_fail" in (info.value.remote_traceback or "")

    run(reactor, scenario())


def test_one_way_calls(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        service, _, root = await open_pair(reactor)
        root.call_remote_no_answer("record", 1)
        root.call_remote_no_answer("fail", "ignored")
        root.call_remote_no_answer("later", "deferred, twice")
        root.call_remote_no_answer("later", "deferred, twice")
        root.call_remote_no_answer("record", 2)
        assert await root.call_remote("add", 0) == 0  # ordered after the one-way calls
        assert service.one_way == [1, 2]
        assert service.sessions[0].answers == {}

    run(reactor, scenario())


def test_viewable_receives_perspective(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        _, _, root = await open_pair(reactor)
        view = await root.call_remote("whoami")
        assert await view.call_remote("whoami") == "<anonymous>"

    run(reactor, scenario())


def test_disconnect_fails_pending_calls_and_notifies_once(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        service, _, root = await open_pair(reactor)
        counter = await root.call_remote("counter")
        notified: list[Any] = []
        root.notify_on_disconnect(notified.append)
        counter.notify_on_disconnect(notified.append)
        ignored: list[Any] = []
        root.notify_on_disconnect(ignored.append)
        root.dont_notify_on_disconnect(ignored.append)
        pending = root.call_remote("hang")
        await root.call_remote("add", 0)  # the hang call is running on the server now
        service.sessions[0].disconnect()
        with pytest.raises(ConnectionLost):
            await pending
        assert sorted(r.object_id for r in notified) == [0, counter.object_id]
        assert ignored == []
        with pytest.raises(ConnectionLost):
            await root.call_remote("add", 1)
        assert service.cancelled == 1  # the server cancelled the running call
        assert len(root.session.questions) == 0 and len(root.session.imports) == 0

    run(reactor, scenario())


def test_cancel_reaches_server(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        service, _, root = await open_pair(reactor)
        pending = root.call_remote("hang")
        await root.call_remote("add", 0)
        pending.cancel()
        with pytest.raises(CancelledError):
            await pending
        await root.call_remote("add", 0)  # the cancel message was handled before this answer
        assert service.cancelled == 1
        assert service.sessions[0].answers == {}

    run(reactor, scenario())


def test_references_released_back_to_baseline(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        service, _, root = await open_pair(reactor)
        server = service.sessions[0]
        refs = [await root.call_remote("counter") for _ in range(20)]
        nested = await root.call_remote("nested")
        assert len(server.exports) == 22
        del refs, nested
        gc.collect()
        await turn(reactor)
        await root.call_remote("add", 0)  # decrefs were sent before this call
        assert len(server.exports) == 0
        assert len(root.session.imports) == 0

    run(reactor, scenario())


def test_call_to_unknown_object_fails_without_closing(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        _, _, root = await open_pair(reactor)
        forged = RemoteReference(root.session, 4242)
        with pytest.raises(InvalidReferenceError, match="never given"):
            await forged.call_remote("add", 1)
        assert await root.call_remote("add", 1, 2) == 3

    run(reactor, scenario())


def test_outstanding_call_limit(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        service = Service(reactor)
        port = await broker.serve(reactor, "tcp:0:interface=127.0.0.1", service)
        root = await broker.connect(reactor, f"tcp:127.0.0.1:{port.get_host().port}", limits=Limits(max_outstanding_calls=2))
        first, second = root.call_remote("later", 1), root.call_remote("later", 2)
        with pytest.raises(LimitExceeded, match="outstanding"):
            await root.call_remote("add", 1)
        assert [await first, await second] == [1, 2]

    run(reactor, scenario())


def test_frame_size_limit_gives_caller_an_error(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        _, _, root = await open_pair(reactor, limits=Limits(max_frame_size=64 * 1024))
        with pytest.raises(LimitExceeded, match="at most 65536"):
            await root.call_remote("echo", b"x" * 100_000)
        assert await root.call_remote("add", 1, 2) == 3

    run(reactor, scenario())


def _raw_client(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock


def test_garbage_closes_only_that_connection(reactor: Any, run: Any, caplog: Any) -> None:
    import threading

    async def scenario() -> None:
        service, port, root = await open_pair(reactor)
        number = port.get_host().port
        results: dict[str, bytes] = {}

        def misbehave(name: str, payload: bytes) -> None:
            with _raw_client(number) as sock:
                sock.sendall(payload)
                data = b""
                while chunk := sock.recv(65536):  # the server closes: recv returns b""
                    data += chunk
                results[name] = data

        threads = [
            threading.Thread(target=misbehave, args=("garbage", b"GET / HTTP/1.1\r\n\r\n" * 10)),
            threading.Thread(target=misbehave, args=("oversized", struct.pack(">I", 2**31) + b"x" * 100)),
        ]
        finished: Deferred[None] = Deferred()

        def join() -> None:
            for t in threads:
                t.join()
            reactor.call_from_thread(finished.callback, None)

        for t in threads:
            t.start()
        reactor.call_in_thread(join)
        await finished
        assert set(results) == {"garbage", "oversized"}
        assert await root.call_remote("add", 2, 2) == 4  # the good connection is untouched

    with caplog.at_level(logging.WARNING, logger="broker"):
        run(reactor, scenario())
    assert "peer sent bad data" in caplog.text


def test_version_mismatch_is_refused(reactor: Any, run: Any) -> None:
    import msgpack

    from broker import wire
    from broker.messages import Hello

    async def scenario() -> None:
        service, port, _ = await open_pair(reactor)
        number = port.get_host().port

        def talk() -> bytes:
            with _raw_client(number) as sock:
                sock.sendall(wire.WireEncoder().encode(Hello(wire.PROTOCOL_VERSION + 99)))
                data = b""
                while chunk := sock.recv(65536):
                    data += chunk
                return data

        data = await reactor.defer_to_thread(talk)
        decoder = wire.WireDecoder()
        decoder.receive_data(data)
        hello = decoder.next_message()
        assert isinstance(hello, Hello) and hello.version == wire.PROTOCOL_VERSION
        assert msgpack  # the server answered with its own hello, then closed

    run(reactor, scenario())


def test_blocking_client() -> None:
    from broker import blocking
    from net.reactor import make_reactor

    reactor = make_reactor()
    import threading

    ready = threading.Event()
    box: dict[str, Any] = {}

    def start() -> None:
        d = broker.serve(reactor, "tcp:0:interface=127.0.0.1", Service(reactor))
        d.add_callback(lambda port: box.update(port=port.get_host().port))
        d.add_both(lambda _: ready.set())

    reactor.call_when_running(start)
    thread = threading.Thread(target=reactor.run, daemon=True)
    thread.start()
    assert ready.wait(30)
    try:
        with blocking.connect(f"tcp:127.0.0.1:{box['port']}", timeout=30) as root:
            assert root.call_remote("add", 1, 2) == 3
            counter = root.call_remote("counter")
            assert counter.call_remote("add", 5) == 5
            with pytest.raises(RemoteError, match="boom"):
                root.call_remote("fail", "boom")
            results: list[int] = []
            workers = [threading.Thread(target=lambda i=i: results.append(root.call_remote("add", i, i))) for i in range(8)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            assert sorted(results) == [2 * i for i in range(8)]
    finally:
        reactor.call_from_thread(reactor.stop)
        thread.join(30)


def test_asyncio_client_and_server() -> None:
    import asyncio

    from broker import aio

    async def main() -> None:
        reactor = await aio.get_reactor()
        port = await aio.serve("tcp:0:interface=127.0.0.1", Service(reactor))
        async with aio.connect(f"tcp:127.0.0.1:{port.get_host().port}") as root:
            assert await root.call_remote("add", 1, 2) == 3
            results = await asyncio.gather(*(asyncio.ensure_future(_call(root, i)) for i in range(10)))
            assert results == [2 * i for i in range(10)]
            counter = await root.call_remote("counter")
            assert await counter.call_remote("add", 4) == 4
        await port.stop_listening()
        await reactor.shutdown()

    async def _call(root: RemoteReference, i: int) -> int:
        return await root.call_remote("add", i, i)  # type: ignore[no-any-return]

    asyncio.run(main())


def test_live_reference_limit_gives_overloaded(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        service, _, root = await open_pair(reactor, limits=Limits(max_live_references=3))
        kept = [await root.call_remote("counter") for _ in range(3)]
        with pytest.raises(broker.OverloadedError, match="live references"):
            await root.call_remote("counter")
        assert len(service.sessions[0].exports) == 3  # the refused reference was not counted
        del kept
        gc.collect()
        await turn(reactor)
        assert await root.call_remote("counter") is not None  # room again after releases

    run(reactor, scenario())


def test_dispatcher_is_not_a_remote_method(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        _, _, root = await open_pair(reactor)
        with pytest.raises(UnimplementedError):
            await root.call_remote("message_received", None, "add", [1, 2], {})

    run(reactor, scenario())


def test_call_timeout_cancels_on_the_server(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        service = Service(reactor)
        port = await broker.serve(reactor, "tcp:0:interface=127.0.0.1", service)
        endpoint = f"tcp:127.0.0.1:{port.get_host().port}"
        root = await broker.connect(reactor, endpoint, limits=Limits(call_timeout=0.05))
        with pytest.raises(TimeoutError):
            await root.call_remote("hang")  # the server never answers this one
        await root.call_remote("add", 0)  # the cancel was handled before this answer
        assert service.cancelled == 1
        assert root.session.questions == {}

    run(reactor, scenario())
