"""A manhole: an interactive Python console inside a running server, and its terminal client.

``ManholeService(reactor, "unix:/run/app/manhole.sock", {"app": app})`` listens for consoles;
``pbroker manhole unix:/run/app/manhole.sock`` (:func:`run_client`) opens one. Whoever connects
runs any code as the server's user, so the service listens only where the peer is known:

* ``unix:PATH``: the socket file is always created mode 0600 (whatever ``mode=`` says), so only
  the server's user (and root) can connect, and a peer whose ``SO_PEERCRED`` uid is neither is
  refused as well. Abstract names (``@name``) have no file permissions and are refused.
* ``tls:PORT:cert=...:key=...:ca=CA``: clients must present a certificate signed by ``ca=``;
  a ``tls:`` endpoint without ``ca=`` is refused, and so is ``tcp:`` and every other type.

Every session is logged to ``net.manhole`` (INFO): who (uid and pid of a Unix peer, the subject
of a TLS client certificate), when it opened, when and why it closed. Input lines are logged at
DEBUG only (they may hold secrets).

Semantics. The code runs in the reactor thread, between events, with stdlib
:class:`code.InteractiveInterpreter` (``codeop`` tells an incomplete statement, which gets the
``... `` prompt): a slow or blocking statement blocks the whole server while it runs.
``sys.stdout``, ``sys.stderr`` and ``sys.displayhook`` are redirected to the session only while
its code executes, so ``print`` output, reprs and tracebacks go to that client and no other. The
namespace is the dict given to the service, *shared* by all sessions (as Twisted's manhole
does): a name one session binds, another sees; ``_`` is the last value shown. A value that is a
:class:`~net.defer.Deferred` is shown as ``<Deferred #N>``; when it fires, ``Deferred #N called
back: ...`` (or ``failed: ...``) is shown and ``_`` holds the result. Its result passes through
unchanged, so a failure we showed is still an unhandled error in the server's log if nothing else
handles it. ``exit()`` ends the session, not the server.

Limits (per session, keyword arguments of the service): a line over ``max_line_length`` bytes,
or an incomplete statement over ``max_source_length`` characters, closes the session with a
message; output over ``max_output`` characters per input (or per Deferred shown) is cut with a
note; the session is the transport's streaming producer, so while the client does not read its
output no further input is read or run, and a session whose unsent output still exceeds
``max_buffered`` bytes is dropped.

Wire protocol (one connection is one console):

* client to server: UTF-8 lines ending in ``\\n``, each one line of source as typed (a trailing
  ``\\r`` is ignored). A line that is exactly ``\\x03`` discards the incomplete statement (the
  client sends it for Ctrl-C). ``socat - UNIX-CONNECT:PATH`` makes a crude client.
* server to client: netstrings (``b"3:p>>> ,"``), each one frame: a tag byte, then UTF-8 text.
  ``o``: output to show; ``p``: ready for the next line, the text is the prompt (``>>> `` or
  ``... ``); ``b``: the session ends normally (``exit()``), the text says so; ``e``: the server
  ends the session because of an error (a limit, a refused peer, the server stopping), the text
  says why. The server closes the connection after ``b`` or ``e``. A greeting (``o``) and the
  first prompt are sent as soon as the session opens.
"""

from __future__ import annotations

import code
import logging
import os
import queue
import signal
import sys
import threading
import time
import traceback
from types import CodeType
from typing import TYPE_CHECKING, Any, TextIO, cast

from zope.interface import implementer

from .basic import LineOnlyReceiver, NetstringReceiver
from .defer import Deferred, Failure, gather, maybe_deferred
from .endpoints import client as client_endpoint
from .endpoints import parse
from .endpoints import server as server_endpoint
from .error import ConnectionDone, ReactorNotRunning
from .interfaces import IService
from .protocol import ClientFactory, Factory
from .service import Service

if TYPE_CHECKING:
    from ._reactorbase import ReactorBase
    from .address import Address
    from .contracts import DelayedCall, ListeningPort, Reactor, StreamClientEndpoint, StreamServerEndpoint

__all__ = [
    "ManholeEndpointError",
    "ManholeService",
    "ManholeFactory",
    "ManholeSession",
    "manhole_server_endpoint",
    "run_client",
    "PROMPT",
    "CONTINUATION_PROMPT",
]

log = logging.getLogger("net.manhole")

PROMPT = ">>> "
CONTINUATION_PROMPT = "... "
RESET_LINE = b"\x03"
"""The line a client sends to discard an incomplete statement (Ctrl-C)."""

_OUTPUT, _PROMPT, _BYE, _ERROR = b"o", b"p", b"b", b"e"
_FRAME_CHARS = 16384
"""Output is sent in frames of at most this many characters (64 KiB of UTF-8)."""
_MAX_FRAME = 4 * _FRAME_CHARS + 1
_ALLOWED_TYPES = ("unix", "tls")
_EXIT_OK, _EXIT_FAILED, _EXIT_USAGE = 0, 1, 2


class ManholeEndpointError(ValueError):
    """The endpoint string is not one a manhole may listen on (or connect to); the message says
    which would do."""


_WHY = ("a manhole runs any Python code its client sends, as the server's user, so it listens only "
        "where the peer is known: 'unix:/path/to/manhole.sock' (a socket file only this user can "
        "open, mode 0600) or 'tls:PORT:cert=server.pem:key=server.key:ca=clients-ca.pem' (clients "
        "must present a certificate signed by ca=)")


def _check_type(spec: str, role: str) -> tuple[str, list[str], dict[str, str]]:
    try:
        prefix, args, kwargs = parse(spec)
    except ValueError as exc:
        raise ManholeEndpointError(f"bad manhole endpoint: {exc}") from None
    if prefix not in _ALLOWED_TYPES:
        plain = (" Plain tcp: has neither authentication nor encryption: anyone who can reach the port "
                 "would own the process." if prefix == "tcp" else "")
        raise ManholeEndpointError(f"the manhole refuses to {role} {spec!r}: {_WHY}.{plain}")
    return prefix, args, kwargs


def manhole_server_endpoint(reactor: Reactor, spec: str) -> StreamServerEndpoint:
    """The server endpoint for ``spec`` with the manhole's rules applied (see the module doc);
    :class:`ManholeEndpointError` for an endpoint a manhole must not listen on."""
    prefix, args, kwargs = _check_type(spec, "listen on")
    if prefix == "unix":
        path = args[0] if args else kwargs.get("path", "")
        if path.startswith("@"):
            raise ManholeEndpointError(
                f"the manhole refuses {spec!r}: an abstract unix socket (@name) has no file permissions, "
                "so any process could connect; give a file path, e.g. 'unix:/run/app/manhole.sock'")
        mode = kwargs.get("mode", "600").strip().lower().removeprefix("0o").lstrip("0")
        if mode != "600":
            log.warning("manhole endpoint %r: mode=%s ignored, the manhole socket is always 0600",
                        spec, kwargs["mode"])
    if prefix == "tls" and not kwargs.get("ca"):
        raise ManholeEndpointError(
            f"the manhole refuses {spec!r}: a tls: manhole must require client certificates, or anyone "
            "who reaches the port owns the process; add ca=CA.pem (the CA that signs your clients' "
            "certificates)")
    try:
        endpoint = server_endpoint(reactor, spec)
    except ValueError as exc:
        raise ManholeEndpointError(str(exc)) from None
    from .unix import UNIXServerEndpoint

    if isinstance(endpoint, UNIXServerEndpoint):
        endpoint.mode = 0o600
    elif prefix == "tls":
        from OpenSSL import SSL

        context: SSL.Context | None = getattr(endpoint, "context", None)
        if context is None or not context.get_verify_mode() & SSL.VERIFY_FAIL_IF_NO_PEER_CERT:
            raise ManholeEndpointError(
                f"the manhole refuses {spec!r}: its TLS context does not require client certificates; "
                "add ca=CA.pem")
    else:  # pragma: no cover - a registered unix parser that returns something else
        raise ManholeEndpointError(f"the manhole cannot apply its rules to {endpoint!r} from {spec!r}")
    return endpoint


# -- the server side -------------------------------------------------------------------------------


class _BoundedText:
    """A text stream that keeps at most ``limit`` characters and counts the rest."""

    encoding = "utf-8"
    errors = "strict"

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._parts: list[str] = []
        self._size = 0
        self.dropped = 0

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        room = self.limit - self._size
        kept = text[:room] if room > 0 else ""
        if kept:
            self._parts.append(kept)
            self._size += len(kept)
        self.dropped += len(text) - len(kept)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def getvalue(self) -> str:
        text = "".join(self._parts)
        if self.dropped:
            if not text.endswith("\n"):
                text += "\n"
            text += f"[{self.dropped} more characters of output dropped: over the manhole's limit of {self.limit}]\n"
        return text


def _short_repr(value: object, limit: int) -> str:
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ must not break the session
        text = f"<{type(value).__name__} object; repr() failed: {exc!r}>"
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more characters]"


class _Interpreter(code.InteractiveInterpreter):
    """Runs one session's code in the shared namespace; output goes to the session."""

    def __init__(self, session: ManholeSession, namespace: dict[str, Any]) -> None:
        super().__init__(namespace)
        self.session = session

    def runcode(self, code: CodeType) -> None:
        try:
            exec(code, self.locals)
        except SystemExit:
            self.session.exit_requested = True
        except BaseException:  # KeyboardInterrupt too: nothing typed here may stop the server
            self.showtraceback()

    def showtraceback(self) -> None:
        typ, value, tb = sys.exc_info()
        assert typ is not None and value is not None
        skip = tb.tb_next if tb is not None else None  # our runcode's frame
        self.write("".join(traceback.format_exception(typ, value, skip)))

    def showsyntaxerror(self, filename: str | None = None, **_: Any) -> None:
        typ, value, _tb = sys.exc_info()
        assert typ is not None
        self.write("".join(traceback.format_exception_only(typ, value)))

    def write(self, data: str) -> None:
        self.session.emit(data)


class ManholeSession(LineOnlyReceiver):
    """One console: reads lines, runs them, sends output and prompts (see the module doc)."""

    delimiter = b"\n"
    factory: ManholeFactory

    def __init__(self, factory: ManholeFactory, number: int) -> None:
        self.factory = factory
        self.number = number
        self.max_length = factory.max_line_length
        self.who = "an unknown peer"
        self.exit_requested = False
        self.inputs = 0
        self._buffer_lines: list[str] = []
        self._buffered_chars = 0
        self._capture: _BoundedText | None = None
        self._deferreds = 0
        self._opened = time.monotonic()
        self._ending: str | None = None  # why we close (logged), once we decided to
        self._opened_logged = False  # an "opened" line was logged, so a "closed" one follows
        self.closed: Deferred[None] = Deferred()
        """Fires once the connection has closed (and the closing was logged)."""
        self._interpreter = _Interpreter(self, factory.namespace)

    def __repr__(self) -> str:
        return f"<ManholeSession #{self.number} {self.who}>"

    # -- connection -----------------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.who, refusal = _identify(transport)
        if refusal is not None:
            log.warning("manhole session #%d refused on %s: %s", self.number, self.factory.endpoint, refusal)
            self._end(_ERROR, f"manhole: refused: {refusal}\n", refusal)
            return
        self._opened_logged = True
        log.info("manhole session #%d opened on %s by %s", self.number, self.factory.endpoint, self.who)
        self.factory.sessions.add(self)
        transport.register_producer(self, True)
        names = ", ".join(sorted(k for k in self.factory.namespace if not k.startswith("_"))) or "nothing yet"
        self._send_text(_OUTPUT, f"pbroker manhole: Python {sys.version.split()[0]} in pid {os.getpid()}; "
                        f"namespace: {names}.\nCode runs in the reactor thread: while it runs, the "
                        "server waits. exit() ends this session.\n")
        self._send_text(_PROMPT, PROMPT)

    def connection_lost(self, reason: Failure) -> None:
        self.factory.sessions.discard(self)
        try:
            self._log_closed(reason)
        finally:
            self.closed.callback(None)

    def _log_closed(self, reason: Failure) -> None:
        if not self._opened_logged:
            return
        if self._ending is not None:
            why = self._ending
        elif isinstance(reason.value, ConnectionDone):
            why = "the client disconnected"
        else:
            why = reason.get_error_message()
        log.info("manhole session #%d closed after %.1f s and %d inputs (%s): %s", self.number,
                 time.monotonic() - self._opened, self.inputs, self.who, why)

    def end(self, message: str) -> None:
        """Close this session with ``message`` shown to the client (e.g. the server stopping)."""
        self._end(_ERROR, f"manhole: {message}\n", message)

    def _end(self, tag: bytes, text: str, why: str) -> None:
        if self._ending is not None:
            return
        self._send_text(tag, text)
        self._ending = why
        self.transport.lose_connection()

    # -- input ----------------------------------------------------------------------------------

    def line_length_exceeded(self, line: bytes) -> None:
        limit = self.factory.max_line_length
        self._end(_ERROR, f"manhole: input line longer than {limit} bytes; closing the session\n",
                  f"input line longer than {limit} bytes")

    def line_received(self, line: bytes) -> None:
        if self._ending is not None:
            return
        if line.endswith(b"\r"):
            line = line[:-1]
        if line == RESET_LINE:
            self._buffer_lines, self._buffered_chars = [], 0
            self._send_text(_PROMPT, PROMPT)
            return
        text = line.decode("utf-8", "replace")
        self.inputs += 1
        log.debug("manhole session #%d input: %r", self.number, text)
        self._buffered_chars += len(text) + 1
        if self._buffered_chars > self.factory.max_source_length:
            limit = self.factory.max_source_length
            self._end(_ERROR, f"manhole: the statement is longer than {limit} characters; closing the session\n",
                      f"statement longer than {limit} characters")
            return
        self._buffer_lines.append(text)
        source = "\n".join(self._buffer_lines)
        capture = _BoundedText(self.factory.max_output)
        more = self._run(source, capture)
        if not more:
            self._buffer_lines, self._buffered_chars = [], 0
        self._send_text(_OUTPUT, capture.getvalue())
        if self.exit_requested:
            self._end(_BYE, "manhole: session ended by exit(); the server keeps running\n", "exit() called")
        elif self._ending is None:
            self._send_text(_PROMPT, CONTINUATION_PROMPT if more else PROMPT)

    def _run(self, source: str, capture: _BoundedText) -> bool:
        """Run ``source`` with this session's output captured; True if it needs more lines."""
        saved = sys.stdout, sys.stderr, sys.displayhook
        self._capture = capture
        sys.stdout = sys.stderr = cast("TextIO", capture)  # all that print() and tracebacks use
        sys.displayhook = self._display
        try:
            return self._interpreter.runsource(source, "<manhole>", "single")
        finally:
            sys.stdout, sys.stderr, sys.displayhook = saved
            self._capture = None

    # -- output ---------------------------------------------------------------------------------

    def _display(self, value: object) -> None:
        """``sys.displayhook`` while this session's code runs: show a value, keep it as ``_``."""
        if value is None:
            return
        namespace = self.factory.namespace
        namespace["_"] = None
        if isinstance(value, Deferred):
            self._show_deferred(value)
        else:
            text = repr(value)  # an exception here is the user's: its traceback is shown
            self.emit(text + "\n")
        namespace["_"] = value

    def _show_deferred(self, d: Deferred[Any]) -> None:
        self._deferreds += 1
        number = self._deferreds
        self.emit(f"<Deferred #{number}>\n")
        limit = self.factory.max_output

        def on_result(result: Any) -> Any:
            self.factory.namespace["_"] = result
            self.emit(f"Deferred #{number} called back: {_short_repr(result, limit)}\n")
            return result

        def on_failure(failure: Failure) -> Failure:
            text = failure.get_traceback()
            if len(text) > limit:
                text = text[-limit:]
            self.emit(f"Deferred #{number} failed: {text}")
            return failure

        d.add_callbacks(on_result, on_failure)

    def emit(self, text: str) -> None:
        """Show ``text`` to this client: into the capture while its code runs, else sent now."""
        if self._capture is not None:
            self._capture.write(text)
        elif self.connected and self._ending is None:
            self._send_text(_OUTPUT, text)

    def _send_text(self, tag: bytes, text: str) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if tag != _OUTPUT:
            _write_frame(transport, tag, text)
            return
        for start in range(0, len(text), _FRAME_CHARS):
            _write_frame(transport, tag, text[start:start + _FRAME_CHARS])
        buffered = transport.get_write_buffer_size()
        if buffered > self.factory.max_buffered and self._ending is None:
            why = f"the client does not read its output ({buffered} bytes unsent)"
            self._ending = why
            log.warning("manhole session #%d: %s; dropping it", self.number, why)
            transport.abort_connection()


def _write_frame(transport: Any, tag: bytes, text: str) -> None:
    data = tag + text.encode("utf-8", "replace")
    transport.writelines((b"%d:" % len(data), data, b","))


def _identify(transport: Any) -> tuple[str, str | None]:
    """Who the peer is (for the log), and why it is refused (None: it is not)."""
    parts: list[str] = []
    refusal: str | None = None
    get_cert = getattr(transport, "get_peer_certificate", None)
    below = transport
    if get_cert is not None:
        cert = get_cert()
        parts.append(f"certificate {cert.subject.rfc4514_string()!r}" if cert is not None else "no certificate")
        below = getattr(transport, "transport", transport)
    get_credentials = getattr(below, "get_peer_credentials", None)
    if get_credentials is not None:
        try:
            credentials = get_credentials()
        except NotImplementedError:
            parts.append("a local peer (no peer credentials on this platform)")
        else:
            parts.append(f"uid {credentials.uid} pid {credentials.pid}")
            if credentials.uid not in (os.geteuid(), 0):
                refusal = (f"uid {credentials.uid} is neither the server's user (uid {os.geteuid()}) nor root "
                           "(were the socket file's permissions changed?)")
    else:
        parts.append(f"from {_address(transport.get_peer())}")
    return ", ".join(parts), refusal


def _address(address: object) -> str:
    """``host:port`` (``[::1]:port``) of an IP address, the path of a Unix one."""
    host, port = getattr(address, "host", None), getattr(address, "port", None)
    if host is None:
        return str(getattr(address, "name", address))
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


class ManholeFactory(Factory):
    """Makes a :class:`ManholeSession` per connection; holds the namespace, the limits and the
    open sessions."""

    def __init__(
        self,
        namespace: dict[str, Any],
        *,
        endpoint: str = "",
        max_line_length: int = 65536,
        max_source_length: int = 1 << 20,
        max_output: int = 1_000_000,
        max_buffered: int = 16 << 20,
    ) -> None:
        self.namespace = namespace
        self.endpoint = endpoint
        self.max_line_length = max_line_length
        self.max_source_length = max_source_length
        self.max_output = max_output
        self.max_buffered = max_buffered
        self.sessions: set[ManholeSession] = set()
        self._count = 0

    def build_protocol(self, addr: Address) -> ManholeSession:
        self._count += 1
        return ManholeSession(self, self._count)

    def tls_handshake_failed(self, addr: Address, failure: Failure) -> None:
        """A TLS client was refused before it had a session (no or a wrong certificate)."""
        log.warning("manhole on %s refused a TLS client from %s: %s", self.endpoint, _address(addr),
                    failure.get_error_message())


def _cancel_timer(result: object, timer: DelayedCall) -> object:
    if timer.active():
        timer.cancel()
    return result


@implementer(IService)
class ManholeService(Service):
    """Listens on ``endpoint`` for manhole consoles into ``namespace`` (see the module doc).

    The endpoint is checked (and its certificates loaded) here, so a bad one fails at startup
    with :class:`ManholeEndpointError`. ``stop_service`` ends every open session with a message
    and stops listening; its Deferred fires once the port is closed.
    """

    def __init__(
        self,
        reactor: Reactor,
        endpoint: str,
        namespace: dict[str, object],
        *,
        name: str | None = "manhole",
        close_grace: float = 5.0,
        **limits: int,
    ) -> None:
        self.reactor = reactor
        self.endpoint_string = endpoint
        self.endpoint = manhole_server_endpoint(reactor, endpoint)
        self.namespace = namespace
        self.name = name
        self.factory = ManholeFactory(namespace, endpoint=endpoint, **limits)
        self.close_grace = close_grace
        self.port: ListeningPort | None = None

    def start_service(self) -> Deferred[None]:
        super().start_service()
        d = self.endpoint.listen(self.factory)

        def listening(port: ListeningPort) -> None:
            self.port = port
            log.info("manhole listening on %s", self.endpoint_string)

        def failed(failure: Failure) -> Failure:
            self.running = False
            return failure

        return d.add_callbacks(listening, failed)

    def stop_service(self) -> Deferred[None]:
        """Stop listening, end every session with a message, and fire once all are closed (a
        session whose client does not take the message is dropped after ``close_grace`` s)."""
        super().stop_service()
        waits: list[Deferred[Any]] = []
        port, self.port = self.port, None
        if port is not None:
            log.info("manhole on %s stops listening", self.endpoint_string)
            waits.append(maybe_deferred(port.stop_listening))
        for session in list(self.factory.sessions):
            session.end("the server is stopping")
            if session.transport is not None:
                timer = self.reactor.call_later(self.close_grace, session.transport.abort_connection)
                session.closed.add_both(_cancel_timer, timer)
            waits.append(session.closed)
        return gather(*waits, consume_errors=True).add_callback(lambda _: None)


# -- the client ------------------------------------------------------------------------------------


class _ClientProtocol(NetstringReceiver):
    """Parses the server's frames (reactor thread) and hands them to the console."""

    max_length = _MAX_FRAME

    def __init__(self, console: _Console) -> None:
        self.console = console
        self.ended = False
        self.prompted = False  # the session began (the server sent its first prompt)

    def connection_made(self, transport: Any) -> None:
        self.console.connected(self)

    def string_received(self, data: bytes) -> None:
        tag, text = data[:1], data[1:].decode("utf-8", "replace")
        if tag == _OUTPUT:
            self.console.show(text)
        elif tag == _PROMPT:
            self.prompted = True
            self.console.events.put(("prompt", text, 0))
        elif tag in (_BYE, _ERROR):
            self.ended = True
            self.console.end(text, _EXIT_OK if tag == _BYE else _EXIT_FAILED)
        # other tags: from a newer server; ignored

    def connection_lost(self, reason: Failure) -> None:
        if not self.ended:
            self.ended = True
            console = self.console
            if isinstance(reason.value, ConnectionDone) and console.closing:
                console.end("", _EXIT_OK)
            elif not self.prompted:
                why = reason.get_error_message()
                hint = (" (a tls: manhole wants a client certificate signed by its CA: give cert= and key=)"
                        if "certificate" in why and not console.has_certificate else "")
                console.end(f"manhole: {console.spec} refused the session before it began: {why}{hint}\n",
                            _EXIT_FAILED)
            else:
                console.end(f"manhole: the connection to {console.spec} was lost: {reason.get_error_message()}\n",
                            _EXIT_FAILED)
        self.console.disconnected()


class _ClientFactory(ClientFactory):
    def __init__(self, console: _Console) -> None:
        self.console = console

    def build_protocol(self, addr: Address) -> _ClientProtocol:
        return _ClientProtocol(self.console)


class _Console:
    """The terminal side: ``input()`` in the main thread, the connection in a reactor thread.

    Events from the connection reach the main thread through :attr:`events`: ``("prompt",
    text, 0)`` and ``("end", message, exit_code)``. Output is written by the reactor thread as
    it arrives; while the main thread sits in ``input()``, the line being edited is redrawn
    below it. If the session ends then, the main thread is woken with SIGINT.
    """

    def __init__(self, reactor: Reactor, spec: str, *, has_certificate: bool = False) -> None:
        self.reactor = reactor
        self.spec = spec
        self.has_certificate = has_certificate
        self.events: queue.Queue[tuple[str, str, int]] = queue.Queue()
        self.protocol: _ClientProtocol | None = None
        self.in_input = False
        self.prompt = ""
        self.ended = False
        self.closing = False
        self.tty = sys.stdin.isatty() and sys.stdout.isatty()
        self._main = threading.main_thread().ident
        self._readline: Any = None

    # -- reactor thread -------------------------------------------------------------------------

    def connect(self, endpoint: StreamClientEndpoint) -> None:
        def failed(failure: Failure) -> None:
            self.end(f"manhole: cannot connect to {self.spec}: {failure.get_error_message()}\n", _EXIT_FAILED)
            self._stop_reactor()

        endpoint.connect(_ClientFactory(self)).add_errback(failed)

    def connected(self, protocol: _ClientProtocol) -> None:
        self.protocol = protocol

    def disconnected(self) -> None:
        self.protocol = None
        self._stop_reactor()

    def _stop_reactor(self) -> None:
        try:
            self.reactor.stop()
        except ReactorNotRunning:  # already stopping
            pass

    def show(self, text: str) -> None:
        out = sys.stdout
        if self.in_input and self.tty:
            line = self._readline.get_line_buffer() if self._readline is not None else ""
            out.write("\r\x1b[K" + text + ("" if text.endswith("\n") else "\n") + self.prompt + line)
        else:
            out.write(text)
        out.flush()

    def end(self, message: str, exit_code: int) -> None:
        if self.ended:
            return
        self.ended = True
        self.events.put(("end", message, exit_code))
        if self.in_input and self._main is not None:
            signal.pthread_kill(self._main, signal.SIGINT)  # out of input(): the session is over

    def _send(self, data: bytes) -> None:
        if self.protocol is not None and self.protocol.transport is not None:
            self.protocol.transport.write(data)

    def _close(self) -> None:
        self.closing = True
        if self.protocol is not None and self.protocol.transport is not None:
            self.protocol.transport.lose_connection()  # stops the reactor once closed
        else:
            self._stop_reactor()

    # -- main thread ----------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        self.reactor.call_from_thread(self._send, data)

    def close(self) -> None:
        self.reactor.call_from_thread(self._close)

    def interact(self) -> int:
        history = self._setup_readline()
        try:
            return self._loop()
        finally:
            if history and self._readline is not None:
                try:
                    self._readline.write_history_file(history)
                except OSError as exc:
                    print(f"manhole: cannot save the history to {history}: {exc}", file=sys.stderr)

    def _loop(self) -> int:
        while True:
            try:
                kind, text, exit_code = self.events.get()
            except KeyboardInterrupt:
                print("\nKeyboardInterrupt (the server runs the last input to its end; waiting for it)")
                continue
            if kind == "end":
                if text:
                    (sys.stderr if exit_code else sys.stdout).write(text)
                return exit_code
            self.prompt = text
            try:
                self.in_input = True
                line = input(text)
            except EOFError:  # Ctrl-D
                self.in_input = False
                print()
                return _EXIT_OK
            except KeyboardInterrupt:
                self.in_input = False
                if self.ended:
                    print()
                    continue  # the "end" event is queued
                print("\nKeyboardInterrupt")
                self.send(RESET_LINE + b"\n")
                continue
            finally:
                self.in_input = False
            self.send(line.encode("utf-8", "surrogateescape") + b"\n")

    def _setup_readline(self) -> str | None:
        if not self.tty:
            return None
        try:
            import readline
        except ImportError:  # pragma: no cover - e.g. a Python built without it
            return None
        self._readline = readline
        readline.parse_and_bind("tab: tab-insert")  # Tab indents: there is no remote completion
        history = os.environ.get("PBROKER_MANHOLE_HISTORY", os.path.expanduser("~/.pbroker_manhole_history"))
        if not history:
            return None
        readline.set_history_length(1000)
        try:
            readline.read_history_file(history)
        except FileNotFoundError:
            pass
        except OSError as exc:
            print(f"manhole: cannot read the history from {history}: {exc}", file=sys.stderr)
        return history


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


def _run_reactor(reactor: ReactorBase) -> None:
    # Terminal signals are for the main thread (input() returns on SIGINT only if the main thread
    # is the one interrupted; readline redraws on SIGWINCH), so this thread never takes them.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGWINCH})
    reactor.run(install_signal_handlers=False)


def run_client(endpoint: str, *, cert: str | None = None, key: str | None = None,
               ca: str | None = None) -> int:
    """Open a console on the manhole at ``endpoint``; returns the exit code.

    ``unix:PATH`` or ``tls:HOST:PORT:ca=CA:cert=CERT:key=KEY`` (net.tls's options; ``cert``,
    ``key`` and ``ca`` may be given here instead). 0: the session ended with Ctrl-D or
    ``exit()``; 1: it could not connect, was refused, or the server ended it; 2: a bad endpoint.
    Line editing and history (``~/.pbroker_manhole_history``, or ``$PBROKER_MANHOLE_HISTORY``;
    empty: none) with ``readline`` when on a terminal.
    """
    extra = {"cert": cert, "key": key, "ca": ca}
    try:
        _prefix, _args, given = _check_type(endpoint, "connect to")
        spec = endpoint + "".join(f":{name}={_escape(value)}" for name, value in extra.items()
                                  if value is not None and name not in given)
    except ManholeEndpointError as exc:
        print(f"manhole: {exc}", file=sys.stderr)
        return _EXIT_USAGE
    from .reactor import make_reactor

    reactor = make_reactor()
    try:
        target = client_endpoint(reactor, spec)
    except ValueError as exc:
        reactor.close()
        print(f"manhole: {exc}", file=sys.stderr)
        return _EXIT_USAGE
    console = _Console(reactor, endpoint, has_certificate=cert is not None or "cert" in given)
    reactor.call_when_running(console.connect, target)
    thread = threading.Thread(target=_run_reactor, args=(reactor,), name="manhole-client-reactor", daemon=True)
    thread.start()
    try:
        return console.interact()
    finally:
        if thread.is_alive():
            console.close()
            thread.join(10)
        if not thread.is_alive():
            reactor.close()
