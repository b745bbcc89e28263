"""`python -m bench`: the comparison table (every scenario against every system) and the cost
curves (pbroker/epoll and the asyncio floor), then bench/results.md and bench/results.png.

`--quick` is a smoke run (one short run of everything, E shrunk to 40 connections, small
curves); the default full run aims at ~15 minutes on 2 cores. `--no-curves` / `--curves-only`
run one half; the other half of the report is then taken from the previous run's
bench/.work/results.json when there is one.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import sys
import time

from bench.common import Cfg

REQUIRED = {"twisted": "Twisted", "Pyro5": "Pyro5", "rpyc": "rpyc", "msgpack": "msgpack",
            "matplotlib": "matplotlib", "psutil": "psutil", "grpc": "grpcio"}


def _missing() -> list[str]:
    return [dist for mod, dist in REQUIRED.items() if importlib.util.find_spec(mod) is None]


def _args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: a few seconds per system")
    p.add_argument("--runs", type=int, help="runs per A-D figure (median reported; default 3)")
    p.add_argument("--e-runs", type=int, help="runs of scenario E (median reported; default 1, ~5 min each)")
    p.add_argument("--duration", type=float, help="seconds measured per A-D scenario")
    p.add_argument("--warmup", type=float, help="seconds of unrecorded warm-up per A-D scenario")
    p.add_argument("--e-conns", type=int, help="scenario E connections (default 1000)")
    p.add_argument("--e-calls", type=int, help="scenario E calls per connection (default 100)")
    p.add_argument("--e-procs", type=int, help="scenario E client processes (default 4)")
    p.add_argument("--scenarios", default="ABCDE", help="subset of ABCDE")
    p.add_argument("--systems", help="comma-separated subset, e.g. pyro5,rpyc,floor_asyncio,pbroker-epoll")
    part = p.add_mutually_exclusive_group()
    part.add_argument("--curves-only", action="store_true", help="only the cost curves (no comparison table)")
    part.add_argument("--no-curves", action="store_true", help="only the comparison table (no cost curves)")
    p.add_argument("--out", default=None, help="directory for results.md/results.png (default bench/)")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    a = _args(argv)
    missing = _missing()
    if missing:
        print(f"bench: missing packages: {', '.join(missing)}.\n"
              "Run `make bench` (it installs the `bench` extra: pip install -e '.[bench]') "
              "or install them into this interpreter.", file=sys.stderr)
        return 2
    from pathlib import Path

    from bench import report
    from bench.runner import ROOT, WORK, all_systems, run_all
    from bench.worker import load

    cfg = Cfg.quick() if a.quick else Cfg()
    overrides = {"runs": a.runs, "e_runs": a.e_runs, "duration": a.duration, "warmup": a.warmup,
                 "e_conns": a.e_conns, "e_calls": a.e_calls, "e_procs": a.e_procs}
    cfg = dataclasses.replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    scenarios = "".join(sc for sc in "ABCDE" if sc in a.scenarios.upper())
    systems = all_systems()
    if a.systems:
        wanted = {x.strip() for x in a.systems.split(",")}
        systems = [s for s in systems if s.key in wanted or s.key.split("-")[0] in wanted]
    for s in systems:
        if s.unavailable:
            print(f"bench: {s.label}: {s.unavailable} — skipped", file=sys.stderr)

    from bench.curves import run_curves

    progress = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    previous: dict = {}
    try:
        previous = json.loads((WORK / "results.json").read_text())
    except (OSError, ValueError):
        pass
    load_before = os.getloadavg()
    t0 = time.monotonic()
    stamp = report.machine_info()["date"]
    table: dict = {}
    curves: dict = {}
    if not a.curves_only:
        t1 = time.monotonic()
        table = {"raw": run_all(systems, scenarios, cfg, progress), "date": stamp, "quick": a.quick,
                 "scenarios": scenarios, "cfg": dataclasses.asdict(cfg), "elapsed": time.monotonic() - t1}
    elif "table" in previous:
        table = dict(previous["table"], reused=True)
    if not a.no_curves:
        t1 = time.monotonic()
        curves = {"data": run_curves(cfg, progress), "date": stamp, "quick": a.quick,
                  "cfg": dataclasses.asdict(cfg), "elapsed": time.monotonic() - t1}
    elif "curves" in previous:
        curves = dict(previous["curves"], reused=True)
    elapsed = time.monotonic() - t0
    info = report.machine_info()
    info["load"] = f"{load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after (1-min load average)"
    info["pinning"] = _pinning()

    out = Path(a.out) if a.out else ROOT / "bench"
    out.mkdir(parents=True, exist_ok=True)
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / "results.json").write_text(json.dumps({"table": table, "curves": curves}, indent=1))
    raw = table.get("raw", {})
    if table.get("scenarios"):
        scenarios = table["scenarios"]
    summary = report.summarise(systems, raw)
    modules = {s.key: load(s.key) for s in systems}
    print()
    if table:
        print(report.terminal_report(summary, systems, scenarios))
    if curves:
        print(report.curves_terminal(curves["data"]))
    report.write_markdown(out / "results.md", summary, systems, scenarios, cfg, info,
                          elapsed, a.quick, modules, table=table, curves=curves)
    report.write_plot(out / "results.png", summary, systems, scenarios if table else "", curves.get("data"))
    print(f"\nwrote {out / 'results.md'} and {out / 'results.png'} in {elapsed:.0f}s "
          f"(raw per-run figures: {WORK / 'results.json'}, process logs: {WORK / 'bench.log'})")
    return 0


def _pinning() -> str:
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if os.environ.get("BENCH_PIN", "1") == "0":
        return "off (BENCH_PIN=0)"
    if len(cpus) < 2:
        return "off (fewer than 2 CPUs)"
    return f"server on CPU {cpus[0]}, clients on CPU {','.join(map(str, cpus[1:]))} (os.sched_setaffinity in each process)"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
