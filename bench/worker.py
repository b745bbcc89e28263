"""Process entry point for one benchmark server or client: `python -m bench.worker SYSTEM ROLE ...`.

Roles:
  serve                         run the system's server, print its port, serve until killed
  client SCENARIO PORT CFGJSON  run one of A-D against PORT, print `RESULT {...}`
  eclient NCONN PORT CFGJSON    scenario E share: open NCONN connections, READY/GO handshake, print `RESULT {...}`

Every server and client runs in its own process so that client and server never
share a GIL or an event loop, as in a real deployment.
"""

from __future__ import annotations

import importlib
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


def main(argv: list[str]) -> int:
    system, role = argv[1], argv[2]
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
    raise SystemExit(f"unknown role {role!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
