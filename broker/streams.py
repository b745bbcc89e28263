"""Streams with credit-based flow control (PROTOCOL.md §17, feature ``"streams"``).

A remote method that returns (or a caller that passes) an async iterator, an async generator,
a generator or any other iterator sends a **stream**: ext 7 carries the producer's stream id,
and the items follow in stream_items messages, never more than the consumer's credit allows.
The consumer sees a :class:`RemoteStream`, an async iterator (``async for item in stream``);
:meth:`RemoteStream.blocking` gives a plain iterator for the blocking client.

Flow control: the consumer grants credit in items and bytes (stream_credit); the producer pulls
from its iterator only while it has credit of both, so neither side buffers more than a window
(``Limits.stream_window_items`` / ``stream_window_bytes``, and the producer's own offer in the
ext, whichever is smaller; the bytes may be overshot by one frame). The consumer gives credit
back as the application takes items: half a window at a time.

Endings, in order after the items before them: the producer's stream_end (done, or a failure
the consumer's iterator raises); the consumer's cancel (a stream_end of kind "cancelled", which a
producer never sends: that is how the two directions are told apart); the connection ending
(the consumer's iterator fails with ConnectionLost, the producer's iterator is closed). A
RemoteStream the application drops unread is cancelled from the event loop, like a release.

Per connection, :class:`StreamTables` holds both sides' streams; the session makes it on first
use and drops it when the connection ends.
"""

from __future__ import annotations

import logging
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Final

from net.defer import CancelledError, Deferred, Failure, ensure_deferred, fail, succeed

from . import wire
from .errors import ConnectionLost, LimitExceeded, OverloadedError, UnimplementedError
from .failures import from_failure, to_failure
from .lifecycle import State
from .messages import (
    CANCELLED,
    FAILED,
    FEATURE_STREAMS,
    FailureInfo,
    StreamCredit,
    StreamEnd,
    StreamItems,
    StreamRef,
)

if TYPE_CHECKING:
    from .session import Session

__all__ = [
    "Stream",
    "RemoteStream",
    "BlockingStream",
    "StreamTables",
    "is_streamable",
    "handle_items",
    "handle_end",
    "handle_credit",
    "DEFAULT_WINDOW_ITEMS",
    "DEFAULT_WINDOW_BYTES",
]

log = logging.getLogger("broker.streams")

#: The window both sides default to (``Limits.stream_window_items`` / ``stream_window_bytes``).
DEFAULT_WINDOW_ITEMS: Final = 64
DEFAULT_WINDOW_BYTES: Final = 1024 * 1024
#: The most items one stream_items message carries (well inside the per-frame limits, §8).
MAX_BATCH: Final = 4096

#: What the pump's box holds while an item is awaited (the item then goes to _pulled).
_LATER: Final = object()
_CANCEL_INFO: Final = FailureInfo(CANCELLED, "broker.StreamCancelled", "the consumer cancelled the stream", None)


class Stream:
    """An iterable sent as a stream, with a window of its own (else the connection's Limits).

    Iterators and async iterators are sent as streams by themselves; wrap a list or any other
    iterable in ``Stream(...)`` to stream it rather than send it whole."""

    __slots__ = ("source", "window_items", "window_bytes")

    def __init__(self, source: Any, window_items: int | None = None, window_bytes: int | None = None) -> None:
        if not (hasattr(source, "__aiter__") or hasattr(source, "__iter__")):
            raise TypeError(f"Stream(source): source must be iterable or async iterable, not {type(source).__qualname__}")
        for name, value in (("window_items", window_items), ("window_bytes", window_bytes)):
            if value is not None and (type(value) is not int or value < 1):
                raise ValueError(f"Stream({name}=...) must be an int >= 1, not {value!r}")
        self.source = source
        self.window_items = window_items
        self.window_bytes = window_bytes


def is_streamable(obj: Any) -> bool:
    """What the session sends as a stream: a Stream, an async iterator, a (sync) iterator."""
    t = type(obj)
    return t is Stream or hasattr(t, "__anext__") or (hasattr(t, "__next__") and hasattr(t, "__iter__"))


async def _anext(iterator: Any) -> Any:
    return await iterator.__anext__()


async def _aclose(iterator: Any) -> None:
    await iterator.aclose()


class _Producer:
    """One stream this side feeds: its iterator, the credit the consumer gave, what it is doing."""

    __slots__ = ("tables", "stream_id", "iterator", "is_async", "items", "nbytes", "per_item", "pulling", "ended")

    def __init__(self, tables: StreamTables, stream_id: int, iterator: Any, is_async: bool) -> None:
        self.tables = tables
        self.stream_id = stream_id
        self.iterator = iterator
        self.is_async = is_async
        self.items = 0  # credit left: items, and bytes of stream_items bodies (may go below 0 by a frame)
        self.nbytes = 0
        self.per_item = 0  # body bytes per item of the last stream_items sent (0: none sent yet)
        self.pulling: Deferred[Any] | None = None  # an __anext__ not yet fired
        self.ended = False

    def pump(self) -> None:
        """Send what the credit allows: pull, batch, send; end the stream when the iterator does."""
        while not self.ended and self.pulling is None and self.items > 0 and self.nbytes > 0:
            batch: list[Any] = []
            ending: Failure | None | bool = False  # False: goes on; None: done; a Failure: failed
            limit = self.batch_limit()
            while len(batch) < limit:
                if self.is_async:
                    box: list[Any] = []
                    d = ensure_deferred(_anext(self.iterator))
                    d.add_both(self._got, box)
                    if not box:  # not there yet: send what we have, go on when it comes
                        self.pulling = d
                        box.append(_LATER)
                        break
                    outcome = box[0]
                    if isinstance(outcome, Failure):
                        ending = None if outcome.check(StopAsyncIteration) else outcome
                        break
                    batch.append(outcome)
                else:
                    try:
                        batch.append(next(self.iterator))
                    except StopIteration:
                        ending = None
                        break
                    except Exception as exc:
                        ending = Failure(exc)
                        break
            if batch and not self._send(batch):
                return
            if ending is not False:
                self._finish(ending)  # type: ignore[arg-type]
                return

    def batch_limit(self) -> int:
        """How many items the next stream_items may carry (§17.2): one at first; then as many as
        the byte credit holds at the last batch's bytes per item (at least one), within the item
        credit. So the byte window is overshot by about one item, not by one big batch."""
        if self.per_item == 0:
            return 1
        return min(self.items, MAX_BATCH, max(1, self.nbytes // self.per_item))

    def _got(self, outcome: Any, box: list[Any]) -> None:
        if box:  # it came later than the pump: go on from here
            self._pulled(outcome)
        else:
            box.append(outcome)

    def _pulled(self, outcome: Any) -> None:
        self.pulling = None
        if self.ended:
            return
        if isinstance(outcome, Failure):
            self._finish(None if outcome.check(StopAsyncIteration) else outcome)
            return
        if self._send([outcome]):
            self.pump()

    def _send(self, batch: list[Any]) -> bool:
        session = self.tables.session
        if session.state is not State.OPEN:
            return False
        try:
            frame = session._encode(StreamItems(self.stream_id, batch))
        except Exception as exc:
            if len(batch) > 1:  # too big as one frame, maybe: one item a frame, in order
                for item in batch:
                    if not self._send([item]):
                        return False
                return True
            if isinstance(exc, LimitExceeded):  # larger than the consumer's frame limit
                exc = OverloadedError("broker.FrameTooLarge", f"a stream item cannot be sent: {exc}")
            self._finish(Failure(exc))  # the item cannot be sent: the stream fails there, in order
            return False
        body = len(frame) - 4
        self.items -= len(batch)
        self.nbytes -= body
        self.per_item = max(1, body // len(batch))
        session._queue(frame)
        return True

    def _finish(self, failure: Failure | None) -> None:
        """The iterator ended (or failed): tell the consumer, forget the stream."""
        session = self.tables.session
        self.ended = True
        self.tables.produced.pop(self.stream_id, None)
        info = None
        if failure is not None:
            info = to_failure(failure.value, session.registry, failure.get_traceback() if session.debug else None)
            if info.kind == CANCELLED:  # "cancelled" means the consumer's cancel (§17.3)
                info = FailureInfo(FAILED, info.type_name, info.message, info.traceback)
            if session.debug or not isinstance(failure.value, Exception):
                log.info("%r: stream %d failed: %s", session, self.stream_id, failure.value)
        session._queue_message(StreamEnd(self.stream_id, info))

    def stop(self) -> None:
        """Cancelled by the consumer, or the connection ended: close the iterator, once."""
        if self.ended:
            return
        self.ended = True
        self.tables.produced.pop(self.stream_id, None)
        pulling, self.pulling = self.pulling, None
        if pulling is not None:
            pulling.cancel()
        iterator = self.iterator
        try:
            if self.is_async and hasattr(iterator, "aclose"):
                d = ensure_deferred(_aclose(iterator))
                d.add_errback(lambda f: log.warning("closing stream %d's iterator failed: %s", self.stream_id, f.value))
            elif hasattr(iterator, "close"):
                iterator.close()
        except Exception:
            log.exception("closing stream %d's iterator failed", self.stream_id)


class RemoteStream:
    """The consumer's side of a peer's stream: an async iterator of its items, in order.

    ``async for item in stream`` (each step a Deferred); the iteration ends when the producer
    ends the stream, raises what the producer's iterator raised (after the items before it), and
    raises :class:`broker.ConnectionLost` if the connection ends first. :meth:`cancel` stops it
    from this end. :attr:`buffered` is how many items wait here (never more than the window).
    """

    __slots__ = ("_tables", "stream_id", "window_items", "window_bytes", "_items", "_batches",
                 "_credit_items", "_credit_bytes", "_returned_items", "_returned_bytes", "_ending",
                 "_waiters", "__weakref__")

    def __init__(self, tables: StreamTables, stream_id: int, window_items: int, window_bytes: int) -> None:
        self._tables: StreamTables | None = tables
        self.stream_id = stream_id
        self.window_items = window_items
        self.window_bytes = window_bytes
        self._items: deque[Any] = deque()
        self._batches: deque[list[int]] = deque()  # [items left, body bytes] per batch received
        self._credit_items = 0  # what the producer may still send
        self._credit_bytes = 0
        self._returned_items = 0  # taken by the application, not yet given back as credit
        self._returned_bytes = 0
        self._ending: BaseException | None = None  # StopAsyncIteration when done
        self._waiters: deque[Deferred[Any]] = deque()

    # -- the application's side --

    def __aiter__(self) -> RemoteStream:
        return self

    def __anext__(self) -> Deferred[Any]:
        """A Deferred of the next item (fails with StopAsyncIteration at the end)."""
        if self._items and not self._waiters:
            return succeed(self._take())
        if self._ending is not None and not self._items:
            return fail(self._ending)
        d: Deferred[Any] = Deferred(lambda d: self._forget_waiter(d))
        self._waiters.append(d)
        if self._tables is not None:
            self._tables.waiting[self.stream_id] = self  # kept while someone waits (GC roots)
        return d

    def next(self) -> Deferred[Any]:
        """The same as ``__anext__``: the next item, or StopAsyncIteration."""
        return self.__anext__()

    @property
    def buffered(self) -> int:
        """Items received and not yet taken."""
        return len(self._items)

    @property
    def buffered_bytes(self) -> int:
        """Bytes (of stream_items bodies) received whose items are not all taken yet."""
        return sum(nbytes for _, nbytes in self._batches)

    @property
    def ended(self) -> bool:
        return self._ending is not None

    def cancel(self) -> None:
        """Stop the stream from this end: the producer stops, nothing more arrives; a pending
        step fails with CancelledError, later ones end the iteration."""
        tables, self._tables = self._tables, None
        if self._ending is None:
            self._ending = StopAsyncIteration()
        self._items.clear()
        self._batches.clear()
        if tables is not None:
            tables.consumed.pop(self.stream_id, None)
            tables.waiting.pop(self.stream_id, None)
            tables.session._queue_message(StreamEnd(self.stream_id, _CANCEL_INFO))
        waiters, self._waiters = self._waiters, deque()
        for d in waiters:
            d.errback(Failure(CancelledError(f"stream {self.stream_id} was cancelled")))

    def aclose(self) -> Deferred[None]:
        """``aclose()`` of the async iterator protocol: cancels the stream."""
        self.cancel()
        return succeed(None)

    def blocking(self, run: Callable[[Callable[[], Deferred[Any]]], Any]) -> BlockingStream:
        """A plain iterator over this stream. ``run(f)`` calls ``f`` where the session lives
        and blocks until the Deferred it returns fires, returning its result or raising (the
        blocking client passes its own)."""
        return BlockingStream(self, run)

    def __repr__(self) -> str:
        state = "ended" if self._ending is not None else "open"
        return f"<RemoteStream {self.stream_id} {state}, {len(self._items)} buffered>"

    # -- the session's side --

    def _take(self) -> Any:
        item = self._items.popleft()
        head = self._batches[0]
        head[0] -= 1
        self._returned_items += 1
        if head[0] == 0:
            self._batches.popleft()
            self._returned_bytes += head[1]
        if self._returned_items * 2 >= self.window_items or self._returned_bytes * 2 >= self.window_bytes:
            self._grant(self._returned_items, self._returned_bytes)
            self._returned_items = self._returned_bytes = 0
        return item

    def _grant(self, items: int, nbytes: int) -> None:
        tables = self._tables
        if tables is None or self._ending is not None or (items == 0 and nbytes == 0):
            return
        self._credit_items += items
        self._credit_bytes += nbytes
        tables.session._queue_message(StreamCredit(self.stream_id, items, nbytes))

    def _received(self, items: list[Any], nbytes: int) -> str | None:
        """A stream_items message; why it breaks the credit, if it does (the peer's fault)."""
        if len(items) > self._credit_items or self._credit_bytes <= 0:
            return (f"stream {self.stream_id}: {len(items)} items sent with credit for "
                    f"{self._credit_items} items and {self._credit_bytes} bytes")
        self._credit_items -= len(items)
        self._credit_bytes -= nbytes
        waiters = self._waiters
        self._items.extend(items)
        self._batches.append([len(items), nbytes])
        while waiters and self._items:
            waiters.popleft().callback(self._take())
        if not waiters and self._tables is not None:
            self._tables.waiting.pop(self.stream_id, None)
        return None

    def _ended(self, ending: BaseException) -> None:
        """The producer ended the stream, or the connection went: after the buffered items."""
        if self._ending is not None:
            return
        self._ending = ending
        tables, self._tables = self._tables, None
        if tables is not None:
            tables.consumed.pop(self.stream_id, None)
            tables.waiting.pop(self.stream_id, None)
        waiters, self._waiters = self._waiters, deque()
        for d in waiters:  # they wait: so nothing is buffered
            d.errback(Failure(ending))

    def _forget_waiter(self, d: Deferred[Any]) -> None:
        """A step's Deferred was cancelled: it waits no more."""
        try:
            self._waiters.remove(d)
        except ValueError:
            pass
        if not self._waiters and self._tables is not None:
            self._tables.waiting.pop(self.stream_id, None)


class BlockingStream:
    """A RemoteStream as a plain iterator: ``for item in stream``; ``close()`` cancels it."""

    __slots__ = ("_stream", "_run")

    def __init__(self, stream: RemoteStream, run: Callable[[Callable[[], Deferred[Any]]], Any]) -> None:
        self._stream = stream
        self._run = run

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        try:
            return self._run(self._stream.next)
        except StopAsyncIteration:
            raise StopIteration from None

    @property
    def buffered(self) -> int:
        return self._stream.buffered

    def close(self) -> None:
        """Cancel the stream (the producer stops)."""
        if not self._stream.ended:
            self._run(self._stream.aclose)

    def __enter__(self) -> BlockingStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StreamTables:
    """Both sides' streams on one connection (made on first use)."""

    __slots__ = ("session", "produced", "consumed", "waiting", "_last_id", "_unconfirmed", "_dropped")

    def __init__(self, session: Session) -> None:
        self.session = session
        self.produced: dict[int, _Producer] = {}
        self.consumed: dict[int, weakref.ref[RemoteStream]] = {}
        self.waiting: dict[int, RemoteStream] = {}  # streams the application awaits: kept alive
        self._last_id = 0
        self._unconfirmed: list[_Producer] = []
        self._dropped: deque[int] = deque()  # RemoteStreams the GC took, to cancel from the loop

    # -- producing --

    def to_wire(self, obj: Any) -> StreamRef:
        """Encoder hook: ``obj`` becomes a stream of ours; it starts when credit arrives."""
        session = self.session
        if FEATURE_STREAMS not in session.negotiated:
            raise UnimplementedError("broker.StreamsNotNegotiated",
                                     "the caller does not support streams (its hello lacks \"streams\"); "
                                     "send a list instead, or upgrade the peer")
        limits = session.limits
        window_items, window_bytes = limits.stream_window_items, limits.stream_window_bytes
        source = obj
        if type(obj) is Stream:
            source = obj.source
            window_items = obj.window_items or window_items
            window_bytes = obj.window_bytes or window_bytes
        if len(self.produced) >= limits.max_live_references:
            raise OverloadedError("broker.TooManyStreams", f"{len(self.produced)} streams open; the limit is {limits.max_live_references}")
        is_async = hasattr(source, "__aiter__")
        iterator = source.__aiter__() if is_async else iter(source)
        stream_id = self._last_id = self._last_id + 1
        producer = _Producer(self, stream_id, iterator, is_async)
        self.produced[stream_id] = producer
        self._unconfirmed.append(producer)
        return StreamRef(stream_id, window_items, window_bytes)

    def undo_sends(self) -> None:
        """The message carrying them could not be encoded: those streams never existed."""
        unconfirmed, self._unconfirmed = self._unconfirmed, []
        for producer in unconfirmed:
            producer.stop()

    def confirm_sends(self) -> None:
        if self._unconfirmed:
            self._unconfirmed = []

    # -- consuming --

    def received(self, ref: StreamRef) -> RemoteStream:
        """Decoder hook: a peer's stream; grant the first credit at once."""
        limits = self.session.limits
        if len(self.consumed) >= limits.max_live_references:
            self.session._queue_message(StreamEnd(ref.stream_id, _CANCEL_INFO))
            raise wire.Refused(OverloadedError("broker.TooManyStreams", f"the limit of {limits.max_live_references} open streams is reached"))
        window_items = min(limits.stream_window_items, ref.window_items)
        window_bytes = min(limits.stream_window_bytes, ref.window_bytes)
        stream = RemoteStream(self, ref.stream_id, window_items, window_bytes)
        old = self.consumed.get(ref.stream_id)
        if old is not None and (previous := old()) is not None:
            previous._ended(ConnectionLost(f"the peer reused stream id {ref.stream_id}"))
        self.consumed[ref.stream_id] = weakref.ref(stream, self._make_dropped(ref.stream_id))
        stream._grant(window_items, window_bytes)
        return stream

    def _make_dropped(self, stream_id: int) -> Callable[[weakref.ref[RemoteStream]], None]:
        def dropped(_ref: weakref.ref[RemoteStream]) -> None:  # in the GC, any thread: queue only
            self._dropped.append(stream_id)
            try:
                self.session._release_due()
            except RuntimeError:
                pass
        return dropped

    def flush_dropped(self) -> None:
        """Cancel the streams whose RemoteStream the application dropped (from the loop)."""
        dropped = self._dropped
        while dropped:
            stream_id = dropped.popleft()
            ref = self.consumed.get(stream_id)
            if ref is not None and ref() is None:
                del self.consumed[stream_id]
                self.session._queue_message(StreamEnd(stream_id, _CANCEL_INFO))

    def connection_ended(self, lost: ConnectionLost) -> None:
        """Every consumer fails with ``lost``; every producer's iterator is closed."""
        for producer in list(self.produced.values()):
            producer.stop()
        self.produced.clear()
        consumed, self.consumed = self.consumed, {}
        self.waiting = {}
        for ref in consumed.values():
            stream = ref()
            if stream is not None:
                each = ConnectionLost(str(lost), lost.cause, lost.goodbye_kind)
                each.__cause__ = lost.__cause__
                stream._ended(each)


def handle_items(session: Session, message: StreamItems) -> None:
    """stream_items: the items of a stream we consume (ignored if we cancelled it)."""
    tables = session._streams
    ref = tables.consumed.get(message.stream_id) if tables is not None else None
    stream = ref() if ref is not None else None
    if stream is None:
        return  # crossed our cancel; its refs are released with the values
    wrong = stream._received(message.items, message.nbytes)
    if wrong is not None:
        session._protocol_error(wire.MalformedMessage(f"the peer broke its stream credit: {wrong}"))


def handle_end(session: Session, message: StreamEnd) -> None:
    """stream_end: a cancel of a stream we produce, or the end of one we consume."""
    tables = session._streams
    if tables is None:
        return
    if message.is_cancel:
        producer = tables.produced.get(message.stream_id)
        if producer is not None:
            producer.stop()
        return
    ref = tables.consumed.get(message.stream_id)
    stream = ref() if ref is not None else None
    if stream is None:
        tables.consumed.pop(message.stream_id, None)
        return
    ending: BaseException = StopAsyncIteration()
    if message.failure is not None:
        ending = from_failure(message.failure, session.registry)
    stream._ended(ending)


def handle_credit(session: Session, message: StreamCredit) -> None:
    """stream_credit: more room for a stream we produce; pump it."""
    tables = session._streams
    producer = tables.produced.get(message.stream_id) if tables is not None else None
    if producer is None:
        return  # it ended (or was never ours): the credit crossed our stream_end
    producer.items += message.items
    producer.nbytes += message.nbytes
    producer.pump()
