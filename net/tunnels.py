"""Tunnels through SOCKS4/4a, SOCKS5 and HTTP CONNECT proxies, as client endpoints.

A tunnel endpoint wraps any other client endpoint, and the protocol above does not change::

    client(reactor, "socks5:proxyhost:1080:tcp:host:8000")
    client(reactor, "socks5:proxyhost:1080:user=u:password=p:tls:host:8801:ca=ca.pem")
    client(reactor, "socks4a:proxyhost:1080:user=me:tcp:host:8000")
    client(reactor, "connect:proxyhost:3128:user=u:password=p:tcp:host:8000")

Grammar: ``KIND:PROXYHOST:PROXYPORT[:key=value...]:INNER``, where INNER is a client endpoint
string (``tcp:``, ``tls:``, or another tunnel: ``socks5:a:1080:connect:b:3128:tcp:host:80``
reaches host through a, then b). The options between the proxy's port and INNER are the
tunnel's: ``user=`` (SOCKS4: the user id), ``password=`` (SOCKS5, CONNECT), and ``timeout=``
(seconds for the TCP connection to the proxy and for the handshake, each; default 30).

The tunnel connects to the proxy over TCP and asks it for INNER's host and port (a host name goes
to the proxy as a name, for the proxy to resolve; SOCKS4 without 4a carries IPv4 only). Once the
proxy has opened the tunnel, INNER's protocol layers run over the same stream: none for tcp:, the
TLS handshake for tls: (SNI and certificate check for the *final* host, end to end), the next
proxy's handshake for a nested tunnel. INNER's own connect options (timeout=, bind_address=) do
not apply: the proxy makes that connection. Bytes the proxy sends after its reply (the target's
greeting, say) go to the protocol above, not lost.

The hook every wrappable endpoint provides is :class:`TunnelableEndpoint`: ``host``/``port`` (where
its first hop goes) and ``wrap(factory)`` (the client factory running its layers over a stream
connected there). The handshakes are the sans-I/O machines of :mod:`net.socks` and
:mod:`net.httpconnect`; this module drives them over a transport. A refusal or a broken proxy
fails the connect with :class:`~net.error.ProxyError` (``kind``, ``proxy``, ``code``: the SOCKS
reply code or HTTP status); a proxy that cannot be reached fails as a plain TCP connect would
(``ConnectionRefusedError``, ...), its message naming the proxy. The transport the protocol
above sees is the TCP connection to the proxy, so ``get_peer()`` is the proxy's address.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, Protocol as TypingProtocol, cast

from zope.interface import implementer

from .connector import build_client_protocol
from .address import IPv4Address, IPv6Address
from .defer import Deferred, Failure
from .endpoints import WrappingClientFactory, _port, _timeout, client, parse, register_wrapping_endpoint_type
from .error import ConnectError, ProxyError
from .httpconnect import ConnectHandshake
from .interfaces import IStreamClientEndpoint
from .protocol import LayerClientFactory, Protocol
from .socks import Socks4Handshake, Socks5Handshake

if TYPE_CHECKING:
    from .address import Address
    from .contracts import (
        ClientProtocolFactory,
        DelayedCall,
        ProtocolFactory,
        Reactor,
        ReactorTime,
        StreamProtocol,
        Transport,
    )

__all__ = [
    "TunnelableEndpoint",
    "TunnelHandshake",
    "TunnelClientEndpoint",
    "TunnelClientFactory",
    "TunnelProtocol",
    "KINDS",
]

log = logging.getLogger("net.tunnels")

DEFAULT_TIMEOUT = 30.0


class TunnelableEndpoint(TypingProtocol):
    """A client endpoint a tunnel can run over a stream the proxy opened.

    ``host``/``port`` are where the endpoint's first hop goes: the tunnel asks its proxy for them.
    ``wrap(factory)`` returns the client factory that runs the endpoint's protocol layers over a
    stream already connected there (``factory`` itself for tcp:, a TLS factory for tls:, a
    :class:`TunnelClientFactory` for a tunnel), reporting outcomes to ``factory``'s hooks.
    """

    host: str
    port: int

    def wrap(self, factory: ClientProtocolFactory) -> ClientProtocolFactory: ...


class TunnelHandshake(TypingProtocol):
    """What :class:`TunnelProtocol` drives: :mod:`net.socks` and :mod:`net.httpconnect` machines."""

    @property
    def kind(self) -> str: ...

    @property
    def done(self) -> bool: ...

    @property
    def leftover(self) -> bytes: ...

    @property
    def phase(self) -> str: ...

    @property
    def who(self) -> str: ...

    @property
    def target(self) -> str: ...

    def start(self) -> bytes: ...

    def receive_data(self, data: bytes) -> bytes: ...


_PROTOCOL_NAMES = {"socks4": "a SOCKS4", "socks4a": "a SOCKS4a", "socks5": "a SOCKS5", "connect": "an HTTP"}


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


#: Per kind: the options its strings take, and how its handshake is made
#: (target host, target port, options, proxy name) -> handshake; ValueError for bad values.
KINDS: dict[str, tuple[frozenset[str], Callable[[str, int, dict[str, str], str], TunnelHandshake]]] = {
    "socks4": (frozenset({"user", "timeout"}),
               lambda host, port, o, proxy: Socks4Handshake(host, port, user=o.get("user", ""), proxy=proxy)),
    "socks4a": (frozenset({"user", "timeout"}),
                lambda host, port, o, proxy: Socks4Handshake(host, port, user=o.get("user", ""),
                                                             allow_names=True, proxy=proxy)),
    "socks5": (frozenset({"user", "password", "timeout"}),
               lambda host, port, o, proxy: Socks5Handshake(host, port, user=o.get("user"),
                                                            password=o.get("password"), proxy=proxy)),
    "connect": (frozenset({"user", "password", "timeout"}),
                lambda host, port, o, proxy: ConnectHandshake(host, port, user=o.get("user"),
                                                              password=o.get("password"), proxy=proxy)),
}


# -- the protocol and factory that run a handshake, then the inner layers ------------------------


def _deliver(protocol: StreamProtocol, data: bytes) -> None:
    """Hand ``data`` to ``protocol`` as the transport would: into its buffer if it lends one."""
    get_buffer = getattr(protocol, "get_buffer", None)
    buffer_updated = getattr(protocol, "buffer_updated", None)
    if get_buffer is None or buffer_updated is None:
        protocol.data_received(data)
        return
    view = memoryview(data)
    while view:
        target = memoryview(get_buffer(len(view))).cast("B")
        size = min(len(target), len(view))
        if not size:
            raise RuntimeError(f"{protocol!r}: get_buffer() returned an empty buffer")
        target[:size] = view[:size]
        del target
        buffer_updated(size)
        view = view[size:]


class TunnelProtocol(Protocol):
    """One connection to a proxy: runs the handshake, then the inner protocol through the tunnel.

    Until the tunnel is open it is the protocol of the TCP connection; then it builds the inner
    protocol (``factory.wrapped.build_protocol(target address)``), connects it to the same
    transport (its writes go straight to TCP) and passes every event on, reads included: a
    buffered inner protocol reads straight into its own buffer.
    """

    # The inner protocol once the tunnel is open (a contracts.StreamProtocol), None before. Any:
    # the paths that run only after the handshake need no None checks.
    inner: Any = None

    def __init__(self, factory: TunnelClientFactory, handshake: TunnelHandshake) -> None:
        self.factory = None  # a Protocol attribute; ours is _tunnel_factory (not a net Factory)
        self._tunnel_factory = factory
        self.handshake = handshake
        self._error: BaseException | None = None
        self._timer: DelayedCall | None = None

    def __repr__(self) -> str:
        state = "open" if self.inner is not None else "failed" if self._error else "handshaking"
        return f"<TunnelProtocol {self.handshake.who} to {self.handshake.target} {state}>"

    def connection_made(self, transport: Transport) -> None:
        factory = self._tunnel_factory
        reactor = factory.reactor if factory.reactor is not None else getattr(transport, "reactor", None)
        if factory.timeout is not None and reactor is not None:
            self._timer = reactor.call_later(factory.timeout, self._timed_out)
        transport.write(self.handshake.start())

    def data_received(self, data: bytes) -> None:
        inner = self.inner
        if inner is not None:
            inner.data_received(data)
            return
        if self._error is not None:
            return
        try:
            reply = self.handshake.receive_data(data)
        except ProxyError as exc:
            self._fail(exc)
            return
        if reply:
            self.transport.write(reply)
        if self.handshake.done:
            self._open()

    def eof_received(self) -> bool | None:
        if self.inner is not None:
            keep: bool | None = self.inner.eof_received()
            return keep
        if self._error is None:
            self._error = self._make_error(
                f"closed the connection while we were {self.handshake.phase}, so there is no tunnel "
                f"to {self.handshake.target}: is it {_PROTOCOL_NAMES[self._tunnel_factory.kind]} "
                "proxy, and does it accept this client? (its log says why it closed)")
        return None

    def connection_lost(self, reason: Failure) -> None:
        self._cancel_timer()
        factory = self._tunnel_factory
        if self.inner is None:
            error = self._error
            if error is None:
                error = self._make_error(f"dropped the connection while we were {self.handshake.phase}: "
                                         f"{reason.value}")
                error.__cause__ = reason.value
            factory._outcome = (False, Failure(error))
            return
        factory._outcome = (True, reason)
        self.inner.connection_lost(reason)

    # -- the handshake's end -------------------------------------------------------------------

    def _open(self) -> None:
        self._cancel_timer()
        factory = self._tunnel_factory
        try:
            protocol = build_client_protocol(factory.wrapped, factory.target_address, log)
        except ConnectError as error:
            self._fail(error)
            return
        self.inner = protocol
        if hasattr(protocol, "get_buffer") and hasattr(protocol, "buffer_updated"):
            # Instance attributes: the transport reads into the inner protocol's buffer from now on.
            self.get_buffer = protocol.get_buffer
            self.buffer_updated = protocol.buffer_updated
        log.debug("%s opened a tunnel to %s", self.handshake.who, self.handshake.target)
        protocol.make_connection(self.transport)
        leftover = self.handshake.leftover
        if leftover and not self.transport.is_closing():
            _deliver(protocol, leftover)

    def _make_error(self, message: str) -> ProxyError:
        factory = self._tunnel_factory
        return ProxyError(f"{self.handshake.who} {message}", proxy=factory.proxy, kind=self.handshake.kind)

    def _fail(self, error: BaseException) -> None:
        self._cancel_timer()
        if self._error is None:
            self._error = error
        log.info("%s", error)
        self.transport.abort_connection(error)

    def _timed_out(self) -> None:
        self._timer = None
        if self.inner is None and self._error is None:
            self._fail(self._make_error(
                f"did not open the tunnel to {self.handshake.target} within "
                f"{self._tunnel_factory.timeout:g} seconds (we were {self.handshake.phase}): is it "
                f"{_PROTOCOL_NAMES[self._tunnel_factory.kind]} proxy, and is it overloaded?"))

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None


class TunnelClientFactory(LayerClientFactory):
    """The client factory of a tunnel: a :class:`TunnelProtocol` per connection to the proxy.

    ``wrapped`` is the inner endpoint's factory (from its ``wrap``); the connector's hooks are
    passed on to it, except that a connection that ends before the tunnel opened is reported as
    ``client_connection_failed`` with the tunnel's error.
    """

    wrapped: ClientProtocolFactory

    def __init__(
        self,
        wrapped: ClientProtocolFactory,
        make_handshake: Callable[[], TunnelHandshake],
        target: tuple[str, int],
        *,
        kind: str,
        proxy: str,
        timeout: float | None = DEFAULT_TIMEOUT,
        reactor: ReactorTime | None = None,
    ) -> None:
        self.wrapped = wrapped
        self.make_handshake = make_handshake
        host, port = target
        self.target_address = IPv6Address("TCP", host, port) if ":" in host else IPv4Address("TCP", host, port)
        self.kind = kind
        self.proxy = proxy
        self.timeout = timeout
        self.reactor = reactor
        self._outcome = None  # (established, failure), from TunnelProtocol.connection_lost

    def __repr__(self) -> str:
        return f"<TunnelClientFactory {self.kind} via {self.proxy} wrapping {self.wrapped!r}>"

    def build_protocol(self, addr: Address) -> TunnelProtocol:
        return TunnelProtocol(self, self.make_handshake())

    def _connect_failure(self, reason: Failure) -> Failure:
        """The TCP connect to the proxy failed: the same error, its message naming the proxy."""
        exc = reason.value
        if not isinstance(exc, ConnectError) or isinstance(exc, ProxyError):
            return reason
        try:
            renamed = type(exc)(f"cannot reach the {self.kind} proxy at {self.proxy}: {exc}")
        except Exception:  # a ConnectError subclass with another constructor: keep it as it is
            return reason
        renamed.errno = exc.errno
        renamed.__cause__ = exc
        return Failure(renamed)


# -- the endpoint ----------------------------------------------------------------------------------


@implementer(IStreamClientEndpoint)
class TunnelClientEndpoint:
    """Connect through a proxy to ``inner``'s host and port, then run ``inner``'s layers.

    ``kind`` is a key of :data:`KINDS`; ``options`` are the tunnel's string options (``user``,
    ``password``); ``timeout`` bounds the TCP connect to the proxy and the handshake, each.
    Raises ValueError at once for a target or credentials the protocol cannot carry.
    """

    def __init__(
        self,
        reactor: Reactor,
        kind: str,
        proxy_host: str,
        proxy_port: int,
        inner: TunnelableEndpoint,
        options: dict[str, str] | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown tunnel kind {kind!r}; known: {', '.join(KINDS)}")
        self.reactor = reactor
        self.kind = kind
        self.host = proxy_host
        self.port = proxy_port
        self.inner = inner
        self.options = dict(options or {})
        self.timeout = timeout
        self.make_handshake()  # refuse now what could never be sent

    def __repr__(self) -> str:
        return f"<TunnelClientEndpoint {self.kind} via {self.proxy} to {self.inner!r}>"

    @property
    def proxy(self) -> str:
        return _hostport(self.host, self.port)

    def make_handshake(self) -> TunnelHandshake:
        return KINDS[self.kind][1](self.inner.host, self.inner.port, self.options, self.proxy)

    def wrap(self, factory: ClientProtocolFactory) -> TunnelClientFactory:
        """This tunnel over a stream already connected to the proxy (so tunnels nest)."""
        return TunnelClientFactory(self.inner.wrap(factory), self.make_handshake,
                                   (self.inner.host, self.inner.port), kind=self.kind,
                                   proxy=self.proxy, timeout=self.timeout, reactor=self.reactor)

    def connect(self, factory: ProtocolFactory) -> Deferred[Any]:
        """Fires with ``factory``'s protocol once the tunnel and the inner layers are up."""
        wrapper = WrappingClientFactory(factory)
        wrapper.connector = self.reactor.connect_tcp(self.host, self.port, self.wrap(wrapper), self.timeout)
        return wrapper.deferred


# -- endpoint strings ------------------------------------------------------------------------------


def _split_inner(text: str) -> tuple[str, str]:
    """``PROXYHOST:PROXYPORT[:key=value...]`` and INNER, as written (escapes kept).

    Segments are split as :func:`net.endpoints.parse` splits them (backslash escapes, brackets);
    INNER starts at the first segment after the port without an unescaped ``=``.
    """
    index, depth, i = 0, 0, 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth = max(0, depth - 1)
        elif ch == ":" and depth == 0:
            index += 1
            if index >= 2 and not _starts_option(text, i + 1):
                return text[:i], text[i + 1:]
        i += 1
    raise ValueError("the proxy's host and port must be followed by the endpoint to reach through "
                     "it, e.g. ':tcp:HOST:PORT' or ':tls:HOST:PORT:ca=CA'")


def _starts_option(text: str, start: int) -> bool:
    """Does the segment at ``start`` hold an unescaped ``=`` (a key=value, not an endpoint type)?"""
    i = start
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "=":
            return True
        if ch == ":":
            return False
        i += 1
    return False


def _make_parser(kind: str) -> Callable[[Reactor, str], TunnelClientEndpoint]:
    allowed = KINDS[kind][0]

    def parse_tunnel(reactor: Reactor, rest: str) -> TunnelClientEndpoint:
        head, inner_spec = _split_inner(rest)
        _, args, options = parse(f"{kind}:{head}")
        if len(args) != 2:
            raise ValueError(f"a {kind} tunnel takes the proxy's host and port, then options, then "
                             f"the inner endpoint; got {len(args)} values before the options")
        proxy_host, proxy_port = args
        if not proxy_host:
            raise ValueError("the proxy host must not be empty")
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise ValueError(f"{kind}: takes {', '.join(f'{o}=' for o in sorted(allowed))}, "
                             f"not {', '.join(f'{o}=' for o in unknown)}")
        try:
            port = _port(proxy_port)
        except ValueError as exc:
            raise ValueError(f"the proxy's {exc} (write {kind}:PROXYHOST:PROXYPORT:INNER)") from None
        timeout = _timeout(options.pop("timeout", str(DEFAULT_TIMEOUT)))
        try:
            inner = client(reactor, inner_spec)
        except ValueError as exc:
            raise ValueError(f"its inner endpoint is bad ({exc})") from None
        if not all(hasattr(inner, name) for name in ("host", "port", "wrap")):
            raise ValueError(f"the inner endpoint {inner_spec!r} cannot run through a tunnel "
                             "(tunnels carry tcp:, tls: and other tunnels)")
        return TunnelClientEndpoint(reactor, kind, proxy_host, port, cast("TunnelableEndpoint", inner),
                                    options, timeout)

    return parse_tunnel


_USAGE = {
    "socks4": "socks4:PROXYHOST:PROXYPORT[:user=USERID][:timeout=TIMEOUT]:INNER",
    "socks4a": "socks4a:PROXYHOST:PROXYPORT[:user=USERID][:timeout=TIMEOUT]:INNER",
    "socks5": "socks5:PROXYHOST:PROXYPORT[:user=USER:password=PASSWORD][:timeout=TIMEOUT]:INNER",
    "connect": "connect:PROXYHOST:PROXYPORT[:user=USER:password=PASSWORD][:timeout=TIMEOUT]:INNER",
}

for _kind in KINDS:
    register_wrapping_endpoint_type(_kind, _make_parser(_kind), _USAGE[_kind])
del _kind
