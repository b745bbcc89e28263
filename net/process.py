"""Child processes as transports: :func:`spawn_process`, :class:`ProcessTransport`, and the
``get_process_*`` conveniences that return Deferreds.

How a child is started. The plan for its file descriptors (``child_fds``: child fd → ``"r"``,
``"w"`` or one of our fds) becomes a list of file actions: every source is first dup'ed to a
temporary number above every fd we have, then each temporary to its place, then the temporaries
are closed, so any mapping (a swap of 0 and 1, a source that is another entry's target) comes out
right; every other inheritable fd is closed, so the child holds exactly the fds it was given
(non-inheritable ones, which is almost all of ours, close at exec anyway). Without ``path``,
``uid`` or ``gid`` the actions go to :func:`os.posix_spawn` (glibc's is a ``vfork`` whose exec
errors come back to us: no Python runs in the child, safe with threads). ``os.posix_spawn`` cannot
change directory or user, so with ``path``, ``uid`` or ``gid`` we fork and the child runs the same
actions, then ``setgroups``/``setgid``/``setuid``, then ``chdir``, then ``execve`` (plain system
calls, with the garbage collector off); it reports a failure, and at which step, through a
close-on-exec pipe. Either way a child that cannot start is an ``OSError`` raised by
:func:`spawn_process` (``FileNotFoundError`` for a missing program, say), never a child that dies
silently with 127. ``SIGPIPE`` and ``SIGXFSZ``, which Python ignores, are set back to their
defaults in the child and its signal mask is emptied, as :mod:`subprocess` does.

How its exit is seen. Each child gets a small waiter thread that blocks in
``waitid(WEXITED | WNOWAIT)`` (the child becomes a zombie but is not reaped yet), then reaps it
with ``waitpid`` while holding the transport's lock, and hands the status to the reactor with
``call_from_thread``. :meth:`ProcessTransport.signal_process` takes the same lock and refuses
(:class:`ProcessExitedAlready`) once the child is reaped, so a signal never reaches a recycled
pid. No signal handler is installed (SIGCHLD is left alone, whoever owns it), it works the same
on every backend, and reaping does not depend on the reactor: a child that outlives its reactor
(stopped or closed) is still reaped the moment it exits, so it never lingers as a zombie.
(A pidfd watched by the reactor would save the thread, but a reactor that is closed while
children live would then leave them unreaped, and the reactor has no close hook to hand them on.)

Callbacks (see :class:`net.protocol.ProcessProtocol`) run in the reactor thread. Per pipe: data,
then that pipe's ``child_connection_lost`` once. ``process_exited`` once, when the exit is known;
at that moment our write pipes (stdin, say) are closed, since no one is left to read them;
``process_ended`` once, after the exit and the end of every pipe, so every byte the child wrote
is delivered before it. A callback that raises is logged and nothing else changes.
"""

from __future__ import annotations

import errno
import fcntl
import gc
import logging
import os
import pwd
import shutil
import signal
import stat
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, Union

from zope.interface import implementer

from ._producing import ProducesWhatItReads
from ._writebuffer import WriteBuffer, as_bytes_like
from .defer import Deferred, Failure, fail
from .error import ConnectionDone, ConnectionLost, NetError, ProcessDone, ProcessTerminated
from .interfaces import IProcessTransport
from .protocol import ProcessProtocol

if TYPE_CHECKING:
    from . import contracts

__all__ = [
    "spawn_process",
    "ProcessTransport",
    "ProcessAddress",
    "ProcessExitedAlready",
    "ProcessOutputError",
    "ProcessOutputTooLarge",
    "ProcessStderrError",
    "get_process_output",
    "get_process_value",
    "get_process_output_and_value",
    "DEFAULT_MAX_OUTPUT",
    "PipeReader",
    "PipeWriter",
    "exit_reason",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_OUTPUT = 64 * 1024 * 1024
"""What ``get_process_output`` and friends keep of a child's output at most (bytes)."""

try:
    _IOV_MAX = min(os.sysconf("SC_IOV_MAX"), 1024)
except (AttributeError, ValueError, OSError):
    _IOV_MAX = 16

#: Signals Python ignores that a child should get with their default action.
_DEFAULT_SIGNALS = tuple(getattr(signal, name) for name in ("SIGPIPE", "SIGXFSZ") if hasattr(signal, name))

ChildFD = Union[str, int]
"""What ``child_fds`` maps a child fd to: ``"r"`` (the child writes, we read), ``"w"`` (we write,
the child reads) or an int, one of our fds to give the child under that number."""


class ProcessExitedAlready(NetError, ProcessLookupError):
    """:meth:`ProcessTransport.signal_process` on a child that has exited and been reaped.

    Its pid may already belong to another process, so nothing was sent. Also a
    ``ProcessLookupError``, what ``os.kill`` raises for a pid that is gone.
    """


class ProcessOutputError(NetError):
    """The ``get_process_*`` helpers could not return the output as asked.

    ``output`` and ``errors`` hold what the child wrote to stdout and stderr (as much as was
    kept), ``exit_code`` its exit code (negative: killed by that signal; None: unknown).
    """

    def __init__(self, message: str, output: bytes = b"", errors: bytes = b"",
                 exit_code: int | None = None) -> None:
        super().__init__(message)
        self.output = output
        self.errors = errors
        self.exit_code = exit_code


class ProcessOutputTooLarge(ProcessOutputError):
    """The child wrote more than ``max_output`` bytes; it was killed (SIGKILL)."""


class ProcessStderrError(ProcessOutputError):
    """``error_on_stderr=True`` and the child wrote to its stderr (in ``errors``)."""


@dataclass(frozen=True, slots=True)
class ProcessAddress:
    """What ``get_host()``/``get_peer()`` of a process transport return: the child's pid."""

    pid: int


# -- the pipes ---------------------------------------------------------------------------------


def _call_soon(reactor: contracts.ReactorTime, f: Callable[..., object], *args: Any) -> None:
    """``reactor.call_soon``, except on a closed reactor (nothing will run there any more)."""
    try:
        reactor.call_soon(f, *args)
    except RuntimeError:  # asyncio: "Event loop is closed"
        log.debug("reactor %r is closed: dropped %r", reactor, f)


def _lost_from(exc: OSError, what: str) -> ConnectionLost:
    lost = ConnectionLost(f"{what}: {exc.strerror or exc}.")
    lost.errno = exc.errno
    lost.__cause__ = exc
    return lost


def _is_pollable(fd: int) -> bool:
    """False for regular files and directories: always "ready", and epoll refuses them."""
    mode = os.fstat(fd).st_mode
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


class PipeReader:
    """The reading end of a pipe, a pty master or a file, delivering what it reads.

    ``on_data(bytes)`` gets each read (at most :attr:`read_size` bytes); ``on_lost(reason)`` is
    called once, from the loop, when the reader is done: :class:`ConnectionDone` with
    ``by_peer=True`` at end of file, ``ConnectionDone()`` when we closed it, ``ConnectionLost``
    on a read error. An fd the reactor cannot watch (a regular file; ``/dev/null`` on epoll) is
    read one chunk per loop iteration instead, until its end. ``close_fd=False`` leaves the fd
    open at the end (our own stdin, say). ``eof_errnos``: read errors that mean the end (EIO on a
    pty master once the child side is gone).
    """

    read_size: int = 64 * 1024

    def __init__(
        self,
        reactor: contracts.ReactorIO,
        fd: int,
        on_data: Callable[[bytes], object],
        on_lost: Callable[[BaseException], object],
        *,
        close_fd: bool = True,
        eof_errnos: frozenset[int] = frozenset(),
    ) -> None:
        self.reactor = reactor
        self.fd = fd
        self._on_data = on_data
        self._on_lost = on_lost
        self._close_fd = close_fd
        self._eof_errnos = eof_errnos
        self.pollable = _is_pollable(fd)
        self.closed = False
        self.paused = False
        self._started = False
        self._watching = False
        self._stepping = False  # a file-mode read is scheduled

    def __repr__(self) -> str:
        return f"<PipeReader fd={self.fd}{' closed' if self.closed else ' paused' if self.paused else ''}>"

    def start(self) -> None:
        """Begin reading (unless paused)."""
        self._started = True
        self._watch()

    def pause(self) -> None:
        """Read nothing until :meth:`resume`: the other side blocks once the pipe is full."""
        self.paused = True
        self._unwatch()

    def resume(self) -> None:
        self.paused = False
        self._watch()

    def close(self) -> None:
        """Stop reading and release the fd now; ``on_lost(ConnectionDone())`` follows."""
        self._close(ConnectionDone())

    def _watch(self) -> None:
        if self.closed or self.paused or not self._started:
            return
        if self.pollable:
            if not self._watching:
                try:
                    self.reactor.add_reader(self.fd, self._on_readable)
                except PermissionError:  # epoll: this kind of fd cannot be polled
                    self.pollable = False
                else:
                    self._watching = True
                    return
            else:
                return
        if not self._stepping:
            self._stepping = True
            _call_soon(self.reactor, self._file_step)

    def _unwatch(self) -> None:
        if self._watching:
            self._watching = False
            self.reactor.remove_reader(self.fd)

    def _file_step(self) -> None:
        self._stepping = False
        if self.closed or self.paused:
            return
        self._on_readable()
        self._watch()

    def _on_readable(self) -> None:
        if self.closed:
            return
        try:
            data = os.read(self.fd, self.read_size)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno in self._eof_errnos:
                data = b""
            else:
                self._close(_lost_from(exc, f"reading fd {self.fd} failed"))
                return
        if not data:
            self._close(ConnectionDone("End of file.", by_peer=True))
            return
        self._on_data(data)

    def _close(self, reason: BaseException) -> None:
        if self.closed:
            return
        self.closed = True
        self._unwatch()
        if self._close_fd:
            try:
                os.close(self.fd)
            except OSError:
                pass
        _call_soon(self.reactor, self._on_lost, reason)


class PipeWriter:
    """The writing end of a pipe, a pty master or a file, with a buffer and flow control.

    ``write`` hands data straight to ``os.write`` when nothing is queued and queues the rest in a
    :class:`~net._writebuffer.WriteBuffer` (the one every stream transport uses: no copies of
    immutable bytes, small writes coalesced), which leaves in ``os.writev`` calls as the fd
    becomes writable. A streaming producer (``register_producer(p, True)``) is paused above the
    high-water mark and resumed at the low-water mark, a pull producer asked for more each time
    the buffer drains: ``net.tcp``'s conventions. A write-only pipe is also watched for *reading*,
    which happens only when its reader has gone (the kernel reports an error), so a child that
    closes its stdin is noticed at once, not at our next write. ``on_lost(reason)`` is called
    once, from the loop, when the writer is done. An fd the reactor cannot watch (a regular file)
    is written synchronously.
    """

    def __init__(
        self,
        reactor: contracts.ReactorIO,
        fd: int,
        on_lost: Callable[[BaseException], object],
        *,
        close_fd: bool = True,
    ) -> None:
        self.reactor = reactor
        self.fd = fd
        self._on_lost = on_lost
        self._close_fd = close_fd
        self.pollable = _is_pollable(fd)
        self.closed = False
        self.closing = False  # lose_connection(): flushing, then close
        self._buffer = WriteBuffer()
        self._writing = False
        self._watching_peer = False
        self._pull_scheduled = False
        mode = os.fstat(fd).st_mode
        if stat.S_ISFIFO(mode) and fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_WRONLY:
            try:
                reactor.add_reader(fd, self._on_peer_gone)
            except PermissionError:
                pass
            else:
                self._watching_peer = True

    def __repr__(self) -> str:
        state = "closed" if self.closed else "closing" if self.closing else "open"
        return f"<PipeWriter fd={self.fd} {state} queued={self._buffer.size}>"

    # -- writing -------------------------------------------------------------------------------

    def write(self, data: Any) -> None:
        """Queue ``data`` (bytes-like); ignored once closing or closed."""
        if self.closing or self.closed or not data:
            return
        data = as_bytes_like(data)
        if not self.pollable:
            self._write_through(data)
            return
        buffer = self._buffer
        if buffer.size:
            buffer.append(data)
        else:
            try:
                sent = os.write(self.fd, data)
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                self._close(_lost_from(exc, f"writing fd {self.fd} failed"))
                return
            if sent == len(data):
                return
            buffer.append(data, sent)
            self._start_writing()
        buffer.pause_producer_if_full()

    def writelines(self, seq: Iterable[Any]) -> None:
        if self.closing or self.closed:
            return
        self.write(b"".join(seq))

    def _write_through(self, data: Any) -> None:
        """Non-pollable fds (regular files): write it all now, they do not block."""
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view):]
        except OSError as exc:
            self._close(_lost_from(exc, f"writing fd {self.fd} failed"))
            return
        self._kick_pull_producer()

    def get_write_buffer_size(self) -> int:
        return self._buffer.size

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Set the marks (asyncio's defaults rule: one given, the other is 4x / 1/4 of it)."""
        self._buffer.set_limits(high, low)

    # -- producers -----------------------------------------------------------------------------

    def register_producer(self, producer: contracts.PushProducer | contracts.PullProducer, streaming: bool) -> None:
        """Attach ``producer`` (RuntimeError if one is); stopped at once if we are closing."""
        if self._buffer.producer is None and (self.closed or self.closing):
            producer.stop_producing()
            return
        if not streaming and self.pollable:
            self._start_writing()  # writability is our cue to ask for the next chunk
        self._buffer.register_producer(producer, streaming)

    def unregister_producer(self) -> None:
        self._buffer.unregister_producer()
        if not self._buffer.size and not self.closed and not self.closing:
            self._stop_writing()

    def _kick_pull_producer(self) -> None:
        buffer = self._buffer
        if buffer.producer is not None and not buffer.streaming and not self._pull_scheduled:
            self._pull_scheduled = True
            _call_soon(self.reactor, self._pull)

    def _pull(self) -> None:
        self._pull_scheduled = False
        buffer = self._buffer
        if buffer.producer is not None and not buffer.streaming and not (self.closed or self.closing):
            buffer.producer.resume_producing()

    # -- closing -------------------------------------------------------------------------------

    def lose_connection(self) -> None:
        """Close once everything queued is written. Idempotent."""
        if self.closing or self.closed:
            return
        if not self._buffer.size:
            self._close(ConnectionDone())
            return
        self.closing = True
        self._start_writing()

    def abort(self) -> None:
        """Close now, dropping what is queued."""
        self._close(ConnectionLost("The pipe was closed with data still queued."
                                   if self._buffer.size else "The pipe was closed."))

    # -- reactor callbacks ---------------------------------------------------------------------

    def _on_peer_gone(self) -> None:
        if not self.closed:
            self._close(ConnectionLost("The reader of the pipe closed it.", by_peer=True))

    def _on_writable(self) -> None:
        if self.closed:
            return
        buffer = self._buffer
        if buffer.size:
            try:
                if buffer.segment_count == 1:
                    sent = os.write(self.fd, buffer.first())
                else:
                    sent = os.writev(self.fd, buffer.gather(_IOV_MAX))
            except BlockingIOError:
                return
            except OSError as exc:
                self._close(_lost_from(exc, f"writing fd {self.fd} failed"))
                return
            buffer.consume(sent)
        if buffer.producer is not None and not self.closing:
            try:
                buffer.resume_producer_if_drained()
            except Exception:
                log.exception("%r: producer %r failed", self, buffer.producer)
        if buffer.size or self.closed:
            return
        if self.closing:
            self._close(ConnectionDone())
        elif buffer.producer is None or buffer.streaming:
            self._stop_writing()

    def _start_writing(self) -> None:
        if not self._writing and not self.closed:
            self._writing = True
            self.reactor.add_writer(self.fd, self._on_writable)

    def _stop_writing(self) -> None:
        if self._writing:
            self._writing = False
            self.reactor.remove_writer(self.fd)

    def _close(self, reason: BaseException) -> None:
        if self.closed:
            return
        self.closed = True
        self.closing = False
        self._stop_writing()
        if self._watching_peer:
            self._watching_peer = False
            self.reactor.remove_reader(self.fd)
        self._buffer.clear()
        if self._close_fd:
            try:
                os.close(self.fd)
            except OSError:
                pass
        _call_soon(self.reactor, self._lost, reason)

    def _lost(self, reason: BaseException) -> None:
        producer = self._buffer.detach_producer()
        if producer is not None:
            try:
                producer.stop_producing()
            except Exception:
                log.exception("%r: stop_producing of %r failed", self, producer)
        self._on_lost(reason)


# -- the transport -----------------------------------------------------------------------------


def exit_reason(status: int | None) -> ProcessDone | ProcessTerminated:
    """The exception ``process_exited``/``process_ended`` carry for a wait status.

    ``ProcessDone`` for exit code 0; ``ProcessTerminated`` with ``exit_code`` or ``signal`` set
    otherwise; for None (someone else reaped the child) a ProcessTerminated with neither.
    """
    if status is None:
        unknown = ProcessTerminated()
        unknown.args = ("The process's exit status is unknown: something else in this program "
                        "reaped it (SIGCHLD set to SIG_IGN, or a waitpid(-1) elsewhere).",)
        return unknown
    if os.WIFSIGNALED(status):
        return ProcessTerminated(signal=os.WTERMSIG(status), status=status)
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else status
    if code == 0:
        return ProcessDone(status)
    return ProcessTerminated(exit_code=code, status=status)


def _signal_number(sig: str | int) -> int:
    if isinstance(sig, bool) or not isinstance(sig, (str, int)):
        raise TypeError(f"signal_process takes a signal name ('TERM') or number, not {sig!r}")
    if isinstance(sig, int):
        return int(sig)
    name = sig.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise ValueError(f"unknown signal {sig!r}: use a name like 'TERM', 'KILL', 'INT', 'HUP' "
                         "or a number") from None


@implementer(IProcessTransport)
class ProcessTransport(ProducesWhatItReads):
    """A running child: its pid, its pipes, and a way to signal it.

    Built by :func:`spawn_process`. Writing goes to the child's stdin (fd 0); other ``"w"`` fds
    take :meth:`write_to_child`. Flow control on stdin follows ``net.tcp``'s water marks
    (:meth:`set_write_buffer_limits`, :meth:`register_producer`), and reading every pipe can be
    paused (:meth:`pause_reading`), so neither a slow child nor a slow protocol makes us buffer
    without bound. The transport stays usable between runs of a stopped reactor.
    """

    def __init__(self, reactor: contracts.Reactor, protocol: contracts.ProcessHandler, pid: int, executable: str,
                 use_pty: bool) -> None:
        self.reactor = reactor
        self.protocol = protocol
        self.pid = pid
        self.executable = executable
        self.use_pty = use_pty
        #: The wait status once the child is reaped (``os.waitstatus_to_exitcode`` reads it), or None.
        self.status: int | None = None
        self._readers: dict[int, PipeReader] = {}
        self._writers: dict[int, PipeWriter] = {}
        self._write_fds: set[int] = set()  # every child fd we could ever write to
        self._open: set[int] = set()  # child fds whose child_connection_lost has not run
        self._stdin_closed = False  # close_stdin() on a pty: EOF sent, the fd stays
        self._eof_written = False
        self._losing = False
        self._reason: ProcessDone | ProcessTerminated | None = None
        self._ended = False
        self._reap_lock = threading.Lock()
        self._reaped = False
        self._waiter: threading.Thread | None = None

    def __repr__(self) -> str:
        if self._reason is None:
            state = "exited" if self._reaped else "running"
        else:
            state = str(self._reason)
        return f"<ProcessTransport pid={self.pid} {self.executable!r}: {state}>"

    # -- wiring (spawn_process) ----------------------------------------------------------------

    def _add_reader(self, child_fd: int, fd: int, *, eof_errnos: frozenset[int] = frozenset(),
                    also_lost: tuple[int, ...] = ()) -> None:
        reader = PipeReader(
            self.reactor, fd,
            lambda data: self._guarded("child_data_received", self.protocol.child_data_received,
                                       child_fd, data),
            lambda reason: self._pipe_lost(child_fd, also_lost),
            eof_errnos=eof_errnos,
        )
        self._readers[child_fd] = reader
        self._open.update((child_fd, *also_lost))

    def _add_writer(self, child_fd: int, fd: int) -> None:
        self._writers[child_fd] = PipeWriter(self.reactor, fd, lambda reason: self._pipe_lost(child_fd, ()))
        self._write_fds.add(child_fd)
        self._open.add(child_fd)

    def _start(self) -> None:
        self._waiter = threading.Thread(target=self._wait_for_exit, name=f"net-process-{self.pid}",
                                        daemon=True)
        try:
            self._waiter.start()
        except BaseException:  # no thread to reap it: do not leave it behind
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            self._reaped = True
            for fd in [r.fd for r in self._readers.values()] + [w.fd for w in self._writers.values()]:
                os.close(fd)
            raise
        self._guarded("connection_made", self.protocol.make_connection, self)
        for reader in list(self._readers.values()):
            reader.start()

    # -- exit ----------------------------------------------------------------------------------

    def _wait_for_exit(self) -> None:
        """The waiter thread: wait without reaping, reap under the lock, tell the reactor."""
        pid = self.pid
        status: int | None
        if hasattr(os, "waitid"):
            try:
                os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # a zombie now, not reaped
            except ChildProcessError:
                pass
            with self._reap_lock:  # a zombie's pid cannot be reused: signal_process is safe
                try:
                    _, status = os.waitpid(pid, 0)
                except ChildProcessError:
                    status = None
                self._reaped = True
        else:  # no waitid (not Linux or the BSDs): a signal racing the reap is not excluded
            try:
                _, status = os.waitpid(pid, 0)
            except ChildProcessError:
                status = None
            with self._reap_lock:
                self._reaped = True
        try:
            self.reactor.call_from_thread(self._exited, status)
        except RuntimeError:  # asyncio: the loop is closed; the child is reaped all the same
            log.debug("process %d exited after its reactor was closed", pid)

    def _exited(self, status: int | None) -> None:
        self.status = status
        self._reason = exit_reason(status)
        if status is None:
            log.warning("process %d: %s", self.pid, self._reason)
        for writer in list(self._writers.values()):
            writer.abort()  # nobody is left to read them
        self._guarded("process_exited", self.protocol.process_exited, Failure(self._reason))
        self._maybe_ended()

    def _pipe_lost(self, child_fd: int, also: tuple[int, ...]) -> None:
        self._readers.pop(child_fd, None)
        self._writers.pop(child_fd, None)
        for fd in (child_fd, *also):
            if fd in self._open:
                self._open.discard(fd)
                self._guarded("child_connection_lost", self.protocol.child_connection_lost, fd)
        self._maybe_ended()

    def _maybe_ended(self) -> None:
        if self._ended or self._reason is None or self._open:
            return
        self._ended = True
        self._guarded("process_ended", self.protocol.process_ended, Failure(self._reason))

    def _guarded(self, what: str, f: Callable[..., object], *args: Any) -> None:
        try:
            f(*args)
        except Exception:
            log.exception("%r: %s failed", self.protocol, what)

    # -- signals -------------------------------------------------------------------------------

    def signal_process(self, sig: str | int) -> None:
        """Send ``sig`` ("TERM", "KILL", "INT", "HUP", any name, or a number) to the child.

        Raises :class:`ProcessExitedAlready` once the child has exited and been reaped (even
        before ``process_exited`` has run): its pid may be someone else's by then.
        """
        signum = _signal_number(sig)
        with self._reap_lock:
            if self._reaped:
                raise ProcessExitedAlready(
                    f"process {self.pid} ({self.executable!r}) has exited already: nothing was sent; "
                    "wait for process_ended instead of signalling"
                )
            os.kill(self.pid, signum)

    # -- writing -------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Queue ``data`` for the child's stdin; ignored once stdin is closed or closing.

        ValueError if the child has no stdin pipe (``child_fds`` without ``0: "w"``).
        """
        if self._eof_written and data:
            raise RuntimeError("write() after write_eof(): the child's stdin is closed")
        self.write_to_child(0, data)

    def writelines(self, seq: Iterable[bytes]) -> None:
        self.write(b"".join(seq))

    def can_write_eof(self) -> bool:
        """True, except on a pty (no half-close there: :meth:`close_stdin` sends ^D)."""
        return not self.use_pty and 0 in self._write_fds

    def write_eof(self) -> None:
        """Half-close: the child's stdin ends once flushed (:meth:`close_stdin`); its output is
        still read. Writing afterwards raises RuntimeError."""
        if not self.can_write_eof():
            raise NotImplementedError(
                "this child's stdin cannot be half-closed (a pty, or no 'w' pipe on fd 0); "
                "on a pty close_stdin() sends the terminal's EOF character instead")
        self._eof_written = True
        self.close_stdin()

    def write_to_child(self, child_fd: int, data: bytes) -> None:
        """Queue ``data`` for child fd ``child_fd`` (a ``"w"`` entry of ``child_fds``)."""
        if child_fd not in self._write_fds:
            raise ValueError(f"child fd {child_fd} is not one we write to (child_fds must map it to 'w')")
        if child_fd == 0 and self._stdin_closed:
            return
        writer = self._writers.get(child_fd)
        if writer is not None:
            writer.write(data)

    def close_stdin(self) -> None:
        """Close the child's stdin once what was written is sent: the child reads end of file.

        On a pty, which cannot be half-closed, this writes the terminal's EOF character (^D)
        instead, which a child reading the tty in canonical mode sees as end of file at the
        start of a line; the pty itself stays open.
        """
        self.close_child_fd(0)

    def close_child_fd(self, child_fd: int) -> None:
        """Close our end of child fd ``child_fd``: a write pipe once flushed, a read pipe now."""
        if self.use_pty and child_fd == 0:
            if not self._stdin_closed and 0 in self._writers:
                self._writers[0].write(b"\x04")
            self._stdin_closed = True
            return
        writer = self._writers.get(child_fd)
        if writer is not None:
            writer.lose_connection()
            return
        reader = self._readers.get(child_fd)
        if reader is not None:
            reader.close()

    def lose_connection(self, reason: BaseException | None = None) -> None:
        """Close stdin once flushed; keep reading the child's output; leave the child running."""
        self._losing = True
        self.close_stdin()

    def abort_connection(self, reason: BaseException | None = None) -> None:
        """Close every pipe now, dropping what is queued; the child is left running (signal it
        with :meth:`signal_process` if it should stop)."""
        self._losing = True
        for writer in list(self._writers.values()):
            writer.abort()
        for reader in list(self._readers.values()):
            reader.close()

    def is_closing(self) -> bool:
        """True from :meth:`lose_connection`/:meth:`abort_connection`, or once the process ended."""
        return self._losing or self._ended

    # -- flow control --------------------------------------------------------------------------

    def get_write_buffer_size(self) -> int:
        writer = self._writers.get(0)
        return writer.get_write_buffer_size() if writer is not None else 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """The water marks of stdin's buffer (defaults 64 KiB / 16 KiB)."""
        writer = self._writers.get(0)
        if writer is not None:
            writer.set_write_buffer_limits(high, low)

    def register_producer(self, producer: contracts.PushProducer | contracts.PullProducer, streaming: bool) -> None:
        """Attach a producer feeding stdin; see :meth:`net.contracts.Consumer.register_producer`.

        A producer registered once stdin is closed is stopped at once.
        """
        writer = self._writers.get(0)
        if writer is None or self._stdin_closed:
            producer.stop_producing()
            return
        writer.register_producer(producer, streaming)

    def unregister_producer(self) -> None:
        writer = self._writers.get(0)
        if writer is not None:
            writer.unregister_producer()

    def pause_reading(self) -> None:
        """Stop reading every pipe of the child until :meth:`resume_reading`."""
        for reader in self._readers.values():
            reader.pause()

    def resume_reading(self) -> None:
        for reader in list(self._readers.values()):
            reader.resume()

    def get_host(self) -> ProcessAddress:
        return ProcessAddress(self.pid)

    def get_peer(self) -> ProcessAddress:
        return ProcessAddress(self.pid)


# -- spawning ----------------------------------------------------------------------------------


_OPEN = getattr(os, "POSIX_SPAWN_OPEN", 0)
_DUP2 = getattr(os, "POSIX_SPAWN_DUP2", 2)
_CLOSE = getattr(os, "POSIX_SPAWN_CLOSE", 1)
FileAction = tuple[Any, ...]


def _argv(executable: Any, args: Any) -> list[Any]:
    if isinstance(args, (str, bytes)):
        raise TypeError(f"args must be a sequence of arguments (argv[0] first), not the string {args!r}; "
                        f"for example [{executable!r}, '-c', 'print(1)']")
    argv = [os.fspath(a) for a in args]
    return argv or [os.fspath(executable)]


def _environment(env: Mapping[Any, Any] | None) -> dict[Any, Any]:
    return dict(os.environ if env is None else env)


def _resolve(executable: Any, environment: Mapping[Any, Any]) -> str:
    """The program to exec: a path as given, or a bare name looked up in the child's PATH."""
    name = os.fsdecode(os.fspath(executable))
    if not name:
        raise ValueError("executable is empty: give the program to run, e.g. sys.executable")
    if os.sep in name:
        return name
    search = environment.get("PATH", environment.get(b"PATH", os.defpath))
    search = os.fsdecode(search)
    found = shutil.which(name, path=search)
    if found is None:
        raise FileNotFoundError(
            errno.ENOENT,
            f"Cannot run {name!r}: not found on the child's PATH ({search!r}); "
            "give the program's full path or set PATH in env",
        )
    return found


def _child_fd_plan(child_fds: Mapping[int, ChildFD] | None, use_pty: bool) -> dict[int, ChildFD]:
    if child_fds is None:
        return {} if use_pty else {0: "w", 1: "r", 2: "r"}
    plan: dict[int, ChildFD] = {}
    for child_fd, spec in child_fds.items():
        if isinstance(child_fd, bool) or not isinstance(child_fd, int) or child_fd < 0:
            raise ValueError(f"child_fds keys are the child's fd numbers (ints >= 0), not {child_fd!r}")
        if use_pty and child_fd in (0, 1, 2):
            raise ValueError(f"use_pty=True puts the child's fds 0, 1 and 2 on the pty; child_fds may only "
                             f"add fds from 3 on, not {child_fd}")
        if spec in ("r", "w"):
            plan[child_fd] = spec
        elif isinstance(spec, int) and not isinstance(spec, bool):
            try:
                os.fstat(spec)
            except OSError:
                raise ValueError(f"child_fds[{child_fd}] = {spec}: fd {spec} is not open in this process")
            plan[child_fd] = spec
        else:
            raise ValueError(f"child_fds[{child_fd}] must be 'r' (the child writes), 'w' (the child reads) "
                             f"or one of our fds (an int), not {spec!r}")
    return plan


def _inheritable_fds() -> list[int]:
    """Our fds that would survive an exec (almost none: Python opens fds non-inheritable)."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        try:
            names = os.listdir("/dev/fd")
        except OSError:
            names = [str(fd) for fd in range(256)]
    fds = []
    for name in names:
        fd = int(name)
        try:
            if os.get_inheritable(fd):
                fds.append(fd)
        except OSError:  # the listing's own fd, closed by now
            continue
    return fds


def _file_actions(mapping: dict[int, int], pty_name: str | None) -> tuple[list[FileAction], int]:
    """The file actions placing ``mapping`` (child fd → our fd), and the first fd above them."""
    inheritable = _inheritable_fds()
    base = max([2, *inheritable, *mapping, *mapping.values()]) + 1
    placed = sorted(mapping.items())
    actions: list[FileAction] = [(_DUP2, source, base + i) for i, (_, source) in enumerate(placed)]
    targets = set(mapping) | ({0, 1, 2} if pty_name is not None else set())
    actions += [(_CLOSE, fd) for fd in inheritable if fd not in targets]
    if pty_name is not None:
        # After setsid: opening the tty makes it the child's controlling terminal.
        actions += [(_OPEN, 0, pty_name, os.O_RDWR, 0), (_DUP2, 0, 1), (_DUP2, 0, 2)]
    actions += [(_DUP2, base + i, child_fd) for i, (child_fd, _) in enumerate(placed)]
    actions += [(_CLOSE, base + i) for i in range(len(placed))]
    return actions, base + len(placed)


def _spawn_error(exc: OSError, program: str, where: str = "") -> OSError:
    err = exc.errno or errno.EINVAL
    error = OSError(err, f"Cannot run {program!r}{where}: {os.strerror(err)}")
    error.__cause__ = exc
    return error


def _posix_spawn(program: str, argv: list[Any], environment: dict[Any, Any],
                 actions: list[FileAction], setsid: bool) -> int:
    try:
        return os.posix_spawn(program, argv, environment, file_actions=actions, setsid=setsid,
                              setsigmask=(), setsigdef=_DEFAULT_SIGNALS)
    except OSError as exc:
        raise _spawn_error(exc, program) from exc


def _fork_exec(program: str, argv: list[Any], environment: dict[Any, Any], actions: list[FileAction],
               above: int, *, setsid: bool, cwd: str | None, uid: int | None, gid: int | None) -> int:
    """fork + exec for what posix_spawn cannot do (cwd, uid, gid); errors come back on a pipe."""
    groups: list[int] | None = None
    if uid is not None:
        try:
            entry: pwd.struct_passwd | None = pwd.getpwuid(uid)
        except KeyError:
            entry = None
        if gid is None:
            if entry is None:
                raise ValueError(f"uid {uid} has no passwd entry, so its group is unknown: give gid too")
            gid = entry.pw_gid
        if os.geteuid() == 0:  # drop our supplementary groups; take the user's
            groups = os.getgrouplist(entry.pw_name, gid) if entry is not None else [gid]
    read_end, write_end = os.pipe()
    try:
        # Above the file actions' temporaries and targets, so no action clobbers it.
        report = fcntl.fcntl(write_end, fcntl.F_DUPFD_CLOEXEC, above)
    except BaseException:
        os.close(read_end)
        os.close(write_end)
        raise
    os.close(write_end)
    gc_was_enabled = gc.isenabled()
    gc.disable()  # no __del__ may run in the child between fork and exec
    try:
        pid = os.fork()
        if pid == 0:
            _exec_child(program, argv, environment, actions, report, setsid, cwd, uid, gid, groups)
    except BaseException:
        os.close(read_end)
        os.close(report)
        raise
    finally:
        if gc_was_enabled:
            gc.enable()
    os.close(report)
    try:
        message = b""
        while chunk := os.read(read_end, 4096):
            message += chunk
    finally:
        os.close(read_end)
    if not message:
        return pid  # exec succeeded: the pipe closed with it
    os.waitpid(pid, 0)
    step, _, number = message.decode(errors="replace").partition(":")
    err = int(number) if number.isdigit() and int(number) else errno.EINVAL
    where = {
        "chdir": f" in directory {cwd!r}",
        "setuid": f" as uid {uid} (only root may switch users)",
        "setgid": f" as gid {gid} (only root may switch groups)",
        "setgroups": f" with the groups of uid {uid}",
        "exec": f" (in directory {cwd!r})" if cwd is not None else "",
    }.get(step, "")
    if step == "chdir" and uid is not None:
        where += f" as uid {uid}"
    raise _spawn_error(OSError(err, os.strerror(err)), program, where)


def _exec_child(program: str, argv: list[Any], environment: dict[Any, Any], actions: list[FileAction],
                report: int, setsid: bool, cwd: str | None, uid: int | None, gid: int | None,
                groups: list[int] | None) -> NoReturn:
    """In the forked child: system calls only, then exec; any failure goes to ``report``."""
    step = "setsid"
    try:
        if setsid:
            os.setsid()
        step = "fds"
        for action in actions:
            if action[0] == _DUP2:
                os.dup2(action[1], action[2])
            elif action[0] == _CLOSE:
                try:
                    os.close(action[1])
                except OSError:
                    pass
            else:
                _, fd, name, flags, mode = action
                opened = os.open(name, flags, mode)
                if opened != fd:
                    os.dup2(opened, fd)
                    os.close(opened)
                else:
                    os.set_inheritable(fd, True)
        if groups is not None:
            step = "setgroups"
            os.setgroups(groups)
        if gid is not None:
            step = "setgid"
            os.setgid(gid)
        if uid is not None:
            step = "setuid"
            os.setuid(uid)
        if cwd is not None:
            step = "chdir"
            os.chdir(cwd)
        step = "signals"
        for signum in _DEFAULT_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, ())
        step = "exec"
        os.execve(program, argv, environment)
    except BaseException as exc:
        try:
            os.write(report, f"{step}:{getattr(exc, 'errno', 0) or 0}".encode())
        except BaseException:
            pass
    finally:
        os._exit(127)


def spawn_process(
    reactor: contracts.Reactor,
    process_protocol: contracts.ProcessHandler,
    executable: str | bytes | os.PathLike[str],
    args: Sequence[Any] = (),
    env: Mapping[Any, Any] | None = None,
    path: str | None = None,
    uid: int | None = None,
    gid: int | None = None,
    use_pty: bool = False,
    child_fds: Mapping[int, ChildFD] | None = None,
) -> ProcessTransport:
    """Start ``executable`` with ``args`` (argv, ``argv[0]`` first) wired to ``process_protocol``.

    - ``env``: the child's environment; None (the default) passes ours (``os.environ``), ``{}``
      an empty one. A bare ``executable`` name is looked up in the child's ``PATH``.
    - ``path``: the child's working directory (default ours).
    - ``uid``/``gid``: switch to them in the child (root only); with ``uid`` alone, ``gid`` is
      that user's primary group and the supplementary groups become the user's.
    - ``use_pty``: the child's fds 0, 1 and 2 on a new pty, which is its controlling terminal in
      a new session; what it writes to either arrives as ``out_received``.
    - ``child_fds``: child fd → ``"r"`` (the child writes, we read), ``"w"`` (we write) or one of
      our fds (an int) to give it; default ``{0: "w", 1: "r", 2: "r"}``. The child gets exactly
      these fds: every other is closed.

    Returns the :class:`ProcessTransport` (``connection_made`` has run). Raises ``OSError``
    (``FileNotFoundError``, ``PermissionError``, ...) if the child cannot start, ``ValueError``
    or ``TypeError`` for bad arguments. Call it from the reactor thread.
    """
    argv = _argv(executable, args)
    environment = _environment(env)
    program = _resolve(executable, environment)
    plan = _child_fd_plan(child_fds, use_pty)
    ours: list[int] = []  # our ends, kept
    theirs: list[int] = []  # the child's ends, closed here once it has them
    mapping: dict[int, int] = {}
    reads: dict[int, int] = {}
    writes: dict[int, int] = {}
    master: int | None = None
    try:
        for child_fd, spec in plan.items():
            if spec == "r" or spec == "w":
                read_end, write_end = os.pipe()
                mine, child_end = (read_end, write_end) if spec == "r" else (write_end, read_end)
                ours.append(mine)
                theirs.append(child_end)
                mapping[child_fd] = child_end
                (reads if spec == "r" else writes)[child_fd] = mine
            else:
                assert isinstance(spec, int)
                mapping[child_fd] = spec
        pty_name = None
        if use_pty:
            master, slave = os.openpty()
            ours.append(master)
            theirs.append(slave)
            pty_name = os.ttyname(slave)
        actions, above = _file_actions(mapping, pty_name)
        if path is None and uid is None and gid is None:
            pid = _posix_spawn(program, argv, environment, actions, setsid=use_pty)
        else:
            pid = _fork_exec(program, argv, environment, actions, above, setsid=use_pty,
                             cwd=None if path is None else os.fspath(path), uid=uid, gid=gid)
    except BaseException:
        for fd in ours + theirs:
            os.close(fd)
        raise
    for fd in theirs:
        os.close(fd)
    transport = ProcessTransport(reactor, process_protocol, pid, program, use_pty)
    for fd in ours:
        os.set_blocking(fd, False)
    if master is not None:
        # One fd for each direction, so reading and writing can end separately.
        transport._add_writer(0, os.dup(master))
        transport._add_reader(1, master, eof_errnos=frozenset({errno.EIO}), also_lost=(2,))
    for child_fd, fd in writes.items():
        transport._add_writer(child_fd, fd)
    for child_fd, fd in reads.items():
        transport._add_reader(child_fd, fd)
    transport._start()
    return transport


# -- conveniences ------------------------------------------------------------------------------


def _exit_code(reason: ProcessDone | ProcessTerminated) -> int | None:
    """subprocess's returncode convention: the exit code, or minus the signal's number."""
    if isinstance(reason, ProcessDone):
        return 0
    if reason.signal is not None:
        return -int(reason.signal)
    return reason.exit_code


class _Collector(ProcessProtocol):
    """A ProcessProtocol keeping (bounded) stdout/stderr, for the get_process_* helpers."""

    def __init__(self, keep_out: bool, keep_err: bool, max_output: int) -> None:
        self.keep = {1: keep_out, 2: keep_err}
        self.buffers = {1: bytearray(), 2: bytearray()}
        self.max_output = max_output
        self.kept = 0
        self.saw_stderr = False
        self.overflowed: str | None = None
        self.ended: Deferred[ProcessDone | ProcessTerminated] = Deferred()

    def connection_made(self, transport: contracts.ProcessTransport) -> None:
        transport.close_stdin()  # these helpers give the child nothing to read

    def child_data_received(self, child_fd: int, data: bytes) -> None:
        if child_fd == 2:
            self.saw_stderr = True
        if not self.keep.get(child_fd) or self.overflowed is not None:
            return
        if self.kept + len(data) > self.max_output:
            self.overflowed = "stdout" if child_fd == 1 else "stderr"
            try:
                self.transport.signal_process("KILL")
            except ProcessExitedAlready:
                pass
            return
        self.kept += len(data)
        self.buffers[child_fd] += data

    def process_ended(self, reason: Failure) -> None:
        self.ended.callback(reason.value)

    def kill(self) -> None:
        try:
            self.transport.signal_process("KILL")
        except ProcessExitedAlready:
            pass


def _collect(reactor: contracts.Reactor, executable: Any, args: Sequence[Any], env: Mapping[Any, Any] | None,
             path: str | None, keep_out: bool, keep_err: bool, max_output: int,
             finish: Callable[[_Collector, ProcessDone | ProcessTerminated], Any]) -> Deferred[Any]:
    if isinstance(args, (str, bytes)):
        return fail(TypeError(f"args must be a sequence of arguments after the program, not the string {args!r}"))
    collector = _Collector(keep_out, keep_err, max_output)
    try:
        spawn_process(reactor, collector, executable, [executable, *args], env=env, path=path)
    except Exception as exc:
        return fail(exc)

    def check(reason: ProcessDone | ProcessTerminated) -> Any:
        out, err = bytes(collector.buffers[1]), bytes(collector.buffers[2])
        code = _exit_code(reason)
        if collector.overflowed is not None:
            raise ProcessOutputTooLarge(
                f"{os.fsdecode(os.fspath(executable))!r} wrote more than max_output={max_output} bytes "
                f"(on its {collector.overflowed}) and was killed; raise max_output, or stream its output "
                "with spawn_process and a ProcessProtocol",
                out, err, code,
            )
        return finish(collector, reason)

    result: Deferred[Any] = Deferred(lambda _: collector.kill())
    collector.ended.add_callback(check).chain_deferred(result)
    return result


def get_process_output(
    reactor: contracts.Reactor,
    executable: Any,
    args: Sequence[Any] = (),
    env: Mapping[Any, Any] | None = None,
    path: str | None = None,
    error_on_stderr: bool = False,
    max_output: int = DEFAULT_MAX_OUTPUT,
) -> Deferred[bytes]:
    """Run ``executable`` with ``args`` (after ``argv[0]``); fire with what it wrote to stdout.

    Whatever its exit code (as Twisted's ``getProcessOutput``). Its stdin is closed at once and
    its stderr discarded, unless ``error_on_stderr``: then any stderr output fails the Deferred
    with :class:`ProcessStderrError` once the child has ended. More than ``max_output`` bytes
    kills the child and fails it with :class:`ProcessOutputTooLarge`. Cancelling the Deferred
    kills the child (SIGKILL).
    """

    def finish(collector: _Collector, reason: ProcessDone | ProcessTerminated) -> bytes:
        out, err = bytes(collector.buffers[1]), bytes(collector.buffers[2])
        if error_on_stderr and collector.saw_stderr:
            raise ProcessStderrError(
                f"{os.fsdecode(os.fspath(executable))!r} wrote to stderr: {err[:200]!r}", out, err,
                _exit_code(reason))
        return out

    return _collect(reactor, executable, args, env, path, True, error_on_stderr, max_output, finish)


def get_process_value(
    reactor: contracts.Reactor,
    executable: Any,
    args: Sequence[Any] = (),
    env: Mapping[Any, Any] | None = None,
    path: str | None = None,
) -> Deferred[int]:
    """Run ``executable`` with ``args``; fire with its exit code (minus N: killed by signal N).

    Its stdin is closed at once; its output is read and discarded. A child whose status is
    unknown (reaped by someone else) fails it with that ProcessTerminated.
    """

    def finish(collector: _Collector, reason: ProcessDone | ProcessTerminated) -> int:
        code = _exit_code(reason)
        if code is None:
            raise reason
        return code

    return _collect(reactor, executable, args, env, path, False, False, 0, finish)


def get_process_output_and_value(
    reactor: contracts.Reactor,
    executable: Any,
    args: Sequence[Any] = (),
    env: Mapping[Any, Any] | None = None,
    path: str | None = None,
    max_output: int = DEFAULT_MAX_OUTPUT,
) -> Deferred[tuple[bytes, bytes, int]]:
    """Run ``executable`` with ``args``; fire with ``(stdout, stderr, exit code)``.

    The exit code as for :func:`get_process_value`; ``max_output`` bounds stdout and stderr
    together (:class:`ProcessOutputTooLarge`).
    """

    def finish(collector: _Collector, reason: ProcessDone | ProcessTerminated) -> tuple[bytes, bytes, int]:
        code = _exit_code(reason)
        if code is None:
            raise reason
        return bytes(collector.buffers[1]), bytes(collector.buffers[2]), code

    return _collect(reactor, executable, args, env, path, True, True, max_output, finish)
