"""Waking a loop from other threads and from signal handlers: :class:`Waker`, :class:`ThreadCallQueue`.

A backend with its own loop (:mod:`net.selectreactor`) waits in ``select()``; ``call_from_thread``
must be able to end that wait, and so must a signal delivered while the main thread sleeps there.
A :class:`Waker` is a non-blocking socketpair whose read end the loop watches: writing one byte
ends the wait. :class:`ThreadCallQueue` is ``call_from_thread`` built on it. (The asyncio backend
needs neither: ``loop.call_soon_threadsafe`` does the same with asyncio's own self-pipe.)
"""

from __future__ import annotations

import collections
import socket
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["Waker", "ThreadCallQueue"]


class _RunsThreadCalls(Protocol):
    """What a :class:`ThreadCallQueue` needs of its reactor: how it runs (and logs) one call."""

    def _run_thread_call(
        self, f: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None: ...


class Waker:
    """A socketpair the loop watches so other threads (and signal handlers) can wake it.

    Wake-ups are coalesced: while one byte is unread, further ``wake()`` calls write nothing.
    """

    def __init__(self) -> None:
        self._r, self._w = socket.socketpair()
        self._r.setblocking(False)
        self._w.setblocking(False)
        self.pending = False
        self.fd = self._r.fileno()
        #: The write end: what signal.set_wakeup_fd writes a signal's number to.
        self.write_fd = self._w.fileno()

    def wake(self) -> None:
        if not self.pending:
            self.pending = True
            try:
                self._w.send(b"\0")
            except OSError:  # full (can't be: coalesced) or closed during shutdown
                pass

    def drain(self) -> None:
        """Consume the wake-up; reset *before* the caller drains its queue, so nothing is lost."""
        try:
            self._r.recv(4096)
        except OSError:
            pass
        self.pending = False

    def close(self) -> None:
        self._r.close()
        self._w.close()


class ThreadCallQueue:
    """``call_from_thread`` for backends with their own loop: a deque plus a :class:`Waker`."""

    def __init__(self, reactor: _RunsThreadCalls) -> None:
        self._calls: collections.deque[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = (
            collections.deque()
        )
        self.waker = Waker()
        self._reactor = reactor

    def put(self, f: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self._calls.append((f, args, kwargs))  # deque.append is atomic
        self.waker.wake()

    def run(self) -> None:
        """The waker's read callback: run the calls queued so far, in order."""
        self.waker.drain()
        calls = self._calls
        run = self._reactor._run_thread_call
        for _ in range(len(calls)):  # later arrivals have woken us again
            f, args, kwargs = calls.popleft()
            run(f, args, kwargs)

    def close(self) -> None:
        self.waker.close()
