"""Serving a root (or a cred Portal) as a service, with a graceful stop.

:class:`BrokerService` is what ``pbroker serve`` makes of a ``Root`` or a ``Portal``, and what
an application composes with its other services::

    top = MultiService(BrokerService(reactor, "tcp:8800", Calculator(), grace=10.0), ...)

Stopping it (SIGTERM under the runner) is the sequence a client can live with:

1. stop listening: a new client is refused at connect (a clean, immediate failure);
2. calls already running here finish, for up to ``grace`` seconds; connections stay open
   meanwhile (a call made in that time is served too: it is no different from one made just
   before, and the grace period bounds the wait all the same);
3. every connection is closed with a goodbye (kind "normal", "the server is shutting down"):
   a call still running fails on the client with ``ConnectionLost`` naming the shutdown, and so
   does any call made afterwards. Nothing is left waiting for an answer that cannot come.

A connection whose peer does not read the goodbye is aborted after ``close_timeout`` seconds,
so the stop always completes.
"""

from __future__ import annotations

import logging
from typing import Any

from net.defer import Deferred, Failure, succeed
from net.service import StreamServerService

from .flavors import Referenceable
from .login import serving_root
from .protocol import BrokerFactory, BrokerProtocol

__all__ = ["BrokerService", "ServerShuttingDown"]

log = logging.getLogger(__name__)


class ServerShuttingDown(Exception):
    """Why a graceful stop closed a connection (the text travels in the goodbye)."""


class _Connections:
    """The live connections of one service, and who waits for there to be none."""

    def __init__(self) -> None:
        self.live: set[BrokerProtocol] = set()
        self._empty_waiters: list[Deferred[None]] = []

    def add(self, protocol: BrokerProtocol) -> None:
        self.live.add(protocol)

    def discard(self, protocol: BrokerProtocol) -> None:
        self.live.discard(protocol)
        if not self.live:
            waiters, self._empty_waiters = self._empty_waiters, []
            for d in waiters:
                d.callback(None)

    def when_empty(self) -> Deferred[None]:
        if not self.live:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._empty_waiters.append(d)
        return d


class _TrackedProtocol(BrokerProtocol):
    """A broker connection that tells its service's :class:`_Connections` when it comes and goes."""

    __slots__ = ("_connections",)

    def __init__(self, connections: _Connections, reactor: Any, root: Referenceable | None, **options: Any) -> None:
        super().__init__(reactor, root, **options)
        self._connections = connections

    def connection_made(self, transport: Any) -> None:
        self._connections.add(self)
        super().connection_made(transport)

    def connection_lost(self, reason: Failure) -> None:
        try:
            super().connection_lost(reason)
        finally:
            self._connections.discard(self)


class _TrackingFactory(BrokerFactory):
    def __init__(self, connections: _Connections, reactor: Any, root: Referenceable | None, **options: Any) -> None:
        super().__init__(reactor, root, **options)
        self.connections = connections

    def build_protocol(self, addr: Any) -> BrokerProtocol:
        proto = _TrackedProtocol(self.connections, self.reactor, self.root, **self.options)
        proto.factory = self
        return proto


def _running_calls(protocol: BrokerProtocol) -> list[Deferred[Any]]:
    """The calls of the peer running here on this connection (answers owed, one-way calls)."""
    session = getattr(protocol, "session", None)
    if session is None:
        return []
    return [*session.answers.values(), *(getattr(session, "_one_way_running", None) or ())]


class BrokerService(StreamServerService):
    """Serve ``root_or_portal`` on ``endpoint`` while running; stop gracefully (module doc).

    ``serve_options`` are :func:`broker.serve`'s (``limits``, ``registry``, ``debug``,
    ``handshake_timeout``, and ``throttle`` for a Portal). ``grace``: seconds the calls running
    at stop may take to finish; ``close_timeout``: seconds a closed connection may take to go.
    """

    def __init__(self, reactor: Any, endpoint: str, root_or_portal: Any, *, grace: float = 10.0,
                 close_timeout: float = 5.0, **serve_options: Any) -> None:
        if not grace >= 0:
            raise ValueError(f"BrokerService: grace must be a number of seconds >= 0, got {grace!r}")
        throttle = serve_options.pop("throttle", None)
        self.root = serving_root(root_or_portal, throttle=throttle)
        self.grace = float(grace)
        self.close_timeout = float(close_timeout)
        self._connections = _Connections()
        super().__init__(reactor, endpoint, _TrackingFactory(self._connections, reactor, self.root, **serve_options))
        self._stopping: Deferred[None] | None = None

    def start_service(self) -> Deferred[None]:
        """Listen (again, after a stop)."""
        self._stopping = None
        return super().start_service()

    def connection_count(self) -> int:
        """How many connections are open."""
        return len(self._connections.live)

    def in_flight(self) -> int:
        """How many calls of peers are running here now, over every connection."""
        return sum(len(_running_calls(p)) for p in self._connections.live)

    def stop_service(self) -> Deferred[None]:
        """Stop listening, let running calls finish (up to ``grace``), then say goodbye to all."""
        if self._stopping is not None:
            return self._chain(self._stopping)
        done = self._stopping = Deferred()
        reactor: Any = self.reactor
        stopped_listening = super().stop_service()
        state: dict[str, Any] = {"closing": False}

        def close_all(why: str) -> None:
            if state["closing"]:
                return
            state["closing"] = True
            if grace_timer.active():
                grace_timer.cancel()
            live = list(self._connections.live)
            if live:
                log.info("%r: closing %d connection(s) (%s)", self, len(live), why)
            for protocol in live:
                session = getattr(protocol, "session", None)
                if session is not None:
                    session.disconnect(ServerShuttingDown("the server is shutting down"))
                elif protocol.transport is not None:
                    protocol.transport.lose_connection()
            abort_timer = reactor.call_later(self.close_timeout, abort_rest)
            self._connections.when_empty().add_callback(lambda _: finish(abort_timer))

        def abort_rest() -> None:
            for protocol in list(self._connections.live):
                if protocol.transport is not None:
                    log.warning("%r: %r did not close within %s s of the goodbye: aborting it",
                                self, protocol, self.close_timeout)
                    protocol.transport.abort_connection()

        def finish(abort_timer: Any) -> None:
            if abort_timer.active():
                abort_timer.cancel()
            stopped_listening.add_both(lambda _: done.callback(None))

        def check(_: object = None) -> object:
            if state["closing"]:
                return _
            running = [d for p in self._connections.live for d in _running_calls(p)]
            if not running:
                reactor.call_soon(close_all, "no calls running")
                return _
            state["waiting"] = len(running)
            for d in running:
                d.add_both(recheck)
            return _

        def recheck(result: object) -> object:
            state["waiting"] -= 1
            if state["waiting"] == 0:
                reactor.call_soon(check)  # after the answer has been sent
            return result

        grace_timer = reactor.call_later(self.grace, close_all, f"grace period of {self.grace} s over")
        if self.in_flight():
            log.info("%r: stopped listening; waiting up to %s s for %d call(s) running", self, self.grace,
                     self.in_flight())
        check()
        return self._chain(done)

    @staticmethod
    def _chain(d: Deferred[None]) -> Deferred[None]:
        mine: Deferred[None] = Deferred()

        def fire(result: object) -> object:
            mine.callback(None)
            return result

        d.add_both(fire)
        return mine
