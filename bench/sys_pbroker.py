"""pbroker itself, measured once per reactor backend (PBROKER_REACTOR=select|poll|epoll|asyncio).

Uses the Deferred-style client, like Twisted PB: A/C/D chain call_remote after
call_remote, B keeps 100 in flight on one connection.  The orchestrator sets
PBROKER_REACTOR in both the server's and the client's environment.
"""

from __future__ import annotations

from typing import Any, Callable

from bench.common import Cfg, EResult, Sample, callback_client, callback_e_client, ready

NAME = "pbroker"
LABEL = "pbroker"
SCENARIOS = "ABCDE"
IDIOMS = {
    "B": "100 call_remote Deferreds in flight on one connection",
    "E": "1 reactor per client process, each connection chains call_remote",
}
NOTES: list[str] = []
BACKENDS = ("select", "poll", "epoll", "asyncio")

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


def serve() -> None:
    from net.reactor import make_reactor

    reactor = make_reactor()  # picks PBROKER_REACTOR
    from broker import Root, serve as broker_serve

    class Calc(Root):  # type: ignore[misc, valid-type]
        def remote_add(self, a: int, b: int) -> int:
            return a + b

        def remote_echo(self, x: Any) -> Any:
            return x

    d = broker_serve(reactor, "tcp:0:interface=127.0.0.1", Calc())
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

        d = broker.connect(self.reactor, f"tcp:127.0.0.1:{self.port}")
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


def client(scenario: str, port: int, cfg: Cfg) -> Sample:
    return callback_client(_PbrokerLoop(port), scenario, cfg)


def e_client(port: int, nconn: int, cfg: Cfg) -> EResult:
    return callback_e_client(_PbrokerLoop(port), nconn, cfg)

