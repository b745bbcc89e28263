"""Issue 13's B goal for blocking clients: 16 threads making calls at once, pbroker vs Pyro5.

    python -m bench.threads [--threads 16] [--seconds 3] [--runs 3]

Each system's server runs in its own process, pinned to CPU 0 (as in `python -m bench`); the
client process, pinned to CPU 1, starts ``--threads`` threads that each call ``add(1, 2)`` in a
loop for ``--seconds``. pbroker's threads share **one** `broker.blocking` connection (its
documented use: the connection is thread-safe, calls from several threads are in flight at
once); Pyro5's threads each own a proxy (Pyro5 proxies are owned by one thread, so a
thread-per-proxy is how Pyro5 code runs calls from 16 threads). Runs are interleaved and the
median calls/s of each system is printed, with the ratio pbroker ÷ Pyro5 (goal: ≥ 3).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent

__all__ = ["main"]


def _server(system: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([sys.executable, "-m", "bench.worker", system, "serve"], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "PBROKER_REACTOR": "epoll"})
    assert proc.stdout is not None
    line = proc.stdout.readline()
    return proc, int(line.split()[-1])


def _calls_per_second(make_call: Callable[[int], Callable[[], Any]], threads: int, seconds: float) -> float:
    """Every thread calls until the deadline; total completed calls ÷ elapsed."""
    counts = [0] * threads
    start = threading.Barrier(threads + 1)
    stop = threading.Event()

    def work(i: int) -> None:
        call = make_call(i)
        call()  # connected and warm before the clock starts
        start.wait()
        n = 0
        while not stop.is_set():
            call()
            n += 1
        counts[i] = n

    pool = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(threads)]
    for t in pool:
        t.start()
    start.wait()
    began = time.perf_counter()
    time.sleep(seconds)  # the measuring window (a benchmark, not a test's synchronisation)
    stop.set()
    for t in pool:
        t.join()
    return sum(counts) / (time.perf_counter() - began)


def _pbroker(port: int, threads: int, seconds: float) -> float:
    import broker.blocking

    with broker.blocking.connect(f"tcp:127.0.0.1:{port}", timeout=60) as root:
        return _calls_per_second(lambda i: lambda: root.call_remote("add", 1, 2), threads, seconds)


def _pyro5(port: int, threads: int, seconds: float) -> float:
    from bench import sys_pyro5

    sys_pyro5._configure()

    def make(i: int) -> Callable[[], Any]:
        proxy = sys_pyro5._proxy(port)  # made in the thread that uses it (Pyro5 proxies are thread-owned)
        return lambda: proxy.add(1, 2)

    return _calls_per_second(make, threads, seconds)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.threads", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=16)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args(argv)
    try:
        os.sched_setaffinity(0, {1})
    except (AttributeError, OSError):
        pass
    clients = {"pbroker-epoll": _pbroker, "pyro5": _pyro5}
    results: dict[str, list[float]] = {k: [] for k in clients}
    for _ in range(args.runs):
        for system, client in clients.items():
            proc, port = _server(system)
            try:
                results[system].append(client(port, args.threads, args.seconds))
            finally:
                proc.kill()
                proc.wait()
    medians = {k: statistics.median(v) for k, v in results.items()}
    print(f"{args.threads} threads, {args.seconds:g} s, median of {args.runs}:")
    print(f"  pbroker (one shared broker.blocking connection): {medians['pbroker-epoll']:,.0f} calls/s")
    print(f"  Pyro5 (a proxy per thread):                      {medians['pyro5']:,.0f} calls/s")
    print(f"  pbroker ÷ Pyro5: {medians['pbroker-epoll'] / medians['pyro5']:.2f}× (goal ≥ 3)")


if __name__ == "__main__":
    main()
