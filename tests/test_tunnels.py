"""Tunnels (SOCKS4/4a, SOCKS5, HTTP CONNECT) through real proxies, on every reactor backend.

The proxies are real programs (:mod:`proxies`: dante, tinyproxy, microsocks) on loopback: echo
through each, TLS to the final host inside the tunnel, host names the proxy resolves, credentials
right and wrong, and the refusals the real ones produce. Small in-test proxies (our own ``net``
on loopback) produce what real ones don't: a bad version byte, garbage, an endless header, an
early close, silence. The handshakes themselves are sans-I/O machines, checked here with
hypothesis under every chunking of valid replies, and with garbage. Last, the transport
conformance kit runs through each kind of tunnel.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import socket
import struct
from pathlib import Path
from typing import Any, Callable

import pytest
from cryptography import x509
from hypothesis import given
from hypothesis import strategies as st
from proxies import (  # noqa: F401  (fixtures, used by name)
    Proxy,
    dante,
    dante_account,
    dante_auth,
    free_port,
    microsocks,
    microsocks_auth,
    tinyproxy,
    tinyproxy_auth,
)

from net.defer import CancelledError, Deferred
from net.endpoints import client, server
from net.error import ConnectionDone, ConnectionRefusedError, ProxyError
from net.httpconnect import DEFAULT_MAX_HEAD_BYTES, ConnectHandshake
from net.protocol import Factory, Protocol
from net.socks import SOCKS5_REPLIES, Socks4Handshake, Socks5Handshake
from net.testing import TRANSPORT_CHECKS, CollectingFactory, EndpointPair, Echo, Recorder, iterations
from net.tls import CertificateError, DevCerts, make_dev_certs
from net.tunnels import TunnelClientEndpoint

LOCAL = "tcp:0:interface=127.0.0.1"
GREETING = b"220 hello from the target\r\n"


# -- helpers -----------------------------------------------------------------------------------------


def esc(path: Path) -> str:
    return str(path).replace("\\", "\\\\").replace(":", "\\:")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> DevCerts:
    return make_dev_certs(tmp_path_factory.mktemp("certs"))


class GreetingEcho(Echo):
    """A target that speaks first (as SMTP does), then echoes: its greeting may arrive together with
    the proxy's reply, and must reach the protocol above all the same."""

    def connection_made(self, transport: Any) -> None:
        transport.write(GREETING)
        super().connection_made(transport)


async def listen(reactor: Any, make: Callable[[], Recorder] = GreetingEcho, spec: str = LOCAL) -> tuple[Any, CollectingFactory]:
    factory = CollectingFactory(make)
    port = await server(reactor, spec).listen(factory)
    return port, factory


async def echo_through(reactor: Any, spec: str, payload: bytes = b"through the tunnel",
                       greeting: bytes = GREETING) -> Recorder:
    """Connect with ``spec``, get the greeting and ``payload`` echoed, close cleanly."""
    protocol: Recorder = await client(reactor, spec).connect(CollectingFactory())
    protocol.transport.write(payload)
    await protocol.when_received(len(greeting) + len(payload))
    assert bytes(protocol.received) == greeting + payload
    protocol.transport.lose_connection()
    await protocol.when_lost()
    assert isinstance(protocol.reason, ConnectionDone), protocol.reason
    return protocol


async def connect_error(reactor: Any, spec: str) -> BaseException:
    try:
        protocol = await client(reactor, spec).connect(CollectingFactory())
    except Exception as exc:
        return exc
    protocol.transport.abort_connection()
    raise AssertionError(f"connected through {spec!r}, unexpectedly")


def nobody_listens() -> int:
    """A loopback port with no listener: a target the proxy's connect is refused by."""
    return free_port()


# -- echo through every real proxy -------------------------------------------------------------------

REAL = [
    ("dante", "socks5"),
    ("dante", "socks4"),
    ("microsocks", "socks5"),
    ("tinyproxy", "connect"),
    ("dante_auth", "socks5"),
    ("microsocks_auth", "socks5"),
    ("tinyproxy_auth", "connect"),
]


@pytest.mark.parametrize(("proxy_name", "kind"), REAL, ids=[f"{p}-{k}" for p, k in REAL])
def test_echo_through_real_proxy(reactor: Any, run: Any, request: pytest.FixtureRequest,
                                 proxy_name: str, kind: str) -> None:
    proxy: Proxy = request.getfixturevalue(proxy_name)

    async def go() -> None:
        port, factory = await listen(reactor)
        protocol = await echo_through(reactor, proxy.spec(f"tcp:127.0.0.1:{port.get_host().port}", kind))
        assert protocol.transport.get_peer().port == proxy.port  # the stream is the proxy's
        target = await factory.connection(0)
        # The target was reached by the proxy's own socket, not by ours.
        assert target.transport.get_peer().port != protocol.transport.get_host().port
        await target.when_lost()
        await port.stop_listening()

    run(reactor, go())


@pytest.mark.parametrize(("proxy_name", "kind"), [("dante", "socks5"), ("microsocks", "socks5"),
                                                  ("tinyproxy", "connect")])
def test_the_proxy_resolves_host_names(reactor: Any, run: Any, request: pytest.FixtureRequest,
                                       proxy_name: str, kind: str) -> None:
    """``localhost`` goes to the proxy as a name; a name nobody can resolve is the proxy's failure
    to report (here it would have been a DNSLookupError)."""
    proxy: Proxy = request.getfixturevalue(proxy_name)

    async def go() -> None:
        port, _ = await listen(reactor)
        await echo_through(reactor, proxy.spec(f"tcp:localhost:{port.get_host().port}", kind))
        error = await connect_error(reactor, proxy.spec("tcp:no-such-host.invalid:80", kind))
        assert isinstance(error, ProxyError), error
        assert error.code in {"dante": {4}, "microsocks": {1, 4}, "tinyproxy": {500, 502, 503, 504}}[proxy_name]
        assert "no-such-host.invalid:80" in str(error)
        await port.stop_listening()

    run(reactor, go())


def test_ipv6_target(reactor: Any, run: Any, microsocks: Proxy) -> None:
    """An IPv6 literal goes as SOCKS5 ATYP 4, and microsocks connects to it over IPv6."""
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this host")

    async def go() -> None:
        try:
            port, factory = await listen(reactor, GreetingEcho, "tcp:0:interface=\\:\\:1")
        except OSError as exc:
            pytest.skip(f"cannot listen on [::1]: {exc}")
        await echo_through(reactor, microsocks.spec(f"tcp:[::1]:{port.get_host().port}"))
        target = await factory.connection(0)
        assert target.transport.get_peer().host == "::1"  # microsocks came over IPv6
        await port.stop_listening()

    run(reactor, go())


def test_nested_tunnels(reactor: Any, run: Any, dante: Proxy, tinyproxy: Proxy, certs: DevCerts) -> None:
    """SOCKS5 to dante, through it HTTP CONNECT to tinyproxy, through that TLS to the target."""

    async def go() -> None:
        port, _ = await listen(reactor, GreetingEcho,
                               f"tls:0:cert={esc(certs.server_cert)}:key={esc(certs.server_key)}:interface=127.0.0.1")
        inner = tinyproxy.spec(f"tls:localhost:{port.get_host().port}:ca={esc(certs.ca)}")
        protocol = await echo_through(reactor, dante.spec(inner))
        assert protocol.transport.get_peer_certificate() is not None
        await port.stop_listening()

    run(reactor, go())


# -- TLS to the final host, inside the tunnel -----------------------------------------------------------


@pytest.mark.parametrize(("proxy_name", "kind"), [("dante", "socks5"), ("microsocks_auth", "socks5"),
                                                  ("tinyproxy_auth", "connect")])
def test_tls_to_the_final_host(reactor: Any, run: Any, request: pytest.FixtureRequest, certs: DevCerts,
                               proxy_name: str, kind: str) -> None:
    """The handshake, SNI and certificate check are with the final host: the proxy sees ciphertext.
    A certificate that does not name the host fails as it would without a proxy."""
    proxy: Proxy = request.getfixturevalue(proxy_name)

    async def go() -> None:
        port, _ = await listen(
            reactor, GreetingEcho,
            f"tls:0:cert={esc(certs.server_cert)}:key={esc(certs.server_key)}:interface=127.0.0.1")
        where = port.get_host().port
        protocol = await echo_through(reactor, proxy.spec(f"tls:localhost:{where}:ca={esc(certs.ca)}", kind))
        assert protocol.transport.get_protocol_version().startswith("TLSv1.")
        cert = protocol.transport.get_peer_certificate()
        assert cert == x509.load_pem_x509_certificate(Path(certs.server_cert).read_bytes())
        error = await connect_error(
            reactor, proxy.spec(f"tls:localhost:{where}:ca={esc(certs.ca)}:hostname=elsewhere.example", kind))
        assert isinstance(error, CertificateError), error
        await port.stop_listening()

    run(reactor, go())


# -- credentials ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("proxy_name", ["dante_auth", "microsocks_auth"])
def test_socks5_credentials_refused(reactor: Any, run: Any, request: pytest.FixtureRequest,
                                    proxy_name: str) -> None:
    proxy: Proxy = request.getfixturevalue(proxy_name)

    async def go() -> None:
        target = f"tcp:127.0.0.1:{nobody_listens()}"
        error = await connect_error(reactor, proxy.spec(target, password="wrong-password"))
        assert isinstance(error, ProxyError) and error.kind == "socks5", error
        assert error.code not in (None, 0)
        assert "rejected the user name and password" in str(error) and "check user= and password=" in str(error)
        assert error.proxy == f"127.0.0.1:{proxy.port}"
        error = await connect_error(reactor, proxy.spec(target, credentials=False))
        assert isinstance(error, ProxyError) and error.code == 0xFF, error
        assert "requires authentication: pass user= and password=" in str(error)

    run(reactor, go())


def test_http_proxy_credentials_refused(reactor: Any, run: Any, tinyproxy_auth: Proxy) -> None:
    async def go() -> None:
        target = f"tcp:127.0.0.1:{nobody_listens()}"
        error = await connect_error(reactor, tinyproxy_auth.spec(target, credentials=False))
        assert isinstance(error, ProxyError) and error.code == 407, error
        assert "proxy authentication required: pass user= and password=" in str(error)
        error = await connect_error(reactor, tinyproxy_auth.spec(target, password="wrong"))
        assert isinstance(error, ProxyError) and error.code in (401, 407), error
        assert "rejected the credentials of user 'alice'" in str(error)

    run(reactor, go())


# -- refusals by the real proxies ---------------------------------------------------------------------------


@pytest.mark.parametrize(("proxy_name", "kind", "codes", "words"), [
    ("dante", "socks5", {5}, "connection refused (SOCKS5 reply 5): the target refused"),
    ("microsocks", "socks5", {5}, "connection refused (SOCKS5 reply 5): the target refused"),
    ("dante", "socks4", {91}, "request rejected or failed (SOCKS4 reply 91)"),
    ("tinyproxy", "connect", {500, 502, 503}, "the proxy could not reach the target"),
])
def test_target_refuses(reactor: Any, run: Any, request: pytest.FixtureRequest,
                        proxy_name: str, kind: str, codes: set[int], words: str) -> None:
    """Nobody listens on the target port: the proxy's refusal, with its code, blames the target."""
    proxy: Proxy = request.getfixturevalue(proxy_name)

    async def go() -> None:
        where = f"127.0.0.1:{nobody_listens()}"
        error = await connect_error(reactor, proxy.spec(f"tcp:{where}", kind))
        assert isinstance(error, ProxyError), error
        assert error.code in codes and error.kind == ("socks4" if kind == "socks4" else kind), error
        assert words in str(error) and where in str(error), error

    run(reactor, go())


def test_dante_refuses_what_it_cannot_carry(reactor: Any, run: Any, dante: Proxy) -> None:
    """dante's external side is IPv4 only (reply 8 for IPv6), and it speaks no SOCKS4a (91)."""

    async def go() -> None:
        error = await connect_error(reactor, dante.spec("tcp:[::1]:80"))
        assert isinstance(error, ProxyError) and error.code == 8, error
        assert "address type not supported" in str(error) and "IPv6 addresses" in str(error)
        error = await connect_error(reactor, dante.spec("tcp:localhost:80", "socks4a"))
        assert isinstance(error, ProxyError) and error.code == 91, error
        assert "SOCKS4a host names" in str(error)

    run(reactor, go())


def test_proxy_not_running(reactor: Any, run: Any) -> None:
    async def go() -> None:
        where = nobody_listens()
        error = await connect_error(reactor, f"socks5:127.0.0.1:{where}:tcp:127.0.0.1:80")
        assert isinstance(error, ConnectionRefusedError), error
        assert f"cannot reach the socks5 proxy at 127.0.0.1:{where}" in str(error)
        assert isinstance(error.__cause__, ConnectionRefusedError)

    run(reactor, go())


def test_wrong_kind_of_real_proxy(reactor: Any, run: Any, dante: Proxy, tinyproxy: Proxy) -> None:
    """HTTP CONNECT to dante: dante hangs up; the error says so and asks the right question."""

    async def go() -> None:
        error = await connect_error(reactor, f"connect:127.0.0.1:{dante.port}:tcp:127.0.0.1:80")
        assert isinstance(error, ProxyError), error
        assert "closed the connection while we were waiting for its response" in str(error)
        assert "is it an HTTP proxy" in str(error)
        error = await connect_error(reactor, f"socks5:127.0.0.1:{tinyproxy.port}:timeout=0.3:tcp:127.0.0.1:80")
        assert isinstance(error, ProxyError), error  # tinyproxy waits for a request line forever
        assert "within 0.3 seconds" in str(error) and "is it a SOCKS5 proxy" in str(error)

    run(reactor, go())


# -- in-test proxies, for what real ones do not produce --------------------------------------------------


class ScriptedProxy(Protocol):
    """A fake proxy: for each step, waits until it has ``expect`` (a byte count, or a byte string the
    input must end with), then writes ``reply``; afterwards ``then``: "echo", "close" or "stall"."""

    def __init__(self, owner: ScriptedFactory, steps: list[tuple[int | bytes, bytes]], then: str) -> None:
        self.owner = owner
        self.steps = list(steps)
        self.then = then
        self.received = bytearray()
        self.lost: Deferred[Any] = Deferred()
        self._taken = 0

    def data_received(self, data: bytes) -> None:
        if not self.owner.first_request.called:
            self.owner.first_request.callback(self)
        self.received += data
        if not self.steps:
            if self.then == "echo":
                self.transport.write(data)
            return
        while self.steps:
            expect, reply = self.steps[0]
            pending = bytes(self.received[self._taken:])
            if isinstance(expect, int):
                if len(pending) < expect:
                    return
                used = expect
            else:
                at = pending.find(expect)
                if at < 0:
                    return
                used = at + len(expect)
            self._taken += used
            self.steps.pop(0)
            self.transport.write(reply)
        if self.then == "close":
            self.transport.lose_connection()
        elif self.then == "echo" and len(self.received) > self._taken:
            self.transport.write(bytes(self.received[self._taken:]))

    def connection_lost(self, reason: Any) -> None:
        self.lost.callback(reason.value)


class ScriptedFactory(Factory):
    def __init__(self, steps: list[tuple[int | bytes, bytes]], then: str = "close") -> None:
        self.steps = steps
        self.then = then
        self.protocols: list[ScriptedProxy] = []
        self.first_request: Deferred[ScriptedProxy] = Deferred()  # the first bytes of any connection

    def build_protocol(self, addr: Any) -> ScriptedProxy:
        protocol = ScriptedProxy(self, self.steps, self.then)
        self.protocols.append(protocol)
        return protocol


async def fake_proxy(reactor: Any, steps: list[tuple[int | bytes, bytes]], then: str = "close") -> tuple[Any, ScriptedFactory]:
    factory = ScriptedFactory(steps, then)
    port = await server(reactor, LOCAL).listen(factory)
    return port, factory


SOCKS5_OK = b"\x05\x00\x00\x01\x7f\x00\x00\x01\x04\x38"  # granted, bound to 127.0.0.1:1080
HTTP_HEAD = b"\r\n\r\n"
#: 30 KiB of header fields and no end: the client must give up at its limit, not buffer on.
ENDLESS_HEADER = b"HTTP/1.1 200 OK\r\n" + (b"X-Filler: " + b"a" * 90 + b"\r\n") * 300

ERROR_CASES = [
    ("socks5", [(3, b"HTTP/1.1 400 Bad Request\r\n\r\n")], "did not answer as a SOCKS5 proxy",
     "is it an HTTP proxy? then use connect:"),
    ("socks5", [(3, b"\x05\x00"), (10, b"\x04\x00\x00\x01")], "did not answer as a SOCKS5 proxy", "\\x04"),
    ("socks5", [(3, b"\x05\x02")], "chose authentication method 0x02, which we did not offer",
     "broke the protocol"),
    ("socks5", [(3, b"\x05\x00"), (10, b"\x05\x00\x00\x07\x00")], "unknown address type 7", "broke the protocol"),
    ("socks5", [(3, b"\x05\x00"), (10, b"\x05\x02\x00\x01")],
     "connection not allowed by ruleset (SOCKS5 reply 2)", "ask its operator"),
    ("socks4", [(9, b"\x05\x5a" + b"\0" * 6)], "did not answer as a SOCKS4 proxy", "\\x05Z"),
    ("socks4", [(9, b"\x00\x5c" + b"\0" * 6)], "SOCKS4 reply 92", "identd"),
    ("connect", [(HTTP_HEAD, b"\x05\x00\x00\x01garbage")], "did not answer as an HTTP proxy",
     "it answered like a SOCKS proxy"),
    ("connect", [(HTTP_HEAD, b"HTTP/1.1 2OO OK\r\n\r\n")], "malformed status line", "HTTP/1.1 2OO OK"),
    ("connect", [(HTTP_HEAD, b"HTTP/1.1 403 Filtered\r\nContent-Length: 0\r\n\r\n")],
     "(HTTP 403 Filtered)", "the proxy's rules refuse"),
    ("connect", [(HTTP_HEAD, b"HTTP/1.1 502 Bad Gateway\r\n\r\n")], "(HTTP 502 Bad Gateway)",
     "the proxy could not reach the target"),
    ("connect", [(HTTP_HEAD, ENDLESS_HEADER)], f"more than {DEFAULT_MAX_HEAD_BYTES} bytes of response header",
     "not a well-behaved HTTP proxy"),
]
EARLY_CLOSES = [
    ("socks5", [(3, b"\x05")], "waiting for its choice of authentication method"),
    ("socks5", [(3, b"\x05\x00"), (10, b"\x05\x00\x00\x01\x7f")], "waiting for its reply to our CONNECT request"),
    ("socks4", [(9, b"\x00")], "waiting for its reply to our CONNECT request"),
    ("connect", [(HTTP_HEAD, b"HTTP/1.1 200 OK\r\nServer: x\r\n")], "waiting for its response to our CONNECT"),
]


@pytest.mark.parametrize(("kind", "steps", "words", "more"), ERROR_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(ERROR_CASES)])
def test_broken_proxy(reactor: Any, run: Any, kind: str, steps: Any, words: str, more: str) -> None:
    """The proxy's fault, said as such; the connection to it is closed, and nothing is left open."""

    async def go() -> None:
        port, factory = await fake_proxy(reactor, steps, then="stall")
        error = await connect_error(reactor, f"{kind}:127.0.0.1:{port.get_host().port}:tcp:127.0.0.1:9")
        assert isinstance(error, ProxyError), error
        assert error.kind == kind and error.proxy == f"127.0.0.1:{port.get_host().port}"
        assert words in str(error) and more in str(error), str(error)
        await factory.protocols[0].lost  # we closed it, though the fake proxy never would
        await port.stop_listening()

    run(reactor, go())


@pytest.mark.parametrize(("kind", "steps", "words"), EARLY_CLOSES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(EARLY_CLOSES)])
def test_proxy_closes_during_handshake(reactor: Any, run: Any, kind: str, steps: Any, words: str) -> None:
    async def go() -> None:
        port, _ = await fake_proxy(reactor, steps, then="close")
        error = await connect_error(reactor, f"{kind}:127.0.0.1:{port.get_host().port}:tcp:127.0.0.1:9")
        assert isinstance(error, ProxyError), error
        assert "closed the connection while we were " + words in str(error), str(error)
        await port.stop_listening()

    run(reactor, go())


@pytest.mark.parametrize("kind", ["socks4", "socks5", "connect"])
def test_handshake_timeout(reactor: Any, run: Any, kind: str) -> None:
    """A proxy that accepts and says nothing is dropped after timeout= seconds."""

    async def go() -> None:
        port, factory = await fake_proxy(reactor, [], then="stall")
        error = await connect_error(reactor, f"{kind}:127.0.0.1:{port.get_host().port}:timeout=0.2:tcp:127.0.0.1:9")
        assert isinstance(error, ProxyError), error
        assert "did not open the tunnel to 127.0.0.1:9 within 0.2 seconds" in str(error)
        await factory.protocols[0].lost
        await port.stop_listening()

    run(reactor, go())


@pytest.mark.parametrize("kind", ["socks5", "connect"])
def test_cancel_during_handshake(reactor: Any, run: Any, kind: str) -> None:
    async def go() -> None:
        port, factory = await fake_proxy(reactor, [], then="stall")
        d = client(reactor, f"{kind}:127.0.0.1:{port.get_host().port}:tcp:127.0.0.1:9").connect(CollectingFactory())
        proxy_side = await factory.first_request
        d.cancel()
        with pytest.raises(CancelledError):
            await d
        await proxy_side.lost
        await port.stop_listening()

    run(reactor, go())


class BufferedRecorder(Recorder):
    """A Recorder with the buffered-protocol methods: the tunnel must fill its buffer too."""

    def __init__(self) -> None:
        super().__init__()
        self._buffer = bytearray(7)  # small: the leftover takes several rounds

    def get_buffer(self, sizehint: int) -> bytearray:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(bytes(self._buffer[:nbytes]))


@pytest.mark.parametrize("make", [Recorder, BufferedRecorder], ids=["plain", "buffered"])
@pytest.mark.parametrize(("kind", "steps"), [
    ("socks5", [(3, b"\x05\x00"), (16, SOCKS5_OK + GREETING)]),  # reply and greeting in one write
    ("socks4a", [(b"me\0localhost\0", b"\x00\x5a\x00\x00\x00\x00\x00\x00" + GREETING)]),
    ("connect", [(HTTP_HEAD, b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 Connection established\n"
                             b"Content-Length: 99\n\n" + GREETING)]),
], ids=["socks5", "socks4a", "connect"])
def test_bytes_after_the_reply_reach_the_protocol(reactor: Any, run: Any, kind: str, steps: Any,
                                                  make: Callable[[], Recorder]) -> None:
    """What the proxy sends with or after its reply is the target's, delivered first, not lost; the
    request carries the host name (SOCKS5 ATYP 3, SOCKS4a, CONNECT) for the proxy to resolve."""

    async def go() -> None:
        port, factory = await fake_proxy(reactor, steps, then="echo")
        user = ":user=me" if kind == "socks4a" else ""
        spec = f"{kind}:127.0.0.1:{port.get_host().port}{user}:tcp:localhost:4242"
        protocol = await client(reactor, spec).connect(CollectingFactory(make))
        protocol.transport.write(b"ping")
        await protocol.when_received(len(GREETING) + 4)
        assert bytes(protocol.received) == GREETING + b"ping"
        request = bytes(factory.protocols[0].received)
        expected = {
            "socks5": b"\x05\x01\x00" + b"\x05\x01\x00\x03\x09localhost" + struct.pack(">H", 4242),
            "socks4a": b"\x04\x01" + struct.pack(">H", 4242) + b"\0\0\0\1me\0localhost\0",
            "connect": b"CONNECT localhost:4242 HTTP/1.1\r\nHost: localhost:4242\r\n\r\n",
        }[kind]
        assert request == expected + b"ping"
        protocol.transport.lose_connection()
        await protocol.when_lost()
        await port.stop_listening()

    run(reactor, go())


def test_socks5_credentials_on_the_wire(reactor: Any, run: Any) -> None:
    async def go() -> None:
        port, factory = await fake_proxy(reactor, [(4, b"\x05\x02"), (10, b"\x01\x00"), (10, SOCKS5_OK)],
                                         then="echo")
        spec = f"socks5:127.0.0.1:{port.get_host().port}:user=ann:password=pw\\:1:tcp:[::1]:80"
        protocol = await client(reactor, spec).connect(CollectingFactory())
        protocol.transport.lose_connection()
        await protocol.when_lost()
        assert bytes(factory.protocols[0].received) == (
            b"\x05\x02\x00\x02" + b"\x01\x03ann\x04pw:1"
            + b"\x05\x01\x00\x04" + ipaddress.IPv6Address("::1").packed + struct.pack(">H", 80))
        await port.stop_listening()

    run(reactor, go())


def test_connect_credentials_on_the_wire(reactor: Any, run: Any) -> None:
    async def go() -> None:
        port, factory = await fake_proxy(reactor, [(HTTP_HEAD, b"HTTP/1.1 200 OK\r\n\r\n")], then="echo")
        spec = f"connect:127.0.0.1:{port.get_host().port}:user=ann:password=s\u00e9cret:tcp:[::1]:443"
        protocol = await client(reactor, spec).connect(CollectingFactory())
        protocol.transport.lose_connection()
        await protocol.when_lost()
        token = base64.b64encode("ann:s\u00e9cret".encode()).decode()
        assert bytes(factory.protocols[0].received).decode() == (
            f"CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\nProxy-Authorization: Basic {token}\r\n\r\n")
        await port.stop_listening()

    run(reactor, go())


# -- resources ----------------------------------------------------------------------------------------


def test_no_descriptor_left_behind(reactor: Any, run: Any, dante: Proxy, tinyproxy: Proxy) -> None:
    """Tunnels that work, are refused, break, time out or are cancelled: every fd is closed."""

    async def go() -> list[str]:
        await iterations(reactor, 1)
        before = sorted(os.listdir("/proc/self/fd"))
        port, _ = await listen(reactor)
        target = f"tcp:127.0.0.1:{port.get_host().port}"
        await echo_through(reactor, dante.spec(target))
        await echo_through(reactor, tinyproxy.spec(target))
        assert isinstance(await connect_error(reactor, dante.spec(f"tcp:127.0.0.1:{nobody_listens()}")), ProxyError)
        garbage, garbage_factory = await fake_proxy(reactor, [(3, b"garbage")], then="stall")
        silent, silent_factory = await fake_proxy(reactor, [], then="stall")
        errors = [
            await connect_error(reactor, f"socks5:127.0.0.1:{garbage.get_host().port}:{target}"),
            await connect_error(reactor, f"connect:127.0.0.1:{silent.get_host().port}:timeout=0.1:{target}"),
        ]
        d = client(reactor, f"socks5:127.0.0.1:{silent.get_host().port}:{target}").connect(CollectingFactory())
        await silent_factory.first_request
        d.cancel()
        d.add_errback(lambda failure: errors.append(failure.value))
        assert [type(e) for e in errors] == [ProxyError, ProxyError, CancelledError], errors
        for protocol in garbage_factory.protocols + silent_factory.protocols:
            await protocol.lost
        await garbage.stop_listening()
        await silent.stop_listening()
        await port.stop_listening()
        await iterations(reactor, 3)
        return before

    before = run(reactor, go())
    assert sorted(os.listdir("/proc/self/fd")) == before


# -- endpoint strings -----------------------------------------------------------------------------------


def test_endpoint_strings(certs: DevCerts) -> None:
    """The tunnel's options and INNER's are apart (both have timeout=); escapes and brackets hold."""
    endpoint: Any = client(None, "socks5:[::1]:1080:user=u:password=p\\:q:timeout=5:"
                            f"tls:host\\:x:8801:ca={esc(certs.ca)}:timeout=3")
    assert isinstance(endpoint, TunnelClientEndpoint)
    assert (endpoint.host, endpoint.port, endpoint.timeout) == ("::1", 1080, 5.0)
    assert endpoint.options == {"user": "u", "password": "p:q"}
    inner: Any = endpoint.inner  # a TLSClientEndpoint, with its own timeout=
    assert (inner.host, inner.port, inner.timeout) == ("host:x", 8801, 3.0)
    nested = client(None, "socks4a:10.0.0.1:1080:user=me:connect:proxy2:3128:socks5:p3:1080:tcp:example.com:80")
    assert nested.inner.inner.inner.host == "example.com"
    assert nested.inner.host == "proxy2" and nested.inner.inner.host == "p3"
    assert client(None, "socks4:p:1080:tcp:10.1.2.3:80").options == {}


@pytest.mark.parametrize(("spec", "words"), [
    ("socks5:proxy:1080", "must be followed by the endpoint to reach through it"),
    ("socks5:proxy:1080:user=u", "must be followed by the endpoint"),
    ("socks5:proxy:tcp:host:80", "port must be an integer"),
    ("socks5:proxy:1080:user=u:tcp:host:80", "needs both user= and password="),
    ("socks4:proxy:1080:password=p:tcp:host:80", "socks4: takes timeout=, user=, not password="),
    ("socks4:proxy:1080:tcp:example.com:80", "use socks4a: to have the proxy resolve it"),
    ("socks4a:proxy:1080:tcp:[::1]:80", "use socks5:"),
    ("connect:proxy:3128:user=a\\:b:password=p:tcp:host:80", "must not contain ':'"),
    ("connect:proxy:3128:tcp:host:0", "target port must be from 1 to 65535"),
    ("socks5:proxy:1080:tcp:host", "its inner endpoint is bad"),
    ("socks5:proxy:1080:nosuch:host:80", "its inner endpoint is bad"),
    ("socks5:proxy:1080:timeout=soon:tcp:host:80", "timeout must be a number"),
    ("socks5://proxy:1080", "looks like a URL"),
])
def test_bad_endpoint_strings(spec: str, words: str) -> None:
    with pytest.raises(ValueError) as info:
        client(None, spec)
    assert words in str(info.value), str(info.value)


def test_tunnels_are_client_endpoints_only() -> None:
    with pytest.raises(ValueError, match="client endpoint only"):
        server(None, "socks5:proxy:1080:tcp:host:80")


# -- the handshakes as state machines, with hypothesis ----------------------------------------------------


def feed(machine: Any, data: bytes, cuts: list[int]) -> tuple[bytes, bytes]:
    """Feed ``data`` cut at ``cuts`` until the machine is done; returns what it asked to send and
    what the protocol above gets (its leftover, then the chunks not fed to it)."""
    out = []
    points = sorted({c for c in cuts if 0 < c < len(data)}) + [len(data)]
    start = 0
    for point in points:
        out.append(machine.receive_data(data[start:point]))
        start = point
        if machine.done:
            break
    assert machine.done
    return b"".join(out), machine.leftover + data[start:]


hosts = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
    st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,20}){0,3}", fullmatch=True),
)
ports = st.integers(1, 65535)
cuts = st.lists(st.integers(0, 400), max_size=40)
leftovers = st.binary(max_size=64)
bound = st.one_of(
    st.ip_addresses(v=4).map(lambda a: b"\x01" + a.packed),
    st.ip_addresses(v=6).map(lambda a: b"\x04" + a.packed),
    st.binary(min_size=1, max_size=255).map(lambda n: b"\x03" + bytes([len(n)]) + n),
)


@given(host=hosts, port=ports, creds=st.booleans(), choose_auth=st.booleans(), bound=bound,
       leftover=leftovers, cuts=cuts)
def test_socks5_machine_any_chunking(host: str, port: int, creds: bool, choose_auth: bool, bound: bytes,
                                     leftover: bytes, cuts: list[int]) -> None:
    machine = Socks5Handshake(host, port, user="user" if creds else None, password="pw" if creds else None)
    greeting = machine.start()
    assert greeting == (b"\x05\x02\x00\x02" if creds else b"\x05\x01\x00")
    with_auth = creds and choose_auth
    replies = (b"\x05\x02\x01\x00" if with_auth else b"\x05\x00") + b"\x05\x00\x00" + bound + b"\x12\x34"
    sent, after = feed(machine, replies + leftover, cuts)
    ip = ipaddress.ip_address(host) if ":" in host or host[0].isdigit() else None
    address = (bytes([1 if ip.version == 4 else 4]) + ip.packed if ip is not None
               else b"\x03" + bytes([len(host)]) + host.encode())
    request = b"\x05\x01\x00" + address + struct.pack(">H", port)
    assert sent == (b"\x01\x04user\x02pw" if with_auth else b"") + request
    assert after == leftover
    assert machine.bound is not None and machine.bound[1] == 0x1234


@given(code=st.integers(1, 255), cuts=cuts)
def test_socks5_refusals_any_chunking(code: int, cuts: list[int]) -> None:
    machine = Socks5Handshake("example.com", 443, proxy="p:1080")
    machine.start()
    with pytest.raises(ProxyError) as info:
        feed(machine, b"\x05\x00\x05" + bytes([code]) + b"\x00\x01\x00\x00\x00\x00\x00\x00", cuts)
    assert info.value.code == code and info.value.kind == "socks5" and info.value.proxy == "p:1080"
    name = SOCKS5_REPLIES[code][0] if code in SOCKS5_REPLIES else f"unknown reply code {code}"
    assert f"{name} (SOCKS5 reply {code})" in str(info.value)
    assert str(info.value).startswith("the socks5 proxy at p:1080 could not open a tunnel to example.com:443")


@given(host=st.one_of(st.ip_addresses(v=4).map(str), hosts), port=ports, user=st.text(
    st.characters(codec="utf-8", exclude_characters="\0"), max_size=20).filter(
        lambda u: len(u.encode()) <= 255), version=st.sampled_from([0, 4]), leftover=leftovers, cuts=cuts)
def test_socks4_machine_any_chunking(host: str, port: int, user: str, version: int, leftover: bytes,
                                     cuts: list[int]) -> None:
    try:
        is_v6 = ipaddress.ip_address(host).version == 6
    except ValueError:
        is_v6 = False
    if is_v6:
        with pytest.raises(ValueError):
            Socks4Handshake(host, port, user=user, allow_names=True)
        return
    machine = Socks4Handshake(host, port, user=user, allow_names=True)
    request = machine.start()
    assert request[:4] == b"\x04\x01" + struct.pack(">H", port)
    assert request.endswith(b"\0") and user.encode() + b"\0" in request
    assert feed(machine, bytes([version, 90]) + b"\0" * 6 + leftover, cuts) == (b"", leftover)


head_lines = st.lists(st.from_regex(r"[A-Za-z-]{1,20}: [ -~]{0,40}", fullmatch=True), max_size=6)


@given(status=st.integers(200, 299), reason=st.from_regex(r"[ -~]{0,30}", fullmatch=True),
       headers=head_lines, interim=st.integers(0, 2), newline=st.sampled_from([b"\r\n", b"\n"]),
       leftover=leftovers, cuts=st.lists(st.integers(0, 2000), max_size=60))
def test_connect_machine_any_chunking(status: int, reason: str, headers: list[str], interim: int,
                                      newline: bytes, leftover: bytes, cuts: list[int]) -> None:
    machine = ConnectHandshake("example.com", 443)
    assert machine.start() == b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
    head = newline.join([f"HTTP/1.1 {status} {reason}".rstrip().encode(), *(h.encode() for h in headers)])
    data = (b"HTTP/1.1 100 Continue" + newline + newline) * interim + head + newline + newline + leftover
    assert feed(machine, data, cuts) == (b"", leftover)
    assert machine.status == status


@given(status=st.integers(300, 599), cuts=st.lists(st.integers(0, 100), max_size=20))
def test_connect_refusals_any_chunking(status: int, cuts: list[int]) -> None:
    machine = ConnectHandshake("example.com", 443, user="u", password="p", proxy="p:3128")
    machine.start()
    with pytest.raises(ProxyError) as info:
        feed(machine, f"HTTP/1.1 {status} Nope\r\nX: y\r\n\r\nbody".encode(), cuts)
    assert info.value.code == status and info.value.kind == "connect"
    assert f"(HTTP {status} Nope)" in str(info.value)


@given(data=st.binary(max_size=600), cuts=cuts)
def test_garbage_never_breaks_the_machines(data: bytes, cuts: list[int]) -> None:
    """Whatever a proxy sends, a machine asks for more, finishes, or raises ProxyError; nothing else."""
    for machine in (Socks5Handshake("h", 1, user="u", password="p"), Socks4Handshake("1.2.3.4", 1),
                    ConnectHandshake("h", 1, max_head_bytes=256)):
        machine.start()
        points = sorted({c for c in cuts if 0 < c < len(data)}) + [len(data)]
        start = 0
        try:
            for point in points:
                machine.receive_data(data[start:point])
                start = point
                if machine.done:
                    break
        except ProxyError:
            continue
        if not machine.done and isinstance(machine, ConnectHandshake):
            assert len(data) <= 256  # more than the limit without an end of head is refused


@given(filler=st.integers(1, 64), cuts=st.lists(st.integers(0, 20000), max_size=50))
def test_endless_header_is_cut_off(filler: int, cuts: list[int]) -> None:
    machine = ConnectHandshake("h", 1)
    machine.start()
    data = b"HTTP/1.1 200 OK\r\n" + (b"X: " + b"a" * filler + b"\r\n") * (DEFAULT_MAX_HEAD_BYTES // 4)
    with pytest.raises(ProxyError, match="more than 16384 bytes of response header"):
        feed(machine, data, cuts)


def test_machines_refuse_data_after_done() -> None:
    machine = ConnectHandshake("h", 1)
    machine.receive_data(b"HTTP/1.1 200 OK\r\n\r\n")
    with pytest.raises(RuntimeError, match="give the bytes to the protocol above"):
        machine.receive_data(b"x")


# -- the conformance kit, through each kind of tunnel -------------------------------------------------------

#: Checks whose premise a proxy in the middle breaks by design, and why (they are reported as skips).
THROUGH_ANY_PROXY = {
    "check_addresses": "the client's peer is the proxy, and the server's peer the proxy's outgoing socket",
    "check_abort_drops": "SOCKS and CONNECT cannot carry a reset: the proxy ends the client's side cleanly",
}
THROUGH = {
    "tinyproxy": {"check_half_close": "tinyproxy closes both directions on the first EOF it relays"},
    "microsocks": {
        "check_half_close": "microsocks closes both directions on the first EOF it relays",
        # Its relay is one loop with a 1 KiB buffer and blocking writes: once the client stops
        # reading, it stops carrying the client's writes too, so the echoing server may never
        # receive enough to fill its own buffer (whether it does is a race).
        "check_protocol_as_consumer": "microsocks stops relaying both ways while one way is blocked",
    },
}
TUNNEL_PAIRS = [("dante", "socks5"), ("dante", "socks4"), ("microsocks", "socks5"), ("tinyproxy", "connect")]


@pytest.mark.parametrize("check", TRANSPORT_CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize(("proxy_name", "kind"), TUNNEL_PAIRS, ids=[f"{p}-{k}" for p, k in TUNNEL_PAIRS])
def test_conformance(reactor: Any, run: Any, request: pytest.FixtureRequest, proxy_name: str, kind: str,
                     check: Any) -> None:
    """The kit's checks (net.testing.conformance) with the client end in a tunnel."""
    reason = THROUGH_ANY_PROXY.get(check.__name__) or THROUGH.get(proxy_name, {}).get(check.__name__)
    if reason:
        pytest.skip(f"not through a proxy: {reason}")
    proxy: Proxy = request.getfixturevalue(proxy_name)
    pair = EndpointPair(reactor, LOCAL, lambda port: proxy.spec(f"tcp:127.0.0.1:{port.get_host().port}", kind))
    run(reactor, check(reactor, pair), timeout=60)
