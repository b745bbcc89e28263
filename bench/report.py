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

__all__ = ["COLUMNS", "machine_info", "summarise", "text_table", "write_markdown", "write_plot"]

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
    for dist in ("pbroker", "Twisted", "Pyro5", "rpyc", "msgpack", "psutil"):
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
    for pb in (s for s in systems if s.key.startswith("pbroker")):
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
                   info: dict[str, str], elapsed: float, quick: bool, modules: dict[str, Any]) -> None:
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
        f"- Run: {cfg.runs} run(s) per A–D figure and {cfg.e_runs} per E figure (median shown), {cfg.warmup}s warm-up + {cfg.duration}s measured per A–D "
        f"scenario; E = {cfg.e_conns} connections × {cfg.e_calls} calls from {cfg.e_procs} client processes; "
        f"total wall time {elapsed:.0f}s",
        "",
        "## Scenarios",
        "",
        "Loopback, server and client in separate processes, server fresh for each run (and for E).",
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
        "## Results (medians)",
        "",
        "`*` some runs of that figure reported errors (see below); `·` not measured for that system; `n/a` not available.",
        "",
        _md_table(header, rows),
        "",
        "![results](results.png)",
        "",
        "## pbroker vs peers and floors",
        "",
        "Ratios are how many times better pbroker is (>1 = pbroker ahead; for latency and memory, lower is better).",
        "",
    ]
    for title, h, r in _pbroker_tables(summary, systems, scenarios):
        md += [f"### {title}", ""]
        md += [_md_table(h, r), ""] if h else ["No figures for pbroker from this backend in this run.", ""]
    md += ["## How each system is driven", ""]
    for s in systems:
        mod = modules[s.key]
        idioms = "; ".join(f"{k}: {v}" for k, v in mod.IDIOMS.items()) or "A/C/D only"
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


def write_plot(path: Path, summary: dict[str, Any], systems: list[System], scenarios: str) -> None:
    """One panel per headline metric, one bar per system; log scale since systems differ by orders of magnitude."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    cols = [c for c in COLUMNS if c[0] in scenarios and c[1] != "failed" and c[2] != "A p99 µs"]
    live = [s for s in systems if not s.unavailable]
    if not cols or not live:
        return
    ncol = 4
    nrow = math.ceil(len(cols) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 0.45 * len(live) * nrow + 1.5 * nrow), squeeze=False)
    colors = {s.key: ("tab:red" if s.key.startswith("pbroker") else "tab:gray" if s.key.startswith("floor")
                      else "tab:blue") for s in live}
    for ax, (sc, key, head, higher) in zip(axes.flat, cols):
        labels, values, cs = [], [], []
        for s in live:
            v = summary[s.key].get(sc, {}).get("m", {}).get(key)
            if v is None or math.isnan(v) or v <= 0:
                continue
            labels.append(s.label)
            values.append(v)
            cs.append(colors[s.key])
        ax.barh(labels[::-1], values[::-1], color=cs[::-1])
        if values and max(values) / min(values) > 30:  # log only when figures span orders of magnitude
            ax.set_xscale("log")
            ax.set_xlim(left=min(values) / 3, right=max(values) * 4)
            ax.xaxis.set_minor_formatter(NullFormatter())
        elif values:
            ax.set_xlim(0, max(values) * 1.3)
        ax.set_title(head + (" (higher better)" if higher else " (lower better)"), fontsize=9)
        ax.tick_params(labelsize=8)
        for y, v in enumerate(values[::-1]):
            ax.text(v, y, " " + _fmt(v, key), va="center", fontsize=7)
    for ax in list(axes.flat)[len(cols):]:
        ax.axis("off")
    fig.suptitle("pbroker benchmarks (medians; red = pbroker, blue = peers, grey = raw floors)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
