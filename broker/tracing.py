"""OpenTelemetry spans for calls, when ``opentelemetry-api`` is installed (extra ``otel``).

Optional on purpose: the broker has one hard dependency (msgpack), and tracing is for those who
run a collector. Without the package this module is inert (:data:`ENABLED` is False) and calls
carry only the trace context a caller puts in their metadata itself.

With it, a call made gets a CLIENT span whose W3C context (``traceparent``, ``tracestate``) is
put in the call's metadata (PROTOCOL.md §18.3); a call served gets a SERVER span whose parent is
taken from that metadata, current while the method runs (a coroutine method: at every step, as
the span lives in its contextvars context), so nested calls are its children. Spans end when the
answer comes, or the call fails. Spans are made through the global tracer provider: with only
no provider set (the API alone, no SDK) no span is made at all (:func:`active`).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, Final

from net.defer import Failure

__all__ = ["ENABLED", "active", "client_span", "server_span", "end_span", "leave"]

try:
    from opentelemetry import context as _otel_context
    from opentelemetry import propagate as _propagate
    from opentelemetry import trace as _trace
except ImportError:  # the extra is not installed: no spans
    _trace = None  # type: ignore[assignment]

#: Whether spans are made (``opentelemetry-api`` importable).
ENABLED: Final = _trace is not None
_TRACE_KEYS: Final = ("traceparent", "tracestate")
_tracer: Any = _trace.get_tracer("pbroker") if _trace is not None else None  # a proxy: follows the provider set later


_provider_seen = False  # once a real provider is set it stays (OpenTelemetry sets it only once)


def active() -> bool:
    """Whether calls get spans now: the package is installed and a tracer provider is set (until
    then every span would be a no-op, so none is made and a call costs what it did).

    Asked on every call, so it is cheap: ``get_tracer_provider()`` reads the environment each
    time it finds none set, so until one is, only the module global it sets is looked at.
    """
    global _provider_seen
    if _provider_seen:
        return True
    if _trace is None or getattr(_trace, "_TRACER_PROVIDER", _trace) is None:
        return False  # not installed, or no provider set yet (the global exists and is None)
    _provider_seen = not isinstance(_trace.get_tracer_provider(), _trace.ProxyTracerProvider)
    return _provider_seen


def client_span(method: str, metadata: MutableMapping[str, str]) -> Any:
    """Start the CLIENT span of a call to ``method`` and write its trace context into ``metadata``."""
    span = _tracer.start_span(f"pbroker.call {method}", kind=_trace.SpanKind.CLIENT,
                              attributes={"rpc.system": "pbroker", "rpc.method": method})
    carrier: dict[str, str] = {}
    _propagate.inject(carrier, context=_trace.set_span_in_context(span))
    for key in _TRACE_KEYS:
        if key in carrier:
            metadata[key] = carrier[key]
    return span


def server_span(method: str, metadata: MutableMapping[str, str]) -> tuple[Any, Any]:
    """Start the SERVER span of a call being served, the child of the caller's span named in
    ``metadata``, and make it current: (span, token for :func:`leave`)."""
    parent = _propagate.extract(dict(metadata))
    span = _tracer.start_span(f"pbroker.serve {method}", context=parent, kind=_trace.SpanKind.SERVER,
                              attributes={"rpc.system": "pbroker", "rpc.method": method})
    token = _otel_context.attach(_trace.set_span_in_context(span, parent))
    return span, token


def leave(token: Any) -> None:
    """Make the span current before :func:`server_span` current again."""
    _otel_context.detach(token)


def end_span(result: Any, span: Any) -> Any:
    """Callback and errback: end ``span`` with the call's outcome; ``result`` passes through."""
    if isinstance(result, Failure):
        span.record_exception(result.value)
        span.set_status(_trace.Status(_trace.StatusCode.ERROR, str(result.value)[:200]))
    span.end()
    return result
