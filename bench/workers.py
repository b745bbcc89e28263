"""Multi-core on one machine: N pbroker server processes on one port (SO_REUSEPORT), E-like load.

    .venv/bin/python -m bench.workers --workers 1,2 --reactor epoll
    .venv/bin/python -m bench.workers --workers 1,2,4 --conns 1000 --calls 100 --procs 4 --runs 3

One pbroker process is one core at most (one reactor, one GIL). To use more, run N of them
listening on the same port with SO_REUSEPORT (``tcp:PORT:reuse_port=1``): the Linux kernel
spreads incoming connections over them (by a hash of the connection's addresses), and each
serves its share on its own. They share nothing, so this fits servers whose objects live per
connection, as scenario E's do.

For each N, N server workers are started (the first on a free port, the others on that port),
then scenario E's clients (``python -m bench.worker pbroker eclient``: the Deferred client,
``--procs`` processes sharing ``--conns`` connections, each connection making ``--calls``
sequential ``add(1, 2)`` calls). Reported: calls/s over all connections (median of ``--runs``,
run 1 of every N, then run 2, ...), the speed-up over the first N, how many cores the servers
and the clients kept busy meanwhile and the CPU time each spends per call (from /proc: 1.0
cores is one core all the time), and the share of the calls each worker served; then the
throughput those CPU costs allow, with all cores busy and with one worker's core. Nothing is
pinned: clients and servers share the machine's cores, so on 2 cores two workers compete with
the client processes for them, and the figures say what one machine gains, not what a server
with cores of its own would. On a machine shared with other work, calls/s move with that
work; the CPU costs per call much less.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import IO, Any

from bench.common import Cfg
from bench.runner import ROOT, Proc

__all__ = ["main", "serve", "run_workers"]

SERVER_LINE = "LISTENING "
STATS_LINE = "STATS "


def serve(port: int) -> None:
    """One worker: a pbroker server on 127.0.0.1:``port`` with SO_REUSEPORT (port 0: a free one).

    Prints ``LISTENING <port>`` when ready and, when stopped (SIGTERM stops the reactor),
    ``STATS {"pid": ..., "calls": ...}``.
    """
    import broker
    from net.reactor import make_reactor

    reactor = make_reactor()  # PBROKER_REACTOR
    calls = 0

    class Calc(broker.Root):  # type: ignore[misc, valid-type]
        def remote_add(self, a: int, b: int) -> int:
            nonlocal calls
            calls += 1
            return a + b

        def remote_pid(self) -> int:
            return os.getpid()

    def listening(listener: Any) -> None:
        print(f"{SERVER_LINE}{listener.get_host().port}", flush=True)

    def failed(failure: Any) -> None:
        print(f"serve failed: {failure}", file=sys.stderr, flush=True)
        reactor.stop()

    broker.serve(reactor, f"tcp:{port}:interface=127.0.0.1:reuse_port=1", Calc()).add_callbacks(listening, failed)
    reactor.run()
    print(STATS_LINE + json.dumps({"pid": os.getpid(), "calls": calls}), flush=True)


class _Worker(Proc):
    """A server worker process (``python -m bench.workers serve PORT``)."""

    def __init__(self, port: int, env: dict[str, str], log: IO[str]) -> None:
        full_env = dict(os.environ)
        full_env.update(env)
        full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), full_env.get("PYTHONPATH", "")]))
        full_env["PYTHONUNBUFFERED"] = "1"
        self.p = subprocess.Popen(
            [sys.executable, "-m", "bench.workers", "serve", str(port)], cwd=ROOT, env=full_env, text=True,
            stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
        )
        self._start_pump()

    def _start_pump(self) -> None:
        import queue
        import threading

        self.lines: "queue.Queue[str | None]" = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def stats(self) -> dict[str, Any]:
        """Stop the worker and read its STATS line."""
        self.stop()
        try:
            return json.loads(self.expect(STATS_LINE, 5.0))  # type: ignore[no-any-return]
        except Exception as exc:
            return {"error": f"{type(exc).__name__}: {exc}"}


def _cpu_seconds(process: Proc) -> float:
    """CPU time (user + system) the process has used so far."""
    with open(f"/proc/{process.p.pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_workers(workers: int, cfg: Cfg, env: dict[str, str], log: IO[str]) -> dict[str, Any]:
    """One measurement: ``workers`` servers on one port, scenario E's clients against them."""
    servers: list[_Worker] = []
    clients: list[Proc] = []
    try:
        first = _Worker(0, env, log)
        servers.append(first)
        port = int(first.expect(SERVER_LINE, 30.0))
        for _ in range(workers - 1):
            servers.append(_Worker(port, env, log))
            if int(servers[-1].expect(SERVER_LINE, 30.0)) != port:
                raise RuntimeError("a worker listened on another port")
        shares = [cfg.e_conns // cfg.e_procs + (1 if i < cfg.e_conns % cfg.e_procs else 0) for i in range(cfg.e_procs)]
        client_env = dict(env, BENCH_PIN="0", PBROKER_BENCH_STYLE="deferred")
        clients = [Proc(["pbroker", "eclient", str(n), str(port), cfg.to_json()], client_env, log, stdin=True)
                   for n in shares]
        connected = sum(json.loads(c.expect("READY ", cfg.e_connect_timeout + 20))["connected"] for c in clients)
        cpu_before = sum(map(_cpu_seconds, servers)), sum(map(_cpu_seconds, clients))
        for c in clients:
            c.send("GO\n")
        results = [json.loads(c.expect("RESULT ", cfg.e_call_timeout + 20)) for c in clients]
        server_cpu = sum(map(_cpu_seconds, servers)) - cpu_before[0]
        client_cpu = sum(map(_cpu_seconds, clients)) - cpu_before[1]  # they wait for GO: still alive
        ok = sum(r.get("ok", 0) for r in results)
        span = max(r["t_end"] for r in results) - min(r["t_start"] for r in results)
        errors = sorted({r["error"] for r in results if r.get("error")})
        if connected < cfg.e_conns:
            errors.append(f"{cfg.e_conns - connected} of {cfg.e_conns} connections failed")
        served = [s.stats() for s in servers]
        return {
            "workers": workers,
            "calls_s": ok / span if span > 0 else 0.0,
            "failed": cfg.e_conns * cfg.e_calls - ok,
            "served": [s.get("calls", 0) for s in served],
            "server_cores": server_cpu / span if span > 0 else 0.0,
            "client_cores": client_cpu / span if span > 0 else 0.0,
            "server_us": server_cpu / ok * 1e6 if ok else 0.0,
            "client_us": client_cpu / ok * 1e6 if ok else 0.0,
            "error": "; ".join(errors),
        }
    finally:
        for c in clients:
            c.stop()
        for s in servers:
            s.stop()


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["serve"]:
        serve(int(args[1]))
        return
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts (default 1,2)")
    parser.add_argument("--reactor", default="epoll", help="server reactor (PBROKER_REACTOR), default epoll")
    parser.add_argument("--conns", type=int, default=1000, help="client connections (default 1000)")
    parser.add_argument("--calls", type=int, default=100, help="sequential calls per connection (default 100)")
    parser.add_argument("--procs", type=int, default=4, help="client processes (default 4)")
    parser.add_argument("--runs", type=int, default=3, help="runs per worker count; the median is shown")
    opts = parser.parse_args(args)
    counts = [int(n) for n in opts.workers.split(",")]
    cfg = Cfg(e_conns=opts.conns, e_calls=opts.calls, e_procs=opts.procs)
    env = {"PBROKER_REACTOR": opts.reactor}
    work = ROOT / "bench" / ".work"
    work.mkdir(parents=True, exist_ok=True)
    figures: dict[int, list[dict[str, Any]]] = {n: [] for n in counts}
    with open(work / "workers.log", "a") as log:
        for run in range(opts.runs):
            for n in counts:
                started = time.monotonic()
                result = run_workers(n, cfg, env, log)
                figures[n].append(result)
                print(f"run {run + 1}, {n} worker(s): {result['calls_s']:,.0f} calls/s, served {result['served']}, "
                      f"cores busy: servers {result['server_cores']:.2f}, clients {result['client_cores']:.2f}"
                      f"{', ' + result['error'] if result['error'] else ''} ({time.monotonic() - started:.1f} s)",
                      flush=True)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"\n{opts.conns} connections from {opts.procs} client processes, {opts.calls} sequential add(1, 2) each;"
          f" {opts.reactor} servers; {cpus} CPUs shared by servers and clients (nothing pinned)\n")
    print(f"| workers | calls/s (median of {opts.runs}) | vs {counts[0]} | cores busy: servers / clients "
          "| CPU µs per call: servers / clients | calls served per worker (last run) | failed |")
    print("|---|---|---|---|---|---|---|")
    base = statistics.median(r["calls_s"] for r in figures[counts[0]])
    for n in counts:
        median = statistics.median(r["calls_s"] for r in figures[n])
        last = figures[n][-1]
        share = " / ".join(f"{c:,}" for c in last["served"])
        busy = (f"{statistics.median(r['server_cores'] for r in figures[n]):.2f} / "
                f"{statistics.median(r['client_cores'] for r in figures[n]):.2f}")
        cost = (f"{statistics.median(r['server_us'] for r in figures[n]):.1f} / "
                f"{statistics.median(r['client_us'] for r in figures[n]):.1f}")
        failed = max(r["failed"] for r in figures[n])
        print(f"| {n} | {median:,.0f} | {median / base:.2f}× | {busy} | {cost} | {share} | {failed} |")
    # What the CPU costs allow, whatever else the machine was doing: all its cores busy with
    # servers and clients, or one worker's core busy with the server's share.
    server_us = statistics.median(r["server_us"] for n in counts for r in figures[n])
    client_us = statistics.median(r["client_us"] for n in counts for r in figures[n])
    if server_us > 0 and cpus:
        print(f"\nBounds from the CPU costs: {cpus} cores shared by servers and clients, "
              f"{cpus / (server_us + client_us) * 1e6:,.0f} calls/s; one worker's core, "
              f"{1e6 / server_us:,.0f} calls/s.")


if __name__ == "__main__":
    main()
