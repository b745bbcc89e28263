"""Deadlines and call metadata (PROTOCOL.md §18): a server and a client in one process.

    .venv/bin/python examples/deadlines.py

The client gives each call a budget with ``ref.options(timeout=...)`` (never a keyword argument of
the method). The budget travels with the call, so the server stops the work when it runs out:

* ``lookup`` waits on something that never comes (a Deferred nobody fires): the caller gets
  ``DeadlineExceeded`` (a ``TimeoutError``), and the server's coroutine sees ``CancelledError``;
* ``crunch`` hands work to a thread, which checks the call's context (``broker.current_call()``)
  as its cancellation token and stops early;
* ``report`` answers at once and shows what the method sees: the budget left, the metadata, and
  the call id its log lines carry (from the W3C ``traceparent`` the caller sent).
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

import broker
from net.defer import CancelledError, Deferred
from net.react import react

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class Service(broker.Referenceable):
    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.stopped: list[str] = []
        self.waiting: dict[str, Deferred[list[str]]] = {}

    def note_stopped(self, name: str) -> None:
        self.stopped.append(name)
        waiter = self.waiting.pop(name, None)
        if waiter is not None:
            waiter.callback(self.stopped)

    async def remote_lookup(self, key: str) -> str:
        try:
            await Deferred()  # an answer that never comes
        except CancelledError:
            self.note_stopped("lookup")  # the deadline passed: clean up, then let it go
            raise
        return key

    def remote_crunch(self, rounds: int) -> Deferred[int]:
        ctx = broker.current_call()  # read it here: a worker thread has no current call of its own
        assert ctx is not None
        wake = threading.Event()

        def work() -> int:
            done = 0
            while done < rounds and not ctx.cancelled:  # the cancellation token
                wake.wait(0.01)  # a slice of "work"
                done += 1
            if ctx.cancelled:
                self.reactor.call_from_thread(self.note_stopped, "crunch")
            return done

        running: Deferred[int] = self.reactor.defer_to_thread(work)
        return running

    def remote_report(self) -> dict[str, Any]:
        ctx = broker.current_call()
        assert ctx is not None
        logging.getLogger("app").info("reporting")  # carries the call id (CallIdFilter below)
        return {"remaining": ctx.remaining(), "metadata": dict(ctx.metadata), "call_id": ctx.call_id}

    def remote_stopped(self, name: str) -> list[str] | Deferred[list[str]]:
        """What has stopped, once ``name`` has (a worker notices at its next check)."""
        if name in self.stopped:
            return self.stopped
        waiter = self.waiting[name] = Deferred()
        return waiter


async def main(reactor: Any) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(broker.CallIdFilter())
    handler.setFormatter(logging.Formatter("log: %(name)s [%(call_id)s] %(message)s"))
    logging.getLogger("app").addHandler(handler)
    logging.getLogger("app").setLevel(logging.INFO)

    service = Service(reactor)
    port = await broker.serve(reactor, "tcp:0:interface=127.0.0.1", service)
    root = await broker.connect(reactor, f"tcp:127.0.0.1:{port.get_host().port}", call_timeout=30.0)
    try:
        await root.options(timeout=0.3).call_remote("lookup", "answer")
    except broker.DeadlineExceeded as exc:
        print(f"lookup: DeadlineExceeded ({exc.message})")
    try:
        await root.options(timeout=0.3).call_remote("crunch", 10_000)
    except TimeoutError:
        print("crunch: timed out (DeadlineExceeded is a TimeoutError)")
    seen = await root.options(timeout=5, metadata={"traceparent": TRACEPARENT}).call_remote("report")
    print(f"report: remaining <= 5: {seen['remaining'] <= 5}, call id {seen['call_id']}")
    stopped = await root.call_remote("stopped", "crunch")
    print(f"server stopped: {sorted(stopped)}")
    root.session.disconnect()
    await port.stop_listening()


if __name__ == "__main__":
    react(main)
