"""A bounded pool of worker threads, for blocking calls the reactor thread must not make.

Threads start on demand (never more than ``max_threads``) and idle ones are reused, so a reactor
that never touches the pool never starts a thread. The pool knows nothing of Deferreds: results go
to a plain ``on_result(ok, value)`` callback, which the reactor turns into a Deferred fired in its
own thread (see ``ReactorBase.defer_to_thread``).
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from itertools import count
from typing import Any

__all__ = ["ThreadPool"]

log = logging.getLogger(__name__)

_Job = tuple[Callable[[bool, Any], None] | None, Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class ThreadPool:
    """Runs jobs in at most ``max_threads`` threads; :meth:`stop` lets queued jobs finish, then joins.

    A job's exception goes to its ``on_result`` callback if it has one, else to the log.
    """

    def __init__(self, min_threads: int = 0, max_threads: int = 10, name: str = "net-pool") -> None:
        if max_threads < 1 or min_threads < 0 or min_threads > max_threads:
            raise ValueError(f"need 0 <= min_threads <= max_threads, max_threads >= 1; got {min_threads}, {max_threads}")
        self.min_threads = min_threads
        self.max_threads = max_threads
        self.name = name
        self._cond = threading.Condition(threading.Lock())
        self._jobs: collections.deque[_Job] = collections.deque()
        self._threads: set[threading.Thread] = set()
        self._idle = 0  # threads not running a job (starting or waiting)
        self._stopping = False
        self._thread_numbers = count(1).__next__
        with self._cond:
            for _ in range(min_threads):
                self._spawn()

    @property
    def stopped(self) -> bool:
        return self._stopping

    @property
    def thread_count(self) -> int:
        """How many worker threads exist right now."""
        with self._cond:
            return len(self._threads)

    def adjust_max_threads(self, max_threads: int) -> None:
        """Change the bound. Extra threads retire as they become idle."""
        if max_threads < 1:
            raise ValueError(f"max_threads must be at least 1, not {max_threads}")
        with self._cond:
            self.max_threads = max_threads
            self.min_threads = min(self.min_threads, max_threads)
            self._cond.notify_all()  # idle threads above the bound retire
            self._spawn_as_needed()

    def call_in_thread(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run ``f(*args, **kwargs)`` in a worker; an exception is logged."""
        self._submit((None, f, args, kwargs))

    def call_in_thread_with_callback(
        self, on_result: Callable[[bool, Any], None], f: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> None:
        """Run ``f`` in a worker, then ``on_result(True, result)`` or ``on_result(False, exc)``
        in that same worker thread."""
        self._submit((on_result, f, args, kwargs))

    def stop(self) -> None:
        """Run the jobs already queued, then end and join every thread. Idempotent."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            threads = list(self._threads)
        current = threading.current_thread()
        for thread in threads:
            if thread is not current:
                thread.join()

    def _submit(self, job: _Job) -> None:
        with self._cond:
            if self._stopping:
                raise RuntimeError(f"thread pool {self.name!r} is stopped")
            self._jobs.append(job)
            self._spawn_as_needed()
            self._cond.notify()

    def _spawn_as_needed(self) -> None:
        # More jobs queued than free threads to take them: add a thread, if the bound allows.
        while len(self._jobs) > self._idle and len(self._threads) < self.max_threads:
            self._spawn()

    def _spawn(self) -> None:
        thread = threading.Thread(
            target=self._worker, name=f"{self.name}-{self._thread_numbers()}", daemon=True
        )
        self._threads.add(thread)
        self._idle += 1  # free from birth: it takes a job as soon as it starts
        thread.start()

    def _worker(self) -> None:
        cond = self._cond
        me = threading.current_thread()
        while True:
            with cond:
                while not self._jobs:
                    if self._stopping or len(self._threads) > self.max_threads:
                        self._threads.discard(me)
                        self._idle -= 1
                        return
                    cond.wait()
                on_result, f, args, kwargs = self._jobs.popleft()
                self._idle -= 1
            self._run(on_result, f, args, kwargs)
            del on_result, f, args, kwargs  # don't keep the last job's objects alive while idle
            with cond:
                self._idle += 1

    @staticmethod
    def _run(
        on_result: Callable[[bool, Any], None] | None, f: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        try:
            result = f(*args, **kwargs)
        except BaseException as exc:
            if on_result is None:
                log.exception("Error in thread pool call %r", f)
                return
            ok, result = False, exc
        else:
            ok = True
            if on_result is None:
                return
        try:
            on_result(ok, result)
        except Exception:
            log.exception("Error in thread pool result callback %r", on_result)
