"""Faults a hostile or broken peer causes, against a real server in a subprocess, on every backend.

Each test runs ``tests/fault_server.py`` on loopback and a misbehaving peer on a raw socket, and
checks that the peer is dealt with (dropped, paused, or quietly ignored), that memory stays
bounded (the server's ``VmRSS``, measured, not timed), and that another client is served all the
while. Waiting is done by round trips to the server or by blocking reads with a generous
safety-net timeout, never by sleeping.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import broker.blocking
from broker import wire
from broker.messages import Answer, Call, Decref, Goodbye, Hello
from net.reactor import available_reactors

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")

HERE = Path(__file__).resolve().parent
MIB = 1024 * 1024
SAFETY = 60.0  # seconds a blocking read may wait before the test fails: a net, not a measure


class Server:
    def __init__(self, backend: str, limits: dict[str, Any]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "fault_server.py"), backend, json.dumps(limits)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": str(HERE.parent)},
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line.startswith("listening on "), line + self.stop()
        self.port = int(line.rsplit(":", 1)[1])
        self.client = broker.blocking.connect(f"tcp:127.0.0.1:{self.port}", timeout=SAFETY)

    def stats(self) -> dict[str, int]:
        result: dict[str, int] = self.client.call_remote("stats")
        return result

    def wait_until(self, condition: Callable[[dict[str, int]], bool], what: str) -> dict[str, int]:
        """Round trips until the server's stats satisfy ``condition`` (bounded in count)."""
        for _ in range(200_000):
            stats = self.stats()
            if condition(stats):
                return stats
        raise AssertionError(f"the server never got to: {what}; last stats {stats}")

    def stop(self) -> str:
        """Stop the server; its stderr (the log)."""
        try:
            self.client.close()
        except Exception:
            pass
        self.process.send_signal(signal.SIGTERM)
        try:
            _, err = self.process.communicate(timeout=SAFETY)
        except subprocess.TimeoutExpired:
            # Seen once in ~60 runs (select backend, after a raw peer's big call), not reproduced
            # since: dump where it is (faulthandler) and kill it. Clean SIGTERM exits are what
            # tests/test_examples.py and tests/test_react.py assert; here it is only teardown.
            self.process.send_signal(signal.SIGUSR1)
            try:
                _, err = self.process.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                _, err = self.process.communicate(timeout=SAFETY)
            warnings.warn(f"fault_server did not stop on SIGTERM within {SAFETY} s:\n{err[-6000:]}")
        return err


@pytest.fixture(params=available_reactors())
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def start(backend: str) -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def start(**limits: Any) -> Server:
        server = Server(backend, limits)
        servers.append(server)
        return server

    yield start
    for server in servers:
        if server.process.poll() is None:
            server.stop()


def raw_peer(server: Server, *, rcvbuf: int | None = None) -> socket.socket:
    """A connected socket that has said hello (and read the server's)."""
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(SAFETY)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(wire.encode(Hello()))
    return sock


def read_until_closed(sock: socket.socket) -> list[Any]:
    """Every message the server sent until it closed the connection (a reset counts as closed)."""
    data = bytearray()
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    decoder = wire.WireDecoder(max_frame_size=2**32 - 1, resolve=lambda value: value)
    decoder.receive_data(bytes(data))
    return list(decoder.messages())


def next_answer(sock: socket.socket) -> Any:
    """Read until the first message after the server's hello arrives; return it."""
    decoder = wire.WireDecoder(max_frame_size=2**32 - 1, resolve=lambda value: value)
    while True:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection"
        decoder.receive_data(chunk)
        messages = [m for m in decoder.messages() if not isinstance(m, Hello)]
        if messages:
            return messages[0]


def goodbye_of(messages: list[Any]) -> Goodbye:
    goodbyes = [m for m in messages if isinstance(m, Goodbye)]
    assert goodbyes and messages[-1] is goodbyes[-1], messages
    return goodbyes[-1]


def test_a_peer_that_never_reads_answers_cannot_grow_the_server(start: Callable[..., Server]) -> None:
    server = start()
    before = server.stats()["rss_kib"]
    sock = raw_peer(server, rcvbuf=4096)
    sock.setblocking(False)
    # 100k calls returning 10 KiB each: ~1 GiB if the server kept every answer.
    calls = b"".join(wire.encode(Call(i, 0, "blob", [10 * 1024], {}, 0)) for i in range(1, 100_001))
    sent = 0
    while sent < len(calls):
        try:
            sent += sock.send(calls[sent : sent + 65536])
        except BlockingIOError:
            # Still not writable after a while: the server stopped reading from us.
            if not select.select([], [sock], [], 2.0)[1]:
                break
    after = server.wait_until(lambda s: True, "answer")  # another client is served meanwhile
    # The server read calls only while its answers were taken: a few hundred, not 100,000.
    assert after["blobs"] < 5_000, after
    assert after["rss_kib"] - before < 64 * 1024, (before, after)
    sock.close()
    server.wait_until(lambda s: s["open"] == 1, "forget the peer")


def test_a_frame_that_never_completes_is_dropped(start: Callable[..., Server]) -> None:
    server = start(frame_timeout=1.0)
    peers = [raw_peer(server) for _ in range(10)]
    for sock in peers:
        sock.sendall(struct.pack(">I", 1000) + b"\x97")  # a frame starts, and stalls
    assert server.stats()["open"] >= 1  # the stats client is served while the frames stall
    for sock in peers:
        goodbye = goodbye_of(read_until_closed(sock))
        assert goodbye.kind == "invalid" and "not completed within 1.0 s" in goodbye.message
    server.wait_until(lambda s: s["open"] == 1, "forget the stalled peers")


def test_an_idle_peer_is_dropped_only_when_asked(start: Callable[..., Server]) -> None:
    server = start(idle_timeout=0.5)
    sock = raw_peer(server)
    goodbye = goodbye_of(read_until_closed(sock))
    assert goodbye.kind == "normal" and "idle_timeout" in goodbye.message


def test_a_peer_holding_our_output_too_long_is_disconnected(start: Callable[..., Server]) -> None:
    server = start(output_high_water=64 * 1024, max_unsent_bytes=MIB, overload_timeout=0.5)
    sock = raw_peer(server, rcvbuf=4096)
    sock.sendall(b"".join(wire.encode(Call(i, 0, "blob", [4 * MIB], {}, 0)) for i in range(1, 4)))
    server.wait_until(lambda s: s["open"] == 1, "drop the peer that does not read")
    sock.close()
    assert "took none of our last" in server.stop()


def test_bogus_decrefs_cost_a_few_log_lines(start: Callable[..., Server]) -> None:
    server = start()
    sock = raw_peer(server)
    sock.sendall(b"".join(wire.encode(Decref(7 + i % 5, 1)) for i in range(20_000)))
    sock.sendall(wire.encode(Call(1, 0, "add", [1, 2], {}, 0)))
    assert next_answer(sock) == Answer(1, 3)  # the connection works, answers in order
    sock.close()
    server.wait_until(lambda s: s["open"] == 1, "forget the peer")
    log = server.stop()
    lines = [line for line in log.splitlines() if "does not hold" in line or "bogus decref" in line]
    assert 3 <= len(lines) <= 10, log[-2000:]
    assert "20000" in log or "times so far" in log


KILLED_CLIENT = textwrap.dedent(
    """
    import sys
    import broker.blocking
    conn = broker.blocking.connect(f"tcp:127.0.0.1:{sys.argv[1]}")
    conn.call_remote_no_answer("hang")
    print(conn.call_remote("add", 1, 2), flush=True)
    conn.call_remote("hang")
    """
)


def test_a_client_killed_mid_call_is_forgotten(start: Callable[..., Server]) -> None:
    server = start()
    child = subprocess.Popen([sys.executable, "-c", KILLED_CLIENT, str(server.port)],
                             stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(HERE.parent)})
    assert child.stdout is not None
    assert child.stdout.readline() == "3\n"
    server.wait_until(lambda s: s["hanging"] == 2, "run both hanging calls")
    child.send_signal(signal.SIGKILL)
    child.wait(SAFETY)
    stats = server.wait_until(lambda s: s["open"] == 1, "forget the killed client")
    assert stats["cancelled"] == 2 and stats["hanging"] == 0  # the one-way call too


def test_a_stopped_server_fails_pending_calls_by_the_heartbeat(start: Callable[..., Server]) -> None:
    """SIGSTOP: the server's socket stays open but nothing answers (a half-open connection)."""
    server = start()
    with broker.blocking.connect(f"tcp:127.0.0.1:{server.port}", timeout=SAFETY,
                                 limits=broker.Limits(dead_after=1.0)) as root:
        assert root.call_remote("add", 1, 2) == 3
        server.process.send_signal(signal.SIGSTOP)
        try:
            with pytest.raises(broker.ConnectionLost, match="stopped answering") as lost:
                root.call_remote("hang")  # without the heartbeat: pending until the 60 s timeout
            assert lost.value.cause == "timeout"
        finally:
            server.process.send_signal(signal.SIGCONT)


ASYNCIO_CLIENT = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    import broker, broker.aio

    async def main():
        async with broker.aio.connect(f"tcp:127.0.0.1:{sys.argv[1]}", limits=broker.Limits(dead_after=1.0)) as root:
            assert await root.call_remote("add", 1, 2) == 3
            os.kill(int(sys.argv[2]), signal.SIGSTOP)
            try:
                await root.call_remote("hang")
            except broker.ConnectionLost as exc:
                print("lost:", exc, flush=True)
            finally:
                os.kill(int(sys.argv[2]), signal.SIGCONT)

    asyncio.run(main())
    """
)


def test_a_stopped_server_fails_pending_asyncio_calls(start: Callable[..., Server]) -> None:
    server = start()
    out = subprocess.run([sys.executable, "-c", ASYNCIO_CLIENT, str(server.port), str(server.process.pid)],
                         capture_output=True, text=True, timeout=SAFETY,
                         env={**os.environ, "PYTHONPATH": str(HERE.parent)})
    assert "lost:" in out.stdout and "stopped answering" in out.stdout, out.stdout + out.stderr


def test_an_expensive_frame_is_refused_cheaply(start: Callable[..., Server]) -> None:
    """15 million empty arrays in one 15 MiB frame: seconds and a gigabyte to decode, before the
    per-frame limits (PROTOCOL.md §8); now refused part-way, the server unmoved."""
    server = start()
    before = server.stats()["rss_kib"]
    sock = raw_peer(server)
    million = b"\xdd" + struct.pack(">I", 1_000_000) + b"\x90" * 1_000_000  # within max_container_length
    args = b"\x9f" + million * 15  # 15 arrays of a million empty arrays each
    body = b"\x97\x03\x01\x00\xa3add" + args + b"\x80\x00"
    sock.sendall(struct.pack(">I", len(body)) + body)
    goodbye = goodbye_of(read_until_closed(sock))
    assert goodbye.kind == "invalid" and "the frame holds more than" in goodbye.message, goodbye
    after = server.stats()  # served all the while, and afterwards
    assert after["rss_kib"] - before < 64 * 1024, (before, after)


def test_a_frame_at_the_limits_is_served(start: Callable[..., Server]) -> None:
    server = start()
    sock = raw_peer(server)
    sock.sendall(wire.encode(Call(1, 0, "add", [[[]] * 30_000, []], {}, 0)))  # list concatenation
    answer = next_answer(sock)
    assert isinstance(answer, Answer) and len(answer.value) == 30_000
