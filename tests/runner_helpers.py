"""Running ``python -m broker serve`` in a subprocess for the runner tests: waiting on its output
lines (never sleeping), and always killing and reaping it."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LISTENING = re.compile(r"^pbroker\[(\d+)\](?: worker (\d+))?: listening on (tcp:[\d.]+:\d+|unix:\S+)$")
TIMEOUT = 30.0


class LineReader:
    """Lines from a pipe, read with a deadline (select on the raw fd: no buffered-read surprises)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = b""
        self.seen: list[str] = []

    def readline(self, timeout: float = TIMEOUT) -> str | None:
        """The next line, or None at end of file; TimeoutError if none comes within ``timeout``."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no line within {timeout} s; so far: {self.seen[-10:]} {self.buffer!r}")
            readable, _, _ = select.select([self.fd], [], [], left)
            if readable:
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    if self.buffer:
                        line, self.buffer = self.buffer, b""
                        return self._keep(line)
                    return None
                self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return self._keep(line)

    def _keep(self, raw: bytes) -> str:
        line = raw.decode("utf-8", "replace")
        self.seen.append(line)
        return line

    def until(self, pattern: str, timeout: float = TIMEOUT) -> re.Match[str]:
        """Read lines until one matches ``pattern`` (a regex searched in each line)."""
        regex = re.compile(pattern)
        while True:
            line = self.readline(timeout)
            if line is None:
                raise EOFError(f"the output ended before a line matching {pattern!r}: {self.seen[-20:]}")
            match = regex.search(line)
            if match:
                return match


class Server:
    """``python -m broker serve ARGS`` with stdout piped (for its lines) and stderr to a file."""

    def __init__(self, args: list[str], tmp_path: Path, *, env: dict[str, str] | None = None) -> None:
        self.stderr_path = tmp_path / f"stderr-{len(list(tmp_path.glob('stderr-*')))}.txt"
        self.stderr = open(self.stderr_path, "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen([sys.executable, "-m", "broker", "serve", *args], cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=self.stderr,
                                     env=dict(os.environ, **(env or {})))
        assert self.proc.stdout is not None
        self.out = LineReader(self.proc.stdout.fileno())
        self.endpoints: list[str] = []
        self.pids: dict[int, str] = {}

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_serving(self, pattern: str = r": serving ") -> re.Match[str]:
        """Collect "listening on" lines until the one matching ``pattern``."""
        while True:
            line = self.out.readline()
            if line is None:
                raise EOFError(f"the server exited before serving (status {self.proc.wait()}): "
                               f"{self.out.seen} {self.stderr_text()}")
            m = LISTENING.match(line)
            if m:
                self.endpoints.append(m.group(3))
                self.pids[int(m.group(1))] = m.group(3)
            found = re.search(pattern, line)
            if found:
                return found

    @property
    def tcp(self) -> str:
        return next(e for e in self.endpoints if e.startswith("tcp:"))

    def stderr_text(self) -> str:
        self.stderr.flush()
        return self.stderr_path.read_text(errors="replace")

    def send(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self, signum: int = signal.SIGTERM) -> int:
        self.proc.send_signal(signum)
        return self.proc.wait(TIMEOUT)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self.stderr.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def run_pbroker(args: list[str], *, env: dict[str, str] | None = None, timeout: float = TIMEOUT,
                cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """``python -m broker ARGS`` to completion (for usage errors and --daemon's starting process)."""
    return subprocess.run([sys.executable, "-m", "broker", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ, **(env or {})))


def wait_gone(pid: int, timeout: float = TIMEOUT) -> None:
    """Wait for a process that is not our child (a daemon) to exit: its pidfd becomes readable."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        readable, _, _ = select.select([fd], [], [], timeout)
        if not readable:
            raise TimeoutError(f"process {pid} did not exit within {timeout} s")
    finally:
        os.close(fd)


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False
