"""A length header costs the server nothing until the bytes it announces arrive (issue 12).

A real server in a subprocess, on loopback; sixteen raw peers each send a hello and then only the
4-byte header of a frame announcing ~16 MiB (and a byte of it). The server's resident memory is
measured (``VmRSS`` from its ``/proc/self/status``), not timed: before the fix each such peer
cost 16 MiB, zero-filled and held for as long as the connection stayed open.
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import broker.blocking
from broker.wire import DEFAULT_MAX_FRAME_SIZE, WireDecoder, encode
from net.reactor import available_reactors

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")

MIB = 1024 * 1024
PEERS = 16

SERVER = textwrap.dedent(
    """
    import sys

    import broker
    from broker.flavors import Root
    from broker.session import State
    from net.reactor import make_reactor


    def rss_kib():
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")


    class Server(Root):
        def __init__(self):
            self.sessions = []

        def root_object(self, caller):
            self.sessions.append(caller)
            return self

        def remote_echo(self, value):
            return value

        def remote_stats(self):
            buffered = [s._decoder.buffered for s in self.sessions if s.state is not State.CLOSED]
            return {"rss_kib": rss_kib(), "buffered": buffered}


    reactor = make_reactor()
    listening = broker.serve(reactor, "tcp:0:interface=127.0.0.1", Server())
    listening.add_callback(lambda port: print(port.get_host().port, flush=True))
    reactor.run()
    """
)


def server_backends() -> list[str]:
    names = available_reactors()
    return [name for name in ("epoll", "select", "asyncio") if name in names][:1] + ["asyncio"]


@pytest.fixture(params=server_backends())
def server_port(request: Any) -> Iterator[int]:
    env = dict(os.environ, PBROKER_REACTOR=request.param)
    proc = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip().isdigit(), f"the server did not start: {line!r}"
        yield int(line)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()


def wait_for(stats: Callable[[], dict[str, Any]], condition: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Ask the server (one round trip each) until what it reports satisfies ``condition``."""
    for _ in range(10_000):
        report = stats()
        if condition(report):
            return report
    raise AssertionError(f"the server never got there: {report}")


def test_sixteen_promised_frames_cost_the_server_next_to_nothing(server_port: int) -> None:
    with broker.blocking.connect(f"tcp:127.0.0.1:{server_port}") as root:
        blob = os.urandom(MIB)
        assert root.call_remote("echo", blob) == blob  # warm up the big-frame path first

        def stats() -> dict[str, Any]:
            report: dict[str, Any] = root.call_remote("stats")
            return report

        before = stats()["rss_kib"]
        hello = encode(WireDecoder().hello())
        header = struct.pack(">I", DEFAULT_MAX_FRAME_SIZE - 8)  # a legal frame, ~16 MiB
        peers = [socket.create_connection(("127.0.0.1", server_port)) for _ in range(PEERS)]
        try:
            for peer in peers:
                peer.sendall(hello + header)
            wait_for(stats, lambda r: r["buffered"].count(4) == PEERS)  # each holds a header
            for peer in peers:  # and then a byte of the body, read after the header
                peer.sendall(b"\x93")
            after = wait_for(stats, lambda r: r["buffered"].count(5) == PEERS)["rss_kib"]
            growth = (after - before) * 1024
            assert growth < 32 * MIB, f"{PEERS} promised frames cost the server {growth / MIB:.0f} MiB"
            # Meanwhile ordinary clients are served as before, big values included.
            assert root.call_remote("echo", blob) == blob
            with broker.blocking.connect(f"tcp:127.0.0.1:{server_port}") as other:
                assert other.call_remote("echo", "hello") == "hello"
        finally:
            for peer in peers:
                peer.close()
