"""A small HTTP/1.1 server on our own transports, parsed by h11.

Enough HTTP for an application's own pages (the chat example's signup form), not a web framework:
a :data:`Handler` takes a :class:`Request` (the whole body already read) and returns a
:class:`Response`, a Deferred of one, or an awaitable of one. :func:`web_factory` makes the
protocol factory for any listening port; :class:`WebService` is that factory listening on an
endpoint string, as a service.

Why it looks like this:

* **h11 parses, we never do.** h11 is sans-I/O (bytes in, events out, bytes back), so this module
  is only the glue: one :class:`HTTPChannel` per connection feeds h11 what the transport reads
  and writes what h11 produces. Keep-alive, pipelining and framing rules are h11's.
* **In order, one at a time.** A pipelined request is not parsed until the response to the one
  before it is written: responses leave in request order without a queue of pending responses.
* **Bounded, because the peer is not trusted.** The request line and headers are bounded by
  ``max_header_bytes`` (431), the target by ``max_target_bytes`` (414), the body by
  ``max_body_bytes`` (413, from the Content-Length before a byte of it is read where possible), a
  request must arrive completely within ``timeout`` seconds (408; an idle keep-alive connection
  is closed quietly), and bytes pipelined behind a request being handled are read only up to
  ``max_header_bytes + max_body_bytes`` before the channel stops reading. Output is bounded too:
  the channel is its transport's push producer, so while the transport's write buffer is above
  its high-water mark (a client that does not read its responses) nothing more is read or
  handled; a client that stays stalled for ``timeout`` seconds is dropped.
* **Whose fault it is.** A malformed request is the client's: a 4xx with ``Connection: close``,
  the reason logged at INFO, and that connection closed; nothing else is affected. A handler that
  raises (or returns something that is not a Response) is ours: a plain 500 goes to the client,
  the traceback goes to the log (``net.web``) and never onto the wire, and the connection stays
  usable.
"""

from __future__ import annotations

import http
import logging
import urllib.parse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Union

try:
    import h11
except ImportError as exc:  # an optional dependency: say which extra brings it
    raise ImportError("net.web needs h11, the sans-I/O HTTP/1.1 parser: pip install 'pbroker[web]'") from exc

from .defer import Deferred, Failure, ensure_deferred, maybe_deferred
from .error import ProtocolViolation
from .protocol import Factory, Protocol
from .service import StreamServerService

if TYPE_CHECKING:
    from .address import Address
    from .contracts import DelayedCall, Reactor, ReactorTime, Transport

__all__ = [
    "Request", "Response", "Handler", "WebLimits", "HTTPChannel", "WebFactory", "WebService",
    "web_factory", "status_phrase", "peer_text",
]

log = logging.getLogger(__name__)


def peer_text(peer: object) -> str:
    """``host:port`` of a TCP peer (what a log line wants), else the address as it prints."""
    host, port = getattr(peer, "host", None), getattr(peer, "port", None)
    if host is not None and port is not None:
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(peer)


def status_phrase(status: int) -> str:
    """The standard reason phrase of ``status`` ("Not Found"), or "" for a code without one."""
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


@dataclass
class Request:
    """One complete HTTP request, body included.

    ``target`` is the request target as sent (``/signup?x=1``); ``path`` is its path, percent-
    decoded; ``query`` its query string parsed (blank values kept). Header names are lower case,
    values as sent (latin-1 decoded), in order, repeats kept. ``client`` is the transport's
    ``get_peer()`` (an :class:`~net.address.Address` for TCP).
    """

    method: str
    target: str
    path: str
    query: dict[str, list[str]]
    headers: list[tuple[str, str]]
    body: bytes
    client: Address | object
    http_version: str = "1.1"

    def header(self, name: str, default: str | None = None) -> str | None:
        """The first value of header ``name`` (any case), or ``default``."""
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return default

    def cookies(self) -> dict[str, str]:
        """The request's cookies (every ``Cookie`` header; the first of a repeated name wins)."""
        jar: dict[str, str] = {}
        for key, value in self.headers:
            if key != "cookie":
                continue
            for part in value.split(";"):
                name, sep, val = part.strip().partition("=")
                if sep and name and name not in jar:
                    jar[name] = val.strip()
        return jar

    def form(self) -> dict[str, list[str]]:
        """The body as an ``application/x-www-form-urlencoded`` form (empty if it is not one)."""
        content_type = (self.header("content-type") or "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            return {}
        return urllib.parse.parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)


@dataclass
class Response:
    """What a handler answers. ``Content-Length`` is added (any the handler set is replaced)."""

    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @classmethod
    def html(cls, text: str, status: int = 200, headers: list[tuple[str, str]] | None = None) -> Response:
        """An HTML page (``text`` must already be escaped where it echoes input)."""
        return cls(status, [("Content-Type", "text/html; charset=utf-8"), *(headers or [])], text.encode())

    @classmethod
    def text(cls, text: str, status: int = 200, headers: list[tuple[str, str]] | None = None) -> Response:
        """A plain-text body."""
        return cls(status, [("Content-Type", "text/plain; charset=utf-8"), *(headers or [])], text.encode())

    @classmethod
    def redirect(cls, location: str, status: int = 303) -> Response:
        """Send the browser to ``location`` (303: "see other", fetched with GET)."""
        return cls(status, [("Location", location)])


Handler = Callable[[Request], Union[Response, Deferred[Response], Awaitable[Response]]]
"""A request handler: the response now, later (a Deferred), or from a coroutine."""


@dataclass(frozen=True)
class WebLimits:
    """What one connection may make the server hold or wait for (see the module doc)."""

    max_header_bytes: int = 16384
    """Request line plus headers; above it: 431 Request Header Fields Too Large."""
    max_body_bytes: int = 65536
    """Request body; above it: 413 Content Too Large."""
    max_target_bytes: int = 8192
    """Request target (path and query); above it: 414 URI Too Long."""
    timeout: float | None = 30.0
    """Seconds a client has to send a complete request (408), or to start reading its responses
    again once the write buffer is full; also how long a keep-alive connection may sit idle."""
    write_buffer_high: int = 64 * 1024
    """The transport's high-water mark: responses queued above it pause the channel."""

    def __post_init__(self) -> None:
        for name in ("max_header_bytes", "max_body_bytes", "max_target_bytes", "write_buffer_high"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"WebLimits.{name} must be a non-negative int, got {value!r}")
        if self.timeout is not None and not self.timeout > 0:
            raise ValueError(f"WebLimits.timeout must be positive seconds or None, got {self.timeout!r}")


LINGER_SECONDS = 2.0
"""How long a refused connection is kept half-open to read (and drop) what the client still sends."""


class _ClientError(Exception):
    """The client sent something we refuse: answer ``status`` and close."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class HTTPChannel(Protocol):
    """One HTTP connection: feeds h11, runs the handler for each request in turn, writes back.

    Also the transport's push producer (registered at ``connection_made``): paused while the
    transport's write buffer is full, so a client that does not read gets no more work done.
    """

    def __init__(self, handler: Handler, limits: WebLimits, clock: ReactorTime | None) -> None:
        self.handler = handler
        self.limits = limits
        self.clock = clock
        self._conn = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_header_bytes)
        self._request: h11.Request | None = None  # the request being read
        self._body = bytearray()
        self._handling: Request | None = None  # the request whose handler has not answered yet
        self._output_paused = False
        self._reading_paused = False
        self._processing = False
        self._closed = False
        self._timer: DelayedCall | None = None
        self._linger_reason: BaseException | None = None  # set while lingering after a refusal
        self.requests_handled = 0

    def __repr__(self) -> str:
        peer = peer_text(self.transport.get_peer()) if self.transport is not None else "unconnected"
        return f"<HTTPChannel {peer}>"

    # -- transport callbacks ---------------------------------------------------------------------

    def connection_made(self, transport: Transport) -> None:
        transport.set_write_buffer_limits(high=self.limits.write_buffer_high)
        transport.register_producer(self, True)
        self._arm_timer()

    def data_received(self, data: bytes) -> None:
        if self._closed or self.transport.is_closing():
            return  # never buffer what we will not read
        self._conn.receive_data(data)
        self._process()
        self._update_reading()

    def eof_received(self) -> bool:
        # Keep our side open: a client may half-close after its last request and still read the
        # answer. h11 then says MUST_CLOSE (or reports a request cut short), and we close.
        if self._linger_reason is not None:
            self.transport.lose_connection(self._linger_reason)  # the refused client is done too
            return False
        if not self._closed:
            self._conn.receive_data(b"")
            self._process()
            if not self._closed and self._handling is None and self._conn.their_state is h11.CLOSED:
                self._close()
        return True

    def connection_lost(self, reason: Failure) -> None:
        self._closed = True
        self._cancel_timer()
        # A handler still running finishes; its response is dropped (see _respond). It is not
        # cancelled: a signup half-written to a database is worse than a wasted answer.

    # -- producer (the transport calls these about its write buffer) -----------------------------

    def pause_producing(self) -> None:
        self._output_paused = True
        self._update_reading()
        self._arm_timer()  # the client has `timeout` seconds to read some of what it asked for

    def resume_producing(self) -> None:
        self._output_paused = False
        if self._handling is None:
            self._arm_timer()  # a fresh `timeout` for the next (or the partly read) request
        else:
            self._cancel_timer()  # the handler's time is not the client's
        self._process()
        self._update_reading()

    def stop_producing(self) -> None:
        self._closed = True
        self._cancel_timer()

    # -- the request loop ------------------------------------------------------------------------

    def _process(self) -> None:
        """Take h11's events until it needs data, a handler is running, or output is paused."""
        if self._processing:
            return  # a handler answered synchronously inside the loop: the loop goes on
        self._processing = True
        try:
            while not (self._closed or self._output_paused or self._handling is not None):
                try:
                    event = self._conn.next_event()
                except h11.RemoteProtocolError as exc:
                    self._refuse(exc.error_status_hint, f"bad request: {exc}")
                    return
                try:
                    if not self._on_event(event):
                        return
                except _ClientError as exc:
                    self._refuse(exc.status, str(exc))
                    return
        finally:
            self._processing = False

    def _on_event(self, event: Any) -> bool:
        """Act on one h11 event; False once there is nothing to do until more happens."""
        if event is h11.NEED_DATA or event is h11.PAUSED:
            return False
        if isinstance(event, h11.Request):
            self._start_request(event)
        elif isinstance(event, h11.Data):
            if len(self._body) + len(event.data) > self.limits.max_body_bytes:
                raise _ClientError(413, f"request body over the limit of {self.limits.max_body_bytes} bytes")
            self._body += event.data
        elif isinstance(event, h11.EndOfMessage):
            self._dispatch()
        elif isinstance(event, h11.ConnectionClosed):
            self._close()
            return False
        return True

    def _start_request(self, event: h11.Request) -> None:
        # h11 bounds an *incomplete* head (max_incomplete_event_size); a complete one that arrived
        # in one read is bounded here, by its size as sent (give or take spaces around colons).
        head = len(event.method) + len(event.target) + 12 + sum(len(k) + len(v) + 4 for k, v in event.headers)
        if head > self.limits.max_header_bytes:
            raise _ClientError(431, f"request head of about {head} bytes, over the limit of "
                                    f"{self.limits.max_header_bytes}")
        if len(event.target) > self.limits.max_target_bytes:
            raise _ClientError(414, f"request target of {len(event.target)} bytes, over the limit of "
                                    f"{self.limits.max_target_bytes}")
        for name, value in event.headers:
            if name == b"content-length" and int(value) > self.limits.max_body_bytes:
                raise _ClientError(413, f"Content-Length {int(value)} over the limit of "
                                        f"{self.limits.max_body_bytes} bytes")
        self._request = event
        self._body = bytearray()
        if self._conn.they_are_waiting_for_100_continue:
            self.transport.write(self._conn.send(h11.InformationalResponse(status_code=100, headers=[])))

    def _dispatch(self) -> None:
        event = self._request
        assert event is not None, "h11 ended a message that never started"
        self._cancel_timer()
        target = event.target.decode("latin-1")
        split = urllib.parse.urlsplit(target)
        request = Request(
            method=event.method.decode("latin-1"),
            target=target,
            path=urllib.parse.unquote(split.path),
            query=urllib.parse.parse_qs(split.query, keep_blank_values=True),
            headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers],
            body=bytes(self._body),
            client=self.transport.get_peer(),
            http_version=event.http_version.decode("latin-1"),
        )
        self._request = None
        self._body = bytearray()
        self._handling = request
        d = maybe_deferred(self.handler, request)
        d.add_callback(self._awaited)
        d.add_callbacks(self._respond, self._handler_failed, callback_args=(request,), errback_args=(request,))

    @staticmethod
    def _awaited(result: Any) -> Any:
        """A handler may return any awaitable (an asyncio future, an object with __await__)."""
        if not isinstance(result, Response) and hasattr(type(result), "__await__"):
            return ensure_deferred(result)
        return result

    def _handler_failed(self, failure: Failure, request: Request) -> None:
        log.error("handler %r failed on %s %s from %s; answering 500:\n%s", self.handler,
                  request.method, request.target, peer_text(request.client), failure.get_traceback())
        self._respond(Response.text("Internal Server Error: the server failed to answer; "
                                    "the details are in its log.\n", status=500), request)

    def _respond(self, response: object, request: Request) -> None:
        if self._closed:
            log.info("%s %s from %s: the client left before the answer", request.method,
                     request.target, peer_text(request.client))
            return
        if not isinstance(response, Response):
            log.error("handler %r returned %r for %s %s, not a net.web.Response; answering 500",
                      self.handler, response, request.method, request.target)
            response = Response.text("Internal Server Error\n", status=500)
        try:
            data = self._encode(response, request.method == "HEAD")
        except h11.LocalProtocolError as exc:
            log.error("handler %r answered %s %s with a response HTTP cannot carry (%s); answering 500",
                      self.handler, request.method, request.target, exc)
            data = self._encode(Response.text("Internal Server Error\n", status=500), request.method == "HEAD")
        self.requests_handled += 1
        self.transport.write(data)
        self._handling = None
        if self._conn.our_state is h11.MUST_CLOSE or self._conn.their_state is not h11.DONE:
            self._close()
            return
        self._conn.start_next_cycle()
        self._arm_timer()
        self._process()
        self._update_reading()

    def _encode(self, response: Response, head: bool) -> bytes:
        """The response's bytes; raises h11.LocalProtocolError (before any state changes) if the
        handler's status or headers cannot go on the wire."""
        headers = [(k, v) for k, v in response.headers if k.lower() not in ("content-length", "transfer-encoding")]
        headers.append(("Content-Length", str(len(response.body))))
        if not 200 <= response.status <= 599:
            raise h11.LocalProtocolError(f"status {response.status} is not a final response")
        event = h11.Response(status_code=response.status, headers=headers,
                             reason=status_phrase(response.status).encode())  # validates here
        chunks = [self._conn.send(event)]
        if response.body and not head:
            chunks.append(self._conn.send(h11.Data(data=response.body)))
        chunks.append(self._conn.send(h11.EndOfMessage()))
        return b"".join(c for c in chunks if c)

    # -- refusing, closing, timing out -----------------------------------------------------------

    def _refuse(self, status: int, message: str) -> None:
        """The client's fault: answer ``status`` with Connection: close, log why, close."""
        log.info("%s: %s; answering %d and closing the connection",
                 peer_text(self.transport.get_peer()), message, status)
        if self._conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            body = f"{status} {status_phrase(status)}: {message}\n".encode()
            event = h11.Response(status_code=status, reason=status_phrase(status).encode(), headers=[
                ("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))),
                ("Connection", "close")])
            try:
                self.transport.write(self._conn.send(event) + (self._conn.send(h11.Data(data=body)) or b"")
                                     + (self._conn.send(h11.EndOfMessage()) or b""))
            except h11.LocalProtocolError:  # h11 cannot frame an answer now: closing says enough
                pass
        self._close(ProtocolViolation(message), linger=True)

    def _close(self, reason: BaseException | None = None, linger: bool = False) -> None:
        """Close after what is written. ``linger``: half-close and read (discarding) until the
        client closes too, for up to :data:`LINGER_SECONDS`, so that a refused client's unread
        request body does not make our kernel reset the connection before it read the refusal."""
        if self._closed:
            return
        self._closed = True
        self._cancel_timer()
        timeout = self.limits.timeout
        if linger and self.clock is not None and timeout is not None and self.transport.can_write_eof():
            self._linger_reason = reason
            self.transport.write_eof()
            if self._reading_paused:
                self._reading_paused = False
                self.transport.resume_reading()
            self._timer = self.clock.call_later(min(timeout, LINGER_SECONDS), self.transport.lose_connection, reason)
        else:
            self.transport.lose_connection(reason)

    def _update_reading(self) -> None:
        """Read unless output is paused or too much is buffered behind a request being handled."""
        if self._closed:
            return
        buffered = len(self._conn.trailing_data[0])
        backlog = self.limits.max_header_bytes + self.limits.max_body_bytes
        busy = self._handling is not None or self._conn.their_state is h11.DONE
        pause = self._output_paused or (busy and buffered > backlog)
        if pause != self._reading_paused:
            self._reading_paused = pause
            if pause:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()

    def _arm_timer(self) -> None:
        self._cancel_timer()
        if self.clock is not None and self.limits.timeout is not None and not self._closed:
            self._timer = self.clock.call_later(self.limits.timeout, self._timed_out)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        if self._closed:
            return
        timeout = self.limits.timeout
        if self._output_paused:
            log.info("%s: did not read its responses for %ss; dropping the connection",
                     peer_text(self.transport.get_peer()), timeout)
            self._closed = True
            self.transport.abort_connection(ProtocolViolation(f"client stopped reading for {timeout}s"))
        elif self._handling is not None:
            pass  # the handler's time is not the client's fault
        elif self._request is not None or self._conn.trailing_data[0]:
            self._refuse(408, f"no complete request within {timeout}s")
        else:
            log.debug("%s: idle for %ss; closing", peer_text(self.transport.get_peer()), timeout)
            self._close()


class WebFactory(Factory):
    """Builds an :class:`HTTPChannel` per connection, all with one handler, limits and clock."""

    def __init__(self, handler: Handler, limits: WebLimits, clock: ReactorTime | None) -> None:
        self.handler = handler
        self.limits = limits
        self.clock = clock

    def build_protocol(self, addr: Address) -> HTTPChannel:
        channel = HTTPChannel(self.handler, self.limits, self.clock)
        channel.factory = self
        return channel


def web_factory(handler: Handler, *, clock: ReactorTime | None = None, **limits: Any) -> WebFactory:
    """A protocol factory serving ``handler`` over HTTP/1.1 on any stream transport.

    ``limits`` are :class:`WebLimits` fields (``max_header_bytes=``, ``max_body_bytes=``,
    ``max_target_bytes=``, ``timeout=``, ``write_buffer_high=``). ``clock`` (a reactor, or a
    :class:`net.testing.Clock`) runs the timeouts; without one no connection ever times out, so
    pass one for anything facing a network (:class:`WebService` passes its reactor).
    """
    return WebFactory(handler, WebLimits(**limits), clock)


class WebService(StreamServerService):
    """``handler`` served over HTTP on the endpoint string ``endpoint`` ("tcp:8080:interface=127.0.0.1").

    A :class:`~net.service.StreamServerService`: ``start_service`` listens (its Deferred fires
    once the port is open; :attr:`port` is then set), ``stop_service`` stops listening (fires once
    closed; connections already open finish what they are doing). ``limits`` are the other
    :class:`WebLimits` fields; the reactor runs the timeouts.
    """

    def __init__(self, reactor: Reactor, endpoint: str, handler: Handler, *,
                 max_header_bytes: int = 16384, max_body_bytes: int = 65536, **limits: Any) -> None:
        factory = web_factory(handler, clock=reactor, max_header_bytes=max_header_bytes,
                              max_body_bytes=max_body_bytes, **limits)
        super().__init__(reactor, endpoint, factory)
        self.web_factory = factory
