"""Datagram transports: UDP over IPv4 and IPv6, and Unix datagram sockets.

One bound socket is one transport, for one :class:`~net.protocol.DatagramProtocol`: there is no
factory and no connection. :func:`listen_udp` binds a UDP socket (an IPv6 one when ``interface``
is an IPv6 address such as ``"::1"`` or ``"::"``), :func:`listen_unix_datagram` a Unix one at a
path or an abstract name (``"@name"``), and :func:`connect_unix_datagram` an autobound Unix
client socket (the kernel picks an abstract name, so replies can reach it).

The rules, whose fault an error is deciding where it goes:

* **You misused the API** → an exception from the call: a host name where an IP address belongs
  (:class:`InvalidAddressError`: there is no DNS lookup in the loop, as in Twisted, whose UDP
  ``write`` also takes IP addresses only), an IPv4 address on an IPv6 port or the reverse, a
  ``write`` without address on an unconnected port, a write to a closed port.
* **The network or the kernel said no** → ``protocol.error_received(exc)`` (which logs a warning
  by default), from the loop, never from inside the ``write`` that caused it: send errors
  (EACCES for a broadcast without :meth:`DatagramPort.set_broadcast_allowed`, EMSGSIZE, no
  route), a datagram dropped because the send queue is full (:class:`SendQueueFull`), and a
  datagram larger than ``max_packet_size`` (:class:`DatagramTruncated`: dropped whole, never
  delivered cut short). ``ECONNREFUSED`` on a connected transport (the peer's ICMP "port
  unreachable", or a Unix peer gone) → ``protocol.connection_refused()``. Nothing is dropped
  without one of these.

Sending: ``write`` hands the datagram to the kernel at once. When the kernel would block
(EAGAIN: the socket's send buffer, or a Unix receiver's queue, is full) the datagram waits in a
send queue bounded by :attr:`DatagramTransport.max_queued_datagrams` and
:attr:`DatagramTransport.max_queued_bytes`, drained in order when the socket is writable; past
the bounds a datagram is dropped and reported, so memory stays bounded whatever the caller does.
An unconnected Unix socket is reported writable even while the receiver it writes to is full;
a writable event on which nothing could be sent therefore waits a little (doubling up to 0.1 s)
instead of spinning.

Receiving: up to :attr:`DatagramTransport.datagrams_per_event` datagrams per readable event,
so one busy socket cannot starve the others; each ``recvmsg`` asks for ``max_packet_size`` bytes
and checks ``MSG_TRUNC``. An exception from ``datagram_received`` is logged and that datagram
dropped: a peer whose datagram makes the protocol fail must not close the port for everyone.

Closing: :meth:`~DatagramTransport.stop_listening` (or ``lose_connection``) stops reading at
once, sends what is queued (for :attr:`~DatagramTransport.drain_timeout` seconds at most; what is
left then is reported), closes the socket, then calls ``stop_protocol`` from the loop and fires
the Deferred. A Unix socket file is removed then (if it is still the one we bound).
"""

from __future__ import annotations

import errno
import functools
import ipaddress
import logging
import os
import socket
import stat
import struct
import sys
from collections import deque
from typing import TYPE_CHECKING, Any, Literal

from zope.interface import implementer

from ._shutdown import StopAtShutdown
from .address import Address, IPv4Address, IPv6Address, UNIXAddress, unix_address
from .defer import Deferred, succeed
from .error import CannotListenError, ConnectError, ConnectionRefusedError, NetError
from .interfaces import IDatagramTransport

if TYPE_CHECKING:
    from .contracts import DatagramHandler, DelayedCall, ReactorIO

__all__ = [
    "DatagramTransport",
    "DatagramPort",
    "UnixDatagramPort",
    "listen_udp",
    "listen_unix_datagram",
    "connect_unix_datagram",
    "InvalidAddressError",
    "SendQueueFull",
    "DatagramTruncated",
    "DEFAULT_MAX_PACKET_SIZE",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_PACKET_SIZE = 65535
"""Bytes asked of each receive: the largest UDP payload (65507 over IPv4) fits."""

_WOULD_BLOCK = (BlockingIOError, InterruptedError)
_MSG_TRUNC = getattr(socket, "MSG_TRUNC", 0)
_SEND_HINTS = {
    errno.EACCES: "; a broadcast address needs set_broadcast_allowed(True) first",
    errno.EMSGSIZE: "; the datagram is larger than the socket can send (at most 65507 bytes over "
                    "IPv4, 65527 over IPv6, less for a Unix socket's send buffer)",
    errno.ENETUNREACH: "; there is no route to that network",
    errno.EHOSTUNREACH: "; that host cannot be reached",
    errno.EINVAL: "; the kernel rejected the destination (port 0, or a wrong address family?)",
    errno.ENOENT: "; no socket file exists at that path: is the receiver running?",
    errno.ECONNREFUSED: "; nothing is bound at that address (a stale socket file?)",
}


class InvalidAddressError(NetError, ValueError):
    """An address the transport cannot use: a host name (give an IP address: no DNS lookups are
    made for datagrams), the wrong address family for the port, or not a multicast group."""


class SendQueueFull(NetError, OSError):
    """A datagram was dropped: the kernel would not take it and the send queue was full.

    Reported through ``error_received``; ``errno`` is ENOBUFS. The sender is outpacing the
    kernel (or, on a Unix socket, the receiver): slow down, or raise the port's
    ``max_queued_datagrams`` / ``max_queued_bytes``.
    """

    def __init__(self, message: str) -> None:
        super().__init__(errno.ENOBUFS, message)

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.strerror,))


class DatagramTruncated(NetError, OSError):
    """A datagram larger than the port's ``max_packet_size`` arrived; it was dropped whole.

    Reported through ``error_received``; ``errno`` is EMSGSIZE, ``address`` the sender's. Raise
    ``max_packet_size`` if such datagrams are legitimate.
    """

    address: Any = None

    def __init__(self, message: str, address: Any = None) -> None:
        super().__init__(errno.EMSGSIZE, message)
        self.address = address

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.strerror, self.address))


def _check_max_packet_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"max_packet_size must be a positive number of bytes, got {size!r}")
    return size


@implementer(IDatagramTransport)
class DatagramTransport:
    """What UDP and Unix datagram sockets share: the read loop, the send queue and closing.

    Built by :func:`listen_udp` and friends with a bound socket; :meth:`_start` registers it
    and calls ``protocol.make_connection(self)``. Subclasses say how addresses are checked and
    shown (:meth:`_sockaddr_for`, :meth:`_address_of`) and how to connect.

    Its lifecycle, one way only:

    ========  ===============================  ==============================================
    state     what happens                     left for
    ========  ===============================  ==============================================
    open      reads; ``write()`` sends/queues  ``stop_listening()``: *closing* if datagrams
                                               are queued, else *closed*
    closing   no reads; the queue drains;      *closed* once the queue is empty or after
              ``write()`` raises               :attr:`drain_timeout` (the rest reported)
    closed    the socket is closed             (final) ``stop_protocol()`` runs from the
                                               loop, once; then the Deferreds fire
    ========  ===============================  ==============================================
    """

    datagrams_per_event: int = 64
    """Datagrams read per readable event at most, so a busy socket lets the loop go round."""
    max_queued_datagrams: int = 1024
    """Datagrams waiting for the kernel at most; one more is dropped and reported."""
    max_queued_bytes: int = 1024 * 1024
    """Bytes waiting for the kernel at most; a datagram that would pass it is dropped and reported."""
    drain_timeout: float = 10.0
    """Seconds ``stop_listening`` waits for queued datagrams to leave before closing anyway."""
    retry_max_delay: float = 0.1
    """Longest wait after a writable event on which the kernel took nothing (see the module doc)."""

    #: Whether the reactor's shutdown closes this port ("before": it waits for the send queue to
    #: drain). A Unix datagram port does, so that its file goes; a UDP port does not (see
    #: net.tcp.Port.stop_at_shutdown).
    stop_at_shutdown: bool = False

    def __init__(self, reactor: ReactorIO, sock: socket.socket, protocol: DatagramHandler,
                 max_packet_size: int = DEFAULT_MAX_PACKET_SIZE) -> None:
        self.reactor = reactor
        self.socket = sock
        self.protocol = protocol
        self.max_packet_size = _check_max_packet_size(max_packet_size)
        sock.setblocking(False)
        self._fd = sock.fileno()
        self._host: Address = self._local_address()
        self._peer: Any = None  # the kernel's sockaddr once connect()ed
        self._peer_addr: Any = None  # the same, as datagram_received shows addresses
        self._queue: deque[tuple[bytes, Any]] = deque()
        self._queued_bytes = 0
        self._state: Literal["open", "closing", "closed"] = "open"
        self._stopped = False  # stop_protocol has run and the Deferreds have fired
        self._stop_waiters: list[Deferred[None]] = []
        self._reading = False
        self._writing = False
        self._read_paused = False
        self._retry_call: DelayedCall | None = None
        self._retry_delay = 0.0
        self._drain_call: DelayedCall | None = None
        # Closes us if the reactor stops first; "before": shutdown waits for the queue to drain.
        self._at_shutdown: StopAtShutdown | None = None

    def __repr__(self) -> str:
        peer = f" -> {self._peer_addr}" if self._peer is not None else ""
        return f"<{type(self).__name__} {self._describe(self._host)}{peer} {self._state}>"

    # -- for subclasses ------------------------------------------------------------------------

    def _local_address(self) -> Address:
        raise NotImplementedError

    def _describe(self, address: Address) -> str:
        raise NotImplementedError

    def _sockaddr_for(self, addr: Any) -> Any:
        """The kernel's form of ``addr`` (InvalidAddressError if unusable here)."""
        raise NotImplementedError

    def _address_of(self, sockaddr: Any) -> Any:
        """How ``datagram_received`` shows a sender's address."""
        raise NotImplementedError

    def _peer_address(self, sockaddr: Any) -> Address:
        raise NotImplementedError

    def _cleanup(self) -> None:
        """After the socket is closed (a Unix port removes its file)."""

    # -- starting ------------------------------------------------------------------------------

    def _start(self) -> None:
        """Start reading and tell the protocol; if ``start_protocol`` raises, close and re-raise."""
        self._start_reading()
        try:
            self.protocol.make_connection(self)
        except BaseException:
            self._state = "closed"
            self._stopped = True
            self._release_socket()
            raise
        if self.stop_at_shutdown and self._state == "open":  # start_protocol may have closed us
            self._at_shutdown = StopAtShutdown(self.reactor, self.stop_listening, "before")

    # -- addresses -----------------------------------------------------------------------------

    def get_host(self) -> Address:
        """The address this socket is bound to (refreshed by :meth:`connect`)."""
        return self._host

    def get_peer(self) -> Address | None:
        """The address :meth:`connect` connected to; None while unconnected."""
        return None if self._peer is None else self._peer_address(self._peer)

    # -- sending -------------------------------------------------------------------------------

    def write(self, data: bytes, addr: Any = None) -> None:
        """Send one datagram to ``addr``, or to the connected peer when ``addr`` is None.

        Raises InvalidAddressError (a bad address), ValueError (no address and not connected)
        or RuntimeError (the port is closed or closing). What the network refuses goes to
        ``protocol.error_received`` (or ``connection_refused``) from the loop.
        """
        if self._state != "open":
            raise RuntimeError(f"write() on {self!r}: the port is closed or closing; "
                               "open a new one with listen_udp()/listen_unix_datagram()")
        if addr is None:
            if self._peer is None:
                raise ValueError(f"write() without an address on {self!r}, which is not connected: "
                                 "pass one, write(data, addr), or call connect() first")
            sockaddr = None
        else:
            sockaddr = self._sockaddr_for(addr)
            if self._peer is not None:
                if self._address_of(sockaddr) != self._peer_addr:
                    raise InvalidAddressError(
                        f"write() to {addr!r} on {self!r}, which is connected to {self._peer_addr!r}: "
                        "call write(data) without an address, or use another (unconnected) port")
                sockaddr = None
        if type(data) is not bytes:
            data = bytes(data)  # the caller may change a bytearray once we return
        if self._queue:
            self._enqueue(data, sockaddr)
            return
        try:
            if sockaddr is None:
                self.socket.send(data)
            else:
                self.socket.sendto(data, sockaddr)
        except _WOULD_BLOCK:
            self._enqueue(data, sockaddr)
            self._start_writing()
        except OSError as exc:
            self.reactor.call_soon(self._send_failed, exc, len(data), sockaddr)

    def get_write_buffer_size(self) -> int:
        """Bytes of datagrams waiting for the kernel."""
        return self._queued_bytes

    def get_queued_datagrams(self) -> int:
        """Datagrams waiting for the kernel."""
        return len(self._queue)

    def _enqueue(self, data: bytes, sockaddr: Any) -> None:
        if len(self._queue) >= self.max_queued_datagrams or (
                self._queued_bytes + len(data) > self.max_queued_bytes):
            where = "the connected peer" if sockaddr is None else repr(self._address_of(sockaddr))
            error = SendQueueFull(
                f"{self!r}: dropped a {len(data)}-byte datagram to {where}: the kernel would not take "
                f"it and {len(self._queue)} datagrams ({self._queued_bytes} bytes) already wait "
                f"(max_queued_datagrams={self.max_queued_datagrams}, "
                f"max_queued_bytes={self.max_queued_bytes}); the sender is faster than the "
                "kernel or the receiver: slow down or raise the limits")
            self.reactor.call_soon(self._report_error, error)
            return
        self._queue.append((data, sockaddr))
        self._queued_bytes += len(data)

    def _on_writable(self) -> None:
        queue = self._queue
        sock = self.socket
        sent_any = False
        while queue:
            data, sockaddr = queue[0]
            try:
                if sockaddr is None:
                    sock.send(data)
                else:
                    sock.sendto(data, sockaddr)
            except _WOULD_BLOCK:
                if not sent_any:
                    self._wait_before_retry()
                return
            except OSError as exc:
                queue.popleft()
                self._queued_bytes -= len(data)
                self._send_failed(exc, len(data), sockaddr)
                if self._state == "closed":
                    return
                continue
            queue.popleft()
            self._queued_bytes -= len(data)
            sent_any = True
        self._retry_delay = 0.0
        self._stop_writing()
        if self._state == "closing":
            self._close()

    def _wait_before_retry(self) -> None:
        """Writable, yet the kernel took nothing: readiness is not about our receiver. Wait."""
        self._stop_writing()
        self._retry_delay = min(max(self._retry_delay * 2, 0.005), self.retry_max_delay)
        self._retry_call = self.reactor.call_later(self._retry_delay, self._retry_writing)

    def _retry_writing(self) -> None:
        self._retry_call = None
        if self._state != "closed" and self._queue:
            self._start_writing()

    def _send_failed(self, exc: OSError, size: int, sockaddr: Any) -> None:
        if exc.errno == errno.ECONNREFUSED and self._peer is not None:
            self._refused()
            return
        where = "the connected peer" if sockaddr is None else repr(self._address_of(sockaddr))
        error = OSError(exc.errno, f"{self!r}: sending {size} bytes to {where}: "
                                   f"{exc.strerror or exc}{_SEND_HINTS.get(exc.errno or 0, '')}")
        error.__cause__ = exc
        self._report_error(error)

    # -- receiving -----------------------------------------------------------------------------

    def _on_readable(self) -> None:
        recvmsg = self.socket.recvmsg
        size = self.max_packet_size
        for _ in range(self.datagrams_per_event):
            try:
                data, _ancillary, flags, sockaddr = recvmsg(size)
            except _WOULD_BLOCK:
                return
            except OSError as exc:
                self._receive_failed(exc)
                return  # the next readable event goes on; a persistent error cannot spin here
            addr = self._address_of(sockaddr)
            if flags & _MSG_TRUNC:
                self._report_error(DatagramTruncated(
                    f"{self!r}: dropped a datagram from {addr!r} larger than max_packet_size={size} "
                    "bytes; listen with a larger max_packet_size if such datagrams are expected",
                    addr))
            elif self._peer is None or addr == self._peer_addr:  # else: queued before connect()
                try:
                    self.protocol.datagram_received(data, addr)
                except Exception:
                    log.exception("%r: datagram_received failed on a datagram from %r; dropped it",
                                  self.protocol, addr)
            if not self._reading:  # paused or closed from a callback
                return

    def _receive_failed(self, exc: OSError) -> None:
        if exc.errno == errno.ECONNREFUSED and self._peer is not None:
            self._refused()
            return
        error = OSError(exc.errno, f"{self!r}: receiving: {exc.strerror or exc}")
        error.__cause__ = exc
        self._report_error(error)

    def pause_reading(self) -> None:
        """Stop reading: datagrams wait in the kernel's buffer (and are dropped when it is full)."""
        self._read_paused = True
        self._stop_reading()

    def resume_reading(self) -> None:
        self._read_paused = False
        if self._state == "open":
            self._start_reading()

    # -- telling the protocol ------------------------------------------------------------------

    def _report_error(self, error: OSError) -> None:
        try:
            self.protocol.error_received(error)
        except Exception:
            log.exception("%r: error_received failed on %s", self.protocol, error)

    def _refused(self) -> None:
        try:
            self.protocol.connection_refused()
        except Exception:
            log.exception("%r: connection_refused failed", self.protocol)

    # -- connecting ----------------------------------------------------------------------------

    def _connect_to(self, sockaddr: Any) -> None:
        """``connect()`` the socket: from now on the kernel drops datagrams from anyone else."""
        if self._state != "open":
            raise RuntimeError(f"connect() on {self!r}: the port is closed or closing")
        if self._peer is not None:
            raise RuntimeError(f"{self!r} is already connected; a datagram port connects once: "
                               "open another port to talk to another peer")
        self.socket.connect(sockaddr)
        self._peer = sockaddr
        self._peer_addr = self._address_of(self.socket.getpeername())
        self._host = self._local_address()  # connecting may have picked a source address

    # -- closing -------------------------------------------------------------------------------

    def stop_listening(self) -> Deferred[None]:
        """Stop reading, send what is queued, close; fires after ``stop_protocol`` has run.

        May be called any number of times; ``stop_protocol`` runs once.
        """
        if self._stopped:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._stop_waiters.append(d)
        self.lose_connection()
        return d

    def lose_connection(self) -> None:
        """:meth:`stop_listening` without the Deferred."""
        if self._state != "open":
            return
        self._stop_reading()
        if not self._queue:
            self._close()
            return
        self._state = "closing"
        self._drain_call = self.reactor.call_later(self.drain_timeout, self._drain_timed_out)

    def is_closing(self) -> bool:
        return self._state != "open"

    def _drain_timed_out(self) -> None:
        self._drain_call = None
        if self._state != "closing":
            return
        count, size = len(self._queue), self._queued_bytes
        self._report_error(SendQueueFull(
            f"{self!r}: closed with {count} datagrams ({size} bytes) unsent: the kernel did not "
            f"take them within drain_timeout={self.drain_timeout}s"))
        self._close()

    def _close(self) -> None:
        self._state = "closed"
        self._release_socket()
        self.reactor.call_soon(self._stop_protocol)

    def _release_socket(self) -> None:
        if self._at_shutdown is not None:
            self._at_shutdown.cancel()
            self._at_shutdown = None
        self._stop_reading()
        self._stop_writing()
        for name in ("_retry_call", "_drain_call"):
            call = getattr(self, name)
            if call is not None and call.active():
                call.cancel()
            setattr(self, name, None)
        self._queue.clear()
        self._queued_bytes = 0
        try:
            self.socket.close()
        finally:
            self._cleanup()

    def _stop_protocol(self) -> None:
        self._stopped = True
        try:
            self.protocol.stop_protocol()
        except Exception:
            log.exception("%r: stop_protocol failed", self.protocol)
        waiters, self._stop_waiters = self._stop_waiters, []
        for d in waiters:
            d.callback(None)

    # -- reactor registration ------------------------------------------------------------------

    def _start_reading(self) -> None:
        if not self._reading and not self._read_paused:
            self._reading = True
            self.reactor.add_reader(self._fd, self._on_readable)

    def _stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            self.reactor.remove_reader(self._fd)

    def _start_writing(self) -> None:
        if not self._writing and self._retry_call is None:
            self._writing = True
            self.reactor.add_writer(self._fd, self._on_writable)

    def _stop_writing(self) -> None:
        if self._writing:
            self._writing = False
            self.reactor.remove_writer(self._fd)


# ---------------------------------------------------------------------------------------- UDP


@functools.lru_cache(maxsize=4096)
def _ip_version(host: str) -> int:
    """4 or 6 for an IP address literal (``"<broadcast>"`` counts as IPv4), 0 for anything else."""
    if host == "<broadcast>":
        return 4
    try:
        return ipaddress.ip_address(host).version
    except ValueError:
        return 0


def _format_hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class DatagramPort(DatagramTransport):
    """A UDP socket (IPv4, or IPv6 when bound to an IPv6 address); see :func:`listen_udp`.

    Addresses are ``(host, port)`` tuples with ``host`` an IP address literal, both in
    ``write(data, addr)`` and in ``datagram_received(data, addr)``.
    """

    def get_host(self) -> IPv4Address | IPv6Address:
        """The address this socket is bound to (refreshed by :meth:`connect`)."""
        assert not isinstance(self._host, UNIXAddress)
        return self._host

    def _local_address(self) -> Address:
        host, port = self.socket.getsockname()[:2]
        if self.socket.family == socket.AF_INET6:
            return IPv6Address("UDP", host, port)
        return IPv4Address("UDP", host, port)

    def _describe(self, address: Address) -> str:
        assert not isinstance(address, UNIXAddress)
        return f"udp:{_format_hostport(address.host, address.port)}"

    @property
    def _version(self) -> int:
        return 6 if self.socket.family == socket.AF_INET6 else 4

    def _check_host(self, host: Any, what: str) -> None:
        version = _ip_version(host) if isinstance(host, str) else 0
        if version == 0:
            raise InvalidAddressError(
                f"{what} {host!r} on {self!r}: give an IP address, not a host name (datagram "
                "transports make no DNS lookups; resolve it first, e.g. with "
                "reactor.defer_to_thread(socket.getaddrinfo, ...))")
        if version != self._version:
            if self._version == 6:
                hint = f"use an IPv6 address (an IPv4 peer of a dual-stack '::' port is '::ffff:{host}')"
            else:
                hint = "listen with an IPv6 interface (e.g. interface='::1') to talk to IPv6 peers"
            raise InvalidAddressError(
                f"{what} {host!r} on {self!r}: an IPv{version} address on an IPv{self._version} port; {hint}")

    def _sockaddr_for(self, addr: Any) -> Any:
        if not isinstance(addr, tuple) or len(addr) not in (2, 4):
            raise InvalidAddressError(f"write() to {addr!r} on {self!r}: the address must be a "
                                      "(host, port) tuple, host an IP address")
        host, port = addr[0], addr[1]
        self._check_host(host, "write() to")
        if type(port) is not int or not 0 < port < 65536:
            raise InvalidAddressError(f"write() to {addr!r} on {self!r}: the port must be an int "
                                      "from 1 to 65535")
        return addr

    def _address_of(self, sockaddr: Any) -> Any:
        return sockaddr if len(sockaddr) == 2 else (sockaddr[0], sockaddr[1])

    def _peer_address(self, sockaddr: Any) -> Address:
        host, port = self._peer_addr
        return IPv6Address("UDP", host, port) if self._version == 6 else IPv4Address("UDP", host, port)

    def connect(self, host: str, port: int) -> None:
        """Talk to ``host:port`` only: ``write(data)`` goes there, datagrams from anyone else
        are dropped by the kernel, and an ICMP "port unreachable" comes back as
        ``protocol.connection_refused()``. Once per port; ``host`` must be an IP address."""
        self._check_host(host, "connect() to")
        if type(port) is not int or not 0 < port < 65536:
            raise InvalidAddressError(f"connect() to port {port!r}: the port must be an int from 1 to 65535")
        self._connect_to((host, port))

    # -- broadcast and multicast ---------------------------------------------------------------

    def set_broadcast_allowed(self, enabled: bool) -> None:
        """Allow writes to broadcast addresses (SO_BROADCAST); without it they fail with EACCES."""
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, int(enabled))

    def get_broadcast_allowed(self) -> bool:
        return bool(self.socket.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST))

    def _ipv6_interface_index(self, interface: str | int) -> int:
        if isinstance(interface, int):
            return interface
        if not interface:
            return 0
        if interface.isdigit():
            return int(interface)
        try:
            return socket.if_nametoindex(interface)
        except OSError as exc:
            raise InvalidAddressError(f"no network interface named {interface!r} on this host") from exc

    def _membership(self, option4: int, option6: int, addr: str, interface: str | int, verb: str) -> None:
        version = _ip_version(addr) if isinstance(addr, str) and addr != "<broadcast>" else 0
        if version == 0 or not ipaddress.ip_address(addr).is_multicast:
            raise InvalidAddressError(f"{verb} {addr!r} on {self!r}: not a multicast group address "
                                      "(224.0.0.0/4 for IPv4, ff00::/8 for IPv6)")
        if version != self._version:
            raise InvalidAddressError(f"{verb} {addr!r}: an IPv{version} group on an IPv{self._version} port")
        if self._version == 4:
            if interface:
                self._check_host(interface, f"{verb} {addr!r} on interface")
            level = socket.IPPROTO_IP
            option = option4
            request = socket.inet_aton(addr) + socket.inet_aton(str(interface) or "0.0.0.0")
        else:
            level = socket.IPPROTO_IPV6
            option = option6
            index = self._ipv6_interface_index(interface)
            request = socket.inet_pton(socket.AF_INET6, addr) + struct.pack("@I", index)
        try:
            self.socket.setsockopt(level, option, request)
        except OSError as exc:
            raise OSError(exc.errno, f"{self!r}: cannot {verb} {addr} on interface "
                                     f"{interface or 'any'}: {exc.strerror or exc}") from exc

    def join_group(self, addr: str, interface: str | int = "") -> None:
        """Receive the multicast group ``addr`` (an IP address) on ``interface``.

        IPv4: ``interface`` is the address of a local interface ("" lets the kernel choose by
        route). IPv6: an interface name or index ("" or 0: the default). Raises OSError if the
        kernel refuses (EADDRINUSE: already joined; ENODEV: no multicast route).
        """
        self._membership(socket.IP_ADD_MEMBERSHIP, socket.IPV6_JOIN_GROUP, addr, interface, "join")

    def leave_group(self, addr: str, interface: str | int = "") -> None:
        """Stop receiving ``addr``; OSError (EADDRNOTAVAIL) if not joined there."""
        self._membership(socket.IP_DROP_MEMBERSHIP, socket.IPV6_LEAVE_GROUP, addr, interface, "leave")

    def _multicast_option(self, option4: int, option6: int) -> tuple[int, int]:
        if self._version == 6:
            return socket.IPPROTO_IPV6, option6
        return socket.IPPROTO_IP, option4

    def set_loopback_mode(self, mode: bool) -> None:
        """Whether this host's own members of a group receive what this socket sends to it."""
        self.socket.setsockopt(*self._multicast_option(socket.IP_MULTICAST_LOOP, socket.IPV6_MULTICAST_LOOP),
                               int(bool(mode)))

    def get_loopback_mode(self) -> bool:
        return bool(self.socket.getsockopt(
            *self._multicast_option(socket.IP_MULTICAST_LOOP, socket.IPV6_MULTICAST_LOOP)))

    def set_ttl(self, ttl: int) -> None:
        """Hops a multicast datagram may make (0: this host only; 1, the default: this link)."""
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 <= ttl <= 255:
            raise ValueError(f"a multicast TTL is an int from 0 to 255, not {ttl!r}")
        self.socket.setsockopt(*self._multicast_option(socket.IP_MULTICAST_TTL, socket.IPV6_MULTICAST_HOPS), ttl)

    def get_ttl(self) -> int:
        return int(self.socket.getsockopt(*self._multicast_option(socket.IP_MULTICAST_TTL,
                                                                  socket.IPV6_MULTICAST_HOPS)))

    def set_outgoing_interface(self, interface: str | int) -> None:
        """Where multicast writes leave: an interface's IPv4 address, or an IPv6 interface name
        or index."""
        if self._version == 4:
            self._check_host(interface, "set_outgoing_interface()")
            value: bytes | int = socket.inet_aton(str(interface))
        else:
            value = self._ipv6_interface_index(interface)
        self.socket.setsockopt(*self._multicast_option(socket.IP_MULTICAST_IF, socket.IPV6_MULTICAST_IF), value)

    def get_outgoing_interface(self) -> str:
        """IPv4: the interface address ("0.0.0.0": by route); IPv6: the name ("": default)."""
        if self._version == 4:
            return socket.inet_ntoa(self.socket.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, 4))
        index = self.socket.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF)
        return socket.if_indextoname(index) if index else ""


def listen_udp(
    reactor: ReactorIO,
    port: int,
    protocol: DatagramHandler,
    interface: str = "",
    max_packet_size: int = DEFAULT_MAX_PACKET_SIZE,
    *,
    listen_multiple: bool = False,
) -> DatagramPort:
    """Bind a UDP socket to ``interface:port`` (port 0 picks a free one) for ``protocol``.

    ``interface`` is an IP address: "" (every IPv4 interface), "127.0.0.1", a multicast group
    (receive only that group's datagrams), or an IPv6 one ("::1", "::") for an IPv6 socket.
    ``listen_multiple`` lets several sockets bind the same port (SO_REUSEADDR, and SO_REUSEPORT
    where Linux does not need it), as multicast listeners of one group on one host do.
    ``protocol.start_protocol()`` runs before this returns. Raises CannotListenError (bind
    failed) or InvalidAddressError (``interface`` is not an IP address).
    """
    _check_max_packet_size(max_packet_size)
    version = _ip_version(interface) if interface else 4
    if version == 0 or interface == "<broadcast>":
        raise InvalidAddressError(f"listen_udp(interface={interface!r}): give an IP address "
                                  "('127.0.0.1', '::1', '' for all IPv4 interfaces), not a host name")
    family = socket.AF_INET6 if version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if listen_multiple:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if hasattr(socket, "SO_REUSEPORT") and not sys.platform.startswith("linux"):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((interface, port))
    except OSError as exc:
        sock.close()
        raise CannotListenError(interface, port, exc) from exc
    try:
        transport = DatagramPort(reactor, sock, protocol, max_packet_size)
    except BaseException:
        sock.close()
        raise
    transport._start()
    return transport


# ------------------------------------------------------------------------- Unix datagram sockets


def _unix_sockaddr(path: Any) -> str | bytes:
    """``"@name"`` → the abstract address ``b"\\0name"``; a path stays a path."""
    if isinstance(path, bytes):
        return path
    path = os.fspath(path)
    if not isinstance(path, str) or not path:
        raise InvalidAddressError(f"a Unix socket address is a path or '@name' (abstract), not {path!r}")
    if path.startswith("@"):
        return b"\0" + os.fsencode(path[1:])
    return path


def _unix_name(sockaddr: Any) -> str | None:
    """The kernel's address as we show it: a path, ``"@name"`` (abstract), None (unbound), as
    :func:`net.address.unix_address` writes it for stream sockets too."""
    return unix_address(sockaddr).name


class UnixDatagramPort(DatagramTransport):
    """A Unix datagram socket; see :func:`listen_unix_datagram` and :func:`connect_unix_datagram`.

    Addresses are paths, ``"@name"`` for Linux's abstract namespace, or None in
    ``datagram_received`` for a sender that is not bound (it cannot be answered).
    """

    stop_at_shutdown = True  # so that the socket file we bound is removed

    def __init__(self, reactor: ReactorIO, sock: socket.socket, protocol: DatagramHandler,
                 max_packet_size: int = DEFAULT_MAX_PACKET_SIZE, *, owned_file: tuple[str, int, int] | None = None
                 ) -> None:
        super().__init__(reactor, sock, protocol, max_packet_size)
        self._owned_file = owned_file  # (path, st_dev, st_ino) of the socket file we bound

    def get_host(self) -> UNIXAddress:
        """The name this socket is bound to: a path, ``"@name"``, or None if unbound."""
        assert isinstance(self._host, UNIXAddress)
        return self._host

    def _local_address(self) -> Address:
        return unix_address(self.socket.getsockname())

    def _describe(self, address: Address) -> str:
        assert isinstance(address, UNIXAddress)
        return f"unixgram:{address.name or '(unbound)'}"

    def _sockaddr_for(self, addr: Any) -> Any:
        try:
            return _unix_sockaddr(addr)
        except TypeError:
            raise InvalidAddressError(f"write() to {addr!r} on {self!r}: a Unix datagram address is "
                                      "a path or '@name'") from None

    def _address_of(self, sockaddr: Any) -> Any:
        return _unix_name(sockaddr)

    def _peer_address(self, sockaddr: Any) -> Address:
        return UNIXAddress(self._peer_addr)

    def connect(self, path: str) -> None:
        """Talk to the socket at ``path`` (or ``"@name"``) only; ``write(data)`` goes there.

        Raises ConnectError: no such file, nobody bound there (ConnectionRefusedError), or a
        stream socket there. Once that peer closes, writes report ``connection_refused()``.
        """
        sockaddr = _unix_sockaddr(path)
        try:
            self._connect_to(sockaddr)
        except OSError as exc:
            raise _unix_connect_error(path, exc) from exc

    def _cleanup(self) -> None:
        owned, self._owned_file = self._owned_file, None
        if owned is None:
            return
        path, dev, ino = owned
        try:
            st = os.lstat(path)
            if (st.st_dev, st.st_ino) == (dev, ino):  # still ours: not replaced by someone else
                os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("%r: could not remove the socket file %s: %s", self, path, exc)


def _unix_connect_error(path: str, exc: OSError) -> ConnectError:
    error: ConnectError
    if exc.errno == errno.ENOENT:
        error = ConnectError(f"No Unix datagram socket at {path!r}: the file does not exist; "
                             "is the server running?")
    elif exc.errno == errno.ECONNREFUSED:
        error = ConnectionRefusedError(f"Nothing is bound at {path!r} (a stale socket file?): "
                                       "is the server running?")
    elif exc.errno == errno.EPROTOTYPE:
        error = ConnectError(f"{path!r} is a stream socket, not a datagram one: use connect_unix")
    else:
        error = ConnectError(f"Could not connect to the Unix datagram socket {path!r}: {exc.strerror or exc}")
    error.errno = exc.errno
    return error


def _remove_stale_socket(path: str) -> None:
    """Remove ``path`` only if it is a socket file nobody is bound to; else raise OSError."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise OSError(errno.EEXIST, f"{path} exists and is not a socket; not removing it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        probe.connect(path)
    except OSError as exc:
        if exc.errno == errno.ECONNREFUSED:  # a socket file nobody is bound to: left by a crash
            log.info("removing the stale socket file %s", path)
            os.unlink(path)
            return
        if exc.errno == errno.EPROTOTYPE:
            raise OSError(errno.EADDRINUSE, f"{path} is a stream socket; not removing it") from exc
        raise
    finally:
        probe.close()
    raise OSError(errno.EADDRINUSE, f"another process is bound to {path}")


def listen_unix_datagram(
    reactor: ReactorIO,
    path: str,
    protocol: DatagramHandler,
    mode: int = 0o660,
    max_packet_size: int = DEFAULT_MAX_PACKET_SIZE,
) -> UnixDatagramPort:
    """Bind a Unix datagram socket at ``path`` (``"@name"``: Linux abstract, no file) for ``protocol``.

    A socket file left at ``path`` is replaced only if nobody is bound to it; anything else
    there is an error. The file gets ``mode`` and is removed by ``stop_listening``. Raises
    CannotListenError.
    """
    _check_max_packet_size(max_packet_size)
    sockaddr = _unix_sockaddr(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    owned: tuple[str, int, int] | None = None
    try:
        if isinstance(sockaddr, str):
            _remove_stale_socket(sockaddr)
        sock.bind(sockaddr)
        if isinstance(sockaddr, str):
            st = os.lstat(sockaddr)
            owned = (sockaddr, st.st_dev, st.st_ino)
            os.chmod(sockaddr, mode)
    except OSError as exc:
        sock.close()
        if owned is not None:
            os.unlink(owned[0])
        error = CannotListenError(path, 0, exc)
        error.args = (f"Couldn't bind a Unix datagram socket at {path!r}: {exc}.",)
        raise error from exc
    try:
        transport = UnixDatagramPort(reactor, sock, protocol, max_packet_size, owned_file=owned)
    except BaseException:
        sock.close()
        if owned is not None:
            os.unlink(owned[0])
        raise
    transport._start()
    return transport


def connect_unix_datagram(
    reactor: ReactorIO,
    path: str | None,
    protocol: DatagramHandler,
    max_packet_size: int = DEFAULT_MAX_PACKET_SIZE,
) -> UnixDatagramPort:
    """A client socket, autobound to an abstract name the kernel picks (so replies can reach
    it), connected to ``path`` unless ``path`` is None (then ``write(data, path)``).

    Raises ConnectError when ``path`` cannot be connected to (see :meth:`UnixDatagramPort.connect`).
    """
    _check_max_packet_size(max_packet_size)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.bind("")  # Linux autobind: an abstract address like "@1a2b3"
        transport = UnixDatagramPort(reactor, sock, protocol, max_packet_size)
        if path is not None:
            transport.connect(path)
    except BaseException:
        sock.close()
        raise
    transport._start()
    return transport
