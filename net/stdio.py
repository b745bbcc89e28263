"""Our own stdin and stdout as a transport: ``StandardIO(protocol, reactor=reactor)``.

A :class:`~net.protocol.Protocol` written for a socket runs unchanged on the program's stdio (a
child of some other program talking over pipes, a filter, a console tool). The two fds are put in
non-blocking mode (their previous mode is restored when the transport closes: a shell sharing our
terminal must not find it non-blocking) and watched by the reactor; writes are buffered with the
same water marks and producers as ``net.tcp``.

End of file on stdin is the peer's half-close: ``eof_received()`` runs; if it returns True we keep
writing until the protocol calls ``lose_connection()``, otherwise the transport closes once what
was written is flushed. ``connection_lost`` runs once, after both directions are done:
``ConnectionDone`` (``by_peer=True`` after an end of file), or ``ConnectionLost`` when reading or
writing failed (the reader of our stdout went away, say).

What stdin may be:

* a pipe, a socket or a terminal: watched by the reactor;
* a regular file (``prog < file``) or a device epoll refuses (``/dev/null``): epoll cannot watch
  them, and select and poll would call them ready forever, so they are read one chunk per loop
  iteration until their end (pausable like the rest). stdout of that kind is written at once.

The fds themselves stay open when the transport closes: they are the program's, which may still
print, and the peer sees the end of our stdout when the program exits (or closes fd 1 itself).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zope.interface import implementer

from ._producing import ProducesWhatItReads
from .defer import Failure
from .error import ConnectionDone, ConnectionLost
from .interfaces import ITransport
from .process import PipeReader, PipeWriter

if TYPE_CHECKING:
    from .contracts import PullProducer, PushProducer, ReactorIO, StreamProtocol

__all__ = ["StandardIO", "PipeAddress"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PipeAddress:
    """What ``get_host()``/``get_peer()`` of :class:`StandardIO` return: the fd it reads or writes."""

    fd: int


@implementer(ITransport)
class StandardIO(ProducesWhatItReads):
    """The program's stdin (``stdin``, default fd 0) and stdout (``stdout``, fd 1) as one transport.

    ``protocol.make_connection(self)`` runs from the constructor, then reading starts. ``reactor``
    is required (net has no global reactor); it is keyword-compatible with Twisted's signature.
    """

    def __init__(self, protocol: StreamProtocol, stdin: int = 0, stdout: int = 1,
                 reactor: ReactorIO | None = None) -> None:
        if reactor is None:
            raise TypeError("StandardIO needs the reactor: StandardIO(protocol, reactor=reactor) "
                            "(net has no global reactor)")
        for name, fd in (("stdin", stdin), ("stdout", stdout)):
            try:
                os.fstat(fd)
            except OSError as exc:
                raise ValueError(f"StandardIO: {name} fd {fd} is not open ({exc.strerror})") from exc
        self.reactor = reactor
        self.protocol = protocol
        self._stdin = stdin
        self._stdout = stdout
        self._blocking = {fd: os.get_blocking(fd) for fd in (stdin, stdout)}  # before changing either
        self.disconnecting = False  # lose_connection(): flushing, then close
        self.disconnected = False
        self._reason: BaseException | None = None
        self._eof = False
        self._shutting = False  # _shut(): both directions closed at once, the reason is set
        self._eof_written = False  # write_eof(): stdout goes to /dev/null once flushed
        self._reader: PipeReader | None = PipeReader(reactor, stdin, self._data_received, self._read_lost,
                                                     close_fd=False)
        self._writer: PipeWriter | None = PipeWriter(reactor, stdout, self._write_lost, close_fd=False)
        for pipe in (self._reader, self._writer):
            if pipe.pollable:
                os.set_blocking(pipe.fd, False)
        try:
            protocol.make_connection(self)
        except Exception as exc:
            log.exception("%r: connection_made failed; closing", protocol)
            self._shut(exc)
            return
        if self._reader is not None:
            self._reader.start()

    def __repr__(self) -> str:
        state = "closed" if self.disconnected else "closing" if self.disconnecting else "open"
        return f"<StandardIO stdin={self._stdin} stdout={self._stdout} {state}>"

    # -- writing -------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Queue ``data`` for stdout; ignored once closing or closed."""
        if self._eof_written and data and not self.disconnected:
            raise RuntimeError("write() after write_eof(): our stdout is shut")
        if self._writer is not None and not self.disconnecting:
            self._writer.write(data)

    def writelines(self, seq: Iterable[bytes]) -> None:
        self.write(b"".join(seq))

    def can_write_eof(self) -> bool:
        """True unless stdin and stdout are one fd (a terminal or socket given as both)."""
        return self._stdin != self._stdout

    def write_eof(self) -> None:
        """Half-close: once stdout is flushed, fd ``stdout`` is pointed at /dev/null.

        That releases the pipe (or whatever it was), so the peer reads its end of stream while
        we go on reading stdin; the fd number stays taken, so nothing else lands on it. Writing
        afterwards raises RuntimeError.
        """
        if not self.can_write_eof():
            raise NotImplementedError(f"stdin and stdout are both fd {self._stdout}: it cannot be "
                                      "half-closed; use lose_connection()")
        if self.disconnecting or self.disconnected or self._eof_written:
            return
        self._eof_written = True
        if self._writer is not None:
            self._writer.lose_connection()

    def get_write_buffer_size(self) -> int:
        return self._writer.get_write_buffer_size() if self._writer is not None else 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if self._writer is not None:
            self._writer.set_write_buffer_limits(high, low)

    def register_producer(self, producer: PushProducer | PullProducer, streaming: bool) -> None:
        """Attach a producer feeding stdout (paused above the high-water mark, as on TCP)."""
        if self._writer is None or self.disconnecting:
            producer.stop_producing()
            return
        self._writer.register_producer(producer, streaming)

    def unregister_producer(self) -> None:
        if self._writer is not None:
            self._writer.unregister_producer()

    # -- closing -------------------------------------------------------------------------------

    def lose_connection(self, reason: BaseException | None = None) -> None:
        """Stop reading; close once stdout is flushed. ``connection_lost`` gets ``reason`` or
        ConnectionDone."""
        if self.disconnecting or self.disconnected:
            return
        self.disconnecting = True
        self._reason = reason
        if self._reader is not None:
            self._reader.close()
        if self._writer is not None:
            self._writer.lose_connection()
        self._maybe_lost()  # both may be done already (after write_eof and an end of file)

    def abort_connection(self, reason: BaseException | None = None) -> None:
        """Close now, dropping what is queued for stdout."""
        self._shut(reason or ConnectionLost("Connection was aborted."))

    def is_closing(self) -> bool:
        return self.disconnecting or self.disconnected

    # -- reading -------------------------------------------------------------------------------

    def pause_reading(self) -> None:
        if self._reader is not None:
            self._reader.pause()

    def resume_reading(self) -> None:
        if self._reader is not None:
            self._reader.resume()

    def get_host(self) -> PipeAddress:
        return PipeAddress(self._stdin)

    def get_peer(self) -> PipeAddress:
        return PipeAddress(self._stdout)

    # -- the pipes' events ---------------------------------------------------------------------

    def _data_received(self, data: bytes) -> None:
        if self.disconnecting or self.disconnected:
            return
        try:
            self.protocol.data_received(data)
        except Exception as exc:
            log.exception("%r: data_received failed; closing", self.protocol)
            self._shut(exc)

    def _read_lost(self, reason: BaseException) -> None:
        self._reader = None
        if self.disconnected or self.disconnecting:
            self._maybe_lost()
            return
        if isinstance(reason, ConnectionDone) and reason.by_peer:
            self._eof = True
            try:
                keep_writing = self.protocol.eof_received()
            except Exception as exc:
                log.exception("%r: eof_received failed; closing", self.protocol)
                self._shut(exc)
                return
            if not keep_writing or self._eof_written:
                self.lose_connection(ConnectionDone("The peer closed our stdin.", by_peer=True))
            return
        self._shut(reason)

    def _write_lost(self, reason: BaseException) -> None:
        self._writer = None
        if isinstance(reason, ConnectionDone) or self._shutting:  # flushed, or we aborted it
            if isinstance(reason, ConnectionDone) and self._eof_written:
                self._release_stdout()
            self._maybe_lost()
        else:  # the write failed or the reader of our stdout went away
            self._shut(reason)

    def _release_stdout(self) -> None:
        """write_eof(), flushed: give back the pipe, keep the fd number (on /dev/null)."""
        fd = self._stdout
        try:
            os.set_blocking(fd, self._blocking.pop(fd))
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, fd)
            finally:
                os.close(devnull)
        except OSError as exc:
            log.warning("%r: could not point fd %d at %s after write_eof: %s", self, fd, os.devnull, exc)

    def _shut(self, reason: BaseException) -> None:
        """Close both directions now; ``connection_lost(reason)`` once they are released."""
        if self.disconnected or self._shutting:
            return
        self._shutting = True
        self._reason = reason
        self.disconnecting = True
        if self._reader is not None:
            self._reader.close()
        if self._writer is not None:
            self._writer.abort()
        self._maybe_lost()

    def _maybe_lost(self) -> None:
        if self.disconnected or self._reader is not None or self._writer is not None:
            return
        self.disconnected = True
        self.disconnecting = False
        for fd, blocking in self._blocking.items():
            try:
                os.set_blocking(fd, blocking)
            except OSError:
                pass
        reason = self._reason or ConnectionDone()
        try:
            self.protocol.connection_lost(Failure(reason))
        except Exception:
            log.exception("%r: connection_lost failed", self.protocol)
