"""``net.react``: real child processes on every reactor backend, and in-process exit codes.

The child is ``PROGRAM`` below, run as ``python program.py MODE [ARGS...]`` with ``PBROKER_REACTOR``
set. Tests that signal it wait for the line it prints once the reactor runs (never a sleep).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from net.defer import Deferred, fail, succeed
from net.react import EXIT_SIGINT, react
from net.reactor import available_reactors

ROOT = Path(__file__).resolve().parent.parent

PROGRAM = r'''
import sys

import net
from net.defer import Deferred, fail


def later(reactor, value, error=None):
    """A Deferred that fires from the running reactor (so: after run())."""
    d = Deferred()
    if error is None:
        reactor.call_later(0, d.callback, value)
    else:
        reactor.call_later(0, d.errback, error)
    return d


async def coroutine_ok(reactor, *args):
    value = await later(reactor, 42)
    print("coroutine result", value, "args", list(args), flush=True)
    return value


def deferred_ok(reactor):
    d = later(reactor, 7)
    d.add_callback(lambda v: print("deferred result", v, flush=True))
    return d


def plain_ok(reactor):
    print("plain value, no reactor needed", flush=True)
    return "done"


def raise_before_run(reactor):
    raise ValueError("broken before the reactor ran")


def failed_deferred_before_run(reactor):
    return fail(KeyError("already failed"))


async def coroutine_fails_before_run(reactor):
    raise RuntimeError("the coroutine failed at once")


async def coroutine_fails_after_run(reactor):
    await later(reactor, None)
    print("running, about to fail", flush=True)
    raise ZeroDivisionError("failed while running")


def deferred_fails_after_run(reactor):
    return later(reactor, None, LookupError("the Deferred failed while running"))


def exits_3(reactor):
    sys.exit(3)


def stops_itself(reactor):
    reactor.call_later(0, reactor.stop)
    return Deferred()  # never fires: the reactor stopping is the end


async def forever(reactor):
    reactor.add_system_event_trigger("before", "shutdown", print, "shutdown trigger ran", flush=True)
    started = Deferred()
    reactor.call_when_running(started.callback, None)
    await started
    print("ready", flush=True)
    try:
        await Deferred()  # until a signal stops the reactor
    finally:
        print("main cleaned up", flush=True)


async def ready_before_running(reactor):
    # A server's main: it listens and says so before the reactor runs (serve() needs no loop
    # turn), so a harness may send SIGTERM before run() has installed the reactor's handlers.
    reactor.add_system_event_trigger("before", "shutdown", print, "shutdown trigger ran", flush=True)
    print("ready", flush=True)
    sys.stdin.readline()  # the test has sent its signal: now let the reactor run
    try:
        await Deferred()
    finally:
        print("main cleaned up", flush=True)


mode, *args = sys.argv[1:]
net.react(globals()[mode], args)
'''


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("react") / "program.py"
    path.write_text(PROGRAM)
    return path


@pytest.fixture(params=available_reactors())
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _env(backend: str) -> dict[str, str]:
    return {**os.environ, "PBROKER_REACTOR": backend, "PYTHONPATH": str(ROOT)}


def run(program: Path, backend: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(program), *args],
        env=_env(backend), capture_output=True, text=True, timeout=60,
    )


@pytest.mark.parametrize(
    "mode, expected",
    [
        ("coroutine_ok", "coroutine result 42 args ['a', 'b c']"),
        ("deferred_ok", "deferred result 7"),
        ("plain_ok", "plain value, no reactor needed"),
    ],
)
def test_success_exits_0(program: Path, backend: str, mode: str, expected: str) -> None:
    out = run(program, backend, mode, *(["a", "b c"] if mode == "coroutine_ok" else []))
    assert (out.returncode, out.stderr) == (0, "")
    assert expected in out.stdout.splitlines()


@pytest.mark.parametrize(
    "mode, error",
    [
        ("raise_before_run", "ValueError: broken before the reactor ran"),
        ("failed_deferred_before_run", "KeyError: 'already failed'"),
        ("coroutine_fails_before_run", "RuntimeError: the coroutine failed at once"),
        ("coroutine_fails_after_run", "ZeroDivisionError: failed while running"),
        ("deferred_fails_after_run", "LookupError: the Deferred failed while running"),
    ],
)
def test_failure_exits_1_with_the_traceback(program: Path, backend: str, mode: str, error: str) -> None:
    out = run(program, backend, mode)
    assert out.returncode == 1, out.stderr
    if "failed_deferred" not in mode and "deferred_fails" not in mode:  # those were never raised
        assert "Traceback (most recent call last)" in out.stderr
        assert f"in {mode}" in out.stderr  # the traceback reaches into main
    assert out.stderr.rstrip().splitlines()[-1] == error
    if mode == "coroutine_fails_after_run":
        assert "running, about to fail" in out.stdout


def test_system_exit_in_main_keeps_its_code(program: Path, backend: str) -> None:
    out = run(program, backend, "exits_3")
    assert (out.returncode, out.stderr) == (3, "")


def test_main_stopping_the_reactor_exits_0(program: Path, backend: str) -> None:
    out = run(program, backend, "stops_itself")
    assert (out.returncode, out.stderr) == (0, "")


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, EXIT_SIGINT), (signal.SIGTERM, 0)])
def test_signal_stops_cleanly(program: Path, backend: str, signum: int, code: int) -> None:
    child = subprocess.Popen(
        [sys.executable, str(program), "forever"],
        env=_env(backend), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"  # the reactor runs, its handlers are in place
        child.send_signal(signum)
        stdout, stderr = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == code, stderr
    lines = stdout.splitlines()
    assert "shutdown trigger ran" in lines  # a clean stop: shutdown triggers ran
    assert "main cleaned up" in lines  # the pending coroutine was cancelled, its finally ran
    assert "Traceback" not in stderr


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, EXIT_SIGINT), (signal.SIGTERM, 0)])
def test_a_signal_before_the_reactor_runs_still_stops_cleanly(program: Path, backend: str, signum: int, code: int) -> None:
    child = subprocess.Popen(
        [sys.executable, str(program), "ready_before_running"], env=_env(backend),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline() == "ready\n"  # main runs; run() has not been called yet
        child.send_signal(signum)
        child.stdin.write("go\n")
        stdout, stderr = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == code, stderr  # not killed by the signal (-15), nor a KeyboardInterrupt
    lines = stdout.splitlines()
    assert "shutdown trigger ran" in lines and "main cleaned up" in lines
    assert "Traceback" not in stderr


# In process: react raises SystemExit, so a caller can catch it. The reactor is the fixture's.


def _exit_code(reactor: Any, main: Any, argv: list[str] | tuple[str, ...] = ()) -> Any:
    with pytest.raises(SystemExit) as exc:
        react(main, argv, reactor=reactor)
    return exc.value.code


def test_react_raises_system_exit(reactor: Any) -> None:
    seen: list[Any] = []

    async def main(r: Any, a: str, b: str) -> None:
        seen.extend([r, a, b])
        d: Deferred[None] = Deferred()
        r.call_later(0, d.callback, None)
        await d

    assert _exit_code(reactor, main, ["x", "y"]) == 0
    assert seen == [reactor, "x", "y"]
    assert not reactor.running


def test_react_in_process_failures(reactor: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert _exit_code(reactor, lambda r: fail(ValueError("nope"))) == 1
    assert capsys.readouterr().err.rstrip().endswith("ValueError: nope")
    assert _exit_code(reactor, lambda r: succeed("fine")) == 0  # the same reactor, run again


def test_argv_defaults_to_sys_argv(reactor: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["prog", "one", "two"])
    seen: list[str] = []
    with pytest.raises(SystemExit) as exc:
        react(lambda r, *args: seen.extend(args), reactor=reactor)
    assert exc.value.code == 0
    assert seen == ["one", "two"]


def test_net_exports_react() -> None:
    import net

    assert net.react is react
    assert "react" in net.__all__
