"""Unix stream sockets (net/unix.py) over real sockets, on every reactor backend.

The conformance kit (:mod:`net.testing`) runs unchanged over ``unix:`` endpoints, plain and with
TLS; the tests here cover what is Unix's own: abstract names, the lock file and stale socket
files (with a real second process), the file mode, peer credentials, descriptor passing, the
connector's errors and its full-queue retries, and endpoint strings. Every test that uses a
reactor ends with as many open descriptors as it started with (``/proc/self/fd``).
"""

from __future__ import annotations

import errno
import gc
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers_net import RecordingClientFactory, connect_failure, esc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zope.interface.verify import verifyObject

from net import unix
from net.address import UNIXAddress
from net.defer import CancelledError, Deferred
from net.endpoints import client, server
from net.error import (
    CannotListenError,
    ConnectError,
    ConnectionDone,
    ConnectionLost,
    ConnectionRefusedError,
    ConnectTimeoutError,
)
from net.interfaces import IConnector, IListeningPort, ITransport
from net.protocol import Factory, Protocol
from net.testing import (
    TRANSPORT_CHECKS,
    CollectingFactory,
    Echo,
    EndpointPair,
    Recorder,
    check_abort_drops,
    iterations,
)
from net.unix import MAX_FDS_PER_MESSAGE, IUNIXTransport, PeerCredentials, UnixConnector

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024


# -- fixtures and helpers --------------------------------------------------------------------------


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture(autouse=True)
def no_fd_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Tests with a reactor end with the descriptors they started with (the reactor's own aside)."""
    if "reactor" not in request.fixturenames:
        yield
        return
    request.getfixturevalue("reactor")  # created first, so its descriptors are in the baseline
    before = open_fds()
    yield
    gc.collect()
    leaked = {fd: _describe_fd(fd) for fd in open_fds() - before}
    assert not leaked, f"descriptors left open: {leaked}"


def _describe_fd(fd: str) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "?"


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    """A short directory for socket files (a socket path has at most 107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="pbu-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def sock_path(sock_dir: Path) -> str:
    return str(sock_dir / "s.sock")


def abstract_name() -> str:
    return f"@pbroker-test-{os.getpid()}-{uuid.uuid4().hex[:12]}"


def unix_pair(reactor: Any, path: str, server_extra: str = "", client_extra: str = "") -> EndpointPair:
    return EndpointPair(reactor, f"unix:{esc(path)}{server_extra}", lambda port: f"unix:{esc(path)}{client_extra}")


async def until(reactor: Any, condition: Callable[[], bool]) -> None:
    """Let the loop run until ``condition()`` holds (the run's timeout bounds it)."""
    while not condition():
        await iterations(reactor, 1)


async def connected_pair(reactor: Any, path: str, server_make: Any = Recorder,
                         client_make: Any = Recorder) -> tuple[Any, Any, Any]:
    factory = CollectingFactory(server_make)
    port = await server(reactor, f"unix:{esc(path)}").listen(factory)
    client_protocol = await client(reactor, f"unix:{esc(path)}").connect(CollectingFactory(client_make))
    server_protocol = await factory.connection(0)
    return port, server_protocol, client_protocol


async def close_both(*protocols: Any) -> None:
    for p in protocols:
        p.transport.lose_connection()
    for p in protocols:
        await p.when_lost()


# -- the conformance kit, over Unix and over TLS over Unix ------------------------------------------


#: A Unix socket has no reset: the peer of an abort sees an orderly EOF (having perhaps received
#: less), so the kit's "both ends see ConnectionLost" cannot hold; test_abort_is_an_eof_to_the_peer
#: checks what does. Over TLS the missing close_notify tells, and the whole kit runs.
PLAIN_CHECKS = [check for check in TRANSPORT_CHECKS if check is not check_abort_drops]


@pytest.mark.parametrize("check", PLAIN_CHECKS, ids=lambda c: c.__name__)
def test_conformance(reactor: Any, run: Any, check: Any, sock_path: str) -> None:
    run(reactor, check(reactor, unix_pair(reactor, sock_path)))


def test_abort_is_an_eof_to_the_peer(reactor: Any, run: Any, sock_path: str) -> None:
    async def scenario() -> None:
        port, server_protocol, client_protocol = await connected_pair(reactor, sock_path)
        client_protocol.keep = False
        client_protocol.transport.pause_reading()
        server_protocol.transport.write(b"q" * (4 * MIB))
        assert server_protocol.transport.get_write_buffer_size() > 0
        server_protocol.transport.abort_connection()
        client_protocol.transport.resume_reading()
        await server_protocol.when_lost()
        await client_protocol.when_lost()
        assert isinstance(server_protocol.reason, ConnectionLost), server_protocol.reason
        assert isinstance(client_protocol.reason, ConnectionDone), client_protocol.reason
        assert client_protocol.count < 4 * MIB  # the queued rest was dropped
        await port.stop_listening()

    run(reactor, scenario())


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from net.tls import make_dev_certs

    return make_dev_certs(tmp_path_factory.mktemp("certs"))


def tls_options(certs: Any) -> tuple[str, str]:
    return (f":cert={esc(certs.server_cert)}:key={esc(certs.server_key)}",
            f":ca={esc(certs.ca)}:hostname=localhost:timeout=10")


@pytest.mark.parametrize("check", TRANSPORT_CHECKS, ids=lambda c: c.__name__)
def test_conformance_tls_over_unix(reactor: Any, run: Any, check: Any, sock_path: str, certs: Any) -> None:
    run(reactor, check(reactor, unix_pair(reactor, sock_path, *tls_options(certs))), timeout=60)


def test_tls_over_unix_checks_the_certificate(reactor: Any, run: Any, sock_path: str, certs: Any) -> None:
    from net.tls import CertificateError

    async def scenario() -> None:
        server_extra, _ = tls_options(certs)
        factory = CollectingFactory(Echo)
        port = await server(reactor, f"unix:{esc(sock_path)}{server_extra}").listen(factory)
        try:
            protocol = await client(reactor, f"unix:{esc(sock_path)}:ca={esc(certs.ca)}:hostname=localhost").connect(
                CollectingFactory())
            assert protocol.transport.get_peer_certificate().subject.rfc4514_string() == "CN=localhost"
            assert protocol.transport.get_peer() == UNIXAddress(sock_path)
            protocol.transport.write(b"over tls")
            await protocol.when_received(8)
            assert bytes(protocol.received) == b"over tls"
            await close_both(protocol)
            error = await connect_failure(
                reactor, f"unix:{esc(sock_path)}:ca={esc(certs.ca)}:hostname=somebody-else.example")
            assert isinstance(error, CertificateError), error
        finally:
            await port.stop_listening()
            await iterations(reactor, 3)  # the refused handshake's server side closes

    run(reactor, scenario())


# -- interfaces, addresses, abstract names ----------------------------------------------------------


def test_verify_objects_and_addresses(reactor: Any, run: Any, sock_path: str) -> None:
    async def scenario() -> None:
        factory = CollectingFactory()
        port = reactor.listen_unix(sock_path, factory)
        assert verifyObject(IListeningPort, port)
        assert port.get_host() == UNIXAddress(sock_path) and not port.get_host().abstract
        cf = RecordingClientFactory()
        connector = reactor.connect_unix(sock_path, cf)
        assert verifyObject(IConnector, connector)
        assert connector.get_destination() == UNIXAddress(sock_path)
        protocol = await cf.made
        peer = await factory.connection()
        for transport in (protocol.transport, peer.transport):
            assert verifyObject(ITransport, transport)
            assert verifyObject(IUNIXTransport, transport)
        assert protocol.transport.get_peer() == UNIXAddress(sock_path)
        assert peer.transport.get_peer() == UNIXAddress(None)  # an unbound client
        connector.disconnect()
        assert isinstance(await cf.lost, ConnectionDone)
        await peer.when_lost()
        await port.stop_listening()

    run(reactor, scenario())


def test_abstract_namespace(reactor: Any, run: Any, sock_dir: Path) -> None:
    name = abstract_name()

    async def scenario() -> None:
        before = set(os.listdir(sock_dir))
        factory = CollectingFactory(Echo)
        port = await server(reactor, f"unix:{name}").listen(factory)
        assert port.get_host() == UNIXAddress(name) and port.get_host().abstract
        assert port.lock_path is None
        assert set(os.listdir(sock_dir)) == before and not os.path.exists(name)  # no file anywhere
        protocol = await client(reactor, f"unix:{name}").connect(CollectingFactory())
        assert protocol.transport.get_peer() == UNIXAddress(name)
        protocol.transport.write(b"x" * MIB)
        await protocol.when_received(MIB)
        assert bytes(protocol.received) == b"x" * MIB
        creds = protocol.transport.get_peer_credentials()
        assert creds == (os.getpid(), os.getuid(), os.getgid())
        await close_both(protocol)
        with pytest.raises(CannotListenError, match="abstract unix socket"):
            reactor.listen_unix(name, Factory.for_protocol(Protocol))  # the name is taken
        await port.stop_listening()
        again = reactor.listen_unix(name, Factory.for_protocol(Protocol))  # and free again
        await again.stop_listening()
        await factory.protocols[0].when_lost()

    run(reactor, scenario())


def test_connect_unix_with_a_client_factory(reactor: Any, run: Any, sock_path: str) -> None:
    """The reactor methods themselves, and the hooks of a ClientFactory (not an endpoint)."""

    async def scenario() -> None:
        factory = CollectingFactory(Echo)
        port = reactor.listen_unix(sock_path, factory)
        cf = RecordingClientFactory()
        reactor.connect_unix(sock_path, cf, timeout=5)
        protocol = await cf.made
        payload = bytes(range(256)) * 16384  # 4 MiB
        protocol.transport.writelines([payload[: MIB], payload[MIB:]])
        await protocol.when_received(len(payload))
        assert bytes(protocol.received) == payload
        (await factory.connection()).transport.lose_connection()
        reason = await cf.lost
        assert isinstance(reason, ConnectionDone)
        await port.stop_listening()

    run(reactor, scenario())


# -- the lock file and stale socket files -----------------------------------------------------------


def test_lock_file_holds_our_pid_and_both_files_go_at_stop(reactor: Any, run: Any, sock_path: str) -> None:
    async def scenario() -> None:
        port = reactor.listen_unix(sock_path, Factory.for_protocol(Protocol))
        lock = sock_path + ".lock"
        assert port.lock_path == lock
        assert Path(lock).read_text() == f"{os.getpid()}\n"
        assert Path(sock_path).is_socket()
        with pytest.raises(CannotListenError, match=rf"another process \(pid {os.getpid()}\) listens there"):
            reactor.listen_unix(sock_path, Factory.for_protocol(Protocol))
        assert Path(sock_path).is_socket() and Path(lock).exists()  # the refused listen took nothing away
        await port.stop_listening()
        assert not os.path.exists(sock_path) and not os.path.exists(lock)
        await port.stop_listening()  # idempotent

    run(reactor, scenario())


def test_stopping_the_reactor_stops_listening_and_removes_both_files(reactor: Any, run: Any, sock_dir: Path) -> None:
    """A port still listening when the reactor stops is stopped by its shutdown, files and all; one
    stopped before (its trigger removed) is left alone, and the next run starts without it."""
    still, stopped = str(sock_dir / "still.sock"), str(sock_dir / "stopped.sock")
    port = reactor.listen_unix(still, Factory.for_protocol(Protocol))
    early = reactor.listen_unix(stopped, Factory.for_protocol(Protocol))
    early.stop_listening()
    assert sorted(os.listdir(sock_dir)) == ["still.sock", "still.sock.lock"]

    async def nothing() -> None:
        pass

    run(reactor, nothing())  # runs the reactor, then stops it
    assert not port.listening and os.listdir(sock_dir) == []
    again = reactor.listen_unix(still, Factory.for_protocol(Protocol))  # the path is free again
    run(reactor, nothing())
    assert not again.listening and os.listdir(sock_dir) == []


def test_stale_socket_file_is_replaced(reactor: Any, run: Any, sock_path: str) -> None:
    async def scenario() -> None:
        with socket.socket(socket.AF_UNIX) as dead:
            dead.bind(sock_path)  # the file of a server that died without cleaning up
        assert Path(sock_path).is_socket()
        port, server_protocol, client_protocol = await connected_pair(reactor, sock_path)
        await close_both(client_protocol, server_protocol)
        await port.stop_listening()
        assert not os.path.exists(sock_path)

    run(reactor, scenario())


LISTENER = """
import sys
sys.path.insert(0, {root!r})
from net.protocol import Factory
from net.reactor import make_reactor
from net.testing import Echo
reactor = make_reactor()
reactor.listen_unix(sys.argv[1], Factory.for_protocol(Echo))
print("ready", flush=True)
reactor.run()
"""


def test_live_listener_in_another_process_refuses_then_its_crash_leaves_a_stale_file(
        reactor: Any, run: Any, sock_path: str) -> None:
    proc = subprocess.Popen([sys.executable, "-c", LISTENER.format(root=str(ROOT)), sock_path],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        with pytest.raises(CannotListenError) as info:
            reactor.listen_unix(sock_path, Factory.for_protocol(Protocol))
        assert f"another process (pid {proc.pid}) listens there" in str(info.value)
        assert sock_path in str(info.value) and info.value.errno == errno.EADDRINUSE
        with socket.socket(socket.AF_UNIX) as probe:  # it still serves
            probe.settimeout(10)
            probe.connect(sock_path)
            probe.sendall(b"still there?")
            assert probe.recv(100) == b"still there?"
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert Path(sock_path).is_socket() and Path(sock_path + ".lock").exists()  # killed: no cleanup

    async def scenario() -> None:
        port, server_protocol, client_protocol = await connected_pair(reactor, sock_path)
        assert Path(sock_path + ".lock").read_text() == f"{os.getpid()}\n"
        await close_both(client_protocol, server_protocol)
        await port.stop_listening()

    run(reactor, scenario())


def test_listener_without_the_lock_file_is_not_replaced(reactor: Any, sock_path: str) -> None:
    with socket.socket(socket.AF_UNIX) as foreign:
        foreign.bind(sock_path)
        foreign.listen(1)
        with pytest.raises(CannotListenError, match="does not use the lock file"):
            reactor.listen_unix(sock_path, Factory.for_protocol(Protocol))
        assert Path(sock_path).is_socket() and not os.path.exists(sock_path + ".lock")
        with socket.socket(socket.AF_UNIX) as c:
            c.connect(sock_path)  # still the foreign program's


@pytest.mark.parametrize("kind", ["regular file", "directory", "symbolic link"])
def test_a_file_that_is_not_a_socket_is_never_deleted(reactor: Any, sock_dir: Path, kind: str) -> None:
    path = sock_dir / "s.sock"
    if kind == "regular file":
        path.write_text("precious")
    elif kind == "directory":
        path.mkdir()
    else:
        path.symlink_to(sock_dir / "elsewhere")
    with pytest.raises(CannotListenError, match=f"exists and is a {kind}; it is never deleted"):
        reactor.listen_unix(str(path), Factory.for_protocol(Protocol))
    assert os.path.lexists(path)
    if kind == "regular file":
        assert path.read_text() == "precious"
    assert not os.path.exists(str(path) + ".lock")  # the lock taken for the attempt is gone too


def test_failed_factory_start_leaves_no_files(reactor: Any, sock_path: str) -> None:
    class Broken(Factory):
        protocol = Protocol

        def start_factory(self) -> None:
            raise RuntimeError("no")

    with pytest.raises(RuntimeError, match="no"):
        reactor.listen_unix(sock_path, Broken())
    assert not os.path.exists(sock_path) and not os.path.exists(sock_path + ".lock")


def test_bind_errors_say_where(reactor: Any, sock_dir: Path) -> None:
    missing = sock_dir / "no-such-dir" / "s.sock"
    with pytest.raises(CannotListenError, match=f"the unix socket {missing}: cannot open the lock file"):
        reactor.listen_unix(str(missing), Factory.for_protocol(Protocol))
    long = str(sock_dir / ("x" * 120))
    with pytest.raises(CannotListenError, match="too long"):
        reactor.listen_unix(long, Factory.for_protocol(Protocol))
    assert os.listdir(sock_dir) == []
    with pytest.raises(ValueError, match="must not be empty"):
        reactor.listen_unix("", Factory.for_protocol(Protocol))
    with pytest.raises(ValueError, match="mode must be permission bits"):
        reactor.listen_unix(str(sock_dir / "m.sock"), Factory.for_protocol(Protocol), mode=0o4777)


# -- mode bits and caps ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o666, 0o700])
def test_mode_bits(reactor: Any, run: Any, sock_path: str, mode: int) -> None:
    async def scenario() -> None:
        port = reactor.listen_unix(sock_path, Factory.for_protocol(Protocol), mode=mode)
        assert os.stat(sock_path).st_mode & 0o777 == mode
        await port.stop_listening()
        port = await server(reactor, f"unix:{esc(sock_path)}:mode={mode:04o}").listen(Factory.for_protocol(Protocol))
        assert os.stat(sock_path).st_mode & 0o777 == mode
        await port.stop_listening()

    run(reactor, scenario())


def test_default_mode_is_0660_whatever_the_umask(reactor: Any, run: Any, sock_path: str) -> None:
    async def scenario() -> None:
        old = os.umask(0o077)
        try:
            port = reactor.listen_unix(sock_path, Factory.for_protocol(Protocol))
        finally:
            os.umask(old)
        assert os.stat(sock_path).st_mode & 0o777 == 0o660
        await port.stop_listening()

    run(reactor, scenario())


def test_max_connections(reactor: Any, run: Any, sock_path: str, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        factory = CollectingFactory(Echo)
        port = await server(reactor, f"unix:{esc(sock_path)}:max_connections=1").listen(factory)
        first = await client(reactor, f"unix:{esc(sock_path)}").connect(CollectingFactory())
        await factory.connection(0)
        second = await client(reactor, f"unix:{esc(sock_path)}").connect(CollectingFactory())
        await second.when_lost()  # accepted and closed at once
        assert second.count == 0 and port.refused_count == 1 and port.connection_count == 1
        first.transport.write(b"ok")
        await first.when_received(2)
        await close_both(first)
        await factory.protocols[0].when_lost()
        assert port.connection_count == 0
        await port.stop_listening()

    with caplog.at_level(logging.WARNING, logger="net.tcp"):
        run(reactor, scenario())
    assert "max_connections=1 reached" in caplog.text


def test_per_host_caps_do_not_apply(reactor: Any, sock_path: str) -> None:
    with pytest.raises(TypeError, match="max_connections_per_host does not apply to Unix sockets"):
        reactor.listen_unix(sock_path, Factory.for_protocol(Protocol), max_connections_per_host=1)
    with pytest.raises(ValueError, match="max_connections_per_host"):
        server(reactor, f"unix:{esc(sock_path)}:max_connections_per_host=1")
    assert not os.path.exists(sock_path)


# -- peer credentials ------------------------------------------------------------------------------


def test_peer_credentials_in_one_process(reactor: Any, run: Any, sock_path: str) -> None:
    async def scenario() -> None:
        port, server_protocol, client_protocol = await connected_pair(reactor, sock_path)
        me = PeerCredentials(os.getpid(), os.getuid(), os.getgid())
        assert server_protocol.transport.get_peer_credentials() == me
        assert client_protocol.transport.get_peer_credentials() == me
        await close_both(client_protocol, server_protocol)
        assert server_protocol.transport.get_peer_credentials() == me  # still known after the close
        await port.stop_listening()

    run(reactor, scenario())


PEER = """
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"hello")
sys.stdin.read()  # until the test closes our stdin
"""


def test_peer_credentials_of_another_process(reactor: Any, run: Any, sock_path: str) -> None:
    async def scenario() -> None:
        factory = CollectingFactory()
        port = reactor.listen_unix(sock_path, factory)
        proc = subprocess.Popen([sys.executable, "-c", PEER, sock_path], stdin=subprocess.PIPE)
        try:
            peer = await factory.connection(0)
            await peer.when_received(5)
            assert peer.transport.get_peer_credentials() == (proc.pid, os.getuid(), os.getgid())
        finally:
            assert proc.stdin is not None
            proc.stdin.close()
            await reactor.defer_to_thread(proc.wait)
        await peer.when_lost()
        await port.stop_listening()

    run(reactor, scenario())


# -- descriptor passing ----------------------------------------------------------------------------


class FdRecorder(Recorder):
    """Takes every descriptor it receives; logs ("fds", bytes received before) and ("data", n)."""

    def __init__(self) -> None:
        super().__init__()
        self.fds: list[int] = []
        self.log: list[tuple[str, int]] = []

    def fds_received(self, fds: list[int]) -> None:
        self.log.append(("fds", self.count))
        self.fds.extend(fds)
        fds.clear()  # taken: ours to close now
        self._fire()

    def data_received(self, data: bytes) -> None:
        self.log.append(("data", len(data)))
        super().data_received(data)

    def when_fds(self, n: int) -> Deferred[Any]:
        return self.when(lambda: len(self.fds) >= n)

    def fd_positions(self) -> list[tuple[int, int]]:
        """For each descriptor message: (bytes before it, length of the data delivered with it)."""
        out = []
        for i, (kind, value) in enumerate(self.log):
            if kind == "fds":
                nxt = self.log[i + 1]
                assert nxt[0] == "data", "fds_received not followed by its data"
                out.append((value, nxt[1]))
        return out


class BufferedFdRecorder(FdRecorder):
    """The same, receiving through get_buffer/buffer_updated."""

    def __init__(self) -> None:
        super().__init__()
        self._buf = bytearray(4096)

    def get_buffer(self, sizehint: int) -> memoryview:
        return memoryview(self._buf)

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(bytes(self._buf[:nbytes]))


def read_through(fd: int, write_end: int, text: bytes) -> bytes:
    os.write(write_end, text)
    return os.read(fd, 100)


@pytest.mark.parametrize("receiver", [FdRecorder, BufferedFdRecorder], ids=["data_received", "buffered"])
def test_send_a_pipe_behind_queued_data(reactor: Any, run: Any, sock_path: str, receiver: Any) -> None:
    """The descriptor waits in the queue behind 4 MiB and arrives with its own byte, not before."""
    size = 4 * MIB

    async def scenario() -> None:
        port, server_protocol, client_protocol = await connected_pair(reactor, sock_path, receiver)
        server_protocol.transport.pause_reading()
        r, w = os.pipe()
        try:
            client_protocol.transport.write(b"a" * size)
            assert client_protocol.transport.get_write_buffer_size() > 0  # queued: the kernel is full
            client_protocol.transport.send_fds([r], b"F")
            os.close(r)  # ours; the transport sends a duplicate
            r = -1
            client_protocol.transport.write(b"tail")
            server_protocol.transport.resume_reading()
            await server_protocol.when_received(size + 5)
            assert bytes(server_protocol.received[size:]) == b"Ftail"
            [(before, length)] = server_protocol.fd_positions()
            assert before <= size < before + length, (before, length)  # came with the byte "F"
            [fd] = server_protocol.fds
            assert read_through(fd, w, b"through the pipe") == b"through the pipe"
            assert os.get_inheritable(fd) is False  # MSG_CMSG_CLOEXEC
            os.close(fd)
        finally:
            os.close(w)
            if r >= 0:
                os.close(r)
        await close_both(client_protocol, server_protocol)
        await port.stop_listening()

    run(reactor, scenario())


def test_several_fd_messages_in_order_to_an_endpoint_client(reactor: Any, run: Any, sock_path: str) -> None:
    """Server to client (through the endpoint's wrapper protocol), each set with its own bytes."""

    async def scenario() -> None:
        port, server_protocol, client_protocol = await connected_pair(reactor, sock_path, Recorder, FdRecorder)
        pipes = [os.pipe() for _ in range(3)]
        try:
            t = server_protocol.transport
            client_protocol.transport.pause_reading()
            t.write(b"x" * MIB)
            t.send_fds([pipes[0][0]], b"1")
            t.send_fds([pipes[1][0], pipes[2][0]], b"23")
            t.write(b"y" * 1000)
            t.send_fds([pipes[0][0]], b"4")
            for r, _ in pipes:
                os.close(r)
            client_protocol.transport.resume_reading()
            await client_protocol.when_received(MIB + 1004)
            data = bytes(client_protocol.received)
            offsets = [MIB, MIB + 1, MIB + 1003]
            assert [data[o : o + 1] for o in offsets] == [b"1", b"2", b"4"]
            positions = client_protocol.fd_positions()
            assert len(positions) == 3
            for (before, length), offset in zip(positions, offsets):
                assert before <= offset < before + length, (positions, offsets)
            fds = client_protocol.fds
            assert len(fds) == 4
            texts = [read_through(fd, pipes[i][1], b"pipe %d" % i) for fd, i in zip(fds, [0, 1, 2, 0])]
            assert texts == [b"pipe 0", b"pipe 1", b"pipe 2", b"pipe 0"]
            for fd in fds:
                os.close(fd)
        finally:
            for _, w in pipes:
                os.close(w)
        await close_both(client_protocol, server_protocol)
        await port.stop_listening()

    run(reactor, scenario())


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(st.one_of(st.tuples(st.just("write"), st.integers(1, 400_000)),
                              st.tuples(st.just("fds"), st.integers(1, 4))), min_size=1, max_size=10),
       sndbuf=st.sampled_from([4096, 65536, 1 << 20]))
def test_descriptors_keep_their_place_in_the_stream(reactor: Any, run: Any, ops: list[tuple[str, int]],
                                                    sndbuf: int) -> None:
    """Any interleaving of writes and send_fds, whatever the kernel takes at once: every byte
    arrives in order, and each descriptor set with the data holding its own first byte."""

    async def scenario() -> None:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        sender = Recorder()
        receiver = FdRecorder()
        for sock, protocol in ((a, sender), (b, receiver)):
            unix.UnixConnection(sock, protocol, reactor, peer=UNIXAddress(None)).start()
        r, w = os.pipe()
        expected = bytearray()
        offsets: list[tuple[int, int]] = []  # (offset of the set's first byte, descriptors in it)
        try:
            for i, (op, n) in enumerate(ops):
                if op == "write":
                    sender.transport.write(bytes([i % 256]) * n)
                    expected += bytes([i % 256]) * n
                else:
                    offsets.append((len(expected), n))
                    sender.transport.send_fds([r] * n, b"F%d" % i)
                    expected += b"F%d" % i
            await receiver.when_received(len(expected))
            assert bytes(receiver.received) == bytes(expected)
            positions = receiver.fd_positions()
            assert len(positions) == len(offsets)
            for (before, length), (offset, _) in zip(positions, offsets):
                assert before <= offset < before + length, (positions, offsets)
            assert len(receiver.fds) == sum(n for _, n in offsets)
        finally:
            _close_all(receiver.fds + [r, w])
        await close_both(sender, receiver)

    run(reactor, scenario())


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)


class IgnoringFds(Recorder):
    def fds_received(self, fds: list[int]) -> None:
        pass  # takes none: the transport closes them


class FailingFds(Recorder):
    def fds_received(self, fds: list[int]) -> None:
        raise ValueError("cannot take descriptors")


@pytest.mark.parametrize("receiver", [Recorder, IgnoringFds, FailingFds],
                         ids=["no fds_received", "not taken", "fds_received raises"])
def test_descriptors_not_taken_are_closed(reactor: Any, run: Any, sock_path: str, receiver: Any,
                                          caplog: pytest.LogCaptureFixture) -> None:
    """Whatever the receiver does, the pipe's last read end is closed: writing to it breaks."""

    async def scenario() -> None:
        port, server_protocol, client_protocol = await connected_pair(reactor, sock_path, receiver)
        r, w = os.pipe()
        try:
            client_protocol.transport.send_fds([r], b"fd")
            os.close(r)
            if receiver is FailingFds:
                await server_protocol.when_lost()
                assert isinstance(server_protocol.reason, ValueError)
                assert server_protocol.count == 0  # no data_received after the failure
                await client_protocol.when_lost()
            else:
                await server_protocol.when_received(2)
            with pytest.raises(BrokenPipeError):
                os.write(w, b"anyone?")
        finally:
            os.close(w)
        if receiver is not FailingFds:
            await close_both(client_protocol, server_protocol)
        await port.stop_listening()

    with caplog.at_level(logging.ERROR, logger="net.unix"):
        run(reactor, scenario())
    assert ("fds_received failed" in caplog.text) == (receiver is FailingFds)


def test_more_descriptors_than_the_cap_are_closed_by_the_kernel(
        reactor: Any, run: Any, sock_path: str, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        factory = CollectingFactory(FdRecorder)
        port = reactor.listen_unix(sock_path, factory)
        r, w = os.pipe()
        raw = socket.socket(socket.AF_UNIX)
        try:
            raw.connect(sock_path)
            socket.send_fds(raw, [b"many"], [r] * (MAX_FDS_PER_MESSAGE + 36))
            os.close(r)
            r = -1
            peer = await factory.connection(0)
            await peer.when_received(4)
            assert len(peer.fds) == MAX_FDS_PER_MESSAGE
            for fd in peer.fds:
                os.close(fd)
            with pytest.raises(BrokenPipeError):  # the 36 beyond the cap are closed too
                os.write(w, b"x")
        finally:
            raw.close()
            os.close(w)
            if r >= 0:
                os.close(r)
        await peer.when_lost()
        await port.stop_listening()

    with caplog.at_level(logging.WARNING, logger="net.unix"):
        run(reactor, scenario())
    assert f"more than {MAX_FDS_PER_MESSAGE} descriptors in one message" in caplog.text


def test_send_fds_refuses_bad_arguments(reactor: Any, run: Any, sock_path: str) -> None:
    async def scenario() -> None:
        port, server_protocol, client_protocol = await connected_pair(reactor, sock_path)
        t = client_protocol.transport
        r, w = os.pipe()
        try:
            with pytest.raises(ValueError, match="1 to 64 descriptors, got 0"):
                t.send_fds([])
            with pytest.raises(ValueError, match="got 65"):
                t.send_fds([r] * 65)
            with pytest.raises(ValueError, match="at least one byte"):
                t.send_fds([r], b"")
            with pytest.raises(TypeError, match="descriptor numbers"):
                t.send_fds(["3"])  # type: ignore[list-item]
            bad = max(int(fd) for fd in open_fds()) + 100
            with pytest.raises(OSError) as info:
                t.send_fds([r, bad])  # the duplicate of r made first is closed again
            assert info.value.errno == errno.EBADF
            assert t.get_write_buffer_size() == 0
            t.write(b"still fine")
            await server_protocol.when_received(10)
        finally:
            os.close(r)
            os.close(w)
        await close_both(client_protocol, server_protocol)
        await port.stop_listening()

    run(reactor, scenario())


def test_pending_descriptors_are_closed_when_the_connection_closes(reactor: Any, run: Any, sock_path: str) -> None:
    async def scenario() -> None:
        port, server_protocol, client_protocol = await connected_pair(reactor, sock_path, FdRecorder)
        server_protocol.transport.pause_reading()
        r, w = os.pipe()
        try:
            client_protocol.transport.write(b"z" * (4 * MIB))
            client_protocol.transport.send_fds([r])  # stuck behind the data
            os.close(r)
            client_protocol.transport.abort_connection()
            client_protocol.transport.send_fds([w])  # after the close: ignored, like write()
            await client_protocol.when_lost()
            server_protocol.transport.resume_reading()
            await server_protocol.when_lost()
            assert server_protocol.fds == []
            with pytest.raises(BrokenPipeError):  # the queued duplicate was closed
                os.write(w, b"x")
        finally:
            os.close(w)
        await port.stop_listening()

    run(reactor, scenario())


def test_send_fds_after_write_eof_raises_and_keeps_nothing(reactor: Any, run: Any, sock_path: str) -> None:
    async def scenario() -> None:
        port, server_protocol, client_protocol = await connected_pair(reactor, sock_path)
        r, w = os.pipe()
        try:
            client_protocol.transport.write_eof()
            before = open_fds()
            with pytest.raises(RuntimeError, match="after write_eof"):
                client_protocol.transport.send_fds([r, w])
            assert open_fds() == before  # the duplicates are closed at once
            assert client_protocol.transport.get_write_buffer_size() == 0
        finally:
            os.close(r)
            os.close(w)
        await server_protocol.when_eof()
        await close_both(client_protocol, server_protocol)
        await port.stop_listening()

    run(reactor, scenario())


# -- half-close ------------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(unix.UnixConnection, "write_eof"), reason="net.tcp.Connection has no write_eof yet")
def test_half_close(reactor: Any, run: Any, sock_path: str) -> None:
    class Answering(Recorder):
        keep_open_on_eof = True

        def eof_received(self) -> bool | None:
            keep = super().eof_received()
            self.transport.write(b"answer to " + bytes(self.received))
            self.transport.lose_connection()
            return keep

    async def scenario() -> None:
        port, server_protocol, client_protocol = await connected_pair(reactor, sock_path, Answering)
        assert client_protocol.transport.can_write_eof()
        client_protocol.transport.write(b"question")
        client_protocol.transport.write_eof()
        await client_protocol.when_lost()
        assert bytes(client_protocol.received) == b"answer to question"
        assert client_protocol.events[-2:] == ["eof", "lost"]
        await server_protocol.when_lost()
        await port.stop_listening()

    run(reactor, scenario())


# -- connecting: errors, timeout, a full listen queue ------------------------------------------------


def test_connect_to_a_missing_path(reactor: Any, run: Any, sock_dir: Path) -> None:
    path = str(sock_dir / "nobody.sock")
    error = run(reactor, connect_failure(reactor, f"unix:{esc(path)}"))
    assert isinstance(error, ConnectionRefusedError) and error.errno == errno.ENOENT
    assert f"No unix socket at {path}: the file does not exist" in str(error)


def test_connect_to_a_stale_socket_file(reactor: Any, run: Any, sock_path: str) -> None:
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(sock_path)
    error = run(reactor, connect_failure(reactor, f"unix:{esc(sock_path)}"))
    assert isinstance(error, ConnectionRefusedError) and error.errno == errno.ECONNREFUSED
    assert f"Connection refused by the unix socket {sock_path}: nobody listens there" in str(error)


def test_connect_to_an_abstract_name_nobody_has(reactor: Any, run: Any) -> None:
    name = abstract_name()
    error = run(reactor, connect_failure(reactor, f"unix:{name}"))
    assert isinstance(error, ConnectionRefusedError) and error.errno == errno.ECONNREFUSED
    assert name in str(error)


def test_connect_path_too_long(reactor: Any, run: Any) -> None:
    error = run(reactor, connect_failure(reactor, "unix:/tmp/" + "x" * 200))
    assert isinstance(error, ConnectError) and "too long" in str(error)


class FullQueue:
    """A listening socket nobody accepts on, with its queue filled by raw connections."""

    def __init__(self, path: str) -> None:
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(path)
        self.listener.listen(0)
        self.fillers: list[socket.socket] = []
        while True:
            s = socket.socket(socket.AF_UNIX)
            s.setblocking(False)
            err = s.connect_ex(path)
            if err:
                s.close()
                assert err == errno.EAGAIN, os.strerror(err)
                break
            self.fillers.append(s)

    def drain(self) -> None:
        """Accept (and close) what is queued, so one more connect succeeds."""
        self.listener.setblocking(False)
        while True:
            try:
                conn, _ = self.listener.accept()
            except BlockingIOError:
                return
            conn.close()

    def close(self) -> None:
        for s in self.fillers:
            s.close()
        self.listener.close()


def test_connect_timeout_on_a_full_queue(reactor: Any, run: Any, sock_path: str) -> None:
    queue = FullQueue(sock_path)
    try:
        cf = RecordingClientFactory()
        connector = reactor.connect_unix(sock_path, cf, timeout=0.3)
        error = run(reactor, cf.failed)
        assert isinstance(error, ConnectTimeoutError)
        assert "listen queue stayed full" in str(error) and sock_path in str(error)
        assert connector.busy_retries >= 1 and connector.state == "disconnected"
    finally:
        queue.close()


def test_connect_retries_until_the_queue_drains(reactor: Any, run: Any, sock_path: str) -> None:
    queue = FullQueue(sock_path)
    try:
        async def scenario() -> None:
            cf = RecordingClientFactory()
            connector = reactor.connect_unix(sock_path, cf, timeout=30)
            await until(reactor, lambda: connector.busy_retries >= 2)
            assert connector.state == "connecting"
            queue.drain()
            protocol = await cf.made
            assert connector.state == "connected"
            conn, _ = queue.listener.accept()
            conn.sendall(b"finally")
            await protocol.when_received(7)
            conn.close()
            await cf.lost

        run(reactor, scenario())
    finally:
        queue.close()


def test_cancel_while_the_queue_is_full(reactor: Any, run: Any, sock_path: str) -> None:
    queue = FullQueue(sock_path)
    try:
        async def scenario() -> None:
            endpoint = client(reactor, f"unix:{esc(sock_path)}")
            d = endpoint.connect(CollectingFactory())
            await iterations(reactor, 5)
            d.cancel()
            with pytest.raises(CancelledError):
                await d

        run(reactor, scenario())
    finally:
        queue.close()


def test_connector_stop_connecting_and_reconnect(reactor: Any, run: Any, sock_path: str) -> None:
    async def scenario() -> None:
        cf = RecordingClientFactory()
        connector = UnixConnector(reactor, sock_path, cf, timeout=5)
        connector.connect()
        connector.stop_connecting()  # before its first try
        error = await cf.failed
        assert isinstance(error, ConnectError) and "abandoned" in str(error)
        with pytest.raises(RuntimeError, match="not connecting"):
            connector.stop_connecting()
        factory = CollectingFactory(Echo)
        port = reactor.listen_unix(sock_path, factory)
        cf.failed, cf.made = Deferred(), Deferred()
        connector.connect()  # the same connector, again
        protocol = await cf.made
        with pytest.raises(RuntimeError, match="already connected"):
            connector.connect()
        connector.disconnect()
        await cf.lost
        await factory.protocols[0].when_lost()
        await port.stop_listening()

    run(reactor, scenario())


def test_connect_unix_needs_a_client_factory(reactor: Any, sock_path: str) -> None:
    with pytest.raises(TypeError, match="needs a ClientFactory"):
        reactor.connect_unix(sock_path, Factory.for_protocol(Protocol))


# -- endpoint strings ------------------------------------------------------------------------------


def test_endpoint_strings(reactor: Any, sock_path: str) -> None:
    endpoint = server(reactor, f"unix:{esc(sock_path)}:mode=0600:backlog=5:max_connections=3")
    assert (endpoint.path, endpoint.mode, endpoint.backlog, endpoint.max_connections) == (sock_path, 0o600, 5, 3)
    assert server(reactor, "unix:/run/app.sock").mode == 0o660
    assert server(reactor, "unix:/run/app.sock:mode=0o640").mode == 0o640
    assert server(reactor, "unix:@name").path == "@name"
    c = client(reactor, "unix:/run/app.sock:timeout=5")
    assert (c.path, c.timeout, c.tls_context) == ("/run/app.sock", 5.0, None)
    assert client(reactor, "unix:/a\\:b.sock").path == "/a:b.sock"
    assert client(reactor, "unix:@name:timeout=none").timeout is None


@pytest.mark.parametrize(("role", "spec", "message"), [
    ("server", "unix:/x.sock:mode=999", "mode must be octal permission bits like 0600"),
    ("server", "unix:/x.sock:mode=rw", "mode must be octal"),
    ("server", "unix:/x.sock:cert=a.pem", "needs both cert= and key="),
    ("server", "unix:", "must not be empty"),
    ("server", "unix:@", "must not be empty"),
    ("server", "unix:/x.sock:port=3", r"expected 'unix:PATH\[:mode=MODE\]"),
    ("client", "unix:/x.sock:ca=ca.pem", "needs hostname=NAME"),
    ("client", "unix:/x.sock:timeout=-1", "timeout must be a number"),
    ("client", "unix:/x.sock:hostname=h:cert=c.pem", "needs both cert= and key="),
])
def test_bad_endpoint_strings(reactor: Any, role: str, spec: str, message: str) -> None:
    build = server if role == "server" else client
    with pytest.raises(ValueError, match=message):
        build(reactor, spec)


@given(mode=st.integers(0, 0o777), spelling=st.sampled_from(["{:o}", "{:04o}", "0o{:o}", " {:03o} "]))
def test_mode_spellings(mode: int, spelling: str) -> None:
    assert server(None, f"unix:/run/app.sock:mode={spelling.format(mode)}").mode == mode


@given(text=st.text(alphabet="0123456789abcxo+- ", max_size=6))
def test_mode_is_octal_bits_or_a_clear_error(text: str) -> None:
    try:
        mode = server(None, f"unix:/run/app.sock:mode={text}").mode
    except ValueError as exc:
        assert "mode must be octal permission bits" in str(exc)
    else:
        assert 0 <= mode <= 0o777 and int(text.strip().lower().removeprefix("0o"), 8) == mode
