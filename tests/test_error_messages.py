"""Errors that say what to do (issue 10): each message a user meets, asserted word for word enough
to keep it helpful. Real loopback sockets; a real subprocess where a server process dies."""

from __future__ import annotations

import builtins
import gc
import logging
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

import broker
import net.error
from broker import wire
from broker.errors import CAUSES
from net.defer import Deferred
from net.endpoints import client, server
from net.protocol import Factory, Protocol
from net.reactor import make_reactor

LOCAL = "tcp:0:interface=127.0.0.1"


class Calculator(broker.Root):
    def __init__(self) -> None:
        self.sessions: list[Any] = []

    def root_object(self, caller: Any) -> broker.Referenceable:
        self.sessions.append(caller)
        return self

    def remote_add(self, a: int, b: int) -> int:
        return a + b

    def remote_divide(self, a: int, b: int) -> float:
        return a / b

    def remote_hang(self) -> Deferred[None]:
        return Deferred()


class Board(broker.Viewable):
    def view_post(self, perspective: Any, text: str) -> str:
        return text


async def serve_calculator(reactor: Any, **options: Any) -> tuple[Calculator, str]:
    calc = Calculator()
    port = await broker.serve(reactor, LOCAL, calc, **options)
    return calc, f"tcp:127.0.0.1:{port.get_host().port}"


# -- a reactor is the first argument ---------------------------------------------------------------


def test_connect_serve_login_without_a_reactor_say_what_to_pass() -> None:
    with pytest.raises(TypeError) as info:
        broker.connect("tcp:127.0.0.1:8800")  # type: ignore[call-arg]
    text = str(info.value)
    assert "broker.connect() takes a reactor as its first argument" in text
    assert "net.reactor.make_reactor()" in text and "net.react(main)" in text
    assert "broker.aio.connect('tcp:127.0.0.1:8800')" in text
    assert "broker.blocking.connect('tcp:127.0.0.1:8800')" in text
    assert "got the endpoint string 'tcp:127.0.0.1:8800' first" in text

    with pytest.raises(TypeError, match=r"broker.serve\(\) takes a reactor as its first argument.*broker.aio.serve"):
        broker.serve("tcp:8800", Calculator())  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"broker.login\(\) takes a reactor.*broker.blocking.login"):
        broker.login("tls:localhost:8801", object())  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"got nothing first"):
        broker.connect()  # type: ignore[call-arg]


# -- the blocking client without ``with`` ------------------------------------------------------------

def test_blocking_connection_works_without_with(server_process: tuple[subprocess.Popen[str], int]) -> None:
    _proc, port = server_process
    conn = broker.blocking.connect(f"tcp:127.0.0.1:{port}", timeout=30)
    try:
        assert conn.call_remote("add", 1, 2) == 3
        assert conn.root.call_remote("add", 2, 2) == 4
        conn.call_remote_no_answer("add", 0, 0)
        assert "BlockingConnection tcp:127.0.0.1:" in repr(conn)
    finally:
        conn.close()
    with pytest.raises(broker.ConnectionLost):
        conn.call_remote("add", 1, 1)
    with broker.blocking.connect(f"tcp:127.0.0.1:{port}", timeout=30) as root:  # with still works
        assert root.call_remote("add", 3, 4) == 7


# -- endpoint strings ------------------------------------------------------------------------------


def test_unknown_endpoint_type_lists_tls_and_suggests() -> None:
    with pytest.raises(ValueError) as info:
        client(None, "udp:host:53")
    assert "unknown client endpoint type 'udp' in 'udp:host:53'; known: connect, socks4, socks4a, socks5, tcp, tls, unix" in str(info.value)
    with pytest.raises(ValueError, match=r"unknown server endpoint type 'tpc'.*known: tcp, tls, unix; did you mean 'tcp'\?"):
        server(None, "tpc:8800")


def test_url_shaped_endpoint_shows_the_right_spelling() -> None:
    with pytest.raises(ValueError) as info:
        client(None, "tcp://localhost:8800")
    assert str(info.value) == ("endpoint 'tcp://localhost:8800' looks like a URL; endpoint strings are "
                               "TYPE:HOST:PORT without '//': write 'tcp:localhost:8800'")
    with pytest.raises(ValueError, match=r"write 'tls:example\.com:8801'"):
        client(None, "tls://example.com:8801/")
    with pytest.raises(ValueError, match=r"did you mean 'tcp:127\.0\.0\.1:8800'\?"):
        client(None, "127.0.0.1:8800")
    with pytest.raises(ValueError, match=r"did you mean 'tcp:localhost:8800'\?"):
        client(None, "localhost:8800")


# -- connection errors are the builtin ones ----------------------------------------------------------


def test_net_errors_subclass_the_builtins() -> None:
    assert issubclass(net.error.ConnectionRefusedError, builtins.ConnectionRefusedError)
    assert issubclass(net.error.ConnectError, OSError)
    assert issubclass(net.error.DNSLookupError, OSError)
    assert issubclass(net.error.ConnectTimeoutError, TimeoutError)
    assert issubclass(net.error.ConnectionLost, builtins.ConnectionError)
    assert issubclass(net.error.CannotListenError, OSError)
    assert not issubclass(net.error.ConnectionDone, OSError)  # a clean close is no I/O error
    assert issubclass(broker.ConnectionLost, net.error.ConnectionLost)
    assert str(net.error.ConnectError("could not")) == "could not"  # one argument: no "[Errno ...]"


def test_connection_refused_is_caught_by_the_builtin_name(reactor: Any, run: Any) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def scenario() -> None:
        try:
            await broker.connect(reactor, f"tcp:127.0.0.1:{port}")
        except builtins.ConnectionRefusedError as exc:
            assert isinstance(exc, OSError) and exc.errno is not None
            assert "is the server running and listening on that port?" in str(exc)
        else:
            raise AssertionError("connected to a closed port")

    run(reactor, scenario())


# -- how a connection ended -------------------------------------------------------------------------


@pytest.fixture
def one_reactor() -> Iterator[Any]:
    r = make_reactor()
    try:
        yield r
    finally:
        r.close()


def test_server_killed_mid_call_says_the_peer_closed_without_goodbye(
        one_reactor: Any, run: Any, server_process: tuple[subprocess.Popen[str], int]) -> None:
    proc, port = server_process
    reactor = one_reactor

    async def scenario() -> broker.ConnectionLost:
        root = await broker.connect(reactor, f"tcp:127.0.0.1:{port}")
        pending = root.call_remote("hang")
        assert proc.stdout is not None
        assert await reactor.defer_to_thread(proc.stdout.readline) == "hanging\n"
        proc.kill()
        try:
            await pending
        except net.error.ConnectionLost as exc:  # the net name catches the broker failure
            assert isinstance(exc, broker.ConnectionLost)
            return exc
        raise AssertionError("the call succeeded")

    lost = run(reactor, scenario())
    assert lost.cause == "closed"
    assert str(lost) == ("connection lost: the peer closed the connection without a goodbye: "
                         "the server process may have exited")


def test_goodbye_local_close_and_cause_values(reactor: Any, run: Any) -> None:
    async def scenario() -> tuple[broker.ConnectionLost, broker.ConnectionLost, broker.ConnectionLost]:
        calc, endpoint = await serve_calculator(reactor)
        root = await broker.connect(reactor, endpoint)
        pending = root.call_remote("hang")
        assert await root.call_remote("add", 1, 1) == 2  # the hang call has arrived
        calc.sessions[-1].disconnect()  # the server says goodbye
        try:
            await pending
        except broker.ConnectionLost as exc:
            by_server = exc
        try:
            await root.call_remote("add", 1, 1)
        except broker.ConnectionLost as exc:
            after = exc
        root2 = await broker.connect(reactor, endpoint)
        pending2 = root2.call_remote("hang")
        root2.session.disconnect()  # we close
        try:
            await pending2
        except broker.ConnectionLost as exc:
            local = exc
        return by_server, after, local

    by_server, after, local = run(reactor, scenario())
    assert (by_server.cause, by_server.goodbye_kind) == ("goodbye", "normal")
    assert str(by_server) == "connection lost: the peer said goodbye (normal)"
    assert after.cause == "goodbye"
    assert str(after) == "cannot call 'add': the connection is closed: the peer said goodbye (normal)"
    assert local.cause == "local"
    assert str(local) == "connection lost: this side closed the connection (disconnect())"
    assert {by_server.cause, local.cause} <= set(CAUSES)


class ResetAfterHello(Protocol):
    """Says a pbroker hello, then resets the connection when the first call arrives."""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.expected = len(wire.encode(wire.WireDecoder().hello()))
        self.received = 0
        transport.write(wire.encode(wire.WireDecoder().hello()))

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        if self.received > self.expected:
            self.transport.abort_connection()


class Send(Protocol):
    """Sends fixed bytes on connect; closes once the client's hello is read (not before: closing
    with unread data would send a reset), or never with ``close=False``."""

    def __init__(self, payload: bytes, close: bool = True) -> None:
        self.payload = payload
        self.close = close

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        if self.payload:
            transport.write(self.payload)

    def data_received(self, data: bytes) -> None:
        if self.close:
            self.transport.lose_connection()


def factory_of(make: Any) -> Factory:
    f = Factory()
    f.build_protocol = lambda addr: make()  # type: ignore[method-assign]
    return f


async def listen_raw(reactor: Any, make: Any) -> str:
    port = await server(reactor, LOCAL).listen(factory_of(make))
    return f"tcp:127.0.0.1:{port.get_host().port}"


def test_a_reset_is_named_a_reset(reactor: Any, run: Any) -> None:
    async def scenario() -> broker.ConnectionLost:
        endpoint = await listen_raw(reactor, ResetAfterHello)
        root = await broker.connect(reactor, endpoint)
        try:
            await root.call_remote("add", 1, 2)
        except broker.ConnectionLost as exc:
            return exc
        raise AssertionError("answered")

    lost = run(reactor, scenario())
    assert lost.cause == "reset"
    assert str(lost).startswith("connection lost: the connection was reset (Connection lost: Connection reset by peer.)")
    assert isinstance(lost.__cause__, net.error.ConnectionLost)


def test_a_silent_peer_times_out_the_handshake(reactor: Any, run: Any) -> None:
    async def scenario() -> BaseException:
        endpoint = await listen_raw(reactor, lambda: Send(b"", close=False))
        try:
            await broker.connect(reactor, endpoint, handshake_timeout=0.2)
        except broker.ConnectionLost as exc:
            return exc
        raise AssertionError("connected")

    lost = run(reactor, scenario())
    assert lost.cause == "timeout"
    assert str(lost) == "connection lost: no pbroker hello within 0.2 seconds"


# -- not a pbroker peer -------------------------------------------------------------------------------


def test_plain_tcp_to_a_tls_port_says_use_tls(reactor: Any, run: Any, tmp_path: Path) -> None:
    from net.tls import TLSError, make_dev_certs

    certs = make_dev_certs(tmp_path)

    async def scenario() -> tuple[BaseException, BaseException]:
        port = await broker.serve(reactor, f"tls:0:cert={certs.server_cert}:key={certs.server_key}:interface=127.0.0.1",
                                  Calculator())
        try:
            await broker.connect(reactor, f"tcp:127.0.0.1:{port.get_host().port}")
        except broker.HandshakeError as exc:
            plain_to_tls = exc
        plain = await broker.serve(reactor, LOCAL, Calculator())
        try:
            await broker.connect(reactor, f"tls:127.0.0.1:{plain.get_host().port}:ca={certs.ca}:timeout=10")
        except TLSError as exc:
            tls_to_plain = exc
        return plain_to_tls, tls_to_plain

    plain_to_tls, tls_to_plain = run(reactor, scenario())
    assert str(plain_to_tls) == "the peer seems to expect TLS: use a tls: endpoint (e.g. 'tls:HOST:PORT:ca=ca.pem')"
    assert "the peer does not seem to speak TLS: is it a plain tcp: endpoint?" in str(tls_to_plain)


def test_the_expects_tls_hint_is_in_the_transport_s_syntax() -> None:
    """TLS over a Unix socket is unix: with TLS options: the hint must not say tls:HOST:PORT."""
    from broker.diagnosis import not_pbroker
    from net.address import IPv4Address, UNIXAddress

    hello = b"\x16\x03\x01\x02\x00\x01\x00\x01"  # a TLS ClientHello's first bytes
    over_unix = not_pbroker(None, side="client", first_bytes=hello, peer=UNIXAddress("/run/pb.sock"))
    assert over_unix == ("the peer seems to expect TLS: give the unix: endpoint TLS options "
                         "(e.g. 'unix:/run/pb.sock:hostname=NAME:ca=ca.pem')")
    assert "tls:" not in over_unix
    served = not_pbroker(None, side="server", first_bytes=hello, peer=UNIXAddress(None))
    assert "give the unix: endpoint cert= and key=" in served and "tls:" not in served
    for peer in (IPv4Address("TCP", "127.0.0.1", 8801), None):  # TCP, or not known: as before
        assert not_pbroker(None, side="client", first_bytes=hello, peer=peer) == (
            "the peer seems to expect TLS: use a tls: endpoint (e.g. 'tls:HOST:PORT:ca=ca.pem')")
        assert "serve a tls: endpoint" in not_pbroker(None, side="server", first_bytes=hello, peer=peer)


def test_one_handshake_error_for_a_version_mismatch_and_a_stranger(reactor: Any, run: Any) -> None:
    body = msgpack.packb([1, "pbroker", 99, 1 << 24, 32, 1 << 20, []])
    other_version = struct.pack(">I", len(body)) + body

    async def scenario() -> list[BaseException]:
        errors = []
        for payload in (other_version, b"HTTP/1.1 400 Bad Request\r\n\r\n"):
            endpoint = await listen_raw(reactor, lambda: Send(payload))
            try:
                await broker.connect(reactor, endpoint)
            except broker.HandshakeError as exc:  # one catch for both
                errors.append(exc)
        return errors

    mismatch, stranger = run(reactor, scenario())
    assert str(mismatch) == "peer speaks pbroker protocol version 99, we speak 1"
    assert isinstance(mismatch.__cause__, wire.VersionMismatch)
    assert str(stranger).startswith("not a pbroker peer: it sent 'HTTP/1.1'... instead of a pbroker hello")
    assert isinstance(stranger, wire.HandshakeError)  # the codec's name catches it too


def test_a_peer_closing_at_once_may_not_be_pbroker(reactor: Any, run: Any) -> None:
    async def scenario() -> BaseException:
        endpoint = await listen_raw(reactor, lambda: Send(b""))
        try:
            await broker.connect(reactor, endpoint)
        except broker.ConnectionLost as exc:
            return exc
        raise AssertionError("connected")

    lost = run(reactor, scenario())
    assert lost.cause == "closed"
    assert "without sending anything: is it a pbroker server? (one serving TLS needs a tls: endpoint)" in str(lost)


# -- no such method -------------------------------------------------------------------------------


def test_no_such_method_names_the_prefix_and_suggests(reactor: Any, run: Any) -> None:
    async def scenario() -> tuple[BaseException, BaseException]:
        _calc, endpoint = await serve_calculator(reactor)
        root = await broker.connect(reactor, endpoint)
        try:
            await root.call_remote("ad", 1, 2)
        except broker.NoSuchMethodError as exc:
            missing = exc
        try:
            await root.call_remote("message_received")
        except broker.UnimplementedError as exc:
            internal = exc
        root.session.disconnect()
        return missing, internal

    missing, internal = run(reactor, scenario())
    assert missing.remote_type == "broker.NoSuchMethod"
    assert missing.message == "Calculator has no remote method 'ad' (looked for remote_ad); did you mean 'add'?"
    assert isinstance(internal, broker.NoSuchMethodError)
    assert "has no remote method 'message_received'" in internal.message


def test_no_such_method_for_viewables_and_avatars() -> None:
    class Caller:
        perspective = None

    with pytest.raises(broker.NoSuchMethodError) as info:
        Board().remote_message_received(Caller(), "pots", [], {})
    assert info.value.message == "Board has no remote method 'pots' (looked for view_pots, remote_pots); did you mean 'post'?"

    class Me(broker.Avatar):
        def perspective_notes(self) -> list[str]:
            return []

    with pytest.raises(broker.NoSuchMethodError) as info:
        Me().remote_message_received(Caller(), "nothing", [], {})
    assert info.value.message == "Me has no perspective method 'nothing' (looked for perspective_nothing)"


# -- remote tracebacks -------------------------------------------------------------------------------


def test_remote_traceback_is_in_str_with_debug(reactor: Any, run: Any) -> None:
    async def scenario() -> tuple[BaseException, BaseException]:
        found = []
        for debug in (True, False):
            _calc, endpoint = await serve_calculator(reactor, debug=debug)
            root = await broker.connect(reactor, endpoint)
            try:
                await root.call_remote("divide", 1, 0)
            except broker.RemoteError as exc:
                found.append(exc)
            root.session.disconnect()
        return found[0], found[1]

    with_debug, without = run(reactor, scenario())
    text = str(with_debug)
    assert text.startswith("builtins.ZeroDivisionError: division by zero\n\nRemote traceback (the server runs with debug=True):\nTraceback")
    assert "in remote_divide" in text and text.endswith("ZeroDivisionError: division by zero")
    assert str(without) == "builtins.ZeroDivisionError: division by zero"


# -- an unhandled call failure names its call --------------------------------------------------------


def test_unhandled_call_failure_logs_the_call(reactor: Any, run: Any, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> str:
        _calc, endpoint = await serve_calculator(reactor)
        root = await broker.connect(reactor, endpoint)
        root.call_remote("divide", 1, 0)  # nobody ever looks at this one
        assert await root.call_remote("add", 1, 1) == 2  # answered after the failure arrived
        text = repr(root)
        root.session.disconnect()
        return text

    with caplog.at_level(logging.ERROR, logger="net.defer"):
        ref = run(reactor, scenario())
        gc.collect()
    assert "Unhandled error in Deferred" in caplog.text
    assert f"in call_remote('divide') on {ref}" in caplog.text  # the proxy's repr, while open
    assert "ZeroDivisionError: division by zero" in caplog.text


def test_unhandled_connection_lost_names_each_call(reactor: Any, run: Any, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        _calc, endpoint = await serve_calculator(reactor)
        root = await broker.connect(reactor, endpoint)
        root.call_remote("hang")
        root.call_remote("hang", 2)
        assert await root.call_remote("add", 1, 1) == 2
        closed: Deferred[None] = Deferred()
        root.notify_on_disconnect(lambda _ref: closed.callback(None))
        root.session.disconnect()
        await closed  # the pending calls fail right after the disconnect callbacks ran

    with caplog.at_level(logging.ERROR, logger="net.defer"):
        run(reactor, scenario())
        gc.collect()
    assert caplog.text.count("in call_remote('hang') on <RemoteReference 0 via <Session 127.0.0.1:") == 2
    assert "broker.errors.ConnectionLost: connection lost: this side closed the connection (disconnect())" in caplog.text


def test_aio_and_blocking_take_the_endpoint_first() -> None:
    reactor = object()
    with pytest.raises(TypeError, match=r"broker.aio.connect\(\) takes the endpoint string first.*"
                                        r"use broker.connect\(reactor, endpoint, ...\)"):
        broker.aio.connect(reactor)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"broker.blocking takes the endpoint string first"):
        broker.blocking.connect(reactor)  # type: ignore[arg-type]
