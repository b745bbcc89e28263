"""Process entry point for one benchmark server or client: `python -m bench.worker SYSTEM ROLE ...`.

Roles:
  serve                         run the system's server, print its port, serve until killed
  client SCENARIO PORT CFGJSON  run one of A-D against PORT, print `RESULT {...}`
  eclient NCONN PORT CFGJSON    scenario E share: open NCONN connections, READY/GO handshake, print `RESULT {...}`
  curve KIND PORT CFGJSON [N]   a cost curve (bench/curves.py: conns N, payload, refs, soak), print `RESULT {...}`

Each process pins itself to a CPU first (see `pin`): servers on CPU 0, clients on the rest.

Every server and client runs in its own process so that client and server never
share a GIL or an event loop, as in a real deployment.
"""

from __future__ import annotations

import importlib
import os
import resource
import sys
import traceback
from types import ModuleType

from bench.common import Cfg, emit, sample_to_metrics

__all__ = ["main", "load"]


def load(system: str) -> ModuleType:
    """Import bench.sys_<system> (pbroker variants share one module)."""
    base = "pbroker" if system.startswith("pbroker") else system
    return importlib.import_module(f"bench.sys_{base}")


def _raise_fd_limit() -> None:
    """Scenario E needs >1,000 descriptors in one process; many shells default to 1,024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (ValueError, OSError):
            pass


def pin(role: str) -> str:
    """Server on the first CPU, clients on the others (CPU 0 / CPU 1 on a 2-core machine).

    Called first thing, before any thread exists, so every thread a library starts later
    (gRPC's pollers, blocking's readers) inherits the mask. BENCH_PIN=0 turns it off.
    """
    if os.environ.get("BENCH_PIN", "1") == "0" or not hasattr(os, "sched_setaffinity"):
        return "off"
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return "off (1 CPU)"
    mine = {cpus[0]} if role == "serve" else set(cpus[1:])
    try:
        os.sched_setaffinity(0, mine)
    except OSError as e:
        return f"off ({e})"
    return ",".join(map(str, sorted(mine)))


def main(argv: list[str]) -> int:
    system, role = argv[1], argv[2]
    pin(role)
    _raise_fd_limit()
    mod = load(system)
    if role == "serve":
        mod.serve()
        return 0
    if role == "client":
        scenario, port, cfg = argv[3], int(argv[4]), Cfg.from_json(argv[5])
        try:
            sample = mod.client(scenario, port, cfg)
        except Exception as e:  # report, don't hang: the orchestrator shows the error in the table
            traceback.print_exc()
            emit({"error": f"{type(e).__name__}: {e}"[:200]})
            return 1
        emit({"metrics": sample_to_metrics(scenario, sample), "calls": sample.calls})
        return 0
    if role == "eclient":
        nconn, port, cfg = int(argv[3]), int(argv[4]), Cfg.from_json(argv[5])
        try:
            res = mod.e_client(port, nconn, cfg)
        except Exception as e:
            traceback.print_exc()
            emit({"error": f"{type(e).__name__}: {e}"[:200]})
            return 1
        emit(res.as_dict())
        return 0
    if role == "curve":  # bench/curves.py: KIND PORT CFGJSON [NCONN]
        from bench import curves

        kind, port, cfg = argv[3], int(argv[4]), Cfg.from_json(argv[5])
        try:
            out = curves.client(system, kind, port, cfg, argv[6:])
        except Exception as e:
            traceback.print_exc()
            emit({"error": f"{type(e).__name__}: {e}"[:200]})
            return 1
        emit(out)
        return 0
    raise SystemExit(f"unknown role {role!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
