"""The service model: things a program starts once the reactor runs and stops on shutdown.

A server is a few long-lived parts -- a broker listener, a line-protocol listener, a web
listener, a periodic task -- each started after the reactor starts and stopped, in reverse
order, before it stops. :class:`IService` is that one contract (``start_service`` /
``stop_service``, either may return a Deferred to say "not done yet"); :class:`MultiService`
composes services into one, so a program (and ``pbroker serve``) handles a single object::

    from net.service import MultiService, StreamServerService, TimerService

    top = MultiService(
        StreamServerService(reactor, "tcp:8000", factory),
        TimerService(reactor, 60.0, expire_sessions),
    )
    reactor.call_when_running(top.start_service)
    reactor.add_system_event_trigger("before", "shutdown", top.stop_service)  # waits for it

Rules every service here keeps (and the runner counts on):

* ``start_service`` sets ``running`` before it returns; ``stop_service`` clears it.
* Stopping is best effort and always completes: a failure while stopping is logged by whoever
  stops the service (a :class:`MultiService` logs a child's and goes on to the next), never
  left hanging, so a shutdown cannot wedge on one broken part.
* A Deferred returned by ``stop_service`` fires once the service has let go of what it holds
  (a port is closed, a running task has finished).

This is the shape of ``twisted.application.service``, without its persistence ("tap" files),
privileged start, or the parent/child attribute protocol: a service is added to one
MultiService at a time, and :attr:`Service.parent` says which.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from zope.interface import implementer

from . import contracts
from .defer import Deferred, Failure, fail, maybe_deferred, succeed
from .interfaces import IService as IServiceInterface

if TYPE_CHECKING:
    from .contracts import ListeningPort, ProtocolFactory, Reactor, ReactorTime

__all__ = ["IService", "Service", "MultiService", "TimerService", "StreamServerService"]

log = logging.getLogger(__name__)


#: The contract (a typing Protocol, runtime-checkable); its zope twin is net.interfaces.IService.
IService = contracts.Service


@implementer(IServiceInterface)
class Service:
    """A service that does nothing but keep ``running``: subclass it and call up from overrides."""

    name: str | None = None
    running: bool = False
    #: The MultiService this one was added to, if any.
    parent: MultiService | None = None

    def start_service(self) -> Deferred[None] | None:
        """Mark the service running (subclasses start their work, then call this)."""
        self.running = True
        return None

    def stop_service(self) -> Deferred[None] | None:
        """Mark the service stopped (subclasses call this, then let go of their resources)."""
        self.running = False
        return None

    def __repr__(self) -> str:
        name = f" {self.name!r}" if self.name else ""
        return f"<{type(self).__name__}{name} {'running' if self.running else 'stopped'}>"


class MultiService(Service):
    """Services started in the order added, each once the previous one has started, and stopped
    in reverse order, each once the next one has stopped.

    A child that fails to start stops the start: the children already started are stopped again
    (in reverse) and the Deferred of :meth:`start_service` fails with the child's failure. A
    child that fails to stop is logged and the others still stop; :meth:`stop_service` always
    succeeds. Services added while running are started at once; removed ones stopped.
    """

    def __init__(self, *services: IService, name: str | None = None) -> None:
        self.name = name
        self._services: list[IService] = []
        for service in services:
            self.add_service(service)

    def __iter__(self) -> Iterator[IService]:
        return iter(list(self._services))

    def __len__(self) -> int:
        return len(self._services)

    def get_service_named(self, name: str) -> IService:
        """The child called ``name``; KeyError if none is."""
        for service in self._services:
            if service.name == name:
                return service
        raise KeyError(f"{self!r} has no service named {name!r}; it has {[s.name for s in self._services]}")

    def add_service(self, service: IService) -> None:
        """Add ``service`` last (started at once if this one runs). Names are unique, if given."""
        if any(s is service for s in self._services):
            raise ValueError(f"{service!r} was already added to {self!r}")
        if service.name is not None and any(s.name == service.name for s in self._services):
            raise ValueError(f"{self!r} already has a service named {service.name!r}: name it differently")
        if isinstance(service, Service):
            if service.parent is not None:
                raise ValueError(f"{service!r} belongs to {service.parent!r}: remove it there first")
            service.parent = self
        self._services.append(service)
        if self.running:
            maybe_deferred(service.start_service).add_errback(self._log_failure, "start", service)

    def remove_service(self, service: IService) -> None:
        """Take ``service`` out (stopped, if this one runs; a failure to stop is logged)."""
        for i, s in enumerate(self._services):
            if s is service:
                del self._services[i]
                break
        else:
            raise ValueError(f"{service!r} is not a service of {self!r}")
        if isinstance(service, Service):
            service.parent = None
        if self.running and service.running:
            maybe_deferred(service.stop_service).add_errback(self._log_failure, "stop", service)

    def start_service(self) -> Deferred[None]:
        """Start each child after the previous one's Deferred fired; fires once all have."""
        Service.start_service(self)
        done: Deferred[None] = Deferred()
        pending = list(self._services)
        started: list[IService] = []

        def next_one(_: object = None) -> None:
            if not pending or not self.running:  # all started, or stopped meanwhile: start no more
                done.callback(None)
                return
            service = pending.pop(0)
            started.append(service)
            maybe_deferred(service.start_service).add_callbacks(next_one, failed, errback_args=(service,))

        def failed(failure: Failure, service: IService) -> None:
            log.error("%r: %r failed to start: %s", self, service, failure.value)
            started.remove(service)
            self.running = False
            self._stop_each(list(reversed(started))).add_both(lambda _: done.errback(failure))

        next_one()
        return done

    def stop_service(self) -> Deferred[None]:
        """Stop each running child in reverse order, each after the next one's Deferred fired."""
        Service.stop_service(self)
        return self._stop_each([s for s in reversed(self._services) if s.running])

    def _stop_each(self, services: list[IService]) -> Deferred[None]:
        done: Deferred[None] = Deferred()
        pending = list(services)

        def next_one(_: object = None) -> None:
            if not pending:
                done.callback(None)
                return
            service = pending.pop(0)
            d = maybe_deferred(service.stop_service)
            d.add_errback(self._log_failure, "stop", service)
            d.add_callback(next_one)

        next_one()
        return done

    def _log_failure(self, failure: Failure, what: str, service: IService) -> None:
        log.error("%r: %r failed to %s: %s", self, service, what, failure.value,
                  exc_info=(type(failure.value), failure.value, failure.value.__traceback__))


class TimerService(Service):
    """Call ``f(*args, **kwargs)`` at once on start, then every ``interval`` seconds until stopped.

    The next call waits for a Deferred (or coroutine) the previous one returned, so calls never
    overlap; the rhythm is kept from the start (a call that overran makes the missed ticks be
    skipped, not bunched). A call that raises or fails is logged and the timer goes on: one bad
    run of a periodic task should not silently end it. :meth:`stop_service` cancels the timer and
    fires once a call in progress has finished. Works on any ``IReactorTime``
    (``net.testing.Clock`` in tests).
    """

    def __init__(self, reactor: ReactorTime, interval: float, f: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        if not interval > 0:
            raise ValueError(f"TimerService: the interval must be a number of seconds > 0, got {interval!r}")
        self.reactor = reactor
        self.interval = float(interval)
        self.f = f
        self.args = args
        self.kwargs = kwargs
        #: How many calls have been made so far.
        self.calls = 0
        self._timer: Any = None
        self._start_time = 0.0
        self._in_progress: Deferred[Any] | None = None

    def start_service(self) -> None:
        """Make the first call now and schedule the rest."""
        Service.start_service(self)
        self._start_time = self.reactor.seconds()
        self._tick()

    def _tick(self) -> None:
        self._timer = None
        if not self.running:
            return
        self.calls += 1
        d = self._in_progress = maybe_deferred(self.f, *self.args, **self.kwargs)
        d.add_errback(self._failed)
        d.add_both(self._finished)

    def _failed(self, failure: Failure) -> None:
        log.error("%r: %r failed (the timer goes on): %s", self, self.f, failure.value,
                  exc_info=(type(failure.value), failure.value, failure.value.__traceback__))

    def _finished(self, _: object) -> None:
        self._in_progress = None
        self._schedule()

    def _schedule(self) -> None:
        if not self.running:
            return
        now = self.reactor.seconds()
        ticks = int((now - self._start_time) / self.interval) + 1
        self._timer = self.reactor.call_later(self._start_time + ticks * self.interval - now, self._tick)

    def stop_service(self) -> Deferred[None]:
        """Cancel the timer; fire once a call in progress (if any) has finished."""
        Service.stop_service(self)
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()
        if self._in_progress is None:
            return succeed(None)
        finished: Deferred[None] = Deferred()
        self._in_progress.add_both(lambda _: finished.callback(None))
        return finished


class StreamServerService(Service):
    """Listen on ``endpoint`` (a :func:`net.endpoints.server` string) with ``factory`` while running.

    :meth:`start_service` fires once listening (:attr:`port` is then the listening port; with
    ``tcp:0`` its ``get_host()`` tells the port chosen) and fails if the endpoint cannot listen;
    :meth:`stop_service` fires once the port is closed. Connections already accepted are left
    alone (:class:`broker.service.BrokerService` also ends them, gracefully).
    """

    def __init__(self, reactor: Reactor, endpoint: str, factory: ProtocolFactory) -> None:
        self.reactor = reactor
        self.endpoint = endpoint
        self.factory = factory
        self.port: ListeningPort | None = None
        self._starting: Deferred[Any] | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.endpoint!r} {'running' if self.running else 'stopped'}>"

    def start_service(self) -> Deferred[None]:
        """Listen; fire once listening, or fail with why it cannot (e.g. the port is taken)."""
        from .endpoints import server

        Service.start_service(self)
        try:
            d = server(self.reactor, self.endpoint).listen(self.factory)
        except Exception as exc:  # a bad endpoint string: fail like a failed listen
            self.running = False
            return fail(exc)
        self._starting = d

        def listening(port: ListeningPort) -> None:
            self._starting = None
            self.port = port
            if not self.running:  # stopped while it was starting
                port.stop_listening()
                self.port = None

        def failed(failure: Failure) -> Failure:
            self._starting = None
            self.running = False
            return failure

        started: Deferred[None] = d.add_callbacks(listening, failed)
        return started

    def stop_service(self) -> Deferred[None]:
        """Close the listening port; fire once it is closed."""
        Service.stop_service(self)
        port, self.port = self.port, None
        if port is not None:
            return port.stop_listening()
        starting = self._starting
        if starting is not None:  # listening() closes it once it arrives
            stopped: Deferred[None] = Deferred()
            starting.add_both(lambda _: stopped.callback(None))
            return stopped
        return succeed(None)

