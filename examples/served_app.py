"""An application for ``pbroker serve`` (docs/RUNNING.md), used by tests/test_runner.py.

    pbroker serve examples.served_app:make_app --listen tcp:8800:interface=127.0.0.1 -- --tick 5
    pbroker serve examples.served_app:root --listen tcp:8800          # the Root alone

``make_app`` is the usual shape: a callable given the runner's ``AppContext``, returning one
service, a ``MultiService`` of the parts -- here a ``BrokerService`` per ``--listen`` endpoint,
a ``TimerService`` (a periodic task, every ``--tick`` seconds), and the :class:`Shutdown`
service, which shows what a graceful stop does with calls in flight. ``root`` is the plain
Root, for ``MODULE:OBJECT`` naming an object rather than a factory.

Methods (all ``remote_``): ``pid`` (which process answered: several with ``--workers``),
``add``, ``uid``, ``ticks``, ``log(n, text)`` (n log lines, for rotation under load),
``until_shutdown`` (answers once a graceful stop begins: a call that finishes within the grace
period) and ``hang`` (never answers: ended by the goodbye after the grace period), and
``waiting(n)`` (answers once n calls wait in those two).
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

import broker
from broker.service import BrokerService
from net.defer import Deferred
from net.service import MultiService, Service, TimerService

__all__ = ["Served", "Shutdown", "make_app", "root"]

log = logging.getLogger("examples.served_app")


class Served(broker.Root):
    """The root every client gets."""

    def __init__(self) -> None:
        self.ticks = 0
        self.shutdown_waiters: list[Deferred[str]] = []
        self.hanging: list[Deferred[str]] = []
        self._waiting_for: list[tuple[int, Deferred[int]]] = []

    def tick(self) -> None:
        self.ticks += 1
        log.debug("tick %d", self.ticks)

    def remote_pid(self) -> int:
        return os.getpid()

    def remote_uid(self) -> tuple[int, int]:
        return os.getuid(), os.getgid()

    def remote_add(self, a: int, b: int) -> int:
        return a + b

    def remote_ticks(self) -> int:
        return self.ticks

    def remote_log(self, n: int, text: str) -> int:
        for i in range(n):
            log.info("%s %d", text, i)
        return n

    def remote_until_shutdown(self) -> Deferred[str]:
        d: Deferred[str] = Deferred()
        self.shutdown_waiters.append(d)
        self._check_waiting()
        return d

    def remote_hang(self) -> Deferred[str]:
        d: Deferred[str] = Deferred()
        self.hanging.append(d)
        self._check_waiting()
        return d

    def remote_waiting(self, n: int) -> Deferred[int]:
        d: Deferred[int] = Deferred()
        self._waiting_for.append((n, d))
        self._check_waiting()
        return d

    def _check_waiting(self) -> None:
        count = len(self.shutdown_waiters) + len(self.hanging)
        for entry in [e for e in self._waiting_for if e[0] <= count]:
            self._waiting_for.remove(entry)
            entry[1].callback(count)


class Shutdown(Service):
    """Stopped first (added last): answers the ``until_shutdown`` calls, inside the grace period."""

    name = "shutdown"

    def __init__(self, served: Served) -> None:
        self.served = served

    def stop_service(self) -> None:
        super().stop_service()
        waiters, self.served.shutdown_waiters = self.served.shutdown_waiters, []
        log.info("shutting down: answering %d waiting call(s)", len(waiters))
        for d in waiters:
            d.callback("finished during the grace period")


#: The Root alone (``examples.served_app:root``).
root = Served()


def make_app(ctx: Any) -> MultiService:
    """The factory ``pbroker serve examples.served_app:make_app`` calls with its AppContext."""
    parser = argparse.ArgumentParser(prog="served_app")
    parser.add_argument("--tick", type=float, default=60.0, help="seconds between timer ticks")
    parser.add_argument("--grace", type=float, default=10.0, help="the BrokerService's grace period")
    options = parser.parse_args(ctx.argv)
    served = Served()
    app = MultiService(name="served_app")
    for endpoint in ctx.listen:
        app.add_service(BrokerService(ctx.reactor, endpoint, served, grace=options.grace))
    app.add_service(TimerService(ctx.reactor, options.tick, served.tick))
    app.add_service(Shutdown(served))
    ctx.log.info("served_app: %d endpoint(s), state in %s", len(ctx.listen), ctx.state_dir or os.getcwd())
    return app
