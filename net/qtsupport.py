"""Qt integration: pbroker's asyncio reactor running on Qt's own event loop (PySide6 + qasync).

A Qt program and pbroker share one loop and one thread: Qt's ``exec()`` waits for window-system
events, sockets and timers at once, so a remote call never freezes the window::

    app = QApplication(sys.argv)
    reactor = qtsupport.qt_reactor(app)      # before any connect/serve: they need the reactor
    window = MainWindow(reactor)             # buttons call broker.connect(reactor, ...) and so on
    window.show()
    qtsupport.run(app, reactor)              # returns once the last window closed and shutdown ran
    reactor.close()

Why qasync and not a native Qt reactor. qasync's ``QEventLoop`` is an asyncio event loop whose
waiting is Qt's (``QSocketNotifier`` per fd, ``QTimer`` for timeouts), and
:class:`net.asyncioreactor.AsyncioReactor` already runs on any asyncio loop and passes the whole
conformance suite; so the Qt integration is this page of glue, asyncio code (``broker.aio``) works
in the same program, and there is no second reactor with its own bugs to keep right. A native
reactor would do exactly what qasync does (one ``QSocketNotifier`` per fd and direction, a
single-shot ``QTimer`` for the earliest timed call, a posted event for ``call_from_thread``) and
would save only qasync's per-callback ``QTimer`` on ``call_soon``, which matters for benchmarks, not
for a desktop client doing tens of calls a second.

Shutdown. Closing the last window (or ``app.quit()``, say from a Quit menu) makes Qt post a
``QEvent.Quit`` to the application. :class:`QtReactor` filters that event while the reactor runs and
calls ``reactor.stop()`` instead, so the loop keeps running through the shutdown triggers (they
may wait on the network: a broker connection sending its goodbye and closing); when the last of
them has finished the reactor leaves the loop (``app.exit()``) and :func:`run` returns. A second
Quit during the shutdown is swallowed too. Once the reactor has stopped, Quit events pass through.

Errors. Exceptions escaping a Qt slot or virtual method (a button's ``clicked`` handler, a
``paintEvent``) are handed by PySide6 to ``sys.excepthook``; while :func:`run` runs, that hook logs
them to ``logging.getLogger("net.reactor")`` with their traceback, next to the reactor's own
callback errors, and the loop carries on. The previous hook is restored afterwards.

Importing. PySide6 and qasync are imported when the first reactor is made, not with this module,
and ``app`` is typed ``Any`` (it is the program's ``QApplication``): PySide6 6.12 crashes the
interpreter at exit ("none_dealloc") in a process that loaded it and then had pdoc document
``net.defer`` and ``net.contracts``, which the API reference build does for every module.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
from types import TracebackType
from typing import Any, cast

from .asyncioreactor import AsyncioReactor
from .error import ReactorNotRunning

__all__ = ["QtReactor", "qt_reactor", "run"]

log = logging.getLogger("net.reactor")


@functools.cache
def _stop_on_quit_class() -> type[Any]:
    """The Quit filter's class, defined on first use: see "Importing" in the module docstring."""
    from PySide6.QtCore import QEvent, QObject

    class StopOnQuit(QObject):
        """Turns the application's Quit event into ``reactor.stop()`` while the reactor runs."""

        def __init__(self, reactor: QtReactor) -> None:
            super().__init__()
            self._reactor = reactor

        def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
            if event.type() != QEvent.Type.Quit or not self._reactor.running:
                return False
            try:
                self._reactor.stop()
            except ReactorNotRunning:  # already stopping: its end leaves the loop
                pass
            return True  # the shutdown, not this event, ends the loop

    return StopOnQuit


def _log_qt_error(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    """``sys.excepthook`` while :func:`run` runs: what PySide6 reports from slots goes to the log."""
    log.error("Error in Qt callback", exc_info=(kind, value, tb))


class QtReactor(AsyncioReactor):
    """An :class:`AsyncioReactor` on a qasync ``QEventLoop`` of ``app``; see the module docstring.

    ``run()`` runs Qt's ``exec()``; ``stop()`` (or the last window closing, or ``app.quit()``) runs
    the shutdown triggers and then leaves it. ``close()`` closes the qasync loop, which this reactor
    owns, and removes its Quit filter from the application.
    """

    def __init__(self, app: Any) -> None:
        import qasync  # type: ignore[import-untyped,unused-ignore]
        from PySide6.QtCore import QCoreApplication

        if app is None or QCoreApplication.instance() is not app:
            raise ValueError("qt_reactor(app): app must be the program's QApplication instance "
                             "(create it first: app = QApplication(sys.argv))")
        loop = qasync.QEventLoop(app)
        super().__init__(loop=loop)
        self._owns_loop = True  # AsyncioReactor.close() closes the loop it owns
        self.app: Any = cast(Any, app)  # the QApplication (Any: see "Importing" above)
        self._quit_filter = _stop_on_quit_class()(self)
        self.app.installEventFilter(self._quit_filter)
        asyncio.set_event_loop(loop)  # so asyncio code in the program (broker.aio) finds this loop

    def __repr__(self) -> str:
        return f"<QtReactor running={self.running}>"

    def run(self, install_signal_handlers: bool = True) -> None:
        """Run Qt's event loop until the reactor has stopped; Qt callback errors are logged meanwhile."""
        previous_hook = sys.excepthook
        sys.excepthook = _log_qt_error
        try:
            super().run(install_signal_handlers)
        finally:
            sys.excepthook = previous_hook

    def close(self) -> None:
        """Remove the Quit filter, stop the thread pool, close the qasync loop."""
        if self._closed:
            return
        self.app.removeEventFilter(self._quit_filter)
        loop = self.loop
        super().close()
        try:
            current = asyncio.get_event_loop_policy().get_event_loop()
        except RuntimeError:
            current = None
        if current is loop:
            asyncio.set_event_loop(None)


def qt_reactor(app: Any) -> QtReactor:
    """A reactor running on ``app``'s event loop; create it before any connection or timer."""
    return QtReactor(app)


def run(app: Any, reactor: QtReactor, *, install_signal_handlers: bool = True) -> None:
    """Run ``app`` with ``reactor`` until the reactor stops (the last window closed, ``app.quit()``,
    ``reactor.stop()``, SIGINT/SIGTERM), its shutdown triggers included."""
    if reactor.app is not app:
        raise ValueError("run(app, reactor): the reactor was made for another QApplication; "
                         "make it with qt_reactor(app)")
    reactor.run(install_signal_handlers)
