"""``pbroker serve --workers 2``: two processes on one TCP port (SO_REUSEPORT), both serving
(their pids counted in answers), a killed worker restarted (a new pid answers), SIGTERM to the
supervisor stops them all (exit 0, every worker reaped by it), SIGHUP passed on; sd_notify from
the supervisor for all. Connections are new each time, so the kernel hashes a new source port:
with two listeners, 64 connections all landing on one has probability 2**-63.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from pathlib import Path

import pytest
from runner_helpers import LISTENING, TIMEOUT, Server, alive

import broker.blocking

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the kernel spreads SO_REUSEPORT connections over listeners on Linux")

ATTEMPTS = 64


def pids_answering(endpoint: str, want: set[int]) -> set[int]:
    """Connect anew until every pid of ``want`` has answered (or ATTEMPTS are used up)."""
    seen: set[int] = set()
    for _ in range(ATTEMPTS):
        with broker.blocking.connect(endpoint, timeout=TIMEOUT) as root:
            seen.add(root.call_remote("pid"))
        if want <= seen:
            break
    return seen


def read_worker_lines(server: Server, count: int) -> dict[int, str]:
    """The next ``count`` workers' "listening on" lines: pid -> endpoint."""
    found: dict[int, str] = {}
    while len(found) < count:
        line = server.out.readline()
        assert line is not None, f"the supervisor's output ended: {server.out.seen} {server.stderr_text()}"
        m = LISTENING.match(line)
        if m and m.group(2) is not None:
            found[int(m.group(1))] = m.group(3)
    return found


def test_two_workers_share_one_port_and_a_killed_one_is_restarted(tmp_path: Path) -> None:
    notify_path = str(tmp_path / "notify.sock")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    notify.settimeout(TIMEOUT)
    logfile = tmp_path / "app.log"
    try:
        with Server(["examples.served_app:root", "--listen", "tcp:0:interface=127.0.0.1", "--workers", "2",
                     "--logfile", str(logfile)], tmp_path, env={"NOTIFY_SOCKET": notify_path}) as server:
            workers = read_worker_lines(server, 2)
            server.out.until(r"2 workers serving on tcp:\d+:interface=127\.0\.0\.1:reuse_port=1")
            ready = notify.recv(4096).decode().splitlines()  # from the supervisor, once both serve
            assert "READY=1" in ready and f"MAINPID={server.pid}" in ready
            (endpoint,) = set(workers.values())  # one port for both
            assert server.pid not in workers
            assert pids_answering(endpoint, set(workers)) == set(workers)  # both serve

            victim = min(workers)
            os.kill(victim, signal.SIGKILL)
            (new_pid, new_endpoint), = read_worker_lines(server, 1).items()  # restarted, same port
            assert new_endpoint == endpoint and new_pid not in workers
            survivors = set(workers) - {victim} | {new_pid}
            assert pids_answering(endpoint, survivors) == survivors

            server.send(signal.SIGHUP)  # passed on: each worker reopens its own log file
            assert server.stop() == 0
            assert notify.recv(4096).decode() == "STOPPING=1"
            assert not any(alive(pid) for pid in survivors)  # reaped by the supervisor before it exited
        supervisor_log = logfile.read_text()
        assert f"(pid {victim}) was killed by SIGKILL; restarting it" in supervisor_log
        for index in (0, 1):  # a log file per worker: two processes never rotate one file
            assert "stopped" in (tmp_path / f"app.worker{index}.log").read_text()
    finally:
        notify.close()


def test_a_worker_that_cannot_start_makes_the_supervisor_give_up(tmp_path: Path) -> None:
    with Server(["examples.served_app:Served.tick", "--listen", "tcp:0:interface=127.0.0.1", "--workers", "2",
                 "--logfile", str(tmp_path / "app.log")], tmp_path) as server:
        assert server.proc.wait(TIMEOUT * 2) == 1
    text = (tmp_path / "app.log").read_text()
    assert "died 5 times in a row before it served: giving up" in text
