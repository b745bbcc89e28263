"""A broker server for the fault tests: run as ``python tests/fault_server.py REACTOR LIMITS_JSON``.

Prints ``listening on HOST:PORT`` once it listens on 127.0.0.1 (any free port). Its root answers
``add``, ``blob(n)`` (n bytes), ``hang()`` (never answers unless cancelled), ``stats()``
(its VmRSS in KiB, live and running sessions, calls cancelled so far, blob calls run); SIGTERM stops it.
"""

from __future__ import annotations

import json
import logging
import sys
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


class FaultRoot(Root):
    def __init__(self) -> None:
        self.sessions: list[broker.Session] = []
        self.cancelled = 0
        self.hanging = 0
        self.blobs = 0

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
