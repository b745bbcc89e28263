"""SO_REUSEPORT: worker processes listening on one port share its connections (issue 13).

Two real server processes bind the same port with ``tcp:PORT:reuse_port=1``; the test connects
(a new connection each time, so a new source port the kernel hashes) until both processes' pids
have answered a call, within a bounded number of attempts: with two listeners, all of 64
connections landing on one has probability 2**-63. No timing: each step waits on a Deferred.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import broker
from net.address import IPv4Address
from net.defer import Deferred
from net.error import CannotListenError
from net.protocol import Factory
from net.tcp import listen_tcp

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the kernel spreads SO_REUSEPORT connections over listeners on Linux")

WORKER = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, {root!r})
    import broker
    from net.reactor import make_reactor

    class Worker(broker.Root):
        def remote_pid(self):
            return os.getpid()

    reactor = make_reactor()
    def listening(port):
        print(port.get_host().port, flush=True)
    def failed(failure):
        print("failed", failure.value, flush=True)
        reactor.stop()
    broker.serve(reactor, "tcp:{port}:interface=127.0.0.1:reuse_port=1", Worker()).add_callbacks(listening, failed)
    reactor.run()
    """
)

ATTEMPTS = 64


class _Workers:
    """Server processes on one port; every one killed and reaped, and its pipe closed, at the end."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, port: int) -> int:
        root = str(Path(__file__).resolve().parent.parent)
        proc = subprocess.Popen([sys.executable, "-c", WORKER.format(root=root, port=port)], stdout=subprocess.PIPE,
                                text=True, env=dict(os.environ, PBROKER_REACTOR=self.backend))
        self.procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the port, or "failed ..." (or "" if it died)
        assert line.strip().isdigit(), f"worker {len(self.procs)} did not listen: {line!r}"
        return int(line)

    def close(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


@pytest.fixture
def workers(request: pytest.FixtureRequest, reactor: Any) -> Iterator[_Workers]:
    """Workers on the test's reactor backend (the ``reactor`` fixture's parameter)."""
    started = _Workers(request.node.callspec.params["reactor"])
    try:
        yield started
    finally:
        started.close()


async def _answering_pid(reactor: Any, port: int) -> int:
    """Connect anew, ask the worker's pid, and disconnect (waiting until the connection is gone)."""
    root = await broker.connect(reactor, f"tcp:127.0.0.1:{port}")
    pid: int = await root.call_remote("pid")
    gone: Deferred[None] = Deferred()
    root.notify_on_disconnect(lambda _ref: gone.callback(None))
    root.session.disconnect()
    await gone
    return pid


def test_two_worker_processes_share_one_port(reactor: Any, run: Any, workers: _Workers) -> None:
    fds = set(os.listdir("/proc/self/fd"))
    port = workers.start(0)
    assert workers.start(port) == port
    expected = {proc.pid for proc in workers.procs}

    async def connect_until_both_answered() -> set[int]:
        seen: set[int] = set()
        for _ in range(ATTEMPTS):
            seen.add(await _answering_pid(reactor, port))
            if seen == expected:
                break
        return seen

    assert run(reactor, connect_until_both_answered()) == expected
    # Without SO_REUSEPORT the same port is taken.
    with pytest.raises(CannotListenError):
        listen_tcp(reactor, port, Factory(), interface="127.0.0.1")
    workers.close()
    assert set(os.listdir("/proc/self/fd")) == fds


def test_reuse_port_in_endpoint_strings(reactor: Any) -> None:
    from net.endpoints import server

    assert server(reactor, "tcp:0:interface=127.0.0.1:reuse_port=1").reuse_port is True
    assert server(reactor, "tcp:0:interface=127.0.0.1").reuse_port is False
    with pytest.raises(ValueError, match="reuse_port must be an integer from 0 to 1"):
        server(reactor, "tcp:0:reuse_port=yes")
    # Two ports of our own on one address, both with the option; the second needs it too.
    first = listen_tcp(reactor, 0, Factory(), interface="127.0.0.1", reuse_port=True)
    try:
        host = first.get_host()
        assert isinstance(host, IPv4Address)
        port = host.port
        second = listen_tcp(reactor, port, Factory(), interface="127.0.0.1", reuse_port=True)
        assert second.get_host() == host
        second.stop_listening()
        with pytest.raises(CannotListenError):
            listen_tcp(reactor, port, Factory(), interface="127.0.0.1")
    finally:
        first.stop_listening()
