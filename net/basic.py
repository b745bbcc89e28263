"""Framing: turn a byte stream, which arrives in arbitrary chunks, back into messages.

Classic framings, as :class:`~net.protocol.Protocol` subclasses you override:

- :class:`LineReceiver` — messages end with a delimiter (``b"\\r\\n"``); it can switch to a raw mode
  and back, for protocols that mix lines with bulk data (a header line announcing a body, say).
  :class:`LineOnlyReceiver` is the same without raw mode, for protocols that are lines and nothing
  else.
- :class:`IntNStringReceiver` — each message is preceded by its length as a big-endian unsigned
  integer: :class:`Int32StringReceiver`, :class:`Int16StringReceiver`, :class:`Int8StringReceiver`.
- :class:`NetstringReceiver` — D. J. Bernstein's netstrings, ``b"5:hello,"``: a decimal length, a
  colon, the bytes, a comma. Readable on the wire, and the comma catches a peer out of step.

All limit what they buffer (``max_length``) because the peer is not trusted: by default a message
over the limit, or a malformed one, drops the connection with :class:`~net.error.ProtocolViolation`
as the reason, which ``connection_lost`` receives. All stop delivering messages as soon as the
transport says it is closing (:meth:`~net.interfaces.ITransport.is_closing`, so TCP, TLS and the
memory transports behave alike), so nothing sent after a violation (or after the protocol itself
hung up) is acted on. With no transport at all (a framer fed by hand in a unit test) every message
is delivered, and a violation raises the ProtocolViolation instead of dropping a connection.

:class:`FileSender` goes the other way: a pull producer that writes a file to a consumer (a
transport) one chunk each time the consumer's buffer drains, so a big file is never held in memory.

Buffers are ``bytearray``s searched from an offset and trimmed once per ``data_received``, so many
small messages in one chunk, or one large message in many chunks, cost linear time.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, ClassVar

from zope.interface import implementer

from .defer import Deferred
from .error import ConnectionLost, ProtocolViolation
from .interfaces import IPullProducer
from .protocol import Protocol

if TYPE_CHECKING:
    from .contracts import Consumer

__all__ = [
    "LineReceiver",
    "LineOnlyReceiver",
    "IntNStringReceiver",
    "Int32StringReceiver",
    "Int16StringReceiver",
    "Int8StringReceiver",
    "NetstringReceiver",
    "FileSender",
]


class _Framer(Protocol):
    """The buffer bookkeeping every framing shares.

    ``_buffer[_start:]`` is the unconsumed input. The buffer is created on first use, so subclasses
    that define ``__init__`` need not call ours. ``_busy`` guards against re-entrance: a callback
    that feeds more data (or switches modes) only changes the state, and the loop already running
    picks the change up.
    """

    paused: bool = False
    _buffer: bytearray | None = None
    _start: int = 0
    _busy: bool = False

    def data_received(self, data: bytes) -> None:
        if self._closing():
            return  # never buffer what we will not read
        if self._buffer is None:
            self._buffer = bytearray()
        self._buffer += data
        self._process()

    def pause_producing(self) -> None:
        """Stop delivering messages (mid-chunk if need be) and stop reading from the transport."""
        self.paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_producing(self) -> None:
        """Deliver what is buffered, then read again."""
        self.paused = False
        if self.transport is not None:
            self.transport.resume_reading()
        self._process()

    def stop_producing(self) -> None:
        """Deliver nothing more: the consumer is going away."""
        self.paused = True
        self._take()

    def _closing(self) -> bool:
        """True once the transport is closing or closed: what arrives after that is not acted on.

        Asked through :meth:`~net.interfaces.ITransport.is_closing`, which every transport
        implements, so that TLS (which has no ``disconnecting`` flag) stops exactly where TCP does.
        No transport (a unit test feeding bytes by hand) is never closing.
        """
        transport = self.transport
        return transport is not None and bool(transport.is_closing())

    def _violation(self, message: str) -> None:
        """The peer broke the framing: drop the connection with the reason, or raise it when
        there is no connection to drop (so a unit test without a transport sees it)."""
        reason = ProtocolViolation(message)
        if self.transport is None:
            raise reason
        self.transport.lose_connection(reason)

    def _stopped(self) -> bool:
        return self.paused or self._closing()

    def _process(self) -> None:
        if self._busy or self._buffer is None:
            return
        self._busy = True
        try:
            while not self._stopped() and self._step(self._buffer):
                pass
        finally:
            self._busy = False
            if self._start:  # trim once per call, not once per message
                del self._buffer[: self._start]
                self._start = 0

    def _step(self, buf: bytearray) -> bool:
        """Deliver at most one message from ``buf[_start:]``; False when more input is needed."""
        raise NotImplementedError

    def _take(self) -> bytes:
        """Remove and return everything unconsumed."""
        buf = self._buffer
        if buf is None:
            return b""
        data = bytes(buf[self._start :])
        buf.clear()
        self._start = 0
        return data


class _LineFramer(_Framer):
    """Delimited lines: what :class:`LineReceiver` and :class:`LineOnlyReceiver` share."""

    delimiter: bytes = b"\r\n"
    max_length: int = 16384
    # (delimiter, n): the first n unconsumed bytes hold no delimiter, so are not searched again.
    _scanned: tuple[bytes, int] = (b"", 0)

    def line_received(self, line: bytes) -> None:
        """A complete line arrived, without its delimiter. Override."""
        raise NotImplementedError(f"{type(self).__name__} must override line_received")

    def send_line(self, line: bytes) -> None:
        """Write ``line`` followed by the delimiter."""
        self.transport.writelines((line, self.delimiter))

    def line_length_exceeded(self, line: bytes) -> None:
        """A line (``line``, or its beginning if unterminated) exceeds :attr:`max_length`.

        The default drops the connection: a peer that sends endless lines is broken or hostile.
        An override that keeps the connection should know that an unterminated ``line`` was taken
        from the buffer, so the rest of it will arrive as if it were a new line.
        """
        self._violation(f"line longer than {self.max_length} bytes")

    def clear_line_buffer(self) -> bytes:
        """Discard and return the buffered, undelivered bytes."""
        return self._take()

    def _take(self) -> bytes:
        self._scanned = (b"", 0)
        return super()._take()

    def _next_line(self, buf: bytearray) -> bool:
        start, delimiter = self._start, self.delimiter
        scanned_for, scanned = self._scanned
        skip = max(0, scanned - len(delimiter) + 1) if scanned_for == delimiter else 0
        end = buf.find(delimiter, start + skip)
        if end < 0:
            # An unterminated tail longer than this cannot become a line within the limit.
            if len(buf) - start >= self.max_length + len(delimiter):
                self.line_length_exceeded(self._take())
            else:
                self._scanned = (delimiter, len(buf) - start)
            return False
        line = bytes(buf[start:end])
        self._start, self._scanned = end + len(delimiter), (b"", 0)
        if len(line) > self.max_length:
            self.line_length_exceeded(line)
        else:
            self.line_received(line)
        return True


class LineReceiver(_LineFramer):
    """Delivers delimiter-terminated lines to :meth:`line_received`, or raw data in raw mode.

    Set :attr:`delimiter` and :attr:`max_length` on the class or the instance. Mode switches
    (:meth:`set_raw_mode`, :meth:`set_line_mode`) take effect immediately, also from inside
    :meth:`line_received` with more lines already buffered.
    """

    line_mode: bool = True

    def raw_data_received(self, data: bytes) -> None:
        """Bytes arrived in raw mode. Override if you use :meth:`set_raw_mode`."""
        raise NotImplementedError(f"{type(self).__name__} must override raw_data_received")

    def set_raw_mode(self) -> None:
        """From now on, pass bytes to :meth:`raw_data_received`, starting with what is buffered."""
        self.line_mode = False
        self._process()

    def set_line_mode(self, extra: bytes = b"") -> None:
        """Back to lines. ``extra`` (raw data you did not consume) is parsed ahead of the buffer."""
        self.line_mode = True
        if extra:
            if self._buffer is None:
                self._buffer = bytearray()
            self._buffer[self._start : self._start] = extra
            self._scanned = (b"", 0)
        self._process()

    def _step(self, buf: bytearray) -> bool:
        if not self.line_mode:
            data = self._take()
            if data:
                self.raw_data_received(data)
            return bool(data)
        return self._next_line(buf)


class LineOnlyReceiver(_LineFramer):
    """Delivers delimiter-terminated lines to :meth:`line_received`, and nothing else.

    For protocols that are lines from start to end (chat, SMTP-like command loops): there is no
    raw mode to switch into by mistake, so every byte the peer sends is parsed as lines, within
    :attr:`max_length`. Same :attr:`delimiter`, :meth:`send_line` and limit handling as
    :class:`LineReceiver`.
    """

    def _step(self, buf: bytearray) -> bool:
        return self._next_line(buf)


class IntNStringReceiver(_Framer):
    """Delivers length-prefixed strings to :meth:`string_received`.

    Subclasses set :attr:`prefix_format` (a :mod:`struct` format of one unsigned integer). A length
    over :attr:`max_length` is refused before its body is read, so a peer cannot make us buffer it.
    """

    prefix_format: ClassVar[str]
    max_length: int = 99_999_999

    def string_received(self, data: bytes) -> None:
        """A complete string arrived. Override."""
        raise NotImplementedError(f"{type(self).__name__} must override string_received")

    def send_string(self, data: bytes) -> None:
        """Write ``data`` with its length prefix.

        Raises ValueError (our mistake, so raised here rather than sent) if ``data`` is longer than
        :attr:`max_length` or than the prefix can express.
        """
        limit = min(self.max_length, 2 ** (8 * struct.calcsize(self.prefix_format)) - 1)
        if len(data) > limit:
            raise ValueError(
                f"{type(self).__name__}.send_string: {len(data)} bytes is over the limit of {limit}"
            )
        self.transport.writelines((struct.pack(self.prefix_format, len(data)), data))

    def length_limit_exceeded(self, length: int) -> None:
        """The peer announced a string of ``length`` bytes, over :attr:`max_length`.

        The default drops the connection; the body is never buffered. The buffered input is
        discarded, so an override that keeps the connection must find the next prefix itself.
        """
        self._violation(f"string of {length} bytes is longer than {self.max_length} bytes")

    def _step(self, buf: bytearray) -> bool:
        start, header = self._start, struct.calcsize(self.prefix_format)
        if len(buf) - start < header:
            return False
        (length,) = struct.unpack_from(self.prefix_format, buf, start)
        if length > self.max_length:
            self._take()
            self.length_limit_exceeded(length)
            return False
        end = start + header + length
        if len(buf) < end:
            return False
        self._start = end
        self.string_received(bytes(buf[start + header : end]))
        return True


class Int32StringReceiver(IntNStringReceiver):
    """Strings prefixed with a 4-byte big-endian length."""

    prefix_format = "!I"


class Int16StringReceiver(IntNStringReceiver):
    """Strings prefixed with a 2-byte big-endian length."""

    prefix_format = "!H"


class Int8StringReceiver(IntNStringReceiver):
    """Strings prefixed with a 1-byte length."""

    prefix_format = "!B"


_COLON, _COMMA, _ZERO = ord(":"), ord(","), ord("0")


class NetstringReceiver(_Framer):
    """Delivers netstrings (``b"5:hello,"``) to :meth:`string_received`.

    The length is ASCII decimal without leading zeros (``b"0:,"`` is the empty string), then a
    colon, the bytes, a comma. Checked as the bytes arrive, so a malformed or oversized header is
    refused before any body is buffered, and a header cannot grow longer than :attr:`max_length`
    needs digits. Every violation goes to :meth:`netstring_error`, which drops the connection.
    """

    max_length: int = 99_999

    def string_received(self, data: bytes) -> None:
        """A complete string arrived. Override."""
        raise NotImplementedError(f"{type(self).__name__} must override string_received")

    def send_string(self, data: bytes) -> None:
        """Write ``data`` as a netstring.

        Raises ValueError (our mistake, so raised here rather than sent) if ``data`` is longer than
        :attr:`max_length`: the peer would refuse it.
        """
        if len(data) > self.max_length:
            raise ValueError(
                f"{type(self).__name__}.send_string: {len(data)} bytes is over the limit of "
                f"{self.max_length}"
            )
        self.transport.writelines((b"%d:" % len(data), data, b","))

    def netstring_error(self, message: str) -> None:
        """The peer sent something that is not a netstring within the limit; ``message`` says what.

        The default drops the connection with ``ProtocolViolation(message)``: after a framing
        error there is no telling where the next netstring starts. The buffered input has already
        been discarded.
        """
        self._violation(message)

    def _error(self, message: str) -> bool:
        self._take()
        self.netstring_error(message)
        return False

    def _step(self, buf: bytearray) -> bool:
        start = self._start
        max_digits = len(str(self.max_length))
        colon = buf.find(b":", start, start + max_digits + 1)
        header = bytes(buf[start : colon if colon >= 0 else start + max_digits + 1])
        if header and not header.isdigit():
            return self._error(f"netstring length is not a decimal number: {header[:20]!r}")
        if len(header) > 1 and header[0] == _ZERO:
            return self._error(f"netstring length has a leading zero: {header!r}")
        if colon < 0:
            if len(header) > max_digits:
                return self._error(
                    f"netstring length of more than {max_digits} digits is over the limit of "
                    f"{self.max_length} bytes"
                )
            return False  # the header is not complete yet
        if not header:
            return self._error("netstring length is missing before the colon")
        length = int(header)
        if length > self.max_length:
            return self._error(
                f"netstring of {length} bytes is longer than {self.max_length} bytes"
            )
        body = colon + 1
        end = body + length
        if len(buf) <= end:
            return False  # the body, or its comma, is still to come
        if buf[end] != _COMMA:
            return self._error(
                f"netstring of {length} bytes is not followed by a comma "
                f"(got {bytes(buf[end : end + 1])!r})"
            )
        self._start = end + 1
        self.string_received(bytes(buf[body:end]))
        return True


@implementer(IPullProducer)
class FileSender:
    """Writes a file to a consumer (a transport) as a pull producer: one chunk each time the
    consumer's write buffer drains, so sending a file of any size holds one chunk in memory and
    never outruns the peer.

    :meth:`begin_file_transfer` returns a Deferred that fires with the number of bytes read from
    the file once the last chunk is written (to the consumer's buffer; closing the connection with
    ``lose_connection`` then still sends it), or fails if the consumer goes away first. The file
    is not closed: it belongs to the caller.
    """

    chunk_size: int = 64 * 1024
    """Bytes read per chunk: what the consumer gets each time it asks."""

    def __init__(self) -> None:
        self.file: BinaryIO | None = None
        self.consumer: Consumer | None = None
        self.transform: Callable[[bytes], bytes] | None = None
        self.sent = 0
        self.deferred: Deferred[int] | None = None

    def __repr__(self) -> str:
        return f"<FileSender {self.sent} bytes sent of {self.file!r}>"

    def begin_file_transfer(
        self, file: BinaryIO, consumer: Consumer, transform: Callable[[bytes], bytes] | None = None
    ) -> Deferred[int]:
        """Send ``file`` (read from its current position to its end) to ``consumer``.

        ``transform``, if given, is applied to each chunk before it is written (to compress or
        encode, say). The Deferred fires with the number of bytes read from the file.
        """
        if self.deferred is not None:
            raise RuntimeError(f"{self!r}: a transfer was already begun; use a new FileSender")
        self.file, self.consumer, self.transform = file, consumer, transform
        d: Deferred[int] = Deferred()
        self.deferred = d  # before registering: a short file may be done at once
        consumer.register_producer(self, False)
        return d

    def resume_producing(self) -> None:
        """Write the next chunk; at the end of the file, unregister and fire the Deferred."""
        file, consumer, transform = self.file, self.consumer, self.transform
        if file is None or consumer is None:
            return  # finished or stopped
        data = b""
        try:
            while not data:  # a transform may hold a chunk back (a compressor, say): read on
                chunk = file.read(self.chunk_size)
                if not chunk:
                    break
                self.sent += len(chunk)
                data = transform(chunk) if transform is not None else chunk
        except Exception as exc:
            self._finish(exc)
            return
        if not data:
            self._finish(None)
            return
        consumer.write(data)

    def pause_producing(self) -> None:
        """Nothing to do: a pull producer only writes when asked."""

    def stop_producing(self) -> None:
        """The consumer is going away before the end of the file: fail the Deferred."""
        if self.file is None:
            return
        self._finish(ConnectionLost(f"the consumer stopped the transfer after {self.sent} bytes"),
                     unregister=False)

    def _finish(self, error: BaseException | None, unregister: bool = True) -> None:
        consumer, d = self.consumer, self.deferred
        self.file = self.consumer = self.transform = None
        if unregister and consumer is not None:
            consumer.unregister_producer()
        assert d is not None
        if error is None:
            d.callback(self.sent)
        else:
            d.errback(error)
