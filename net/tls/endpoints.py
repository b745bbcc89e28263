"""``tls:`` endpoint strings, registered with :mod:`net.endpoints` when this package is imported.

Server: ``tls:8801:cert=server.pem:key=server.key`` (+ ``ca=ca.pem`` to require client
certificates, ``interface=127.0.0.1``, ``backlog`` (default: the OS maximum), ``max_connections``,
``max_connections_per_host``, ``handshake_timeout=30``).
Client: ``tls:HOST:8801:ca=ca.pem`` (+ ``cert=client.pem:key=client.key``, ``timeout=5`` for the
TCP connect and the handshake each, ``hostname=NAME`` to check another name than HOST). Without
``ca=`` the client trusts the system's certificate store; there is deliberately no string to turn
verification off.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from OpenSSL import SSL
from zope.interface import implementer

from ..defer import Deferred, Failure, fail, succeed
from ..endpoints import (  # the shared value parsers are module-private; reuse, don't fork
    WrappingClientFactory,
    _int,
    _limit,
    _port,
    _timeout,
    register_endpoint_type,
)
from ..interfaces import IStreamClientEndpoint, IStreamServerEndpoint
from .contexts import client_context, server_context
from .transport import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    TLSClientFactory,
    connect_tls,
    listen_tls,
    wrap_client_factory,
)

if TYPE_CHECKING:
    from ..contracts import ClientProtocolFactory, ListeningPort, ProtocolFactory, Reactor

__all__ = ["TLSServerEndpoint", "TLSClientEndpoint", "server_context_from_options", "client_context_from_options"]


@implementer(IStreamServerEndpoint)
class TLSServerEndpoint:
    """Listen for TLS on a TCP port."""

    def __init__(
        self,
        reactor: Reactor,
        port: int,
        context: SSL.Context,
        backlog: int | None = None,
        interface: str = "",
        handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
        *,
        max_connections: int | None = None,
        max_connections_per_host: int | None = None,
    ) -> None:
        self.reactor = reactor
        self.port = port
        self.context = context
        self.backlog = backlog
        self.interface = interface
        self.handshake_timeout = handshake_timeout
        self.max_connections = max_connections
        self.max_connections_per_host = max_connections_per_host

    def __repr__(self) -> str:
        return f"<TLSServerEndpoint {self.interface or '*'}:{self.port}>"

    def listen(self, factory: ProtocolFactory) -> Deferred[ListeningPort]:
        try:
            port = listen_tls(self.reactor, self.port, factory, self.context, self.backlog,
                              self.interface, handshake_timeout=self.handshake_timeout)
        except Exception as exc:  # CannotListenError, mostly
            return fail(Failure(exc))
        # As for tcp: the caps go on the TCP port, before it accepts anything (attributes our
        # net.tcp.Port reads; not part of the ListeningPort contract).
        if self.max_connections is not None:
            port.max_connections = self.max_connections  # type: ignore[attr-defined]
        if self.max_connections_per_host is not None:
            port.max_connections_per_host = self.max_connections_per_host  # type: ignore[attr-defined]
        return succeed(port)


@implementer(IStreamClientEndpoint)
class TLSClientEndpoint:
    """Connect over TLS; the Deferred fires once the handshake completed and the protocol's
    connection_made ran, or fails with a ConnectError (TLSError/CertificateError for TLS)."""

    def __init__(
        self,
        reactor: Reactor,
        host: str,
        port: int,
        context: SSL.Context,
        hostname: str | None = None,
        timeout: float | None = 30,
        bind_address: tuple[str, int] | None = None,
        handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
    ) -> None:
        self.reactor = reactor
        self.host = host
        self.port = port
        self.context = context
        self.hostname = hostname
        self.timeout = timeout
        self.bind_address = bind_address
        self.handshake_timeout = handshake_timeout

    def __repr__(self) -> str:
        return f"<TLSClientEndpoint {self.host}:{self.port}>"

    def connect(self, factory: ProtocolFactory) -> Deferred[Any]:
        wrapper = WrappingClientFactory(factory)
        wrapper.connector = connect_tls(
            self.reactor, self.host, self.port, wrapper, self.context, self.timeout,
            self.bind_address, hostname=self.hostname, handshake_timeout=self.handshake_timeout)
        return wrapper.deferred

    def wrap(self, factory: ClientProtocolFactory) -> TLSClientFactory:
        """The client factory running TLS to ``hostname`` (default: host) over a stream already
        connected there: a tunnel (:mod:`net.tunnels`) calls it for its inner endpoint, so the
        handshake, SNI and certificate check are end to end with the final host."""
        return wrap_client_factory(factory, self.context, self.hostname or self.host,
                                   handshake_timeout=self.handshake_timeout, reactor=self.reactor)


def server_context_from_options(cert: str, key: str, ca: str = "") -> SSL.Context:
    """The server context of an endpoint string's ``cert=``, ``key=`` and ``ca=`` (for every
    endpoint type that serves TLS); ValueError, naming the files, if they cannot be loaded."""
    try:
        return server_context(cert, key, ca or None)
    except (OSError, SSL.Error) as exc:
        raise ValueError(f"cannot load cert={cert!r} key={key!r} ca={ca!r}: {exc}") from exc


def client_context_from_options(ca: str = "", cert: str = "", key: str = "") -> SSL.Context:
    """The client context of an endpoint string's ``ca=`` and optional ``cert=``/``key=`` pair;
    ValueError for half a pair or files that cannot be loaded."""
    if bool(cert) != bool(key):
        raise ValueError("a client certificate needs both cert= and key=")
    try:
        return client_context(ca or None, cert or None, key or None)
    except (OSError, SSL.Error) as exc:
        raise ValueError(f"cannot load ca={ca!r} cert={cert!r} key={key!r}: {exc}") from exc


def _tls_server(
    reactor: Reactor,
    port: str,
    cert: str,
    key: str,
    *,
    ca: str = "",
    interface: str = "",
    backlog: str = "",
    handshake_timeout: str = "30",
    max_connections: str = "",
    max_connections_per_host: str = "",
) -> TLSServerEndpoint:
    context = server_context_from_options(cert, key, ca)
    return TLSServerEndpoint(reactor, _port(port), context,
                             _int("backlog", backlog, 0, 1 << 20) if backlog.strip() else None,
                             interface, _timeout(handshake_timeout),
                             max_connections=_limit("max_connections", max_connections),
                             max_connections_per_host=_limit("max_connections_per_host", max_connections_per_host))


def _tls_client(
    reactor: Reactor,
    host: str,
    port: str,
    *,
    ca: str = "",
    cert: str = "",
    key: str = "",
    hostname: str = "",
    timeout: str = "30",
    bind_address: str = "",
) -> TLSClientEndpoint:
    if not host:
        raise ValueError("host must not be empty")
    context = client_context_from_options(ca, cert, key)
    seconds = _timeout(timeout)
    bind = (bind_address, 0) if bind_address else None
    return TLSClientEndpoint(reactor, host, _port(port), context, hostname or None, seconds, bind,
                             handshake_timeout=seconds)


register_endpoint_type("tls", _tls_server, _tls_client)
