"""pbroker itself: once per reactor backend (PBROKER_REACTOR=select|poll|epoll|asyncio) with the
Deferred-style client, and once per other client style against the epoll server.

Client styles (PBROKER_BENCH_STYLE):

* ``deferred`` (default): like Twisted PB, A/C/D chain call_remote after call_remote from
  callbacks, B keeps 100 Deferreds in flight on one connection.
* ``await``: ``await root.call_remote(...)`` in coroutines run by ``ensure_deferred`` on the
  client's pbroker reactor (B: 100 such coroutines on one connection).
* ``aio``: ``broker.aio`` on a plain ``asyncio.run`` loop (B: 100 asyncio tasks).
* ``blocking``: ``broker.blocking`` (B: 100 threads sharing one connection; E: a thread per
  connection).

The orchestrator sets PBROKER_REACTOR in both the server's and the client's environment
(the aio and blocking clients run no pbroker reactor of their own). PBROKER_BENCH_LIMITS=big
(the cost curves) raises the frame size and live-reference limits on both sides so 64 MiB
payloads and 10^6 references fit.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from bench.common import (BLOB, SMALL_DICTS, Cfg, EResult, Sample, async_e, async_pipelined, async_sequential,
                          callback_client, callback_e_client, ready, threaded_e_client, threaded_pipelined,
                          timed_loop)

NAME = "pbroker"
LABEL = "pbroker"
SCENARIOS = "ABCDE"
IDIOMS = {
    "B": "100 call_remote Deferreds in flight on one connection",
    "E": "1 reactor per client process, each connection chains call_remote",
}
NOTES: list[str] = []
BACKENDS = ("select", "poll", "epoll", "asyncio")
#: Client styles beyond the Deferred one, each measured against the epoll server only.
STYLES = ("await", "aio", "blocking")
STYLE_IDIOMS = {
    "deferred": IDIOMS,
    "await": {
        "B": "100 coroutines (ensure_deferred on the client reactor) awaiting call_remote on one connection",
        "E": "1 reactor per client process, a coroutine per connection",
    },
    "aio": {
        "B": "100 asyncio tasks awaiting call_remote on one connection (broker.aio)",
        "E": "1 asyncio loop per client process, a coroutine per connection",
    },
    "blocking": {
        "B": "100 threads sharing one broker.blocking connection",
        "E": "thread per connection (broker.blocking)",
    },
}

__all__ = [
    "NAME", "LABEL", "SCENARIOS", "IDIOMS", "NOTES", "BACKENDS",
    "unavailable", "version", "serve", "client", "e_client",
]


def unavailable(backend: str | None = None) -> str | None:
    """Why pbroker can't be measured (yet), or None: the broker is still being written."""
    try:
        import broker
        from net.reactor import available_reactors, make_reactor  # noqa: F401
    except Exception as e:  # a half-written package may raise anything on import
        return f"not available ({type(e).__name__}: {e})"
    missing = [n for n in ("Root", "serve", "connect") if not hasattr(broker, n)]
    if missing:
        return f"not available (broker lacks {', '.join(missing)})"
    if backend is not None:
        try:
            if backend not in available_reactors():
                return f"reactor {backend!r} not available here"
        except Exception as e:
            return f"not available ({type(e).__name__}: {e})"
    return None


def version() -> str:
    try:
        from importlib.metadata import version as dist_version

        return dist_version("pbroker")
    except Exception:
        return "source"


def _limits() -> Any:
    """None (the defaults) unless PBROKER_BENCH_LIMITS=big: then room for 64 MiB frames, 10^6 refs."""
    if os.environ.get("PBROKER_BENCH_LIMITS") != "big":
        return None
    from broker import Limits

    return Limits(max_frame_size=96 * 2**20, max_live_references=2_000_000, max_container_length=2**21)


def _opts() -> dict[str, Any]:
    lim = _limits()
    return {"limits": lim} if lim is not None else {}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def serve() -> None:
    from net.reactor import make_reactor

    reactor = make_reactor()  # picks PBROKER_REACTOR
    from broker import Referenceable, Root, serve as broker_serve

    class Leaf(Referenceable):  # type: ignore[misc, valid-type]
        def remote_ping(self) -> int:
            return 1

    class Calc(Root):  # type: ignore[misc, valid-type]
        def remote_add(self, a: int, b: int) -> int:
            return a + b

        def remote_echo(self, x: Any) -> Any:
            return x

        def remote_make_refs(self, n: int) -> list[Any]:  # the live-references curve
            return [Leaf() for _ in range(n)]

        def remote_rss(self) -> int:  # the curves read the server's RSS through the broker itself
            return _rss_bytes()

    d = broker_serve(reactor, "tcp:0:interface=127.0.0.1", Calc(), **_opts())
    d.add_callback(lambda port: ready(port.get_host().port))
    d.add_errback(lambda f: (print(f"serve failed: {f}", flush=True), reactor.stop()))
    reactor.run()


class _PbrokerLoop:
    """CallbackLoop adapter over a pbroker reactor and broker.connect."""

    def __init__(self, port: int) -> None:
        from net.reactor import make_reactor

        self.reactor: Any = make_reactor()
        self.port = port

    def connect(self, ok: Callable[[Any], None], err: Callable[[Any], None]) -> None:
        import broker

        d = broker.connect(self.reactor, f"tcp:127.0.0.1:{self.port}", **_opts())
        d.add_callback(ok)
        d.add_errback(err)

    def call(self, root: Any, method: str, args: tuple[Any, ...], ok: Callable[[Any], None], err: Callable[[Any], None]) -> None:
        d = root.call_remote(method, *args)
        d.add_callback(ok)
        d.add_errback(err)

    def call_later(self, delay: float, f: Callable[[], None]) -> None:
        self.reactor.call_later(delay, f)

    def run(self) -> None:
        self.reactor.run()

    def stop(self) -> None:
        if self.reactor.running:
            self.reactor.stop()


def style() -> str:
    return os.environ.get("PBROKER_BENCH_STYLE", "deferred")


def _call_for(scenario: str) -> tuple[str, tuple[Any, ...]]:
    return {"A": ("add", (1, 2)), "B": ("add", (1, 2)), "C": ("echo", (BLOB,)), "D": ("echo", (SMALL_DICTS,))}[scenario]


async def _coro_scenario(root: Any, scenario: str, cfg: Cfg, gather: Callable[[list[Any]], Any]) -> Sample:
    method, args = _call_for(scenario)
    call = lambda: root.call_remote(method, *args)  # noqa: E731
    if scenario == "B":
        await async_pipelined(call, cfg.warmup, cfg.pipeline, gather)
        return await async_pipelined(call, cfg.duration, cfg.pipeline, gather)
    await async_sequential(call, cfg.warmup, False)
    return await async_sequential(call, cfg.duration, scenario == "A")


def _deferred_gather(coros: list[Any]) -> Any:
    from net.defer import ensure_deferred, gather

    return gather(*[ensure_deferred(c) for c in coros])


def _run_on_reactor(main: Callable[[Any], Any], timeout: float) -> Any:
    """Run coroutine `main(reactor)` with ensure_deferred on a fresh pbroker reactor; its result."""
    from net.defer import Failure, ensure_deferred
    from net.reactor import make_reactor

    reactor = make_reactor()
    out: dict[str, Any] = {}

    def start() -> None:
        def done(r: Any) -> None:
            out["r"] = r
            if reactor.running:
                reactor.stop()

        ensure_deferred(main(reactor)).add_both(done)

    reactor.call_later(0, start)
    reactor.call_later(timeout, lambda: (out.setdefault("r", RuntimeError("timeout")), reactor.stop()))
    reactor.run()
    r = out.get("r")
    if isinstance(r, Failure):
        raise RuntimeError(f"client failed: {r.value!r}")
    if isinstance(r, BaseException):
        raise r
    return r


def _aio_gather(coros: list[Any]) -> Any:
    import asyncio

    return asyncio.gather(*coros)


def client(scenario: str, port: int, cfg: Cfg) -> Sample:
    st = style()
    endpoint = f"tcp:127.0.0.1:{port}"
    limit = cfg.warmup + cfg.duration + cfg.scenario_timeout
    if st == "deferred":
        return callback_client(_PbrokerLoop(port), scenario, cfg)
    if st == "await":
        import broker

        async def main(reactor: Any) -> Sample:
            root = await broker.connect(reactor, endpoint, **_opts())
            return await _coro_scenario(root, scenario, cfg, _deferred_gather)

        return _run_on_reactor(main, limit)
    if st == "aio":
        import asyncio

        import broker.aio

        async def amain() -> Sample:
            async with broker.aio.connect(endpoint, **_opts()) as root:
                return await _coro_scenario(root, scenario, cfg, _aio_gather)

        return asyncio.run(asyncio.wait_for(amain(), limit))
    if st == "blocking":
        import broker.blocking

        conn = broker.blocking.connect(endpoint, timeout=limit, **_opts())
        method, args = _call_for(scenario)
        call = lambda: conn.root.call_remote(method, *args)  # noqa: E731
        if scenario == "B":
            threaded_pipelined(call, cfg.warmup, cfg.pipeline)
            s = threaded_pipelined(call, cfg.duration, cfg.pipeline)
        else:
            timed_loop(call, cfg.warmup)
            s = timed_loop(call, cfg.duration, record=scenario == "A")
        conn.close()
        return s
    raise ValueError(f"unknown PBROKER_BENCH_STYLE {st!r}")


def e_client(port: int, nconn: int, cfg: Cfg) -> EResult:
    st = style()
    endpoint = f"tcp:127.0.0.1:{port}"
    if st == "deferred":
        return callback_e_client(_PbrokerLoop(port), nconn, cfg)
    if st == "await":
        import broker

        async def main(reactor: Any) -> EResult:
            async def open_conn() -> Any:
                root = await broker.connect(reactor, endpoint)
                return lambda: root.call_remote("add", 1, 2)

            return await async_e(open_conn, nconn, cfg, _deferred_gather)

        return _run_on_reactor(main, cfg.e_connect_timeout + cfg.e_call_timeout + 10)
    if st == "aio":
        import asyncio

        import broker.aio
        from broker import api

        async def amain() -> EResult:
            reactor = await broker.aio.get_reactor()

            async def open_conn() -> Any:
                root = await api.connect(reactor, endpoint)
                return lambda: root.call_remote("add", 1, 2)

            return await async_e(open_conn, nconn, cfg, _aio_gather)

        return asyncio.run(amain())
    if st == "blocking":
        import broker.blocking

        return threaded_e_client(lambda: broker.blocking.connect(endpoint, timeout=cfg.e_call_timeout),
                                 lambda c: (lambda a, b: c.root.call_remote("add", a, b)), nconn, cfg)
    raise ValueError(f"unknown PBROKER_BENCH_STYLE {st!r}")
