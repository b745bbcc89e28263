"""Tk integration: Tk's ``mainloop`` drives a pbroker reactor, in the manner of Twisted's tksupport.

Tk cannot host a reactor (it has no API to wait for arbitrary sockets with our callbacks), so it
is the other way round: after :func:`install`, ``reactor.run()`` runs ``tk_root.mainloop()`` and
the reactor does its work in rounds (:meth:`net.selectreactor.SelectorsReactor.iterate`) that Tk
schedules::

    root = tkinter.Tk()
    reactor = make_reactor("epoll")
    tksupport.install(root, reactor)     # before reactor.run()
    ...                                  # widgets whose callbacks use broker.connect(reactor, ...)
    reactor.run()                        # returns after the window was closed and shutdown ran
    tksupport.uninstall()
    reactor.close()

When rounds run:

* **Socket readiness** — with the ``epoll`` backend the reactor's selector has an fd of its own
  that polls readable whenever a registered socket (or the waker of ``call_from_thread`` and
  signals) is ready; it is given to Tk's ``createfilehandler`` (Unix), so a reply is handled as
  soon as it arrives, however long the interval.
* **Timers and ``call_soon``** — after each round, the next one is scheduled with ``after``: at
  once if ``call_soon`` calls are queued, at the next timed call if sooner, and at most
  ``interval_ms`` later in any case. That bound is what picks up work queued from a Tk callback
  (a button's handler calling ``call_remote`` queues the write); it also covers the ``poll`` and
  ``select`` backends, which have no fd to watch and are simply polled every ``interval_ms``.

Every round waits 0 seconds: Tk does the waiting, so the window stays responsive while calls are
in flight. A Tk callback that itself runs a nested event loop (a modal dialog) holds rounds back
until it returns: a round never runs inside another.

Shutdown. The window's close button (``WM_DELETE_WINDOW``) calls ``reactor.stop()``: the
shutdown triggers run with Tk still looping (a broker connection can send its goodbye), then the
window is destroyed and ``run()`` returns. ``reactor.stop()`` from the program leaves
``mainloop`` the same way but keeps the window. If the program destroys the root window itself,
``mainloop`` returns at once; the reactor is then stopped and finishes its shutdown in rounds of
its own before ``run()`` returns, so the triggers still run.

Errors. Exceptions in the reactor's callbacks are logged to ``logging.getLogger("net.reactor")``
as always; exceptions escaping a Tk callback (a button's ``command``), which Tk would print to
stderr, are logged there too (``report_callback_exception``), and the loop carries on.

Only :class:`~net.selectreactor.SelectorsReactor` (``epoll``, ``poll``, ``select``) can be driven
this way; the asyncio backend runs its own loop (drive Tk from asyncio instead, or use epoll).
"""

from __future__ import annotations

import logging
import math
import tkinter
from collections.abc import Callable
from types import TracebackType
from typing import Any

from .error import ReactorNotRunning
from .selectreactor import SelectorsReactor

__all__ = ["install", "uninstall"]

log = logging.getLogger("net.reactor")

_MISSING = object()


class _TkDriver:
    """The reactor's main loop, when Tk's mainloop is the one that waits."""

    def __init__(self, root: tkinter.Tk, reactor: SelectorsReactor, interval_ms: int) -> None:
        self.root = root
        self.reactor = reactor
        self.interval_ms = interval_ms
        self._after_id: str | None = None
        self._watched_fd: int | None = None
        self._in_round = False
        self._leaving = False  # the shutdown completed: mainloop must return
        self._close_requested = False  # WM_DELETE_WINDOW: destroy the window once stopped
        self._saved_protocol = root.protocol("WM_DELETE_WINDOW")
        self._saved_reporter = root.__dict__.get("report_callback_exception", _MISSING)
        root.protocol("WM_DELETE_WINDOW", self._close_clicked)
        root.report_callback_exception = self._report_tk_error
        reactor.set_host_loop(self)  # the reactor's main loop becomes Tk's

    def remove(self) -> None:
        """Give the reactor back its own loop, and the window its close handler and error report."""
        if self.reactor.running:
            raise RuntimeError("tksupport.uninstall() while the reactor runs: stop it first "
                               "(reactor.stop(), or close the window), then uninstall")
        self.reactor.set_host_loop(None)
        try:
            self.root.protocol("WM_DELETE_WINDOW", self._saved_protocol)
        except tkinter.TclError:  # the window was destroyed
            pass
        if self._saved_reporter is _MISSING:
            self.root.__dict__.pop("report_callback_exception", None)
        else:
            self.root.report_callback_exception = self._saved_reporter

    # ------------------------------------------------------------------ the loop
    def main_loop(self, startup: Callable[[], None]) -> None:
        self._leaving = self._close_requested = False
        # Start from inside mainloop: a quit() before it began would be forgotten by it.
        self._after_id = self.root.after(0, self._begin, startup)
        try:
            self.root.mainloop()
            if not self._leaving:
                self._finish_without_tk()
        finally:
            self._cancel_round()
            if self._watched_fd is not None:
                self.root.tk.deletefilehandler(self._watched_fd)
                self._watched_fd = None
        if self._close_requested:
            self._destroy_root()

    def _begin(self, startup: Callable[[], None]) -> None:
        self._after_id = None
        startup()
        fd = self.reactor.wait_fd()
        if fd is not None and not self._leaving:
            self.root.tk.createfilehandler(fd, tkinter.READABLE, self._readable)
            self._watched_fd = fd
        self._schedule(0.0)

    def _finish_without_tk(self) -> None:
        """mainloop returned without the reactor stopping (the window was destroyed): stop it and
        run its rounds here, waiting in its own selector, until the shutdown is complete."""
        self._cancel_round()
        try:
            self.reactor.stop()
        except ReactorNotRunning:  # already stopping
            pass
        while not self._leaving:
            self.reactor.iterate(None)

    def leave_loop(self) -> None:
        self._leaving = True
        self._cancel_round()
        self.root.quit()

    def _round(self) -> None:
        self._after_id = None
        if self._leaving:
            return
        if self._in_round:  # a nested Tk loop inside one of our callbacks: after it returns
            self._schedule(None)
            return
        self._in_round = True
        try:
            due = self.reactor.iterate(0.0)
        finally:
            self._in_round = False
        self._schedule(due)

    def _schedule(self, due: float | None) -> None:
        """The next round: in ``due`` seconds if sooner than the interval, else after the interval."""
        if self._leaving:
            return
        self._cancel_round()
        delay = self.interval_ms if due is None else min(self.interval_ms, math.ceil(due * 1000))
        self._after_id = self.root.after(delay, self._round)

    def _cancel_round(self) -> None:
        after_id, self._after_id = self._after_id, None
        if after_id is not None:
            try:
                self.root.after_cancel(after_id)
            except tkinter.TclError:  # the interpreter is gone with the window
                pass

    def _readable(self, fd: int, mask: int) -> None:
        self._cancel_round()
        self._round()

    # ------------------------------------------------------------------ the window
    def _close_clicked(self) -> None:
        if not self.reactor.running:
            self._destroy_root()
            return
        self._close_requested = True
        try:
            self.reactor.stop()
        except ReactorNotRunning:  # a second click while the shutdown runs
            return
        self._schedule(0.0)

    def _destroy_root(self) -> None:
        try:
            self.root.destroy()
        except tkinter.TclError:  # already destroyed
            pass

    def _report_tk_error(self, kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        log.error("Error in Tk callback", exc_info=(kind, value, tb))


_installed: _TkDriver | None = None


def install(tk_root: tkinter.Tk, reactor: Any, *, interval_ms: int = 10) -> None:
    """Make ``reactor.run()`` run ``tk_root``'s mainloop and do the reactor's work from it.

    ``reactor`` must be a :class:`~net.selectreactor.SelectorsReactor` (``make_reactor("epoll")``,
    ``"poll"`` or ``"select"``) that is not running; ``interval_ms`` bounds how long work queued
    from Tk callbacks and, on poll/select, socket readiness wait for the next round.
    """
    global _installed
    if not isinstance(reactor, SelectorsReactor):
        raise TypeError(f"tksupport.install() drives an epoll, poll or select reactor, not {reactor!r}: "
                        "make it with make_reactor('epoll')")
    if interval_ms < 1:
        raise ValueError(f"interval_ms must be at least 1 millisecond, not {interval_ms}")
    if _installed is not None:
        raise RuntimeError("tksupport is already installed (on one Tk root, for one reactor): "
                           "call tksupport.uninstall() first")
    if reactor.running:
        raise RuntimeError("tksupport.install() before reactor.run(), not while the reactor runs")
    _installed = _TkDriver(tk_root, reactor, interval_ms)


def uninstall() -> None:
    """Undo :func:`install`: the reactor runs its own loop again; a no-op if not installed."""
    global _installed
    if _installed is None:
        return
    _installed.remove()
    _installed = None
