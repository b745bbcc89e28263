"""What 1,000 connections cost a pbroker server, and what it keeps after they leave.

``python -m bench.conn_memory [--reactor epoll] [--clients 1000] [--trace N]`` starts the
fault-test server (tests/fault_server.py) in a subprocess, reads its VmRSS, opens N connections
that each do the handshake (the hello ``broker.connect`` sends, so the server negotiates the same
features: heartbeat, decrefs) and one call, reads VmRSS while all are open and idle, closes them,
waits until the server has seen every close, and reads VmRSS again — then once more after the
server calls glibc's ``malloc_trim(0)`` (a test hook of that server), which shows how much of
what stays is the C allocator keeping freed memory rather than Python objects still alive.

With ``--trace N`` the server also traces its allocations (tracemalloc, started just before the
connections open) and the N biggest groups by traceback of what the idle connections hold are
printed, per connection: where the bytes of one idle connection go. Tracing costs memory of its
own, so the VmRSS figures of a traced run are not comparable with an untraced one.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import broker.blocking
from broker import wire
from broker.messages import FEATURE_DECREFS, FEATURE_HEARTBEAT, Call

ROOT = Path(__file__).resolve().parent.parent

__all__ = ["client_hello", "main"]


def client_hello() -> bytes:
    """The hello frame ``broker.connect`` sends (our limits, heartbeat and decrefs)."""
    return wire.encode(wire.WireDecoder(features=(FEATURE_HEARTBEAT, FEATURE_DECREFS)).hello())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reactor", default="epoll")
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--trace", type=int, default=0, metavar="N",
                        help="print the N biggest allocation sites of the idle connections (tracemalloc)")
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fault_server.py"), args.reactor, "{}"],
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert server.stdout is not None
    port = int(server.stdout.readline().rsplit(":", 1)[1])
    stats = broker.blocking.connect(f"tcp:127.0.0.1:{port}", timeout=60)
    stats.call_remote("add", 1, 2)  # the stats connection's own first-call allocations are done
    if args.trace:
        stats.call_remote("trace_start")
    rows = [("start", stats.call_remote("stats"))]
    hello = client_hello()
    call = wire.encode(Call(1, 0, "add", [1, 2], {}, 0))
    socks = []
    for _ in range(args.clients):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(hello + call)
        socks.append(sock)
    for sock in socks:
        data = b""
        while not data.endswith(b"\x93\x04\x01\x03"):  # after its hello, the answer [4, 1, 3]
            data += sock.recv(65536)
    rows.append((f"{args.clients} open", stats.call_remote("stats")))
    traced: dict[str, Any] | None = stats.call_remote("trace_top", args.trace) if args.trace else None
    for sock in socks:
        sock.close()
    while stats.call_remote("stats")["open"] > 1:
        pass
    rows.append(("all closed", stats.call_remote("stats")))
    rows.append(("after malloc_trim(0)", stats.call_remote("trim")))
    stats.close()
    server.send_signal(signal.SIGTERM)
    server.wait(60)
    print(f"| moment ({args.reactor}) | VmRSS MiB | per connection KiB |")
    print("| --- | ---: | ---: |")
    base = rows[0][1]["rss_kib"]
    for name, row in rows:
        per = (row["rss_kib"] - base) / args.clients
        print(f"| {name} | {row['rss_kib'] / 1024:.1f} | {per:.1f} |")
    print(json.dumps({name: row["rss_kib"] for name, row in rows}))
    if traced is not None:
        total, blocks = traced["total"]
        print(f"\ntraced: {total / args.clients:.0f} B in {blocks / args.clients:.1f} blocks per connection")
        print("\n| B per connection | blocks | allocated at | called from |")
        print("| ---: | ---: | --- | --- |")
        for size, count, site, caller in traced["sites"]:
            print(f"| {size / args.clients:.0f} | {count / args.clients:.1f} | `{site}` | `{caller}` |")

if __name__ == "__main__":
    main()
