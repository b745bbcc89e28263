"""Outgoing stream connections: :class:`Connector`, one restartable attempt for a client factory.

Kept apart from :mod:`net.tcp` (the transport and the listening port): connecting is its own
state machine (resolve, try each address, time out, build the protocol, report to the factory)
and other stream families share it: :class:`StreamConnector` is the state machine and the
factory's hooks, :class:`Connector` adds resolving and trying each address, and a Unix-socket
connector (:class:`net.unix.UnixConnector`) adds its own attempt and error messages. ``from net.tcp import Connector`` still works.

States, and what moves between them (``state``)::

    disconnected --connect()--> connecting --socket connected--> connected
    connecting --stop_connecting(), timeout, every address failed--> disconnected
    connected --the connection ended--> disconnected

The factory hears ``start_connecting`` on each ``connect()``, then exactly one of
``client_connection_failed`` (from ``connecting``) or ``client_connection_lost`` (from
``connected``); a :class:`~net.protocol.ReconnectingClientFactory` calls ``connect()`` again from
those hooks.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
from typing import TYPE_CHECKING, Any

from zope.interface import implementer

from .address import Address, IPv4Address, IPv6Address, address_from_sockaddr
from .defer import Failure
from .error import ConnectError, ConnectionRefusedError, ConnectTimeoutError, DNSLookupError
from .interfaces import IConnector
from .tcp import Connection, TCPConnection

if TYPE_CHECKING:
    from .contracts import ClientProtocolFactory, DelayedCall, ProtocolFactory, Reactor, ReactorIO, StreamProtocol

__all__ = ["StreamConnector", "Connector", "build_client_protocol"]

log = logging.getLogger("net.tcp")

_CONNECT_IN_PROGRESS = {0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY, errno.EINTR}


def _format_hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class StreamConnector:
    """What every stream connector shares: the states, the factory's hooks, building the protocol
    and the transport once a socket is connected, and ending an attempt.

    A family says where it connects (:meth:`_where`, :meth:`get_destination`), how an attempt
    starts (:meth:`_begin`, run from the next loop iteration; it ends in :meth:`_connected` or
    :meth:`_fail`), and how an OSError reads (:meth:`_translate`). :attr:`_call` is the attempt's
    next scheduled step and :attr:`_sock` its socket while ``connect()`` is pending, both dropped
    by :meth:`_end_attempt`.
    """

    transport_class: type[Connection] = TCPConnection

    def __init__(self, reactor: ReactorIO, factory: ClientProtocolFactory, timeout: float | None,
                 caller: str, example: str) -> None:
        if not hasattr(factory, "client_connection_failed"):
            raise TypeError(f"{caller} needs a ClientFactory, got {factory!r}; for a plain Factory use "
                            f"net.endpoints.client(reactor, {example!r}).connect(factory)")
        self.reactor = reactor
        self.factory = factory
        self.timeout = timeout
        self.state = "disconnected"  # or "connecting", "connected"
        self.transport: Connection | None = None
        self._factory_started = False
        self._attempt = 0  # bumped when an attempt ends, so late results of it are ignored
        self._call: DelayedCall | None = None  # the next step of the attempt
        self._timeout_call: DelayedCall | None = None
        self._sock: socket.socket | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} to {self._where()} {self.state}>"

    # -- for subclasses ------------------------------------------------------------------------

    def _where(self) -> str:
        """The destination, as error messages name it."""
        raise NotImplementedError

    def _begin(self) -> None:
        """Start the attempt (``_call`` has fired)."""
        raise NotImplementedError

    def _translate(self, exc: OSError) -> ConnectError:
        raise NotImplementedError

    def _timeout_detail(self) -> str:
        """More words for a timeout (why it may have happened); empty by default."""
        return ""

    # -- the contract --------------------------------------------------------------------------

    def connect(self) -> None:
        if self.state != "disconnected":
            raise RuntimeError(f"Cannot connect {self!r}: already {self.state}.")
        self.state = "connecting"
        if not self._factory_started:
            self.factory.do_start()
            self._factory_started = True
        self.factory.start_connecting(self)  # type: ignore[arg-type]
        if self.state != "connecting":  # start_connecting called stop_connecting()
            return
        self._call = self.reactor.call_later(0, self._begin)
        if self.timeout is not None:
            self._timeout_call = self.reactor.call_later(self.timeout, self._on_timeout)

    def stop_connecting(self) -> None:
        if self.state != "connecting":
            raise RuntimeError(f"Cannot stop connecting {self!r}: not connecting.")
        self._fail(ConnectError(f"Connection attempt to {self._where()} was abandoned."))

    def disconnect(self) -> None:
        if self.state == "connecting":
            self.stop_connecting()
        elif self.state == "connected" and self.transport is not None:
            self.transport.lose_connection()

    # -- the outcome ---------------------------------------------------------------------------

    def _on_timeout(self) -> None:
        self._timeout_call = None
        self._fail(ConnectTimeoutError(
            f"Connection to {self._where()} timed out after {self.timeout}s{self._timeout_detail()}"))

    def _connected(self, sock: socket.socket, peer: Address) -> None:
        self._end_attempt()
        try:
            protocol = build_client_protocol(self.factory, peer)
        except ConnectError as error:
            sock.close()
            self._fail(error)
            return
        try:
            transport = self.transport_class(
                sock, protocol, self.reactor, peer=peer, on_lost=self._connection_lost)
        except OSError as exc:  # reset already
            sock.close()
            self._fail(self._translate(exc))
            return
        self.state = "connected"
        self.transport = transport
        transport.start()

    def _end_attempt(self) -> None:
        """Cancel the timeout and drop whatever the attempt holds."""
        self._attempt += 1
        for name in ("_call", "_timeout_call"):
            call = getattr(self, name)
            if call is not None and call.active():
                call.cancel()
            setattr(self, name, None)
        if self._sock is not None:
            self.reactor.remove_writer(self._sock.fileno())
            self._sock.close()
            self._sock = None

    def _fail(self, error: ConnectError) -> None:
        self._end_attempt()
        self.state = "disconnected"
        try:
            self.factory.client_connection_failed(self, Failure(error))  # type: ignore[arg-type]
        except Exception:
            log.exception("%r: client_connection_failed failed", self.factory)
        self._maybe_stop_factory()

    def _connection_lost(self, reason: Failure) -> None:
        self.state = "disconnected"
        self.transport = None
        try:
            self.factory.client_connection_lost(self, reason)  # type: ignore[arg-type]
        except Exception:
            log.exception("%r: client_connection_lost failed", self.factory)
        self._maybe_stop_factory()

    def _maybe_stop_factory(self) -> None:
        # The factory may have called connect() again (reconnecting); then it is still in use.
        if self.state == "disconnected" and self._factory_started:
            self._factory_started = False
            try:
                self.factory.do_stop()
            except Exception:
                log.exception("%r: do_stop failed", self.factory)


def build_client_protocol(factory: ProtocolFactory, addr: Address, logger: logging.Logger = log) -> StreamProtocol:
    """``factory.build_protocol(addr)`` for an outgoing connection, or the ConnectError its
    attempt fails with: the factory raised (logged on ``logger``, the cause kept) or said None.
    Connectors, TLS and tunnels build the application's protocol through this."""
    try:
        protocol = factory.build_protocol(addr)
    except Exception as exc:
        logger.exception("%r: build_protocol failed", factory)
        raise ConnectError(f"build_protocol failed: {exc}") from exc
    if protocol is None:
        raise ConnectError(f"{factory!r} refused to build a protocol.")
    return protocol


@implementer(IConnector)
class Connector(StreamConnector):
    """One outgoing TCP connection for a :class:`~net.protocol.ClientFactory`, restartable.

    ``connect()`` resolves the host (in the thread pool unless it is an IP literal), tries each
    address in turn, and reports the outcome to the factory: ``start_connecting`` first, then
    either ``client_connection_failed`` (a :class:`ConnectError`) or, once the established
    connection ends, ``client_connection_lost``. The attempt itself starts from the next loop
    iteration, so the factory never hears of a failure before ``connect_tcp`` has returned.
    """

    reactor: Reactor  # resolving uses its thread pool

    def __init__(
        self,
        reactor: Reactor,
        host: str,
        port: int,
        factory: ClientProtocolFactory,
        timeout: float | None = 30,
        bind_address: tuple[str, int] | None = None,
    ) -> None:
        super().__init__(reactor, factory, timeout, "connect_tcp", "tcp:HOST:PORT")
        self.host = host
        self.port = port
        self.bind_address = bind_address
        self._addresses: list[tuple[int, Any]] = []

    def _where(self) -> str:
        return _format_hostport(self.host, self.port)

    def get_destination(self) -> Address:
        if ":" in self.host:
            return IPv6Address("TCP", self.host, self.port)
        return IPv4Address("TCP", self.host, self.port)

    # -- the attempt ---------------------------------------------------------------------------

    def _begin(self) -> None:
        self._call = None
        try:
            ip = ipaddress.ip_address(self.host)
        except ValueError:
            attempt = self._attempt
            d = self.reactor.defer_to_thread(
                socket.getaddrinfo, self.host, self.port, 0, socket.SOCK_STREAM)
            d.add_callback(self._resolved, attempt)
            d.add_errback(self._resolve_failed, attempt)
            return
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        self._addresses = [(family, (self.host, self.port))]
        self._try_next()

    def _resolved(self, infos: list[Any], attempt: int) -> None:
        if attempt != self._attempt:
            return
        self._addresses = [(info[0], info[4]) for info in infos]
        if not self._addresses:
            self._fail(DNSLookupError(f"No addresses found for {self.host!r}."))
            return
        self._try_next()

    def _resolve_failed(self, failure: Failure, attempt: int) -> None:
        if attempt != self._attempt:
            return
        exc = failure.value
        error = DNSLookupError(f"DNS lookup failed for {self.host!r}: {exc}")
        error.__cause__ = exc
        self._fail(error)

    def _try_next(self) -> None:
        family, sockaddr = self._addresses.pop(0)
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            if self.bind_address is not None:
                sock.bind(self.bind_address)
            err = sock.connect_ex(sockaddr)
        except OSError as exc:
            sock.close()
            self._address_failed(exc)
            return
        if err not in _CONNECT_IN_PROGRESS:
            sock.close()
            self._address_failed(OSError(err, os.strerror(err)))
            return
        self._sock = sock
        self.reactor.add_writer(sock.fileno(), self._on_connect_ready)

    def _on_connect_ready(self) -> None:
        sock, self._sock = self._sock, None
        assert sock is not None
        self.reactor.remove_writer(sock.fileno())
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        try:
            if err:
                raise OSError(err, os.strerror(err))
            peer = address_from_sockaddr("TCP", sock.family, sock.getpeername())
        except OSError as exc:
            sock.close()
            self._address_failed(exc)
            return
        self._connected(sock, peer)

    def _end_attempt(self) -> None:
        super()._end_attempt()
        self._addresses = []

    def _address_failed(self, exc: OSError) -> None:
        if self._addresses:
            self._try_next()
        else:
            self._fail(self._translate(exc))

    def _translate(self, exc: OSError) -> ConnectError:
        where = _format_hostport(self.host, self.port)
        error: ConnectError
        if exc.errno == errno.ECONNREFUSED:
            error = ConnectionRefusedError(f"Connection refused by {where}: is the server running and listening on that port?")
        elif exc.errno == errno.ETIMEDOUT:
            error = ConnectTimeoutError(f"Connection to {where} timed out")
        else:
            error = ConnectError(f"Could not connect to {where}: {exc.strerror or exc}")
        error.errno = exc.errno
        error.__cause__ = exc
        return error
