"""Outgoing stream connections: :class:`Connector`, one restartable attempt for a client factory.

Kept apart from :mod:`net.tcp` (the transport and the listening port): connecting is its own
state machine (resolve, try each address, time out, build the protocol, report to the factory)
and other stream families reuse it (a Unix-socket connector overrides :meth:`Connector._begin`
and :attr:`Connector.transport_class`). ``from net.tcp import Connector`` still works.

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
    from .contracts import ClientProtocolFactory, DelayedCall, Reactor

__all__ = ["Connector"]

log = logging.getLogger("net.tcp")

_CONNECT_IN_PROGRESS = {0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY, errno.EINTR}


def _format_hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@implementer(IConnector)
class Connector:
    """One outgoing TCP connection for a :class:`~net.protocol.ClientFactory`, restartable.

    ``connect()`` resolves the host (in the thread pool unless it is an IP literal), tries each
    address in turn, and reports the outcome to the factory: ``start_connecting`` first, then
    either ``client_connection_failed`` (a :class:`ConnectError`) or, once the established
    connection ends, ``client_connection_lost``. The attempt itself starts from the next loop
    iteration, so the factory never hears of a failure before ``connect_tcp`` has returned.

    Other stream families reuse it by overriding :meth:`_begin` (fill ``_addresses``) and
    :attr:`transport_class`.
    """

    transport_class: type[Connection] = TCPConnection

    def __init__(
        self,
        reactor: Reactor,
        host: str,
        port: int,
        factory: ClientProtocolFactory,
        timeout: float | None = 30,
        bind_address: tuple[str, int] | None = None,
    ) -> None:
        if not hasattr(factory, "client_connection_failed"):
            raise TypeError(
                f"connect_tcp needs a ClientFactory, got {factory!r}; for a plain Factory use "
                "net.endpoints.client(reactor, 'tcp:HOST:PORT').connect(factory)"
            )
        self.reactor = reactor
        self.host = host
        self.port = port
        self.factory = factory
        self.timeout = timeout
        self.bind_address = bind_address
        self.state = "disconnected"  # or "connecting", "connected"
        self.transport: Connection | None = None
        self._factory_started = False
        self._attempt = 0  # bumped when an attempt ends, so late resolver results are ignored
        self._start_call: DelayedCall | None = None
        self._timeout_call: DelayedCall | None = None
        self._sock: socket.socket | None = None
        self._addresses: list[tuple[int, Any]] = []

    def __repr__(self) -> str:
        return f"<{type(self).__name__} to {_format_hostport(self.host, self.port)} {self.state}>"

    def get_destination(self) -> Address:
        if ":" in self.host:
            return IPv6Address("TCP", self.host, self.port)
        return IPv4Address("TCP", self.host, self.port)

    def connect(self) -> None:
        if self.state != "disconnected":
            raise RuntimeError(f"Cannot connect {self!r}: already {self.state}.")
        self.state = "connecting"
        if not self._factory_started:
            self.factory.do_start()
            self._factory_started = True
        self.factory.start_connecting(self)
        if self.state != "connecting":  # start_connecting called stop_connecting()
            return
        self._start_call = self.reactor.call_later(0, self._begin)
        if self.timeout is not None:
            self._timeout_call = self.reactor.call_later(self.timeout, self._on_timeout)

    def stop_connecting(self) -> None:
        if self.state != "connecting":
            raise RuntimeError(f"Cannot stop connecting {self!r}: not connecting.")
        self._fail(ConnectError(
            f"Connection attempt to {_format_hostport(self.host, self.port)} was abandoned."))

    def disconnect(self) -> None:
        if self.state == "connecting":
            self.stop_connecting()
        elif self.state == "connected" and self.transport is not None:
            self.transport.lose_connection()

    # -- the attempt ---------------------------------------------------------------------------

    def _begin(self) -> None:
        self._start_call = None
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

    def _on_timeout(self) -> None:
        self._timeout_call = None
        self._fail(ConnectTimeoutError(
            f"Connection to {_format_hostport(self.host, self.port)} timed out after {self.timeout}s"))

    def _connected(self, sock: socket.socket, peer: Address) -> None:
        self._end_attempt()
        try:
            protocol = self.factory.build_protocol(peer)
        except Exception as exc:
            log.exception("%r: build_protocol failed", self.factory)
            sock.close()
            error = ConnectError(f"build_protocol failed: {exc}")
            error.__cause__ = exc
            self._fail(error)
            return
        if protocol is None:
            sock.close()
            self._fail(ConnectError(f"{self.factory!r} refused to build a protocol."))
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
        self._addresses = []
        for name in ("_start_call", "_timeout_call"):
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
            self.factory.client_connection_failed(self, Failure(error))
        except Exception:
            log.exception("%r: client_connection_failed failed", self.factory)
        self._maybe_stop_factory()

    def _connection_lost(self, reason: Failure) -> None:
        self.state = "disconnected"
        self.transport = None
        try:
            self.factory.client_connection_lost(self, reason)
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
