"""net.basic's framers stop where the transport says it is closing, the same over TCP and TLS.

A framer reads closing through ``ITransport.is_closing()`` (not a ``disconnecting`` attribute,
which TLS does not have): a protocol that hangs up after its first message gets exactly one
message, whichever transport, whichever reactor backend, however many more were in the same
chunk. Over real loopback sockets; certificates are made at run time. Also: ``is_closing`` on each
transport, and a framer with no transport at all (a unit test's) delivering what it is fed.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from zope.interface.verify import verifyObject

from net.basic import (
    Int32StringReceiver,
    LineOnlyReceiver,
    LineReceiver,
    NetstringReceiver,
)
from net.defer import Deferred
from net.error import ConnectionDone, ProtocolViolation
from net.interfaces import ITransport
from net.protocol import Factory
from net.testing import CollectingFactory, EndpointPair, MemoryTransport, Recorder, iterations
from net.tls import DevCerts, make_dev_certs
from net.tls.transport import TLSProtocol


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> DevCerts:
    return make_dev_certs(tmp_path_factory.mktemp("certs"))


def esc(path: Any) -> str:
    """A path as an endpoint-string value (colons and backslashes escaped)."""
    return str(path).replace("\\", "\\\\").replace(":", "\\:")


def make_pair(reactor: Any, kind: str, certs: DevCerts) -> EndpointPair:
    if kind == "tcp":
        return EndpointPair(reactor, "tcp:0:interface=127.0.0.1",
                            lambda port: f"tcp:127.0.0.1:{port.get_host().port}")
    return EndpointPair(
        reactor,
        f"tls:0:cert={esc(certs.server_cert)}:key={esc(certs.server_key)}:interface=127.0.0.1",
        lambda port: f"tls:127.0.0.1:{port.get_host().port}:ca={esc(certs.ca)}:timeout=10",
    )


# -- server protocols: record messages; hang up after the first, or break a limit -------------------


class Recording:
    """Mixed into each framer: messages in order, closing state seen at each, the close reason."""

    hang_up_after_first = True

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.closing_seen: list[bool] = []
        self.lost: Deferred[Any] = Deferred()

    def got(self, message: bytes) -> None:
        transport: Any = getattr(self, "transport")
        self.closing_seen.append(transport.is_closing())
        self.messages.append(message)
        if self.hang_up_after_first:
            transport.lose_connection()
            assert transport.is_closing()

    def connection_lost(self, reason: Any) -> None:
        self.lost.callback(reason.value)  # the exception: a Failure would fire the errback chain


class Lines(Recording, LineReceiver):
    max_length = 100

    def line_received(self, line: bytes) -> None:
        self.got(line)


class OnlyLines(Recording, LineOnlyReceiver):
    max_length = 100

    def line_received(self, line: bytes) -> None:
        self.got(line)


class Strings(Recording, Int32StringReceiver):
    max_length = 100

    def string_received(self, data: bytes) -> None:
        self.got(data)


class Netstrings(Recording, NetstringReceiver):
    max_length = 100

    def string_received(self, data: bytes) -> None:
        self.got(data)


def lines(*items: bytes) -> bytes:
    return b"".join(item + b"\r\n" for item in items)


def int32(*items: bytes) -> bytes:
    return b"".join(struct.pack("!I", len(item)) + item for item in items)


def netstrings(*items: bytes) -> bytes:
    return b"".join(b"%d:%s," % (len(item), item) for item in items)


FRAMERS: dict[str, tuple[type[Recording], Any, bytes]] = {
    # name: (server protocol, encoder, bytes that break the limit of 100 at once)
    "line": (Lines, lines, b"x" * 101 + b"\r\n"),
    "line-only": (OnlyLines, lines, b"x" * 101 + b"\r\n"),
    "int32": (Strings, int32, struct.pack("!I", 101)),
    "netstring": (Netstrings, netstrings, b"101:"),
}


class ServerFactory(Factory):
    def __init__(self, make: type[Recording]) -> None:
        self.make = make
        self.built: Deferred[Any] = Deferred()

    def build_protocol(self, addr: Any) -> Any:
        protocol: Any = self.make()
        protocol.factory = self
        self.built.callback(protocol)  # one connection per test: a second would raise here
        return protocol


async def exchange(reactor: Any, pair: EndpointPair, make: type[Recording], payload: bytes,
                   hang_up: bool) -> tuple[Any, BaseException]:
    """Connect, send ``payload`` in one write, return the server protocol and its close reason."""
    class Server(make):  # type: ignore[valid-type, misc]
        hang_up_after_first = hang_up

    factory = ServerFactory(Server)
    port = await pair.listen(factory)
    try:
        client: Recorder = await pair.connect(port, CollectingFactory())
        client.transport.write(payload)
        server = await factory.built  # over TLS the server's handshake ends after the client's
        reason = await server.lost
        await client.when_lost()
        await iterations(reactor, 3)  # anything delivered late would show now
        return server, reason
    finally:
        await port.stop_listening()


@pytest.mark.parametrize("transport", ["tcp", "tls"])
@pytest.mark.parametrize("framer", sorted(FRAMERS))
def test_hang_up_after_first_message(reactor: Any, run: Any, certs: DevCerts, transport: str,
                                     framer: str) -> None:
    """Three messages in one write; the server hangs up after the first: it gets exactly one."""
    make, encode, _ = FRAMERS[framer]
    pair = make_pair(reactor, transport, certs)
    server, reason = run(reactor, exchange(reactor, pair, make, encode(b"one", b"two", b"three"),
                                           hang_up=True))
    assert server.messages == [b"one"]
    assert server.closing_seen == [False]
    assert isinstance(reason, ConnectionDone), reason
    assert server.transport.is_closing()


@pytest.mark.parametrize("transport", ["tcp", "tls"])
@pytest.mark.parametrize("framer", sorted(FRAMERS))
def test_violation_stops_delivery(reactor: Any, run: Any, certs: DevCerts, transport: str,
                                  framer: str) -> None:
    """A message, a violation, then more messages in one write: only the first is delivered, and
    the connection is dropped with the ProtocolViolation as the reason."""
    make, encode, violation = FRAMERS[framer]
    payload = encode(b"ok") + violation + encode(b"later", b"much later")
    pair = make_pair(reactor, transport, certs)
    server, reason = run(reactor, exchange(reactor, pair, make, payload, hang_up=False))
    assert server.messages == [b"ok"]
    assert isinstance(reason, ProtocolViolation), reason


# -- is_closing on every transport --------------------------------------------------------------


@pytest.mark.parametrize("transport", ["tcp", "tls"])
@pytest.mark.parametrize("how", ["lose", "abort"])
def test_is_closing_real_transports(reactor: Any, run: Any, certs: DevCerts, transport: str,
                                    how: str) -> None:
    """False while open; True from lose/abort on, through connection_lost and after."""
    pair = make_pair(reactor, transport, certs)

    async def scenario() -> None:
        factory = CollectingFactory()
        port = await pair.listen(factory)
        try:
            client: Recorder = await pair.connect(port, CollectingFactory())
            server: Recorder = await factory.connection(0)
            for end in (client, server):
                assert verifyObject(ITransport, end.transport)
                assert end.transport.is_closing() is False
            if transport == "tls":
                assert isinstance(client.transport, TLSProtocol)
            getattr(client.transport, f"{how}_connection")()
            assert client.transport.is_closing() is True
            await client.when_lost()
            await server.when_lost()
            assert client.transport.is_closing() is True
            assert server.transport.is_closing() is True
        finally:
            await port.stop_listening()

    run(reactor, scenario())


def test_is_closing_memory_transport() -> None:
    for close in ("lose_connection", "abort_connection", "report_lost"):
        transport = MemoryTransport()
        assert verifyObject(ITransport, transport)
        assert transport.is_closing() is False
        getattr(transport, close)()
        assert transport.is_closing() is True


def test_memory_transport_framer_stops_after_abort() -> None:
    """An abort (not only lose_connection) stops delivery mid-chunk on the memory transport."""
    class Aborting(Lines):
        def got(self, message: bytes) -> None:
            self.messages.append(message)
            self.transport.abort_connection()

    proto = Aborting()
    proto.make_connection(MemoryTransport())
    proto.data_received(lines(b"a", b"b", b"c"))
    assert proto.messages == [b"a"]


# -- no transport at all ------------------------------------------------------------------------


class Collect:
    def __init__(self) -> None:
        self.got: list[bytes] = []


class BareLines(Collect, LineReceiver):
    def line_received(self, line: bytes) -> None:
        self.got.append(line)

    def raw_data_received(self, data: bytes) -> None:
        self.got.append(b"raw:" + data)


class BareOnlyLines(Collect, LineOnlyReceiver):
    def line_received(self, line: bytes) -> None:
        self.got.append(line)


class BareStrings(Collect, Int32StringReceiver):
    def string_received(self, data: bytes) -> None:
        self.got.append(data)


class BareNetstrings(Collect, NetstringReceiver):
    def string_received(self, data: bytes) -> None:
        self.got.append(data)


@pytest.mark.parametrize("make, data", [
    (BareLines, b"foo\r\nbar\r\n"),
    (BareOnlyLines, b"foo\r\nbar\r\n"),
    (BareStrings, int32(b"foo", b"bar")),
    (BareNetstrings, netstrings(b"foo", b"bar")),
], ids=["line", "line-only", "int32", "netstring"])
def test_no_transport_delivers(make: Any, data: bytes) -> None:
    proto = make()
    assert proto.transport is None
    for i in range(len(data)):
        proto.data_received(data[i : i + 1])
    assert proto.got == [b"foo", b"bar"]


def test_no_transport_line_receiver_as_in_the_issue() -> None:
    proto = BareLines()
    proto.data_received(b"foo\r\n")
    assert proto.got == [b"foo"]
    proto.set_raw_mode()
    proto.data_received(b"bulk")
    assert proto.got == [b"foo", b"raw:bulk"]


def test_no_transport_pause_and_resume() -> None:
    """pause/resume need no transport to pause: they only stop and restart delivery."""
    proto = BareOnlyLines()
    proto.pause_producing()
    proto.data_received(b"a\r\nb\r\n")
    assert proto.got == []
    proto.resume_producing()
    assert proto.got == [b"a", b"b"]


@pytest.mark.parametrize("make, data, message", [
    (BareLines, b"x" * 20 + b"\r\n", "line longer than 10 bytes"),
    (BareOnlyLines, b"x" * 20, "line longer than 10 bytes"),
    (BareStrings, struct.pack("!I", 11), "string of 11 bytes is longer than 10 bytes"),
    (BareNetstrings, b"11:", "netstring of 11 bytes is longer than 10 bytes"),
], ids=["line", "line-only", "int32", "netstring"])
def test_no_transport_violation_raises(make: Any, data: bytes, message: str) -> None:
    """No connection to drop: the ProtocolViolation is raised, with the same message."""
    proto = make()
    proto.max_length = 10
    with pytest.raises(ProtocolViolation) as info:
        proto.data_received(data)
    assert str(info.value) == message
    assert proto.got == []
