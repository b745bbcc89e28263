"""Protocols and factories that record what happens to them, and Deferreds to wait on.

The building blocks of the conformance kit (:mod:`net.testing.conformance`) and of many tests:
:class:`Recorder` keeps every callback it gets (``events``) and returns a fresh Deferred from
each ``when_*`` method, so a test waits on an event instead of sleeping; :class:`Echo` writes back
what it receives; :class:`CollectingFactory` keeps the protocols it builds and lets a test await
the i-th; :func:`iterations` waits a few loop iterations (for what must *not* happen).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, Callable

from ..defer import Deferred, Failure, succeed
from ..protocol import Factory, Protocol

if TYPE_CHECKING:
    from ..address import Address
    from ..contracts import ReactorTime, Transport

__all__ = ["Recorder", "Echo", "CollectingFactory", "iterations"]


class Recorder(Protocol):
    """Records what happens to it; ``when_*`` methods return Deferreds for awaiting events.

    Each ``when_*`` call returns a new Deferred firing with ``self``, so several waiters never
    share (and disturb) one callback chain. ``keep`` False hashes incoming data instead of keeping it.
    """

    keep = True
    keep_open_on_eof = False

    def __init__(self) -> None:
        self.received = bytearray()
        self.count = 0
        self.digest = hashlib.sha256()
        self.events: list[str] = []
        self.reasons: list[Failure] = []
        #: ``transport.is_closing()`` as seen from inside each ``connection_lost``.
        self.closing_at_lost: list[bool] = []
        self._waiters: list[tuple[Callable[[], bool], Deferred[Any]]] = []

    def connection_made(self, transport: Transport) -> None:
        self.events.append("made")
        self._fire()

    def data_received(self, data: bytes) -> None:
        if not self.events or self.events[-1] != "data":
            self.events.append("data")
        self.count += len(data)
        self.digest.update(data)
        if self.keep:
            self.received += data
        self._fire()

    def eof_received(self) -> bool | None:
        self.events.append("eof")
        self._fire()
        return self.keep_open_on_eof

    def connection_lost(self, reason: Failure) -> None:
        self.events.append("lost")
        self.reasons.append(reason)
        is_closing = getattr(self.transport, "is_closing", None)
        self.closing_at_lost.append(bool(is_closing()) if is_closing is not None else False)
        self._fire()

    @property
    def after_lost(self) -> list[str]:
        """The events recorded after the first ``connection_lost`` (a transport's bug if any)."""
        return self.events[self.events.index("lost") + 1:] if "lost" in self.events else []

    @property
    def reason(self) -> BaseException:
        """The exception ``connection_lost`` got (asserting it was called exactly once)."""
        assert len(self.reasons) == 1, f"connection_lost called {len(self.reasons)} times"
        return self.reasons[0].value

    def when(self, condition: Callable[[], bool]) -> Deferred[Any]:
        if condition():
            return succeed(self)
        d: Deferred[Any] = Deferred()
        self._waiters.append((condition, d))
        return d

    def when_made(self) -> Deferred[Any]:
        return self.when(lambda: "made" in self.events)

    def when_received(self, nbytes: int) -> Deferred[Any]:
        return self.when(lambda: self.count >= nbytes)

    def when_eof(self) -> Deferred[Any]:
        return self.when(lambda: "eof" in self.events)

    def when_lost(self) -> Deferred[Any]:
        return self.when(lambda: bool(self.reasons))

    def _fire(self) -> None:
        if not self._waiters:
            return
        ready = [w for w in self._waiters if w[0]()]
        if ready:
            self._waiters = [w for w in self._waiters if w not in ready]
            for _, d in ready:
                d.callback(self)


class Echo(Recorder):
    """Writes back whatever it receives (and records it)."""

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self.transport.write(data)


class CollectingFactory(Factory):
    """Builds protocols with ``make()`` and keeps them; :meth:`connection` awaits the i-th one."""

    def __init__(self, make: Callable[[], Recorder] = Recorder) -> None:
        self.make = make
        self.protocols: list[Recorder] = []
        self._waiters: dict[int, list[Deferred[Any]]] = {}

    def build_protocol(self, addr: Address) -> Recorder:
        protocol = self.make()
        protocol.factory = self
        index = len(self.protocols)
        self.protocols.append(protocol)
        for d in self._waiters.pop(index, []):
            protocol.when_made().chain_deferred(d)
        return protocol

    def connection(self, index: int = 0) -> Deferred[Any]:
        """Fires with the ``index``-th protocol built, once its ``connection_made`` ran."""
        if index < len(self.protocols):
            return self.protocols[index].when_made()
        d: Deferred[Any] = Deferred()
        self._waiters.setdefault(index, []).append(d)
        return d


def iterations(reactor: ReactorTime, count: int = 3) -> Deferred[None]:
    """Fires after ``count`` more loop iterations: lets in-flight events land, without sleeping."""
    d: Deferred[None] = Deferred()

    def step(left: int) -> None:
        if left:
            reactor.call_later(0, step, left - 1)
        else:
            d.callback(None)

    step(count)
    return d
