"""Endpoint strings: parsing tables (good and bad), the registry, and real listen/connect."""

from __future__ import annotations

from typing import Any

import pytest
from zope.interface.verify import verifyObject

from net import endpoints
from net.defer import CancelledError
from net.endpoints import (
    TCPClientEndpoint,
    TCPServerEndpoint,
    client,
    parse,
    register_endpoint_type,
    server,
)
from net.error import CannotListenError, ConnectionDone, ConnectionRefusedError
from net.interfaces import IStreamClientEndpoint, IStreamServerEndpoint
from net.protocol import ClientFactory, Factory
from net.testing import CollectingFactory, Echo, Recorder, iterations

R = object()  # parsing needs no real reactor


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("tcp:8000", ("tcp", ["8000"], {})),
        ("TCP:8000", ("tcp", ["8000"], {})),
        ("tcp:8000:interface=127.0.0.1", ("tcp", ["8000"], {"interface": "127.0.0.1"})),
        ("tcp:port=8000:backlog=100", ("tcp", [], {"port": "8000", "backlog": "100"})),
        (r"tcp:\:\:1:8000", ("tcp", ["::1", "8000"], {})),
        ("tcp:[::1]:8000", ("tcp", ["::1", "8000"], {})),
        ("tcp:host=[fe80::1%eth0]:port=1", ("tcp", [], {"host": "fe80::1%eth0", "port": "1"})),
        (r"tcp:8000:interface=\:\:", ("tcp", ["8000"], {"interface": "::"})),
        (r"x:a\=b:k=v=w", ("x", ["a=b"], {"k": "v=w"})),
        (r"x:back\\slash", ("x", ["back\\slash"], {})),
        ("x::", ("x", ["", ""], {})),
    ],
)
def test_parse(spec: str, expected: Any) -> None:
    assert parse(spec) == expected


@pytest.mark.parametrize(
    "spec, port, interface, backlog",
    [
        ("tcp:8000", 8000, "", None),
        ("tcp:0:interface=127.0.0.1", 0, "127.0.0.1", None),
        ("tcp:8000:interface=127.0.0.1", 8000, "127.0.0.1", None),
        ("tcp:port=8000:backlog=100", 8000, "", 100),
        (r"tcp:8000:interface=\:\:1", 8000, "::1", None),
        ("tcp:8000:interface=[::1]", 8000, "::1", None),
    ],
)
def test_server_specs(spec: str, port: int, interface: str, backlog: int) -> None:
    endpoint = server(R, spec)
    assert isinstance(endpoint, TCPServerEndpoint)
    assert verifyObject(IStreamServerEndpoint, endpoint)
    assert (endpoint.port, endpoint.interface, endpoint.backlog) == (port, interface, backlog)


@pytest.mark.parametrize(
    "spec, host, port, timeout, bind",
    [
        ("tcp:example.com:8000", "example.com", 8000, 30, None),
        ("tcp:127.0.0.1:8000:timeout=5", "127.0.0.1", 8000, 5.0, None),
        ("tcp:host=h:port=8000", "h", 8000, 30, None),
        (r"tcp:\:\:1:8000", "::1", 8000, 30, None),
        ("tcp:[::1]:8000:timeout=0.5", "::1", 8000, 0.5, None),
        ("tcp:h:1:timeout=none", "h", 1, None, None),
        ("tcp:h:1:bind_address=127.0.0.2", "h", 1, 30, ("127.0.0.2", 0)),
    ],
)
def test_client_specs(spec: str, host: str, port: int, timeout: Any, bind: Any) -> None:
    endpoint = client(R, spec)
    assert isinstance(endpoint, TCPClientEndpoint)
    assert verifyObject(IStreamClientEndpoint, endpoint)
    got = (endpoint.host, endpoint.port, endpoint.timeout, endpoint.bind_address)
    assert got == (host, port, timeout, bind)


@pytest.mark.parametrize(
    "role, spec, message",
    [
        ("server", "8000", "needs a type prefix, e.g. 'tcp:8000'"),
        ("server", "", "needs a type prefix"),
        ("server", "udp:53", "unknown server endpoint type 'udp'"),
        ("server", "tcp:", "port must be an integer from 0 to 65535, got ''"),
        ("server", "tcp:http", "port must be an integer from 0 to 65535, got 'http'"),
        ("server", "tcp:70000", "port must be an integer"),
        ("server", "tcp:8000:backlog=-1", "backlog must be an integer"),
        ("server", "tcp:8000:bogus=1", "unexpected keyword argument 'bogus'"),
        ("server", "tcp:8000:127.0.0.1", "too many positional arguments"),
        ("server", "tcp:interface=127.0.0.1", "missing a required argument: 'port'"),
        ("server", "tcp:8000:port=8001", "multiple values for argument 'port'"),
        ("server", "tcp:8000:backlog=1:backlog=2", "gives backlog= twice"),
        ("server", "tcp:8000\\", "lone backslash"),
        ("client", "tcp:8000", "missing a required argument: 'port'"),
        ("client", "tcp:host:port", "port must be an integer"),
        ("client", "tcp::8000", "host must not be empty"),
        ("client", "tcp:h:1:timeout=soon", "timeout must be a number of seconds"),
        ("client", "tcp:h:1:timeout=-1", "timeout must be a number of seconds"),
        ("client", "tcp:::1:8000", "too many positional arguments"),
    ],
)
def test_bad_specs(role: str, spec: str, message: str) -> None:
    parse_spec = server if role == "server" else client
    with pytest.raises(ValueError) as info:
        parse_spec(R, spec)
    assert message in str(info.value)


def test_errors_show_the_right_form() -> None:
    expected = (r"expected 'tcp:PORT\[:interface=INTERFACE\]\[:backlog=BACKLOG\]"
                r"\[:max_connections=MAX_CONNECTIONS\]\[:max_connections_per_host=MAX_CONNECTIONS_PER_HOST\]\[:reuse_port=REUSE_PORT\]'")
    with pytest.raises(ValueError, match=expected):
        server(R, "tcp:x")
    with pytest.raises(ValueError, match=r"expected 'tcp:HOST:PORT\[:timeout=TIMEOUT\]\[:bind_address="):
        client(R, "tcp:x")


def test_register_endpoint_type() -> None:
    made: list[Any] = []

    def memory_server(reactor: Any, name: str, *, size: str = "1") -> Any:
        made.append(("server", reactor, name, int(size)))
        return "server-endpoint"

    def memory_client(reactor: Any, name: str) -> Any:
        made.append(("client", reactor, name))
        return "client-endpoint"

    register_endpoint_type("memtest", memory_server, memory_client)
    try:
        assert server(R, "memtest:a:size=3") == "server-endpoint"
        assert client(R, "memtest:name=b") == "client-endpoint"
        assert made == [("server", R, "a", 3), ("client", R, "b")]
        with pytest.raises(ValueError, match=r"expected 'memtest:NAME\[:size=SIZE\]'"):
            server(R, "memtest")
        register_endpoint_type("memtest", server_parser=memory_server)  # replaces: no client side
        unknown = "unknown client endpoint type 'memtest' in 'memtest:x'; known: .*tcp"
        with pytest.raises(ValueError, match=unknown):
            client(R, "memtest:x")
    finally:
        endpoints._TYPES.pop("memtest", None)
    with pytest.raises(ValueError, match="identifier"):
        register_endpoint_type("not valid")


# -- real sockets -------------------------------------------------------------------------------


def test_listen_and_connect(reactor: Any, run: Any) -> None:
    """A plain Factory works on both sides; the Deferred gives the protocol after connection_made."""

    async def scenario() -> None:
        port = await server(reactor, "tcp:0:interface=127.0.0.1").listen(Factory.for_protocol(Echo))
        number = port.get_host().port
        endpoint = client(reactor, f"tcp:127.0.0.1:{number}:timeout=5")
        proto = await endpoint.connect(Factory.for_protocol(Recorder))
        assert isinstance(proto, Recorder) and proto.events == ["made"]
        assert proto.transport.get_peer().port == number
        proto.transport.write(b"ping")
        await proto.when_received(4)
        assert bytes(proto.received) == b"ping"
        proto.transport.lose_connection()
        await proto.when_lost()
        assert isinstance(proto.reason, ConnectionDone)
        await port.stop_listening()

    run(reactor, scenario())


def test_client_factory_hooks_are_not_disturbed(reactor: Any, run: Any) -> None:
    """A ClientFactory passed to an endpoint is started and stopped like any factory."""

    async def scenario() -> None:
        port = await server(reactor, "tcp:0:interface=127.0.0.1").listen(Factory.for_protocol(Echo))
        factory = ClientFactory.for_protocol(Recorder)
        proto = await client(reactor, f"tcp:127.0.0.1:{port.get_host().port}").connect(factory)
        assert factory.num_ports == 1 and proto.factory is factory
        proto.transport.lose_connection()
        await proto.when_lost()
        await iterations(reactor, 2)
        assert factory.num_ports == 0
        await port.stop_listening()

    run(reactor, scenario())


def test_listen_failure(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        first = await server(reactor, "tcp:0:interface=127.0.0.1").listen(Factory.for_protocol(Echo))
        try:
            with pytest.raises(CannotListenError):
                await server(reactor, f"tcp:{first.get_host().port}:interface=127.0.0.1").listen(
                    Factory.for_protocol(Echo))
        finally:
            await first.stop_listening()

    run(reactor, scenario())


def test_connect_refused(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        port = await server(reactor, "tcp:0:interface=127.0.0.1").listen(Factory.for_protocol(Echo))
        number = port.get_host().port
        await port.stop_listening()
        factory = CollectingFactory()
        with pytest.raises(ConnectionRefusedError, match=f"Connection refused by 127.0.0.1:{number}"):
            await client(reactor, f"tcp:127.0.0.1:{number}").connect(factory)
        assert not factory.protocols

    run(reactor, scenario())


def test_cancel_connect(reactor: Any, run: Any) -> None:
    """Cancelling the Deferred abandons the attempt: CancelledError, nothing gets built."""

    async def scenario() -> None:
        server_factory = CollectingFactory()
        port = await server(reactor, "tcp:0:interface=127.0.0.1").listen(server_factory)
        factory = CollectingFactory()
        d = client(reactor, f"tcp:127.0.0.1:{port.get_host().port}").connect(factory)
        d.cancel()
        with pytest.raises(CancelledError):
            await d
        await iterations(reactor, 5)
        assert not factory.protocols and factory.num_ports == 0
        await port.stop_listening()

    run(reactor, scenario())


def test_cancel_after_connect_is_a_no_op(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        port = await server(reactor, "tcp:0:interface=127.0.0.1").listen(Factory.for_protocol(Echo))
        d = client(reactor, f"tcp:127.0.0.1:{port.get_host().port}").connect(Factory.for_protocol(Recorder))
        proto = await d
        d.cancel()
        proto.transport.write(b"x")
        await proto.when_received(1)
        proto.transport.lose_connection()
        await proto.when_lost()
        await port.stop_listening()

    run(reactor, scenario())


def test_ipv6_loopback(reactor: Any, run: Any) -> None:
    import socket

    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")

    async def scenario() -> None:
        port = await server(reactor, r"tcp:0:interface=\:\:1").listen(Factory.for_protocol(Echo))
        number = port.get_host().port
        proto = await client(reactor, f"tcp:[::1]:{number}").connect(Factory.for_protocol(Recorder))
        assert proto.transport.get_peer().host == "::1"
        proto.transport.write(b"six")
        await proto.when_received(3)
        proto.transport.lose_connection()
        await proto.when_lost()
        await port.stop_listening()

    run(reactor, scenario())


def _unresponsive_listener() -> Any:
    """A loopback listener whose accept queue is full: further connects hang (SYNs dropped)."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = [socket.socket() for _ in range(8)]
    for f in fillers:
        f.setblocking(False)
        f.connect_ex(listener.getsockname())
    return listener, fillers


def test_cancel_while_connecting(reactor: Any, run: Any) -> None:
    from net.error import ConnectTimeoutError

    listener, fillers = _unresponsive_listener()
    number = listener.getsockname()[1]

    async def scenario() -> None:
        factory = CollectingFactory()
        d = client(reactor, f"tcp:127.0.0.1:{number}:timeout=30").connect(factory)
        await iterations(reactor, 3)  # the attempt is under way: a socket waits for the handshake
        assert not d.called and factory.num_ports == 1
        d.cancel()
        with pytest.raises(CancelledError):
            await d
        assert factory.num_ports == 0 and not factory.protocols
        with pytest.raises(ConnectTimeoutError, match="timed out after 0.1s"):
            await client(reactor, f"tcp:127.0.0.1:{number}:timeout=0.1").connect(factory)

    try:
        run(reactor, scenario())
    finally:
        for s in (listener, *fillers):
            s.close()
