"""Worker processes: N forks of one server, each with its own reactor, supervised by the parent.

The workers listen on the same TCP port with SO_REUSEPORT (``tcp:PORT:reuse_port=1``), and the
kernel spreads new connections over them; there is no shared state between them, so this is
for servers whose clients need no affinity to one process (docs/RUNNING.md).

The parent (:class:`Supervisor`) holds no reactor and serves nothing; it

* forks the workers (``run_worker(index, ready)`` runs in each and returns its exit code; the
  worker calls ``ready()`` once it listens);
* restarts a worker that died, after ``restart_delay`` seconds; one that keeps dying young
  (``max_quick_deaths`` in a row, each within ``quick_death`` seconds of its start) makes the
  supervisor give up, stop the others and exit 1, rather than fork in a loop;
* on SIGTERM or SIGINT sends SIGTERM to every worker, waits for them, exits 0 (each worker
  stops gracefully, as a single process does); on SIGHUP passes SIGHUP on (log reopening) and
  calls ``on_hup`` for its own log.

It waits in ``select`` on a self-pipe (``signal.set_wakeup_fd``) and the workers' readiness
pipes, so a signal or a worker's word wakes it at once; workers are reaped on SIGCHLD. No
threads: fork before any exists.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

__all__ = ["Supervisor", "WorkerExit"]

log = logging.getLogger(__name__)

#: The signals the supervisor handles; a worker gets the default dispositions back.
_HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD)


@dataclass
class WorkerExit:
    """How a worker ended: ``code`` (exit status) or ``signal`` (the signal that killed it)."""

    index: int
    pid: int
    code: int | None
    signal: int | None

    def __str__(self) -> str:
        if self.signal is not None:
            return f"worker {self.index} (pid {self.pid}) was killed by {signal.Signals(self.signal).name}"
        return f"worker {self.index} (pid {self.pid}) exited with status {self.code}"


@dataclass
class _Worker:
    index: int
    pid: int
    started: float
    ready_fd: int | None
    ready: bool = False


class Supervisor:
    """Run ``count`` workers until told to stop (module doc); :meth:`run` returns the exit code."""

    def __init__(self, count: int, run_worker: Callable[[int, Callable[[], None]], int], *,
                 restart_delay: float = 1.0, quick_death: float = 2.0, max_quick_deaths: int = 5,
                 on_all_ready: Callable[[], object] | None = None, on_stopping: Callable[[], object] | None = None,
                 on_hup: Callable[[], object] | None = None, in_child: Callable[[], object] | None = None) -> None:
        if count < 1:
            raise ValueError(f"the number of workers must be at least 1, got {count}")
        self.count = count
        self.run_worker = run_worker
        self.restart_delay = restart_delay
        self.quick_death = quick_death
        self.max_quick_deaths = max_quick_deaths
        self.on_all_ready = on_all_ready
        self.on_stopping = on_stopping
        self.on_hup = on_hup
        self.in_child = in_child
        self.workers: dict[int, _Worker] = {}  # by pid
        self._restarts: dict[int, float] = {}  # index -> time to restart it at
        self._quick_deaths: dict[int, int] = {}
        self._signals: list[int] = []
        self._stopping = False
        self._all_ready_said = False
        self._exit_code = 0
        self._wake_r = self._wake_w = -1

    # -- the parent's loop -----------------------------------------------------------------------

    def run(self) -> int:
        """Fork the workers and supervise them until stopped; the supervisor's exit code."""
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        saved = {sig: signal.signal(sig, self._on_signal) for sig in _HANDLED}
        saved_wakeup = signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        try:
            for index in range(self.count):
                self._spawn(index)
            while self.workers or (self._restarts and not self._stopping):
                self._wait()
                self._handle_signals()
                self._reap()
                self._restart_due()
            return self._exit_code
        finally:
            signal.set_wakeup_fd(saved_wakeup)
            for sig, handler in saved.items():
                signal.signal(sig, handler)
            for worker in self.workers.values():
                self._close_ready(worker)
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals.append(signum)  # handled in the loop, not in the middle of it

    def _wait(self) -> None:
        fds = [self._wake_r] + [w.ready_fd for w in self.workers.values() if w.ready_fd is not None]
        timeout = None
        if self._restarts and not self._stopping:
            timeout = max(0.0, min(self._restarts.values()) - time.monotonic())
        if self._signals:
            timeout = 0.0
        try:
            readable, _, _ = select.select(fds, [], [], timeout)
        except InterruptedError:  # pragma: no cover - PEP 475 retries select itself
            readable = []
        for fd in readable:
            if fd == self._wake_r:
                try:
                    while os.read(self._wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass
            else:
                self._read_ready(fd)

    def _read_ready(self, fd: int) -> None:
        worker = next(w for w in self.workers.values() if w.ready_fd == fd)
        try:
            data = os.read(fd, 64)
        except OSError:
            data = b""
        if data:
            worker.ready = True
            self._quick_deaths.pop(worker.index, None)
            log.info("worker %d (pid %d) is serving", worker.index, worker.pid)
        self._close_ready(worker)
        if not self._all_ready_said and len(self.workers) == self.count and all(w.ready for w in self.workers.values()):
            self._all_ready_said = True
            if self.on_all_ready is not None:
                self.on_all_ready()

    def _close_ready(self, worker: _Worker) -> None:
        fd, worker.ready_fd = worker.ready_fd, None
        if fd is not None:
            os.close(fd)

    def _handle_signals(self) -> None:
        signals, self._signals = self._signals, []
        for signum in signals:
            if signum in (signal.SIGTERM, signal.SIGINT):
                self.stop(f"received {signal.Signals(signum).name}")
            elif signum == signal.SIGHUP:
                if self.on_hup is not None:
                    self.on_hup()
                self._send_all(signal.SIGHUP)

    def stop(self, why: str) -> None:
        """Stop every worker (SIGTERM) and restart none; :meth:`run` returns once all are gone."""
        if self._stopping:
            return
        self._stopping = True
        self._restarts.clear()
        log.info("stopping %d worker(s): %s", len(self.workers), why)
        if self.on_stopping is not None:
            self.on_stopping()
        self._send_all(signal.SIGTERM)

    def _send_all(self, signum: int) -> None:
        for pid in list(self.workers):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:  # exited: reaped on its SIGCHLD
                pass

    def _reap(self) -> None:
        while self.workers:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            self._close_ready(worker)
            ended = WorkerExit(worker.index, pid, os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
                               os.WTERMSIG(status) if os.WIFSIGNALED(status) else None)
            if self._stopping:
                log.info("%s", ended)
                continue
            log.warning("%s; restarting it in %s s", ended, self.restart_delay)
            if time.monotonic() - worker.started < self.quick_death and not worker.ready:
                deaths = self._quick_deaths[worker.index] = self._quick_deaths.get(worker.index, 0) + 1
                if deaths >= self.max_quick_deaths:
                    log.error("worker %d died %d times in a row before it served: giving up", worker.index, deaths)
                    self._exit_code = 1
                    self.stop("a worker cannot start")
                    continue
            self._restarts[worker.index] = time.monotonic() + self.restart_delay

    def _restart_due(self) -> None:
        if self._stopping:
            return
        now = time.monotonic()
        for index, when in list(self._restarts.items()):
            if when <= now:
                del self._restarts[index]
                self._spawn(index)

    # -- a worker ----------------------------------------------------------------------------------

    def _spawn(self, index: int) -> None:
        ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            os.close(ready_r)
            code = 1
            try:
                self._become_worker()
                said: list[bool] = []

                def ready() -> None:
                    if not said:
                        said.append(True)
                        _say_ready(ready_w)

                code = self.run_worker(index, ready)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                log.exception("worker %d failed", index)
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    logging.shutdown()
                finally:
                    os._exit(code)
        os.close(ready_w)
        self.workers[pid] = _Worker(index, pid, time.monotonic(), ready_r)
        log.info("started worker %d (pid %d)", index, pid)

    def _become_worker(self) -> None:
        """In a fresh fork: none of the supervisor's signal handling, fds or hooks."""
        signal.set_wakeup_fd(-1)
        for sig in _HANDLED:
            signal.signal(sig, signal.SIG_DFL)
        os.close(self._wake_r)
        os.close(self._wake_w)
        for worker in self.workers.values():
            self._close_ready(worker)
        self.workers.clear()
        if self.in_child is not None:
            self.in_child()


def _say_ready(fd: int) -> None:
    try:
        os.write(fd, b"r")
    except OSError as exc:  # the supervisor is gone
        if exc.errno != errno.EPIPE:
            raise
    finally:
        try:
            os.close(fd)
        except OSError:
            pass
