"""net.basic over real sockets, on every reactor backend: a peer that breaks the framing limits is
dropped with the reason, and only that peer — the server goes on serving the others."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from net.basic import Int32StringReceiver, LineReceiver
from net.defer import Deferred, succeed
from net.endpoints import client, server
from net.error import ProtocolViolation
from net.protocol import ClientFactory, Factory, Protocol

LIMIT = 100


class Queue:
    """Hands items to ``get()`` callers in order, whether they come before or after ``put()``."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.waiters: list[Deferred[Any]] = []

    def put(self, item: Any) -> None:
        if self.waiters:
            self.waiters.pop(0).callback(item)
        else:
            self.items.append(item)

    def get(self) -> Deferred[Any]:
        if self.items:
            return succeed(self.items.pop(0))
        d: Deferred[Any] = Deferred()
        self.waiters.append(d)
        return d


class Peer(Protocol):
    """What both framings' test protocols share: a queue of messages, one of close reasons
    (the exceptions: a Failure passed to ``callback`` would turn into an errback)."""

    def connection_made(self, transport: Any) -> None:
        self.received = Queue()
        self.lost = Queue()

    def connection_lost(self, reason: Any) -> None:
        self.lost.put(reason.value)
        if isinstance(self.factory, RecordingFactory):
            self.factory.lost.put(reason.value)


class LinePeer(Peer, LineReceiver):
    max_length = LIMIT
    send = LineReceiver.send_line

    def line_received(self, line: bytes) -> None:
        self.received.put(line)


class StringPeer(Peer, Int32StringReceiver):
    max_length = LIMIT
    send = Int32StringReceiver.send_string

    def string_received(self, data: bytes) -> None:
        self.received.put(data)


class EchoLines(LinePeer):
    def line_received(self, line: bytes) -> None:
        self.send_line(line)


class EchoStrings(StringPeer):
    def string_received(self, data: bytes) -> None:
        self.send_string(data)


class RecordingFactory(Factory):
    """Queues the close reasons of the server's connections, in the order they close."""

    def __init__(self) -> None:
        self.lost = Queue()


FRAMINGS = {
    # name: (server protocol, client protocol, bytes that break the server's limit)
    "line": (EchoLines, LinePeer, b"x" * (LIMIT + 1) + b"\r\n"),
    "int32": (EchoStrings, StringPeer, struct.pack("!I", LIMIT + 1)),
}


@pytest.mark.parametrize("framing", sorted(FRAMINGS))
def test_violation_drops_only_that_connection(reactor: Any, run: Any, framing: str) -> None:
    server_protocol, client_protocol, violation = FRAMINGS[framing]

    async def scenario() -> None:
        factory = RecordingFactory.for_protocol(server_protocol)
        assert isinstance(factory, RecordingFactory)
        port = await server(reactor, "tcp:0:interface=127.0.0.1").listen(factory)
        address = f"tcp:127.0.0.1:{port.get_host().port}"

        async def connect() -> Any:
            factory = ClientFactory.for_protocol(client_protocol)
            return await client(reactor, address).connect(factory)

        async def round_trip(peer: Any, message: bytes) -> None:
            peer.send(message)
            assert await peer.received.get() == message

        good = await connect()
        await round_trip(good, b"before")

        bad = await connect()
        bad.transport.write(violation)
        reason = await factory.lost.get()  # the first server-side connection to end: bad's
        assert isinstance(reason, ProtocolViolation), reason
        await bad.lost.get()

        await round_trip(good, b"after")
        newcomer = await connect()
        await round_trip(newcomer, b"new")
        await round_trip(good, b"x" * LIMIT)

        for peer in (good, newcomer):
            peer.transport.lose_connection()
            await peer.lost.get()
        await port.stop_listening()

    run(reactor, scenario())
