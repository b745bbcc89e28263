"""Pyro5 with its threadpool server and the msgpack serializer.

msgpack rather than the default serpent: it is Pyro5's fastest serializer and
the only one that carries bytes natively (serpent turns them into base64 dicts),
so the comparison is against Pyro5 at its best.  B uses Pyro5's own pipelining
idiom, BatchProxy: 100 calls travel in one request message and come back in one
reply, on one connection (a Pyro5 proxy belongs to one thread, so the
alternative — 100 threads — would mean 100 connections).  The threadpool
server holds one worker thread per connection for the connection's lifetime, so
E needs THREADPOOL_SIZE raised above 1,000.
"""

from __future__ import annotations

from typing import Any

from bench.common import BLOB, SMALL_DICTS, Cfg, EResult, Sample, ready, threaded_e_client, timed_loop

NAME = "pyro5"
LABEL = "Pyro5"
SCENARIOS = "ABCDE"
IDIOMS = {
    "B": "BatchProxy: 100 calls per batch message (one connection)",
    "E": "thread per connection (proxies are thread-owned); server THREADPOOL_SIZE=1100",
}
NOTES = [
    "Pyro5: SERIALIZER=msgpack (its fastest; default serpent base64-encodes bytes); "
    "threadpool server with THREADPOOL_SIZE raised from 80 to 1100 so 1,000 connections fit "
    "(each connection holds a server thread for its lifetime).",
]

__all__ = ["NAME", "LABEL", "SCENARIOS", "IDIOMS", "NOTES", "unavailable", "version", "serve", "client", "e_client"]


def unavailable() -> str | None:
    try:
        import Pyro5.api  # noqa: F401
        import msgpack  # noqa: F401
    except ImportError as e:
        return f"not installed ({e})"
    return None


def version() -> str:
    import Pyro5

    return Pyro5.__version__


def _configure() -> None:
    from Pyro5 import config

    config.SERIALIZER = "msgpack"
    config.THREADPOOL_SIZE = 1100
    config.SERVERTYPE = "thread"


def serve() -> None:
    _configure()
    import Pyro5.api

    @Pyro5.api.expose
    class Calc:
        def add(self, a: int, b: int) -> int:
            return a + b

        def echo(self, x: Any) -> Any:
            return x

    daemon = Pyro5.api.Daemon(host="127.0.0.1", port=0)
    daemon.register(Calc(), "calc")
    ready(daemon.sock.getsockname()[1])
    daemon.requestLoop()


def _proxy(port: int) -> Any:
    import Pyro5.api

    return Pyro5.api.Proxy(f"PYRO:calc@127.0.0.1:{port}")


def client(scenario: str, port: int, cfg: Cfg) -> Sample:
    _configure()
    import Pyro5.api

    proxy = _proxy(port)
    proxy._pyroBind()
    if scenario == "B":
        batch = Pyro5.api.BatchProxy(proxy)

        def one_batch() -> None:
            for _ in range(cfg.pipeline):
                batch.add(1, 2)
            for _r in batch():
                pass

        timed_loop(one_batch, cfg.warmup)
        s = timed_loop(one_batch, cfg.duration)
        return Sample(s.calls * cfg.pipeline, s.elapsed)
    add, echo = proxy.add, proxy.echo
    fn = {"A": lambda: add(1, 2), "C": lambda: echo(BLOB), "D": lambda: echo(SMALL_DICTS)}[scenario]
    timed_loop(fn, cfg.warmup)
    return timed_loop(fn, cfg.duration, record=scenario == "A")


def e_client(port: int, nconn: int, cfg: Cfg) -> EResult:
    _configure()
    return threaded_e_client(lambda: _proxy(port), lambda p: p.add, nconn, cfg)
