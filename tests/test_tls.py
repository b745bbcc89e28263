"""TLS over real loopback sockets, on every reactor backend.

Certificates are generated at run time (``make_dev_certs`` into a temporary directory): no key is
ever checked in. The conformance kit (:mod:`net.testing`) runs unchanged over ``tls:`` endpoints
(tests/test_conformance.py, its ``tls`` pair), which is the proof that an application protocol
does not care whether it runs over TCP or TLS; the tests here cover what is TLS's own:
verification, client certificates, broken handshakes, close_notify, renegotiation, endpoint
strings and the dev-certificate CLI.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers_net import connect_failure, esc
from OpenSSL import SSL
from zope.interface.verify import verifyObject

from net import tls
from net.defer import Deferred, Failure
from net.endpoints import client, server
from net.error import ConnectError, ConnectionDone, ConnectionLost
from net.interfaces import ITCPTransport, ITransport
from net.protocol import ClientFactory
from net.testing import CollectingFactory, Echo, Recorder, iterations
from net.tls import CertificateError, DevCerts, TLSError, make_dev_certs

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024


# -- fixtures and helpers --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> DevCerts:
    return make_dev_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def other_certs(tmp_path_factory: pytest.TempPathFactory) -> DevCerts:
    """A second, unrelated CA and its certificates."""
    return make_dev_certs(tmp_path_factory.mktemp("other"))


def server_spec(certs: DevCerts, extra: str = "") -> str:
    return f"tls:0:cert={esc(certs.server_cert)}:key={esc(certs.server_key)}:interface=127.0.0.1{extra}"


def client_spec(port: Any, certs: DevCerts, extra: str = "", host: str = "127.0.0.1") -> str:
    return f"tls:{host}:{port.get_host().port}:ca={esc(certs.ca)}:timeout=10{extra}"


def client_cert_args(certs: DevCerts) -> str:
    return f":cert={esc(certs.client_cert)}:key={esc(certs.client_key)}"


class ServerFactory(CollectingFactory):
    """Collects protocols, and the handshake failures reported through ``tls_handshake_failed``."""

    def __init__(self, make: Any = Recorder) -> None:
        super().__init__(make)
        self.failures: list[Failure] = []
        self._failure_waiters: list[tuple[int, Deferred[Any]]] = []

    def tls_handshake_failed(self, addr: Any, failure: Failure) -> None:
        self.failures.append(failure)
        ready = [w for w in self._failure_waiters if len(self.failures) >= w[0]]
        self._failure_waiters = [w for w in self._failure_waiters if w not in ready]
        for _, d in ready:
            d.callback(failure.value)  # the exception: a Failure would fire the errback chain

    def when_failed(self, count: int = 1) -> Deferred[Any]:
        """Fires with the exception of the ``count``-th handshake failure."""
        d: Deferred[Any] = Deferred()
        if len(self.failures) >= count:
            d.callback(self.failures[count - 1].value)
        else:
            self._failure_waiters.append((count, d))
        return d


async def echo_once(reactor: Any, spec: str, payload: bytes = b"hello") -> Recorder:
    """Connect, get ``payload`` echoed, close cleanly; returns the client protocol."""
    protocol = await client(reactor, spec).connect(CollectingFactory())
    protocol.transport.write(payload)
    await protocol.when_received(len(payload))
    assert bytes(protocol.received) == payload
    protocol.transport.lose_connection()
    await protocol.when_lost()
    assert isinstance(protocol.reason, ConnectionDone), protocol.reason
    return protocol


def client_hello() -> bytes:
    """The bytes of a real ClientHello, made with a memory-BIO client that never gets an answer."""
    conn = SSL.Connection(tls.client_context(insecure_skip_verify=True), None)
    conn.set_connect_state()
    with pytest.raises(SSL.WantReadError):
        conn.do_handshake()
    return conn.bio_read(65536)


# -- handshake, echo, certificates -----------------------------------------------------------------


def test_handshake_echo_and_peer_certificate(reactor: Any, run: Any, certs: DevCerts) -> None:
    """connection_made runs after the handshake, so the peer certificate is already there."""
    seen: dict[str, Any] = {}

    class Inspecting(Echo):
        def connection_made(self, transport: Any) -> None:
            seen["server_peer_cert"] = transport.get_peer_certificate()
            seen["version"] = transport.get_protocol_version()
            super().connection_made(transport)

    async def go() -> None:
        factory = ServerFactory(Inspecting)
        port = await server(reactor, server_spec(certs)).listen(factory)
        try:
            protocol = await client(reactor, client_spec(port, certs)).connect(CollectingFactory())
            await factory.connection(0)
            cert = protocol.transport.get_peer_certificate()
            assert cert.subject.rfc4514_string() == "CN=localhost"
            assert seen["server_peer_cert"] is None  # no client certificate asked for
            assert seen["version"] in ("TLSv1.2", "TLSv1.3")
            assert verifyObject(ITransport, protocol.transport)
            assert verifyObject(ITCPTransport, protocol.transport)  # passed through from TCP
            protocol.transport.set_tcp_nodelay(True)
            protocol.transport.set_tcp_keepalive(True)
            protocol.transport.write(b"ping")
            await protocol.when_received(4)
            assert bytes(protocol.received) == b"ping"
            protocol.transport.lose_connection()
            await protocol.when_lost()
            assert isinstance(protocol.reason, ConnectionDone)
        finally:
            await port.stop_listening()

    run(reactor, go())


def test_connect_by_name_localhost(reactor: Any, run: Any, certs: DevCerts) -> None:
    """A DNS name is sent as SNI and matched against the certificate's DNS entries."""
    names: list[Any] = []

    class SNI(Echo):
        def connection_made(self, transport: Any) -> None:
            names.append(transport._tls.get_servername())
            super().connection_made(transport)

    async def go() -> None:
        port = await server(reactor, server_spec(certs)).listen(ServerFactory(SNI))
        try:
            await echo_once(reactor, client_spec(port, certs, host="localhost"))
            assert names == [b"localhost"]
        finally:
            await port.stop_listening()

    run(reactor, go())


def test_16_mib_each_way_at_once(reactor: Any, run: Any, certs: DevCerts) -> None:
    """Both sides write 16 MiB at the same time; each receives the other's bytes intact."""
    client_data = bytes(range(256)) * (16 * MIB // 256)
    server_data = client_data[::-1]

    class Sender(Recorder):
        keep = False

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            transport.write(server_data)

    async def go() -> None:
        factory = ServerFactory(Sender)
        port = await server(reactor, server_spec(certs)).listen(factory)
        try:
            receiver = Recorder()
            receiver.keep = False
            protocol = await client(reactor, client_spec(port, certs)).connect(CollectingFactory(lambda: receiver))
            protocol.transport.write(client_data)
            srv = await factory.connection(0)
            await protocol.when_received(len(server_data))
            await srv.when_received(len(client_data))
            assert protocol.digest.digest() == hashlib.sha256(server_data).digest()
            assert srv.digest.digest() == hashlib.sha256(client_data).digest()
            protocol.transport.lose_connection()
            await srv.when_lost()
            assert isinstance(srv.reason, ConnectionDone), srv.reason
        finally:
            await port.stop_listening()

    run(reactor, go(), timeout=120)


def test_client_certificate_accepted(reactor: Any, run: Any, certs: DevCerts) -> None:
    """With ca= the server requires a client certificate and sees its common name."""
    subjects: list[str] = []

    class WhoIsIt(Echo):
        def connection_made(self, transport: Any) -> None:
            subjects.append(transport.get_peer_certificate().subject.rfc4514_string())
            super().connection_made(transport)

    async def go() -> None:
        port = await server(reactor, server_spec(certs, f":ca={esc(certs.ca)}")).listen(ServerFactory(WhoIsIt))
        try:
            await echo_once(reactor, client_spec(port, certs, client_cert_args(certs)))
            assert subjects == ["CN=pbroker-dev-client"]
        finally:
            await port.stop_listening()

    run(reactor, go())


def test_client_certificate_missing_refused(reactor: Any, run: Any, certs: DevCerts) -> None:
    """No client certificate when one is required: both sides get a clear certificate error, and
    the server goes on serving clients that have one."""

    async def go() -> None:
        factory = ServerFactory(Echo)
        port = await server(reactor, server_spec(certs, f":ca={esc(certs.ca)}")).listen(factory)
        try:
            spec = client_spec(port, certs)
            try:
                # TLS 1.3: the client's handshake completes before the server has checked its
                # (missing) certificate, so the refusal arrives as connection_lost. TLS 1.2:
                # the connection attempt itself fails.
                protocol = await client(reactor, spec).connect(CollectingFactory())
            except TLSError as exc:
                client_error: BaseException = exc
            else:
                await protocol.when_lost()
                client_error = protocol.reason
            assert isinstance(client_error, CertificateError), client_error
            assert "certificate required" in str(client_error) or "handshake error" in str(client_error)

            error = await factory.when_failed()
            assert isinstance(error, CertificateError), error
            assert "did not return a certificate" in str(error), error
            assert factory.protocols == []  # the application never saw the connection

            await echo_once(reactor, client_spec(port, certs, client_cert_args(certs)))
        finally:
            await port.stop_listening()

    run(reactor, go())


def test_client_certificate_from_another_ca_refused(
        reactor: Any, run: Any, certs: DevCerts, other_certs: DevCerts) -> None:
    async def go() -> None:
        factory = ServerFactory(Echo)
        port = await server(reactor, server_spec(certs, f":ca={esc(certs.ca)}")).listen(factory)
        try:
            d = client(reactor, client_spec(port, certs, client_cert_args(other_certs))).connect(
                CollectingFactory())
            try:
                protocol = await d
            except CertificateError:
                pass
            else:
                await protocol.when_lost()
                assert isinstance(protocol.reason, CertificateError), protocol.reason
            error = await factory.when_failed()
            assert "certificate verify failed" in str(error), error
        finally:
            await port.stop_listening()

    run(reactor, go())


def test_server_certificate_from_another_ca_refused(
        reactor: Any, run: Any, certs: DevCerts, other_certs: DevCerts) -> None:
    """The client refuses a server whose certificate its CA did not sign; the server hears why."""

    async def go() -> None:
        factory = ServerFactory(Echo)
        port = await server(reactor, server_spec(other_certs)).listen(factory)
        try:
            error = await connect_failure(reactor, client_spec(port, certs))
            assert isinstance(error, CertificateError) and isinstance(error, ConnectError), error
            assert "certificate verify failed: unable to get local issuer certificate" in str(error)
            error = await factory.when_failed()
            assert isinstance(error, CertificateError), error
            assert "unknown ca" in str(error)
            assert factory.protocols == []
        finally:
            await port.stop_listening()

    run(reactor, go())


def test_wrong_host_name_refused(reactor: Any, run: Any, certs: DevCerts) -> None:
    async def go() -> None:
        port = await server(reactor, server_spec(certs)).listen(ServerFactory(Echo))
        try:
            error = await connect_failure(reactor, client_spec(port, certs, ":hostname=wrong.example"))
            assert isinstance(error, CertificateError), error
            assert "hostname mismatch: expected 'wrong.example'" in str(error), error
            assert "localhost, 127.0.0.1, ::1" in str(error)
            # the same server, the right name: fine
            await echo_once(reactor, client_spec(port, certs, ":hostname=localhost"))
        finally:
            await port.stop_listening()

    run(reactor, go())


def test_wrong_ip_refused(reactor: Any, run: Any, tmp_path: Path) -> None:
    """IP literals are matched against the certificate's IP entries, not its DNS names."""
    only_name = make_dev_certs(tmp_path, hosts=["localhost"])

    async def go() -> None:
        port = await server(reactor, server_spec(only_name)).listen(ServerFactory(Echo))
        try:
            error = await connect_failure(reactor, client_spec(port, only_name))
            assert "hostname mismatch: expected '127.0.0.1'" in str(error), error
        finally:
            await port.stop_listening()

    run(reactor, go())


def test_insecure_only_when_asked(
        reactor: Any, run: Any, certs: DevCerts, caplog: pytest.LogCaptureFixture) -> None:
    """The system trust store does not know our dev CA; skipping verification must be asked for."""

    async def go() -> None:
        port = await server(reactor, server_spec(certs)).listen(ServerFactory(Echo))
        try:
            address = port.get_host()
            secure = CollectingFactory()
            failed: Deferred[Any] = Deferred()

            class Client(ClientFactory):
                def __init__(self) -> None:
                    self.protocols: list[Any] = []

                def build_protocol(self, addr: Any) -> Any:
                    protocol = Recorder()
                    self.protocols.append(protocol)
                    return protocol

                def client_connection_failed(self, connector: Any, reason: Failure) -> None:
                    failed.callback(reason.value)

            tls.connect_tls(reactor, "127.0.0.1", address.port, Client(), tls.client_context())
            error = await failed
            assert isinstance(error, CertificateError), error
            assert secure.protocols == []

            with caplog.at_level(logging.WARNING, logger="net.tls"):
                context = tls.client_context(insecure_skip_verify=True)
            assert "insecure_skip_verify" in caplog.text and "NOT verified" in caplog.text
            factory = CollectingFactory(Recorder)
            endpoint = tls.TLSClientEndpoint(reactor, "127.0.0.1", address.port, context,
                                             hostname="wrong.example")
            protocol = await endpoint.connect(factory)
            protocol.transport.write(b"x")
            await protocol.when_received(1)
            protocol.transport.lose_connection()
            await protocol.when_lost()
        finally:
            await port.stop_listening()

    run(reactor, go())


def test_client_factory_hooks(reactor: Any, run: Any, certs: DevCerts, other_certs: DevCerts) -> None:
    """connect_tls with a ClientFactory: a failed handshake is client_connection_failed (not lost),
    and build_protocol is only asked after the handshake succeeded."""

    class Hooks(ClientFactory):
        protocol = Recorder

        def __init__(self) -> None:
            self.events: list[str] = []
            self.done: Deferred[Any] = Deferred()

        def build_protocol(self, addr: Any) -> Any:
            self.events.append("build")
            return super().build_protocol(addr)

        def client_connection_failed(self, connector: Any, reason: Failure) -> None:
            self.events.append(f"failed:{type(reason.value).__name__}")
            self.done.callback(reason.value)

        def client_connection_lost(self, connector: Any, reason: Failure) -> None:
            self.events.append(f"lost:{type(reason.value).__name__}")
            self.done.callback(reason.value)

    async def go() -> None:
        port = await server(reactor, server_spec(other_certs)).listen(ServerFactory(Echo))
        try:
            hooks = Hooks()
            tls.connect_tls(reactor, "127.0.0.1", port.get_host().port, hooks,
                            tls.client_context(certs.ca))
            await hooks.done
            assert hooks.events == ["failed:CertificateError"]

            hooks = Hooks()
            connector = tls.connect_tls(reactor, "127.0.0.1", port.get_host().port, hooks,
                                        tls.client_context(other_certs.ca))
            await iterations(reactor, 1)
            while "build" not in hooks.events:
                await iterations(reactor, 1)
            connector.transport.protocol.lose_connection()
            await hooks.done
            assert hooks.events == ["build", "lost:ConnectionDone"]
        finally:
            await port.stop_listening()

    run(reactor, go())


# -- broken peers ---------------------------------------------------------------------------------


def test_peer_closes_mid_handshake(reactor: Any, run: Any, certs: DevCerts) -> None:
    """A raw socket sends half a ClientHello and closes: the server reports it and keeps serving."""
    hello = client_hello()

    async def go() -> None:
        factory = ServerFactory(Echo)
        port = await server(reactor, server_spec(certs)).listen(factory)
        try:
            raw = socket.create_connection(("127.0.0.1", port.get_host().port))
            raw.sendall(hello[: len(hello) // 2])
            raw.close()
            error = await factory.when_failed()
            assert isinstance(error, TLSError), error
            assert "during the handshake" in str(error)
            assert factory.protocols == []
            await echo_once(reactor, client_spec(port, certs))
        finally:
            await port.stop_listening()

    run(reactor, go())


def test_garbage_instead_of_handshake(reactor: Any, run: Any, certs: DevCerts) -> None:
    async def go() -> None:
        factory = ServerFactory(Echo)
        port = await server(reactor, server_spec(certs)).listen(factory)
        try:
            raw = socket.create_connection(("127.0.0.1", port.get_host().port))
            raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            error = await factory.when_failed()
            assert isinstance(error, TLSError), error
            assert "TLS handshake with 127.0.0.1:" in str(error)
            raw.close()
            await echo_once(reactor, client_spec(port, certs))
        finally:
            await port.stop_listening()

    run(reactor, go())


def test_handshake_timeout(reactor: Any, run: Any, certs: DevCerts) -> None:
    """A peer that connects and says nothing is dropped after the handshake timeout."""

    async def go() -> None:
        factory = ServerFactory(Echo)
        port = await server(reactor, server_spec(certs, ":handshake_timeout=0.2")).listen(factory)
        raw = socket.create_connection(("127.0.0.1", port.get_host().port))
        try:
            error = await factory.when_failed()
            assert isinstance(error, TLSError), error
            assert "not complete after 0.2 seconds" in str(error)
        finally:
            raw.close()
            await port.stop_listening()

    run(reactor, go())


def test_client_handshake_timeout(reactor: Any, run: Any, certs: DevCerts) -> None:
    """A TCP server that never answers the ClientHello: the connect fails, it does not hang."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port_number = listener.getsockname()[1]

    async def go() -> None:
        error = await connect_failure(
            reactor, f"tls:127.0.0.1:{port_number}:ca={esc(certs.ca)}:timeout=0.2")
        assert isinstance(error, TLSError), error
        assert "not complete after 0.2 seconds" in str(error)

    try:
        run(reactor, go())
    finally:
        listener.close()


def test_close_without_close_notify_is_connection_lost(reactor: Any, run: Any, certs: DevCerts) -> None:
    """Closing TCP under TLS (no close_notify) is a possible truncation: ConnectionLost, not Done."""

    async def go() -> None:
        factory = ServerFactory(Recorder)
        port = await server(reactor, server_spec(certs)).listen(factory)
        try:
            protocol = await client(reactor, client_spec(port, certs)).connect(CollectingFactory())
            srv = await factory.connection(0)
            protocol.transport.write(b"data")
            await srv.when_received(4)
            srv.transport.write(b"ok")  # once read, so are the session tickets sent before it:
            await protocol.when_received(2)  # closing then sends a FIN, not a reset
            protocol.transport.transport.lose_connection()  # the TCP transport below, bypassing TLS
            await srv.when_lost()
            assert type(srv.reason) is ConnectionLost, srv.reason
            assert "close_notify" in str(srv.reason)
            await protocol.when_lost()
        finally:
            await port.stop_listening()

    run(reactor, go())


def test_close_notify_is_eof(reactor: Any, run: Any, certs: DevCerts) -> None:
    """The peer's close_notify arrives as eof_received; returning True keeps our side writable."""

    class KeepOpen(Recorder):
        keep_open_on_eof = True

    async def go() -> None:
        factory = ServerFactory(Recorder)
        port = await server(reactor, server_spec(certs)).listen(factory)
        try:
            protocol = await client(reactor, client_spec(port, certs)).connect(CollectingFactory(KeepOpen))
            srv = await factory.connection(0)
            srv.transport.write(b"bye")
            srv.transport.lose_connection()
            await protocol.when_eof()
            assert bytes(protocol.received) == b"bye"
            assert protocol.events == ["made", "data", "eof"]
            protocol.transport.write(b"late")  # allowed by TLS 1.3; the server is gone: no error
            protocol.transport.lose_connection()
            await protocol.when_lost()
            await srv.when_lost()
            assert isinstance(protocol.reason, ConnectionDone), protocol.reason
            assert isinstance(srv.reason, ConnectionDone), srv.reason
        finally:
            await port.stop_listening()

    run(reactor, go())


def test_renegotiation_refused_without_hang(reactor: Any, run: Any, certs: DevCerts) -> None:
    """A TLS 1.2 client asking to renegotiate is refused; nobody hangs, the connection ends."""

    async def go() -> None:
        factory = ServerFactory(Echo)
        port = await server(reactor, server_spec(certs)).listen(factory)
        try:
            context = SSL.Context(SSL.TLS_CLIENT_METHOD)  # not ours: this one may renegotiate
            context.set_max_proto_version(SSL.TLS1_2_VERSION)
            context.load_verify_locations(str(certs.ca))
            context.set_verify(SSL.VERIFY_PEER)
            endpoint = tls.TLSClientEndpoint(reactor, "127.0.0.1", port.get_host().port, context)
            protocol = await endpoint.connect(CollectingFactory())
            wrapper = protocol.transport
            assert wrapper.get_protocol_version() == "TLSv1.2"
            srv = await factory.connection(0)
            wrapper._tls.renegotiate()
            with pytest.raises(SSL.WantReadError):
                wrapper._tls.do_handshake()
            wrapper._flush()
            await protocol.when_lost()
            await srv.when_lost()
            # The server answers with a no_renegotiation alert, and both ends close.
            assert isinstance(protocol.reason, TLSError), protocol.reason
            assert "no renegotiation" in str(protocol.reason)
            assert isinstance(srv.reason, TLSError), srv.reason
            await echo_once(reactor, client_spec(port, certs))  # the server serves on
        finally:
            await port.stop_listening()

    run(reactor, go())


# -- endpoint strings and the CLI -------------------------------------------------------------------


def test_endpoint_strings_parse(certs: DevCerts) -> None:
    r = object()
    endpoint = server(r, server_spec(certs, f":ca={esc(certs.ca)}:backlog=7"))
    assert isinstance(endpoint, tls.TLSServerEndpoint)
    assert (endpoint.port, endpoint.interface, endpoint.backlog) == (0, "127.0.0.1", 7)
    assert endpoint.context.get_verify_mode() & SSL.VERIFY_FAIL_IF_NO_PEER_CERT

    endpoint = server(r, f"tls:8801:{esc(certs.server_cert)}:{esc(certs.server_key)}")
    assert endpoint.port == 8801 and endpoint.context.get_verify_mode() == SSL.VERIFY_NONE

    c = client(r, f"tls:example.com:8801:ca={esc(certs.ca)}:timeout=5:hostname=other.example"
                  f"{client_cert_args(certs)}")
    assert isinstance(c, tls.TLSClientEndpoint)
    assert (c.host, c.port, c.timeout, c.hostname) == ("example.com", 8801, 5.0, "other.example")
    assert c.handshake_timeout == 5.0
    assert c.context.get_verify_mode() == SSL.VERIFY_PEER

    c = client(r, "tls:[::1]:8801")  # no ca=: the system trust store, still verifying
    assert (c.host, c.context.get_verify_mode()) == ("::1", SSL.VERIFY_PEER)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("tls:8801", "expected 'tls:PORT:CERT:KEY"),
        ("tls:8801:cert=/nonexistent.pem:key=/nonexistent.key", "cannot load cert="),
        ("tls:70000:cert=a:key=b", "cannot load"),
    ],
)
def test_bad_server_strings(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        server(object(), spec)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("tls:host", "expected 'tls:HOST:PORT"),
        ("tls::8801", "host must not be empty"),
        ("tls:h:8801:cert=client.pem", "both cert= and key="),
        ("tls:h:8801:ca=/nonexistent.pem", "cannot load ca="),
        ("tls:h:8801:insecure=yes", "expected"),
    ],
)
def test_bad_client_strings(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        client(object(), spec)


def test_tls_prefix_needs_no_import() -> None:
    """net.endpoints loads net.tls on the first "tls:" string."""
    code = ("import sys; from net.endpoints import client; assert 'net.tls' not in sys.modules; "
            "e = client(None, 'tls:h:1'); print(type(e).__name__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "TLSClientEndpoint"


def test_make_dev_certs_cli(reactor: Any, run: Any, tmp_path: Path) -> None:
    """The CLI, in a real subprocess, writes files a server and a client then use."""
    out = tmp_path / "dev"
    done = subprocess.run(
        [sys.executable, "-m", "net.tls", "make-dev-certs", str(out), "--hosts", "localhost,127.0.0.1"],
        cwd=ROOT, capture_output=True, text=True, check=True)
    names = {"ca.pem", "ca.key", "server.pem", "server.key", "client.pem", "client.key"}
    assert {p.name for p in out.iterdir()} == names
    assert {Path(line).name for line in done.stdout.split()} == names
    assert (out / "server.key").stat().st_mode & 0o077 == 0
    made = DevCerts(*(out / n for n in ("ca.pem", "ca.key", "server.pem", "server.key",
                                        "client.pem", "client.key")))

    async def go() -> None:
        port = await server(reactor, server_spec(made, f":ca={esc(made.ca)}")).listen(ServerFactory(Echo))
        try:
            await echo_once(reactor, client_spec(port, made, client_cert_args(made)))
        finally:
            await port.stop_listening()

    run(reactor, go())


# -- host-name matching ----------------------------------------------------------------------------


def test_match_hostname(tmp_path: Path) -> None:
    from cryptography import x509

    made = make_dev_certs(tmp_path, hosts=["*.example.com", "db.internal", "10.0.0.1", "fe80::1"])
    cert = x509.load_pem_x509_certificate(made.server_cert.read_bytes())
    yes = ["a.example.com", "A.Example.COM.", "db.internal", "10.0.0.1", "fe80::1", "[fe80::1]",
           "FE80:0:0::1"]
    no = ["example.com", "a.b.example.com", "internal", "10.0.0.2", "::1", "db.internal.evil",
          "xa.example.com.evil"]
    for name in yes:
        assert tls.match_hostname(cert, name), name
    for name in no:
        assert not tls.match_hostname(cert, name), name
    # no subjectAltName at all: nothing matches (the common name is not consulted)
    client_cert = x509.load_pem_x509_certificate(made.client_cert.read_bytes())
    assert not tls.match_hostname(client_cert, "pbroker-dev-client")


def test_make_dev_certs_needs_a_host(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one host"):
        make_dev_certs(tmp_path, hosts=[" "])


def test_contexts_are_tls12_plus(certs: DevCerts) -> None:
    """Neither side can be talked into TLS 1.1."""
    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.set_max_proto_version(SSL.TLS1_1_VERSION)
    ctx.set_verify(SSL.VERIFY_NONE)
    ctx.set_cipher_list(b"DEFAULT:@SECLEVEL=0")
    old = SSL.Connection(ctx, None)
    old.set_connect_state()
    new = SSL.Connection(tls.server_context(certs.server_cert, certs.server_key), None)
    new.set_accept_state()
    with pytest.raises(SSL.WantReadError):
        old.do_handshake()
    new.bio_write(old.bio_read(65536))
    with pytest.raises(SSL.Error) as info:
        new.do_handshake()
    assert "unsupported protocol" in str(info.value) or "version" in str(info.value)


def test_cancel_during_handshake(reactor: Any, run: Any, certs: DevCerts) -> None:
    """Cancelling the endpoint's Deferred after TCP connected but before the handshake finished
    drops the connection; the application protocol is never built."""
    from net.defer import CancelledError

    async def go() -> None:
        silent = CollectingFactory(Recorder)  # plain TCP: never answers the ClientHello
        port = reactor.listen_tcp(0, silent, interface="127.0.0.1")
        try:
            app = CollectingFactory()
            d = client(reactor, client_spec(port, certs)).connect(app)
            tcp_side = await silent.connection(0)
            await tcp_side.when_received(1)  # the ClientHello: the handshake is under way
            d.cancel()
            with pytest.raises(CancelledError):
                await d
            await tcp_side.when_lost()
            assert app.protocols == []
        finally:
            await port.stop_listening()

    run(reactor, go())
