"""Threads and signals on every backend: the pool, defer_to_thread, SIGTERM/SIGINT in a child."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from net.defer import Deferred, gather
from net.reactor import available_reactors
from net.threadpool import ThreadPool

ROOT = Path(__file__).resolve().parent.parent


def test_defer_to_thread_result(reactor: Any, run: Any) -> None:
    reactor_thread = threading.current_thread()
    seen: list[threading.Thread] = []

    def work(a: int, b: int = 0) -> int:
        seen.append(threading.current_thread())
        return a + b

    fired_in: list[threading.Thread] = []

    def note_thread(result: int) -> int:
        fired_in.append(threading.current_thread())
        return result

    d = reactor.defer_to_thread(work, 2, b=3)
    d.add_callback(note_thread)
    assert run(reactor, d) == 5
    assert seen[0] is not reactor_thread
    assert fired_in == [reactor_thread]


def test_defer_to_thread_failure(reactor: Any, run: Any) -> None:
    def work() -> None:
        raise ZeroDivisionError("in a thread")

    with pytest.raises(ZeroDivisionError, match="in a thread"):
        run(reactor, reactor.defer_to_thread(work))


def test_call_in_thread_errors_are_logged(
    reactor: Any, run: Any, caplog: pytest.LogCaptureFixture
) -> None:
    def bad() -> None:
        raise LookupError("logged")

    reactor.set_thread_pool_size(1)  # one thread: jobs run in order, so bad() runs first
    reactor.call_in_thread(bad)
    with caplog.at_level(logging.ERROR, logger="net"):
        run(reactor, reactor.defer_to_thread(lambda: None))
    assert any(r.exc_info and str(r.exc_info[1]) == "logged" for r in caplog.records)


def test_pool_is_bounded_and_stopped_on_shutdown(reactor: Any, run: Any) -> None:
    size, jobs = 3, 12
    reactor.set_thread_pool_size(size)
    lock = threading.Lock()
    active = [0]
    peak = [0]
    full = threading.Event()  # `size` jobs are running at once
    workers: set[threading.Thread] = set()

    def job(i: int) -> int:
        with lock:
            workers.add(threading.current_thread())
            active[0] += 1
            peak[0] = max(peak[0], active[0])
            if active[0] == size:
                full.set()
        full.wait(30)  # the first `size` jobs meet here, so they really run concurrently
        with lock:
            active[0] -= 1
        return i

    results = run(reactor, gather(*[reactor.defer_to_thread(job, i) for i in range(jobs)]))
    assert results == list(range(jobs))
    assert peak[0] == size
    assert len(workers) <= size
    # run() returned: the shutdown trigger stopped the pool and joined its threads.
    assert not any(t.is_alive() for t in workers)
    # ...and it starts again on demand when the reactor runs again.
    assert run(reactor, reactor.defer_to_thread(lambda: "again")) == "again"


def test_set_thread_pool_size_validates(reactor: Any) -> None:
    with pytest.raises(ValueError):
        reactor.set_thread_pool_size(0)


# ---------------------------------------------------------------------------------- ThreadPool


def test_threadpool_callback_and_stop() -> None:
    pool = ThreadPool(max_threads=2, name="test-pool")
    results: list[tuple[bool, Any]] = []
    done = threading.Event()
    lock = threading.Lock()

    def on_result(ok: bool, value: Any) -> None:
        with lock:
            results.append((ok, value))
            if len(results) == 20:
                done.set()

    missing: dict[str, int] = {}
    for i in range(10):
        pool.call_in_thread_with_callback(on_result, pow, i, 2)
        pool.call_in_thread_with_callback(on_result, missing.__getitem__, "key")
    assert done.wait(30)
    assert pool.thread_count <= 2
    pool.stop()
    pool.stop()  # idempotent
    assert pool.thread_count == 0
    assert sorted(v for ok, v in results if ok) == sorted(i * i for i in range(10))
    assert all(isinstance(v, KeyError) for ok, v in results if not ok)
    with pytest.raises(RuntimeError):
        pool.call_in_thread(print)


def test_threadpool_stop_runs_queued_jobs() -> None:
    pool = ThreadPool(max_threads=1)
    gate = threading.Event()
    ran: list[int] = []
    pool.call_in_thread(gate.wait, 30)
    for i in range(5):
        pool.call_in_thread(ran.append, i)
    gate.set()
    pool.stop()
    assert ran == list(range(5))


def test_threadpool_min_threads_and_shrink() -> None:
    pool = ThreadPool(min_threads=2, max_threads=4)
    assert pool.thread_count == 2
    pool.adjust_max_threads(1)
    pool.stop()
    assert pool.thread_count == 0
    with pytest.raises(ValueError):
        ThreadPool(min_threads=3, max_threads=2)


# ---------------------------------------------------------------------------------- signals

CHILD = """
import sys
from net.reactor import make_reactor

reactor = make_reactor(sys.argv[1])
reactor.add_system_event_trigger(
    "during", "shutdown", lambda: print("shutdown trigger ran", flush=True)
)
reactor.call_when_running(lambda: print("running", flush=True))
reactor.run()
print("run returned", flush=True)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGTERM"), reason="needs POSIX signals")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("backend", available_reactors())
def test_signal_stops_child_reactor_cleanly(backend: str, signum: int) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, backend],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    try:
        assert child.stdout is not None
        first = child.stdout.readline()
        assert first == "running\n", child.stderr.read() if child.stderr else ""
        child.send_signal(signum)
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, err
    assert out.splitlines() == ["shutdown trigger ran", "run returned"]


def test_previous_signal_handlers_are_restored(reactor: Any) -> None:
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    seen: list[Any] = []
    reactor.call_when_running(lambda: seen.append(signal.getsignal(signal.SIGTERM)))
    reactor.call_when_running(reactor.stop)
    reactor.run()
    assert seen and seen[0] != before[0]
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_gather_of_thread_calls_under_deferred_api(reactor: Any, run: Any) -> None:
    d: Deferred[list[int]] = gather(*[reactor.defer_to_thread(abs, -i) for i in range(50)])
    assert run(reactor, d) == list(range(50))
