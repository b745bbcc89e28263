"""``AsyncioReactor``: the reactor API on an asyncio event loop (uvloop when asked for).

Two ways to use it:

* **Standalone** — ``AsyncioReactor()`` outside any running loop creates (and owns) a new loop;
  ``run()`` / ``stop()`` behave as with every other backend (``run()`` drives ``run_forever``).
* **Embedded** — inside a running asyncio program, ``AsyncioReactor()`` picks up the running loop
  and there is no ``run()``: the program calls ``await reactor.start()`` (fires the startup
  triggers, sets ``running``) and ``await reactor.shutdown()`` (fires the shutdown triggers, waits
  for their Deferreds, stops the thread pool). pbroker Deferreds and asyncio tasks then share the
  one loop, and a Deferred can be awaited from a coroutine::

      async def main() -> None:
          reactor = AsyncioReactor()
          await reactor.start()
          try:
              ...  # await Deferreds, use asyncio freely
          finally:
              await reactor.shutdown()

      asyncio.run(main())

  Signal handling is left to the asyncio program in this mode.

``call_soon`` is ``loop.call_soon`` (asyncio's ready queue is exactly the reactor's call_soon queue:
FIFO, run once per loop iteration, the wait's timeout 0 while it is non-empty). Timed calls keep
the reactor's own heap (so equal times run FIFO and ``DelayedCall.reset`` keeps the
same object, exactly as on the other backends); one ``loop.call_at`` timer is armed for the
earliest of them. uvloop is used when ``use_uvloop=True`` or ``PBROKER_UVLOOP=1``, if importable.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import os
from collections.abc import Callable
from typing import Any

from ._reactorbase import ReactorBase
from .error import ReactorAlreadyRunning

__all__ = ["AsyncioReactor"]

log = logging.getLogger("net.reactor")


def _call_guarded(callback: Callable[[], Any]) -> None:
    """fd callbacks go through here so their errors reach our log, not asyncio's handler."""
    try:
        callback()
    except Exception:
        log.exception("Error in fd callback %r", callback)


def _run_soon(f: Callable[..., Any], *args: Any) -> None:
    """What ``loop.call_soon`` runs for :meth:`AsyncioReactor.call_soon`: errors to our log."""
    try:
        f(*args)
    except Exception:
        log.exception("Error in call_soon call %r", f)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():  # the awaiting coroutine may have been cancelled
        future.set_result(None)


def _new_loop(use_uvloop: bool) -> asyncio.AbstractEventLoop:
    if use_uvloop or os.environ.get("PBROKER_UVLOOP") == "1":
        try:
            import uvloop  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            log.warning("uvloop requested but not importable; using the default asyncio loop")
        else:
            loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
            return loop
    return asyncio.new_event_loop()


class AsyncioReactor(ReactorBase):
    """A reactor running on an asyncio event loop; see the module docstring for the two modes."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None, use_uvloop: bool = False) -> None:
        super().__init__()
        owns_loop = False
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = _new_loop(use_uvloop)
                owns_loop = True
        self.loop = loop
        self._owns_loop = owns_loop
        self._in_run = False  # inside run(), as opposed to embedded start()/shutdown()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when = math.inf

    def __repr__(self) -> str:
        return f"<AsyncioReactor loop={type(self.loop).__name__} running={self.running}>"

    def seconds(self) -> float:
        return self.loop.time()

    # ------------------------------------------------------------------ fd set
    def add_reader(self, fd: int, callback: Callable[[], Any]) -> None:
        self.loop.add_reader(fd, _call_guarded, callback)

    def remove_reader(self, fd: int) -> None:
        self.loop.remove_reader(fd)

    def add_writer(self, fd: int, callback: Callable[[], Any]) -> None:
        self.loop.add_writer(fd, _call_guarded, callback)

    def remove_writer(self, fd: int) -> None:
        self.loop.remove_writer(fd)

    # ------------------------------------------------------------------ threads
    def call_from_thread(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Queue ``f`` for the loop thread (``call_soon_threadsafe`` wakes the loop)."""
        self.loop.call_soon_threadsafe(self._run_thread_call, f, args, kwargs)

    # ------------------------------------------------------------------ timers
    def call_soon(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> asyncio.Handle:
        """``loop.call_soon`` itself: asyncio's ready queue is the reactor's call_soon queue.

        The only wrapping is :func:`_run_soon` (so errors reach ``net.reactor``'s log, as on every
        backend); FIFO with asyncio's own callbacks. Returns the ``asyncio.Handle`` (``cancel()``).
        """
        if kwargs:
            f = functools.partial(f, **kwargs)
        return self.loop.call_soon(_run_soon, f, *args)

    def _timer_added(self, when: float) -> None:
        if when < self._timer_when:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_when = when
            self._timer = self.loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_when = math.inf
        self._run_due_calls()
        if self._next_timeout() is not None:  # also drops stale entries from the top
            self._timer_added(self._heap[0][0])

    # ------------------------------------------------------------------ standalone mode
    def run(self, install_signal_handlers: bool = True) -> None:
        """Run the loop until :meth:`stop` completes (standalone mode only)."""
        if self.loop.is_running():
            raise ReactorAlreadyRunning(
                "the asyncio loop is already running: use `await reactor.start()` and "
                "`await reactor.shutdown()` inside an asyncio program, not run()"
            )
        super().run(install_signal_handlers)

    def _signal_wakeup_fd(self) -> int | None:
        # asyncio's selector loops wake on their self-pipe (a private attribute, absent on uvloop,
        # which then keeps today's behaviour); bytes it reads there for no asyncio signal handler
        # are ignored, and ours then runs on the main thread.
        sock = getattr(self.loop, "_csock", None)
        return sock.fileno() if sock is not None else None

    def _main_loop(self, startup: Callable[[], None]) -> None:
        self._in_run = True
        try:
            self.loop.call_soon(startup)
            self.loop.run_forever()
        finally:
            self._in_run = False

    def _leave_loop(self) -> None:
        if self._in_run:
            self.loop.stop()

    # ------------------------------------------------------------------ embedded mode
    async def start(self) -> None:
        """Fire the startup triggers from inside a running asyncio program; then ``running``."""
        if self._started:
            raise ReactorAlreadyRunning("start() called on a reactor that is already running")
        if asyncio.get_running_loop() is not self.loop:
            raise RuntimeError("start() must be awaited on the reactor's own loop")
        self._started = True
        started: asyncio.Future[None] = self.loop.create_future()
        self._fire_event("startup", between=self._mark_running, then=lambda: _resolve(started))
        await started

    async def shutdown(self) -> None:
        """Fire the shutdown triggers (if :meth:`stop` hasn't), wait until they all complete.

        A no-op if the reactor is not running.
        """
        if not self._started:
            return
        done: asyncio.Future[None] = self.loop.create_future()
        self._shutdown_waiters.append(lambda: _resolve(done))
        if not self._stopping:
            self.stop()
        await done

    def close(self) -> None:
        """Stop the thread pool, cancel the timer, close the loop if this reactor created it."""
        if self._closed:
            return
        super().close()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._owns_loop and not self.loop.is_running():
            self.loop.close()
