"""Listening limits, on every reactor backend: backlog, connection caps, running out of descriptors.

The cap and descriptor tests run the server in a child process (a greeting echo server, see
``CHILD``), so its RLIMIT_NOFILE can be lowered without touching the test process, and talk to it
with plain blocking loopback sockets. Every wait is on a socket event (a greeting, an echo, an
orderly close); socket timeouts are only a safety net so a broken server fails the test instead
of hanging it. Nothing measures wall-clock time; "does not spin" is the child's CPU time (from
/proc) over a fixed number of refused connections.
"""

from __future__ import annotations

import os
import selectors
import socket
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import BACKENDS
from net import tcp
from net.endpoints import TCPServerEndpoint, server
from net.protocol import Factory, Protocol

ROOT = Path(__file__).resolve().parent.parent
SAFETY = 20.0  # seconds; a safety net for a broken server, never the synchronisation
GREETING = b"hi\n"

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc and RLIMIT_NOFILE")

# The child: listens on the endpoint string argv[2] with reactor backend argv[1], greets each
# connection with b"hi\n" and echoes what it receives. After listening it lowers its descriptor
# limit to argv[3] (0: leave it) and prints the port. When its stdin closes it stops listening
# (which flushes the rate-limited refusal summaries) and prints how many it refused.
CHILD = r"""
import logging, os, resource, sys
backend, spec, nofile = sys.argv[1], sys.argv[2], int(sys.argv[3])
logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="LOG %(levelname)s %(name)s %(message)s")
from net import tcp
from net.endpoints import server
from net.protocol import Factory, Protocol
from net.reactor import make_reactor

tcp.Port.refusal_log_interval = 3600.0  # one line per episode, one summary when the port stops

class Greeter(Protocol):
    def connection_made(self, transport):
        transport.write(b"hi\n")
    def data_received(self, data):
        self.transport.write(data)

reactor = make_reactor(backend)
ports = []

def listening(port):
    ports.append(port)
    if nofile:
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    sys.stdout.write(f"{port.get_host().port}\n")
    sys.stdout.flush()

def failed(failure):
    sys.stderr.write(f"cannot listen: {failure.value!r}\n")
    reactor.stop()

def start():
    server(reactor, spec).listen(Factory.for_protocol(Greeter)).add_callbacks(listening, failed)

def on_stdin():
    if os.read(0, 100):
        return
    reactor.remove_reader(0)
    for port in ports:
        port.stop_listening()
        sys.stdout.write(f"refused {port.refused_count}\n")
    sys.stdout.flush()
    reactor.stop()

reactor.add_reader(0, on_stdin)
reactor.call_when_running(start)
reactor.run(install_signal_handlers=False)
"""


class Child:
    """The child server process; :attr:`port` is where it listens."""

    def __init__(self, backend: str, spec: str, nofile: int = 0) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, backend, spec, str(nofile)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=env)
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:  # safety net only: the child prints at once
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            ready = sel.select(SAFETY)
        line = self.proc.stdout.readline() if ready else b""
        if not line.strip().isdigit():
            self.proc.kill()
            _, err = self.proc.communicate()
            pytest.fail(f"the child server did not start: {line!r}\n{err.decode(errors='replace')}")
        self.port = int(line)

    def cpu_seconds(self) -> float:
        """User + system CPU time the child has used so far."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def finish(self) -> tuple[int, list[str]]:
        """Close its stdin; return the refusal count it reports and its log lines."""
        out, err = self.proc.communicate(timeout=SAFETY)  # closes its stdin first
        assert self.proc.returncode == 0, err.decode(errors="replace")
        refused = [int(line.split()[1]) for line in out.decode().splitlines() if line.startswith("refused ")]
        assert len(refused) == 1, out
        return refused[0], [line for line in err.decode().splitlines() if line.startswith("LOG ")]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def read_exactly(sock: socket.socket, n: int) -> bytes:
    """``n`` bytes, or fewer if the peer closes first (b"" when it closes before sending)."""
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def dial(port: int, source: str = "127.0.0.1") -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=SAFETY, source_address=(source, 0))


def greeted(sock: socket.socket) -> bool:
    """True if the server greets us, False if it closes the connection cleanly at once."""
    data = read_exactly(sock, len(GREETING))
    assert data in (GREETING, b""), data
    return data == GREETING


def connect(port: int, source: str = "127.0.0.1") -> tuple[socket.socket, bool]:
    sock = dial(port, source)
    return sock, greeted(sock)


def echoes(sock: socket.socket) -> bool:
    sock.sendall(b"ping")
    return read_exactly(sock, 4) == b"ping"


def hang_up(sock: socket.socket) -> None:
    """Close our side and wait until the server has closed its socket too (its EOF reaches us)."""
    sock.shutdown(socket.SHUT_WR)
    assert sock.recv(16) == b""
    sock.close()


def close_all(socks: list[socket.socket]) -> None:
    for sock in socks:
        sock.close()


# -- the listen backlog ----------------------------------------------------------------------


def somaxconn() -> int:
    return int(Path("/proc/sys/net/core/somaxconn").read_text())


def listen_queue_limit(sock: Any) -> int:
    """The backlog the kernel applies to a listening socket (``tcpi_sacked`` of TCP_INFO)."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    state, *_ = struct.unpack_from("B", info)
    assert state == 10  # TCP_LISTEN
    return int(struct.unpack_from("6I", info, 8)[5])


def test_default_backlog_is_the_os_maximum() -> None:
    assert tcp.default_backlog() == somaxconn()


@pytest.mark.skipif(somaxconn() <= 50, reason="the OS maximum is the old default")
def test_listen_backlog(reactor: Any, run: Any) -> None:
    """The OS maximum unless told otherwise, through listen_tcp and the endpoint alike."""
    factory = Factory.for_protocol(Protocol)
    ports = [
        tcp.listen_tcp(reactor, 0, factory, interface="127.0.0.1"),
        run(reactor, server(reactor, "tcp:0:interface=127.0.0.1").listen(factory)),
        tcp.listen_tcp(reactor, 0, factory, backlog=7, interface="127.0.0.1"),
        run(reactor, server(reactor, "tcp:0:interface=127.0.0.1:backlog=9").listen(factory)),
    ]
    try:
        assert ports[0].backlog == somaxconn()
        assert [listen_queue_limit(port.socket) for port in ports] == [somaxconn(), somaxconn(), 7, 9]
    finally:
        for port in ports:
            port.stop_listening()


# -- options -----------------------------------------------------------------------------------


def test_endpoint_options() -> None:
    endpoint = server(None, "tcp:8800:max_connections=1000:max_connections_per_host=50")
    assert isinstance(endpoint, TCPServerEndpoint)
    assert (endpoint.max_connections, endpoint.max_connections_per_host, endpoint.backlog) == (1000, 50, None)
    endpoint = server(None, "tcp:8800:max_connections=none")
    assert (endpoint.max_connections, endpoint.max_connections_per_host) == (None, None)
    for spec, message in [
        ("tcp:8800:max_connections=0", "max_connections must be an integer from 1"),
        ("tcp:8800:max_connections_per_host=many", "max_connections_per_host must be an integer from 1"),
        ("tcp:8800:max_connections=-5", "max_connections must be an integer from 1"),
    ]:
        with pytest.raises(ValueError, match=message):
            server(None, spec)


def test_listen_tcp_checks_the_caps(reactor: Any) -> None:
    factory = Factory.for_protocol(Protocol)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="max_connections must be a positive integer"):
            tcp.listen_tcp(reactor, 0, factory, interface="127.0.0.1", max_connections=bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="max_connections_per_host must be a positive integer"):
            tcp.listen_tcp(reactor, 0, factory, interface="127.0.0.1", max_connections_per_host=bad)  # type: ignore[arg-type]
    port = tcp.listen_tcp(reactor, 0, factory, interface="127.0.0.1", max_connections=5, max_connections_per_host=2)
    assert (port.max_connections, port.max_connections_per_host) == (5, 2)
    port.stop_listening()


def test_hosts_are_counted_by_address_and_ipv6_by_prefix() -> None:
    v4, v6 = socket.AF_INET, socket.AF_INET6
    assert tcp._host_key(v4, ("192.0.2.1", 5000)) == "192.0.2.1"
    assert tcp._host_key(v6, ("::ffff:192.0.2.1", 5000, 0, 0)) == "192.0.2.1"
    assert tcp._host_key(v6, ("2001:db8:1:2:aaaa::1", 5000, 0, 0)) == "2001:db8:1:2::/64"
    assert tcp._host_key(v6, ("2001:db8:1:2:bbbb::7", 5000, 0, 0)) == "2001:db8:1:2::/64"
    assert tcp._host_key(v6, ("fe80::1%lo", 5000, 0, 1)) == "fe80::/64"
    assert tcp._host_key(socket.AF_UNIX, "/tmp/sock") is None


# -- caps (child process) --------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_per_host_cap(backend: str) -> None:
    child = Child(backend, "tcp:0:interface=127.0.0.1:max_connections_per_host=3")
    socks: list[socket.socket] = []
    try:
        first = [connect(child.port)[0] for _ in range(3)]
        socks += first
        extra, served = connect(child.port)
        socks.append(extra)
        assert not served  # the fourth from 127.0.0.1 is closed at once
        other, served = connect(child.port, source="127.0.0.2")
        socks.append(other)
        assert served  # another host has its own count
        again, served = connect(child.port)
        socks.append(again)
        assert not served
        assert all(echoes(sock) for sock in first + [other])  # the others are kept
        hang_up(first[0])
        replacement, served = connect(child.port)
        socks.append(replacement)
        assert served and echoes(replacement)  # a slot freed by a close is usable
    finally:
        close_all(socks)
    try:
        refused, lines = child.finish()
    finally:
        child.kill()
    assert refused == 2
    warnings = [line for line in lines if "max_connections_per_host=3 reached for 127.0.0.1" in line]
    assert len(warnings) == 1 and warnings[0].startswith("LOG WARNING net.tcp")
    summaries = [line for line in lines if "1 more connection(s) refused" in line]
    assert len(summaries) == 1 and "max_connections_per_host" in summaries[0]
    assert len(lines) == 2, lines


@pytest.mark.parametrize("backend", BACKENDS)
def test_total_cap(backend: str) -> None:
    child = Child(backend, "tcp:0:interface=127.0.0.1:max_connections=3")
    socks: list[socket.socket] = []
    try:
        kept = [connect(child.port, source)[0] for source in ("127.0.0.1", "127.0.0.2", "127.0.0.3")]
        socks += kept
        for source in ("127.0.0.4", "127.0.0.1", "127.0.0.5"):
            sock, served = connect(child.port, source)
            socks.append(sock)
            assert not served
        assert all(echoes(sock) for sock in kept)
        hang_up(kept[1])
        sock, served = connect(child.port, "127.0.0.6")
        socks.append(sock)
        assert served and echoes(sock)
        sock, served = connect(child.port, "127.0.0.7")
        socks.append(sock)
        assert not served
    finally:
        close_all(socks)
    try:
        refused, lines = child.finish()
    finally:
        child.kill()
    assert refused == 4
    assert len([line for line in lines if "max_connections=3 reached" in line]) == 1
    assert len([line for line in lines if "3 more connection(s) refused" in line]) == 1
    assert len(lines) == 2, lines


# -- out of descriptors (child process) ------------------------------------------------------

NOFILE = 48  # the child's descriptor limit: some for the interpreter and reactor, the rest clients
BURST = 20
SEQUENTIAL = 3


@pytest.mark.parametrize("backend", BACKENDS)
def test_out_of_descriptors_keeps_serving(backend: str) -> None:
    """At its descriptor limit the server closes each extra client cleanly, keeps those it has,
    serves new ones once some close, logs one warning line plus a summary, and does not spin."""
    child = Child(backend, "tcp:0:interface=127.0.0.1", nofile=NOFILE)
    served: list[socket.socket] = []
    others: list[socket.socket] = []
    try:
        for _ in range(NOFILE):  # the child cannot hold more connections than descriptors
            sock, ok = connect(child.port)
            if not ok:
                others.append(sock)
                break
            served.append(sock)
        else:
            pytest.fail(f"{NOFILE} connections served under RLIMIT_NOFILE={NOFILE}")
        assert len(served) >= 10

        cpu_before = child.cpu_seconds()
        burst = [dial(child.port) for _ in range(BURST)]  # queued together in the backlog
        others += burst
        assert not any(greeted(sock) for sock in burst)  # each one closed cleanly, none hangs
        for _ in range(SEQUENTIAL):
            sock, ok = connect(child.port)
            others.append(sock)
            assert not ok
        cpu_used = child.cpu_seconds() - cpu_before
        assert cpu_used < 1.0, f"{cpu_used:.2f} CPU seconds for {BURST + SEQUENTIAL} refused connections"

        assert all(echoes(sock) for sock in served)  # those it had are kept
        for sock in served[:3]:
            hang_up(sock)
        del served[:3]
        for _ in range(3):  # descriptors freed by closes are used for new clients
            sock, ok = connect(child.port)
            served.append(sock)
            assert ok and echoes(sock)
        sock, ok = connect(child.port)  # and the limit holds again
        others.append(sock)
        assert not ok
    finally:
        close_all(served + others)
    try:
        refused, lines = child.finish()
    finally:
        child.kill()
    assert refused == 1 + BURST + SEQUENTIAL + 1
    fd_lines = [line for line in lines if "out of file descriptors" in line]
    assert len(fd_lines) == 2, lines  # the first refusal, then one summary of the rest
    assert "accepted and closed a connection from 127.0.0.1" in fd_lines[0]
    assert f"{refused - 1} more connection(s) refused" in fd_lines[1]
    assert all(line.startswith("LOG WARNING net.tcp") for line in fd_lines)
    assert len(lines) == 2, lines  # nothing else: no per-attempt errors


def test_reserve_descriptor_is_released(reactor: Any, run: Any) -> None:
    """The port's reserve descriptor is taken at its first accept and given back when it stops."""
    class Refusing(Factory):
        def build_protocol(self, addr: Any) -> None:
            return None

    port = tcp.listen_tcp(reactor, 0, Refusing(), interface="127.0.0.1")
    with socket.create_connection(("127.0.0.1", port.get_host().port), timeout=SAFETY) as sock:
        assert run(reactor, reactor.defer_to_thread(sock.recv, 1)) == b""  # accepted, closed
    reserve = port._reserve
    assert reserve >= 0 and os.readlink(f"/proc/self/fd/{reserve}") == os.devnull
    port.stop_listening()
    assert port._reserve == -1
    try:
        still = os.readlink(f"/proc/self/fd/{reserve}")
    except FileNotFoundError:
        still = None
    assert still != os.devnull
