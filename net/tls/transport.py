"""TLS as a protocol wrapper over any stream transport, using OpenSSL memory BIOs.

:class:`TLSProtocol` is a *protocol* to the transport below (TCP today, Unix sockets later) and a
*transport* to the application protocol above, which does not change: ciphertext from below is
written into OpenSSL's read BIO, plaintext comes out of ``recv``; the application's writes go in
through ``send`` and the ciphertext drained from the write BIO is written below. No socket is ever
handed to OpenSSL, so every reactor backend works the same.

Lifecycle, from the application's point of view:

* The application protocol is built (``factory.build_protocol(addr)``) and its ``connection_made``
  called only once the handshake has completed, so it can look at :meth:`~TLSProtocol.
  get_peer_certificate` at once. Before that there is no connection to speak of: a failed or
  timed-out handshake goes to a client factory's ``client_connection_failed`` (an endpoint's
  Deferred fails) with a :class:`TLSError`/:class:`CertificateError`, and to a server factory's
  optional ``tls_handshake_failed(addr, failure)`` hook (and the ``net.tls`` log).
* ``lose_connection()`` sends everything written, then close_notify, then closes below; the peer
  gets ``ConnectionDone``. A connection that ends *without* close_notify ends with ConnectionLost
  (the data may have been truncated by an attacker).
* TLS has no half-close: ``can_write_eof()`` is False and ``write_eof()`` raises
  NotImplementedError. A close_notify from the peer is reported as ``eof_received()``; returning
  True keeps our sending side open (TLS 1.3 allows this; most peers will have closed anyway).
* Flow control is the transport's below: producers are registered there, the write buffer size
  is its size (in ciphertext bytes), and pausing reading pauses it.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from OpenSSL import SSL
from zope.interface import alsoProvides, implementer

from .._producing import ProducesWhatItReads
from ..connector import build_client_protocol
from ..defer import Failure
from ..error import ConnectError, ConnectionDone, ConnectionLost
from ..interfaces import IProtocolFactory, ITCPTransport, ITransport
from ..protocol import LayerClientFactory, Protocol, WrappingFactory
from .contexts import CertificateError, TLSError, describe_ssl_error, is_certificate_problem

if TYPE_CHECKING:
    from cryptography import x509

    from ..address import Address
    from ..contracts import (
        ClientProtocolFactory,
        Connector,
        DelayedCall,
        ListeningPort,
        ProtocolFactory,
        PullProducer,
        PushProducer,
        Reactor,
        ReactorTime,
        Transport,
    )

__all__ = [
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "TLSProtocol",
    "TLSServerFactory",
    "TLSClientFactory",
    "wrap_server_factory",
    "wrap_client_factory",
    "listen_tls",
    "connect_tls",
]

log = logging.getLogger("net.tls")

DEFAULT_HANDSHAKE_TIMEOUT = 30.0
"""Seconds a handshake may take before the connection is dropped, so a silent peer never hangs us."""

_SEND_SLICE = 256 * 1024  # plaintext encrypted per send(): bounds the ciphertext held at once
_RECV_SIZE = 64 * 1024  # plaintext asked of each recv(); OpenSSL returns at most one 16 KiB record
_BIO_SLACK = 16 * 1024  # room for record overhead when draining after a send
#: A TLS record: alert (21), version 3.1, length 2, level fatal (2), protocol_version (70).
_ALERT_PROTOCOL_VERSION = bytes([0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x46])


def _where(address: object) -> str:
    host, port = getattr(address, "host", None), getattr(address, "port", None)
    if host is None:
        return str(getattr(address, "name", address))
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@implementer(ITransport)
class TLSProtocol(ProducesWhatItReads, Protocol):
    """One TLS connection: the protocol of the transport below, the transport of the one above.

    Made by :class:`TLSServerFactory`/:class:`TLSClientFactory`; ``wrapped`` is the application
    protocol once the handshake has completed (None before). Provides ``ITCPTransport`` too when
    the transport below does (``set_tcp_nodelay``/``set_tcp_keepalive`` pass through).
    """

    # The application's protocol once the handshake has completed (a contracts.StreamProtocol),
    # None before. Any: the paths that run only after the handshake need no None checks.
    wrapped: Any = None
    verify_error: str | None = None
    """Why our verify callback refused the peer's certificate (read by :mod:`.contexts`)."""

    def __init__(
        self,
        factory: _TLSFactory,
        addr: Address,
        context: SSL.Context,
        *,
        server_side: bool,
        hostname: str | None = None,
        handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
        reactor: ReactorTime | None = None,
    ) -> None:
        self.factory = None  # a Protocol attribute; ours is _tls_factory (not a net Factory)
        self._tls_factory = factory
        self._addr = addr
        self.hostname = hostname
        self.server_side = server_side
        self._handshake_timeout = handshake_timeout
        self._reactor = reactor
        tls = SSL.Connection(context, None)
        tls.set_app_data(self)
        if server_side:
            tls.set_accept_state()
        else:
            tls.set_connect_state()
            if hostname and not _is_ip_literal(hostname):
                tls.set_tlsext_host_name(hostname.encode("idna"))  # SNI: never for IP literals
        self._tls = tls
        self._handshake_done = False
        self._sent_any = False  # has OpenSSL produced any bytes for the peer yet
        self._error: BaseException | None = None  # overrides the reason connection_lost reports
        self._closing = False  # lose_connection/abort/failure: no more writes or reads
        self._close_notify_received = False
        self._keep_writing = False  # the application kept its side open after close_notify
        self._aborted = False  # abort_connection() called: its reason stands
        self._lost = False
        self._read_paused = False
        self._timer: DelayedCall | None = None
        self._resume_call: DelayedCall | None = None

    def __repr__(self) -> str:
        state = ("closed" if self._lost else "closing" if self._closing
                 else "open" if self._handshake_done else "handshaking")
        side = "server" if self.server_side else "client"
        return f"<TLSProtocol {side} {_where(self._addr)} {state} wrapping {self.wrapped!r}>"

    # -- IProtocol, for the transport below ---------------------------------------------------

    def connection_made(self, transport: Transport) -> None:
        if ITCPTransport.providedBy(transport):
            alsoProvides(self, ITCPTransport)
        if self._reactor is None:
            self._reactor = getattr(transport, "reactor", None)
        if self._handshake_timeout is not None and self._reactor is not None:
            self._timer = self._reactor.call_later(self._handshake_timeout, self._timed_out)
        self._pump()  # a client sends its ClientHello now

    def data_received(self, data: bytes) -> None:
        if self._lost:
            return
        self._tls.bio_write(data)
        self._pump()

    def eof_received(self) -> bool | None:
        """The transport below saw EOF: fine after close_notify, a truncation otherwise."""
        if not self._close_notify_received and not self._read_paused and not self._closing:
            self._pump()  # anything still buffered, close_notify included, comes first
        if self._close_notify_received:
            return self._keep_writing
        if self._error is None and not self._closing:
            if self._handshake_done:
                self._error = ConnectionLost(
                    f"{_where(self.get_peer())} closed the connection without a TLS close_notify; "
                    "the data may have been truncated.", by_peer=True)
            else:
                self._error = TLSError(f"TLS handshake with {_where(self._addr)} failed: "
                                       "the peer closed the connection during the handshake")
        return None

    def connection_lost(self, reason: Failure) -> None:
        self._lost = True
        self._closing = True
        for call in (self._timer, self._resume_call):
            if call is not None and call.active():
                call.cancel()
        self._timer = self._resume_call = None
        if self._error is not None:
            failure = Failure(self._error)
        elif (self._close_notify_received and not self._aborted
              and isinstance(reason.value, ConnectionLost)):
            # The peer closed cleanly; the socket error comes from writing after it had gone.
            failure = Failure(ConnectionDone())
        elif self.wrapped is None:
            error = TLSError(f"TLS handshake with {_where(self._addr)} failed: "
                             f"connection lost during the handshake ({reason.value})")
            error.__cause__ = reason.value
            failure = Failure(error)
        else:
            failure = reason
        if self.wrapped is None:
            self._tls_factory._handshake_failed(self, self._addr, failure)
            return
        try:
            self.wrapped.connection_lost(failure)
        except Exception:
            log.exception("%r: connection_lost failed", self.wrapped)
        self._tls_factory._connection_ended(self, failure)

    # -- driving OpenSSL -----------------------------------------------------------------------

    def _pump(self) -> None:
        """Advance the handshake, deliver the plaintext that has arrived, send what OpenSSL made."""
        if not self._handshake_done:
            try:
                self._tls.do_handshake()
            except SSL.WantReadError:
                self._flush()
                return
            except SSL.Error as exc:
                self._fail(exc)
                return
            self._flush()
            self._handshake_completed()
            if self._closing:
                return
        if not self._read_paused and not self._closing:
            self._read()
        if not self._lost:
            self._flush()

    def _handshake_completed(self) -> None:
        self._handshake_done = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        try:
            protocol = build_client_protocol(self._tls_factory.wrapped, self._addr, log)
        except ConnectError as error:
            self._close_with(error)
            return
        self.wrapped = protocol
        try:
            protocol.make_connection(self)
        except Exception as exc:
            log.exception("%r: connection_made failed; closing", protocol)
            self._abort_with(exc)

    def _read(self) -> None:
        chunks: list[bytes] = []
        recv = self._tls.recv
        eof = False
        error: SSL.Error | None = None
        while True:
            try:
                chunks.append(recv(_RECV_SIZE))
            except SSL.WantReadError:
                break
            except SSL.ZeroReturnError:
                eof = True
                break
            except SSL.Error as exc:
                error = exc
                break
        if chunks:
            try:
                self.wrapped.data_received(b"".join(chunks) if len(chunks) > 1 else chunks[0])
            except Exception as exc:
                log.exception("%r: data_received failed; closing", self.wrapped)
                self._abort_with(exc)
                return
        if error is not None:
            if not self._closing:
                self._fail(error)
        elif eof:
            self._on_close_notify()

    def _on_close_notify(self) -> None:
        if self._close_notify_received:  # OpenSSL repeats it at every later read: report it once
            return
        self._close_notify_received = True
        if self._closing:
            return
        try:
            keep = self.wrapped.eof_received()
        except Exception as exc:
            log.exception("%r: eof_received failed; closing", self.wrapped)
            self._abort_with(exc)
            return
        if keep:
            self._keep_writing = True
        else:
            self.lose_connection(ConnectionDone("The peer closed the TLS connection.", by_peer=True))

    def _flush(self, size: int = _RECV_SIZE) -> None:
        """Move the ciphertext OpenSSL produced to the transport below, in as few writes as fit."""
        chunks: list[bytes] = []
        bio_read = self._tls.bio_read
        while True:
            try:
                chunk = bio_read(size)
            except SSL.WantReadError:
                break
            chunks.append(chunk)
            if len(chunk) < size:  # a memory BIO hands over all it has: it is empty now
                break
        if chunks:
            self._sent_any = True
            self.transport.write(b"".join(chunks) if len(chunks) > 1 else chunks[0])

    def _fail(self, exc: SSL.Error) -> None:
        """OpenSSL refused something: say why, send its alert, and close."""
        reason = self.verify_error or describe_ssl_error(exc)
        cls = CertificateError if self.verify_error or is_certificate_problem(reason) else TLSError
        if not self._handshake_done and "wrong version number" in reason:
            reason += " (the peer does not seem to speak TLS: is it a plain tcp: endpoint?)"
        if self._handshake_done:
            error = cls(f"TLS error on the connection with {_where(self._addr)}: {reason}")
        else:
            error = cls(f"TLS handshake with {_where(self._addr)} failed: {reason}")
        error.__cause__ = exc
        self._flush()
        if self.server_side and not self._handshake_done and not self._sent_any:
            # The client spoke something that is not TLS (OpenSSL answers a bad record header with
            # silence): a fatal protocol_version alert lets it see that this port expects TLS.
            self.transport.write(_ALERT_PROTOCOL_VERSION)
        self._close_with(error)

    def _close_with(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
        self._closing = True
        self.transport.lose_connection(error)

    def _abort_with(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
        self._closing = True
        self.transport.abort_connection(error)

    def _timed_out(self) -> None:
        self._timer = None
        if not self._handshake_done and not self._closing:
            self._abort_with(TLSError(f"TLS handshake with {_where(self._addr)} failed: "
                                      f"not complete after {self._handshake_timeout:g} seconds"))

    def _resume(self) -> None:
        self._resume_call = None
        if not self._lost:
            self._pump()

    # -- ITransport, for the application protocol above ---------------------------------------

    def write(self, data: bytes) -> None:
        """Encrypt ``data`` now and pass the records down; a big write is encrypted in slices so
        the ciphertext never needs to be held twice."""
        if self._closing or not data or not self._handshake_done:
            return
        view = memoryview(data)
        send = self._tls.send
        try:
            for start in range(0, len(view), _SEND_SLICE):
                piece = view[start:start + _SEND_SLICE]
                size = len(piece)
                while piece:
                    piece = piece[send(piece):]
                self._flush(size + _BIO_SLACK)
        except SSL.WantReadError as exc:  # only mid-renegotiation, which we never start or accept
            error = TLSError(f"TLS error on the connection with {_where(self._addr)}: cannot write "
                             "during a renegotiation (renegotiation is not supported)")
            error.__cause__ = exc
            self._close_with(error)
        except SSL.Error as exc:
            self._fail(exc)

    def writelines(self, seq: Iterable[bytes]) -> None:
        self.write(b"".join(seq))

    def lose_connection(self, reason: BaseException | None = None) -> None:
        """Send what was written, then close_notify, then close the transport below."""
        if self._closing:
            return
        self._closing = True
        if self._handshake_done:
            try:
                self._tls.shutdown()
            except SSL.Error:
                pass
            self._flush()
        self.transport.lose_connection(reason)

    def abort_connection(self, reason: BaseException | None = None) -> None:
        if self._lost:
            return
        self._closing = self._aborted = True
        self.transport.abort_connection(reason)

    def can_write_eof(self) -> bool:
        """False: TLS has no half-close (see the module notes)."""
        return False

    def write_eof(self) -> None:
        """Not possible over TLS: raises NotImplementedError, and nothing changes."""
        raise NotImplementedError(
            "TLS has no half-close: close_notify ends the whole TLS connection, and shutting the "
            "TCP connection's sending side below it would look like a truncation attack to the peer. "
            "Check can_write_eof() first; end the request in the protocol's own framing, or call "
            "lose_connection() to close both ways."
        )

    def is_closing(self) -> bool:
        """True from our own close (lose, abort, a TLS failure) or the end of the transport below
        on: close_notify may still be on its way, but the application is done."""
        below = self.transport
        return self._closing or self._lost or (below is not None and bool(below.is_closing()))

    def get_peer(self) -> object:
        return self.transport.get_peer()

    def get_host(self) -> object:
        return self.transport.get_host()

    def get_peer_certificate(self) -> x509.Certificate | None:
        """The peer's certificate as a ``cryptography.x509.Certificate``, or None if it sent none
        (a client, when the server does not ask for one)."""
        cert: x509.Certificate | None = self._tls.get_peer_certificate(as_cryptography=True)
        return cert

    def get_protocol_version(self) -> str:
        """The TLS version negotiated, e.g. ``"TLSv1.3"``."""
        return str(self._tls.get_protocol_version_name())

    def pause_reading(self) -> None:
        self._read_paused = True
        if self._resume_call is not None and self._resume_call.active():
            self._resume_call.cancel()
        self._resume_call = None
        self.transport.pause_reading()

    def resume_reading(self) -> None:
        """Read again; plaintext OpenSSL already holds is delivered from the next iteration (not
        from inside this call, which the application may make from its own callbacks)."""
        self._read_paused = False
        if self._lost:
            return
        self.transport.resume_reading()
        if self._resume_call is None and self._reactor is not None:
            self._resume_call = self._reactor.call_later(0, self._resume)

    def register_producer(self, producer: PushProducer | PullProducer, streaming: bool) -> None:
        self.transport.register_producer(producer, streaming)

    def unregister_producer(self) -> None:
        self.transport.unregister_producer()

    def get_write_buffer_size(self) -> int:
        size: int = self.transport.get_write_buffer_size()
        return size

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.transport.set_write_buffer_limits(high, low)

    # Passed through; a no-op over a transport without TCP options (a Unix socket), since callers
    # such as the broker find these methods here whatever the transport below is.
    def set_tcp_nodelay(self, enabled: bool) -> None:
        setter = getattr(self.transport, "set_tcp_nodelay", None)
        if setter is not None:
            setter(enabled)

    def set_tcp_keepalive(self, enabled: bool) -> None:
        setter = getattr(self.transport, "set_tcp_keepalive", None)
        if setter is not None:
            setter(enabled)


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


# -- factories -------------------------------------------------------------------------------------


@implementer(IProtocolFactory)
class _TLSFactory(WrappingFactory):
    """Wraps an application factory: each connection gets a :class:`TLSProtocol`, which asks the
    application factory for its protocol once the handshake has completed."""

    server_side: bool = True

    def __init__(
        self,
        wrapped: ProtocolFactory,
        context: SSL.Context,
        *,
        hostname: str | None = None,
        handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
        reactor: ReactorTime | None = None,
    ) -> None:
        self.wrapped = wrapped
        self.context = context
        self.hostname = hostname
        self.handshake_timeout = handshake_timeout
        self.reactor = reactor

    def __repr__(self) -> str:
        return f"<{type(self).__name__} wrapping {self.wrapped!r}>"

    def build_protocol(self, addr: Address) -> TLSProtocol:
        return TLSProtocol(self, addr, self.context, server_side=self.server_side,
                           hostname=self.hostname, handshake_timeout=self.handshake_timeout,
                           reactor=self.reactor)

    def _handshake_failed(self, protocol: TLSProtocol, addr: Address, failure: Failure) -> None:
        """The connection ended before the application had one."""

    def _connection_ended(self, protocol: TLSProtocol, failure: Failure) -> None:
        """The application's connection ended (after its connection_lost)."""


class TLSServerFactory(_TLSFactory):
    """The factory :func:`listen_tls` listens with; see :func:`wrap_server_factory`."""

    server_side = True

    def _handshake_failed(self, protocol: TLSProtocol, addr: Address, failure: Failure) -> None:
        error = failure.value
        level = logging.WARNING if isinstance(error, CertificateError) else logging.INFO
        log.log(level, "%s", error)
        hook = getattr(self.wrapped, "tls_handshake_failed", None)
        if hook is not None:
            try:
                hook(addr, failure)
            except Exception:
                log.exception("%r: tls_handshake_failed failed", self.wrapped)


class TLSClientFactory(_TLSFactory, LayerClientFactory):
    """The factory :func:`connect_tls` connects with; see :func:`wrap_client_factory`.

    Forwards the connector's hooks, except that a connection lost before its handshake completed
    is reported to the application factory as ``client_connection_failed`` with the TLS error.
    """

    server_side = False
    wrapped: ClientProtocolFactory

    def __init__(self, wrapped: ClientProtocolFactory, context: SSL.Context, **kwargs: Any) -> None:
        if not hasattr(wrapped, "client_connection_failed"):
            raise TypeError(
                f"connect_tls needs a ClientFactory, got {wrapped!r}; for a plain Factory use "
                "net.endpoints.client(reactor, 'tls:HOST:PORT:ca=CA').connect(factory)")
        super().__init__(wrapped, context, **kwargs)
        self._outcome = None  # (established, failure), from the handshake hooks below

    def _handshake_failed(self, protocol: TLSProtocol, addr: Address, failure: Failure) -> None:
        log.debug("%s", failure.value)
        self._outcome = (False, failure)

    def _connection_ended(self, protocol: TLSProtocol, failure: Failure) -> None:
        self._outcome = (True, failure)


def wrap_server_factory(
    factory: ProtocolFactory,
    context: SSL.Context,
    *,
    handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
    reactor: ReactorTime | None = None,
) -> TLSServerFactory:
    """A factory serving ``factory``'s protocols over TLS, for any listening stream transport.

    ``reactor`` (for the handshake timeout) defaults to the transport's ``reactor`` attribute.
    """
    return TLSServerFactory(factory, context, handshake_timeout=handshake_timeout, reactor=reactor)


def wrap_client_factory(
    factory: ClientProtocolFactory,
    context: SSL.Context,
    hostname: str | None,
    *,
    handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
    reactor: ReactorTime | None = None,
) -> TLSClientFactory:
    """A client factory running ``factory``'s protocols over TLS to ``hostname``.

    ``hostname`` is sent as SNI (unless an IP literal) and checked against the server's
    certificate when ``context`` verifies (see :func:`~net.tls.client_context`).
    """
    return TLSClientFactory(factory, context, hostname=hostname,
                            handshake_timeout=handshake_timeout, reactor=reactor)


def listen_tls(
    reactor: Reactor,
    port: int,
    factory: ProtocolFactory,
    context: SSL.Context,
    backlog: int | None = None,
    interface: str = "",
    *,
    handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
) -> ListeningPort:
    """Listen for TLS connections on ``interface:port``; returns the TCP IListeningPort.

    ``backlog`` None is the OS maximum, as for TCP."""
    wrapper = wrap_server_factory(factory, context, handshake_timeout=handshake_timeout, reactor=reactor)
    return reactor.listen_tcp(port, wrapper, backlog, interface)


def connect_tls(
    reactor: Reactor,
    host: str,
    port: int,
    factory: ClientProtocolFactory,
    context: SSL.Context,
    timeout: float | None = 30,
    bind_address: tuple[str, int] | None = None,
    *,
    hostname: str | None = None,
    handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
) -> Connector:
    """Connect to ``host:port`` over TLS with a ClientFactory; returns the TCP IConnector.

    The server's certificate must name ``hostname`` (default: ``host``). A failed handshake is
    reported to ``factory.client_connection_failed`` with a :class:`TLSError`.
    """
    wrapper = wrap_client_factory(factory, context, hostname or host,
                                  handshake_timeout=handshake_timeout, reactor=reactor)
    return reactor.connect_tcp(host, port, wrapper, timeout, bind_address)
