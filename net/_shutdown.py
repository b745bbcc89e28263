"""Stop a listening or datagram port when its reactor shuts down, as Twisted's reactors do.

Without this a port outlives ``reactor.stop()``: its socket stays open until garbage collection,
and a Unix port leaves its socket and lock files behind for the next run to clear as stale. Each
port holds one :class:`StopAtShutdown` while it is open and cancels it when it stops on its own.
"""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["StopAtShutdown"]


class StopAtShutdown:
    """A shutdown trigger that calls ``stop()`` once, unless :meth:`cancel` ran first.

    ``phase`` is "during" for ports that stop at once; "before" for those whose ``stop()``
    returns a Deferred the reactor should wait for (a datagram port sending its queue, bounded
    by its drain timeout). A reactor without triggers (a test double) gets none.
    """

    def __init__(self, reactor: object, stop: Callable[[], Any], phase: str = "during") -> None:
        self._reactor = reactor
        self._stop = stop
        add = getattr(reactor, "add_system_event_trigger", None)
        self._trigger: object = None if add is None else add(phase, "shutdown", self._fire)

    def _fire(self) -> Any:
        self._trigger = None  # the reactor consumed it: nothing to remove
        return self._stop()

    def cancel(self) -> None:
        """Forget the trigger (the port stopped first); idempotent."""
        trigger, self._trigger = self._trigger, None
        if trigger is not None:
            self._reactor.remove_system_event_trigger(trigger)  # type: ignore[attr-defined]
