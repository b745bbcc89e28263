"""Cost curves: how pbroker's cost grows with connections, payload size and live references,
and whether its server's memory stays flat over a long run.

* **connections**: N connections (1 … 10,000) each chaining `add(1, 2)` for c_duration seconds:
  total calls/s, p50/p99 latency, and server RSS growth per idle connection.
* **payload**: sequential echo of a bytes value of 1 B … 64 MiB (powers of 4): calls/s, MB/s, p99.
* **live references**: the client holds 1 … 10^6 references to server objects (made by
  `make_refs`, 10,000 per call): `add(1, 2)` calls/s and p99 with them held, server RSS per reference.
* **soak**: 1,000,000 pipelined calls (100 in flight), server RSS sampled every 100,000.

pbroker is measured on its epoll reactor with the Deferred client (PBROKER_BENCH_LIMITS=big so
64 MiB frames and 10^6 references fit); the connections and payload curves also run the raw
asyncio floor, so each point has its ratio to the floor of the same run. The orchestrator part
(`run_curves`) runs in the `python -m bench` process; `client()` runs in a worker process.
"""

from __future__ import annotations

import json
import resource
import time
from typing import Any, Callable

from bench.common import Cfg, e_sync, latency_stats, payload

__all__ = ["CURVE_SYSTEMS", "client", "run_curves", "fd_cap"]

#: (system key, label, extra environment) measured by the curves.
CURVE_SYSTEMS: list[tuple[str, str, dict[str, str]]] = [
    ("pbroker-epoll", "pbroker/epoll", {"PBROKER_REACTOR": "epoll", "PBROKER_BENCH_LIMITS": "big"}),
    ("floor_asyncio", "floor: asyncio", {}),
]
FLOOR_CURVES = ("conns", "payload")  # the floor has no references to hold and no soak


# -- worker side ---------------------------------------------------------------------------------

class _FloorLoop:
    """CallbackLoop adapter over the asyncio floor's client protocol."""

    def __init__(self, port: int) -> None:
        import asyncio

        self.loop = asyncio.new_event_loop()
        self.port = port

    def connect(self, ok: Callable[[Any], None], err: Callable[[Any], None]) -> None:
        from bench.sys_floor_asyncio import ClientProto

        async def go() -> Any:
            _t, proto = await self.loop.create_connection(ClientProto, "127.0.0.1", self.port)
            return proto

        def settled(t: Any) -> None:
            if t.exception() is not None:
                err(t.exception())
            else:
                ok(t.result())

        self.loop.create_task(go()).add_done_callback(settled)

    def call(self, root: Any, method: str, args: tuple[Any, ...], ok: Callable[[Any], None], err: Callable[[Any], None]) -> None:
        root.call_cb(method, args, lambda r: err(r) if isinstance(r, ConnectionError) else ok(r))

    def call_later(self, delay: float, f: Callable[[], None]) -> None:
        self.loop.call_later(delay, f)

    def run(self) -> None:
        self.loop.run_forever()

    def stop(self) -> None:
        self.loop.stop()


def _loop(system: str, port: int) -> Any:
    if system.startswith("pbroker"):
        from bench.sys_pbroker import _PbrokerLoop

        return _PbrokerLoop(port)
    return _FloorLoop(port)


def _conns(loop: Any, nconn: int, cfg: Cfg) -> dict[str, Any]:
    """One client process's share of the connections curve (READY/GO handshake as in E)."""
    roots: list[Any] = []
    lat: list[int] = []
    st: dict[str, Any] = {"pending": nconn, "in_flight": 0, "phase": "connect", "active": 0, "ok": 0,
                          "t_start": 0.0, "t_end": 0.0, "error": ""}
    pc = time.perf_counter_ns

    def connect_next() -> None:
        while st["pending"] and st["in_flight"] < cfg.e_connect_concurrency:
            st["pending"] -= 1
            st["in_flight"] += 1
            loop.connect(lambda root: loop.call(root, "add", (1, 2), lambda _r: up(root), down), down)

    def up(root: Any) -> None:
        st["in_flight"] -= 1
        roots.append(root)
        after_connect()

    def down(_f: Any) -> None:
        st["in_flight"] -= 1
        after_connect()

    def after_connect() -> None:
        if st["phase"] != "connect":
            return
        if st["pending"]:
            connect_next()
        elif st["in_flight"] == 0:
            go()

    def go() -> None:
        st["phase"] = "calls"
        e_sync(len(roots), nconn - len(roots))
        st["t_start"] = time.monotonic()
        end = pc() + int(cfg.c_duration * 1e9)
        st["active"] = len(roots)
        if not roots:
            finish()
        for root in roots:
            chain(root, end)

    def chain(root: Any, end: int) -> None:
        sent = pc()

        def ok(_r: Any) -> None:
            t = pc()
            lat.append(t - sent)
            st["ok"] += 1
            if t < end:
                chain(root, end)
            else:
                one_done()

        loop.call(root, "add", (1, 2), ok, lambda _f: one_done())

    def one_done() -> None:
        st["active"] -= 1
        if st["active"] == 0:
            finish()

    def finish() -> None:
        if st["phase"] != "done":
            st["phase"] = "done"
            st["t_end"] = time.monotonic()
            loop.stop()

    def deadline() -> None:
        if st["phase"] == "connect":
            go()
        elif st["phase"] != "done":
            st["error"] = "timeout"
            finish()

    loop.call_later(0, connect_next)
    loop.call_later(cfg.e_connect_timeout, deadline)
    loop.call_later(cfg.e_connect_timeout + cfg.c_duration + cfg.e_call_timeout, deadline)
    loop.run()
    return {"ok": st["ok"], "connected": len(roots), "t_start": st["t_start"], "t_end": st["t_end"],
            "lat": lat, "error": st["error"]}


def _sequence(loop: Any, steps: list[Callable[[Any, Callable[[], None]], None]], timeout: float) -> Any:
    """Connect, then run `steps` one after another; each is step(root, next). Returns the root."""
    out: dict[str, Any] = {}

    def fail(f: Any) -> None:
        out.setdefault("error", f)
        loop.stop()

    def got_root(root: Any) -> None:
        it = iter(steps)

        def nxt() -> None:
            step = next(it, None)
            if step is None:
                loop.stop()
            else:
                step(root, nxt)

        out["fail"] = fail
        nxt()

    loop.connect(got_root, fail)
    loop.call_later(timeout, lambda: fail("timeout"))
    loop.run()
    if "error" in out:
        raise RuntimeError(f"curve client failed: {out['error']}")
    return out


def _timed_calls(loop: Any, root: Any, method: str, args: tuple[Any, ...], seconds: float, min_calls: int,
                 done: Callable[[int, float, list[int]], None], fail: Callable[[Any], None]) -> None:
    """Chain calls until `seconds` have passed and at least `min_calls` were made."""
    pc = time.perf_counter_ns
    lat: list[int] = []
    t0 = pc()
    end = t0 + int(seconds * 1e9)

    def one(sent: int) -> None:
        def ok(_r: Any) -> None:
            t = pc()
            lat.append(t - sent)
            if t < end or len(lat) < min_calls:
                one(t)
            else:
                done(len(lat), (t - t0) / 1e9, lat)

        loop.call(root, method, args, ok, fail)

    one(t0)


def _payload(loop: Any, cfg: Cfg) -> dict[str, Any]:
    points: list[dict[str, Any]] = []
    holder: dict[str, Any] = {}

    def step_for(size: int) -> Callable[[Any, Callable[[], None]], None]:
        def step(root: Any, nxt: Callable[[], None]) -> None:
            data = payload(size)
            big = size >= 16 * 2**20

            def measured(n: int, el: float, lat: list[int]) -> None:
                p50, p99 = latency_stats(lat)
                points.append({"size": size, "calls_s": n / el, "mb_s": n * size / el / 1e6, "p50_us": p50,
                               "p99_us": p99, "calls": n})
                nxt()

            def warm(_n: int, _el: float, _lat: list[int]) -> None:
                _timed_calls(loop, root, "echo", (data,), 0 if big else min(cfg.c_duration, 0.5) * 0.8,
                             2 if big else 5, measured, fail)

            _timed_calls(loop, root, "echo", (data,), 0, 1, warm, fail)

        return step

    def fail(f: Any) -> None:
        holder["error"] = str(f)
        loop.stop()

    _sequence(loop, [step_for(s) for s in cfg.c_sizes], 300)
    if "error" in holder:
        raise RuntimeError(holder["error"])
    return {"points": points}


def _refs(loop: Any, cfg: Cfg) -> dict[str, Any]:
    points: list[dict[str, Any]] = []
    held: list[Any] = []
    holder: dict[str, Any] = {}

    def fail(f: Any) -> None:
        holder["error"] = str(f)
        loop.stop()

    def baseline(root: Any, nxt: Callable[[], None]) -> None:
        loop.call(root, "rss", (), lambda r: (holder.__setitem__("rss0", r), nxt()), fail)

    def step_for(level: int) -> Callable[[Any, Callable[[], None]], None]:
        def step(root: Any, nxt: Callable[[], None]) -> None:
            t_grow = time.perf_counter()

            def grow() -> None:
                need = level - len(held)
                if need > 0:
                    loop.call(root, "make_refs", (min(need, 10_000),), lambda refs: (held.extend(refs), grow()), fail)
                    return
                grown = time.perf_counter() - t_grow
                _timed_calls(loop, root, "add", (1, 2), cfg.c_duration / 2, 5,
                             lambda n, el, lat: measured(n, el, lat, grown), fail)

            def measured(n: int, el: float, lat: list[int], grown: float) -> None:
                p50, p99 = latency_stats(lat)

                def got_rss(rss: int) -> None:
                    points.append({"refs": level, "calls_s": n / el, "p50_us": p50, "p99_us": p99, "rss": rss,
                                   "grow_s": grown})
                    nxt()

                loop.call(root, "rss", (), got_rss, fail)

            grow()

        return step

    _sequence(loop, [baseline] + [step_for(lv) for lv in cfg.c_refs], 600)
    if "error" in holder:
        raise RuntimeError(holder["error"])
    return {"points": points, "rss0": holder.get("rss0")}


def _soak(loop: Any, cfg: Cfg) -> dict[str, Any]:
    samples: list[tuple[int, int]] = []
    holder: dict[str, Any] = {}
    window = cfg.pipeline

    def fail(f: Any) -> None:
        holder["error"] = str(f)
        loop.stop()

    def run(root: Any, nxt: Callable[[], None]) -> None:
        st = {"sent": 0, "done": 0, "t0": time.perf_counter()}

        def sample(at: int) -> None:
            loop.call(root, "rss", (), lambda r: samples.append((at, r)), fail)

        def issue() -> None:
            st["sent"] += 1
            loop.call(root, "add", (1, 2), got, fail)

        def got(_r: Any) -> None:
            st["done"] += 1
            d = st["done"]
            if d % cfg.soak_every == 0:
                sample(d)
            if st["sent"] < cfg.soak_calls:
                issue()
            elif d == cfg.soak_calls:
                holder["elapsed"] = time.perf_counter() - st["t0"]
                loop.call(root, "rss", (), lambda _r: nxt(), fail)  # the last sample's answer is in first

        sample(0)
        for _ in range(min(window, cfg.soak_calls)):
            issue()

    _sequence(loop, [run], 900)
    if "error" in holder:
        raise RuntimeError(holder["error"])
    return {"samples": sorted(samples), "elapsed": holder.get("elapsed", 0.0)}


def client(system: str, kind: str, port: int, cfg: Cfg, extra: list[str]) -> dict[str, Any]:
    """Worker entry: run one curve against `port`; the dict is printed as the RESULT line."""
    loop = _loop(system, port)
    if kind == "conns":
        return _conns(loop, int(extra[0]), cfg)
    if kind == "payload":
        return _payload(loop, cfg)
    if kind == "refs":
        return _refs(loop, cfg)
    if kind == "soak":
        return _soak(loop, cfg)
    raise ValueError(f"unknown curve {kind!r}")


# -- orchestrator side ---------------------------------------------------------------------------

def fd_cap() -> tuple[int, str]:
    """Most connections one curve point may open here, and why (descriptors or local ports)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    fds = 1 << 20 if hard == resource.RLIM_INFINITY else hard
    try:
        lo, hi = map(int, open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
        ports = hi - lo + 1
    except (OSError, ValueError):
        ports = 28_000
    cap = min(fds - 200, ports - 1000)
    why = f"RLIMIT_NOFILE hard limit {hard}" if fds - 200 <= ports - 1000 else f"{ports} local ports"
    return cap, why


def run_curves(cfg: Cfg, progress: Callable[[str], None]) -> dict[str, Any]:
    """Every curve; {"conns"|"payload": {system: [...]}, "refs": {...}, "soak": {...}, "notes": [...]}."""
    import psutil

    from bench.runner import WORK, Proc, System, _start_server

    out: dict[str, Any] = {"conns": {}, "payload": {}, "refs": {}, "soak": {}, "notes": []}
    cap, why = fd_cap()
    WORK.mkdir(parents=True, exist_ok=True)
    with open(WORK / "curves.log", "w") as log:
        systems = [System(key, label, "", env) for key, label, env in CURVE_SYSTEMS]

        def one_client(sysm: System, port: int, kind: str, timeout: float) -> dict[str, Any]:
            c = Proc([sysm.key, "curve", kind, str(port), cfg.to_json()], sysm.env, log)
            try:
                return json.loads(c.expect("RESULT ", timeout))
            except Exception as e:
                return {"error": f"{type(e).__name__}: {e}"}
            finally:
                c.stop()

        # connections: every N, systems interleaved at each N
        for n in cfg.c_conns:
            n_run = min(n, cap)
            if n_run < n:
                out["notes"].append(f"connections: {n:,} capped to {n_run:,} ({why})")
            for sysm in systems:
                t0 = time.monotonic()
                res = _conns_point(sysm, n_run, cfg, log, psutil, Proc, _start_server)
                res["requested"] = n
                out["conns"].setdefault(sysm.key, []).append(res)
                progress(f"curve conns {sysm.label} N={n_run}: {_brief(res)} ({time.monotonic() - t0:.1f}s)")
        for kind in ("payload", "refs", "soak"):
            for sysm in systems:
                if kind not in FLOOR_CURVES and not sysm.key.startswith("pbroker"):
                    continue
                t0 = time.monotonic()
                try:
                    server, port = _start_server(sysm, log)
                except Exception as e:
                    res = {"error": f"server: {e}"}
                else:
                    try:
                        res = one_client(sysm, port, kind, 900)
                    finally:
                        server.stop()
                if kind == "payload":
                    out["payload"][sysm.key] = res
                else:
                    out[kind] = res
                progress(f"curve {kind} {sysm.label}: {'ERROR ' + res['error'] if res.get('error') else 'ok'} "
                         f"({time.monotonic() - t0:.1f}s)")
    return out


def _brief(res: dict[str, Any]) -> str:
    if "calls_s" not in res:
        return "ERROR " + str(res.get("error"))
    return (f"{res['calls_s']:,.0f} calls/s, p99 {res['p99_us']:,.0f} µs, {res['kib_per_conn']:.1f} KiB/conn"
            + (f" [{res['error']}]" if res.get("error") else ""))


def _conns_point(sysm: Any, n: int, cfg: Cfg, log: Any, psutil: Any, Proc: Any, start_server: Any) -> dict[str, Any]:
    procs = 1 if n < 100 else cfg.e_procs
    shares = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
    try:
        server, port = start_server(sysm, log)
    except Exception as e:
        return {"n": n, "error": f"server: {e}"}
    clients: list[Any] = []
    try:
        ps = psutil.Process(server.p.pid)
        rss_before = ps.memory_info().rss
        clients = [Proc([sysm.key, "curve", "conns", str(port), cfg.to_json(), str(k)], sysm.env, log, stdin=True)
                   for k in shares if k]
        connected = sum(json.loads(c.expect("READY ", cfg.e_connect_timeout + 30))["connected"] for c in clients)
        rss_idle = ps.memory_info().rss
        for c in clients:
            c.send("GO\n")
        results = [json.loads(c.expect("RESULT ", cfg.c_duration + cfg.e_call_timeout + 30)) for c in clients]
        lat = [x for r in results for x in r.get("lat", [])]
        ok = sum(r.get("ok", 0) for r in results)
        span = max(r["t_end"] for r in results) - min(r["t_start"] for r in results)
        p50, p99 = latency_stats(lat)
        errors = sorted({r["error"] for r in results if r.get("error")})
        if connected < n:
            errors.append(f"{n - connected} of {n} connections failed")
        return {"n": n, "connected": connected, "calls_s": ok / span if span > 0 else 0.0, "p50_us": p50,
                "p99_us": p99, "kib_per_conn": (rss_idle - rss_before) / 1024 / max(connected, 1),
                "rss_before_mib": rss_before / 2**20, "rss_idle_mib": rss_idle / 2**20,
                "error": "; ".join(errors)}
    except Exception as e:
        return {"n": n, "error": f"{type(e).__name__}: {e}"}
    finally:
        for c in clients:
            c.stop()
        server.stop()
