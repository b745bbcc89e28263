"""examples/udp_discovery.py run as a user would: server processes found over multicast on
loopback by a client process, which then makes a broker call on each."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "udp_discovery.py"
GROUP = "239.255.80.66"


def _multicast_on_loopback() -> str | None:
    """None if joining a group on 127.0.0.1 works here, else why not."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((GROUP, 0))
            s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                         socket.inet_aton(GROUP) + socket.inet_aton("127.0.0.1"))
    except OSError as exc:
        return str(exc)
    return None


pytestmark = pytest.mark.skipif(_multicast_on_loopback() is not None,
                                reason=f"no IPv4 multicast on loopback here: {_multicast_on_loopback()}")


def _free_udp_port() -> int:
    """A discovery port for this test alone (servers share it with SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(EXAMPLE), *args], capture_output=True, text=True, timeout=60)


class Servers:
    """Two discoverable servers, alpha and beta, on a fresh discovery port."""

    def __init__(self) -> None:
        self.port = _free_udp_port()
        self.endpoints: dict[str, str] = {}
        self.processes: list[subprocess.Popen[str]] = []
        self.stderr: list[str] = []
        for name in ("alpha", "beta"):
            process = subprocess.Popen(
                [sys.executable, str(EXAMPLE), "server", name, "--port", str(self.port)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            self.processes.append(process)
            assert process.stdout is not None
            line = process.stdout.readline()  # printed once it has joined the group
            assert line.startswith("listening on 127.0.0.1:"), line
            self.endpoints[name] = "tcp:" + line.split()[-1]

    def stop(self) -> None:
        """SIGTERM each (once); they must stop cleanly. Their stderr lands in ``self.stderr``."""
        processes, self.processes = self.processes, []
        for process in processes:
            process.terminate()
        for process in processes:
            _, err = process.communicate(timeout=30)
            self.stderr.append(err)
            assert process.returncode == 0, err  # SIGTERM stops the reactor cleanly


@pytest.fixture
def servers() -> Iterator[Servers]:
    started = Servers()
    try:
        yield started
    finally:
        started.stop()


def test_client_discovers_servers_and_calls_each(servers: Servers) -> None:
    port, endpoints = servers.port, servers.endpoints
    out = _run("client", "--port", str(port), "--expect", "2")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert sorted(line for line in lines if line.startswith("found ")) == [
        f"found alpha at {endpoints['alpha']}", f"found beta at {endpoints['beta']}"]
    says = [line for line in lines if " says: " in line]
    assert len(says) == 2
    assert says[0].startswith("alpha says: hello discoverer, this is alpha (pid ")
    assert says[1].startswith("beta says: hello discoverer, this is beta (pid ")


def test_servers_ignore_garbage(servers: Servers) -> None:
    """A datagram that is not a query is logged and dropped; the servers still answer."""
    port = servers.port
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 0)
        for junk in (b"\xff\xfe", b"[]", b'{"kind": "query"}', b'{"kind": "query", "nonce": 7}'):
            s.sendto(junk, (GROUP, port))
    out = _run("client", "--port", str(port), "--expect", "2")
    assert out.returncode == 0, out.stderr
    assert sum(" says: " in line for line in out.stdout.splitlines()) == 2
    servers.stop()
    for err in servers.stderr:
        assert "ignoring a datagram from ('127.0.0.1', " in err
        assert "not JSON" in err and "not a 'query' message" in err
        assert "'query' message without a proper 'nonce'" in err


def test_client_fails_clearly_when_nobody_answers() -> None:
    out = _run("client", "--port", str(_free_udp_port()), "--timeout", "0.3")
    assert out.returncode == 1
    assert "0 of 1 broker server(s) answered" in out.stderr and "are they running" in out.stderr


@pytest.mark.parametrize("backend", ["epoll", "asyncio"])
def test_demo(backend: str) -> None:
    env = {**os.environ, "PBROKER_REACTOR": backend}
    out = subprocess.run([sys.executable, str(EXAMPLE), "demo"], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert "alpha says: hello discoverer, this is alpha" in out.stdout
    assert "beta says: hello discoverer, this is beta" in out.stdout
