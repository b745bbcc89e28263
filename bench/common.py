"""Pieces shared by every system module and the orchestrator.

Kept free of any peer import so that `python -m bench` can check for missing
packages before touching Twisted, Pyro5 or RPyC.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import sys
import threading
import time
from typing import Any, Callable, Protocol

__all__ = [
    "Cfg",
    "Sample",
    "SMALL_DICTS",
    "MIB",
    "BLOB",
    "latency_stats",
    "emit",
    "ready",
    "e_sync",
    "EResult",
    "timed_loop",
    "threaded_e_client",
    "CallbackLoop",
    "callback_client",
    "callback_e_client",
    "async_sequential",
    "async_pipelined",
    "async_e",
    "threaded_pipelined",
    "payload",
]

MIB = 1024 * 1024
#: Scenario C payload: 1 MiB of bytes (not all zeros, so nothing can cheat by compressing).
BLOB: bytes = bytes(range(256)) * (MIB // 256)
#: Scenario D payload: 1,000 small dicts of the kind an RPC API returns.
SMALL_DICTS: list[dict[str, Any]] = [
    {"id": i, "name": f"item-{i}", "value": i * 1.5} for i in range(1000)
]


def payload(size: int) -> bytes:
    """`size` bytes that don't compress to nothing (the payload curve's echo argument)."""
    return (BLOB * (size // len(BLOB) + 1))[:size] if size > len(BLOB) else BLOB[:size]


@dataclasses.dataclass
class Cfg:
    """Run sizes; one object travels as JSON from the orchestrator to every client process."""

    runs: int = 3  # A-D runs per figure (median reported)
    e_runs: int = 1  # E runs: one full E pass over every system takes ~5 min on 2 cores, so 1 by default
    warmup: float = 0.3  # seconds of unrecorded calls before each A-D measurement
    duration: float = 1.5  # seconds measured per A-D scenario
    pipeline: int = 100  # B: calls outstanding
    e_conns: int = 1000  # E: total client connections
    e_calls: int = 100  # E: calls per connection
    e_procs: int = 4  # E: client processes sharing the connections
    e_connect_concurrency: int = 12  # E: connects in flight per client process (listen backlogs are ~50)
    e_connect_timeout: float = 60.0  # E: time allowed to open every connection
    e_call_timeout: float = 120.0  # E: time allowed for every call (Pyro5 needs ~80 s on 2 cores)
    scenario_timeout: float = 15.0  # A-D: hard limit per client process beyond warmup+duration
    # Cost curves (bench/curves.py), pbroker/epoll with the Deferred client unless said otherwise.
    c_conns: list[int] = dataclasses.field(default_factory=lambda: [1, 10, 100, 1000, 10000])
    c_sizes: list[int] = dataclasses.field(default_factory=lambda: [4**k for k in range(14)])  # 1 B .. 64 MiB
    c_refs: list[int] = dataclasses.field(default_factory=lambda: [10**k for k in range(7)])  # 1 .. 10^6
    c_duration: float = 1.5  # seconds of calls per curve point
    soak_calls: int = 1_000_000
    soak_every: int = 100_000  # server RSS sampled every this many calls

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "Cfg":
        return cls(**json.loads(text))

    @classmethod
    def quick(cls) -> "Cfg":
        """Smoke sizes: proves every path works, the figures mean little."""
        return cls(
            runs=1, e_runs=1, warmup=0.05, duration=0.2, e_conns=40, e_calls=10, e_procs=2,
            e_connect_timeout=15.0, e_call_timeout=15.0, scenario_timeout=10.0,
            c_conns=[1, 10, 100], c_sizes=[1, 1024, 1024**2], c_refs=[1, 100, 10_000], c_duration=0.2,
            soak_calls=20_000, soak_every=5_000,
        )


@dataclasses.dataclass
class Sample:
    """What a timed loop measured: call count, elapsed seconds, optional per-call latencies (ns)."""

    calls: int
    elapsed: float
    latencies_ns: list[int] = dataclasses.field(default_factory=list)

    def rate(self) -> float:
        return self.calls / self.elapsed if self.elapsed > 0 else 0.0


def latency_stats(lat_ns: list[int]) -> tuple[float, float]:
    """p50 and p99 in microseconds."""
    if not lat_ns:
        return (float("nan"), float("nan"))
    s = sorted(lat_ns)
    p50 = statistics.median(s)
    p99 = s[min(len(s) - 1, int(len(s) * 0.99))]
    return (p50 / 1000.0, p99 / 1000.0)


def sample_to_metrics(scenario: str, s: Sample) -> dict[str, float]:
    """Turn a raw sample into the figures the report shows for that scenario."""
    if scenario == "A":
        p50, p99 = latency_stats(s.latencies_ns)
        return {"calls_s": s.rate(), "p50_us": p50, "p99_us": p99}
    if scenario == "C":
        return {"mb_s": s.calls * len(BLOB) / s.elapsed / 1e6 if s.elapsed else 0.0}
    return {"calls_s": s.rate()}


def emit(obj: dict[str, Any]) -> None:
    """Client processes report with one JSON line on stdout; the orchestrator reads the last one."""
    sys.stdout.write("RESULT " + json.dumps(obj) + "\n")
    sys.stdout.flush()


def ready(port: int) -> None:
    """Servers announce readiness by printing their port; the orchestrator waits for this line."""
    sys.stdout.write(f"{port}\n")
    sys.stdout.flush()


def e_sync(connected: int, failed: int) -> None:
    """E handshake: say how many connections are up, then block until the orchestrator says GO.

    Blocking here is deliberate: it keeps every connection idle while the
    orchestrator samples the server's RSS.
    """
    sys.stdout.write("READY " + json.dumps({"connected": connected, "failed": failed}) + "\n")
    sys.stdout.flush()
    sys.stdin.readline()


@dataclasses.dataclass
class EResult:
    """One E client process's outcome; times are time.monotonic() (shared across processes on Linux)."""

    ok: int = 0
    failed: int = 0
    t_start: float = 0.0
    t_end: float = 0.0
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def timed_loop(call: Callable[[], Any], seconds: float, record: bool = False) -> Sample:
    """Blocking clients' A/C/D loop: call until `seconds` pass, optionally recording each latency."""
    lat: list[int] = []
    n = 0
    pc = time.perf_counter_ns
    t0 = pc()
    end = t0 + int(seconds * 1e9)
    now = t0
    while now < end:
        call()
        t = pc()
        if record:
            lat.append(t - now)
        now = t
        n += 1
    return Sample(n, (now - t0) / 1e9, lat)


def threaded_e_client(open_conn: Callable[[], Any], get_add: Callable[[Any], Any], nconn: int, cfg: Cfg) -> EResult:
    """Thread-per-connection E client (Pyro5 and RPyC both work this way).

    Each thread opens its connection (at most e_connect_concurrency at once, to
    stay within listen backlogs), makes one call so the server has fully set the
    connection up, then waits for GO and makes its e_calls calls.  Calls are
    counted as they complete, so a run cut off by e_call_timeout still yields a
    rate; connections are left for process exit to close so teardown isn't timed.
    """
    res = EResult()
    lock = threading.Lock()
    gate = threading.Semaphore(cfg.e_connect_concurrency)
    go = threading.Event()
    all_up = threading.Event()
    counts = {"up": 0, "down": 0}
    done = [0] * nconn  # calls completed, one slot per thread (no lock needed)
    finished = [0.0] * nconn  # when each thread made its last call

    def settle(key: str) -> None:
        with lock:
            counts[key] += 1
            if counts["up"] + counts["down"] == nconn:
                all_up.set()

    def worker(i: int) -> None:
        try:
            with gate:
                conn = open_conn()
                add = get_add(conn)
                add(1, 2)
        except Exception:
            settle("down")
            return
        settle("up")
        go.wait()
        try:
            for _ in range(cfg.e_calls):
                add(1, 2)
                done[i] += 1
        except Exception:
            pass
        finished[i] = time.monotonic()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(nconn)]
    for t in threads:
        t.start()
    all_up.wait(cfg.e_connect_timeout)
    with lock:
        up = counts["up"]
    e_sync(up, nconn - up)
    res.t_start = time.monotonic()
    go.set()
    deadline = res.t_start + cfg.e_call_timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() for t in threads):
        res.error = "call timeout"
        res.t_end = time.monotonic()
    else:
        res.t_end = max(finished) or time.monotonic()
    res.ok = sum(done)
    res.failed = nconn * cfg.e_calls - res.ok
    return res


class CallbackLoop(Protocol):
    """What the Deferred-style drivers below need from a reactor + RPC library.

    Twisted PB and pbroker spell Deferreds and reactors differently
    (addCallbacks/callLater vs add_callback/call_later); a ten-line adapter per
    system lets both run the very same measurement loops.
    """

    def connect(self, ok: Callable[[Any], None], err: Callable[[Any], None]) -> None: ...
    def call(self, root: Any, method: str, args: tuple[Any, ...], ok: Callable[[Any], None], err: Callable[[Any], None]) -> None: ...
    def call_later(self, delay: float, f: Callable[[], None]) -> None: ...
    def run(self) -> None: ...
    def stop(self) -> None: ...


Issue = Callable[[Callable[[Any, int], None], int], None]


def chain_sequential(call: Issue, seconds: float, record: bool, done: Callable[[Sample], None]) -> None:
    """Chain call after call until `seconds` pass, then `done(Sample)`.

    `call(cb, sent)` issues one call and arranges `cb(result, sent)` on success.
    """
    lat: list[int] = []
    pc = time.perf_counter_ns
    t0 = pc()
    end = t0 + int(seconds * 1e9)
    n = 0

    def step(_res: Any, sent: int) -> None:
        nonlocal n
        t = pc()
        if record:
            lat.append(t - sent)
        n += 1
        if t >= end:
            done(Sample(n, (t - t0) / 1e9, lat))
        else:
            call(step, t)

    call(step, t0)


def chain_pipelined(call: Issue, seconds: float, window: int, done: Callable[[Sample], None]) -> None:
    """Keep `window` calls outstanding until `seconds` pass, drain, then `done(Sample)`."""
    pc = time.perf_counter_ns
    t0 = pc()
    end = t0 + int(seconds * 1e9)
    n = 0
    outstanding = 0

    def on_result(_res: Any, _sent: int) -> None:
        nonlocal n, outstanding
        n += 1
        t = pc()
        if t < end:
            call(on_result, t)
        else:
            outstanding -= 1
            if outstanding == 0:
                done(Sample(n, (t - t0) / 1e9, []))

    for _ in range(window):
        outstanding += 1
        call(on_result, t0)


def callback_client(loop: CallbackLoop, scenario: str, cfg: Cfg) -> Sample:
    """Scenarios A-D for a Deferred-style client: A/C/D chain calls, B keeps cfg.pipeline in flight."""
    out: dict[str, Any] = {}

    def fail(f: Any) -> None:
        if "sample" not in out:
            out.setdefault("error", f)
            loop.stop()

    def got_root(root: Any) -> None:
        method, args = {
            "A": ("add", (1, 2)), "B": ("add", (1, 2)), "C": ("echo", (BLOB,)), "D": ("echo", (SMALL_DICTS,)),
        }[scenario]

        def call(cb: Callable[[Any, int], None], sent: int) -> None:
            loop.call(root, method, args, lambda r: cb(r, sent), fail)

        def measured(s: Sample) -> None:
            out["sample"] = s
            loop.stop()

        if scenario == "B":
            chain_pipelined(call, cfg.warmup, cfg.pipeline,
                            lambda _s: chain_pipelined(call, cfg.duration, cfg.pipeline, measured))
        else:
            chain_sequential(call, cfg.warmup, False,
                             lambda _s: chain_sequential(call, cfg.duration, scenario == "A", measured))

    loop.connect(got_root, fail)
    loop.call_later(cfg.warmup + cfg.duration + cfg.scenario_timeout, lambda: fail("timeout"))
    loop.run()
    if "sample" not in out:
        raise RuntimeError(f"client failed: {out.get('error')}")
    return out["sample"]


def callback_e_client(loop: CallbackLoop, nconn: int, cfg: Cfg) -> EResult:
    """Scenario E share for a Deferred-style client: one loop, every connection chains its calls.

    Connections open at most e_connect_concurrency at a time (listen backlogs)
    and each makes one call so the server has fully set it up before RSS is read.
    """
    res = EResult()
    roots: list[Any] = []
    st = {"pending": nconn, "in_flight": 0, "down": 0, "active": 0, "phase": "connect", "last": 0.0}

    def connect_next() -> None:
        while st["pending"] and st["in_flight"] < cfg.e_connect_concurrency:
            st["pending"] -= 1
            st["in_flight"] += 1
            loop.connect(first_call, down)

    def first_call(root: Any) -> None:
        loop.call(root, "add", (1, 2), lambda _r: up(root), down)

    def up(root: Any) -> None:
        st["in_flight"] -= 1
        if st["phase"] == "connect":
            roots.append(root)
            after_connect()

    def down(_f: Any) -> None:
        st["in_flight"] -= 1
        st["down"] += 1
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
        res.t_start = time.monotonic()
        st["active"] = len(roots)
        if not roots:
            finish()
        for root in roots:
            chain(root, cfg.e_calls)

    def chain(root: Any, left: int) -> None:
        def ok(_r: Any) -> None:
            res.ok += 1
            if left > 1:
                chain(root, left - 1)
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
            res.t_end = time.monotonic()
            loop.stop()

    def connect_deadline() -> None:
        if st["phase"] == "connect":
            go()

    def call_deadline() -> None:
        if st["phase"] != "done":
            res.error = "call timeout"
            finish()

    loop.call_later(0, connect_next)
    loop.call_later(cfg.e_connect_timeout, connect_deadline)
    loop.call_later(cfg.e_connect_timeout + cfg.e_call_timeout, call_deadline)
    loop.run()
    res.failed = nconn * cfg.e_calls - res.ok
    return res


# -- coroutine- and thread-style drivers (await / broker.aio / gRPC / broker.blocking) -----------

AsyncCall = Callable[[], Any]  # a function returning an awaitable of one call's result


async def async_sequential(call: AsyncCall, seconds: float, record: bool) -> Sample:
    """`await call()` after `await call()` until `seconds` pass (A/C/D for coroutine clients)."""
    lat: list[int] = []
    pc = time.perf_counter_ns
    t0 = pc()
    end = t0 + int(seconds * 1e9)
    now, n = t0, 0
    while now < end:
        await call()
        t = pc()
        if record:
            lat.append(t - now)
        now, n = t, n + 1
    return Sample(n, (now - t0) / 1e9, lat)


async def async_pipelined(call: AsyncCall, seconds: float, window: int,
                          gather: Callable[[list[Any]], Any]) -> Sample:
    """B for coroutine clients: `window` coroutines on one connection, each awaiting call after call.

    `gather(coros)` runs them concurrently (asyncio.gather, or ensure_deferred + a DeferredList).
    """
    pc = time.perf_counter_ns
    t0 = pc()
    end = t0 + int(seconds * 1e9)
    count = [0]

    async def worker() -> None:
        n = 0
        while pc() < end:
            await call()
            n += 1
        count[0] += n

    await gather([worker() for _ in range(window)])
    return Sample(count[0], (pc() - t0) / 1e9, [])


async def async_e(open_conn: Callable[[], Any], nconn: int, cfg: "Cfg",
                  gather: Callable[[list[Any]], Any]) -> EResult:
    """Scenario E share for coroutine clients: `open_conn()` is a coroutine giving an async `add()`.

    Connections open e_connect_concurrency at a time, each making one call first; then
    (after the READY/GO handshake) every connection runs its e_calls calls as a coroutine.
    """
    res = EResult()
    adds: list[Any] = []

    async def one() -> Any:
        try:
            add = await open_conn()
            await add()
            return add
        except Exception:
            return None

    step = cfg.e_connect_concurrency
    for i in range(0, nconn, step):
        got = await gather([one() for _ in range(min(step, nconn - i))])
        adds += [a for a in got if a is not None]
    e_sync(len(adds), nconn - len(adds))
    ok = [0]
    last = [0.0]

    async def calls(add: Any) -> None:
        try:
            for _ in range(cfg.e_calls):
                await add()
                ok[0] += 1
        except Exception:
            pass
        last[0] = time.monotonic()

    res.t_start = time.monotonic()
    await gather([calls(a) for a in adds])
    res.t_end = last[0] or time.monotonic()
    res.ok = ok[0]
    res.failed = nconn * cfg.e_calls - ok[0]
    return res


def threaded_pipelined(call: Callable[[], Any], seconds: float, threads: int) -> Sample:
    """B for blocking clients: `threads` threads sharing one connection, each calling in a loop."""
    pc = time.perf_counter_ns
    counts = [0] * threads
    t0 = pc()
    end = t0 + int(seconds * 1e9)

    def worker(i: int) -> None:
        n = 0
        while pc() < end:
            call()
            n += 1
        counts[i] = n

    ts = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return Sample(sum(counts), (pc() - t0) / 1e9, [])
