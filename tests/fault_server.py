"""A broker server for the fault tests: run as ``python tests/fault_server.py REACTOR LIMITS_JSON``.

Prints ``listening on HOST:PORT`` once it listens on 127.0.0.1 (any free port). Its root answers
``add``, ``blob(n)`` (n bytes), ``hang()`` (never answers unless cancelled), ``stats()``
(its VmRSS in KiB, live and running sessions, calls cancelled so far, blob calls run); SIGTERM stops it.
Bench hooks: ``trim()`` (glibc's malloc_trim, then the stats), ``trace_start()`` and
``trace_top(n)`` (tracemalloc: what was allocated since, by the line of ours that allocated it).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import broker
from broker.flavors import Root
from broker.lifecycle import State
from net.defer import Deferred
from net.reactor import make_reactor


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


_ROOT = str(Path(__file__).resolve().parent.parent) + "/"


def _where(frame: Any) -> str:
    """``dir/file.py:line  source`` for one frame of a tracemalloc traceback."""
    import linecache

    short = "/".join(frame.filename.rsplit("/", 2)[-2:])
    return f"{short}:{frame.lineno}  {linecache.getline(frame.filename, frame.lineno).strip()}"


class FaultRoot(Root):
    def __init__(self) -> None:
        self.sessions: list[broker.Session] = []
        self.cancelled = 0
        self.hanging = 0
        self.blobs = 0
        self._trace_baseline: Any = None

    def root_object(self, caller: Any) -> Root:
        self.sessions.append(caller)
        return self

    def remote_add(self, a: Any, b: Any) -> Any:
        return a + b

    def remote_blob(self, n: int) -> bytes:
        self.blobs += 1
        return b"x" * n

    def remote_hang(self) -> Deferred[None]:
        self.hanging += 1

        def cancelled(d: Deferred[None]) -> None:
            self.cancelled += 1
            self.hanging -= 1

        return Deferred(cancelled)

    def remote_trim(self) -> dict[str, int]:
        """Hand freed memory back to the OS (glibc's malloc_trim), then the stats (bench only)."""
        import ctypes
        import gc

        gc.collect()
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        return self.remote_stats()

    def remote_trace_start(self, frames: int = 12) -> None:
        """Start tracing allocations (bench only): :meth:`remote_trace_top` shows what came since."""
        import gc
        import tracemalloc

        gc.collect()
        tracemalloc.start(frames)
        self._trace_baseline = tracemalloc.take_snapshot()

    def remote_trace_top(self, n: int = 25) -> dict[str, Any]:
        """Allocations alive now that were not at :meth:`remote_trace_start` (bench only).

        ``sites``: the ``n`` biggest as [bytes, blocks, site, caller], grouped by the innermost
        frame of this project's code (what the standard library allocates is charged to the
        project line that called it), ``caller`` the project frame that called that;
        ``total``: bytes and blocks over everything.
        """
        import gc
        import tracemalloc

        gc.collect()
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)])
        diff = snapshot.compare_to(self._trace_baseline, "traceback")
        sites: dict[tuple[str, str], list[int]] = {}
        for stat in diff:
            ours = [frame for frame in reversed(stat.traceback)  # innermost first
                    if frame.filename.startswith(_ROOT) and not frame.filename.endswith("fault_server.py")]
            site = _where(ours[0]) if ours else "(elsewhere)"
            caller = _where(ours[1]) if len(ours) > 1 else ""
            entry = sites.setdefault((site, caller), [0, 0])
            entry[0] += stat.size_diff
            entry[1] += stat.count_diff
        ranked = sorted(sites.items(), key=lambda item: -item[1][0])
        return {"sites": [[size, blocks, site, caller] for (site, caller), (size, blocks) in ranked[:n]],
                "total": [sum(d.size_diff for d in diff), sum(d.count_diff for d in diff)]}

    def remote_stats(self) -> dict[str, int]:
        self.sessions = [s for s in self.sessions if s.state is not State.CLOSED]
        return {"rss_kib": rss_kib(), "open": len(self.sessions), "cancelled": self.cancelled,
                "hanging": self.hanging, "blobs": self.blobs}


def main() -> None:
    import faulthandler
    import signal

    faulthandler.register(signal.SIGUSR1)  # a hung server shows where it is (tests dump on timeout)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(name)s %(levelname)s %(message)s")
    logging.getLogger("net.reactor").setLevel(logging.INFO)  # "Received signal 15, stopping": a
    # teardown that finds the server still running (see test_faults.Server.stop) then says whether
    # the handler ran
    reactor = make_reactor(sys.argv[1])
    limits = broker.Limits(**json.loads(sys.argv[2])) if len(sys.argv) > 2 else broker.Limits()

    def listening(port: Any) -> None:
        address = port.get_host()
        print(f"listening on {address.host}:{address.port}", flush=True)

    broker.serve(reactor, "tcp:0:interface=127.0.0.1", FaultRoot(), limits=limits).add_callback(listening)
    reactor.run()


if __name__ == "__main__":
    main()
