"""The write buffer every stream transport shares: unsent bytes, water marks, the producer.

Why one class: a transport's ``write()``, ``writelines()`` and writability callback, and the
in-memory transport of :mod:`net.testing`, each kept their own copy of the queue accounting and of
when a producer is paused and resumed, and copies drift. :class:`WriteBuffer` does no I/O: the
transport sends :meth:`~WriteBuffer.first` or :meth:`~WriteBuffer.gather` and reports what the
kernel took with :meth:`~WriteBuffer.consume`.

Segments, oldest first: the unsent tail of an immutable ``bytes`` object is kept as a
``memoryview`` of it (no copy), anything mutable is copied once (the caller may reuse it once
``write()`` returns), and small writes are coalesced into one ``bytearray`` trimmed at the front
(CPython moves the start of a bytearray on ``del b[:n]``: no copy of the rest). So a 16 MiB write
costs linear time, not quadratic, and usually no copy in user space at all.

Flow control, as asyncio and Twisted define it: a *streaming* (push) producer is paused when the
buffer grows above the high-water mark and resumed once it drains to the low-water mark; a *pull*
producer is asked for one more chunk each time the buffer is empty. The buffer calls the producer;
an exception the producer raises propagates to the transport, which decides what to close.
"""

from __future__ import annotations

from collections import deque
from itertools import islice
from typing import TYPE_CHECKING, Any, Iterable, cast

if TYPE_CHECKING:
    from .contracts import PullProducer, PushProducer

__all__ = ["DEFAULT_HIGH_WATER", "DEFAULT_LOW_WATER", "WriteBuffer", "as_bytes_like", "check_limits"]

DEFAULT_HIGH_WATER = 64 * 1024
"""Bytes queued above which a streaming producer is paused."""
DEFAULT_LOW_WATER = 16 * 1024
"""Bytes queued at or below which a paused streaming producer is resumed."""

COALESCE_BELOW = 64 * 1024
"""Queued writes smaller than this are copied into one bytearray; bigger ones are queued as they
are (immutable bytes) or as one copy (anything else)."""


#: What an empty buffer holds instead of a deque of its own.
_NO_SEGMENTS: tuple[Any, ...] = ()


def as_bytes_like(data: Any) -> Any:
    """``data`` if bytes or bytearray, else a flat byte view of it (TypeError if not a buffer)."""
    if type(data) is bytes or type(data) is bytearray:
        return data
    view = memoryview(data)
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


def check_limits(high: int | None, low: int | None) -> tuple[int, int]:
    """The marks ``set_write_buffer_limits(high, low)`` means: asyncio's rule, one given, the
    other is 4x / 1/4 of it; neither, the defaults. ValueError unless ``high >= low >= 0``."""
    if high is None:
        high = DEFAULT_HIGH_WATER if low is None else 4 * low
    if low is None:
        low = high // 4
    if not high >= low >= 0:
        raise ValueError(f"need high >= low >= 0, got high={high!r}, low={low!r}")
    return high, low


class WriteBuffer:
    """The bytes a transport has accepted and not yet handed on, and the producer they pace.

    ``size`` is the byte count (what ``get_write_buffer_size()`` reports); ``high``/``low`` the
    water marks; ``producer``, ``streaming`` and ``producer_paused`` the registered producer and
    its state. Appending never pauses by itself: call :meth:`pause_producer_if_full` once a write
    is queued (writes come in batches), and :meth:`resume_producer_if_drained` once bytes left.
    """

    __slots__ = ("_segments", "_tail", "size", "high", "low", "producer", "streaming", "producer_paused")

    def __init__(self, high: int = DEFAULT_HIGH_WATER, low: int = DEFAULT_LOW_WATER) -> None:
        # A deque costs ~0.8 KiB; an idle connection holds the shared empty tuple instead.
        self._segments: deque[Any] | tuple[Any, ...] = _NO_SEGMENTS
        self._tail: bytearray | None = None  # the last segment when it is ours to append to
        self.size = 0
        self.high, self.low = check_limits(high, low)
        # A PushProducer when ``streaming``, else a PullProducer; None when none is registered.
        self.producer: PushProducer | PullProducer | None = None
        self.streaming = False
        self.producer_paused = False

    def __repr__(self) -> str:
        return f"<WriteBuffer {self.size} bytes in {len(self._segments)} segments, marks {self.low}..{self.high}>"

    # -- the bytes -------------------------------------------------------------------------------

    def append(self, data: Any, offset: int = 0) -> None:
        """Queue ``data[offset:]`` (bytes-like and flat: see :func:`as_bytes_like`), copying it
        only when keeping a reference would not be safe or small writes can be coalesced."""
        size = len(data) - offset
        if size <= 0:
            return
        if size < COALESCE_BELOW:
            tail = self._tail
            if tail is None:
                tail = self._tail = bytearray()
                self._queue().append(tail)
            if offset:
                with memoryview(data) as view:
                    tail += view[offset:]
            else:
                tail += data
        else:
            if type(data) is bytes:  # immutable: keep a view of it, no copy
                segment: Any = memoryview(data)[offset:] if offset else data
            else:  # the caller may change or reuse it once we return: copy
                with memoryview(data) as view:
                    segment = bytes(view[offset:])
            self._queue().append(segment)
            self._tail = None
        self.size += size

    def append_unsent(self, items: Iterable[Any], sent: int) -> None:
        """Queue what is left of ``items`` (flat bytes-likes, in order) after the first ``sent``
        bytes of them went out in one gathering send."""
        for data in items:
            size = len(data)
            if sent >= size:
                sent -= size
            else:
                self.append(data, sent)
                sent = 0

    def _queue(self) -> deque[Any]:
        segments = self._segments
        if isinstance(segments, deque):
            return segments
        queue: deque[Any] = deque()
        self._segments = queue
        return queue

    def first(self) -> Any:
        """The oldest segment (for one ``send()``); IndexError when empty."""
        return self._segments[0]

    def gather(self, limit: int) -> list[Any]:
        """Up to ``limit`` oldest segments (for one ``sendmsg()``)."""
        return list(islice(self._segments, limit))

    @property
    def segment_count(self) -> int:
        """How many segments hold the bytes (1: a plain ``send()`` of :meth:`first` does)."""
        return len(self._segments)

    def consume(self, nbytes: int) -> None:
        """Drop the oldest ``nbytes`` bytes: the kernel took them. ValueError beyond :attr:`size`."""
        if not 0 <= nbytes <= self.size:
            raise ValueError(f"cannot consume {nbytes} bytes of a buffer holding {self.size}")
        self.size -= nbytes
        segments = self._segments
        if not isinstance(segments, deque):
            return  # nothing queued (and nbytes is 0)
        while nbytes:
            segment = segments[0]
            size = len(segment)
            if nbytes < size:
                if type(segment) is bytearray:
                    del segment[:nbytes]
                else:
                    segments[0] = memoryview(segment)[nbytes:]
                return
            nbytes -= size
            segments.popleft()
            if segment is self._tail:
                self._tail = None
        if not segments:
            self._segments = _NO_SEGMENTS  # drained: give the deque back

    def take_all(self) -> bytes:
        """Everything queued, as one bytes object; the buffer is empty afterwards."""
        data = b"".join(self._segments)
        self.clear()
        return data

    def clear(self) -> None:
        """Drop everything queued (the connection is gone); the producer stays registered."""
        self._segments = _NO_SEGMENTS
        self._tail = None
        self.size = 0

    # -- water marks and the producer ------------------------------------------------------------

    def set_limits(self, high: int | None = None, low: int | None = None) -> None:
        """``set_write_buffer_limits``: new marks (see :func:`check_limits`), applied at once to a
        streaming producer (paused if the buffer is above the new high mark, resumed if a paused
        one is at or below the new low mark)."""
        self.high, self.low = check_limits(high, low)
        if self.streaming:
            if self.producer_paused:
                self.resume_producer_if_drained()
            else:
                self.pause_producer_if_full()

    def register_producer(self, producer: PushProducer | PullProducer, streaming: bool) -> None:
        """Attach ``producer``: a streaming one is paused now if the buffer is full; a pull one is
        asked for its first chunk now. RuntimeError if one is registered already."""
        if self.producer is not None:
            raise RuntimeError(
                f"Cannot register producer {producer!r}: {self.producer!r} is already registered; "
                "call unregister_producer() first."
            )
        self.producer = producer
        self.streaming = bool(streaming)
        self.producer_paused = False
        if self.streaming:
            self.pause_producer_if_full()
        else:
            producer.resume_producing()

    def unregister_producer(self) -> None:
        """Forget the producer (without telling it anything). A no-op when none is registered."""
        self.producer = None
        self.streaming = False
        self.producer_paused = False

    def detach_producer(self) -> PushProducer | PullProducer | None:
        """Forget the producer and return it (None if none): the connection ended, and the
        caller tells it ``stop_producing()``."""
        producer = self.producer
        self.unregister_producer()
        return producer

    def pause_producer_if_full(self) -> None:
        """After a write: pause a streaming producer once the buffer is above the high mark."""
        if self.streaming and not self.producer_paused and self.size > self.high:
            self.producer_paused = True
            cast("PushProducer", self.producer).pause_producing()  # streaming: a push producer

    def resume_producer_if_drained(self) -> None:
        """After bytes left: resume a paused streaming producer at or below the low mark; ask a
        pull producer for its next chunk once the buffer is empty."""
        producer = self.producer
        if producer is None:
            return
        if self.streaming:
            if self.producer_paused and self.size <= self.low:
                self.producer_paused = False
                producer.resume_producing()
        elif not self.size:
            producer.resume_producing()
