"""Orchestrator: starts each server and its clients as separate processes and collects figures.

Readiness is the server's port line on stdout, never a sleep; every process
wait has a timeout, and a process that overruns is killed and recorded as an
error so one stuck peer can't stall the whole run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any, Callable

from bench.common import Cfg

__all__ = ["ROOT", "WORK", "System", "all_systems", "run_all", "median_metrics"]

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work"


@dataclasses.dataclass
class System:
    """One measured column: a bench.sys_* module, plus PBROKER_REACTOR for pbroker variants."""

    key: str  # worker argument, e.g. "pyro5" or "pbroker-epoll"
    label: str
    scenarios: str
    env: dict[str, str]
    unavailable: str | None = None


def all_systems() -> list[System]:
    """Every system in report order; pbroker once per reactor backend."""
    from bench.worker import load

    out: list[System] = []
    pb = load("pbroker")
    for backend in pb.BACKENDS:
        out.append(System(f"pbroker-{backend}", f"pbroker/{backend}", pb.SCENARIOS,
                          {"PBROKER_REACTOR": backend}, pb.unavailable(backend)))
    for st in pb.STYLES:  # the other client styles, against the epoll server
        out.append(System(f"pbroker-epoll-{st}", f"pbroker/epoll {st}", pb.SCENARIOS,
                          {"PBROKER_REACTOR": "epoll", "PBROKER_BENCH_STYLE": st}, pb.unavailable("epoll")))
    for key in ("grpc", "twisted_pb", "pyro5", "rpyc", "floor_asyncio", "floor_socket"):
        mod = load(key)
        out.append(System(key, mod.LABEL, mod.SCENARIOS, {}, mod.unavailable()))
    return out


class Proc:
    """A child process whose stdout lines arrive on a queue, so every read can time out."""

    def __init__(self, argv: list[str], env: dict[str, str], log: IO[str], stdin: bool = False) -> None:
        full_env = dict(os.environ)
        full_env.update(env)
        full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), full_env.get("PYTHONPATH", "")]))
        full_env["PYTHONUNBUFFERED"] = "1"
        self.p = subprocess.Popen(
            [sys.executable, "-m", "bench.worker", *argv], cwd=ROOT, env=full_env, text=True,
            stdout=subprocess.PIPE, stderr=log, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        )
        self.lines: "queue.Queue[str | None]" = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.p.stdout is not None
        for line in self.p.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def expect(self, prefix: str, timeout: float) -> str:
        """Next stdout line starting with `prefix` (without it); raises on timeout, exit or a RESULT error."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {prefix or 'port'} line within {timeout:.0f}s")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"process exited (rc={self.p.wait()}) before {prefix or 'port'} line")
            if line.startswith(prefix):
                return line[len(prefix):]
            if line.startswith("RESULT "):  # an early error report from a client
                raise RuntimeError(json.loads(line[7:]).get("error", line))

    def send(self, text: str) -> None:
        assert self.p.stdin is not None
        self.p.stdin.write(text)
        self.p.stdin.flush()

    def stop(self) -> None:
        """End this child (only ever our own, by its Popen handle)."""
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)


def _start_server(sysm: System, log: IO[str]) -> tuple[Proc, int]:
    server = Proc([sysm.key, "serve"], sysm.env, log)
    try:
        line = server.expect("", 30.0)
        while not line.strip().isdigit():  # skip anything a library printed before the port
            line = server.expect("", 30.0)
        port = int(line)
    except Exception:
        server.stop()
        raise
    return server, port


def _run_client(sysm: System, scenario: str, port: int, cfg: Cfg, log: IO[str]) -> dict[str, Any]:
    client = Proc([sysm.key, "client", scenario, str(port), cfg.to_json()], sysm.env, log)
    try:
        out = json.loads(client.expect("RESULT ", cfg.warmup + cfg.duration + cfg.scenario_timeout + 5))
    except Exception as e:
        out = {"error": f"{type(e).__name__}: {e}"}
    finally:
        client.stop()
    return out


def _run_e(sysm: System, cfg: Cfg, log: IO[str]) -> dict[str, Any]:
    """Scenario E: fresh server, RSS before, connect everything, RSS when idle, then the calls."""
    import psutil

    server, port = _start_server(sysm, log)
    clients: list[Proc] = []
    try:
        ps = psutil.Process(server.p.pid)
        rss_before = ps.memory_info().rss
        shares = [cfg.e_conns // cfg.e_procs + (1 if i < cfg.e_conns % cfg.e_procs else 0) for i in range(cfg.e_procs)]
        clients = [Proc([sysm.key, "eclient", str(n), str(port), cfg.to_json()], sysm.env, log, stdin=True)
                   for n in shares]
        connected = 0
        for c in clients:
            connected += json.loads(c.expect("READY ", cfg.e_connect_timeout + 20))["connected"]
        rss_idle = ps.memory_info().rss
        if connected == 0:
            return {"error": f"all {cfg.e_conns} connections failed"}
        for c in clients:
            c.send("GO\n")
        results = [json.loads(c.expect("RESULT ", cfg.e_call_timeout + 20)) for c in clients]
        errors = sorted({r["error"] for r in results if r.get("error")})
        if connected < cfg.e_conns:
            errors.append(f"{cfg.e_conns - connected} of {cfg.e_conns} connections failed")
        ok = sum(r.get("ok", 0) for r in results)
        span = max(r["t_end"] for r in results) - min(r["t_start"] for r in results)
        out: dict[str, Any] = {
            "metrics": {
                "calls_s": ok / span if span > 0 else 0.0,
                "failed": float(cfg.e_conns * cfg.e_calls - ok),
                "connected": float(connected),
                "rss_before_mib": rss_before / 2**20,
                "rss_idle_mib": rss_idle / 2**20,
                "kib_per_conn": (rss_idle - rss_before) / 1024 / connected if connected else float("nan"),
            }
        }
        if errors:
            out["error"] = "; ".join(errors)
        return out
    finally:
        for c in clients:
            c.stop()
        server.stop()


def run_all(systems: list[System], scenarios: str, cfg: Cfg, progress: Callable[[str], None]) -> dict[str, Any]:
    """Runs every (system, scenario) cfg.runs times, interleaving systems across runs to spread drift.

    Returns {system key: {scenario: [per-run {"metrics": ...} or {"error": ...}]}}.
    """
    WORK.mkdir(parents=True, exist_ok=True)
    raw: dict[str, Any] = {s.key: {sc: [] for sc in scenarios if sc in s.scenarios} for s in systems}
    live = [s for s in systems if s.unavailable is None]
    timed_out: set[tuple[str, str]] = set()
    with open(WORK / "bench.log", "w") as log:
        for run in range(1, max(cfg.runs, cfg.e_runs) + 1):
            for sysm in live:
                ad = [sc for sc in scenarios if sc in sysm.scenarios and sc != "E"] if run <= cfg.runs else []
                if ad:
                    try:
                        server, port = _start_server(sysm, log)
                    except Exception as e:
                        for sc in ad:
                            raw[sysm.key][sc].append({"error": f"server: {e}"})
                        progress(f"run {run}/{cfg.runs} {sysm.label}: server failed: {e}")
                        ad = []
                    try:
                        for sc in ad:
                            if (sysm.key, sc) in timed_out:  # don't pay for the same hang every run
                                raw[sysm.key][sc].append({"error": "skipped: timed out in an earlier run"})
                                continue
                            res = _run_client(sysm, sc, port, cfg, log)
                            if "Timeout" in str(res.get("error", "")):
                                timed_out.add((sysm.key, sc))
                            raw[sysm.key][sc].append(res)
                            progress(f"run {run}/{cfg.runs} {sysm.label} {sc}: {_short(res)}")
                    finally:
                        if ad:
                            server.stop()
                if "E" in scenarios and "E" in sysm.scenarios and run <= cfg.e_runs:
                    t0 = time.monotonic()
                    try:
                        res = _run_e(sysm, cfg, log)
                    except Exception as e:
                        res = {"error": f"{type(e).__name__}: {e}"}
                    raw[sysm.key]["E"].append(res)
                    progress(f"run {run}/{cfg.e_runs} {sysm.label} E: {_short(res)} ({time.monotonic() - t0:.1f}s)")
    return raw


def _short(res: dict[str, Any]) -> str:
    if "metrics" not in res:
        return "ERROR " + str(res.get("error"))
    txt = ", ".join(f"{k}={v:,.1f}" for k, v in res["metrics"].items())
    return txt + (f" [{res['error']}]" if res.get("error") else "")


def median_metrics(runs: list[dict[str, Any]]) -> tuple[dict[str, float], list[str], int]:
    """Median of each metric over the runs that produced figures; plus distinct errors and the run count used."""
    good = [r["metrics"] for r in runs if "metrics" in r]
    errors = sorted({str(r["error"]) for r in runs if r.get("error")})
    if not good:
        return {}, errors, 0
    keys = good[0].keys()
    return {k: statistics.median(m[k] for m in good) for k in keys}, errors, len(good)
