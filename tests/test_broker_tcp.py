"""The broker over real loopback TCP sockets, on every reactor backend: where sockets matter.

The checks of ``tests/broker_sockets.py`` (calls, references, errors, big payloads through the
real transport, a server disconnect, a peer process that dies, the blocking and asyncio clients
end to end), which ``tests/test_broker_unix.py`` runs over Unix sockets; and what is TCP's own
here: back-pressure on a reader that stops (small kernel buffers), peers that are not pbroker.
Everything else about the broker is tested over memory transports in ``tests/test_broker.py``.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import struct
import subprocess
import threading
from typing import Any

import pytest
from broker_pair import decode_all
from broker_sockets import (
    BROKER_CHECKS,
    check_asyncio_client_and_server,
    check_blocking_client,
    check_peer_killed_mid_call,
    serve_and_connect,
    tcp_endpoints,
)

import broker
from broker import wire
from broker.messages import Goodbye, Hello
from broker.protocol import BrokerClientFactory, BrokerFactory, BrokerProtocol
from net.defer import Deferred, gather
from net.endpoints import client, server

TCP = tcp_endpoints()


# -- what every socket kind must do (tests/broker_sockets.py) ---------------------------------------


@pytest.mark.parametrize("check", BROKER_CHECKS, ids=lambda c: c.__name__)
def test_broker_checks(reactor: Any, run: Any, check: Any) -> None:
    run(reactor, check(reactor, TCP))


def test_peer_process_killed_mid_call(reactor: Any, run: Any, server_process: tuple[subprocess.Popen[str], int]) -> None:
    proc, number = server_process
    run(reactor, check_peer_killed_mid_call(reactor, proc, f"tcp:127.0.0.1:{number}"))


def test_blocking_client() -> None:
    check_blocking_client(TCP)


def test_asyncio_client_and_server() -> None:
    check_asyncio_client_and_server(TCP)


# -- back-pressure through the real transport ------------------------------------------------------


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
        port = await server(reactor, TCP.server).listen(factory)
        client_factory = BrokerClientFactory(reactor)
        proto = await client(reactor, TCP.client(port)).connect(client_factory)
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
        _, port, root = await serve_and_connect(reactor, TCP)
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
        _, port, _ = await serve_and_connect(reactor, TCP)
        payload = wire.WireEncoder().encode(Hello(wire.PROTOCOL_VERSION + 99))
        data = await reactor.defer_to_thread(_talk, port.get_host().port, payload)
        hello, goodbye = decode_all(data)  # the server's own hello, a goodbye, then it closed
        assert isinstance(hello, Hello) and hello.version == wire.PROTOCOL_VERSION
        assert isinstance(goodbye, Goodbye) and goodbye.kind == "unimplemented"
        await port.stop_listening()

    run(reactor, scenario())


def test_client_connections_say_goodbye_when_their_reactor_shuts_down(reactor: Any, run: Any) -> None:
    # A program that just stops its reactor (a window closed, Ctrl-C) must not leave its server
    # seeing a dropped socket: its client connections send a goodbye during the shutdown.
    class Greeter(broker.Root):
        sessions: list[Any] = []

        def remote_hello(self) -> str:
            call = broker.current_call()
            assert call is not None
            self.sessions.append(call.session)
            return "hi"

    greeter = Greeter()
    outcome: dict[str, Any] = {}

    async def start() -> None:
        port = await broker.serve(reactor, "tcp:0:interface=127.0.0.1", greeter)
        root = await broker.connect(reactor, f"tcp:127.0.0.1:{port.get_host().port}")
        outcome["answer"] = await root.call_remote("hello")
        outcome["client"] = root.session
        reactor.stop()  # nothing else closes the connection

    def begin() -> None:
        from net.defer import ensure_deferred

        ensure_deferred(start()).add_errback(lambda f: (outcome.setdefault("error", f), reactor.stop()))

    reactor.call_when_running(begin)
    reactor.run(install_signal_handlers=False)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["answer"] == "hi"
    assert outcome["client"].lost is not None  # the client side closed during the shutdown
    [server_side] = greeter.sessions
    # The server shares this reactor: run it again until the server side has read what came.
    run(reactor, server_side.when_closed())
    assert server_side.lost is not None and server_side.lost.cause == "goodbye", server_side.lost
    assert server_side.lost.goodbye_kind == "normal"
