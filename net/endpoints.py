"""Endpoints: where to listen or connect, described by one string.

``server(reactor, "tcp:8000:interface=127.0.0.1")`` and ``client(reactor, "tcp:example.com:8000")``
turn a configuration string into an object with ``listen(factory)`` / ``connect(factory)``, so a
program can switch transports (later ``tls:``, ``unix:``) without code changes.

Grammar: ``TYPE:ARG:ARG:key=value:...``. A backslash escapes the next character (``\\:`` for a
colon inside a value); an IPv6 address may instead be written in brackets (``tcp:[::1]:8000``).
Each endpoint type is a pair of parser functions registered with :func:`register_endpoint_type`;
a parser's signature *is* its grammar: required parameters are positional (or ``name=``), optional
ones keyword-only, and every value arrives as a string. Error messages are derived from it too.
"""

from __future__ import annotations

import inspect
import re
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, cast

from zope.interface import implementer

from .defer import CancelledError, Deferred, Failure, fail, succeed
from .error import ConnectError
from .interfaces import IStreamClientEndpoint, IStreamServerEndpoint
from .protocol import ClientFactory, Protocol, WrappingFactory

if TYPE_CHECKING:
    from .address import Address
    from .contracts import (
        ClientProtocolFactory,
        Connector,
        ListeningPort,
        ProtocolFactory,
        Reactor,
        ReactorTCP,
        StreamClientEndpoint,
        StreamProtocol,
        StreamServerEndpoint,
        Transport,
    )

__all__ = [
    "server",
    "client",
    "parse",
    "register_endpoint_type",
    "register_wrapping_endpoint_type",
    "TCPServerEndpoint",
    "TCPClientEndpoint",
    "WrappingClientFactory",
]

Parser = Callable[..., Any]


class _EndpointType(NamedTuple):
    server_parser: Parser | None
    client_parser: Parser | None
    #: Set for a client type whose strings end with another endpoint string (a tunnel): its parser
    #: takes the raw text after the prefix, and this is the form its errors show.
    wrapping_usage: str | None = None


_TYPES: dict[str, _EndpointType] = {}

#: Endpoint types whose module registers them on first use (so their dependencies load only then).
_LAZY_TYPES: dict[str, str] = {
    "tls": "net.tls",
    "unix": "net.unix",
    "socks4": "net.tunnels",
    "socks4a": "net.tunnels",
    "socks5": "net.tunnels",
    "connect": "net.tunnels",
}


#: Lazy types that have no server form (a tunnel is something a client goes through).
_CLIENT_ONLY_TYPES = frozenset({"socks4", "socks4a", "socks5", "connect"})


def _load_lazy(prefix: str) -> None:
    module = _LAZY_TYPES.get(prefix)
    if module is not None and prefix not in _TYPES:
        import importlib

        importlib.import_module(module)  # registers the type


def _suggest(spec: str) -> str | None:
    """The endpoint string meant by a URL-ish or prefix-less ``spec``, if it looks like one."""
    url = re.fullmatch(r"\s*([A-Za-z][\w+.-]*)://([^/]*)/?\s*", spec)
    if url:
        scheme, rest = url.group(1).lower(), url.group(2)
        kind = scheme if scheme in _TYPES or scheme in _LAZY_TYPES else "tcp"
        return f"{kind}:{rest.lstrip(':')}" if rest else None
    if re.fullmatch(r"(localhost|[\w-]+(\.[\w-]+)+|\[[0-9A-Fa-f:.]+\]):\d+", spec):  # host:port
        return f"tcp:{spec}"
    if re.fullmatch(r"\d+", spec):  # a bare port
        return f"tcp:{spec}"
    return None


def register_endpoint_type(
    prefix: str, server_parser: Parser | None = None, client_parser: Parser | None = None
) -> None:
    """Make ``prefix:...`` strings work with :func:`server` and/or :func:`client`.

    Each parser is called as ``parser(reactor, *positional, **keywords)`` with string values and
    returns an endpoint; it raises ValueError for bad values. Registering a prefix again replaces it.
    """
    if not prefix or not prefix.isidentifier():
        raise ValueError(f"endpoint type prefix must be an identifier like 'tcp', got {prefix!r}")
    _TYPES[prefix.lower()] = _EndpointType(server_parser, client_parser)


def register_wrapping_endpoint_type(prefix: str, client_parser: Parser, usage: str) -> None:
    """Make client strings ``prefix:...:INNER`` work, where INNER is another client endpoint string.

    The parser is called as ``parser(reactor, rest)`` with the text after ``prefix:`` exactly as
    written (escapes included), because its tail is a whole endpoint string of its own
    (``socks5:proxy:1080:tls:host:8801:ca=ca.pem``, see :mod:`net.tunnels`); it raises ValueError
    for bad values, and ``usage`` (``"socks5:PROXYHOST:PROXYPORT[:user=USER]...:INNER"``) is the
    form its error messages show.
    """
    register_endpoint_type(prefix, None, client_parser)
    _TYPES[prefix.lower()] = _EndpointType(None, client_parser, usage)


def parse(spec: str) -> tuple[str, list[str], dict[str, str]]:
    """Split ``spec`` into its type, positional values and keyword values.

    >>> parse(r"tcp:\\:\\:1:8000:timeout=5")
    ('tcp', ['::1', '8000'], {'timeout': '5'})
    """
    segments: list[tuple[str, int]] = []  # (text, index of the first unescaped "=" or -1)
    text: list[str] = []
    equals = -1
    depth = 0
    chars = iter(spec)
    for ch in chars:
        if ch == "\\":
            escaped = next(chars, None)
            if escaped is None:
                raise ValueError(f"endpoint {spec!r} ends with a lone backslash")
            text.append(escaped)
        elif ch == ":" and depth == 0:
            segments.append(("".join(text), equals))
            text, equals = [], -1
        else:
            if ch == "[":
                depth += 1
            elif ch == "]":
                depth = max(0, depth - 1)
            elif ch == "=" and equals < 0:
                equals = len(text)
            text.append(ch)
    segments.append(("".join(text), equals))
    prefix = segments[0][0].strip().lower()
    if re.match(r"\s*[A-Za-z][\w+.-]*://", spec):
        meant = _suggest(spec)
        raise ValueError(
            f"endpoint {spec!r} looks like a URL; endpoint strings are TYPE:HOST:PORT without '//'"
            + (f": write {meant!r}" if meant else ", e.g. 'tcp:HOST:8000'"))
    if not prefix.isidentifier():
        meant = _suggest(spec)
        raise ValueError(f"endpoint {spec!r} needs a type prefix, e.g. 'tcp:8000' or 'tcp:HOST:8000'"
                         + (f"; did you mean {meant!r}?" if meant else ""))
    args: list[str] = []
    kwargs: dict[str, str] = {}
    for value, eq in segments[1:]:
        if eq < 0:
            args.append(_unbracket(value))
            continue
        key, value = value[:eq], value[eq + 1 :]
        if key in kwargs:
            raise ValueError(f"endpoint {spec!r} gives {key}= twice")
        kwargs[key] = _unbracket(value)
    return prefix, args, kwargs


def _unbracket(value: str) -> str:
    return value[1:-1] if len(value) >= 2 and value[0] == "[" and value[-1] == "]" else value


def _usage(prefix: str, parser: Parser) -> str:
    """The accepted form, read off the parser's signature: ``tcp:PORT[:interface=INTERFACE]``."""
    parts = [prefix]
    for name, param in list(inspect.signature(parser).parameters.items())[1:]:
        if param.kind is param.KEYWORD_ONLY:
            parts.append(f"[{name}={name.upper()}]")
        elif param.kind is param.POSITIONAL_OR_KEYWORD:
            parts.append(name.upper())
    return ":".join(parts).replace(":[", "[:")


def _build(reactor: Reactor, spec: str, role: str) -> object:
    if not isinstance(spec, str):
        raise TypeError(f"an endpoint is a string like 'tcp:HOST:8000', not {type(spec).__name__}")
    wrapping = _build_wrapping(reactor, spec, role)
    if wrapping is not None:
        return wrapping
    prefix, args, kwargs = parse(spec)
    _load_lazy(prefix)  # e.g. "tls": pyOpenSSL loads only when a tls: endpoint is used
    kind = _TYPES.get(prefix)
    parser = None if kind is None else kind.server_parser if role == "server" else kind.client_parser
    if parser is None:
        index = 0 if role == "server" else 1
        lazy = {p for p in _LAZY_TYPES if role == "client" or p not in _CLIENT_ONLY_TYPES}
        known = sorted({p for p, k in _TYPES.items() if k[index] is not None} | lazy)
        import difflib

        close = difflib.get_close_matches(prefix, known, n=1)
        meant = _suggest(spec) if not close else None
        hint = (f"; did you mean {close[0]!r}?" if close
                else f"; did you mean {meant!r}?" if meant else "")
        raise ValueError(f"unknown {role} endpoint type {prefix!r} in {spec!r}; known: {', '.join(known)}{hint}")
    usage = _usage(prefix, parser)
    try:
        inspect.signature(parser).bind(reactor, *args, **kwargs)
    except TypeError as exc:
        raise ValueError(f"bad {role} endpoint {spec!r} ({exc}); expected {usage!r}") from None
    try:
        return parser(reactor, *args, **kwargs)
    except ValueError as exc:
        raise ValueError(f"bad {role} endpoint {spec!r}: {exc}; expected {usage!r}") from None


def _build_wrapping(reactor: Reactor, spec: str, role: str) -> object:
    """The endpoint, if ``spec`` is of a wrapping type (its tail is parsed by the type, not here)."""
    head, _, rest = spec.partition(":")
    prefix = head.strip().lower()
    if not prefix.isidentifier() or rest.startswith("//"):
        return None  # parse() explains what is wrong with it
    _load_lazy(prefix)
    kind = _TYPES.get(prefix)
    if kind is None or kind.wrapping_usage is None or kind.client_parser is None:
        return None
    if role == "server":
        raise ValueError(f"{prefix}: is a client endpoint only (a tunnel through a proxy), so "
                         f"{spec!r} cannot listen; listen with e.g. 'tcp:8000' and connect through the proxy")
    try:
        return kind.client_parser(reactor, rest)
    except ValueError as exc:
        raise ValueError(f"bad client endpoint {spec!r}: {exc}; expected {kind.wrapping_usage!r}") from None


# A registered parser returns an endpoint of its role: the casts state what registration promises.


def server(reactor: Reactor, spec: str) -> StreamServerEndpoint:
    """The :class:`~net.contracts.StreamServerEndpoint` described by ``spec``, e.g. ``"tcp:0:interface=127.0.0.1"``."""
    return cast("StreamServerEndpoint", _build(reactor, spec, "server"))


def client(reactor: Reactor, spec: str) -> StreamClientEndpoint:
    """The :class:`~net.contracts.StreamClientEndpoint` described by ``spec``, e.g. ``"tcp:127.0.0.1:8000"``."""
    return cast("StreamClientEndpoint", _build(reactor, spec, "client"))


# -- value parsing -------------------------------------------------------------------------------


def _int(name: str, value: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        number = low - 1
    if not low <= number <= high:
        raise ValueError(f"{name} must be an integer from {low} to {high}, got {value!r}")
    return number


def _port(value: str) -> int:
    return _int("port", value, 0, 65535)


def _timeout(value: str) -> float | None:
    if value.lower() in ("none", ""):
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise ValueError(f"timeout must be a number of seconds >= 0 (or 'none'), got {value!r}")
    return seconds


# -- tcp -----------------------------------------------------------------------------------------


def _limit(name: str, value: str) -> int | None:
    """A connection cap: a positive integer, or ``none``/empty for no cap."""
    if value.strip().lower() in ("none", ""):
        return None
    return _int(name, value, 1, 1 << 30)


@implementer(IStreamServerEndpoint)
class TCPServerEndpoint:
    """Listen on a TCP port.

    ``backlog`` None is the OS maximum; ``max_connections`` / ``max_connections_per_host`` cap
    the open connections in total / per peer IP address (None: no cap). See
    :class:`net.tcp.Port` and docs/SECURITY.md.
    """

    def __init__(
        self,
        reactor: Reactor,
        port: int,
        backlog: int | None = None,
        interface: str = "",
        *,
        max_connections: int | None = None,
        max_connections_per_host: int | None = None,
        reuse_port: bool = False,
    ) -> None:
        self.reactor = reactor
        self.port = port
        self.backlog = backlog
        self.interface = interface
        self.max_connections = max_connections
        self.max_connections_per_host = max_connections_per_host
        self.reuse_port = reuse_port  # SO_REUSEPORT: worker processes on one port (net.tcp.Port)

    def __repr__(self) -> str:
        return f"<TCPServerEndpoint {self.interface or '*'}:{self.port}>"

    def listen(self, factory: ProtocolFactory) -> Deferred[ListeningPort]:
        try:
            if self.reuse_port:  # before the bind, so passed (only then: any IReactorTCP will do otherwise)
                port = self.reactor.listen_tcp(self.port, factory, self.backlog, self.interface, reuse_port=True)
            else:
                port = self.reactor.listen_tcp(self.port, factory, self.backlog, self.interface)
        except Exception as exc:  # CannotListenError, mostly
            return fail(Failure(exc))
        # Set on the port rather than passed to listen_tcp, so any IReactorTCP will do; no
        # connection is accepted before the reactor's next iteration, so none escapes the caps.
        # (Attributes our net.tcp.Port reads: not part of the ListeningPort contract.)
        if self.max_connections is not None:
            port.max_connections = self.max_connections  # type: ignore[attr-defined]
        if self.max_connections_per_host is not None:
            port.max_connections_per_host = self.max_connections_per_host  # type: ignore[attr-defined]
        return succeed(port)


@implementer(IStreamClientEndpoint)
class TCPClientEndpoint:
    """Connect to a TCP host and port; the host may be a name, resolved in the thread pool."""

    def __init__(
        self,
        reactor: ReactorTCP,
        host: str,
        port: int,
        timeout: float | None = 30,
        bind_address: tuple[str, int] | None = None,
    ) -> None:
        self.reactor = reactor
        self.host = host
        self.port = port
        self.timeout = timeout
        self.bind_address = bind_address

    def __repr__(self) -> str:
        return f"<TCPClientEndpoint {self.host}:{self.port}>"

    def connect(self, factory: ProtocolFactory) -> Deferred[Any]:
        wrapper = WrappingClientFactory(factory)
        wrapper.connector = self.reactor.connect_tcp(
            self.host, self.port, wrapper, self.timeout, self.bind_address)
        return wrapper.deferred

    def wrap(self, factory: ClientProtocolFactory) -> ClientProtocolFactory:
        """The client factory to run over a stream already connected to host:port: ``factory``
        itself, as TCP adds no layer. A tunnel (:mod:`net.tunnels`) calls it for its inner endpoint."""
        return factory


def _tcp_server(
    reactor: Reactor,
    port: str,
    *,
    interface: str = "",
    backlog: str = "",
    max_connections: str = "",
    max_connections_per_host: str = "",
    reuse_port: str = "0",
) -> TCPServerEndpoint:
    return TCPServerEndpoint(
        reactor,
        _port(port),
        _int("backlog", backlog, 0, 1 << 20) if backlog.strip() else None,
        interface,
        max_connections=_limit("max_connections", max_connections),
        max_connections_per_host=_limit("max_connections_per_host", max_connections_per_host),
        reuse_port=bool(_int("reuse_port", reuse_port, 0, 1)),
    )


def _tcp_client(
    reactor: Reactor, host: str, port: str, *, timeout: str = "30", bind_address: str = ""
) -> TCPClientEndpoint:
    if not host:
        raise ValueError("host must not be empty")
    bind = (bind_address, 0) if bind_address else None
    return TCPClientEndpoint(reactor, host, _port(port), _timeout(timeout), bind)


register_endpoint_type("tcp", _tcp_server, _tcp_client)


# -- adapting a plain factory to a connector -----------------------------------------------------


class WrappingClientFactory(WrappingFactory, ClientFactory):
    """Lets a connector serve any factory and turns the outcome into :attr:`deferred`.

    :attr:`deferred` fires with the wrapped factory's protocol once its ``connection_made`` ran, or
    fails with the ConnectError; cancelling it abandons the attempt (``CancelledError``). Client
    endpoints of every transport use this; set :attr:`connector` right after creating the connector.
    """

    def __init__(self, wrapped: ProtocolFactory) -> None:
        self.wrapped = wrapped
        # The connector the endpoint made (None until set). Any: the cancellers read its
        # ``state`` and ``transport``, which our connectors have beyond the Connector contract.
        self.connector: Any = None
        self._cancelled = False
        self.deferred: Deferred[Any] = Deferred(canceller=self._cancel)

    def build_protocol(self, addr: Address) -> Protocol | None:
        protocol = self.wrapped.build_protocol(addr)
        return None if protocol is None else _WrappingProtocol(self.deferred, protocol)

    def client_connection_failed(self, connector: Connector, reason: Failure) -> None:
        if not self._cancelled and not self.deferred.called:
            self.deferred.errback(reason)

    def _cancel(self, deferred: Deferred[Any]) -> None:
        self._cancelled = True
        connector = self.connector
        if connector is not None and connector.state == "connecting":
            connector.stop_connecting()
        elif connector is not None and connector.state == "connected" and connector.transport is not None:
            # Connected but the Deferred has not fired: a TLS or proxy handshake is under way on
            # the socket, so cancelling drops the connection.
            connector.transport.abort_connection()
        if not deferred.called:
            deferred.errback(Failure(CancelledError(f"connecting to {self.connector!r} was cancelled")))


class _WrappingProtocol(Protocol):
    """Forwards everything to the wrapped protocol (``get_buffer``/``buffer_updated`` and
    ``fds_received`` too, when it has them); fires the Deferred after connection_made."""

    def __init__(self, deferred: Deferred[Any], wrapped: StreamProtocol) -> None:
        self._deferred = deferred
        self.wrapped = wrapped
        if hasattr(wrapped, "get_buffer") and hasattr(wrapped, "buffer_updated"):
            # A buffered protocol stays one through the wrapper (instance attributes, so the
            # transport sees get_buffer only when the wrapped protocol has it).
            self.get_buffer = wrapped.get_buffer
            self.buffer_updated = wrapped.buffer_updated
        if hasattr(wrapped, "fds_received"):
            # Likewise: a Unix transport receives descriptors only for a protocol that takes them.
            self.fds_received = wrapped.fds_received

    def make_connection(self, transport: Transport) -> None:
        self.transport = transport
        self.connected = True
        try:
            self.wrapped.make_connection(transport)
        except Exception as exc:
            error = ConnectError(f"connection_made failed: {exc}")
            error.__cause__ = exc
            self._deferred.errback(Failure(error))
            raise
        self._deferred.callback(self.wrapped)

    def data_received(self, data: bytes) -> None:
        self.wrapped.data_received(data)

    def eof_received(self) -> bool | None:
        result: bool | None = self.wrapped.eof_received()
        return result

    def connection_lost(self, reason: Failure) -> None:
        self.connected = False
        self.wrapped.connection_lost(reason)
