"""Twisted Perspective Broker: pbroker's ancestor, on Twisted's default (epoll) reactor.

B keeps 100 callRemote Deferreds in flight on one connection; E runs one
reactor per client process with every connection chaining its calls.
"""

from __future__ import annotations

from typing import Any, Callable

from bench.common import MIB, Cfg, EResult, Sample, callback_client, callback_e_client, ready

NAME = "twisted_pb"
LABEL = "Twisted PB"
SCENARIOS = "ABCDE"
IDIOMS = {
    "B": "100 callRemote Deferreds in flight on one connection",
    "E": "1 reactor per client process, each connection chains callRemote",
}
NOTES = [
    "Twisted PB: banana's 640 KiB string limit (SIZE_LIMIT) raised to 4 MiB on both sides so that C can run.",
]

__all__ = ["NAME", "LABEL", "SCENARIOS", "IDIOMS", "NOTES", "unavailable", "version", "serve", "client", "e_client"]


def unavailable() -> str | None:
    try:
        import twisted.spread.pb  # noqa: F401
    except ImportError as e:
        return f"not installed ({e})"
    return None


def version() -> str:
    import twisted

    return twisted.__version__


def _lift_banana_limit() -> None:
    """PB refuses strings over 640 KiB by default; C sends 1 MiB."""
    from twisted.spread import banana

    banana.SIZE_LIMIT = 4 * MIB
    banana.Banana.sizeLimit = 4 * MIB


def serve() -> None:
    _lift_banana_limit()
    from twisted.internet import reactor
    from twisted.spread import pb

    class Calc(pb.Root):
        def remote_add(self, a: int, b: int) -> int:
            return a + b

        def remote_echo(self, x: Any) -> Any:
            return x

    port = reactor.listenTCP(0, pb.PBServerFactory(Calc()), backlog=1024, interface="127.0.0.1")  # type: ignore[attr-defined]
    ready(port.getHost().port)
    reactor.run()  # type: ignore[attr-defined]


class _TwistedLoop:
    """CallbackLoop adapter over Twisted's global reactor and PB."""

    def __init__(self, port: int) -> None:
        _lift_banana_limit()
        from twisted.internet import reactor

        self.reactor: Any = reactor
        self.port = port

    def connect(self, ok: Callable[[Any], None], err: Callable[[Any], None]) -> None:
        from twisted.spread import pb

        factory = pb.PBClientFactory()
        self.reactor.connectTCP("127.0.0.1", self.port, factory)
        factory.getRootObject().addCallbacks(ok, err)

    def call(self, root: Any, method: str, args: tuple[Any, ...], ok: Callable[[Any], None], err: Callable[[Any], None]) -> None:
        root.callRemote(method, *args).addCallbacks(ok, err)

    def call_later(self, delay: float, f: Callable[[], None]) -> None:
        self.reactor.callLater(delay, f)

    def run(self) -> None:
        self.reactor.run()

    def stop(self) -> None:
        if self.reactor.running:
            self.reactor.stop()


def client(scenario: str, port: int, cfg: Cfg) -> Sample:
    return callback_client(_TwistedLoop(port), scenario, cfg)


def e_client(port: int, nconn: int, cfg: Cfg) -> EResult:
    return callback_e_client(_TwistedLoop(port), nconn, cfg)
