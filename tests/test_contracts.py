"""net.contracts: the typing.Protocol mirrors of net.interfaces, and who satisfies them.

Three ways a mirror could go wrong, three checks:

* drift: a zope interface and its mirror stop naming the same methods and attributes (or the
  same parameters);
* statically: one of our classes no longer satisfies its mirror as mypy sees it (a small module
  assigning instances to mirror-typed variables, checked with ``mypy --strict``; and a second
  one that must fail, so the check is known to bite);
* at run time: the objects a live reactor hands out (connections, ports, connectors, endpoints,
  process and stdio transports, datagram ports, the reactors) pass ``isinstance`` against the
  ``runtime_checkable`` mirrors and ``verifyObject`` against the interfaces.

Also here: the fixes made while the contracts' docstrings were checked against the code (the
in-memory transport's abort and end-of-stream reasons; TLS's repeated close_notify).
"""

from __future__ import annotations

import inspect
import os
import socket
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from conftest import run_until
from zope.interface import Interface
from zope.interface.interface import Method
from zope.interface.verify import verifyObject

from net import contracts, interfaces
from net.defer import Deferred, Failure
from net.endpoints import client, server
from net.error import ConnectionDone, ConnectionLost
from net.protocol import ClientFactory, DatagramProtocol, Factory, ProcessProtocol
from net.stdio import StandardIO
from net.testing import Clock, CollectingFactory, Recorder, connect_protocols, iterations
from net.testing.memory import MemoryPort, MemoryTransport
from net.tls import DevCerts, make_dev_certs
from net.unix import IUNIXTransport

# -- drift ---------------------------------------------------------------------------------------

PAIRS: list[tuple[type[Interface], type]] = [
    (interfaces.IDelayedCall, contracts.DelayedCall),
    (interfaces.IReactorTime, contracts.ReactorTime),
    (interfaces.IReactorCore, contracts.ReactorCore),
    (interfaces.IReactorFDSet, contracts.ReactorFDSet),
    (interfaces.IReactorThreads, contracts.ReactorThreads),
    (interfaces.IReactorTCP, contracts.ReactorTCP),
    (interfaces.IReactorUNIX, contracts.ReactorUNIX),
    (interfaces.IReactorUDP, contracts.ReactorUDP),
    (interfaces.IReactorUNIXDatagram, contracts.ReactorUNIXDatagram),
    (interfaces.IReactorProcess, contracts.ReactorProcess),
    (interfaces.IListeningPort, contracts.ListeningPort),
    (interfaces.IConnector, contracts.Connector),
    (interfaces.IProducer, contracts.Producer),
    (interfaces.IPushProducer, contracts.PushProducer),
    (interfaces.IPullProducer, contracts.PullProducer),
    (interfaces.IConsumer, contracts.Consumer),
    (interfaces.ITransport, contracts.Transport),
    (interfaces.ITCPTransport, contracts.TCPTransport),
    (IUNIXTransport, contracts.UNIXTransport),
    (interfaces.IProtocol, contracts.StreamProtocol),
    (interfaces.IBufferedProtocol, contracts.BufferedStreamProtocol),
    (interfaces.IProtocolFactory, contracts.ProtocolFactory),
    (interfaces.IStreamServerEndpoint, contracts.StreamServerEndpoint),
    (interfaces.IStreamClientEndpoint, contracts.StreamClientEndpoint),
    (interfaces.IDatagramTransport, contracts.DatagramTransport),
    (interfaces.IProcessTransport, contracts.ProcessTransport),
    (interfaces.IService, contracts.Service),
]

#: Mirrors with no zope twin: they type what net calls (see the net.contracts module doc).
UNPAIRED = {"CallHandle", "ClientProtocolFactory", "DatagramHandler", "ProcessHandler", "ReactorIO", "Reactor"}


def protocol_members(cls: type) -> set[str]:
    """The public members a typing.Protocol of net.contracts declares, inherited ones included."""
    names: set[str] = set()
    for base in cls.__mro__:
        if base.__module__ != contracts.__name__:
            continue
        names.update(name for name in vars(base) if not name.startswith("_"))
        names.update(name for name in getattr(base, "__annotations__", {}) if not name.startswith("_"))
    return names


@pytest.mark.parametrize(("interface", "mirror"), PAIRS, ids=[m.__name__ for _, m in PAIRS])
def test_interface_and_mirror_name_the_same_members(interface: type[Interface], mirror: type) -> None:
    assert set(interface.names(all=True)) == protocol_members(mirror)


@pytest.mark.parametrize(("interface", "mirror"), PAIRS, ids=[m.__name__ for _, m in PAIRS])
def test_interface_and_mirror_methods_take_the_same_parameters(interface: type[Interface], mirror: type) -> None:
    for name in interface.names(all=True):
        declared = interface[name]
        if not isinstance(declared, Method):
            continue
        info = declared.getSignatureInfo()
        parameters = list(inspect.signature(getattr(mirror, name)).parameters.values())[1:]  # less self
        plain = [p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        # (zope's signature info leaves keyword-only parameters out.)
        assert list(info["positional"]) == plain, f"{mirror.__name__}.{name}"
        required = [p.name for p in parameters if p.default is p.empty and p.name in plain]
        assert list(info["required"]) == required, f"{mirror.__name__}.{name}"
        assert bool(info["varargs"]) == any(p.kind is p.VAR_POSITIONAL for p in parameters), name
        assert bool(info["kwargs"]) == any(p.kind is p.VAR_KEYWORD for p in parameters), name


def test_every_contract_is_paired_or_said_to_be_alone() -> None:
    paired = {mirror.__name__ for _, mirror in PAIRS}
    assert set(contracts.__all__) == paired | UNPAIRED
    assert not paired & UNPAIRED
    declared = {name for name in interfaces.__all__} | {"IUNIXTransport"}
    assert {interface.__name__ for interface, _ in PAIRS} == declared
    for name in contracts.__all__:
        assert getattr(contracts, name)._is_runtime_protocol, name


def test_mirror_docstrings_state_a_contract() -> None:
    """Every method of every mirror has a docstring (the contract lives there)."""
    for name in contracts.__all__:
        cls = getattr(contracts, name)
        assert cls.__doc__, name
        for member in vars(cls).values():
            func = member.fget if isinstance(member, property) else member
            if inspect.isfunction(func) and not func.__name__.startswith("_"):
                assert func.__doc__ and func.__doc__.strip(), f"{name}.{func.__name__}"


# -- statically ------------------------------------------------------------------------------------

SATISFIED = """
    from __future__ import annotations

    from net import contracts as c
    from net._reactorbase import DelayedCall
    from net.asyncioreactor import AsyncioReactor
    from net.basic import FileSender
    from net.connector import Connector
    from net.endpoints import TCPClientEndpoint, TCPServerEndpoint, WrappingClientFactory
    from net.process import ProcessTransport
    from net.protocol import ClientFactory, DatagramProtocol, Factory, ProcessProtocol, Protocol
    from net.protocol import ReconnectingClientFactory
    from net.selectreactor import SelectorsReactor
    from net.stdio import StandardIO
    from net.tcp import Connection, Port, TCPConnection
    from net.testing import Clock, Recorder
    from net.testing.memory import MemoryPort, MemoryTransport
    from net.tls.endpoints import TLSClientEndpoint, TLSServerEndpoint
    from net.tls.transport import TLSClientFactory, TLSProtocol, TLSServerFactory
    from net.tunnels import TunnelClientEndpoint, TunnelClientFactory
    from net.udp import DatagramPort, UnixDatagramPort
    from net.unix import UnixConnection, UnixConnector, UnixPort, UNIXClientEndpoint, UNIXServerEndpoint


    def reactors(sr: SelectorsReactor, ar: AsyncioReactor, clock: Clock, call: DelayedCall) -> None:
        everything: list[c.Reactor] = [sr, ar]
        clocks: list[c.ReactorTime] = [sr, ar, clock]
        io: list[c.ReactorIO] = [sr, ar]
        calls: list[c.DelayedCall] = [call, sr.call_later(1, print), clock.call_later(1, print)]
        handles: list[c.CallHandle] = [sr.call_soon(print), ar.call_soon(print), clock.call_soon(print)]


    def streams(tcp: TCPConnection, conn: Connection, unix: UnixConnection, tls: TLSProtocol,
                memory: MemoryTransport, stdio: StandardIO, process: ProcessTransport) -> None:
        tcps: list[c.TCPTransport] = [tcp, tls, memory]
        transports: list[c.Transport] = [conn, unix, stdio, process]
        unixes: list[c.UNIXTransport] = [unix]
        processes: list[c.ProcessTransport] = [process]
        consumers: list[c.Consumer] = [conn, tls, memory, stdio, process]
        pushers: list[c.PushProducer] = [conn, tls, memory, stdio, process]


    def ports(port: Port, unix: UnixPort, memory: MemoryPort, udp: DatagramPort, unixgram: UnixDatagramPort,
              connector: Connector, unix_connector: UnixConnector) -> None:
        listening: list[c.ListeningPort] = [port, unix, memory, udp, unixgram]
        datagrams: list[c.DatagramTransport] = [udp, unixgram]
        connectors: list[c.Connector] = [connector, unix_connector]


    def endpoints(tcp_s: TCPServerEndpoint, tls_s: TLSServerEndpoint, unix_s: UNIXServerEndpoint,
                  tcp_c: TCPClientEndpoint, tls_c: TLSClientEndpoint, unix_c: UNIXClientEndpoint,
                  tunnel: TunnelClientEndpoint) -> None:
        servers: list[c.StreamServerEndpoint] = [tcp_s, tls_s, unix_s]
        clients: list[c.StreamClientEndpoint] = [tcp_c, tls_c, unix_c, tunnel]


    def protocols(protocol: Protocol, recorder: Recorder, tls: TLSProtocol, factory: Factory,
                  client: ClientFactory, reconnecting: ReconnectingClientFactory,
                  wrapping: WrappingClientFactory, tls_server: TLSServerFactory,
                  tls_client: TLSClientFactory, tunnel: TunnelClientFactory, process: ProcessProtocol,
                  datagram: DatagramProtocol, sender: FileSender) -> None:
        streams: list[c.StreamProtocol] = [protocol, recorder, tls]
        factories: list[c.ProtocolFactory] = [factory, tls_server]
        client_factories: list[c.ClientProtocolFactory] = [client, reconnecting, wrapping, tls_client, tunnel]
        processes: list[c.ProcessHandler] = [process]
        datagrams: list[c.DatagramHandler] = [datagram]
        pullers: list[c.PullProducer] = [sender]
"""

VIOLATED = """
    from __future__ import annotations

    from net import contracts as c
    from net.protocol import Factory


    class HalfATransport:
        def write(self, data: bytes) -> None: ...


    class PortOfStrings:
        def get_host(self) -> str:
            return "here"

        def stop_listening(self) -> None:
            pass


    transport: c.Transport = HalfATransport()
    port: c.ListeningPort = PortOfStrings()
    client_factory: c.ClientProtocolFactory = Factory()  # no client_connection_* hooks
"""


def _mypy(tmp_path: Path, name: str, text: str) -> tuple[str, int]:
    from mypy import api

    module = tmp_path / f"{name}.py"
    module.write_text(textwrap.dedent(text))
    out, err, status = api.run(["--strict", "--no-error-summary", "--cache-dir", str(tmp_path / "cache"),
                                "--hide-error-context", str(module)])
    return out + err, status


def test_our_classes_satisfy_the_mirrors_statically(tmp_path: Path) -> None:
    report, status = _mypy(tmp_path, "satisfied", SATISFIED)
    assert status == 0, report


def test_the_static_check_catches_a_class_that_does_not_satisfy(tmp_path: Path) -> None:
    report, status = _mypy(tmp_path, "violated", VIOLATED)
    errors = [line for line in report.splitlines() if ": error:" in line]
    assert status == 1 and len(errors) == 3, report
    assert '"HalfATransport"' in errors[0] and '"Transport"' in errors[0]
    assert '"PortOfStrings"' in errors[1] and '"ListeningPort"' in errors[1]
    assert '"Factory"' in errors[2] and '"ClientProtocolFactory"' in errors[2]


# -- at run time -----------------------------------------------------------------------------------

MIRROR_OF = {mirror: interface for interface, mirror in PAIRS}


def satisfies(obj: object, *mirrors: type) -> None:
    for mirror in mirrors:
        assert isinstance(obj, mirror), f"{obj!r} is not a {mirror.__name__}"
        interface = MIRROR_OF.get(mirror)
        if interface is not None:
            assert verifyObject(interface, obj)


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> DevCerts:
    return make_dev_certs(tmp_path_factory.mktemp("certs"))


class _Ended(ProcessProtocol):
    def __init__(self) -> None:
        self.ended: Deferred[None] = Deferred()

    def process_ended(self, reason: Failure) -> None:
        self.ended.callback(None)


class _Datagrams(DatagramProtocol):
    def __init__(self) -> None:
        self.stopped: Deferred[None] = Deferred()

    def stop_protocol(self) -> None:
        self.stopped.callback(None)


def _esc(path: object) -> str:
    return str(path).replace("\\", "\\\\").replace(":", "\\:")


def test_live_objects_satisfy_the_mirrors(reactor: Any, tmp_path: Path, certs: DevCerts) -> None:
    c = contracts
    satisfies(reactor, c.Reactor, c.ReactorCore, c.ReactorTime, c.ReactorFDSet, c.ReactorThreads,
              c.ReactorTCP, c.ReactorUNIX, c.ReactorUDP, c.ReactorUNIXDatagram, c.ReactorProcess, c.ReactorIO)
    satisfies(Clock(), c.ReactorTime)
    call = reactor.call_later(10, print)
    satisfies(call, c.DelayedCall)
    call.cancel()
    handle = reactor.call_soon(print)
    satisfies(handle, c.CallHandle)
    handle.cancel()
    satisfies(Factory(), c.ProtocolFactory)
    satisfies(ClientFactory(), c.ClientProtocolFactory)
    satisfies(Recorder(), c.StreamProtocol)
    satisfies(_Ended(), c.ProcessHandler)
    satisfies(_Datagrams(), c.DatagramHandler)
    satisfies(MemoryTransport(), c.TCPTransport, c.Transport, c.Consumer, c.PushProducer)
    satisfies(MemoryPort(reactor, Factory()), c.ListeningPort)
    satisfies(client(reactor, f"socks5:127.0.0.1:1080:tcp:127.0.0.1:80"), c.StreamClientEndpoint)
    before = open_fds()

    async def go() -> None:
        for spec, connect in [
            ("tcp:0:interface=127.0.0.1", lambda port: f"tcp:127.0.0.1:{port.get_host().port}"),
            (f"tls:0:cert={_esc(certs.server_cert)}:key={_esc(certs.server_key)}:interface=127.0.0.1",
             lambda port: f"tls:127.0.0.1:{port.get_host().port}:ca={_esc(certs.ca)}:timeout=10"),
            (f"unix:{_esc(tmp_path / 's.sock')}", lambda port: f"unix:{_esc(tmp_path / 's.sock')}"),
        ]:
            endpoint = server(reactor, spec)
            satisfies(endpoint, c.StreamServerEndpoint)
            factory = CollectingFactory()
            port = await endpoint.listen(factory)
            satisfies(port, c.ListeningPort)
            target = client(reactor, connect(port))
            satisfies(target, c.StreamClientEndpoint)
            near = await target.connect(CollectingFactory())
            far = await factory.connection(0)
            kind = spec.split(":")[0]
            for end in (near, far):
                satisfies(end.transport, c.Transport, c.Consumer, c.PushProducer)
                if kind in ("tcp", "tls"):
                    satisfies(end.transport, c.TCPTransport)
                if kind == "unix":
                    satisfies(end.transport, c.UNIXTransport)
                if kind == "tls":
                    satisfies(end.transport, c.StreamProtocol)  # the protocol of the TCP below
            near.transport.lose_connection()
            await near.when_lost()
            await far.when_lost()
            await port.stop_listening()

        # Connectors, as the reactor hands them out.
        tcp_port = reactor.listen_tcp(0, CollectingFactory(), interface="127.0.0.1")
        connectors = [reactor.connect_tcp("127.0.0.1", tcp_port.get_host().port, ClientFactory()),
                      reactor.connect_unix(str(tmp_path / "nobody.sock"), ClientFactory())]
        for connector in connectors:
            satisfies(connector, c.Connector)
            connector.stop_connecting()
        await tcp_port.stop_listening()

        # Datagram ports.
        for port in (reactor.listen_udp(0, _Datagrams(), "127.0.0.1"),
                     reactor.listen_unix_datagram(str(tmp_path / "d.sock"), _Datagrams())):
            satisfies(port, c.DatagramTransport, c.ListeningPort)
            await port.stop_listening()

        # A child process.
        ended = _Ended()
        child = reactor.spawn_process(ended, sys.executable, [sys.executable, "-c", "pass"])
        satisfies(child, c.ProcessTransport, c.Transport)
        await ended.ended

        # StandardIO over two pipes.
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        try:
            recorder = Recorder()
            stdio = StandardIO(recorder, stdin=in_r, stdout=out_w, reactor=reactor)
            satisfies(stdio, c.Transport, c.Consumer, c.PushProducer)
            stdio.lose_connection()
            await recorder.when_lost()
        finally:
            for fd in (in_r, in_w, out_r, out_w):
                os.close(fd)
        await iterations(reactor, 2)

    run_until(reactor, go())
    assert open_fds() <= before


# -- what checking the docstrings against the code fixed --------------------------------------------


def test_memory_abort_reason_stands_and_later_calls_are_no_ops() -> None:
    """As on TCP: after abort_connection(), writes are ignored, lose_connection() and a second
    abort change nothing; the aborting side's connection_lost gets the first abort's reason."""
    server, client_ = Recorder(), Recorder()
    pump = connect_protocols(server, client_)
    transport = client_.transport
    reason = ConnectionLost("first")
    transport.abort_connection(reason)
    transport.write(b"too late")
    transport.lose_connection(ConnectionDone("second"))
    transport.abort_connection(ConnectionLost("third"))
    transport.write_eof()
    assert transport.value() == b"" and transport.get_write_buffer_size() == 0
    assert transport.is_closing()
    pump.pump()
    assert [f.value for f in client_.reasons] == [reason]
    assert isinstance(server.reasons[0].value, ConnectionLost) and server.received == b""


def test_memory_end_of_stream_close_says_the_peer_ended_it() -> None:
    """An end of stream the protocol does not keep open closes with ConnectionDone(by_peer=True),
    as over TCP; the side that closed gets a plain ConnectionDone."""
    server, client_ = Recorder(), Recorder()
    pump = connect_protocols(server, client_)
    client_.transport.lose_connection()
    pump.pump()
    assert isinstance(server.reasons[0].value, ConnectionDone) and server.reasons[0].value.by_peer
    assert isinstance(client_.reasons[0].value, ConnectionDone) and not client_.reasons[0].value.by_peer


class _KeepsWritingAfterEOF(Recorder):
    """Keeps its side open at close_notify, and pauses and resumes reading from inside it."""

    keep_open_on_eof = True

    def eof_received(self) -> bool | None:
        keep = super().eof_received()
        self.transport.pause_reading()
        self.transport.resume_reading()
        return keep


def test_tls_close_notify_is_reported_once(reactor: Any, certs: DevCerts) -> None:
    """eof_received runs once per connection even when the protocol resumes reading after it
    (OpenSSL answers every later read with the same close_notify)."""
    server_spec = f"tls:0:cert={_esc(certs.server_cert)}:key={_esc(certs.server_key)}:interface=127.0.0.1"

    async def go() -> None:
        factory = CollectingFactory(_KeepsWritingAfterEOF)
        port = await server(reactor, server_spec).listen(factory)
        near = await client(reactor, f"tls:127.0.0.1:{port.get_host().port}:ca={_esc(certs.ca)}").connect(
            CollectingFactory())
        far = await factory.connection(0)
        near.transport.lose_connection()
        await far.when_eof()
        await iterations(reactor, 5)
        assert far.events.count("eof") == 1, far.events
        far.transport.lose_connection()
        await far.when_lost()
        await near.when_lost()
        await port.stop_listening()

    run_until(reactor, go())


def test_socket_pair_is_not_a_transport() -> None:
    """The runtime check is about members: a raw socket has none of a transport's."""
    a, b = socket.socketpair()
    try:
        assert not isinstance(a, contracts.Transport)
    finally:
        a.close()
        b.close()
