"""Per-call options: a deadline and a little metadata that travel with a call (PROTOCOL.md §18).

Options never travel in the remote method's own keyword arguments (pb.py's ``timeout=`` popped
from user kwargs is what we avoid): the caller says ``ref.options(timeout=5, metadata={...})``,
a view of the reference, or sets a per-connection default (``Limits.call_timeout``). With the
feature ``"call-options"`` negotiated, the call carries field 8, ``options``::

    {"timeout": <seconds left, a float or int >= 0>, "metadata": {str: str, ...}}

The budget is relative, so the two clocks need not agree. The callee keeps a timer per call only
while it runs (none for a call without a timeout, nothing per connection); when the timer fires
the call's Deferred (a coroutine method: at its ``await``) is cancelled and the caller gets kind
``"deadline"``. A method learns about its call from :func:`current_call`, a
:class:`CallContext` kept in a ContextVar: nested calls made while serving a call inherit the
remaining budget (and the trace context), and a method that hands work to a thread passes the
context along and checks :attr:`CallContext.cancelled` there, a cancellation token.

Metadata carries W3C trace context (``traceparent``, ``tracestate``); from it comes the call id
that the ``broker.calls`` log lines of a call show (:func:`call_id_of`). When
``opentelemetry-api`` is importable (extra ``otel``), :mod:`broker.tracing` makes client and
server spans, the server's the child of the client's.

This module is sans-I/O: it uses the session's clock (anything with ``seconds()`` and
``call_later()``) and never a socket or a thread.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import math
import re
from types import CoroutineType, MappingProxyType
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from net.defer import CancelledError, Deferred, Failure, ensure_deferred

from . import tracing
from .errors import DeadlineExceeded, RemoteError
from .messages import DEADLINE, FEATURE_CALL_OPTIONS, FailureInfo

if TYPE_CHECKING:
    from .messages import Call
    from .session import RemoteReference, Session

__all__ = [
    "CallOptions",
    "CallContext",
    "OptionsView",
    "InvalidCallOptions",
    "current_call",
    "call_id_of",
    "CallIdFilter",
    "MAX_METADATA_ENTRIES",
    "MAX_METADATA_BYTES",
    "MAX_TIMEOUT",
    "TRACE_KEYS",
    "FEATURE_CALL_OPTIONS",
]

#: Limits on a call's metadata (§18.2): entries, and UTF-8 bytes of all keys and values together.
MAX_METADATA_ENTRIES: Final = 32
MAX_METADATA_BYTES: Final = 8 * 1024
#: The longest budget a call may carry, in seconds (about 31 years: "no deadline" is no timeout).
MAX_TIMEOUT: Final = 1e9
#: Metadata keys of W3C trace context; nested calls inherit them unless given their own.
TRACE_KEYS: Final = ("traceparent", "tracestate")
_TRACEPARENT: Final = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")

calls_log = logging.getLogger("broker.calls")


class InvalidCallOptions(RemoteError):
    """The call's options broke §18's rules (kind "invalid"): the caller's mistake, the call is
    refused, the connection stays."""

    kind = "invalid"


def _metadata_error(metadata: Mapping[Any, Any]) -> str | None:
    """Why ``metadata`` breaks the limits, or None."""
    if len(metadata) > MAX_METADATA_ENTRIES:
        return f"{len(metadata)} metadata entries; the limit is {MAX_METADATA_ENTRIES}"
    size = 0
    for key, value in metadata.items():
        if type(key) is not str or type(value) is not str:
            return f"metadata maps str to str, not {type(key).__name__} to {type(value).__name__}"
        if not key:
            return "metadata keys must not be empty"
        size += len(key.encode()) + len(value.encode())
    if size > MAX_METADATA_BYTES:
        return f"{size} bytes of metadata; the limit is {MAX_METADATA_BYTES}"
    return None


def _timeout_error(timeout: Any) -> str | None:
    if type(timeout) not in (int, float):
        return f"timeout must be seconds (an int or float), not {type(timeout).__name__}"
    if not (math.isfinite(timeout) and 0 <= timeout <= MAX_TIMEOUT):
        return f"timeout must be between 0 and {MAX_TIMEOUT:g} seconds, got {timeout!r}"
    return None


@dataclass(frozen=True, slots=True)
class CallOptions:
    """What ``ref.options(...)`` sets for the calls made through its view.

    ``timeout``: seconds the caller waits for the answer (then DeadlineExceeded, and with
    "call-options" negotiated the callee is told to stop); None: the connection's default
    (``Limits.call_timeout``). ``metadata``: str to str, at most MAX_METADATA_ENTRIES entries
    and MAX_METADATA_BYTES bytes. A wrong value raises here, where the caller wrote it.
    """

    timeout: float | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.timeout is not None:
            error = _timeout_error(self.timeout)
            if error is not None:
                raise ValueError(f"ref.options(timeout={self.timeout!r}): {error}")
        if not isinstance(self.metadata, Mapping):
            raise TypeError(f"ref.options(metadata=...) takes a mapping of str to str, not {type(self.metadata).__name__}")
        error = _metadata_error(self.metadata)
        if error is not None:
            raise ValueError(f"ref.options(metadata=...): {error}")
        object.__setattr__(self, "metadata", dict(self.metadata))

    def merged(self, timeout: float | None = None, metadata: Mapping[str, str] | None = None) -> CallOptions:
        """These options with ``timeout`` replaced (if given) and ``metadata`` added."""
        return CallOptions(self.timeout if timeout is None else timeout, {**self.metadata, **(metadata or {})})


def parse_options(options: dict[Any, Any]) -> tuple[float | None, dict[str, str]]:
    """The (timeout, metadata) of a received call's ``options`` field; InvalidCallOptions if it
    breaks the rules. Unknown keys are ignored (later versions may add some)."""
    timeout = options.get("timeout")
    if timeout is not None:
        error = _timeout_error(timeout)
        if error is not None:
            raise InvalidCallOptions("broker.BadCallOptions", error)
    metadata = options.get("metadata")
    if metadata is None:
        metadata = {}
    elif type(metadata) is not dict:
        raise InvalidCallOptions("broker.BadCallOptions", f"metadata must be a map, not {type(metadata).__name__}")
    else:
        error = _metadata_error(metadata)
        if error is not None:
            raise InvalidCallOptions("broker.BadCallOptions", error)
    return (None if timeout is None else float(timeout)), metadata


def call_id_of(metadata: Mapping[str, str]) -> str | None:
    """What logs call this call: ``<trace-id>-<parent-id>`` of a valid traceparent, else the
    metadata's ``call-id``, else None."""
    traceparent = metadata.get("traceparent")
    if type(traceparent) is str:
        match = _TRACEPARENT.match(traceparent)
        if match is not None:
            return f"{match.group(1)}-{match.group(2)}"
    call_id = metadata.get("call-id")
    return call_id[:128] if type(call_id) is str and call_id else None


def call_id_for(call: Call) -> str | None:
    """The call id of a received call (None without metadata naming one)."""
    options = call.options
    metadata = options.get("metadata") if options else None
    return call_id_of(metadata) if type(metadata) is dict else None


class CallContext:
    """The call being served: what ``broker.current_call()`` returns inside a remote method.

    ``deadline`` is on the session's clock (None: no deadline); ``remaining()`` the seconds left.
    ``cancelled`` turns True once the call is cancelled (deadline, the caller's cancel, the
    connection lost): a method running work in a thread passes the context there and checks it.
    """

    __slots__ = ("session", "request_id", "method", "deadline", "metadata", "call_id", "cancelled",
                 "expired", "_clock", "_timer", "_span")

    def __init__(self, session: Session, call: Call, timeout: float | None, metadata: Mapping[str, str], clock: Any) -> None:
        self.session = session
        self.request_id = call.request_id
        self.method = call.method
        self._clock = clock
        self.deadline: float | None = None
        if timeout is not None and clock is not None:
            self.deadline = clock.seconds() + timeout
        self.metadata: Mapping[str, str] = metadata
        self.call_id = call_id_of(metadata) if metadata else None
        self.cancelled = False
        #: True if it was the deadline that cancelled it.
        self.expired = False
        self._timer: Any = None
        self._span: Any = None  # the SERVER span (broker.tracing), while it runs

    @property
    def perspective(self) -> Any:
        """Who called: the connection's perspective (its avatar once logged in)."""
        return self.session.perspective

    @property
    def peer(self) -> Any:
        """The caller's address."""
        return self.session.peer

    def remaining(self) -> float | None:
        """Seconds left before the deadline (0.0 once passed); None without a deadline."""
        if self.deadline is None:
            return None
        left: float = self.deadline - self._clock.seconds()
        return max(0.0, left)

    def raise_if_cancelled(self) -> None:
        """Raise DeadlineExceeded or CancelledError if the call was cancelled (from any thread)."""
        if self.expired:
            raise DeadlineExceeded("broker.DeadlineExceeded", f"the deadline of call {self.method!r} passed")
        if self.cancelled:
            raise CancelledError(f"call {self.method!r} was cancelled")

    def __repr__(self) -> str:
        return f"<CallContext {self.method!r} #{self.request_id} remaining={self.remaining()} id={self.call_id}>"


_CURRENT: Final[contextvars.ContextVar[CallContext | None]] = contextvars.ContextVar("broker.current_call", default=None)


def current_call() -> CallContext | None:
    """The call this code is serving (a remote method, and what it awaits), else None."""
    return _CURRENT.get()


class CallIdFilter(logging.Filter):
    """A logging filter that gives each record ``call_id`` (the call being served, or "-"), so a
    format with ``%(call_id)s`` ties a method's own log lines to its caller."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "call_id"):
            ctx = _CURRENT.get()
            record.call_id = (ctx.call_id if ctx is not None else None) or "-"
        return True


class OptionsView:
    """A reference seen through call options: ``ref.options(timeout=2).call_remote("m", ...)``."""

    __slots__ = ("reference", "call_options")

    def __init__(self, reference: RemoteReference, call_options: CallOptions) -> None:
        self.reference = reference
        self.call_options = call_options

    def options(self, timeout: float | None = None, metadata: Mapping[str, str] | None = None) -> OptionsView:
        """A view with more options (``timeout`` replaced, ``metadata`` added)."""
        return OptionsView(self.reference, self.call_options.merged(timeout, metadata))

    def call_remote(self, _name: str, /, *args: Any, **kwargs: Any) -> Deferred[Any]:
        ref = self.reference
        return ref.session.call(ref.object_id, _name, args, kwargs, options=self.call_options)

    def call_remote_no_answer(self, _name: str, /, *args: Any, **kwargs: Any) -> None:
        ref = self.reference
        ref.session.call_no_answer(ref.object_id, _name, args, kwargs, options=self.call_options)

    def __repr__(self) -> str:
        return f"<OptionsView {self.call_options} of {self.reference!r}>"


# -- hooks the session calls ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Plan:
    """How one outgoing call uses options: the field to send (None: none) and the local timeout."""

    wire: dict[str, Any] | None
    timeout: float | None
    #: The call's CLIENT span (broker.tracing), or None.
    span: Any = None

    def started(self, d: Deferred[Any]) -> None:
        """The call is sent and ``d`` waits for its answer: end the span with it."""
        if self.span is not None:
            d.add_both(tracing.end_span, self.span)

    @staticmethod
    def deadline_passed(failure: Failure, name: str, timeout: float) -> Failure:
        """Errback after ``add_timeout``: our own timer's TimeoutError becomes DeadlineExceeded."""
        exc = failure.value
        if isinstance(exc, TimeoutError) and not isinstance(exc, DeadlineExceeded):
            error = DeadlineExceeded("broker.DeadlineExceeded", f"no answer to {name!r} within its {timeout:g} s deadline")
            error.__cause__ = exc
            return Failure(error)
        return failure


def plan_call(session: Session, name: str, options: CallOptions | None, *, one_way: bool = False) -> Plan | None:
    """The plan for an outgoing call, or None when nothing differs from a plain call.

    The budget: the options' timeout, else the connection's ``Limits.call_timeout``; never more
    than what the call being served (if any) has left. Metadata: the options', plus the served
    call's trace keys (unless given), plus a traceparent from :mod:`broker.tracing` if active.
    """
    parent = _CURRENT.get()
    default = session.limits.call_timeout
    negotiated = FEATURE_CALL_OPTIONS in session._decoder.negotiated
    plain_here = options is None and (parent is None or (parent.deadline is None and not parent.metadata))
    if plain_here and (default is None or not negotiated) and (one_way or not (tracing.ENABLED and tracing.active())):
        return None  # a plain call, exactly as without the feature (every call asks: kept cheap)
    traced = tracing.ENABLED and not one_way and tracing.active()
    timeout = default if options is None or options.timeout is None else options.timeout
    metadata: dict[str, str] = {}
    if parent is not None:
        left = parent.remaining()
        if left is not None:
            timeout = left if timeout is None else min(timeout, left)
        for key in TRACE_KEYS:
            if key in parent.metadata:
                metadata[key] = parent.metadata[key]
    if options is not None:
        metadata.update(options.metadata)
    span = tracing.client_span(name, metadata) if traced else None
    wire: dict[str, Any] | None = None
    if negotiated:
        wire = {}
        if timeout is not None:
            wire["timeout"] = float(timeout)
        if metadata:
            if _metadata_error(metadata) is not None:  # inherited keys pushed it over: drop them
                metadata = dict(options.metadata) if options is not None else {}
            wire["metadata"] = metadata
        if not wire:
            wire = None
    return Plan(wire, timeout, span)


def enter_call(session: Session, call: Call) -> CallContext:
    """The context of a call arriving (its options checked by :func:`options_refusal` already)."""
    timeout: float | None = None
    metadata: dict[str, str] = {}
    if call.options is not None:
        timeout, metadata = parse_options(call.options)
    return CallContext(session, call, timeout, metadata, session._clock)


def options_refusal(options: dict[Any, Any]) -> BaseException | None:
    """Why a received call's options make it refused (kind "invalid"), or None."""
    try:
        parse_options(options)
    except InvalidCallOptions as exc:
        return exc
    return None


def serve_call(session: Session, target: Any, call: Call) -> tuple[CallContext, Any]:
    """:func:`enter_call` then :func:`invoke`, in one step: what the session does for every call
    it serves (one Python call fewer per round trip than the two, which matters at the floor)."""
    options = call.options
    if options is None:
        ctx = CallContext(session, call, None, _NO_METADATA, session._clock)
    else:
        timeout, metadata = parse_options(options)
        ctx = CallContext(session, call, timeout, metadata, session._clock)
    if tracing.ENABLED and tracing.active():
        return ctx, invoke(ctx, target, session, call)
    token = _CURRENT.set(ctx)
    try:
        result = target.remote_message_received(session, call.method, call.args, call.kwargs)
        if type(result) is CoroutineType:
            result = ensure_deferred(result)
    finally:
        _CURRENT.reset(token)
    return ctx, result


_NO_METADATA: Final[Mapping[str, str]] = MappingProxyType({})  # every call without options shares it


def invoke(ctx: CallContext, target: Any, session: Session, call: Call) -> Any:
    """Run the remote method with ``ctx`` as the current call; a coroutine is started in it (so it
    keeps the context at every step: net.defer runs each coroutine in its own copy)."""
    token = _CURRENT.set(ctx)
    span_token = None
    if tracing.ENABLED and tracing.active():
        ctx._span, span_token = tracing.server_span(call.method, ctx.metadata)  # type: ignore[arg-type]
    try:
        result = target.remote_message_received(session, call.method, call.args, call.kwargs)
        result = ensure_deferred(result) if inspect.iscoroutine(result) else result
    except BaseException as exc:
        if ctx._span is not None:
            tracing.end_span(Failure(exc), ctx._span)
        raise
    finally:
        if span_token is not None:
            tracing.leave(span_token)
        _CURRENT.reset(token)
    if ctx._span is not None and not isinstance(result, Deferred):
        tracing.end_span(result, ctx._span)  # answered at once; a Deferred's ends in _ended
    return result


def watch(session: Session, ctx: CallContext, running: Deferred[Any], request_id: int | None) -> None:
    """A call returned a Deferred: mark ``ctx`` when it is cancelled, and if it has a deadline keep
    a timer until it ends. ``request_id`` is None for a one-way call (nothing to answer)."""
    running.add_both(_ended, ctx)
    if ctx.deadline is not None and not running.called:
        left = ctx.remaining()
        ctx._timer = ctx._clock.call_later(left, _expired, session, ctx, running, request_id)


def _ended(result: Any, ctx: CallContext) -> Any:
    if isinstance(result, Failure) and isinstance(result.value, CancelledError):
        ctx.cancelled = True
    span, ctx._span = ctx._span, None
    if span is not None:
        tracing.end_span(result, span)
    timer, ctx._timer = ctx._timer, None
    if timer is not None and timer.active():
        timer.cancel()
    return result


def _expired(session: Session, ctx: CallContext, running: Deferred[Any], request_id: int | None) -> None:
    """The deadline passed: answer "deadline" (the answer slot taken first, so the cancellation's
    own failure is not sent too), then cancel the method."""
    ctx._timer = None
    ctx.expired = ctx.cancelled = True
    where = f" [call {ctx.call_id}]" if ctx.call_id else ""
    calls_log.info("%r: deadline passed for remote call %r%s; cancelling it", session, ctx.method, where,
                   extra={"call_id": ctx.call_id or "-", "method": ctx.method})
    if request_id is not None and session.answers.get(request_id) is running:
        del session.answers[request_id]
        session._send_error(request_id, DeadlineExceeded("broker.DeadlineExceeded",
                                                         f"the deadline of call {ctx.method!r} passed on the callee"))
    running.cancel()


def for_peer(info: FailureInfo, negotiated: frozenset[str]) -> FailureInfo:
    """A failure as the peer may receive it: kind "deadline" only if it negotiated the feature."""
    if info.kind == DEADLINE and FEATURE_CALL_OPTIONS not in negotiated:
        return FailureInfo("cancelled", info.type_name, info.message, info.traceback)
    return info
