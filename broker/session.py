"""One connection's broker: handshake, object tables, calls out and calls in.

Sans-I/O in the manner of h11, one layer up from the codec: bytes go in through
:meth:`Session.receive_data`, bytes come out through the ``send`` callable, and the session asks
its ``close`` callable to end the connection. Deferreds (pure) carry results; no socket, clock or
reactor is touched here, so the whole object model is testable with two sessions wired together.

Lifecycle, one table (illegal moves raise :class:`LocalProtocolError` or close the connection)::

    state        event                      next
    HANDSHAKE    peer Hello, same version   OPEN      (ready Deferred fires)
    HANDSHAKE    peer Hello, other version  CLOSED    (HandshakeError, connection closed)
    HANDSHAKE    any other message          CLOSED    (RemoteProtocolError)
    OPEN         Call/Answer/Error/...      OPEN
    any          connection lost            CLOSED    (pending calls fail, tables cleared)
"""

from __future__ import annotations

import enum
import errno
import inspect
import itertools
import logging
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import net.error
from net.defer import CancelledError, Deferred, Failure, ensure_deferred, fail

from . import wire
from .errors import (
    BrokerError,
    ConnectionLost,
    HandshakeError,
    InvalidReferenceError,
    LimitExceeded,
    NoSuchMethodError,
    OverloadedError,
    RemoteCancelledError,
    RemoteError,
    UnimplementedError,
    UnregisteredCopyError,
    error_class_for_kind,
)
from .flavors import CopyRegistry, Referenceable, Root, default_registry, state_of
from .messages import (
    CALL_NO_ANSWER,
    DEFAULT_MAX_CONTAINER_LENGTH,
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_FRAME_SIZE,
    Answer,
    Call,
    Cancel,
    CopyState,
    Decref,
    Error,
    ExportedRef,
    FailureInfo,
    Goodbye,
    Hello,
    ReturnedRef,
)
from .tables import ExportTable, ImportTable

__all__ = ["Session", "Limits", "RemoteReference", "AnonymousPerspective", "State"]

log = logging.getLogger(__name__)
#: Exceptions raised by remote methods (WARNING, with the caller and the traceback) and refused
#: calls (INFO). Its own name so operators can route or silence it: docs/ARCHITECTURE.md "Logging".
calls_log = logging.getLogger("broker.calls")

#: Socket errors that mean the connection was reset or broke under us.
_RESET_ERRNOS = frozenset({errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED, errno.ENETRESET,
                           errno.EHOSTUNREACH, errno.ENETUNREACH})
#: How many of the first bytes received are kept to tell what a non-pbroker peer speaks.
_SNIFF = 8


def _looks_like_tls(first: bytes) -> bool:
    """A TLS record header: content type 20..23 (handshake 22, alert 21), major version 3."""
    return len(first) >= 2 and 0x14 <= first[0] <= 0x17 and first[1] == 0x03


def _preview(first: bytes) -> str:
    text = first.decode("ascii", "replace")
    if text.isprintable():
        return repr(text) + "..."
    return "bytes " + first.hex(" ") + " ..."



#: The outbox is written once it holds this many frames, or a frame of at least FLUSH_BYTES.
FLUSH_FRAMES = 16
FLUSH_BYTES = 64 * 1024


class State(enum.Enum):
    HANDSHAKE = "handshake"
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-connection limits; exceeding one gives the caller a clear error, never a hang."""

    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    max_outstanding_calls: int = 10_000
    max_running_calls: int = 10_000
    max_live_references: int = 100_000
    max_depth: int = DEFAULT_MAX_DEPTH
    max_container_length: int = DEFAULT_MAX_CONTAINER_LENGTH
    #: Seconds a call may wait for its answer before it is cancelled (on the peer too) and fails
    #: with TimeoutError; None waits as long as the connection lives. Needs a clock (the reactor).
    call_timeout: float | None = None


class AnonymousPerspective:
    """The identity of a connection that has not logged in."""

    def __repr__(self) -> str:
        return "<anonymous>"


class RemoteReference:
    """A proxy for an object the peer owns; ``call_remote`` returns a Deferred (awaitable).

    Dropping the last proxy releases the peer's object: the release is queued here and sent by
    the session from the event loop, never from the garbage collector.
    """

    __slots__ = ("_session", "object_id", "__weakref__")

    def __init__(self, session: Session, object_id: int) -> None:
        self._session = session
        self.object_id = object_id

    def call_remote(self, _name: str, /, *args: Any, **kwargs: Any) -> Deferred[Any]:
        """Call ``remote_<_name>(*args, **kwargs)`` on the peer's object."""
        return self._session.call(self.object_id, _name, args, kwargs, False)

    def call_remote_no_answer(self, _name: str, /, *args: Any, **kwargs: Any) -> None:
        """A one-way call: no answer is sent, errors are logged by the peer."""
        self._session.call(self.object_id, _name, args, kwargs, True)

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


class Session:
    """The broker half of one connection. See the module docstring for the lifecycle."""

    def __init__(
        self,
        send: Callable[[bytes | bytearray], None],
        close: Callable[[BaseException | None], None],
        wake: Callable[[Callable[[], None]], None],
        *,
        schedule: Callable[[Callable[[], None]], object] | None = None,
        clock: Any = None,
        root: Referenceable | None = None,
        registry: CopyRegistry | None = None,
        limits: Limits = Limits(),
        debug: bool = False,
        name: str = "",
        peer: Any = None,
        peer_certificate: Any = None,
        side: str = "",
    ) -> None:
        #: The peer's address (``transport.get_peer()``) and TLS client certificate, if any:
        #: login needs them (throttling per host, certificate login); the session never does.
        self.peer = peer
        self.peer_certificate = peer_certificate
        #: "client" or "server" (or "" when unknown): only to word error messages.
        self.side = side
        #: Why the connection ended, once it has: the ConnectionLost its pending calls failed with.
        self.lost: ConnectionLost | None = None
        # How this side knows the connection is ending (cause, text, goodbye kind), set before
        # the close so that connection_lost can say why; None: the transport will tell.
        self._ending: tuple[str, str, str | None] | None = None
        self._first_bytes = b""  # the first bytes received, to name what a non-pbroker peer speaks
        self._handshake_problem: HandshakeError | None = None
        self._send = send
        self._close = close
        self._wake = wake
        self._schedule = schedule
        self._clock = clock  # anything with call_later(); only used for limits.call_timeout
        # Frames wait in the outbox until the end of the current burst (one receive_data, or one
        # loop iteration of calls) and leave in one write: one syscall for a burst, not one each.
        self._outbox: list[bytes | bytearray] = []
        self._receiving = False
        self._flush_scheduled = False
        self.registry = registry or default_registry
        self.limits = limits
        self.debug = debug
        self.name = name
        self.state = State.HANDSHAKE
        self.perspective: Any = AnonymousPerspective()
        self.peer_limits: Hello | None = None
        self.ready: Deferred[RemoteReference] = Deferred()
        bootstrap = root.root_object(self) if isinstance(root, Root) else root
        self.exports = ExportTable(bootstrap)
        self.imports: ImportTable[RemoteReference] = ImportTable(self._proxy_died)
        #: request id -> (Deferred, target object id, method name) of each call awaiting its answer
        self.questions: dict[int, tuple[Deferred[Any], int, str]] = {}
        self.answers: dict[int, Deferred[Any]] = {}
        self._request_ids = itertools.count(1)
        self._dead_proxies: deque[int] = deque()
        self._release_scheduled = False
        self._disconnect_callbacks: list[tuple[RemoteReference, Callable[[RemoteReference], object]]] = []
        self._problems: list[BaseException] = []
        self._sent_refs: list[int] = []
        self._decoder = wire.WireDecoder(
            max_frame_size=limits.max_frame_size,
            max_depth=limits.max_depth,
            max_container_length=limits.max_container_length,
            resolve=self._resolve,
        )
        self._encoder = wire.WireEncoder(default=self._to_wire)
        self._bootstrap_ref = RemoteReference(self, 0)

    def __repr__(self) -> str:
        return f"<Session {self.name or id(self)} {self.state.value}>"

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Send our Hello; call once the connection is up."""
        self._send(self._encoder.encode(self._decoder.hello()))

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the peer; decoded messages are handled in order."""
        if len(self._first_bytes) < _SNIFF and self.state is State.HANDSHAKE:
            self.note_received(data)
        self._decoder.receive_data(data)
        self.process_received()

    def process_received(self) -> None:
        """Handle every complete message the decoder holds; what they cause leaves in one write."""
        decoder = self._decoder
        self._receiving = True
        try:
            while self.state is not State.CLOSED:
                try:
                    message = decoder.next_message()
                except wire.RemoteProtocolError as exc:
                    self._protocol_error(exc)
                    return
                if message is wire.NEED_DATA or message is wire.CLOSED:
                    return
                problems = self._problems
                if problems:
                    self._problems = []
                    self._handle_undecodable(message, problems[0])
                else:
                    self._dispatch(message)
        finally:
            self._receiving = False
            if self._outbox:
                self._flush()

    def note_received(self, data: bytes | bytearray | memoryview) -> bool:
        """Keep the first bytes the peer sent (for handshake diagnostics); True while it wants more.

        ``receive_data`` calls this itself; a transport receiving straight into the decoder's
        buffer calls it with what arrived, until it returns False.
        """
        have = self._first_bytes
        if len(have) < _SNIFF and self.state is State.HANDSHAKE:
            self._first_bytes = have + bytes(data[: _SNIFF - len(have)])
        return len(self._first_bytes) < _SNIFF and self.state is State.HANDSHAKE

    def _queue(self, frame: bytes | bytearray) -> None:
        """Send ``frame`` at the end of the current burst, or sooner once a chunk is ready.

        Flushing every ``FLUSH_FRAMES`` frames (or at once for a big frame) lets the peer start on
        the first calls of a burst while we encode the rest: the two processes overlap instead of
        taking turns, which doubled pipelined throughput here (100 in flight: ~50k -> ~100k/s).
        """
        outbox = self._outbox
        outbox.append(frame)
        if len(outbox) >= FLUSH_FRAMES or len(frame) >= FLUSH_BYTES:
            self._flush()
            return
        if self._receiving or self._flush_scheduled:
            return
        if self._schedule is None:
            self._flush()
        else:
            self._flush_scheduled = True
            self._schedule(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        outbox = self._outbox
        if not outbox or self.state is State.CLOSED:
            outbox.clear()
            return
        self._outbox = []
        self._send(outbox[0] if len(outbox) == 1 else b"".join(outbox))

    def _close_now(self, reason: BaseException | None) -> None:
        """Close after sending what is queued (a goodbye, answers already made)."""
        self._flush()
        self._close(reason)

    def connection_lost(self, reason: BaseException | None = None) -> None:
        """The connection is gone: fail pending calls, run disconnect callbacks once, clear tables."""
        if self.state is State.CLOSED:
            return
        was_handshaking = self.state is State.HANDSHAKE
        self.state = State.CLOSED
        self._outbox.clear()
        cause, text, goodbye_kind = self._why_lost(reason, was_handshaking)
        lost = self.lost = ConnectionLost(f"connection lost: {text}", cause, goodbye_kind)
        if reason is not None:
            lost.__cause__ = reason
        self.exports.clear()
        self.imports.clear()
        self._dead_proxies.clear()
        callbacks, self._disconnect_callbacks = self._disconnect_callbacks, []
        for ref, callback in callbacks:
            try:
                callback(ref)
            except Exception:
                log.exception("%r: disconnect callback %r failed", self, callback)
        answers, self.answers = self.answers, {}
        for d in answers.values():
            d.cancel()
        questions, self.questions = self.questions, {}
        for d, target, name in questions.values():
            each = ConnectionLost(str(lost), cause, goodbye_kind)  # one each: notes name the call
            each.__cause__ = reason
            d.errback(Failure(self._noted(each, target, name)))
        if was_handshaking and not self.ready.called:
            failure: BaseException = lost
            if self._handshake_problem is not None:
                failure = self._handshake_problem
            elif isinstance(reason, (HandshakeError, wire.HandshakeError)):
                failure = HandshakeError(str(reason))
                failure.__cause__ = reason
            elif self._first_bytes:  # something arrived, but never a hello
                failure = HandshakeError(self._not_pbroker(reason))
                failure.__cause__ = reason
            self.ready.errback(Failure(failure))

    def _why_lost(self, reason: BaseException | None, handshaking: bool) -> tuple[str, str, str | None]:
        """(cause, text, goodbye kind) of a closed connection; see broker.errors.CAUSES."""
        if self._ending is not None:
            return self._ending
        peer = {"client": "the server", "server": "the client"}.get(self.side, "the peer")
        if isinstance(reason, TimeoutError) or (isinstance(reason, OSError) and reason.errno == errno.ETIMEDOUT):
            return "timeout", str(reason), None
        if reason is None or (isinstance(reason, net.error.ConnectionClosed) and reason.by_peer):
            if handshaking and not self._first_bytes:
                return ("closed", "the peer closed the connection during the handshake without sending "
                        "anything: is it a pbroker server? (one serving TLS needs a tls: endpoint)", None)
            return ("closed", f"the peer closed the connection without a goodbye: "
                    f"{peer} process may have exited", None)
        if isinstance(reason, net.error.ConnectionDone):
            return "local", "the connection was closed on this side", None
        if isinstance(reason, OSError):  # net.error.ConnectionLost, TLS errors, socket errors
            if reason.errno in _RESET_ERRNOS:
                return "reset", f"the connection was reset ({reason}): {peer} host or process may have crashed, or the network dropped it", None
            return "reset", f"the connection broke: {reason}", None
        return "local", f"closed on this side after an error: {type(reason).__name__}: {reason}", None

    def _not_pbroker(self, reason: BaseException | None) -> str:
        """Why a handshake failed, from the first bytes the peer sent."""
        first = self._first_bytes
        if _looks_like_tls(first):
            if self.side == "server":
                return ("the client seems to speak TLS to this plain endpoint: serve a tls: endpoint, "
                        "or have the client connect with tcp:")
            return "the peer seems to expect TLS: use a tls: endpoint (e.g. 'tls:HOST:PORT:ca=ca.pem')"
        if isinstance(reason, wire.HandshakeError) and not isinstance(reason, HandshakeError):
            return str(reason)
        detail = f" ({reason})" if reason is not None else ""
        return f"not a pbroker peer: it sent {_preview(first)} instead of a pbroker hello{detail}"

    def _noted(self, exc: BaseException, target: int, name: str) -> BaseException:
        """Name the call a failure belongs to: shown in tracebacks and the unhandled-error log."""
        note = f"in call_remote({name!r}) on <RemoteReference {target} via {self!r}>"
        if note not in getattr(exc, "__notes__", ()):
            exc.add_note(note)
        return exc

    def disconnect(self) -> None:
        """Close the connection cleanly (pending calls fail with ConnectionLost)."""
        if self.state is not State.CLOSED and self._ending is None:
            self._ending = ("local", "this side closed the connection (disconnect())", None)
        if self.state is State.OPEN:
            self._queue(self._encoder.encode(Goodbye("normal", "")))
        if self.state is not State.CLOSED:
            self._close_now(None)

    def _protocol_error(self, exc: wire.RemoteProtocolError) -> None:
        """The peer broke the protocol: say why in a Goodbye, log it, close this connection only."""
        if self.state is State.HANDSHAKE:
            problem = self._handshake_problem = HandshakeError(self._not_pbroker(exc))
            problem.__cause__ = exc
            log.warning("%r: closing, peer sent bad data in the handshake: %s", self, problem)
        else:
            log.warning("%r: closing, peer sent bad data: %s", self, exc)
        if self._ending is None:
            self._ending = ("protocol", f"the peer broke the protocol: {exc}", None)
        try:
            self._queue(self._encoder.encode(Goodbye(exc.kind, str(exc)[:1000])))
        except wire.WireError:
            pass
        self._close_now(exc)

    # -- calls out -----------------------------------------------------------------------------

    def root(self) -> RemoteReference:
        """The peer's bootstrap object (its root, or its login object)."""
        return self._bootstrap_ref

    def call(self, target: int, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], no_answer: bool) -> Deferred[Any]:
        if self.state is not State.OPEN:
            return fail(self._noted(self._cannot_call(name), target, name))
        if len(self.questions) >= self.limits.max_outstanding_calls:
            return fail(self._noted(LimitExceeded(f"{len(self.questions)} calls outstanding; the limit is {self.limits.max_outstanding_calls}"), target, name))
        request_id = 0 if no_answer else next(self._request_ids)
        message = Call(request_id, target, name, list(args), kwargs, CALL_NO_ANSWER if no_answer else 0)
        try:
            frame = self._encode_with_refs(message)
        except Exception as exc:
            return fail(self._noted(exc, target, name))
        if no_answer:
            self._queue(frame)
            return Deferred()
        d: Deferred[Any] = Deferred(lambda d: self._cancel_question(request_id))
        self.questions[request_id] = (d, target, name)
        self._queue(frame)
        timeout = self.limits.call_timeout
        if timeout is not None and self._clock is not None:
            d.add_timeout(timeout, self._clock)
            d.add_errback(self._note_failure, target, name)  # the TimeoutError is made by add_timeout
        return d

    def _note_failure(self, failure: Failure, target: int, name: str) -> Failure:
        self._noted(failure.value, target, name)
        return failure

    def _cannot_call(self, name: str) -> ConnectionLost:
        lost = self.lost
        if lost is None:  # still handshaking (or closing): the call cannot be sent
            return ConnectionLost(f"cannot call {name!r}: the connection is {self.state.value}, not open")
        text = str(lost).removeprefix("connection lost: ")
        error = ConnectionLost(f"cannot call {name!r}: the connection is closed: {text}", lost.cause, lost.goodbye_kind)
        error.__cause__ = lost.__cause__
        return error

    def _cancel_question(self, request_id: int) -> None:
        if self.questions.pop(request_id, None) is not None and self.state is State.OPEN:
            self._queue(self._encoder.encode(Cancel(request_id)))

    # -- disconnect notifications --------------------------------------------------------------

    def add_disconnect_callback(self, ref: RemoteReference, callback: Callable[[RemoteReference], object]) -> None:
        if self.state is State.CLOSED:
            callback(ref)
            return
        self._disconnect_callbacks.append((ref, callback))

    def on_close(self, callback: Callable[[], object]) -> None:
        """Run ``callback()`` once when the connection closes (at once if it has): e.g. a logout."""
        self.add_disconnect_callback(self._bootstrap_ref, lambda _ref: callback())

    def remove_disconnect_callback(self, ref: RemoteReference, callback: Callable[[RemoteReference], object]) -> None:
        entries = self._disconnect_callbacks
        entries[:] = [(r, c) for r, c in entries if not (r is ref and c == callback)]

    # -- incoming messages ---------------------------------------------------------------------

    def _dispatch(self, message: Any) -> None:
        kind = type(message)
        if kind is Call:
            self._handle_call(message)
        elif kind is Answer:
            question = self.questions.pop(message.request_id, None)
            if question is not None:
                question[0].callback(message.value)
        elif kind is Error:
            question = self.questions.pop(message.request_id, None)
            if question is not None:
                d, target, name = question
                d.errback(Failure(self._noted(self._exception_from(message.failure), target, name)))
        elif kind is Cancel:
            running = self.answers.get(message.request_id)
            if running is not None:
                running.cancel()
        elif kind is Decref:
            if not self.exports.release(message.object_id, message.count):
                log.warning("%r: peer released %d of object %d it does not hold", self, message.count, message.object_id)
        elif kind is Hello:
            self._handle_hello(message)
        elif kind is Goodbye:
            log.info("%r: peer said goodbye (%s) %s", self, message.kind, message.message)
            said = f"{message.kind}: {message.message}" if message.message else message.kind
            if self._ending is None:
                self._ending = ("goodbye", f"the peer said goodbye ({said})", message.kind)
            self._close_now(ConnectionLost(f"the peer closed the connection: {said}", "goodbye", message.kind))
        else:
            log.info("%r: ignoring unsupported message %r", self, message)

    def _handle_hello(self, hello: Hello) -> None:
        # The decoder has checked the name, the version and that this is the first message.
        self.peer_limits = hello
        self._encoder.max_frame_size = hello.max_frame_size
        self.state = State.OPEN
        self.ready.callback(self._bootstrap_ref)

    def _handle_undecodable(self, message: Any, problem: BaseException) -> None:
        """A message decoded but named something we refuse (unregistered copy, unknown id)."""
        if isinstance(message, Call):
            if not message.flags & CALL_NO_ANSWER:
                self._send_error(message.request_id, problem)
            else:
                log.warning("%r: refused one-way call %r: %s", self, message.method, problem)
        elif isinstance(message, (Answer, Error)):
            question = self.questions.pop(message.request_id, None)
            if question is not None:
                d, target, name = question
                d.errback(Failure(self._noted(problem, target, name)))
        else:
            log.warning("%r: refused %r: %s", self, message, problem)

    def _handle_call(self, call: Call) -> None:
        no_answer = call.flags & CALL_NO_ANSWER
        target = self.exports.get(call.target)
        if target is None:
            error: RemoteError = InvalidReferenceError("broker.NoSuchObject", f"object {call.target} does not exist or was never given to you")
            self._send_error(call.request_id, error, no_answer)
            return
        if len(self.answers) >= self.limits.max_running_calls:
            error = OverloadedError("broker.Overloaded", f"{len(self.answers)} calls running; the limit is {self.limits.max_running_calls}")
            self._send_error(call.request_id, error, no_answer)
            return
        try:
            receive = target.remote_message_received
        except AttributeError:
            self._send_error(call.request_id, UnimplementedError("broker.NotReferenceable", "object is not callable"), no_answer)
            return
        try:
            result = receive(self, call.method, call.args, call.kwargs)
        except Exception as exc:
            if type(exc) is AttributeError and exc.args == (call.method,):
                # The old convention of a custom remote_message_received: "not found".
                exc = NoSuchMethodError(message=f"{type(target).__name__} has no remote method {call.method!r}")
            self._report_failure(call, target, exc, None)
            if not no_answer:
                self._send_error(call.request_id, exc)
            return
        if inspect.iscoroutine(result):
            result = ensure_deferred(result)
        if isinstance(result, Deferred):
            if no_answer:  # nobody waits: log a failure, keep nothing
                result.add_errback(lambda f: self._report_failure(call, target, f.value, f))
                return
            request_id = call.request_id
            self.answers[request_id] = result
            result.add_callbacks(self._answer_later, self._error_later, (request_id,), None, (request_id, call, target))
        elif not no_answer:
            self._send_answer(call.request_id, result)

    def _answer_later(self, result: Any, request_id: int) -> None:
        if self.answers.pop(request_id, None) is not None:
            self._send_answer(request_id, result)

    def _error_later(self, failure: Failure, request_id: int, call: Call, target: Any) -> None:
        if self.answers.pop(request_id, None) is not None:
            self._report_failure(call, target, failure.value, failure)
            self._send_error(request_id, failure.value, 0, failure)

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
        extra = {"peer": where, "perspective": self.perspective, "method": call.method, "target": target}
        if expected:
            calls_log.log(level, "%s", text, extra=extra)
        elif failure is not None:
            calls_log.log(level, "%s\n%s", text, failure.get_traceback().rstrip("\n"), extra=extra)
        else:
            calls_log.log(level, "%s", text, exc_info=exc, extra=extra)

    def _send_answer(self, request_id: int, value: Any) -> None:
        if self.state is State.CLOSED:
            return
        try:
            frame = self._encode_with_refs(Answer(request_id, value))
        except LimitExceeded as exc:
            self._send_error(request_id, OverloadedError("broker.FrameTooLarge", str(exc)))
            return
        except Exception as exc:
            self._send_error(request_id, exc)
            return
        self._queue(frame)

    def _send_error(self, request_id: int, exc: BaseException, no_answer: int = 0, failure: Failure | None = None) -> None:
        if no_answer:
            log.warning("%r: one-way call %d failed: %r", self, request_id, exc)
            return
        if self.state is State.CLOSED:
            return
        self._queue(self._encoder.encode(Error(request_id, self._failure_info(exc, failure))))

    # -- values to and from the wire -----------------------------------------------------------

    def _failure_info(self, exc: BaseException, failure: Failure | None) -> FailureInfo:
        from net.defer import CancelledError

        if isinstance(exc, RemoteError):  # passing on a peer's failure: keep its kind and type
            kind, type_name, message = exc.kind, exc.remote_type, exc.message
        elif isinstance(exc, CancelledError):
            kind, type_name, message = "cancelled", "net.defer.CancelledError", "call was cancelled"
        elif isinstance(exc, UnregisteredCopyError):
            kind, type_name, message = "unimplemented", "broker.UnregisteredCopyError", str(exc)
        else:
            copy_name = self.registry.name_for(exc)
            kind = "failed"
            type_name = copy_name or f"{type(exc).__module__}.{type(exc).__qualname__}"
            message = str(exc)
        tb = None
        if self.debug:
            tb = failure.get_traceback() if failure is not None else "".join(traceback.format_exception(exc))
        return FailureInfo(kind, type_name, message, tb)

    def _exception_from(self, info: FailureInfo) -> BaseException:
        if info.kind == "failed" and self.registry.is_registered(info.type_name):
            try:
                exc = self.registry.build(info.type_name, {"args": [info.message]})
            except Exception:
                exc = None
            if isinstance(exc, BaseException):
                return exc
        return error_class_for_kind(info.kind, info.type_name)(info.type_name, info.message, info.traceback)

    def _encode_with_refs(self, message: Any) -> bytes | bytearray:
        """Encode, undoing export counts if encoding fails halfway (nothing was sent)."""
        sent = self._sent_refs = []
        try:
            return self._encoder.encode_frame(message)  # big frames reuse one buffer: no page faults
        except Exception as exc:
            for object_id in sent:
                self.exports.undo_send(object_id)
            if isinstance(exc, wire.MessageTooLarge):
                raise LimitExceeded(str(exc)) from exc
            cause = exc.__cause__ if isinstance(exc, wire.UnencodableValue) else None
            if isinstance(cause, BrokerError):
                raise cause from None
            if isinstance(exc, wire.UnencodableValue):
                raise TypeError(str(exc)) from exc
            raise

    def _to_wire(self, obj: Any) -> Any:
        """Encoder hook: what a non-native object becomes on the wire."""
        if isinstance(obj, RemoteReference):
            if obj._session is not self:
                raise BrokerError("a reference from another connection cannot be passed on (no third-party hand-off)")
            return ReturnedRef(obj.object_id)
        if isinstance(obj, Referenceable):
            if len(self.exports) >= self.limits.max_live_references and not self.exports.is_exported(obj):
                raise OverloadedError("broker.TooManyReferences", f"the limit of {self.limits.max_live_references} live references is reached")
            object_id = self.exports.add_send(obj)
            self._sent_refs.append(object_id)
            return ExportedRef(object_id)
        type_name = self.registry.name_for(obj)
        if type_name is not None:
            return CopyState(type_name, state_of(obj))
        if isinstance(obj, (tuple, set, frozenset)):
            return list(obj)
        raise TypeError(f"cannot send {type(obj).__qualname__}: register it as copyable or make it Referenceable")

    def _resolve(self, value: Any) -> Any:
        """Decoder hook: what a wire ext value becomes here."""
        kind = type(value)
        if kind is ExportedRef:
            return self.imports.received(value.object_id, self._make_proxy)
        if kind is ReturnedRef:
            obj = self.exports.get(value.object_id)
            if obj is None:
                self._problems.append(InvalidReferenceError("broker.NoSuchObject", f"object {value.object_id} is not ours to return"))
            return obj
        if kind is CopyState:
            try:
                return self.registry.build(value.type_name, value.state)
            except UnregisteredCopyError as exc:
                self._problems.append(exc)
            except Exception as exc:
                self._problems.append(RemoteError("broker.BadCopy", f"cannot build {value.type_name!r}: {exc}"))
            return None
        if kind is FailureInfo:
            return self._exception_from(value)
        return value

    def _make_proxy(self, object_id: int) -> RemoteReference:
        return RemoteReference(self, object_id)

    # -- releases --------------------------------------------------------------------------------

    def _proxy_died(self, object_id: int) -> None:
        """Weakref callback: may run in any thread, inside the GC. Queue only; never send here."""
        if self.state is State.CLOSED:
            return  # nothing to release to; the reactor may be gone too
        self._dead_proxies.append(object_id)
        if not self._release_scheduled:
            self._release_scheduled = True
            try:
                self._wake(self.flush_releases)
            except RuntimeError:  # the event loop closed under us: the connection is gone
                pass

    def flush_releases(self) -> None:
        """Send pending releases together (from the event loop)."""
        self._release_scheduled = False
        died: list[int] = []
        while self._dead_proxies:
            died.append(self._dead_proxies.popleft())
        if self.state is not State.OPEN:
            return
        releases = self.imports.collect_releases(died)
        if releases:
            encode = self._encoder.encode
            for object_id, count in releases.items():
                self._queue(encode(Decref(object_id, count)))
