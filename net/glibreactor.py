"""``GlibReactor``: the reactor API on the GLib main loop (PyGObject), so GTK and pbroker share one loop.

A GTK program already runs GLib's loop on the default :class:`GLib.MainContext`; this backend puts
every reactor event on that same context, so a button handler can make a remote call and the
answer arrives as one more GLib event, with no second thread and no polling:

* a socket is a GLib fd source (``GLib.unix_fd_add_full``): one source for reading (``IN``, plus
  ``HUP``/``ERR``, which the reader's ``recv`` turns into EOF or an error) and one for writing;
  an fd closed while watched (``NVAL``) is dropped with an error logged, rather than spun on;
* timed calls keep the reactor's own heap (equal times run FIFO, ``DelayedCall.reset`` keeps the
  same object, exactly as on the other backends); one GLib timeout is armed for the earliest;
* ``call_soon`` is the base's FIFO deque, run by an idle source that exists only while the deque is
  non-empty; at the same priority as the fd sources, so a ``call_soon`` chain cannot starve I/O;
* ``call_from_thread`` appends to a deque and adds one idle source (``GLib.idle_add`` is
  thread-safe and wakes the loop); wake-ups are coalesced while one is pending;
* SIGINT/SIGTERM are the base's Python handlers; PyGObject's ``MainLoop.run`` wakes its poll on a
  signal, so they run promptly.

Two ways to use it (both on the default context, so one ``GlibReactor`` per program):

* **The reactor runs the loop** — call ``reactor.run()`` instead of ``Gtk.main()``: it runs a
  ``GLib.MainLoop`` on the default context, which is all ``Gtk.main()`` does, so windows work as
  usual. Quit with ``reactor.stop()`` (say from the window's ``destroy`` signal), never with
  ``Gtk.main_quit()``. Should the loop be quit behind the reactor's back, ``run()`` still completes
  the shutdown event (iterating the context until its triggers are done) before it returns.
* **The program runs the loop** (``Gtk.main()``, ``Gtk.Application.run()``, another library's
  loop) — there is no ``run()``: call ``reactor.start()`` before or from inside the loop (it fires
  the startup triggers) and, when the window closes, ``reactor.shutdown()``, which returns a
  Deferred that fires once every shutdown trigger is done; quit the program's loop from it::

      reactor = GlibReactor()
      reactor.start()
      window.connect("destroy", lambda _w: reactor.shutdown().add_both(lambda _: Gtk.main_quit()))
      Gtk.main()
      reactor.close()

  Signal handling is the program's in this mode.
"""

from __future__ import annotations

import collections
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from ._reactorbase import ReactorBase, SoonCall
from .defer import Deferred
from .error import ReactorAlreadyRunning

# The module imports without PyGObject (so the API docs build, and the error comes from the one
# place that needs GLib, with what to install): GlibReactor() raises then, see require_glib().
_missing: BaseException | None = None
try:
    import gi

    gi.require_version("GLib", "2.0")
    from gi.repository import GLib
except (ImportError, ValueError) as exc:
    GLib = None
    _missing = exc

__all__ = ["GlibReactor", "require_glib"]

log = logging.getLogger("net.reactor")

if GLib is not None:
    _IO = GLib.IOCondition
    _READ_CONDITION = _IO.IN | _IO.HUP | _IO.ERR | _IO.NVAL
    _WRITE_CONDITION = _IO.OUT | _IO.HUP | _IO.ERR | _IO.NVAL
    _NVAL = _IO.NVAL
#: The longest single GLib timeout we arm (a guint of milliseconds; ~24 days): a call further out
#: is reached by re-arming when this one fires early.
_MAX_TIMEOUT_MS = 2**31 - 1

_ThreadCall = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class _FDWatch:
    """The reader and writer of one fd, and the GLib source id of each (None: not watched)."""

    __slots__ = ("fd", "reader", "writer", "reader_source", "writer_source")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.reader: Callable[[], Any] | None = None
        self.writer: Callable[[], Any] | None = None
        self.reader_source: int | None = None
        self.writer_source: int | None = None


def require_glib() -> None:
    """Raise ImportError, saying what to install, unless PyGObject and GLib's typelib import."""
    if _missing is not None:
        raise ImportError(
            "the glib reactor needs PyGObject and GLib's introspection data: pip install 'pbroker[gui]' "
            "(it builds against libgirepository1.0-dev and libcairo2-dev; scripts/system-deps.sh installs "
            f"them on Debian). The import failed with: {_missing}"
        ) from _missing


def _fileno(fd: Any) -> int:
    return fd if isinstance(fd, int) else int(fd.fileno())


def _resolve(d: Deferred[None]) -> None:
    if not d.called:
        d.callback(None)


class GlibReactor(ReactorBase):
    """A reactor whose events are GLib sources on the default main context; see the module doc.

    ``priority`` is the GLib priority of every source the reactor adds (``GLib.PRIORITY_DEFAULT``,
    as GTK's own input handling; GTK redraws at a lower priority, after them). Raises ImportError,
    saying what to install, without PyGObject.
    """

    def __init__(self, priority: int = 0) -> None:  # 0 is GLib.PRIORITY_DEFAULT
        require_glib()
        super().__init__()
        self.priority = priority
        self.context: Any = GLib.MainContext.default()
        self._loop: Any = None  # the GLib.MainLoop of run(); None in the embedded mode
        self._fds: dict[int, _FDWatch] = {}
        self._soon_source: int | None = None
        self._timer_source: int | None = None
        self._timer_when = math.inf
        self._thread_calls: collections.deque[_ThreadCall] = collections.deque()
        self._thread_wake_pending = False

    def __repr__(self) -> str:
        return f"<GlibReactor running={self.running}>"

    def seconds(self) -> float:
        # Only differences are handed to GLib (its timeouts are relative), so any monotonic clock
        # does; on Linux this is GLib's own (CLOCK_MONOTONIC), read without a call through gi.
        return time.monotonic()

    # ------------------------------------------------------------------ fd set
    def add_reader(self, fd: int, callback: Callable[[], Any]) -> None:
        watch = self._watch(_fileno(fd))
        watch.reader = callback  # replacing a reader keeps its source
        if watch.reader_source is None:
            watch.reader_source = GLib.unix_fd_add_full(
                self.priority, watch.fd, _READ_CONDITION, self._on_readable, watch)

    def add_writer(self, fd: int, callback: Callable[[], Any]) -> None:
        watch = self._watch(_fileno(fd))
        watch.writer = callback
        if watch.writer_source is None:
            watch.writer_source = GLib.unix_fd_add_full(
                self.priority, watch.fd, _WRITE_CONDITION, self._on_writable, watch)

    def remove_reader(self, fd: int) -> None:
        watch = self._fds.get(_fileno(fd))
        if watch is None or watch.reader_source is None:
            return
        GLib.source_remove(watch.reader_source)
        watch.reader_source = watch.reader = None
        self._forget_if_unwatched(watch)

    def remove_writer(self, fd: int) -> None:
        watch = self._fds.get(_fileno(fd))
        if watch is None or watch.writer_source is None:
            return
        GLib.source_remove(watch.writer_source)
        watch.writer_source = watch.writer = None
        self._forget_if_unwatched(watch)

    def get_readers(self) -> list[int]:
        """The fds watched for reading."""
        return [fd for fd, w in self._fds.items() if w.reader_source is not None]

    def get_writers(self) -> list[int]:
        """The fds watched for writing."""
        return [fd for fd, w in self._fds.items() if w.writer_source is not None]

    def _watch(self, fd: int) -> _FDWatch:
        watch = self._fds.get(fd)
        if watch is None:
            watch = self._fds[fd] = _FDWatch(fd)
        return watch

    def _forget_if_unwatched(self, watch: _FDWatch) -> None:
        if watch.reader_source is None and watch.writer_source is None and self._fds.get(watch.fd) is watch:
            del self._fds[watch.fd]

    def _on_readable(self, fd: int, condition: int, watch: _FDWatch) -> bool:
        if condition & _NVAL:
            return self._drop_closed_fd(watch)
        callback = watch.reader
        if callback is not None:
            try:
                callback()
            except Exception:
                log.exception("Error in reader callback %r", callback)
        return True  # a callback that removed its own watch has destroyed the source already

    def _on_writable(self, fd: int, condition: int, watch: _FDWatch) -> bool:
        if condition & _NVAL:
            return self._drop_closed_fd(watch)
        callback = watch.writer
        if callback is not None:
            try:
                callback()
            except Exception:
                log.exception("Error in writer callback %r", callback)
        return True

    def _drop_closed_fd(self, watch: _FDWatch) -> bool:
        """poll() says the fd is not open (closed while registered): forget it, loudly, else the
        loop would spin on it."""
        log.error("fd %d was closed while registered with the reactor; dropping it", watch.fd)
        for source in (watch.reader_source, watch.writer_source):
            if source is not None:
                GLib.source_remove(source)
        watch.reader_source = watch.writer_source = watch.reader = watch.writer = None
        self._forget_if_unwatched(watch)
        return False

    # ------------------------------------------------------------------ call_soon
    def call_soon(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> SoonCall:
        """The base's FIFO queue; an idle source runs it once per loop iteration while non-empty."""
        call = SoonCall(f, args, kwargs)
        self._soon.append(call)
        if self._soon_source is None:
            self._soon_source = GLib.idle_add(self._on_soon, priority=self.priority)
        return call

    def _on_soon(self) -> bool:
        self._run_soon_calls()  # only those queued when this round began
        if self._soon and self._soon_source is not None:
            return True  # more were queued: run them on the next iteration
        self._soon_source = None
        return False

    # ------------------------------------------------------------------ timers
    def _timer_added(self, when: float) -> None:
        if when >= self._timer_when:
            return
        if self._timer_source is not None:
            GLib.source_remove(self._timer_source)
        self._timer_when = when
        delay = min(max(0.0, when - self.seconds()) * 1000.0, float(_MAX_TIMEOUT_MS))
        # Rounded up: a timeout that fires early finds nothing due and re-arms for the rest.
        self._timer_source = GLib.timeout_add(math.ceil(delay), self._on_timer, priority=self.priority)

    def _on_timer(self) -> bool:
        self._timer_source = None
        self._timer_when = math.inf
        self._run_due_calls()
        if self._next_timeout() is not None:  # also drops stale entries from the top
            self._timer_added(self._heap[0][0])
        return False

    # ------------------------------------------------------------------ threads
    def call_from_thread(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Queue ``f`` for the loop thread; one ``GLib.idle_add`` (thread-safe) wakes the loop."""
        self._thread_calls.append((f, args, kwargs))  # deque.append is atomic
        if not self._thread_wake_pending:
            self._thread_wake_pending = True
            GLib.idle_add(self._on_thread_calls, priority=self.priority)

    def _on_thread_calls(self) -> bool:
        self._thread_wake_pending = False  # before draining: a later put adds a new idle
        calls = self._thread_calls
        if self._closed:
            calls.clear()
            return False
        run = self._run_thread_call
        for _ in range(len(calls)):  # later arrivals have added their own idle source
            f, args, kwargs = calls.popleft()
            run(f, args, kwargs)
        return False

    # ------------------------------------------------------------------ the reactor runs the loop
    def _main_loop(self, startup: Callable[[], None]) -> None:
        self._loop = GLib.MainLoop.new(self.context, False)

        def start_inside_the_loop() -> bool:
            startup()
            return False

        try:
            # From inside the loop (so a quit from a startup trigger is not lost), before anything
            # else queued (as the other backends do: startup runs before the first round).
            GLib.idle_add(start_inside_the_loop, priority=GLib.PRIORITY_HIGH)
            self._loop.run()
            # Quit behind our back (reactor.loop.quit(), a nested loop's exit): finish shutdown
            # on the same context, so triggers run and connections say goodbye before run() returns.
            if self._started and not self._stopping:
                log.warning("the GLib main loop was quit without reactor.stop(); shutting down")
                self.stop()
            while self._started:
                self.context.iteration(True)
        finally:
            self._loop = None

    def _leave_loop(self) -> None:
        if self._loop is not None:
            self._loop.quit()

    @property
    def loop(self) -> Any:
        """The ``GLib.MainLoop`` that :meth:`run` is running (None outside ``run()``)."""
        return self._loop

    # ------------------------------------------------------------------ the program runs the loop
    def start(self) -> Deferred[None]:
        """Fire the startup triggers for a loop the program runs itself (``Gtk.main()``, ...).

        The Deferred fires once ``running`` is True (at once, unless a ``before`` trigger waits).
        """
        if self._started:
            raise ReactorAlreadyRunning("start() called on a reactor that is already running")
        if self._closed:
            raise RuntimeError("start() on a closed reactor")
        self._started = True
        started: Deferred[None] = Deferred()
        self._fire_event("startup", between=self._mark_running, then=lambda: _resolve(started))
        return started

    def shutdown(self) -> Deferred[None]:
        """Fire the shutdown triggers (unless :meth:`stop` has); fires once they are all done.

        The program's loop must keep running until then (the triggers may need I/O): quit it from
        the Deferred's callback. Fires at once if the reactor is not running.
        """
        done: Deferred[None] = Deferred()
        if not self._started:
            done.callback(None)
            return done
        self._shutdown_waiters.append(lambda: _resolve(done))
        if not self._stopping:
            self.stop()
        return done

    # ------------------------------------------------------------------ closing
    def close(self) -> None:
        """Stop the thread pool and remove every GLib source the reactor added.

        The default context outlives the reactor; nothing of this reactor may fire on it after.
        """
        if self._closed:
            return
        super().close()
        for source in (self._soon_source, self._timer_source):
            if source is not None:
                GLib.source_remove(source)
        self._soon_source = self._timer_source = None
        self._timer_when = math.inf
        for watch in list(self._fds.values()):
            for source in (watch.reader_source, watch.writer_source):
                if source is not None:
                    GLib.source_remove(source)
        self._fds.clear()
        self._thread_calls.clear()  # a pending idle source finds the reactor closed and ends
