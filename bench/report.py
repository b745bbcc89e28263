"""Turns the raw per-run results into the terminal table, bench/results.md and bench/results.png."""

from __future__ import annotations

import datetime
import math
import os
import platform
from importlib.metadata import PackageNotFoundError, version as dist_version
from pathlib import Path
from typing import Any

from bench.common import Cfg
from bench.runner import System, median_metrics

__all__ = ["COLUMNS", "machine_info", "summarise", "text_table", "write_markdown", "write_plot", "curves_terminal"]

FLOORS = (("floor_asyncio", "asyncio floor"), ("floor_socket", "socket floor"))

# (scenario, metric key, header, higher_is_better)
COLUMNS: list[tuple[str, str, str, bool]] = [
    ("A", "calls_s", "A calls/s", True),
    ("A", "p50_us", "A p50 µs", False),
    ("A", "p99_us", "A p99 µs", False),
    ("B", "calls_s", "B calls/s", True),
    ("C", "mb_s", "C MB/s", True),
    ("D", "calls_s", "D calls/s", True),
    ("E", "calls_s", "E calls/s", True),
    ("E", "failed", "E failed", False),
    ("E", "kib_per_conn", "E KiB/conn", False),
]


def machine_info() -> dict[str, str]:
    """What a reader needs to compare these figures with another machine's."""
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = []
    for dist in ("pbroker", "Twisted", "Pyro5", "rpyc", "grpcio", "msgpack", "psutil"):
        try:
            versions.append(f"{dist} {dist_version(dist)}")
        except PackageNotFoundError:
            versions.append(f"{dist} (not installed)")
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": f"{platform.system()} {platform.release()}",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "versions": ", ".join(versions),
    }


def summarise(systems: list[System], raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{system key: {scenario: {"m": medians, "errors": [...], "n": runs used}}}."""
    out: dict[str, dict[str, Any]] = {}
    for s in systems:
        out[s.key] = {}
        for sc, runs in raw.get(s.key, {}).items():
            m, errors, n = median_metrics(runs)
            out[s.key][sc] = {"m": m, "errors": errors, "n": n}
    return out


def _fmt(v: float | None, key: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if key == "failed":
        return f"{v:,.0f}"
    if v >= 100:
        return f"{v:,.0f}"
    return f"{v:,.1f}"


def _cell(summary: dict[str, Any], s: System, sc: str, key: str) -> str:
    if s.unavailable:
        return "n/a"
    if sc not in s.scenarios:
        return "·"
    entry = summary[s.key].get(sc)
    if entry is None:
        return ""
    if not entry["m"]:
        return "error"
    return _fmt(entry["m"].get(key), key) + ("*" if entry["errors"] else "")


def _grid(summary: dict[str, Any], systems: list[System], scenarios: str) -> tuple[list[str], list[list[str]]]:
    cols = [c for c in COLUMNS if c[0] in scenarios]
    header = ["system"] + [c[2] for c in cols]
    rows = [[s.label] + [_cell(summary, s, sc, k) for sc, k, _h, _b in cols] for s in systems]
    return header, rows


def _ratio(pb: float | None, peer: float | None, higher: bool) -> str:
    """How many times better pbroker is (>1 = pbroker ahead), whichever way the metric points."""
    if pb is None or peer is None or math.isnan(pb) or math.isnan(peer) or pb <= 0 or peer <= 0:
        return "—"
    r = pb / peer if higher else peer / pb
    return f"{r:.2f}×"


def _pbroker_tables(summary: dict[str, Any], systems: list[System], scenarios: str) -> list[tuple[str, list[str], list[list[str]]]]:
    """One table per pbroker backend: its figure and its ratio to each peer and floor."""
    peers = [s for s in systems if not s.key.startswith("pbroker") and not s.unavailable]
    tables = []
    # One table per client style on the epoll server; the other reactors are in the main and floor tables.
    for pb in (s for s in systems if s.key.startswith("pbroker-epoll")):
        title = f"{pb.label}" + (f" — {pb.unavailable}" if pb.unavailable else "")
        if pb.unavailable:
            tables.append((title, [], []))
            continue
        header = ["metric", "pbroker"] + [f"vs {p.label}" for p in peers]
        rows = []
        for sc, key, head, higher in COLUMNS:
            if sc not in scenarios or key == "failed":
                continue
            mine = summary[pb.key].get(sc, {}).get("m", {}).get(key)
            row = [head, _fmt(mine, key)]
            for p in peers:
                theirs = summary[p.key].get(sc, {}).get("m", {}).get(key) if sc in p.scenarios else None
                row.append(_ratio(mine, theirs, higher))
            rows.append(row)
        if all(cell == "—" for row in rows for cell in row[1:]):
            tables.append((f"{title} — no figures (see errors)", [], []))
        else:
            tables.append((title, header, rows))
    return tables


def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([fmt(header), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows])


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def terminal_report(summary: dict[str, Any], systems: list[System], scenarios: str) -> str:
    header, rows = _grid(summary, systems, scenarios)
    parts = ["Medians (* = some runs reported errors, · = not measured for this system)", text_table(header, rows)]
    for title, h, r in _pbroker_tables(summary, systems, scenarios):
        if h:
            parts += ["", f"{title}: figure and ratio (×>1 = pbroker better)", text_table(h, r)]
        else:
            parts += ["", title] if parts[-1] != "" and not parts[-1].startswith("pbroker") else [title]
    return "\n".join(parts)


def write_markdown(path: Path, summary: dict[str, Any], systems: list[System], scenarios: str, cfg: Cfg,
                   info: dict[str, str], elapsed: float, quick: bool, modules: dict[str, Any],
                   table: dict[str, Any] | None = None, curves: dict[str, Any] | None = None) -> None:
    table = table or {}
    curves = curves or {}
    if table.get("cfg"):
        cfg = Cfg(**table["cfg"])
    header, rows = _grid(summary, systems, scenarios)
    md = [
        "# pbroker benchmarks",
        "",
        "Generated by `python -m bench`" + (" --quick (smoke run: figures not meaningful)" if quick else "") + ".",
        "",
        "## Machine",
        "",
        f"- CPU: {info['cpu']} ({info['cores']} cores)",
        f"- Python: {info['python']} on {info['os']}",
        f"- Date: {info['date']}",
        f"- Versions: {info['versions']}",
        f"- Load: {info.get('load', 'unknown')}",
        f"- CPU pinning: {info.get('pinning', 'unknown')}",
        f"- Run: {cfg.runs} run(s) per A–D figure and {cfg.e_runs} per E figure (median shown), {cfg.warmup}s warm-up + {cfg.duration}s measured per A–D "
        f"scenario; E = {cfg.e_conns} connections × {cfg.e_calls} calls from {cfg.e_procs} client processes; "
        f"total wall time {elapsed:.0f}s",
        "- Parts: comparison table " + _part(table) + "; cost curves " + _part(curves) + ".",
        "",
        "## Scenarios",
        "",
        "Loopback, server and client in separate processes, server fresh for each run (and for E). Runs are "
        "interleaved: run 1 of every system, then run 2 of every system, …, so drift in the machine's load "
        "spreads over all systems instead of landing on one. What each scenario measures: bench/README.md.",
        "",
        "- **A** sequential round trips of `add(1, 2)`: calls/s and latency p50/p99 (µs).",
        f"- **B** pipelined `add(1, 2)` with {cfg.pipeline} calls outstanding (idiom per system below).",
        "- **C** echo of a 1 MiB bytes value: MB/s of payload returned (10⁶ B/s; each call moves 1 MiB each way).",
        "- **D** echo of a list of 1,000 small dicts `{id, name, value}`: calls/s.",
        f"- **E** {cfg.e_conns} concurrent connections each making {cfg.e_calls} sequential calls: total calls/s, failed "
        "calls, and server RSS growth per idle connection (psutil RSS before connecting vs. after all connections are "
        "up, have made one call, and sit idle).",
        "- **floors**: the same calls as raw length-prefixed msgpack, over asyncio (A–E) and blocking sockets (A, C, D).",
        "",
    ]
    if not table:
        md += ["## Results", "", "The comparison table was not run (`--curves-only`, and no earlier run to reuse).", ""]
    else:
        md += [
        "## Results (medians)",
        "",
        "`*` some runs of that figure reported errors (see below); `·` not measured for that system; `n/a` not available.",
        "",
        _md_table(header, rows),
        "",
        "![results](results.png)",
        "",
        "## Ratios to the floors (same run)",
        "",
        "Each figure divided by the same figure of the floor measured in the same run: for calls/s and MB/s "
        "below 1 is slower than the floor; for latency and KiB/conn above 1 costs more than the floor.",
        "",
        ]
        for fname, h, r in _floor_tables(summary, systems, scenarios):
            md += [f"### ÷ {fname}", "", _md_table(h, r), ""]
        md += [
        "## pbroker/epoll (each client style) vs peers and floors",
        "",
        "Ratios are how many times better pbroker is (>1 = pbroker ahead; for latency and memory, lower is better).",
        "",
        ]
    if table:
        md += _goals_md(summary)
    for title, h, r in (_pbroker_tables(summary, systems, scenarios) if table else []):
        md += [f"### {title}", ""]
        md += [_md_table(h, r), ""] if h else ["No figures for pbroker from this backend in this run.", ""]
    md += _curves_md(curves, cfg)
    md += ["## How each system is driven", ""]
    for s in systems:
        mod = modules[s.key]
        ids = mod.IDIOMS
        if hasattr(mod, "STYLE_IDIOMS"):
            ids = mod.STYLE_IDIOMS.get(s.env.get("PBROKER_BENCH_STYLE", "deferred"), ids)
        idioms = "; ".join(f"{k}: {v}" for k, v in ids.items()) or "A/C/D only"
        md.append(f"- **{s.label}** — {idioms}.")
    md += [""]
    unique = {m.__name__: m for m in modules.values()}  # pbroker's backends share one module
    notes = [n for m in unique.values() for n in m.NOTES]
    md += ["## Notes", ""] + [f"- {n}" for n in notes]
    md += [
        "- Twisted PB runs on Twisted's default reactor (epoll on Linux).",
        "- E connects at most "
        f"{cfg.e_connect_concurrency} connections at a time per client process so no listen backlog overflows; "
        "connect time is not measured.",
        "",
    ]
    e_rows = []
    for s in systems:
        e = summary.get(s.key, {}).get("E")
        if e and e["m"]:
            m = e["m"]
            e_rows.append([s.label, _fmt(m["connected"], "failed"), _fmt(m["failed"], "failed"),
                           f"{m['rss_before_mib']:.1f}", f"{m['rss_idle_mib']:.1f}", _fmt(m["kib_per_conn"], "k")])
    if e_rows:
        md += ["## Scenario E detail (medians)", "",
               _md_table(["system", "connected", "failed calls", "RSS before MiB", "RSS idle MiB", "KiB/conn"], e_rows), ""]
    by_error: dict[str, list[str]] = {}  # the same failure across backends/scenarios is listed once
    for s in systems:
        for sc, v in summary.get(s.key, {}).items():
            for e in v["errors"]:
                by_error.setdefault(e, []).append(f"{s.label} {sc}")
    unavailable = [(s.label, s.unavailable) for s in systems if s.unavailable]
    if by_error or unavailable:
        md += ["## Errors and gaps", ""]
        md += [f"- {label}: {why}" for label, why in unavailable]
        md += [f"- {', '.join(where)}: {e}" for e, where in by_error.items()]
        md += [""]
    path.write_text("\n".join(md))


def _part(p: dict[str, Any]) -> str:
    if not p:
        return "not run"
    txt = f"{'reused from' if p.get('reused') else 'run'} {p.get('date', '?')}"
    txt += f" ({p.get('elapsed', 0):.0f}s" + (", --quick" if p.get("quick") else "") + ")"
    return txt


def _curves_md(curves: dict[str, Any], cfg: Cfg) -> list[str]:
    md = ["## Cost curves", ""]
    if not curves:
        return md + ["Not run (`--no-curves`, and no earlier run to reuse).", ""]
    data = curves["data"]
    md += ["pbroker/epoll with the Deferred client; the connections and payload curves also run the asyncio "
           "floor in the same run (÷ floor columns). Plotted in the lower panels of results.png. "
           f"Curves {_part(curves)}.", ""]
    md += [f"- {n}" for n in data.get("notes", [])]
    if data.get("notes"):
        md.append("")
    for title, note, h, rows in curves_tables(data):
        md += [f"### {title}", "", note, "", _md_table(h, rows), ""]
    for kind in ("refs", "soak"):
        if data.get(kind, {}).get("error"):
            md += [f"- {kind}: {data[kind]['error']}", ""]
    for key, v in data.get("payload", {}).items():
        if v.get("error"):
            md += [f"- payload {key}: {v['error']}", ""]
    return md


def write_plot(path: Path, summary: dict[str, Any], systems: list[System], scenarios: str,
               curves: dict[str, Any] | None = None) -> None:
    """Top: one bar panel per headline metric, one bar per system (log scale when figures span
    orders of magnitude). Bottom: the cost curves (log-log), pbroker red, asyncio floor grey."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    cols = [c for c in COLUMNS if c[0] in scenarios and c[1] != "failed" and c[2] != "A p99 µs"]
    live = [s for s in systems if not s.unavailable]
    if not cols or not live:
        cols = []
    curve_panels = _curve_panels(curves) if curves else []
    if not cols and not curve_panels:
        return
    ncol = 4
    nrow_bars = math.ceil(len(cols) / ncol)
    nrow_curves = math.ceil(len(curve_panels) / ncol)
    h_bars = (0.3 * len(live) + 1.2) * nrow_bars
    h_curves = 3.2 * nrow_curves
    fig = plt.figure(figsize=(4.4 * ncol, h_bars + h_curves + 0.6))
    gs = fig.add_gridspec(nrow_bars + nrow_curves, ncol,
                          height_ratios=[h_bars / max(nrow_bars, 1)] * nrow_bars + [3.2] * nrow_curves)
    colors = {s.key: ("tab:red" if s.key.startswith("pbroker") else "tab:gray" if s.key.startswith("floor")
                      else "tab:blue") for s in live}
    for i, (sc, key, head, higher) in enumerate(cols):
        ax = fig.add_subplot(gs[i // ncol, i % ncol])
        labels, values, cs = [], [], []
        for s in live:
            v = summary[s.key].get(sc, {}).get("m", {}).get(key)
            if v is None or math.isnan(v) or v <= 0:
                continue
            labels.append(s.label)
            values.append(v)
            cs.append(colors[s.key])
        ax.barh(labels[::-1], values[::-1], color=cs[::-1])
        if values and max(values) / min(values) > 30:
            ax.set_xscale("log")
            ax.set_xlim(left=min(values) / 3, right=max(values) * 4)
            ax.xaxis.set_minor_formatter(NullFormatter())
        elif values:
            ax.set_xlim(0, max(values) * 1.3)
        ax.set_title(head + (" (higher better)" if higher else " (lower better)"), fontsize=9)
        ax.tick_params(labelsize=7)
        for y, v in enumerate(values[::-1]):
            ax.text(v, y, " " + _fmt(v, key), va="center", fontsize=6)
    for j, (title, xlabel, series, logx, logy) in enumerate(curve_panels):
        ax = fig.add_subplot(gs[nrow_bars + j // ncol, j % ncol])
        for label, xs, ys, color in series:
            if xs:
                ax.plot(xs, ys, marker="o", ms=3, color=color, label=label)
        if logx:
            ax.set_xscale("log")
        if logy:
            ax.set_yscale("log")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, alpha=0.3)
        if len(series) > 1:
            ax.legend(fontsize=7)
    fig.suptitle("pbroker benchmarks (top: medians; red = pbroker, blue = peers, grey = raw floors; "
                 "bottom: cost curves, pbroker/epoll vs asyncio floor)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _curve_panels(curves: dict[str, Any]) -> list[tuple[str, str, list[tuple[str, list[float], list[float], str]], bool, bool]]:
    """(title, x label, [(label, xs, ys, colour)], log x, log y) per curve panel."""
    data = curves.get("data", curves)
    who = (("pbroker-epoll", "pbroker/epoll", "tab:red"), ("floor_asyncio", "asyncio floor", "tab:gray"))
    panels = []

    def series(points: list[dict[str, Any]], xk: str, yk: str) -> tuple[list[float], list[float]]:
        pts = [(p[xk], p[yk]) for p in points if p.get(yk) is not None and p.get(yk) == p.get(yk) and p.get(yk, 0) > 0]
        return [x for x, _ in pts], [y for _, y in pts]

    conns = data.get("conns", {})
    if conns:
        for yk, title in (("calls_s", "calls/s vs connections"), ("p99_us", "p99 µs vs connections")):
            panels.append((title, "connections", [(lab, *series(conns.get(k, []), "n", yk), c) for k, lab, c in who], True, True))
    pay = data.get("payload", {})
    if pay:
        for yk, title in (("mb_s", "MB/s vs payload"), ("p99_us", "p99 µs vs payload")):
            panels.append((title, "payload bytes",
                           [(lab, *series(pay.get(k, {}).get("points", []), "size", yk), c) for k, lab, c in who], True, True))
    refs = data.get("refs", {}).get("points", [])
    if refs:
        panels.append(("calls/s and p99 vs live refs", "references held",
                       [("calls/s", *series(refs, "refs", "calls_s"), "tab:red"),
                        ("p99 µs", *series(refs, "refs", "p99_us"), "tab:orange")], True, True))
        panels.append(("server RSS MiB vs live refs", "references held",
                       [("RSS MiB", [p["refs"] for p in refs], [p["rss"] / 2**20 for p in refs], "tab:red")], True, False))
    if conns.get("pbroker-epoll"):
        pts = [p for p in conns["pbroker-epoll"] if p.get("kib_per_conn") is not None]
        panels.append(("server KiB per connection", "connections",
                       [(lab, [p["n"] for p in conns.get(k, []) if "kib_per_conn" in p],
                         [p["kib_per_conn"] for p in conns.get(k, []) if "kib_per_conn" in p], c) for k, lab, c in who]
                       if pts else [], True, False))
    soak = data.get("soak", {}).get("samples", [])
    if soak:
        panels.append(("soak: server RSS MiB", "calls done",
                       [("RSS MiB", [a for a, _ in soak], [r / 2**20 for _, r in soak], "tab:red")], False, False))
    return panels


def _floor_tables(summary: dict[str, Any], systems: list[System], scenarios: str) -> list[tuple[str, list[str], list[list[str]]]]:
    """Each system's figure divided by the same figure of a floor measured in the same run."""
    out = []
    for fkey, fname in FLOORS:
        floor = next((s for s in systems if s.key == fkey and not s.unavailable), None)
        if floor is None:
            continue
        cols = [c for c in COLUMNS if c[0] in scenarios and c[0] in floor.scenarios and c[1] != "failed"]
        if not cols:
            continue
        header = ["system"] + [c[2] for c in cols]
        rows = []
        for s in systems:
            if s.unavailable or s.key == fkey:
                continue
            row = [s.label]
            for sc, key, _h, _hb in cols:
                mine = summary[s.key].get(sc, {}).get("m", {}).get(key) if sc in s.scenarios else None
                theirs = summary[fkey].get(sc, {}).get("m", {}).get(key)
                ok = all(v is not None and not math.isnan(v) and v > 0 for v in (mine, theirs))
                row.append(f"{mine / theirs:.2f}" if ok else "—")  # type: ignore[operator]
            rows.append(row)
        out.append((fname, header, rows))
    return out


#: Issue 13's goals: (label, system, scenario, metric, reference system or None, target, higher is better).
#: A reference of None compares the figure itself with the target (KiB per idle connection).
GOALS: list[tuple[str, str, str, str, str | None, float, bool]] = [
    ("A, Deferred callbacks", "pbroker-epoll", "A", "calls_s", "floor_asyncio", 0.95, True),
    ("A, `await` in ensure_deferred", "pbroker-epoll-await", "A", "calls_s", "floor_asyncio", 1.0, True),
    ("A, broker.aio", "pbroker-epoll-aio", "A", "calls_s", "floor_asyncio", 0.95, True),
    ("A, broker.blocking ÷ socket floor", "pbroker-epoll-blocking", "A", "calls_s", "floor_socket", 0.7, True),
    ("A, broker.blocking ÷ Pyro5", "pbroker-epoll-blocking", "A", "calls_s", "pyro5", 1.0, True),
    ("B, Deferred callbacks", "pbroker-epoll", "B", "calls_s", "floor_asyncio", 1.0, True),
    ("B, broker.aio", "pbroker-epoll-aio", "B", "calls_s", "floor_asyncio", 1.0, True),
    ("C, 1 MiB echo ÷ socket floor", "pbroker-epoll", "C", "mb_s", "floor_socket", 0.95, True),
    ("D, Deferred callbacks", "pbroker-epoll", "D", "calls_s", "floor_asyncio", 1.0, True),
    ("D, broker.aio", "pbroker-epoll-aio", "D", "calls_s", "floor_asyncio", 1.0, True),
    ("D, broker.blocking", "pbroker-epoll-blocking", "D", "calls_s", "floor_asyncio", 1.0, True),
    ("E, calls/s", "pbroker-epoll", "E", "calls_s", "floor_asyncio", 0.9, True),
    ("E, KiB per idle connection", "pbroker-epoll", "E", "kib_per_conn", None, 4.0, False),
]


def _goals_md(summary: dict[str, Any]) -> list[str]:
    """Each goal of issue 13 against this run: the ratio (or figure), the target, met or not."""
    rows = []
    for label, key, sc, metric, ref, target, higher in GOALS:
        mine = summary.get(key, {}).get(sc, {}).get("m", {}).get(metric)
        base = summary.get(ref, {}).get(sc, {}).get("m", {}).get(metric) if ref else 1.0
        if mine is None or not base:
            rows.append([label, "—", f"{target:g}", "not measured"])
            continue
        value = mine / base
        met = value >= target if higher else value <= target
        shown = f"{value:.2f}×" if ref else f"{value:.1f}"
        rows.append([label, shown, (f"≥ {target:g}×" if higher else f"≤ {target:g}") if ref else f"≤ {target:g}",
                     "met" if met else "not met"])
    return ["## Issue 13's goals in this run", "",
            "Ratios of this run's medians; where a goal is not met, bench/README.md (\"Where each goal "
            "stands\") gives the remaining distance and the profile that explains it.", "",
            _md_table(["goal", "this run", "target", ""], rows), ""]


def _size(n: int) -> str:
    for unit, k in (("MiB", 2**20), ("KiB", 2**10)):
        if n >= k and n % k == 0:
            return f"{n // k} {unit}"
    return f"{n} B"


def _r(a: Any, b: Any) -> str:
    try:
        return f"{a / b:.2f}" if a and b and not math.isnan(a) and not math.isnan(b) else "—"
    except TypeError:
        return "—"


def curves_tables(data: dict[str, Any]) -> list[tuple[str, str, list[str], list[list[str]]]]:
    """(title, note, header, rows) for each curve."""
    out = []
    pb, fl = "pbroker-epoll", "floor_asyncio"
    conns = data.get("conns", {})
    if conns.get(pb):
        floor = {p["n"]: p for p in conns.get(fl, [])}
        rows = []
        for p in conns[pb]:
            f = floor.get(p["n"], {})
            rows.append([f"{p['n']:,}", _fmt(p.get("calls_s"), "x"), _fmt(p.get("p50_us"), "x"), _fmt(p.get("p99_us"), "x"),
                         _fmt(p.get("kib_per_conn"), "x"), _fmt(f.get("calls_s"), "x"), _fmt(f.get("p99_us"), "x"),
                         _fmt(f.get("kib_per_conn"), "x"), _r(p.get("calls_s"), f.get("calls_s")),
                         _r(p.get("p99_us"), f.get("p99_us")), (p.get("error") or f.get("error") or "")[:60]])
        out.append(("Connections", "N connections each chaining `add(1, 2)`; server RSS growth per idle connection "
                    "(small N: page-granular noise).",
                    ["N", "calls/s", "p50 µs", "p99 µs", "KiB/conn", "floor calls/s", "floor p99 µs",
                     "floor KiB/conn", "calls/s ÷ floor", "p99 ÷ floor", "errors"], rows))
    pay = data.get("payload", {})
    if pay.get(pb, {}).get("points"):
        floor = {p["size"]: p for p in pay.get(fl, {}).get("points", [])}
        rows = []
        for p in pay[pb]["points"]:
            f = floor.get(p["size"], {})
            rows.append([_size(p["size"]), _fmt(p["calls_s"], "x"), _fmt(p["mb_s"], "x"), _fmt(p["p99_us"], "x"),
                         _fmt(f.get("calls_s"), "x"), _fmt(f.get("mb_s"), "x"), _fmt(f.get("p99_us"), "x"),
                         _r(p["calls_s"], f.get("calls_s")), _r(p["p99_us"], f.get("p99_us"))])
        out.append(("Payload size", "sequential echo of a bytes value; MB/s = 10⁶ B of payload returned per second.",
                    ["size", "calls/s", "MB/s", "p99 µs", "floor calls/s", "floor MB/s", "floor p99 µs",
                     "calls/s ÷ floor", "p99 ÷ floor"], rows))
    refs = data.get("refs", {})
    if refs.get("points"):
        rss0 = refs.get("rss0") or refs["points"][0]["rss"]
        rows = []
        for p in refs["points"]:
            per = (p["rss"] - rss0) / p["refs"] if p["refs"] else float("nan")
            rows.append([f"{p['refs']:,}", _fmt(p["calls_s"], "x"), _fmt(p["p50_us"], "x"), _fmt(p["p99_us"], "x"),
                         f"{p['rss'] / 2**20:.1f}", f"{per:,.0f}", f"{p['grow_s']:.2f}"])
        out.append(("Live references", "the client holds N references to distinct server objects; `add(1, 2)` "
                    "measured with them held. B/ref = server RSS growth since before the first reference ÷ N.",
                    ["refs held", "calls/s", "p50 µs", "p99 µs", "server RSS MiB", "B/ref", "s to create"], rows))
    soak = data.get("soak", {})
    if soak.get("samples"):
        rows = [[f"{at:,}", f"{rss / 2**20:.2f}"] for at, rss in soak["samples"]]
        s = soak["samples"]
        first = next((r for at, r in s if at > 0), s[0][1])
        growth = (s[-1][1] - first) / 2**20
        out.append(("Soak", f"{s[-1][0]:,} pipelined `add(1, 2)` calls in {soak.get('elapsed', 0):.1f}s; server RSS "
                    f"from the first sample after the start to the last: {growth:+.2f} MiB.",
                    ["calls done", "server RSS MiB"], rows))
    return out


def curves_terminal(data: dict[str, Any]) -> str:
    parts = []
    for title, _note, h, rows in curves_tables(data):
        parts += ["", f"Curve: {title}", text_table(h, rows)]
    return "\n".join(parts)
