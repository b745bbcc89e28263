"""A fake clock: the time-and-queue part of a reactor, with time that moves only when told.

:class:`Clock` is the time-and-queue part of a reactor (``seconds``, ``call_later``,
``call_soon``, ``call_from_thread``) in the manner of Twisted's ``task.Clock``: nothing runs until
the test calls :meth:`Clock.run_until_idle` (what is due now) or :meth:`Clock.advance` (time moves,
timers fire in order). Pass it as the ``reactor`` of a protocol on memory transports (a broker's
``BrokerProtocol``/``BrokerFactory``) or to ``Deferred.add_timeout``, and timeouts are tested
without waiting::

    clock = Clock()
    d = Deferred().add_timeout(5, clock)
    clock.advance(4.9)   # not yet
    clock.advance(0.1)   # d fails with TimeoutError now

Its calls are the reactor's own :class:`~net._reactorbase.DelayedCall` (cancel, reset, delay and
their errors behave the same). A real reactor's scheduling can be driven by a Clock too: make the
reactor's ``seconds`` the clock's (tests/test_reactor_core.py does), and ordering is tested
without a single real delay.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import threading
from typing import Any, Callable

from zope.interface import implementer

from .._reactorbase import DelayedCall
from ..interfaces import IReactorTime

__all__ = ["Clock", "ClockCall"]


class ClockCall(DelayedCall):
    """A call scheduled on a :class:`Clock`: a reactor's ``DelayedCall``, moved by the clock."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<Clock" + super().__repr__().removeprefix("<Delayed")


@implementer(IReactorTime)
class Clock:
    """The time-and-queue part of a reactor, with time that moves only when the test says so.

    Enough of a reactor to pass as the ``reactor`` of a broker protocol or factory over memory
    transports, or to :meth:`~net.defer.Deferred.add_timeout`: :meth:`seconds`,
    :meth:`call_later` (a :class:`ClockCall`, with ``cancel``/``active``/``reset``/``delay``),
    :meth:`call_soon` and :meth:`call_from_thread` (thread-safe; queued, run by the test's
    thread). Nothing runs by itself:

    * :meth:`run_until_idle` (also :meth:`pump`) runs what is due *now* -- ``call_soon``,
      ``call_later(0)``, work from threads, and whatever those schedule for now -- until none is
      left; time stands still.
    * :meth:`advance` moves time forward, running every call that falls due, in time order (the
      same time: in the order scheduled), with :meth:`seconds` reading each call's own time.

    Unlike a reactor, which logs an exception a call raises, the clock lets it propagate out of
    ``advance``/``run_until_idle``: a test should see it.
    """

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self._heap: list[tuple[float, int, ClockCall]] = []
        self._next_seq = itertools.count(1).__next__
        self._from_threads: collections.deque[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = (
            collections.deque())
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Clock at {self.now:.6f}, {len(self.get_delayed_calls())} calls pending>"

    def seconds(self) -> float:
        """The clock's time: ``start`` plus every :meth:`advance` so far."""
        return self.now

    def call_later(self, delay: float, f: Callable[..., object], *args: Any, **kwargs: Any) -> ClockCall:
        """Run ``f(*args, **kwargs)`` once the clock has advanced ``delay`` seconds (0: at the next pump)."""
        call = ClockCall(self, self.now + max(0.0, delay), f, args, kwargs)
        self._push(call)
        return call

    def call_soon(self, f: Callable[..., object], *args: Any, **kwargs: Any) -> ClockCall:
        """``call_later(0, ...)``: runs at the next :meth:`run_until_idle` or :meth:`advance`."""
        return self.call_later(0, f, *args, **kwargs)

    def call_from_thread(self, f: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        """Queue ``f(*args, **kwargs)`` from any thread; it runs, in order, when the test pumps."""
        with self._lock:
            self._from_threads.append((f, args, kwargs))

    def get_delayed_calls(self) -> list[ClockCall]:
        """The calls still to run, in the order they will run."""
        return [call for _, seq, call in sorted(self._heap) if call._seq == seq and call.active()]

    def run_until_idle(self) -> int:
        """Run everything due now, and what that schedules for now, until none is left; how many ran."""
        ran = 0
        while True:
            ran += self._run_from_threads()
            call = self._pop_due(self.now)
            if call is None:
                if not self._from_threads:
                    return ran
                continue
            self._run(call)
            ran += 1

    pump = run_until_idle

    def advance(self, seconds: float) -> int:
        """Move time ``seconds`` forward, running each call as its time comes; how many ran."""
        if seconds < 0:
            raise ValueError(f"time only moves forward: advance({seconds!r})")
        target = self.now + seconds
        ran = self.run_until_idle()
        while (call := self._pop_due(target)) is not None:
            self.now = max(self.now, call.time)
            self._run(call)
            ran += 1 + self.run_until_idle()
        self.now = target
        return ran + self.run_until_idle()

    # -- internals -------------------------------------------------------------------------------

    def _push(self, call: ClockCall) -> None:
        call._seq = self._next_seq()
        heapq.heappush(self._heap, (call.time, call._seq, call))

    # What a DelayedCall asks of its reactor when it is cancelled or moved:
    def _forget_call(self, call: DelayedCall) -> None:
        pass  # its heap entry is skipped when popped (it is no longer active)

    def _move_call(self, call: DelayedCall, time: float) -> None:
        call.time = time
        self._push(call)  # type: ignore[arg-type]  # the old entry no longer matches call._seq

    def _pop_due(self, until: float) -> ClockCall | None:
        heap = self._heap
        while heap and heap[0][0] <= until:
            _, seq, call = heapq.heappop(heap)
            if call._seq == seq and call.active():
                return call
        return None

    def _run(self, call: ClockCall) -> None:
        call.called = True
        call.func(*call.args, **call.kwargs)

    def _run_from_threads(self) -> int:
        with self._lock:
            queued, self._from_threads = self._from_threads, collections.deque()
        for f, args, kwargs in queued:
            f(*args, **kwargs)
        return len(queued)
