"""What 1,000 connections cost a pbroker server, and what it keeps after they leave.

``python -m bench.conn_memory [--reactor epoll] [--clients 1000]`` starts the fault-test server
(tests/fault_server.py) in a subprocess, reads its VmRSS, opens N connections that each do the
handshake and one call, reads VmRSS while all are open, closes them, waits until the server
has seen every close, and reads VmRSS again — then once more after the server calls glibc's
``malloc_trim(0)`` (a test hook of that server), which shows how much of what stays is the C
allocator keeping freed memory rather than Python objects still alive.
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

import broker.blocking
from broker import wire
from broker.messages import Call, Hello

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reactor", default="epoll")
    parser.add_argument("--clients", type=int, default=1000)
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fault_server.py"), args.reactor, "{}"],
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert server.stdout is not None
    port = int(server.stdout.readline().rsplit(":", 1)[1])
    stats = broker.blocking.connect(f"tcp:127.0.0.1:{port}", timeout=60)
    rows = [("start", stats.call_remote("stats"))]
    hello = wire.encode(Hello())
    call = wire.encode(Call(1, 0, "add", [1, 2], {}, 0))
    socks = []
    for _ in range(args.clients):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(hello + call)
        socks.append(sock)
    for sock in socks:
        data = b""
        while len(data) < len(hello) + 8:  # its hello and the answer [4, 1, 3]
            data += sock.recv(65536)
    rows.append((f"{args.clients} open", stats.call_remote("stats")))
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


if __name__ == "__main__":
    main()
