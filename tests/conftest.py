"""Shared fixtures: ``reactor`` (every available backend, fresh per test) and ``run``.

``run(reactor, awaitable, timeout=30.0)`` runs the reactor until a Deferred (or a coroutine, driven
with ``net.defer.ensure_deferred`` once the reactor runs) fires, stops it, and returns the result
or raises the failure's exception. On timeout it stops the reactor and raises TimeoutError, so a
broken test fails instead of hanging. The same reactor may be run again afterwards.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hypothesis import settings

# No per-example deadlines: CI shares 2 cores, and a slow example is not a wrong one.
settings.register_profile("pbroker", deadline=None, print_blob=True)
settings.load_profile("pbroker")

import pytest

from net.error import ReactorNotRunning
from net.reactor import available_reactors, make_reactor


def _backends() -> list[str]:
    names = []
    for name in available_reactors():
        if name == "asyncio":
            try:
                import net.asyncioreactor  # noqa: F401
            except ImportError:  # not written yet
                continue
        names.append(name)
    return names


BACKENDS = _backends()


def run_until(reactor: Any, awaitable: Any, timeout: float = 30.0) -> Any:
    """Run ``reactor`` until ``awaitable`` (a Deferred or a coroutine) fires; see the module doc."""
    from net.defer import ensure_deferred

    outcome: list[Any] = []

    def finish(result: Any) -> None:
        outcome.append(result)
        try:
            reactor.stop()
        except ReactorNotRunning:  # fired before run(), or the test stopped the reactor itself
            pass

    def start() -> None:
        d = ensure_deferred(awaitable) if inspect.iscoroutine(awaitable) else awaitable
        holder.append(d)
        d.add_both(finish)

    holder: list[Any] = []
    if inspect.iscoroutine(awaitable):
        reactor.call_when_running(start)
    else:
        start()
        if outcome:
            return _unwrap(outcome[0])

    timed_out: list[bool] = []

    def on_timeout() -> None:
        timed_out.append(True)
        try:
            reactor.stop()
        except ReactorNotRunning:
            pass

    timer = reactor.call_later(timeout, on_timeout)
    reactor.run()
    if timer.active():
        timer.cancel()
    if not outcome:
        if holder:
            d = holder[0]
            d.add_errback(lambda _failure: None)  # the cancellation is ours: don't report it
            d.cancel()
        raise TimeoutError(f"{awaitable!r} did not fire within {timeout} seconds")
    return _unwrap(outcome[0])


def _unwrap(result: Any) -> Any:
    from net.defer import Failure

    if isinstance(result, Failure):
        result.raise_exception()
    return result


def _children_of(pid: int) -> list[str]:
    """``"PID (NAME) STATE"`` for each live or zombie process whose parent is ``pid``, from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:  # it exited meanwhile
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split at the last ')'.
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        state, ppid = stat[stat.rindex(")") + 2:].split()[:2]
        if int(ppid) == pid:
            found.append(f"{entry} ({name}) {state}")
    return found


@pytest.fixture(scope="session", autouse=True)
def no_children_left() -> Iterator[None]:
    """After the whole run, no child of pytest is left, alive or a zombie: every test that starts
    a process kills and reaps it. (Torn down last, after the module-scoped proxy fixtures.)"""
    yield
    left = _children_of(os.getpid())
    if left:
        print("\nchild processes left by the test run:\n  " + "\n  ".join(left), file=sys.stderr)
    assert not left, f"the test run left child processes behind (zombie state Z, or still running): {left}"


@pytest.fixture(params=BACKENDS)
def reactor(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh reactor of each available backend; its fds and threads are released afterwards."""
    r = make_reactor(request.param)
    try:
        yield r
    finally:
        r.close()


@pytest.fixture
def run() -> Callable[..., Any]:
    """``run(reactor, awaitable, timeout=30.0)``: run until it fires; return or raise its outcome."""
    return run_until


#: A calculator server in a subprocess (add, and hang: never answers), for tests that kill it. It
#: listens on the endpoint in argv[1] and then prints one line: its TCP port, or "ready".
SERVER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    import broker
    from net.defer import Deferred
    from net.reactor import make_reactor

    class Calculator(broker.Root):
        def remote_add(self, a, b):
            return a + b

        def remote_hang(self):
            print("hanging", flush=True)
            return Deferred()

    reactor = make_reactor()
    def listening(port):
        print(getattr(port.get_host(), "port", "ready"), flush=True)
    broker.serve(reactor, sys.argv[1], Calculator()).add_callback(listening)
    reactor.run()
""")


@contextmanager
def calculator_process(endpoint: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """The calculator server listening on ``endpoint``, and the line it printed once it did (its
    TCP port, or "ready"); killed and reaped afterwards."""
    root = str(Path(__file__).resolve().parent.parent)
    proc = subprocess.Popen([sys.executable, "-c", SERVER.format(root=root), endpoint],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield proc, proc.stdout.readline().strip()
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture
def server_process() -> Iterator[tuple[subprocess.Popen[str], int]]:
    """The calculator server process on a loopback TCP port, and that port; killed afterwards."""
    with calculator_process("tcp:0:interface=127.0.0.1") as (proc, port):
        yield proc, int(port)
