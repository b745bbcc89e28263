"""The broker over real loopback sockets, on every reactor backend: where sockets matter.

Big payloads through the real transport, back-pressure on a reader that stops, a peer process
that dies, peers that are not pbroker, and the three client styles end to end. Everything else
about the broker is tested over memory transports in ``tests/test_broker.py``.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import socket
import struct
import subprocess
import sys
import threading
from typing import Any

import pytest
from broker_pair import decode_all
from test_broker import Callback, Point, Service

import broker
from broker import ConnectionLost, RemoteError, RemoteReference, wire
from broker.messages import Goodbye, Hello
from broker.protocol import BrokerClientFactory, BrokerFactory, BrokerProtocol
from net.defer import Deferred, gather
from net.endpoints import client, server

LOCAL = "tcp:0:interface=127.0.0.1"


async def open_pair(reactor: Any, **server_options: Any) -> tuple[Service, Any, RemoteReference]:
    service = Service(reactor)
    port = await broker.serve(reactor, LOCAL, service, **server_options)
    root = await broker.connect(reactor, f"tcp:127.0.0.1:{port.get_host().port}")
    return service, port, root


async def turn(reactor: Any) -> None:
    """Wait until work queued with call_from_thread so far (scheduled releases) has run: FIFO."""
    d: Deferred[None] = Deferred()
    reactor.call_from_thread(d.callback, None)
    await d


# -- big payloads and back-pressure through the real transport -------------------------------------


def test_big_payloads(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        _, port, root = await open_pair(reactor)
        text = "x" * (5 * 1024 * 1024)
        assert await root.call_remote("echo", text) == text
        blob = bytes(range(256)) * (12 * 1024 * 4)  # 12 MiB, under the 16 MiB frame limit
        assert await root.call_remote("echo", blob) == blob
        many = [{"i": i, "s": "y" * 100} for i in range(20_000)]
        assert await root.call_remote("echo", many) == many
        await port.stop_listening()

    run(reactor, scenario())


class Blobs(broker.Root):
    """Answers each call with 1 MiB; :attr:`first_handled` fires once the first answer is queued."""

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.handled = 0
        self.first_handled: Deferred[None] = Deferred()

    def remote_blob(self, i: int) -> bytes:
        self.handled += 1
        if self.handled == 1:
            self.reactor.call_later(0, self.first_handled.callback, None)  # once this dispatch returned
        return bytes([i % 256]) * (1024 * 1024)


class Recording(BrokerFactory):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.protocols: list[BrokerProtocol] = []

    def build_protocol(self, addr: Any) -> BrokerProtocol:
        proto = super().build_protocol(addr)
        self.protocols.append(proto)
        return proto


def test_answers_wait_for_a_client_that_stops_reading(reactor: Any, run: Any) -> None:
    """1 MiB answers to a client not reading stay in the server's buffer, then all arrive, in order."""
    count = 24

    async def scenario() -> None:
        blobs = Blobs(reactor)
        factory = Recording(reactor, blobs)
        port = await server(reactor, LOCAL).listen(factory)
        client_factory = BrokerClientFactory(reactor)
        proto = await client(reactor, f"tcp:127.0.0.1:{port.get_host().port}").connect(client_factory)
        root = await client_factory.root
        server_transport = factory.protocols[0].transport
        # Small kernel buffers (no autotuning): an answer of 1 MiB cannot hide in the kernel.
        proto.transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        server_transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        proto.transport.pause_reading()
        calls = [root.call_remote("blob", i) for i in range(count)]
        await blobs.first_handled  # the server has queued at least one answer
        assert server_transport.get_write_buffer_size() > 512 * 1024  # waiting for the client
        assert not any(d.called for d in calls)  # nothing read on the client side
        proto.transport.resume_reading()
        answers = await gather(*calls)
        assert blobs.handled == count
        assert [hashlib.sha256(a).hexdigest() for a in answers] == [
            hashlib.sha256(bytes([i % 256]) * (1024 * 1024)).hexdigest() for i in range(count)]
        assert await root.call_remote("blob", 1) == b"\x01" * (1024 * 1024)  # the connection lives on
        await port.stop_listening()

    run(reactor, scenario())


# -- disconnects -----------------------------------------------------------------------------------

def test_peer_process_killed_mid_call(reactor: Any, run: Any, server_process: tuple[subprocess.Popen[str], int]) -> None:
    proc, number = server_process

    async def scenario() -> None:
        root = await broker.connect(reactor, f"tcp:127.0.0.1:{number}")
        assert await root.call_remote("add", 1, 2) == 3
        notified: list[Any] = []
        root.notify_on_disconnect(notified.append)
        pending = root.call_remote("hang")
        assert proc.stdout is not None
        assert await reactor.defer_to_thread(proc.stdout.readline) == "hanging\n"
        proc.kill()
        with pytest.raises(ConnectionLost) as info:
            await pending
        assert info.value.cause == "closed" and info.value.goodbye_kind is None
        assert notified == [root]
        with pytest.raises(ConnectionLost, match="cannot call 'add'"):
            await root.call_remote("add", 1, 1)
        assert root.session.questions == {} and len(root.session.imports) == 0

    run(reactor, scenario())


def test_server_disconnect_mid_call(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        service, port, root = await open_pair(reactor)
        counter = await root.call_remote("counter")
        notified: list[Any] = []
        root.notify_on_disconnect(notified.append)
        counter.notify_on_disconnect(notified.append)
        pending = root.call_remote("hang")
        await root.call_remote("add", 0)  # the hang call is running on the server now
        service.sessions[0].disconnect()
        with pytest.raises(ConnectionLost) as info:
            await pending
        assert (info.value.cause, info.value.goodbye_kind) == ("goodbye", "normal")
        assert sorted(r.object_id for r in notified) == [0, counter.object_id]
        assert service.cancelled == 1  # the server cancelled the running call
        await port.stop_listening()

    run(reactor, scenario())


# -- peers that are not pbroker, over real sockets ---------------------------------------------------


def _talk(port: int, payload: bytes) -> bytes:
    """Send ``payload`` from a plain socket; everything received until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(payload)
        data = b""
        while chunk := sock.recv(65536):  # the server closes: recv returns b""
            data += chunk
        return data


def test_garbage_closes_only_that_connection(reactor: Any, run: Any, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        _, port, root = await open_pair(reactor)
        number = port.get_host().port
        results: dict[str, bytes] = {}

        def misbehave(name: str, payload: bytes) -> None:
            results[name] = _talk(number, payload)

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
        for data in results.values():
            hello, goodbye = decode_all(data)
            assert isinstance(hello, Hello)
            assert isinstance(goodbye, Goodbye) and goodbye.kind == "invalid"
        assert await root.call_remote("add", 2, 2) == 4  # the good connection is untouched
        await port.stop_listening()

    with caplog.at_level(logging.WARNING, logger="broker"):
        run(reactor, scenario())
    assert "peer sent bad data" in caplog.text


def test_version_mismatch_is_refused(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        _, port, _ = await open_pair(reactor)
        payload = wire.WireEncoder().encode(Hello(wire.PROTOCOL_VERSION + 99))
        data = await reactor.defer_to_thread(_talk, port.get_host().port, payload)
        hello, goodbye = decode_all(data)  # the server's own hello, a goodbye, then it closed
        assert isinstance(hello, Hello) and hello.version == wire.PROTOCOL_VERSION
        assert isinstance(goodbye, Goodbye) and goodbye.kind == "unimplemented"
        await port.stop_listening()

    run(reactor, scenario())


# -- the three client styles, end to end -------------------------------------------------------------


def test_deferred_client(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        service, port, root = await open_pair(reactor)
        assert await root.call_remote("add", 1, 2) == 3
        assert await root.call_remote("later", 7) == 7
        assert await root.call_remote("coro", [8]) == [8]
        counter = await root.call_remote("counter")
        assert await counter.call_remote("add", 5) == 5
        callback = Callback()
        assert await root.call_remote("call_back", callback, "hi") == "got hi"
        assert await root.call_remote("echo", Point(3, 4)) == Point(3, 4)
        with pytest.raises(RemoteError, match="boom"):
            await root.call_remote("fail", "boom")
        root.call_remote_no_answer("record", 1)
        assert await root.call_remote("add", 0) == 0
        assert service.one_way == [1]
        del counter
        gc.collect()
        await turn(reactor)
        await root.call_remote("add", 0)  # the release was sent before this call
        assert len(service.sessions[0].exports) == 0
        await port.stop_listening()

    run(reactor, scenario())


def test_blocking_client() -> None:
    from broker import blocking
    from net.reactor import make_reactor

    reactor = make_reactor()
    ready = threading.Event()
    box: dict[str, Any] = {}

    def start() -> None:
        d = broker.serve(reactor, LOCAL, Service(reactor))
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
        reactor.close()


def test_asyncio_client_and_server() -> None:
    import asyncio

    from broker import aio

    async def main() -> None:
        reactor = await aio.get_reactor()
        port = await aio.serve(LOCAL, Service(reactor))
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
