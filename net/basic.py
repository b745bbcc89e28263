"""Framing: turn a byte stream, which arrives in arbitrary chunks, back into messages.

Two classic framings, as :class:`~net.protocol.Protocol` subclasses you override:

- :class:`LineReceiver` — messages end with a delimiter (``b"\\r\\n"``); it can switch to a raw mode
  and back, for protocols that mix lines with bulk data (a header line announcing a body, say).
- :class:`IntNStringReceiver` — each message is preceded by its length as a big-endian unsigned
  integer: :class:`Int32StringReceiver`, :class:`Int16StringReceiver`, :class:`Int8StringReceiver`.

Both limit what they buffer (``max_length``) because the peer is not trusted: by default a message
over the limit drops the connection with :class:`~net.error.ProtocolViolation` as the reason, which
``connection_lost`` receives. Both stop delivering messages as soon as the transport is closing, so
nothing sent after a violation (or after the protocol itself hung up) is acted on.

Buffers are ``bytearray``s searched from an offset and trimmed once per ``data_received``, so many
small messages in one chunk, or one large message in many chunks, cost linear time.
"""

from __future__ import annotations

import struct
from typing import ClassVar

from .error import ProtocolViolation
from .protocol import Protocol

__all__ = [
    "LineReceiver",
    "IntNStringReceiver",
    "Int32StringReceiver",
    "Int16StringReceiver",
    "Int8StringReceiver",
]


class _Framer(Protocol):
    """The buffer bookkeeping both framings share.

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
        self.transport.pause_reading()

    def resume_producing(self) -> None:
        """Deliver what is buffered, then read again."""
        self.paused = False
        self.transport.resume_reading()
        self._process()

    def stop_producing(self) -> None:
        """Deliver nothing more: the consumer is going away."""
        self.paused = True
        self._take()

    def _closing(self) -> bool:
        """True once the transport is closing or closed: what arrives after that is not acted on."""
        transport = self.transport
        if transport is None:
            return True
        closing = getattr(transport, "disconnecting", False) or getattr(transport, "disconnected", False)
        return bool(closing)

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


class LineReceiver(_Framer):
    """Delivers delimiter-terminated lines to :meth:`line_received`, or raw data in raw mode.

    Set :attr:`delimiter` and :attr:`max_length` on the class or the instance. Mode switches
    (:meth:`set_raw_mode`, :meth:`set_line_mode`) take effect immediately, also from inside
    :meth:`line_received` with more lines already buffered.
    """

    delimiter: bytes = b"\r\n"
    max_length: int = 16384
    line_mode: bool = True
    # (delimiter, n): the first n unconsumed bytes hold no delimiter, so are not searched again.
    _scanned: tuple[bytes, int] = (b"", 0)

    def line_received(self, line: bytes) -> None:
        """A complete line arrived, without its delimiter. Override."""
        raise NotImplementedError(f"{type(self).__name__} must override line_received")

    def raw_data_received(self, data: bytes) -> None:
        """Bytes arrived in raw mode. Override if you use :meth:`set_raw_mode`."""
        raise NotImplementedError(f"{type(self).__name__} must override raw_data_received")

    def send_line(self, line: bytes) -> None:
        """Write ``line`` followed by the delimiter."""
        self.transport.writelines((line, self.delimiter))

    def line_length_exceeded(self, line: bytes) -> None:
        """A line (``line``, or its beginning if unterminated) exceeds :attr:`max_length`.

        The default drops the connection: a peer that sends endless lines is broken or hostile.
        An override that keeps the connection should know that an unterminated ``line`` was taken
        from the buffer, so the rest of it will arrive as if it were a new line.
        """
        reason = ProtocolViolation(f"line longer than {self.max_length} bytes")
        self.transport.lose_connection(reason)

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

    def clear_line_buffer(self) -> bytes:
        """Discard and return the buffered, undelivered bytes."""
        return self._take()

    def _take(self) -> bytes:
        self._scanned = (b"", 0)
        return super()._take()

    def _step(self, buf: bytearray) -> bool:
        if not self.line_mode:
            data = self._take()
            if data:
                self.raw_data_received(data)
            return bool(data)
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
        self.transport.lose_connection(
            ProtocolViolation(f"string of {length} bytes is longer than {self.max_length} bytes")
        )

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
