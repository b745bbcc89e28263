"""``SelectorsReactor``: the reactor's own loop over :mod:`selectors` (epoll, poll or select).

``selectors`` allows one registration per fd with an event mask, while the reactor API has separate
readers and writers; a small :class:`_FDRecord` per fd holds both callbacks and is the
registration's ``data``, so dispatch needs no dictionary lookup. The loop is on the hot path of
every round trip, so it binds what it uses to locals and allocates nothing of its own per round.
Each iteration runs the ``call_soon`` queue, then the due timed calls, then waits (with a timeout
of 0 while ``call_soon`` calls are queued) and dispatches the ready fds.
"""

from __future__ import annotations

import errno
import logging
import os
import selectors
import time
from collections.abc import Callable
from typing import Any

from ._reactorbase import ReactorBase
from .waker import ThreadCallQueue

__all__ = ["SelectorsReactor", "SELECTOR_KINDS"]

log = logging.getLogger("net.reactor")

#: kind name → selector class, for the kinds this platform has.
SELECTOR_KINDS: dict[str, type[selectors.BaseSelector]] = {
    name: getattr(selectors, cls)
    for name, cls in (("epoll", "EpollSelector"), ("poll", "PollSelector"), ("select", "SelectSelector"))
    if hasattr(selectors, cls)
}

_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE


class _FDRecord:
    """The reader and writer callbacks of one registered fd."""

    __slots__ = ("reader", "writer")

    def __init__(self) -> None:
        self.reader: Callable[[], Any] | None = None
        self.writer: Callable[[], Any] | None = None


def _fileno(fd: Any) -> int:
    return fd if isinstance(fd, int) else int(fd.fileno())


class SelectorsReactor(ReactorBase):
    """A reactor whose loop waits in ``selectors.<Kind>Selector.select``."""

    def __init__(self, kind: str = "epoll") -> None:
        try:
            selector_class = SELECTOR_KINDS[kind]
        except KeyError:
            raise ValueError(f"selector kind must be one of {sorted(SELECTOR_KINDS)}, not {kind!r}") from None
        super().__init__()
        self.kind = kind
        self._selector = selector_class()
        self._fds: dict[int, _FDRecord] = {}
        self._looping = False
        self._thread_calls = ThreadCallQueue(self)
        self.add_reader(self._thread_calls.waker.fd, self._thread_calls.run)

    def __repr__(self) -> str:
        return f"<SelectorsReactor kind={self.kind} running={self.running}>"

    #: The reactor's clock: time.monotonic itself (a C call; read several times per round trip).
    seconds = staticmethod(time.monotonic)

    # ------------------------------------------------------------------ fd set
    def add_reader(self, fd: int, callback: Callable[[], Any]) -> None:
        fd = _fileno(fd)
        record = self._fds.get(fd)
        if record is None:
            record = self._fds[fd] = _FDRecord()
            record.reader = callback
            self._register(fd, _READ, record)
        elif record.reader is None:
            record.reader = callback
            self._selector.modify(fd, _READ | _WRITE, record)
        else:
            record.reader = callback

    def add_writer(self, fd: int, callback: Callable[[], Any]) -> None:
        fd = _fileno(fd)
        record = self._fds.get(fd)
        if record is None:
            record = self._fds[fd] = _FDRecord()
            record.writer = callback
            self._register(fd, _WRITE, record)
        elif record.writer is None:
            record.writer = callback
            self._selector.modify(fd, _READ | _WRITE, record)
        else:
            record.writer = callback

    def remove_reader(self, fd: int) -> None:
        fd = _fileno(fd)
        record = self._fds.get(fd)
        if record is None or record.reader is None:
            return
        record.reader = None
        if record.writer is None:
            del self._fds[fd]
            self._unregister(fd)
        else:
            self._selector.modify(fd, _WRITE, record)

    def remove_writer(self, fd: int) -> None:
        fd = _fileno(fd)
        record = self._fds.get(fd)
        if record is None or record.writer is None:
            return
        record.writer = None
        if record.reader is None:
            del self._fds[fd]
            self._unregister(fd)
        else:
            self._selector.modify(fd, _READ, record)

    def _register(self, fd: int, events: int, record: _FDRecord) -> None:
        try:
            self._selector.register(fd, events, record)
        except BaseException:
            del self._fds[fd]
            raise

    def _unregister(self, fd: int) -> None:
        try:
            self._selector.unregister(fd)
        except (KeyError, ValueError, OSError):  # the fd was closed while registered
            pass

    def get_readers(self) -> list[int]:
        """The fds watched for reading (the waker's included)."""
        return [fd for fd, r in self._fds.items() if r.reader is not None]

    def get_writers(self) -> list[int]:
        """The fds watched for writing."""
        return [fd for fd, r in self._fds.items() if r.writer is not None]

    # ------------------------------------------------------------------ threads
    def _signal_wakeup_fd(self) -> int | None:
        return self._thread_calls.waker.write_fd

    def call_from_thread(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Queue ``f`` for the reactor thread and wake the loop (one byte, coalesced)."""
        self._thread_calls.put(f, args, kwargs)

    # ------------------------------------------------------------------ loop
    def _leave_loop(self) -> None:
        self._looping = False

    def _main_loop(self, startup: Callable[[], None]) -> None:
        self._looping = True
        startup()
        select = self._selector.select
        run_soon_calls = self._run_soon_calls
        run_due_calls = self._run_due_calls
        next_timeout = self._next_timeout
        soon = self._soon
        heap = self._heap
        exception = log.exception
        while self._looping:
            # One iteration: the call_soon queue, the due timed calls, then wait (not at all
            # while call_soon calls are queued) and dispatch what the wait reported.
            if soon:
                run_soon_calls()
                if not self._looping:
                    break
            if heap:
                run_due_calls()
                if not self._looping:
                    break
                timeout = 0.0 if soon else next_timeout()
            else:
                timeout = 0.0 if soon else None
            try:
                events = select(timeout)
            except (OSError, ValueError) as exc:
                if not self._drop_bad_fds(exc):
                    raise
                continue
            for key, mask in events:
                record = key.data
                if mask & _READ:
                    callback = record.reader
                    if callback is not None:
                        try:
                            callback()
                        except Exception:
                            exception("Error in reader callback %r", callback)
                if mask & _WRITE:
                    callback = record.writer  # read again: the reader may have removed it
                    if callback is not None:
                        try:
                            callback()
                        except Exception:
                            exception("Error in writer callback %r", callback)

    # ------------------------------------------------------------------ driven by a host loop
    def iterate(self, timeout: float | None = 0.0) -> float | None:
        """One round of the loop, for a host loop that drives this reactor (:mod:`net.tksupport`).

        Runs the ``call_soon`` queue and the due timed calls, waits up to ``timeout`` seconds
        (None: no limit; never while ``call_soon`` calls are queued, never past the next timed
        call, not at all once the reactor is not running: its shutdown may have completed in
        this round) and dispatches what the wait reported; errors in callbacks are logged, as in
        :meth:`run`. Returns how long the next round may wait: 0.0 if calls are queued, the
        seconds until the next timed call, None if there is none.
        """
        if self._soon:
            self._run_soon_calls()
        if self._heap:
            self._run_due_calls()
        due = 0.0 if self._soon or not self._started else self._next_timeout()
        wait = due if timeout is None else timeout if due is None else min(timeout, due)
        try:
            events = self._selector.select(wait)
        except (OSError, ValueError) as exc:
            if not self._drop_bad_fds(exc):
                raise
            events = []
        for key, mask in events:
            record = key.data
            if mask & _READ and record.reader is not None:
                try:
                    record.reader()
                except Exception:
                    log.exception("Error in reader callback %r", record.reader)
            if mask & _WRITE and record.writer is not None:  # read again: the reader may have removed it
                try:
                    record.writer()
                except Exception:
                    log.exception("Error in writer callback %r", record.writer)
        return 0.0 if self._soon else self._next_timeout()

    def wait_fd(self) -> int | None:
        """An fd that polls readable while this reactor has I/O to dispatch, for a host loop to
        watch (then call :meth:`iterate`): the epoll selector's own fd. None for poll and select,
        which have no such fd; a host loop then calls :meth:`iterate` at intervals."""
        fileno = getattr(self._selector, "fileno", None)
        return int(fileno()) if fileno is not None else None

    def _drop_bad_fds(self, exc: BaseException) -> bool:
        """select() failed on an fd closed while registered: forget such fds, loudly."""
        if isinstance(exc, OSError) and exc.errno != errno.EBADF:
            return False
        bad = []
        for fd in self._fds:
            try:
                os.fstat(fd)
            except OSError:
                bad.append(fd)
        for fd in bad:
            log.error("fd %d was closed while registered with the reactor; dropping it", fd)
            del self._fds[fd]
            self._unregister(fd)
        return bool(bad)

    def close(self) -> None:
        """Stop the thread pool and close the selector and the waker. The reactor is unusable after."""
        if self._closed:
            return
        super().close()
        self._selector.close()
        self._thread_calls.close()
        self._fds.clear()
