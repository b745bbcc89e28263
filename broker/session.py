"""One connection's broker: handshake, object tables, calls out and calls in.

Sans-I/O in the manner of h11, one layer up from the codec. Nothing here touches a socket, a
thread or the time; the I/O adapter (``broker/protocol.py``) drives it:

* **Bytes in**: :meth:`Session.receive_data` (a copy) or :meth:`Session.get_buffer` /
  :meth:`Session.buffer_updated` (the transport receives straight into the decoder's buffer)
  only buffer; :meth:`Session.process` then handles what arrived, a bounded number of messages
  at a time if the adapter asks, and says whether more is waiting.
* **Bytes out** are queued; :meth:`Session.data_to_send` takes them. Whatever is queued outside
  :meth:`Session.process` (an answer computed later, a call the application made, a close) is
  announced by the ``on_output`` callable, so the adapter knows to come and take it: the adapter
  decides when to write (its flush policy).
* **Closing**: when the session wants the connection closed, its state is CLOSING and
  :attr:`Session.close_reason` says why; the adapter writes what is queued (the goodbye last),
  closes the transport, and reports :meth:`Session.connection_lost`.
* **Releases**: proxies die in the garbage collector, in any thread; the session then calls
  ``release_due`` (from that thread) and the adapter arranges :meth:`Session.flush_releases` on
  its own thread.

The lifecycle (HANDSHAKE, OPEN, CLOSING, CLOSED) is the table in :mod:`broker.lifecycle`;
every lifecycle event goes through :meth:`Session._advance`. Exceptions travel as failures
through :mod:`broker.failures`.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from net.defer import CancelledError, Deferred, Failure, fail

from . import pipelining, wire
from .cache import Cacheable, CacheTables, handle_release, handle_update
from . import streams
from .diagnosis import SNIFF_BYTES, Ending, not_pbroker, why_lost
from .errors import (
    BrokerError,
    ConnectionLost,
    HandshakeError,
    InvalidReferenceError,
    LimitExceeded,
    OverloadedError,
    RemoteError,
    UnimplementedError,
    UnregisteredCopyError,
)
from .failures import from_failure, to_failure
from . import call_options
from .flavors import CopyRegistry, Referenceable, Root, default_registry, state_of
from .lifecycle import ACTIVE, Event, State, advance
from .messages import (
    CALL_NO_ANSWER,
    CALL_TARGET_IS_QUESTION,
    DEFAULT_MAX_CONTAINER_LENGTH,
    FEATURE_CACHE,
    FEATURE_DECREFS,
    FEATURE_HEARTBEAT,
    FEATURE_PIPELINING,
    FEATURE_STREAMS,
    HEARTBEAT_DEAD_AFTER,
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_FRAME_SIZE,
    Answer,
    CacheRef,
    CacheRelease,
    CacheUpdate,
    Call,
    Cancel,
    CopyState,
    Decref,
    Decrefs,
    Error,
    ExportedRef,
    FailureInfo,
    Finish,
    Goodbye,
    Hello,
    Message,
    Ping,
    Pong,
    ReturnedRef,
    StreamCredit,
    StreamEnd,
    StreamItems,
    StreamRef,
)
from .tables import EMPTY_MAP, ExportTable, ImportTable

__all__ = ["Session", "Limits", "RemoteReference", "AnonymousPerspective", "State"]

log = logging.getLogger(__name__)
#: Exceptions raised by remote methods (WARNING, with the caller and the traceback) and refused
#: calls (INFO). Its own name so operators can route or silence it: docs/ARCHITECTURE.md "Logging".
calls_log = logging.getLogger("broker.calls")

_UNBOUNDED = sys.maxsize


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-connection limits; exceeding one gives the caller a clear error, never a hang."""

    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    max_outstanding_calls: int = 10_000
    #: Calls of the peer running here at once, one-way calls included.
    max_running_calls: int = 10_000
    max_live_references: int = 100_000
    max_depth: int = DEFAULT_MAX_DEPTH
    max_container_length: int = DEFAULT_MAX_CONTAINER_LENGTH
    #: Seconds a call may wait for its answer before it is cancelled (on the peer too) and fails
    #: with TimeoutError; None waits as long as the connection lives. Needs a clock (the reactor).
    #: With "call-options" negotiated it also travels, so the peer stops the call (PROTOCOL.md §18).
    call_timeout: float | None = None
    # What the I/O adapter (broker/protocol.py) enforces; docs/SECURITY.md says why each.
    #: Unsent bytes above which we stop reading from the peer (it is not taking our answers);
    #: reading resumes below a quarter of it.
    output_high_water: int = 1024 * 1024
    #: A peer that takes none of our output for overload_timeout seconds while more than
    #: max_unsent_bytes wait for it is disconnected (goodbye "overloaded").
    max_unsent_bytes: int = 16 * 1024 * 1024
    overload_timeout: float = 30.0
    #: Seconds a frame may take from its first byte to its last (a trickling peer is dropped).
    frame_timeout: float = 30.0
    #: Seconds without a byte from the peer after which the connection is closed; None: never.
    idle_timeout: float | None = None
    #: Heartbeat (PROTOCOL.md §5.2, when both hellos named "heartbeat"): a peer silent this long
    #: is declared dead and every pending call fails; pings go out after a third of it. None: off.
    dead_after: float | None = HEARTBEAT_DEAD_AFTER
    #: Streams (PROTOCOL.md §17): the most items and bytes of one stream in flight, either way.
    stream_window_items: int = streams.DEFAULT_WINDOW_ITEMS
    stream_window_bytes: int = streams.DEFAULT_WINDOW_BYTES


class AnonymousPerspective:
    """The identity of a connection that has not logged in."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<anonymous>"


#: Every session's perspective until it logs in (it has no state: one for all).
_ANONYMOUS: Final = AnonymousPerspective()
#: The optional features every session implements and announces (one tuple for all).
_FEATURES: Final = (FEATURE_HEARTBEAT, FEATURE_DECREFS, call_options.FEATURE_CALL_OPTIONS, FEATURE_PIPELINING, FEATURE_CACHE,
                    FEATURE_STREAMS)
#: The peers' hellos, interned: nearly every peer sends the same one, and each kept its own copy
#: (its strings and ints included) for as long as it stayed connected. Bounded.
_HELLOS: Final[dict[Hello, Hello]] = {}
_SHARED_HELLOS: Final = 64


class RemoteReference:
    """A proxy for an object the peer owns; ``call_remote`` returns a Deferred (awaitable).

    Dropping the last proxy releases the peer's object: the release is queued here and sent by
    the session from the event loop, never from the garbage collector.
    """

    __slots__ = ("_session", "object_id", "__weakref__")

    def __init__(self, session: Session, object_id: int) -> None:
        self._session = session
        self.object_id = object_id

    def call_remote(self, _name: str, /, *args: Any, **kwargs: Any) -> pipelining.Promise:
        """Call ``remote_<_name>(*args, **kwargs)`` on the peer's object.

        The Deferred is a :class:`~broker.pipelining.Promise`: ``call_remote`` on it calls the
        object the answer will be, without waiting for it (PROTOCOL.md §15)."""
        d = self._session.call(self.object_id, _name, args, kwargs)
        return d if isinstance(d, pipelining.Promise) else pipelining._as_promise(self._session, d)

    def options(self, timeout: float | None = None, metadata: Mapping[str, str] | None = None) -> call_options.OptionsView:
        """This reference with call options (PROTOCOL.md §18): ``ref.options(timeout=5,
        metadata={...}).call_remote("name", ...)``; never the remote method's own kwargs."""
        return call_options.OptionsView(self, call_options.CallOptions(timeout, metadata or {}))

    def call_remote_no_answer(self, _name: str, /, *args: Any, **kwargs: Any) -> None:
        """A one-way call: no answer is sent, errors are logged by the peer.

        Raises at once if the call cannot be sent (arguments that cannot be encoded, a closed
        connection): nothing would report it later.
        """
        self._session.call_no_answer(self.object_id, _name, args, kwargs)

    def notify_on_disconnect(self, callback: Callable[[RemoteReference], object]) -> None:
        """Run ``callback(self)`` once when the connection closes."""
        self._session.add_disconnect_callback(self, callback)

    def dont_notify_on_disconnect(self, callback: Callable[[RemoteReference], object]) -> None:
        self._session.remove_disconnect_callback(self, callback)

    @property
    def session(self) -> Session:
        return self._session

    def __repr__(self) -> str:
        return f"<RemoteReference {self.object_id} via {self._session!r}>"


def _nothing() -> None:
    pass


class _QuietLog:
    """Log the first few of a kind of peer mistake, then only every 10th, 100th, 1000th...

    A peer sending 100,000 bogus decrefs must not cost 100,000 log lines (nor their time): this
    keeps the first ``FIRST`` lines of each kind and then one line per power of ten with the
    count, and :meth:`summary` gives the total when the connection ends. Counting, not a clock,
    so it is deterministic.
    """

    FIRST = 3

    __slots__ = ("_logger", "_level", "counts")

    def __init__(self, logger: logging.Logger, level: int) -> None:
        self._logger = logger
        self._level = level
        self.counts: dict[str, int] = {}

    def log(self, kind: str, owner: object, text: str, *args: object) -> None:
        n = self.counts[kind] = self.counts.get(kind, 0) + 1
        if n <= self.FIRST:
            self._logger.log(self._level, "%r: " + text, owner, *args)
        elif n >= 10 and str(n).rstrip("0") == "1":  # 10, 100, 1000, ...
            self._logger.log(self._level, "%r: " + text + " (%d times so far; most not logged)", owner, *args, n)

    def summary(self, owner: object) -> None:
        quiet = {kind: n for kind, n in self.counts.items() if n > self.FIRST}
        if quiet:
            said = ", ".join(f"{kind} x{n}" for kind, n in sorted(quiet.items()))
            self._logger.log(self._level, "%r: peer mistakes while connected: %s", owner, said)


pipelining._remote_reference = RemoteReference  # it cannot import this module (see there)


class Session:
    """The broker half of one connection. See the module docstring for how it is driven.

    One per connection, and most connections are idle most of the time: slots, and what only
    some connections need (the one-way calls running, the proxies to release, disconnect
    notices, the mistake logs, the import table) is made on first use.
    """

    __slots__ = (
        "peer", "peer_certificate", "peer_credentials", "side", "registry", "limits", "debug", "_name", "state",
        "close_reason", "lost", "perspective", "peer_limits", "ready", "_clock", "_on_output",
        "_release_due", "_outbox", "_outbox_bytes", "_processing", "_stopped_early",
        "frames_received", "_quiet", "_quiet_calls", "_first_bytes", "_lent", "exports",
        "_imports", "questions", "answers", "_one_way_running", "_last_request_id",
        "_dead_proxies", "_release_scheduled", "_disconnect_callbacks", "_decoder", "_last_ping",
        "_encoder", "_bootstrap_ref", "_pipeline", "_caches", "_streams", "refs_received", "__weakref__",
    )

    def __init__(
        self,
        *,
        root: Referenceable | None = None,
        registry: CopyRegistry | None = None,
        limits: Limits = Limits(),
        debug: bool = False,
        name: str = "",
        peer: Any = None,
        peer_certificate: Any = None,
        peer_credentials: Any = None,
        side: str = "",
        clock: Any = None,
        on_output: Callable[[], None] = _nothing,
        release_due: Callable[[], None] = _nothing,
    ) -> None:
        #: The peer's address (``transport.get_peer()``) and TLS client certificate, if any:
        #: login needs them (throttling per host, certificate login); the session never does.
        self.peer = peer
        self.peer_certificate = peer_certificate
        #: A Unix peer's (pid, uid, gid) (``net.unix.PeerCredentials``), else None: login
        #: throttles a Unix socket's clients per uid, as it does TCP's per host.
        self.peer_credentials = peer_credentials
        #: "client" or "server" (or "" when unknown): only to word error messages.
        self.side = side
        self.registry = registry or default_registry
        self.limits = limits
        self.debug = debug
        self._name = name  # see name
        self.state = State.HANDSHAKE
        #: Why this side wants the connection closed, once it is CLOSING (None: an orderly close).
        self.close_reason: BaseException | None = None
        #: Why the connection ended, once it has: the ConnectionLost its pending calls failed with.
        self.lost: ConnectionLost | None = None
        self.perspective: Any = _ANONYMOUS
        self.peer_limits: Hello | None = None
        self.ready: Deferred[RemoteReference] = Deferred()
        self._clock = clock  # anything with call_later(); only used for limits.call_timeout
        self._on_output = on_output
        self._release_due = release_due
        self._outbox: list[bytes | bytearray] | None = None  # frames queued, oldest first
        self._outbox_bytes = 0
        self._processing = False  # inside process(): the adapter writes when it returns
        self._stopped_early = False  # process() left complete messages buffered
        #: Messages (frames) decoded so far, good or bad: how the adapter sees frames complete.
        self.frames_received = 0
        self._quiet: _QuietLog | None = None  # peer mistakes (bogus decrefs), made at the first
        self._quiet_calls: _QuietLog | None = None  # refused one-way calls
        self._first_bytes = b""  # the first bytes received, to name what a non-pbroker peer speaks
        self._lent: memoryview | None = None  # get_buffer()'s view while sniffing them
        self.exports = ExportTable(root)  # the root's object for this connection comes last, below
        self._imports: ImportTable[RemoteReference] | None = None  # see imports
        #: request id -> (Deferred, target object id, method name) of each call awaiting its answer
        #: (the shared empty EMPTY_MAP until the first call)
        self.questions: dict[int, tuple[Deferred[Any], int, str]] = EMPTY_MAP
        #: request id -> the Deferred of each call of the peer running here (EMPTY_MAP likewise)
        self.answers: dict[int, Deferred[Any]] = EMPTY_MAP
        self._one_way_running: set[Deferred[Any]] | None = None
        self._last_request_id = 0
        # Ids of proxies that died, for flush_releases; made with the first proxy (_make_proxy),
        # in this session's thread, before any proxy can die in another.
        self._dead_proxies: deque[int] | None = None
        self._release_scheduled = False
        self._disconnect_callbacks: list[tuple[RemoteReference, Callable[[RemoteReference], object]]] | None = None
        self._pipeline: pipelining.Pipeline | None = None  # "pipelining" state, made on first use
        self._caches: CacheTables | None = None  # "cache" tables (broker/cache.py), made on first use
        self._streams: streams.StreamTables | None = None  # "streams" (broker/streams.py), made on first use
        self._decoder = wire.WireDecoder(
            max_frame_size=limits.max_frame_size,
            max_depth=limits.max_depth,
            max_container_length=limits.max_container_length,
            resolve=self._resolve,
            features=_FEATURES,
        )
        self._last_ping = 0  # the nonce of the last ping sent
        self._encoder = wire.WireEncoder(default=self._to_wire)
        self._bootstrap_ref: RemoteReference | None = RemoteReference(self, 0)  # None once closed
        #: Sender refs decoded so far: a blocking caller whose answer came with none wraps nothing.
        self.refs_received = 0
        hello = self._encoder.encode(self._decoder.hello())  # first out; the adapter takes it
        self._outbox = [hello]
        self._outbox_bytes = len(hello)
        if isinstance(root, Root):  # last: it may use the session (say on_close, for a logout)
            self.exports = ExportTable(root.root_object(self))

    def __repr__(self) -> str:
        return f"<Session {self.name or id(self)} {self.state.value}>"

    @property
    def name(self) -> str:
        """What logs call this connection: the name it was given, else the peer's host:port."""
        peer = self.peer
        if self._name or peer is None:
            return self._name
        return f"{getattr(peer, 'host', peer)}:{getattr(peer, 'port', '')}"  # made when asked: rarely

    @property
    def imports(self) -> ImportTable[RemoteReference]:
        """The peer's objects we hold proxies for (made when the first one arrives)."""
        imports = self._imports
        if imports is None:
            imports = self._imports = ImportTable(self._proxy_died)
        return imports

    def trim(self) -> None:
        """Let go of buffers kept for the next big frame (the adapter calls this once the
        connection has been idle a while): an idle session then holds no buffer."""
        self._decoder.trim()
        self._encoder.trim()

    def _advance(self, event: Event) -> State:
        """Move the lifecycle on by ``event`` (the one place states are checked); the old state."""
        old = self.state
        self.state = advance(old, event)
        return old

    # -- bytes in --------------------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Buffer bytes from the peer (a copy); :meth:`process` handles them."""
        self._check_receiving()
        if self.state is State.CLOSING:
            return  # nothing more is dispatched: do not even keep it
        if len(self._first_bytes) < SNIFF_BYTES and self.state is State.HANDSHAKE:
            self._sniff(data)
        self._decoder.receive_data(data)

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """Spare room in the decoder's buffer for the transport to receive into (no copy)."""
        self._check_receiving()
        view = self._decoder.get_buffer(sizehint)
        if len(self._first_bytes) < SNIFF_BYTES and self.state is State.HANDSHAKE:
            self._lent = view
        return view

    def buffer_updated(self, nbytes: int) -> None:
        """``nbytes`` were received into the view :meth:`get_buffer` returned."""
        lent, self._lent = self._lent, None
        if self.state is State.CLOSING:
            return  # the bytes stay in spare room, unread
        if lent is not None:
            self._sniff(lent[:nbytes])
        self._decoder.buffer_updated(nbytes)

    def _check_receiving(self) -> None:
        if self.state is State.CLOSED:
            raise wire.LocalProtocolError("bytes received after connection_lost(): the I/O layer's mistake")

    def _sniff(self, data: bytes | bytearray | memoryview) -> None:
        have = self._first_bytes
        self._first_bytes = have + bytes(data[: SNIFF_BYTES - len(have)])

    def process(self, max_messages: int = _UNBOUNDED, max_output: int = _UNBOUNDED) -> bool:
        """Handle the complete messages buffered; True if it stopped early with more waiting.

        It stops after ``max_messages`` messages or once ``max_output`` bytes are queued, so the
        adapter can write a chunk (the peer starts on it while we go on) or let other
        connections have the loop.
        """
        decoder = self._decoder
        handled = 0
        self._processing = True
        self._stopped_early = False
        try:
            while self.state in ACTIVE:
                if handled >= max_messages or self._outbox_bytes >= max_output:
                    self._stopped_early = more = decoder.buffered > 0
                    return more
                try:
                    message = decoder.next_message()
                except wire.MessageRefused as refused:
                    self._refused(refused.message, refused.reason)
                except wire.RemoteProtocolError as exc:
                    self._protocol_error(exc)
                else:
                    if message is wire.NEED_DATA or message is wire.CLOSED:
                        return False
                    self._dispatch(message)
                handled += 1
                self.frames_received += 1
            return False
        finally:
            if self._pipeline is not None and self._pipeline.finishing:
                pipelining.flush_finish(self)  # one finish for the answers of this round (§15.3)
            self._processing = False

    # -- bytes out -------------------------------------------------------------------------------

    def data_to_send(self) -> bytes | bytearray:
        """Everything queued for the peer, in order (empty if nothing); the caller writes it."""
        outbox = self._outbox
        if not outbox:
            return b""
        self._outbox = None
        self._outbox_bytes = 0
        return outbox[0] if len(outbox) == 1 else b"".join(outbox)

    @property
    def negotiated(self) -> frozenset[str]:
        """The features both hellos named (none before the peer's hello arrives)."""
        return self._decoder.negotiated

    def ping(self) -> None:
        """Queue a ping (the heartbeat's question; the adapter decides when)."""
        if self.state is State.OPEN and FEATURE_HEARTBEAT in self._decoder.negotiated:
            nonce = self._last_ping = self._last_ping + 1
            self._queue_message(Ping(nonce))

    @property
    def pending_messages(self) -> bool:
        """The last :meth:`process` stopped early: complete messages wait for the next one."""
        return self._stopped_early and self.state in ACTIVE

    @property
    def buffered_bytes(self) -> int:
        """Bytes received and not yet decoded (a frame in progress, or messages not processed)."""
        return self._decoder.buffered if self.state in ACTIVE else 0

    @property
    def output_frames(self) -> int:
        """Frames queued and not yet taken by :meth:`data_to_send`."""
        outbox = self._outbox
        return len(outbox) if outbox else 0

    @property
    def output_bytes(self) -> int:
        """Bytes queued and not yet taken by :meth:`data_to_send`."""
        return self._outbox_bytes

    def _queue(self, frame: bytes | bytearray) -> None:
        """Queue a frame while we may still send (HANDSHAKE, OPEN); tell the adapter if idle."""
        if self.state not in ACTIVE:
            return  # after a goodbye nothing more is sent
        outbox = self._outbox  # _push, inlined: once per message sent
        if outbox is None:
            self._outbox = [frame]
        else:
            outbox.append(frame)
        self._outbox_bytes += len(frame)
        if not self._processing:
            self._on_output()

    def _push(self, frame: bytes | bytearray) -> None:
        outbox = self._outbox
        if outbox is None:
            self._outbox = [frame]
        else:
            outbox.append(frame)
        self._outbox_bytes += len(frame)

    def _queue_message(self, message: Message) -> None:
        """Queue a message with no references in it (errors, cancels, releases)."""
        if self.state not in ACTIVE:
            return
        try:
            frame = self._encoder.encode(message)
        except wire.MessageTooLarge as exc:
            # Only a peer announcing an absurdly small max_frame_size gets here.
            self._begin_closing(Event.CLOSE, ("local", f"cannot answer the peer: {exc}", None), exc, None)
            return
        self._queue(frame)

    # -- lifecycle -------------------------------------------------------------------------------

    def disconnect(self, reason: BaseException | None = None, goodbye_kind: str = "normal") -> None:
        """Close the connection: a goodbye if open; pending calls fail with ConnectionLost.

        ``reason`` (say a TimeoutError) is why, when this is not an orderly close, and
        ``goodbye_kind`` what the goodbye tells the peer (a failure kind, e.g. "overloaded").
        """
        if isinstance(reason, TimeoutError):
            ending: Ending = ("timeout", str(reason), None)
        elif reason is not None:
            ending = ("local", f"closed on this side: {reason}", None)
        else:
            ending = ("local", "this side closed the connection (disconnect())", None)
        said = "" if reason is None else str(reason)[:1000]
        self._begin_closing(Event.CLOSE, ending, reason, Goodbye(goodbye_kind, said))

    def _protocol_error(self, exc: wire.RemoteProtocolError) -> None:
        """The peer broke the protocol: say why in a goodbye, log it, close this connection only."""
        handshake_failure = None
        if self.state is State.HANDSHAKE:
            handshake_failure = HandshakeError(not_pbroker(exc, side=self.side, first_bytes=self._first_bytes, peer=self.peer))
            handshake_failure.__cause__ = exc
            log.warning("%r: closing, peer sent bad data in the handshake: %s", self, handshake_failure)
        elif self.state is State.OPEN:
            log.warning("%r: closing, peer sent bad data: %s", self, exc)
        ending: Ending = ("protocol", f"the peer broke the protocol: {exc}", None)
        self._begin_closing(Event.PROTOCOL_ERROR, ending, exc, Goodbye(exc.kind, str(exc)[:1000]),
                            handshake_failure, goodbye_in_handshake=True)

    def _handle_goodbye(self, goodbye: Goodbye) -> None:
        said = f"{goodbye.kind}: {goodbye.message}" if goodbye.message else goodbye.kind
        log.info("%r: peer said goodbye (%s)", self, said)
        handshake_failure = None
        if self.state is State.HANDSHAKE:
            handshake_failure = HandshakeError(f"the peer refused the connection: {said}")
        reason = ConnectionLost(f"the peer closed the connection: {said}", "goodbye", goodbye.kind)
        ending: Ending = ("goodbye", f"the peer said goodbye ({said})", goodbye.kind)
        self._begin_closing(Event.GOODBYE, ending, reason, None, handshake_failure)

    def _begin_closing(self, event: Event, ending: Ending, reason: BaseException | None,
                       goodbye: Goodbye | None, handshake_failure: BaseException | None = None,
                       *, goodbye_in_handshake: bool = False) -> None:
        """Enter CLOSING (if not there already): goodbye last, pending calls failed, adapter told."""
        old = self._advance(event)
        if old not in ACTIVE:
            return  # already closing or closed: nothing more to do
        if goodbye is not None and (old is State.OPEN or goodbye_in_handshake):
            try:
                frame = self._encoder.encode(goodbye)
            except wire.MessageTooLarge:
                pass  # the peer's limit is too small even for this: close without it
            else:
                self._push(frame)  # state is CLOSING now: _queue would refuse it
        self.close_reason = reason
        lost = self._lost(ending, reason)
        self._stop_everything(lost)
        if old is State.HANDSHAKE:
            self.ready.errback(Failure(handshake_failure or lost))
        if not self._processing:
            self._on_output()

    def connection_lost(self, reason: BaseException | None = None) -> None:
        """The transport is gone: fail what is pending, drop the tables, notify once."""
        old = self._advance(Event.LOST)
        if old is State.CLOSED:
            return
        self._outbox = None
        self._outbox_bytes = 0
        for quiet in (self._quiet, self._quiet_calls):
            if quiet is not None:
                quiet.summary(self)
        if old in ACTIVE:  # it ended without this side knowing why
            handshaking = old is State.HANDSHAKE
            ending = why_lost(reason, side=self.side, handshaking=handshaking, first_bytes=self._first_bytes)
            lost = self._lost(ending, reason)
            self._stop_everything(lost)
            if handshaking:
                self.ready.errback(Failure(self._handshake_failure(reason, lost)))
        self._let_go()

    def _let_go(self) -> None:
        """Closed: drop what refers back to us or to the adapter, so refcounting frees us at once
        (no wait for the cyclic GC) and the decoder's buffer goes now."""
        self._decoder.close()
        self._encoder.close()
        self._decoder = _CLOSED_DECODER
        self._encoder = _CLOSED_ENCODER
        self._on_output = self._release_due = _nothing
        self._bootstrap_ref = None  # it refers to us: a cycle
        self.exports = ExportTable(None)
        self._imports = ImportTable(_ignore_id)

    def _lost(self, ending: Ending, reason: BaseException | None) -> ConnectionLost:
        cause, text, goodbye_kind = ending
        lost = self.lost = ConnectionLost(f"connection lost: {text}", cause, goodbye_kind)
        lost.__cause__ = reason
        return lost

    def _stop_everything(self, lost: ConnectionLost) -> None:
        """The connection is ending: drop the tables, run the disconnect notices, cancel the calls
        of the peer running here, fail every open question with ``lost`` — once, in that order."""
        self.exports.clear()
        if self._imports is not None:
            self._imports.clear()
        if self._dead_proxies is not None:
            self._dead_proxies.clear()
        callbacks, self._disconnect_callbacks = self._disconnect_callbacks, None
        for ref, callback in callbacks or ():
            try:
                callback(ref)
            except Exception:
                log.exception("%r: disconnect callback %r failed", self, callback)
        answers, self.answers = self.answers, EMPTY_MAP
        one_way, self._one_way_running = self._one_way_running, None
        for d in [*answers.values(), *(one_way or ())]:
            d.cancel()
        pipelining.drop(self)
        caches, self._caches = self._caches, None
        if caches is not None:
            caches.connection_ended()  # every observer stops, once (§16)
        stream_tables, self._streams = self._streams, None
        if stream_tables is not None:
            stream_tables.connection_ended(lost)  # consumers fail, producers stop (§17)
        questions, self.questions = self.questions, EMPTY_MAP
        for d, target, name in questions.values():
            each = ConnectionLost(str(lost), lost.cause, lost.goodbye_kind)  # one each: notes name the call
            each.__cause__ = lost.__cause__
            d.errback(Failure(self._noted(each, target, name)))

    def _handshake_failure(self, reason: BaseException | None, lost: ConnectionLost) -> BaseException:
        if isinstance(reason, wire.HandshakeError):
            failure: BaseException = HandshakeError(str(reason))
        elif self._first_bytes:  # something arrived, but never a hello
            failure = HandshakeError(not_pbroker(reason, side=self.side, first_bytes=self._first_bytes, peer=self.peer))
        else:
            return lost
        failure.__cause__ = reason
        return failure

    def _noted(self, exc: BaseException, target: int, name: str) -> BaseException:
        """Name the call a failure belongs to: shown in tracebacks and the unhandled-error log."""
        note = f"in call_remote({name!r}) on <RemoteReference {target} via {self!r}>"
        if note not in getattr(exc, "__notes__", ()):
            exc.add_note(note)
        return exc

    # -- calls out -------------------------------------------------------------------------------

    def root(self) -> RemoteReference:
        """The peer's bootstrap object (its root, or its login object)."""
        return self._bootstrap_ref or RemoteReference(self, 0)

    def call(self, target: int, name: str, args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any],
             flags: int = 0, options: call_options.CallOptions | None = None) -> Deferred[Any]:
        """Call ``name`` on the peer's object ``target``; the Deferred fires with the answer."""
        if self.state is not State.OPEN:
            return fail(self._noted(self._cannot_call(name), target, name))
        if len(self.questions) >= self.limits.max_outstanding_calls:
            limit = self.limits.max_outstanding_calls
            return fail(self._noted(LimitExceeded(f"{len(self.questions)} calls outstanding; the limit is {limit}"), target, name))
        request_id = self._last_request_id = self._last_request_id + 1
        plan = call_options.plan_call(self, name, options)  # None: a plain call (§18)
        try:
            frame = self._encode(Call(request_id, target, name, list(args), kwargs, flags, None if plan is None else plan.wire))
        except Exception as exc:
            return fail(self._noted(exc, target, name))
        d: Deferred[Any] = pipelining.Promise(self, request_id, lambda d: self._cancel_question(request_id))
        if self.questions is EMPTY_MAP:
            self.questions = {}
        self.questions[request_id] = (d, target, name)
        self._queue(frame)
        if plan is not None:
            plan.started(d)  # its span ends with the answer
        timeout = self.limits.call_timeout if plan is None else plan.timeout
        if timeout is not None and self._clock is not None:
            d.add_timeout(timeout, self._clock)
            if plan is not None:
                d.add_errback(plan.deadline_passed, name, timeout)
            d.add_errback(self._note_failure, target, name)  # the TimeoutError is made by add_timeout
        return d

    def call_no_answer(self, target: int, name: str, args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any],
                       flags: int = 0, options: call_options.CallOptions | None = None) -> None:
        """A one-way call; raises at once if it cannot be sent (nothing would report it later)."""
        if self.state is not State.OPEN:
            raise self._noted(self._cannot_call(name), target, name)
        plan = call_options.plan_call(self, name, options, one_way=True)
        try:
            frame = self._encode(Call(0, target, name, list(args), kwargs, CALL_NO_ANSWER | flags, None if plan is None else plan.wire))
        except Exception as exc:
            raise self._noted(exc, target, name)
        self._queue(frame)

    def _note_failure(self, failure: Failure, target: int, name: str) -> Failure:
        self._noted(failure.value, target, name)
        return failure

    def _cannot_call(self, name: str) -> ConnectionLost:
        lost = self.lost
        if lost is None:  # still handshaking: the call cannot be sent yet
            return ConnectionLost(f"cannot call {name!r}: the connection is {self.state.value}, not open")
        text = str(lost).removeprefix("connection lost: ")
        error = ConnectionLost(f"cannot call {name!r}: the connection is closed: {text}", lost.cause, lost.goodbye_kind)
        error.__cause__ = lost.__cause__
        return error

    def _cancel_question(self, request_id: int) -> None:
        if self.questions.pop(request_id, None) is not None:
            self._queue_message(Cancel(request_id))

    # -- disconnect notifications ----------------------------------------------------------------

    def add_disconnect_callback(self, ref: RemoteReference, callback: Callable[[RemoteReference], object]) -> None:
        if self.state not in ACTIVE:  # the notices have run: this one runs at once
            callback(ref)
            return
        if self._disconnect_callbacks is None:
            self._disconnect_callbacks = []
        self._disconnect_callbacks.append((ref, callback))

    def on_close(self, callback: Callable[[], object]) -> None:
        """Run ``callback()`` once when the connection closes (at once if it has): e.g. a logout."""
        self.add_disconnect_callback(self.root(), lambda _ref: callback())

    def when_closed(self) -> Deferred[None]:
        """A Deferred firing (with None) once the connection has closed; at once if it has. After
        :meth:`disconnect` it says the goodbye has gone and the connection is down."""
        d: Deferred[None] = Deferred()
        self.on_close(lambda: None if d.called else d.callback(None))
        return d

    def remove_disconnect_callback(self, ref: RemoteReference, callback: Callable[[RemoteReference], object]) -> None:
        entries = self._disconnect_callbacks
        if entries:
            entries[:] = [(r, c) for r, c in entries if not (r is ref and c == callback)]

    # -- messages in -----------------------------------------------------------------------------

    def _dispatch(self, message: Message) -> None:
        kind = type(message)
        if kind is Hello:
            self._handle_hello(message)  # type: ignore[arg-type]
        elif kind is Goodbye:
            self._handle_goodbye(message)  # type: ignore[arg-type]
        else:
            self._advance(Event.MESSAGE)
            _HANDLERS[kind](self, message)

    def _handle_hello(self, hello: Hello) -> None:
        # The decoder has checked the name, the version and that this is the first message.
        self._advance(Event.HELLO)
        shared = _HELLOS.get(hello)
        if shared is None:
            shared = hello
            if len(_HELLOS) < _SHARED_HELLOS:
                _HELLOS[hello] = hello
        self.peer_limits = shared
        self._first_bytes = b""  # only a failed handshake is diagnosed from them
        self._encoder.max_frame_size = hello.max_frame_size
        self.ready.callback(self.root())

    def _handle_answer(self, answer: Answer) -> None:
        if type(answer.value) is RemoteReference and FEATURE_PIPELINING in self._decoder.negotiated:
            pipelining.to_finish(self, answer.request_id)  # the callee keeps it for pipelined calls
        question = self.questions.pop(answer.request_id, None)
        if question is not None:
            question[0].callback(answer.value)

    def _handle_error(self, error: Error) -> None:
        if FEATURE_PIPELINING in self._decoder.negotiated:
            pipelining.to_finish(self, error.request_id)  # the callee keeps it for pipelined calls
        question = self.questions.pop(error.request_id, None)
        if question is not None:
            d, target, name = question
            d.errback(Failure(self._noted(from_failure(error.failure, self.registry), target, name)))

    def _handle_cancel(self, cancel: Cancel) -> None:
        running = self.answers.get(cancel.request_id)
        if running is not None:
            running.cancel()

    def _handle_decref(self, decref: Decref) -> None:
        self._release(decref.object_id, decref.count)

    def _handle_decrefs(self, decrefs: Decrefs) -> None:
        for object_id, count in decrefs.releases.items():
            self._release(object_id, count)

    def _release(self, object_id: int, count: int) -> None:
        if not self.exports.release(object_id, count):
            if self._quiet is None:
                self._quiet = _QuietLog(log, logging.WARNING)
            self._quiet.log("bogus decref", self, "peer released %d of object %d it does not hold", count, object_id)

    def _handle_ping(self, ping: Ping) -> None:
        self._queue_message(Pong(ping.nonce))  # at once, whatever else is running (§3.9)

    def _handle_pong(self, pong: Pong) -> None:
        pass  # hearing from the peer is what counts, and the adapter saw the bytes arrive

    def _refused(self, message: Message, reason: BaseException) -> None:
        """A message named something we refuse (an unknown id, an unregistered copy type)."""
        self._advance(Event.MESSAGE)
        if isinstance(message, Call):
            self._handle_call(message, reason)
        elif isinstance(message, (Answer, Error)):
            question = self.questions.pop(message.request_id, None)
            if question is not None:
                d, target, name = question
                d.errback(Failure(self._noted(reason, target, name)))
        else:
            log.warning("%r: refused %r: %s", self, message, reason)

    def _refusal(self, call: Call, refusal: BaseException | None) -> tuple[Any, BaseException | None]:
        """The call's target, or why it is refused: the checks of PROTOCOL.md §8.1, in its order."""
        if call.flags & ~CALL_NO_ANSWER:
            return None, UnimplementedError("broker.UnsupportedFlags",
                                            f"call flags {call.flags:#x}: only bit 0 (no answer) is implemented")
        target = self.exports.get(call.target)
        if target is None:
            if call.target == 0:
                return None, UnimplementedError("broker.NoRoot", "this peer serves no root object")
            return None, InvalidReferenceError("broker.NoSuchObject", f"object {call.target} does not exist or was never given to you")
        if refusal is not None:
            return target, refusal
        if call.options is not None and (bad := call_options.options_refusal(call.options)) is not None:
            return target, bad  # §18.2: over the metadata limits, a bad timeout
        running = len(self.answers) + len(self._one_way_running or ())
        if running >= self.limits.max_running_calls:
            return target, OverloadedError("broker.Overloaded", f"{running} calls running; the limit is {self.limits.max_running_calls}")
        return target, None

    def _handle_call(self, call: Call, refusal: BaseException | None = None) -> None:
        if call.flags & CALL_TARGET_IS_QUESTION and FEATURE_PIPELINING in self._decoder.negotiated:
            pipelining.handle_pipelined_call(self, call, refusal)  # §15: target is a question
            return
        no_answer = call.flags & CALL_NO_ANSWER
        target, error = self._refusal(call, refusal)
        if error is not None:
            if no_answer:
                if self._quiet_calls is None:
                    self._quiet_calls = _QuietLog(calls_log, logging.INFO)
                self._quiet_calls.log("refused one-way call", self, "refused one-way call %r: %s", call.method, error)
            else:
                self._send_error(call.request_id, error)
            return
        self._run_call(call, target)

    def _run_call(self, call: Call, target: Any) -> None:
        """Run the remote method of an accepted call on ``target`` and answer it (now, or when its
        Deferred fires); a direct call's target or, pipelined (§15), a question's answer."""
        no_answer = call.flags & CALL_NO_ANSWER
        try:
            ctx, result = call_options.serve_call(self, target, call)  # broker.current_call() while it runs (§18)
        except Exception as exc:
            self._report_failure(call, target, exc, None)
            if not no_answer:
                self._send_error(call.request_id, exc)
            return
        if isinstance(result, Deferred):  # a coroutine method's is one already
            if no_answer:  # nobody waits: count it as running, log a failure, keep nothing after
                running = self._one_way_running
                if running is None:
                    running = self._one_way_running = set()
                running.add(result)
                call_options.watch(self, ctx, result, None)
                result.add_both(self._one_way_done, call, target, result)
                return
            request_id = call.request_id
            if self.answers is EMPTY_MAP:
                self.answers = {}
            self.answers[request_id] = result
            call_options.watch(self, ctx, result, request_id)
            result.add_callbacks(self._answer_later, self._error_later, (request_id,), None, (request_id, call, target))
        elif not no_answer:
            self._send_answer(call.request_id, result)

    def _one_way_done(self, result: Any, call: Call, target: Any, d: Deferred[Any]) -> None:
        if self._one_way_running is not None:
            self._one_way_running.discard(d)
        if isinstance(result, Failure):
            self._report_failure(call, target, result.value, result)

    def _answer_later(self, result: Any, request_id: int) -> None:
        if self.answers.pop(request_id, None) is not None:
            self._send_answer(request_id, result)

    def _error_later(self, failure: Failure, request_id: int, call: Call, target: Any) -> None:
        if self.answers.pop(request_id, None) is not None:
            self._report_failure(call, target, failure.value, failure)
            self._send_error(request_id, failure.value, failure)

    def _report_failure(self, call: Call, target: Any, exc: BaseException, failure: Failure | None) -> None:
        """Log what a remote method raised, on ``broker.calls``, with who called.

        Unexpected exceptions at WARNING with the traceback; those that answer the caller on
        purpose at INFO: RemoteError subclasses (NoSuchMethodError, ...), registered copyable
        exceptions, and the classes in the target's ``expected_errors`` attribute, if any.
        Cancellations are not logged.
        """
        if isinstance(exc, CancelledError):
            return
        expected = (isinstance(exc, RemoteError) or self.registry.name_for(exc) is not None
                    or isinstance(exc, getattr(target, "expected_errors", ())))
        level = logging.INFO if expected else logging.WARNING
        if not calls_log.isEnabledFor(level):
            return
        peer = self.peer
        where = f"{peer.host}:{peer.port}" if hasattr(peer, "host") and hasattr(peer, "port") else (self.name or "?")
        one_way = " (one-way)" if call.flags & CALL_NO_ANSWER else ""
        said = exc.message if isinstance(exc, RemoteError) else str(exc)
        text = (f"remote call {call.method!r}{one_way} on {type(target).__name__} from {where} "
                f"(perspective {self.perspective!r}) raised {type(exc).__name__}: {said}")
        call_id = call_options.call_id_for(call)  # ties the line to the caller (§18.4)
        if call_id is not None:
            text += f" [call {call_id}]"
        extra = {"peer": where, "perspective": self.perspective, "method": call.method, "target": target,
                 "call_id": call_id or "-"}
        if expected:
            calls_log.log(level, "%s", text, extra=extra)
        elif failure is not None:
            calls_log.log(level, "%s\n%s", text, failure.get_traceback().rstrip("\n"), extra=extra)
        else:
            calls_log.log(level, "%s", text, exc_info=exc, extra=extra)

    def _send_answer(self, request_id: int, value: Any) -> None:
        if FEATURE_PIPELINING in self._decoder.negotiated and (self._pipeline is not None or isinstance(value, Referenceable)):
            pipelining.answered(self, request_id, value)  # calls pipelined on it run first (§15)
        try:
            frame = self._encode(Answer(request_id, value))
        except LimitExceeded as exc:
            self._send_error(request_id, OverloadedError("broker.FrameTooLarge", str(exc)))
            return
        except Exception as exc:
            self._send_error(request_id, exc)
            return
        self._queue(frame)

    def _send_error(self, request_id: int, exc: BaseException, failure: Failure | None = None) -> None:
        tb = None
        if self.debug:
            tb = failure.get_traceback() if failure is not None else "".join(traceback.format_exception(exc))
        info = to_failure(exc, self.registry, tb)
        if request_id and FEATURE_PIPELINING in self._decoder.negotiated:
            pipelining.failed(self, request_id, info)  # calls pipelined on it fail first (§15)
        self._queue_message(Error(request_id, call_options.for_peer(info, self._decoder.negotiated)))

    # -- values to and from the wire -------------------------------------------------------------

    def _encode(self, message: Message) -> bytes | bytearray:
        """Encode a message that may carry references; nothing is counted if encoding fails."""
        exports = self.exports
        try:
            frame = self._encoder.encode_frame(message)  # big frames reuse one buffer: no page faults
        except Exception as exc:
            exports.undo_sends()
            if self._caches is not None:
                self._caches.undo_sends()
            if self._streams is not None:
                self._streams.undo_sends()
            if isinstance(exc, wire.MessageTooLarge):
                raise LimitExceeded(str(exc)) from exc
            cause = exc.__cause__ if isinstance(exc, wire.UnencodableValue) else None
            if isinstance(cause, BrokerError):
                raise cause from None
            if isinstance(exc, wire.UnencodableValue):
                raise TypeError(str(exc)) from exc
            raise
        exports.confirm_sends()
        if self._caches is not None:
            self._caches.confirm_sends()
        if self._streams is not None:
            self._streams.confirm_sends()
        return frame

    def _to_wire(self, obj: Any) -> Any:
        """Encoder hook: what a non-native object becomes on the wire."""
        if isinstance(obj, Cacheable):  # §16: its state once per connection, then its id
            caches = self._caches
            if caches is None:
                caches = self._caches = CacheTables(self)
            return caches.to_wire(obj)
        if isinstance(obj, RemoteReference):
            if obj._session is not self:
                raise BrokerError("a reference from another connection cannot be passed on (no third-party hand-off)")
            return ReturnedRef(obj.object_id)
        if isinstance(obj, Referenceable):
            if len(self.exports) >= self.limits.max_live_references and not self.exports.is_exported(obj):
                raise OverloadedError("broker.TooManyReferences", f"the limit of {self.limits.max_live_references} live references is reached")
            return ExportedRef(self.exports.add_send(obj))
        type_name = self.registry.name_for(obj)
        if type_name is not None:
            return CopyState(type_name, state_of(obj))
        if isinstance(obj, (tuple, set, frozenset)):
            return list(obj)
        remote = getattr(obj, "__remote_reference__", None)  # a view of one, e.g. BlockingReference
        if isinstance(remote, RemoteReference):
            return self._to_wire(remote)
        if streams.is_streamable(obj):  # §17: an iterator or async iterator goes as a stream
            stream_tables = self._streams
            if stream_tables is None:
                stream_tables = self._streams = streams.StreamTables(self)
            return stream_tables.to_wire(obj)
        raise TypeError(f"cannot send {type(obj).__qualname__}: register it as copyable or make it Referenceable")

    def _resolve(self, value: Any) -> Any:
        """Decoder hook: what a wire ext value becomes here (``wire.Refused`` if we refuse it)."""
        kind = type(value)
        if kind is ExportedRef:
            self.refs_received += 1
            if value.object_id == 0:  # the peer's bootstrap object is never counted (§6.6)
                return self.root()
            return self.imports.received(value.object_id, self._make_proxy)
        if kind is ReturnedRef:
            obj = self.exports.get(value.object_id)
            if obj is None:
                raise wire.Refused(InvalidReferenceError("broker.NoSuchObject", f"object {value.object_id} is not ours to return"))
            return obj
        if kind is CopyState:
            try:
                return self.registry.build(value.type_name, value.state)
            except UnregisteredCopyError as exc:
                raise wire.Refused(exc) from None
            except Exception as exc:
                raise wire.Refused(InvalidReferenceError("broker.BadCopy", f"cannot build {value.type_name!r}: {exc}")) from None
        if kind is FailureInfo:
            return from_failure(value, self.registry)
        if kind is CacheRef:  # §16 (the decoder accepts ext 6 only when "cache" is negotiated)
            caches = self._caches
            if caches is None:
                caches = self._caches = CacheTables(self)
            return caches.received(value)
        if kind is StreamRef:  # §17 (the decoder accepts ext 7 only when "streams" is negotiated)
            self.refs_received += 1  # the blocking client wraps it
            stream_tables = self._streams
            if stream_tables is None:
                stream_tables = self._streams = streams.StreamTables(self)
            return stream_tables.received(value)
        return value

    def _make_proxy(self, object_id: int) -> RemoteReference:
        if self._dead_proxies is None:
            self._dead_proxies = deque()  # before the proxy exists: it may die in any thread
        return RemoteReference(self, object_id)

    # -- releases --------------------------------------------------------------------------------

    def _proxy_died(self, object_id: int) -> None:
        """Weakref callback: may run in any thread, inside the GC. Queue only; never send here."""
        dead = self._dead_proxies
        if self.state is State.CLOSED or dead is None:
            return  # nothing to release to; the reactor may be gone too
        dead.append(object_id)
        if not self._release_scheduled:
            self._schedule_release()

    def _schedule_release(self) -> None:
        """Ask the adapter for one ``flush_releases`` until it runs (callers check
        ``_release_scheduled`` first): from any thread, never sending."""
        self._release_scheduled = True
        try:
            self._release_due()
        except RuntimeError:  # the event loop closed under us: the connection is gone
            pass

    def flush_releases(self) -> None:
        """Queue the releases due (from the session's own thread), all at once."""
        self._release_scheduled = False
        died: list[int] = []
        dead = self._dead_proxies
        while dead:
            died.append(dead.popleft())
        if self.state is not State.OPEN:
            return
        if self._caches is not None:
            self._caches.flush_releases()  # RemoteCaches that died (§16)
        if self._streams is not None:
            self._streams.flush_dropped()  # RemoteStreams dropped unread are cancelled (§17)
        releases = self.imports.collect_releases(died)
        if len(releases) > 1 and FEATURE_DECREFS in self._decoder.negotiated:
            # One message per batch, split to fit the peer's container limit (2 ints a release).
            per_frame = max(1, min(self.peer_limits.max_container_length if self.peer_limits else 1, 2**19) // 2 - 1)
            items = list(releases.items())
            for start in range(0, len(items), per_frame):
                self._queue_message(Decrefs(dict(items[start : start + per_frame])))
            return
        for object_id, count in releases.items():
            self._queue_message(Decref(object_id, count))


def _ignore_id(object_id: int) -> None:
    pass


#: What a closed session holds instead of its codec (whose hooks would keep it alive).
_CLOSED_DECODER = wire.WireDecoder(max_frame_size=1)
_CLOSED_ENCODER = wire.WireEncoder(max_frame_size=1)

_HANDLERS: dict[type, Callable[[Session, Any], None]] = {
    Call: Session._handle_call,
    Answer: Session._handle_answer,
    Error: Session._handle_error,
    Cancel: Session._handle_cancel,
    Decref: Session._handle_decref,
    Decrefs: Session._handle_decrefs,
    Ping: Session._handle_ping,
    Pong: Session._handle_pong,
    Finish: pipelining.finish,
    CacheUpdate: handle_update,
    CacheRelease: handle_release,
    StreamItems: streams.handle_items,
    StreamEnd: streams.handle_end,
    StreamCredit: streams.handle_credit,
}
