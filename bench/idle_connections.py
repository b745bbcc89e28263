"""10,000 idle broker connections in one server process: what each costs, and whether all answer.

``python -m bench.idle_connections --connections 10000 --reactor epoll`` raises RLIMIT_NOFILE as
far as the hard limit allows, starts the fault-test server (tests/fault_server.py) on the given
reactor, and opens the connections from one or more client processes (as many as the descriptor
limit needs, or ``--clients``). Each connection is a non-blocking raw socket speaking the wire
protocol: the hello ``broker.connect`` sends (heartbeat and decrefs, so the server keeps the
same per-connection state as for a real client) and one ``add`` call, whose answer is checked.
The clients answer the server's pings, so nobody is declared dead while held idle.

With every connection open and answered, the server's VmRSS is read (``/proc/PID/status``)
against its VmRSS before the first of them: the server's resident memory per idle connection.
Then one more call is made on every connection at once, every answer is checked, and VmRSS is
read again. The figures are printed as a table row (and as JSON with ``--json``).

Not part of ``python -m bench``: the cost curves there (bench/curves.py) already take the
connection count to 10,000 with real clients; this is the idle-memory check on its own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

from broker import wire
from broker.messages import Answer, Call, Ping, Pong

ROOT = Path(__file__).resolve().parent.parent

__all__ = ["main", "raise_fd_limit", "server_rss_kib"]

#: Connections opened at once by a client (then it waits for their answers): paces the opening
#: by the server's accept rate, so the listen backlog never overflows into SYN retries.
CONNECT_BATCH = 200
#: Descriptors a process keeps for itself beyond its connections (stdio, epoll, the listener...).
SPARE_FDS = 64


def raise_fd_limit() -> int:
    """Raise RLIMIT_NOFILE's soft limit to the hard limit (children inherit it); the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (ValueError, OSError):
            pass
    return soft


def server_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


# -- the client process: `python -m bench.idle_connections --client PORT COUNT FIRST` ------------


class _Peer:
    """One raw connection: what arrived and is not yet a whole frame, and which answer it awaits."""

    __slots__ = ("sock", "index", "pending", "hello_seen", "expect", "answered", "out")

    def __init__(self, sock: socket.socket, index: int) -> None:
        self.sock = sock
        self.index = index
        self.pending = bytearray()
        self.hello_seen = False
        self.expect: tuple[int, int] | None = None  # (request id, value) of the call in flight
        self.answered = 0
        self.out = b""  # bytes the kernel did not take yet


def _frames(peer: _Peer) -> list[bytes]:
    """The whole frames received on ``peer`` so far (taken from its pending bytes)."""
    data, frames, at = peer.pending, [], 0
    while len(data) - at >= 4:
        size = int.from_bytes(data[at : at + 4], "big")
        if len(data) - at - 4 < size:
            break
        frames.append(bytes(data[at : at + 4 + size]))
        at += 4 + size
    del data[:at]
    return frames


class _Client:
    def __init__(self, port: int, count: int, first: int) -> None:
        self.port = port
        self.count = count
        self.first = first
        self.selector = selectors.DefaultSelector()
        self.peers: list[_Peer] = []
        self.errors: list[str] = []
        self.waiting = 0  # calls in flight

    def send(self, peer: _Peer, data: bytes) -> None:
        data = peer.out + data
        try:
            sent = peer.sock.send(data)
        except BlockingIOError:
            sent = 0
        peer.out = data[sent:]
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if peer.out else 0)
        self.selector.modify(peer.sock, events, peer)

    def call(self, peer: _Peer, request_id: int, add: int) -> None:
        peer.expect = (request_id, peer.index + add)
        self.waiting += 1
        self.send(peer, wire.encode(Call(request_id, 0, "add", [peer.index, add], {}, 0)))

    def handle(self, peer: _Peer, mask: int) -> None:
        if mask & selectors.EVENT_WRITE and peer.out:
            self.send(peer, b"")
        if not mask & selectors.EVENT_READ:
            return
        try:
            data = peer.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as exc:
            data = b""
            self.errors.append(f"connection {peer.index}: {exc}")
        if not data:
            self.selector.unregister(peer.sock)
            if peer.expect is not None:
                self.waiting -= 1
            self.errors.append(f"connection {peer.index} closed by the server")
            return
        peer.pending += data
        for frame in _frames(peer):
            if not peer.hello_seen:
                peer.hello_seen = True  # the server's hello (checked by its length-prefixed shape)
                continue
            message = wire.decode(frame)
            if isinstance(message, Ping):
                self.send(peer, wire.encode(Pong(message.nonce)))
            elif isinstance(message, Answer) and peer.expect is not None:
                if (message.request_id, message.value) == peer.expect:
                    peer.answered += 1
                else:
                    self.errors.append(f"connection {peer.index}: {message!r}, expected {peer.expect}")
                peer.expect = None
                self.waiting -= 1
            else:
                self.errors.append(f"connection {peer.index}: unexpected {message!r}")

    def pump(self, until: Any, timeout: float) -> None:
        """Handle events until ``until()`` holds; TimeoutError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not until():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.waiting} calls unanswered after {timeout:.0f} s")
            for key, mask in self.selector.select(min(left, 1.0)):
                if key.data is None:
                    return  # stdin: the orchestrator said something
                self.handle(key.data, mask)

    def open_all(self, hello: bytes) -> None:
        for start in range(0, self.count, CONNECT_BATCH):
            batch = []
            for index in range(self.first + start, self.first + min(start + CONNECT_BATCH, self.count)):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setblocking(False)
                sock.connect_ex(("127.0.0.1", self.port))
                peer = _Peer(sock, index)
                self.selector.register(sock, selectors.EVENT_WRITE, peer)
                peer.out = hello  # sent once connected (writable)
                batch.append(peer)
                self.peers.append(peer)
            for peer in batch:
                peer.expect = (1, peer.index + 1)
                self.waiting += 1
                peer.out += wire.encode(Call(1, 0, "add", [peer.index, 1], {}, 0))
            self.pump(lambda: self.waiting == 0, 120.0)

    def run(self) -> None:
        hello = _client_hello()
        started = time.monotonic()
        self.open_all(hello)
        opened = sum(peer.answered for peer in self.peers)
        _emit("READY", {"connected": opened, "seconds": time.monotonic() - started, "errors": self.errors[:5]})
        self.selector.register(sys.stdin, selectors.EVENT_READ, None)
        while True:  # idle: answer pings until told to go on
            self.pump(lambda: False, 3600.0)
            command = sys.stdin.readline().strip()
            if command != "WAIT":
                break
        if command == "GO":
            started = time.monotonic()
            for peer in self.peers:
                if peer.expect is None and peer.hello_seen:
                    self.call(peer, 2, 2)
            self.pump(lambda: self.waiting == 0, 300.0)
            answered = sum(1 for peer in self.peers if peer.answered == 2)
            _emit("RESULT", {"answered": answered, "seconds": time.monotonic() - started, "errors": self.errors[:5]})
        for peer in self.peers:
            peer.sock.close()
        self.selector.close()


def _client_hello() -> bytes:
    from bench.conn_memory import client_hello

    return client_hello()


def _emit(kind: str, payload: dict[str, Any]) -> None:
    print(kind, json.dumps(payload), flush=True)


# -- the orchestrator -------------------------------------------------------------------------


def _expect(stream: IO[str], kind: str) -> dict[str, Any]:
    for line in stream:
        if line.startswith(kind + " "):
            result: dict[str, Any] = json.loads(line[len(kind) + 1 :])
            return result
    raise RuntimeError(f"a client exited before its {kind} line")


def run(connections: int, reactor: str, clients: int | None) -> dict[str, Any]:
    limit = raise_fd_limit()
    if connections + SPARE_FDS > limit:
        raise SystemExit(f"{connections} connections need {connections + SPARE_FDS} descriptors in the "
                         f"server; RLIMIT_NOFILE allows {limit} (raise the hard limit: ulimit -Hn)")
    per_client = limit - SPARE_FDS
    clients = clients or -(-connections // per_client)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fault_server.py"), reactor, "{}"],
                              stdout=subprocess.PIPE, text=True, env=env)
    procs: list[subprocess.Popen[str]] = []
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline().rsplit(":", 1)[1])
        shares = [connections // clients + (1 if i < connections % clients else 0) for i in range(clients)]
        firsts = [sum(shares[:i]) for i in range(clients)]
        # Warm the server's code paths with one connection of the same kind first, so what is
        # measured is what the next connections cost, not the first one's one-time allocations.
        warm = subprocess.run([sys.executable, "-m", "bench.idle_connections", "--client", str(port), "1", "0"],
                              input="GO\n", capture_output=True, text=True, env=env, timeout=120, check=True)
        if "RESULT" not in warm.stdout:
            raise RuntimeError(f"the warm-up client failed: {warm.stdout}{warm.stderr}")
        base = server_rss_kib(server.pid)
        started = time.monotonic()
        procs = [subprocess.Popen([sys.executable, "-m", "bench.idle_connections", "--client", str(port),
                                   str(share), str(first)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True, env=env)
                 for share, first in zip(shares, firsts)]
        ready = [_expect(p.stdout, "READY") for p in procs if p.stdout is not None]
        open_seconds = time.monotonic() - started
        connected = sum(r["connected"] for r in ready)
        idle = server_rss_kib(server.pid)
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("GO\n")
            p.stdin.flush()
        results = [_expect(p.stdout, "RESULT") for p in procs if p.stdout is not None]
        after = server_rss_kib(server.pid)
        for p in procs:
            p.wait(60)
        errors = [e for r in ready + results for e in r["errors"]]
        return {
            "reactor": reactor, "connections": connections, "clients": clients, "connected": connected,
            "answered": sum(r["answered"] for r in results),
            "open_s": round(open_seconds, 1), "call_all_s": round(max(r["seconds"] for r in results), 2),
            "rss_base_mib": round(base / 1024, 1), "rss_idle_mib": round(idle / 1024, 1),
            "rss_after_mib": round(after / 1024, 1),
            "kib_per_idle_conn": round((idle - base) / max(connected, 1), 2),
            "kib_per_conn_after_calls": round((after - base) / max(connected, 1), 2),
            "errors": errors[:5],
        }
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
        if server.stdout is not None:
            server.stdout.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--reactor", default="epoll", help="the server's reactor (select caps at ~1,000 descriptors)")
    parser.add_argument("--clients", type=int, default=None, help="client processes (default: as few as the fd limit allows)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    parser.add_argument("--client", nargs=3, type=int, metavar=("PORT", "COUNT", "FIRST"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client:
        raise_fd_limit()
        port, count, first = args.client
        _Client(port, count, first).run()
        return
    row = run(args.connections, args.reactor, args.clients)
    print("| reactor | connections | answered | server VmRSS before / idle / after MiB | KiB per idle connection "
          "| KiB per connection after a call on each | open s | call-all s |")
    print("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |")
    print(f"| {row['reactor']} | {row['connections']:,} | {row['answered']:,} | {row['rss_base_mib']} / "
          f"{row['rss_idle_mib']} / {row['rss_after_mib']} | {row['kib_per_idle_conn']} | "
          f"{row['kib_per_conn_after_calls']} | {row['open_s']} | {row['call_all_s']} |")
    if row["errors"]:
        print("errors:", *row["errors"], sep="\n  ")
    if args.json:
        print(json.dumps(row))
    if row["answered"] != row["connections"]:
        raise SystemExit(f"only {row['answered']} of {row['connections']} connections answered")


if __name__ == "__main__":
    main()
