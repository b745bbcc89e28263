"""``pbroker serve --daemon`` and ``--pidfile``: the starting process returns once the daemon serves
(exit 0, its "listening on" lines relayed), the pidfile holds the daemon's pid (written after the
forks), a stale pidfile is replaced, a live one refused (exit 75, naming its pid); SIGTERM to the
daemon stops it and removes the pidfile. Also net.pidfile on its own.

The daemon is not our child (it was double-forked away): we wait for it through a pidfd.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from runner_helpers import LISTENING, TIMEOUT, alive, run_pbroker, wait_gone

import broker.blocking
from net.pidfile import Pidfile, PidfileInUse, read_pid

ROOT_ARGS = ["serve", "examples.served_app:root", "--listen", "tcp:0:interface=127.0.0.1"]


class Daemons:
    """Daemons started by a test; each stopped (SIGTERM, then waited for) at the end."""

    def __init__(self) -> None:
        self.pids: list[int] = []

    def start(self, tmp_path: Path, pidfile: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], int | None]:
        result = run_pbroker([*ROOT_ARGS, "--daemon", "--pidfile", str(pidfile),
                              "--logfile", str(tmp_path / "daemon.log"), *extra])
        pid = read_pid(str(pidfile)) if result.returncode == 0 else None
        if pid is not None:
            self.pids.append(pid)
        return result, pid

    def stop(self, pid: int) -> None:
        os.kill(pid, signal.SIGTERM)
        wait_gone(pid)
        self.pids.remove(pid)

    def close(self) -> None:
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            wait_gone(pid)


@pytest.fixture
def daemons() -> Iterator[Daemons]:
    d = Daemons()
    try:
        yield d
    finally:
        d.close()


def endpoint_of(stdout: str) -> str:
    for line in stdout.splitlines():
        m = LISTENING.match(line)
        if m:
            return m.group(3)
    raise AssertionError(f"no 'listening on' line in {stdout!r}")


def test_daemon_returns_once_serving_writes_its_pid_and_stops_on_sigterm(tmp_path: Path, daemons: Daemons) -> None:
    pidfile = tmp_path / "app.pid"
    result, pid = daemons.start(tmp_path, pidfile)
    assert result.returncode == 0, result.stderr
    assert pid is not None and alive(pid)
    endpoint = endpoint_of(result.stdout)
    with broker.blocking.connect(endpoint, timeout=TIMEOUT) as root:
        assert root.call_remote("pid") == pid  # the pidfile names the daemon, not a parent
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    session, tty = int(fields[3]), int(fields[4])
    assert session != pid and session != os.getsid(0) and tty == 0  # setsid, then forked again: no tty
    assert os.readlink(f"/proc/{pid}/fd/0") == os.devnull and os.readlink(f"/proc/{pid}/cwd") == "/"
    daemons.stop(pid)
    assert not pidfile.exists()  # removed on a clean stop
    assert "stopped" in (tmp_path / "daemon.log").read_text()


def test_a_live_pidfile_is_refused_naming_its_pid(tmp_path: Path, daemons: Daemons) -> None:
    pidfile = tmp_path / "app.pid"
    first, pid = daemons.start(tmp_path, pidfile)
    assert first.returncode == 0 and pid is not None
    second, _ = daemons.start(tmp_path, pidfile)
    assert second.returncode == 75
    assert f"held by process {pid}, which is running" in second.stderr
    assert read_pid(str(pidfile)) == pid  # left as it was
    without_daemon = run_pbroker([*ROOT_ARGS, "--pidfile", str(pidfile)])
    assert without_daemon.returncode == 75 and str(pid) in without_daemon.stderr
    daemons.stop(pid)


def test_a_stale_pidfile_is_replaced(tmp_path: Path, daemons: Daemons) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer runs (reaped)
    pidfile = tmp_path / "app.pid"
    pidfile.write_text(f"{dead.pid}\n")
    result, pid = daemons.start(tmp_path, pidfile)
    assert result.returncode == 0, result.stderr
    assert pid is not None and pid != dead.pid
    assert f"named process {dead.pid}, which no longer holds it" in (tmp_path / "daemon.log").read_text()
    daemons.stop(pid)


def test_a_pidfile_naming_a_live_process_that_does_not_hold_it_is_stale(tmp_path: Path, daemons: Daemons) -> None:
    """After a crash and a reboot its number may be some other process's: only the lock counts."""
    pidfile = tmp_path / "app.pid"
    pidfile.write_text(f"{os.getpid()}\n")  # alive, but holds no lock on it
    result, pid = daemons.start(tmp_path, pidfile)
    assert result.returncode == 0, result.stderr
    assert pid is not None and pid != os.getpid()
    daemons.stop(pid)


def test_a_daemon_that_cannot_start_says_why_through_its_starter(tmp_path: Path, daemons: Daemons) -> None:
    result, _ = daemons.start(tmp_path, tmp_path / "app.pid", "--listen", "tcp:1:interface=203.0.113.1")
    assert result.returncode == 75  # 203.0.113.1 (TEST-NET-3) is no address of ours: cannot listen
    assert "could not start" in result.stderr
    assert not (tmp_path / "app.pid").exists()


# -- net.pidfile itself ---------------------------------------------------------------------------


def test_pidfile_in_process(tmp_path: Path) -> None:
    path = str(tmp_path / "x.pid")
    first = Pidfile(path)
    first.acquire()
    assert read_pid(path) == os.getpid()
    with pytest.raises(PidfileInUse, match=f"held by process {os.getpid()}"):
        Pidfile(path).acquire()
    first.release()
    first.release()  # idempotent
    assert not os.path.exists(path)
    again = Pidfile(path)
    again.acquire(pid=12345)
    assert read_pid(path) == 12345
    again.release()
