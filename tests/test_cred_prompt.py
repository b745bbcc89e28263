"""cred.prompt.read_password as a client program meets it: in a child process, with the password
in the environment, on a pipe, or typed on a real terminal (a pty that is the child's controlling
terminal, so getpass asks on it with echo off)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHILD = "from cred.prompt import read_password; print(repr(read_password('alice')))"
DEADLINE = 30.0  # a guard against a hang, not a synchronisation


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PBROKER_PASSWORD"}
    return {**env, "PYTHONPATH": str(ROOT), **extra}


def run_child(stdin: str, **env: str) -> str:
    done = subprocess.run([sys.executable, "-c", CHILD], input=stdin, env=child_env(**env),
                          capture_output=True, text=True, timeout=DEADLINE)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_environment_wins_even_when_empty() -> None:
    assert run_child("from-stdin\n", PBROKER_PASSWORD="from env") == "'from env'\n"
    assert run_child("from-stdin\n", PBROKER_PASSWORD="") == "''\n"


def test_one_line_of_a_pipe() -> None:
    assert run_child("s3cret ✓\nsecond line\n") == "'s3cret ✓'\n"
    assert run_child("no newline") == "'no newline'\n"
    assert run_child("") == "''\n"  # end of input: an empty password, which no login accepts


def _read_until(fd: int, wanted: bytes | None) -> bytes:
    """What the pty says until ``wanted`` appears (None: until the child has closed it)."""
    seen = b""
    end = time.monotonic() + DEADLINE
    while wanted is None or wanted not in seen:
        ready, _, _ = select.select([fd], [], [], max(0.0, end - time.monotonic()))
        assert ready, f"the child said only {seen!r}"
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child has exited and the pty's other side is closed
            chunk = b""
        if not chunk:
            assert wanted is None, f"the child ended having said only {seen!r}"
            return seen
        seen += chunk
    return seen


def test_asked_on_the_terminal_without_echo() -> None:
    fds_before = set(os.listdir("/proc/self/fd"))
    pid, master = pty.fork()
    if pid == 0:  # the child: the pty is its stdin, stdout and controlling terminal
        try:
            os.execve(sys.executable, [sys.executable, "-c", CHILD], child_env())
        finally:
            os._exit(127)
    try:
        prompt = _read_until(master, b"password for alice: ")
        os.write(master, b"typed secret\n")
        rest = _read_until(master, None)
    finally:
        os.close(master)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, prompt + rest
    assert "'typed secret'" in rest.decode()
    assert (prompt + rest).count(b"typed secret") == 1  # echo was off: only the child's repr shows it
    assert set(os.listdir("/proc/self/fd")) == fds_before
