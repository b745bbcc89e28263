"""TCP transports, ports and connectors over real loopback sockets, on every reactor backend.

The conformance kit (:mod:`net.testing.conformance`, run by tests/test_conformance.py) covers what
every stream transport must do; the tests here cover what is TCP's own: connecting (refused,
timeout, DNS), listening, half-close seen from a raw socket, resets, options, and reconnecting.
"""

from __future__ import annotations

import errno
import socket
import struct
from typing import Any

import pytest
from helpers_net import RecordingClientFactory
from zope.interface.verify import verifyObject

from net import tcp
from net.address import IPv4Address
from net.defer import Deferred, Failure, gather
from net.endpoints import client
from net.error import (
    CannotListenError,
    ConnectError,
    ConnectionDone,
    ConnectionLost,
    ConnectionRefusedError,
    ConnectTimeoutError,
    DNSLookupError,
)
from net.interfaces import IConnector, IListeningPort, ITCPTransport
from net.protocol import Factory, ReconnectingClientFactory
from net.testing import CollectingFactory, Echo, Recorder, iterations


def listen(reactor: Any, factory: Any, **kwargs: Any) -> Any:
    return reactor.listen_tcp(0, factory, interface="127.0.0.1", **kwargs)


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- interfaces ---------------------------------------------------------------------------------


def test_verify_objects(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        factory = CollectingFactory()
        port = listen(reactor, factory)
        assert verifyObject(IListeningPort, port)
        cf = RecordingClientFactory()
        connector = reactor.connect_tcp("127.0.0.1", port.get_host().port, cf)
        assert verifyObject(IConnector, connector)
        protocol = await cf.made
        server = await factory.connection()
        for transport in (protocol.transport, server.transport):
            assert verifyObject(ITCPTransport, transport)
        connector.disconnect()
        await cf.lost
        await port.stop_listening()

    run(reactor, scenario())


# -- listening ----------------------------------------------------------------------------------


def test_port_address_and_factory_hooks(reactor: Any) -> None:
    factory = Factory.for_protocol(Recorder)
    port = listen(reactor, factory)
    host = port.get_host()
    assert isinstance(host, IPv4Address) and host.host == "127.0.0.1" and host.port > 0
    assert factory.num_ports == 1
    d = port.stop_listening()
    assert d.called and factory.num_ports == 0
    port.stop_listening()  # idempotent
    assert factory.num_ports == 0


def test_cannot_listen_on_a_used_port(reactor: Any) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        used = s.getsockname()[1]
        with pytest.raises(CannotListenError) as info:
            reactor.listen_tcp(used, Factory.for_protocol(Recorder), interface="127.0.0.1")
    assert info.value.port == used and isinstance(info.value.reason, OSError)


def test_stop_listening_refuses_new_keeps_old(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        factory = CollectingFactory(Echo)
        port = listen(reactor, factory)
        address = port.get_host().port
        old = await client(reactor, f"tcp:127.0.0.1:{address}").connect(CollectingFactory())
        await factory.connection(0)  # accepted: a connection still in the backlog would be reset
        await port.stop_listening()
        with pytest.raises(ConnectionRefusedError):
            await client(reactor, f"tcp:127.0.0.1:{address}").connect(CollectingFactory())
        old.transport.write(b"still there?")
        await old.when_received(12)
        assert bytes(old.received) == b"still there?"
        old.transport.lose_connection()
        await old.when_lost()
        await factory.protocols[0].when_lost()

    run(reactor, scenario())


def test_stopping_the_reactor_leaves_tcp_ports_listening(reactor: Any, run: Any) -> None:
    """A reactor runs again after stop(), and a TCP port listened on in one run serves the next
    (unlike a Unix port, which the shutdown stops so that its files go: test_unix.py)."""
    port = reactor.listen_tcp(0, Factory(), interface="127.0.0.1")

    async def nothing() -> None:
        pass

    run(reactor, nothing())
    try:
        assert port.listening
        probe = socket.socket()
        try:
            assert probe.connect_ex(("127.0.0.1", port.get_host().port)) == 0  # the kernel still accepts
        finally:
            probe.close()
    finally:
        port.stop_listening()


def test_build_protocol_none_refuses(reactor: Any, run: Any) -> None:
    class Refusing(Factory):
        def build_protocol(self, addr: Any) -> None:
            return None

    async def scenario() -> None:
        port = listen(reactor, Refusing())
        with socket.create_connection(("127.0.0.1", port.get_host().port)) as raw:
            data = await reactor.defer_to_thread(raw.recv, 10)
        assert data == b""  # closed without a word
        await port.stop_listening()

    run(reactor, scenario())


def test_two_hundred_concurrent_clients(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        factory = CollectingFactory(Echo)
        port = listen(reactor, factory, backlog=256)
        spec = f"tcp:127.0.0.1:{port.get_host().port}"
        clients = await gather(*(client(reactor, spec).connect(CollectingFactory()) for _ in range(200)))
        for i, c in enumerate(clients):
            c.transport.write(b"client %d" % i)
        await gather(*(c.when_received(len(b"client %d" % i)) for i, c in enumerate(clients)))
        for i, c in enumerate(clients):
            assert bytes(c.received) == b"client %d" % i
            c.transport.lose_connection()
        await gather(*(c.when_lost() for c in clients))
        await gather(*(s.when_lost() for s in factory.protocols))
        assert len(factory.protocols) == 200
        assert all(isinstance(c.reason, ConnectionDone) for c in clients)
        await port.stop_listening()

    run(reactor, scenario())


# -- connecting ---------------------------------------------------------------------------------


def test_connection_refused_names_the_address(reactor: Any, run: Any) -> None:
    port = closed_port()
    factory = RecordingClientFactory()
    connector = reactor.connect_tcp("127.0.0.1", port, factory)
    assert connector.state == "connecting" and factory.started == 1
    error = run(reactor, factory.failed)
    assert isinstance(error, ConnectionRefusedError)
    assert str(error) == f"Connection refused by 127.0.0.1:{port}: is the server running and listening on that port?"
    assert isinstance(error.__cause__, OSError) and error.__cause__.errno == errno.ECONNREFUSED
    assert connector.state == "disconnected" and not factory.built
    assert factory.num_ports == 0  # do_stop ran: nobody reconnects


def test_connect_timeout(reactor: Any, run: Any) -> None:
    """A listener whose accept queue is full drops SYNs, so a connect hangs until our timeout.

    Loopback only: the backlog is 0 and never accepted, and filler connections fill it.
    """
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        fillers = [socket.socket() for _ in range(8)]
        try:
            for f in fillers:
                f.setblocking(False)
                f.connect_ex(listener.getsockname())
            factory = RecordingClientFactory()
            reactor.connect_tcp("127.0.0.1", listener.getsockname()[1], factory, timeout=0.2)
            error = run(reactor, factory.failed)
        finally:
            for f in fillers:
                f.close()
    assert isinstance(error, ConnectTimeoutError) and isinstance(error, TimeoutError)
    assert "timed out after 0.2s" in str(error)


def test_dns_failure(reactor: Any, run: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_such_host(*args: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(tcp.socket, "getaddrinfo", no_such_host)  # no DNS traffic in tests
    factory = RecordingClientFactory()
    reactor.connect_tcp("no.such.host.invalid", 80, factory)
    error = run(reactor, factory.failed)
    assert isinstance(error, DNSLookupError) and "no.such.host.invalid" in str(error)
    assert isinstance(error.__cause__, socket.gaierror)


def test_host_name_resolved_in_thread(reactor: Any, run: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Names go through getaddrinfo (in the pool); every address is tried in turn."""
    async def scenario() -> None:
        factory = CollectingFactory(Echo)
        port = listen(reactor, factory)
        number = port.get_host().port
        dead = closed_port()

        def fake_getaddrinfo(host: str, p: int, *args: Any) -> Any:
            assert host == "example.test" and p == number
            return [
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", dead)),  # refused: next
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", number)),
            ]

        monkeypatch.setattr(tcp.socket, "getaddrinfo", fake_getaddrinfo)
        c = await client(reactor, f"tcp:example.test:{number}").connect(CollectingFactory())
        assert c.transport.get_peer().port == number
        c.transport.lose_connection()
        await c.when_lost()
        await port.stop_listening()

    run(reactor, scenario())


def test_connector_lifecycle(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        factory = CollectingFactory(Echo)
        port = listen(reactor, factory)
        cf = RecordingClientFactory()
        connector = reactor.connect_tcp("127.0.0.1", port.get_host().port, cf)
        assert connector.get_destination() == IPv4Address("TCP", "127.0.0.1", port.get_host().port)
        with pytest.raises(RuntimeError):
            connector.connect()  # already connecting
        protocol = await cf.made
        assert connector.state == "connected" and connector.transport is protocol.transport
        with pytest.raises(RuntimeError):
            connector.stop_connecting()  # not connecting any more
        connector.disconnect()
        reason = await cf.lost
        assert isinstance(reason, ConnectionDone)
        await iterations(reactor, 1)  # do_stop runs after client_connection_lost returned
        assert protocol.events == ["made", "lost"] and connector.state == "disconnected"
        assert cf.num_ports == 0
        await port.stop_listening()

    run(reactor, scenario())


def test_stop_connecting(reactor: Any, run: Any) -> None:
    cf = RecordingClientFactory()
    connector = reactor.connect_tcp("127.0.0.1", closed_port(), cf)
    connector.stop_connecting()
    assert cf.failed.called
    error = run(reactor, cf.failed)
    assert type(error) is ConnectError and "abandoned" in str(error)
    run(reactor, iterations(reactor, 3))
    assert not cf.built and connector.state == "disconnected"


def test_connect_tcp_needs_a_client_factory(reactor: Any) -> None:
    with pytest.raises(TypeError, match="endpoints.client"):
        reactor.connect_tcp("127.0.0.1", 1, Factory.for_protocol(Recorder))


def test_bind_address(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        factory = CollectingFactory()
        port = listen(reactor, factory)
        local = closed_port()
        c = await client(reactor, f"tcp:127.0.0.1:{port.get_host().port}:bind_address=127.0.0.1").connect(
            CollectingFactory())
        assert c.transport.get_host().host == "127.0.0.1"
        cf = RecordingClientFactory()
        reactor.connect_tcp("127.0.0.1", port.get_host().port, cf, bind_address=("127.0.0.1", local))
        p = await cf.made
        assert p.transport.get_host() == IPv4Address("TCP", "127.0.0.1", local)
        for proto in (c, p):
            proto.transport.lose_connection()
            await proto.when_lost()
        await port.stop_listening()

    run(reactor, scenario())


# -- reconnecting -------------------------------------------------------------------------------


def test_reconnecting_client_factory_reconnects(reactor: Any, run: Any) -> None:
    """The server drops every connection; the client comes back each time, until told to stop."""

    class DropAtOnce(Recorder):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            transport.lose_connection()

    class Reconnecting(ReconnectingClientFactory):
        protocol = Recorder
        initial_delay = 0.001
        factor = 2.0
        jitter = 0

        def __init__(self) -> None:
            self.connections = 0
            self.done: Deferred[None] = Deferred()

        def build_protocol(self, addr: Any) -> Any:
            self.connections += 1
            return super().build_protocol(addr)

        def client_connection_lost(self, connector: Any, reason: Failure) -> None:
            if self.connections == 3:
                self.stop_trying()
                self.done.callback(None)
            super().client_connection_lost(connector, reason)

    async def scenario() -> None:
        server_factory = CollectingFactory(DropAtOnce)
        port = listen(reactor, server_factory)
        factory = Reconnecting()
        connector = reactor.connect_tcp("127.0.0.1", port.get_host().port, factory)
        await factory.done
        await iterations(reactor, 5)
        assert factory.connections == 3 and len(server_factory.protocols) == 3
        assert connector.state == "disconnected" and factory.num_ports == 0
        await port.stop_listening()

    run(reactor, scenario())


def test_reconnecting_backoff_grows_exponentially(reactor: Any, run: Any) -> None:
    class Counting(ReconnectingClientFactory):
        protocol = Recorder
        initial_delay = 0.001
        factor = 2.0
        jitter = 0
        max_retries = 3

        def __init__(self) -> None:
            self.delays: list[float] = []
            self.done: Deferred[None] = Deferred()

        def client_connection_failed(self, connector: Any, reason: Failure) -> None:
            assert isinstance(reason.value, ConnectionRefusedError)
            super().client_connection_failed(connector, reason)
            if self.retries > self.max_retries:
                self.done.callback(None)  # abandoned: retry() scheduled nothing
            else:
                self.delays.append(self.delay)

    factory = Counting()
    connector = reactor.connect_tcp("127.0.0.1", closed_port(), factory)
    run(reactor, factory.done)
    assert factory.delays == pytest.approx([0.002, 0.004, 0.008])
    assert connector.state == "disconnected"

    plain = ReconnectingClientFactory()
    plain.jitter = 0
    delays = [plain.next_delay() for _ in range(4)]
    assert all(b == pytest.approx(a * plain.factor) for a, b in zip(delays, delays[1:]))


# -- half-close, resets, errors -----------------------------------------------------------------


def _read_until_eof(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("keep_open", [False, True])
def test_half_close(reactor: Any, run: Any, keep_open: bool) -> None:
    """The peer shuts down its write side: eof_received; True keeps our side writable."""

    class Replier(Recorder):
        keep_open_on_eof = keep_open

        def eof_received(self) -> bool | None:
            result = super().eof_received()
            if keep_open:
                self.transport.write(b"reply after eof")
                self.transport.lose_connection()
            return result

    async def scenario() -> None:
        factory = CollectingFactory(Replier)
        port = listen(reactor, factory)
        with socket.create_connection(("127.0.0.1", port.get_host().port)) as raw:
            raw.sendall(b"request")
            raw.shutdown(socket.SHUT_WR)
            reply = await reactor.defer_to_thread(_read_until_eof, raw)
        server = factory.protocols[0]
        await server.when_lost()
        await iterations(reactor, 3)
        assert server.events == ["made", "data", "eof", "lost"]
        assert bytes(server.received) == b"request"
        assert reply == (b"reply after eof" if keep_open else b"")
        assert isinstance(server.reason, ConnectionDone)
        await port.stop_listening()

    run(reactor, scenario())


def test_write_eof_seen_from_a_raw_socket(reactor: Any, run: Any) -> None:
    """write_eof(): the raw peer reads every byte queued before it, then EOF; we still read what
    it sends; its own shutdown then ends the connection cleanly (both directions done)."""
    data = bytes(range(256)) * 4096 * 8  # 8 MiB: more than the socket takes at once, usually

    async def scenario() -> None:
        factory = CollectingFactory()
        port = listen(reactor, factory)
        with socket.create_connection(("127.0.0.1", port.get_host().port)) as raw:
            server = await factory.connection()
            t = server.transport
            assert t.can_write_eof()
            t.write(data)
            t.write_eof()
            assert not t.is_closing()
            for late in (lambda: t.write(b"x"), lambda: t.writelines([b"x" * 70_000, b"y" * 70_000])):
                with pytest.raises(RuntimeError, match=r"write\(\) after write_eof\(\)"):
                    late()
            t.write_eof()  # idempotent
            received = await reactor.defer_to_thread(_read_until_eof, raw)
            assert received == data
            raw.sendall(b"still listening?")
            await server.when_received(16)
            assert server.events == ["made", "data"]
            raw.shutdown(socket.SHUT_WR)
            await server.when_lost()
        await iterations(reactor, 3)
        assert server.events == ["made", "data", "eof", "lost"]
        assert isinstance(server.reason, ConnectionDone), server.reason
        await port.stop_listening()

    run(reactor, scenario())


def test_write_eof_after_the_peer_ended_closes(reactor: Any, run: Any) -> None:
    """The peer shut down first and the protocol kept writing: write_eof() leaves nothing open."""

    class KeepOpen(Recorder):
        keep_open_on_eof = True

    async def scenario() -> None:
        factory = CollectingFactory(KeepOpen)
        port = listen(reactor, factory)
        with socket.create_connection(("127.0.0.1", port.get_host().port)) as raw:
            raw.shutdown(socket.SHUT_WR)
            server = await factory.connection()
            await server.when_eof()
            server.transport.write(b"last words")
            server.transport.write_eof()
            reply = await reactor.defer_to_thread(_read_until_eof, raw)
            await server.when_lost()
        assert reply == b"last words"
        assert server.events == ["made", "eof", "lost"]
        assert isinstance(server.reason, ConnectionDone), server.reason
        await port.stop_listening()

    run(reactor, scenario())


def test_peer_reset_is_connection_lost_with_cause(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        factory = CollectingFactory()
        port = listen(reactor, factory)
        raw = socket.create_connection(("127.0.0.1", port.get_host().port))
        server = await factory.connection()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        raw.close()  # sends RST
        await server.when_lost()
        await iterations(reactor, 3)
        reason = server.reason
        assert isinstance(reason, ConnectionLost), reason
        assert isinstance(reason.__cause__, ConnectionResetError)
        await port.stop_listening()

    run(reactor, scenario())


def test_exception_in_data_received_closes_with_it(reactor: Any, run: Any) -> None:
    class Broken(Recorder):
        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            raise ZeroDivisionError("protocol bug")

    async def scenario() -> None:
        factory = CollectingFactory(Broken)
        port = listen(reactor, factory)
        c = await client(reactor, f"tcp:127.0.0.1:{port.get_host().port}").connect(CollectingFactory())
        c.transport.write(b"boom")
        server = await factory.connection()
        await server.when_lost()
        await c.when_lost()
        await iterations(reactor, 3)
        assert isinstance(server.reason, ZeroDivisionError)
        assert c.events.count("lost") == 1
        await port.stop_listening()

    run(reactor, scenario())


def test_write_rejects_str(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        factory = CollectingFactory()
        port = listen(reactor, factory)
        c = await client(reactor, f"tcp:127.0.0.1:{port.get_host().port}").connect(CollectingFactory())
        with pytest.raises(TypeError):
            c.transport.write("text")  # type: ignore[arg-type]
        c.transport.write(b"")  # nothing, no error
        c.transport.writelines([b"a", bytearray(b"b"), memoryview(b"c")])
        server = await factory.connection()
        await server.when_received(3)
        assert bytes(server.received) == b"abc"
        c.transport.lose_connection()
        await server.when_lost()
        await port.stop_listening()

    run(reactor, scenario())


def test_tcp_options(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        factory = CollectingFactory()
        port = listen(reactor, factory)
        c = await client(reactor, f"tcp:127.0.0.1:{port.get_host().port}").connect(CollectingFactory())
        server = await factory.connection()
        for t in (c.transport, server.transport):
            assert t.get_tcp_nodelay() is True  # on by default: RPC latency
            t.set_tcp_nodelay(False)
            assert t.get_tcp_nodelay() is False
            t.set_tcp_keepalive(True)
            assert t.get_tcp_keepalive() is True
            t.set_tcp_keepalive(False)
            assert t.get_tcp_keepalive() is False
        c.transport.lose_connection()
        await server.when_lost()
        await port.stop_listening()

    run(reactor, scenario())


def test_accept_survives_running_out_of_descriptors(reactor: Any, run: Any) -> None:
    """EMFILE from accept() is logged and accepting resumes later: the port keeps working."""
    async def scenario() -> None:
        factory = CollectingFactory(Echo)
        port = listen(reactor, factory)
        port.resource_retry_delay = 0.01
        real_socket = port.socket
        assert real_socket is not None

        class Exhausted:
            """Stands in for the listening socket once: accept() fails like a full fd table."""

            def accept(self) -> Any:
                port.socket = real_socket
                raise OSError(errno.EMFILE, "Too many open files")

        port.socket = Exhausted()  # type: ignore[assignment]
        c = await client(reactor, f"tcp:127.0.0.1:{port.get_host().port}").connect(CollectingFactory())
        c.transport.write(b"hi")
        await c.when_received(2)
        c.transport.lose_connection()
        await c.when_lost()
        await port.stop_listening()

    run(reactor, scenario())
