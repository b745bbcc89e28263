"""Stream-socket transports: connections and listening ports.

:class:`Connection` is generic over the socket family (TCP now, Unix sockets later reuse it);
:class:`TCPConnection` adds the TCP options. A :class:`Port` accepts connections for a factory.
Outgoing connections are :mod:`net.connector`'s (``Connector`` is still importable from here);
:func:`listen_tcp` and :func:`connect_tcp` are the entry points the reactor uses.

The write path is built for many small RPC messages and for big values alike: when nothing is
queued, ``write()`` hands the bytes straight to one ``send()`` (``writelines()`` to one gathering
``sendmsg()``) and registers for writability only if the kernel took part of them. What is left
waits in a :class:`~net._writebuffer.WriteBuffer` (segments kept without copies where that is safe,
small writes coalesced; see there), and several segments leave in one ``sendmsg()``.

Half-close: :meth:`Connection.write_eof` shuts the sending side down (``shutdown(SHUT_WR)``) once
the buffer has drained, and reading goes on; the peer's protocol sees ``eof_received()``.

Reading: a protocol with asyncio's BufferedProtocol methods (``get_buffer(sizehint)`` and
``buffer_updated(nbytes)``, see :class:`~net.interfaces.IBufferedProtocol`) gets the bytes
received straight into a buffer it owns, with ``recv_into``; any other gets ``data_received``.

Flow control (see :meth:`Connection.register_producer`, decided by the write buffer): a streaming
producer is paused when the write buffer grows above the high-water mark and resumed once it drains
to the low-water mark; a pull producer is asked for one more chunk each time the buffer is empty.
The transport itself is a push producer of what it reads, so a protocol can pause its peer by
pausing its transport.

Every path to a closed connection goes through :meth:`Connection._close`, which closes the socket at
once and calls ``connection_lost`` from the next loop iteration (never from inside a call the
protocol made), exactly once.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
import struct
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Callable

from zope.interface import implementer

from ._producing import ProducesWhatItReads
from ._shutdown import StopAtShutdown
from ._writebuffer import DEFAULT_HIGH_WATER, DEFAULT_LOW_WATER, WriteBuffer, as_bytes_like
from .address import Address, address_from_sockaddr
from .defer import Failure, succeed
from .error import CannotListenError, ConnectionDone, ConnectionLost
from .interfaces import IListeningPort, ITCPTransport, ITransport

if TYPE_CHECKING:
    from .connector import Connector as Connector
    from .contracts import (
        ClientProtocolFactory,
        DelayedCall,
        ProtocolFactory,
        PullProducer,
        PushProducer,
        Reactor,
        ReactorIO,
        StreamProtocol,
    )
    from .defer import Deferred

__all__ = [
    "DEFAULT_HIGH_WATER",
    "DEFAULT_LOW_WATER",
    "Connection",
    "TCPConnection",
    "Port",
    "listen_tcp",
    "connect_tcp",
    "default_backlog",
]

log = logging.getLogger(__name__)

_WOULD_BLOCK = (BlockingIOError, InterruptedError)
_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
try:
    _IOV_MAX = min(os.sysconf("SC_IOV_MAX"), 1024)
except (AttributeError, ValueError, OSError):
    _IOV_MAX = 16
_GATHER_FROM = 64 * 1024
"""``writelines()`` below this total joins its items; from it on they leave in one ``sendmsg()``."""


def _lost_from(exc: OSError) -> ConnectionLost:
    """Translate a socket error into ConnectionLost, keeping the OSError as the cause."""
    lost = ConnectionLost(f"Connection lost: {exc.strerror or exc}.")
    lost.errno = exc.errno  # ECONNRESET tells a reset from other failures
    lost.__cause__ = exc
    return lost


@implementer(ITransport)
class Connection(ProducesWhatItReads):
    """A connected stream socket driven by the reactor: the transport a protocol writes to.

    Create it with a connected socket and a protocol, then call :meth:`start`. ``kind`` is the
    address type reported by :meth:`get_host`/:meth:`get_peer` for internet sockets.
    """

    read_size: int = 64 * 1024
    """Bytes asked of each ``recv()``. Not more: a buffer above glibc's mmap threshold (128 KiB)
    costs mmap, mremap and munmap per read, which more than halved RPC round trips here.
    Protocols wanting big reads without copies implement ``get_buffer``/``buffer_updated``."""

    def __init__(
        self,
        sock: socket.socket,
        protocol: StreamProtocol,
        reactor: ReactorIO,
        *,
        peer: Address | None = None,
        kind: str = "TCP",
        on_lost: Callable[[Failure], None] | None = None,
    ) -> None:
        sock.setblocking(False)
        self.socket = sock
        self.protocol = protocol
        self.reactor = reactor
        self._fd = sock.fileno()
        self._send = sock.send
        self._sendmsg = getattr(sock, "sendmsg", None)  # not on Windows
        self._recv = sock.recv
        self._recv_into = sock.recv_into
        self._host = address_from_sockaddr(kind, sock.family, sock.getsockname())  # type: ignore[arg-type]
        self._peer = peer or address_from_sockaddr(
            kind, sock.family, sock.getpeername())  # type: ignore[arg-type]
        self._on_lost = on_lost
        # Unsent data, the water marks and the registered producer.
        self._buffer = WriteBuffer()
        self.connected = False
        self.disconnecting = False  # lose_connection() called, flushing
        self.disconnected = False
        self._reading = False  # reader registered with the reactor
        self._writing = False  # writer registered with the reactor
        self._read_paused = False
        self._eof = False  # the peer's end of stream was read
        self._write_closed = False  # write_eof() called: shut down sending once the buffer drains
        self._lose_reason: BaseException | None = None
        # Called once the socket is closed (a listening port counts its connections with it).
        self._on_socket_closed: Callable[[], None] | None = None

    def __repr__(self) -> str:
        state = "closed" if self.disconnected else "closing" if self.disconnecting else "open"
        return f"<{type(self).__name__} {self._host} -> {self._peer} {state}>"

    def start(self) -> None:
        """Start reading and tell the protocol it is connected.

        Kept out of ``__init__`` so the creator can finish wiring (hooks, options) first.
        """
        self.connected = True
        self._start_reading()
        try:
            self.protocol.make_connection(self)
        except Exception as exc:
            log.exception("%r: connection_made failed; closing", self.protocol)
            self._close(exc)

    # -- ITransport: writing -------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Send ``data`` now if nothing is queued, queue what the kernel did not take.

        Ignored once closing or closed; RuntimeError after :meth:`write_eof`.
        """
        if self.disconnecting or self.disconnected or not data:
            return
        if self._write_closed:
            self._refuse_write()
        data = as_bytes_like(data)
        buffer = self._buffer
        if buffer.size:
            buffer.append(data)
        else:
            # Fast path: nothing queued, so try to hand everything to the kernel in one call.
            try:
                sent = self._send(data)
            except _WOULD_BLOCK:
                sent = 0
            except OSError as exc:
                self._close(_lost_from(exc))
                return
            if sent == len(data):
                return
            buffer.append(data, sent)
            self._start_writing()
        if buffer.streaming:
            buffer.pause_producer_if_full()

    def writelines(self, seq: Iterable[bytes]) -> None:
        """Write each bytes-like object of ``seq``; they leave together (one ``sendmsg()``)."""
        if self.disconnecting or self.disconnected:
            return
        items = [as_bytes_like(data) for data in seq if data]
        if len(items) <= 1:
            if items:
                self.write(items[0])
            return
        total = sum(map(len, items))
        if total < _GATHER_FROM or self._sendmsg is None:
            self.write(b"".join(items))
            return
        if self._write_closed:
            self._refuse_write()
        buffer = self._buffer
        if buffer.size:
            buffer.append_unsent(items, 0)
        else:
            try:
                sent = self._sendmsg(items[:_IOV_MAX])
            except _WOULD_BLOCK:
                sent = 0
            except OSError as exc:
                self._close(_lost_from(exc))
                return
            if sent == total:
                return
            buffer.append_unsent(items, sent)
            self._start_writing()
        if buffer.streaming:
            buffer.pause_producer_if_full()

    def _refuse_write(self) -> None:
        raise RuntimeError(
            f"write() after write_eof() on {self!r}: the sending side is shut down, so nothing "
            "more can be sent; write everything first, then call write_eof() (or "
            "lose_connection() to close both ways)"
        )

    def get_write_buffer_size(self) -> int:
        return self._buffer.size

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Set the marks (asyncio's defaults rule: one given, the other is 4x / 1/4 of it)."""
        self._buffer.set_limits(high, low)

    # The marks, read by tests (tests/test_flow_control.py); the buffer holds them.
    @property
    def _high(self) -> int:
        return self._buffer.high

    @property
    def _low(self) -> int:
        return self._buffer.low

    # -- ITransport: half-close ----------------------------------------------------------------

    def can_write_eof(self) -> bool:
        """True: a stream socket can shut down its sending side alone."""
        return True

    def write_eof(self) -> None:
        """Shut the sending side down (``shutdown(SHUT_WR)``) once everything written is sent.

        Reading goes on, and the peer's protocol sees ``eof_received()``. Writes after this raise
        RuntimeError. A no-op once called, or once the connection is closing or closed. If the
        peer has already ended its side, nothing is left open: this is :meth:`lose_connection`.
        """
        if self._write_closed or self.disconnecting or self.disconnected:
            return
        self._write_closed = True
        if self._eof:
            self.lose_connection()
        elif not self._buffer.size:
            self._shutdown_write()

    def _shutdown_write(self) -> None:
        try:
            self.socket.shutdown(socket.SHUT_WR)
        except OSError as exc:  # the peer reset the connection meanwhile
            self._close(_lost_from(exc))

    # -- ITransport: closing -------------------------------------------------------------------

    def lose_connection(self, reason: BaseException | None = None) -> None:
        """Close once everything written so far has been sent; stop reading meanwhile.

        Writes after this are ignored. A registered producer is not waited for: it gets
        ``stop_producing()`` when the connection closes (what it wrote before this call is sent).
        """
        if self.disconnecting or self.disconnected:
            return
        if not self._buffer.size:
            self._close(reason or ConnectionDone())
            return
        self._lose_reason = reason
        self.disconnecting = True
        self._stop_reading()
        self._start_writing()

    def abort_connection(self, reason: BaseException | None = None) -> None:
        """Close now, dropping queued data; internet sockets send a reset so the peer knows."""
        if self.disconnected:
            return
        if self.socket.family in (socket.AF_INET, socket.AF_INET6):
            try:
                self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        self._close(reason or ConnectionLost("Connection was aborted."))

    def is_closing(self) -> bool:
        """True from :meth:`lose_connection` (while flushing), :meth:`abort_connection` or the
        connection's end on."""
        return self.disconnecting or self.disconnected

    # -- ITransport: addresses and reading -----------------------------------------------------

    def get_host(self) -> Address:
        return self._host

    def get_peer(self) -> Address:
        return self._peer

    def pause_reading(self) -> None:
        self._read_paused = True
        self._stop_reading()

    def resume_reading(self) -> None:
        self._read_paused = False
        if not (self._eof or self.disconnecting or self.disconnected):
            self._start_reading()

    # -- IConsumer -----------------------------------------------------------------------------

    def register_producer(self, producer: PushProducer | PullProducer, streaming: bool) -> None:
        """Attach ``producer``: streaming ones are paused/resumed at the water marks, pull ones are
        asked for a chunk now and each time the buffer drains. RuntimeError if one is registered."""
        buffer = self._buffer
        if buffer.producer is None:  # else the buffer raises
            if self.disconnected:
                producer.stop_producing()
                return
            if not streaming:
                self._start_writing()  # writability is our cue to ask for the next chunk
        buffer.register_producer(producer, streaming)

    def unregister_producer(self) -> None:
        """Detach the producer. A no-op when none is registered."""
        self._buffer.unregister_producer()
        if not self._buffer.size and not self.disconnected:
            self._stop_writing()

    # -- reactor callbacks ---------------------------------------------------------------------

    def _on_readable(self) -> None:
        protocol = self.protocol
        get_buffer = getattr(protocol, "get_buffer", None)
        if get_buffer is not None:
            self._read_into(protocol, get_buffer)
            return
        try:
            data = self._recv(self.read_size)
        except _WOULD_BLOCK:
            return
        except OSError as exc:
            self._close(_lost_from(exc))
            return
        if not data:
            self._on_eof()
            return
        try:
            self.protocol.data_received(data)
        except Exception as exc:
            log.exception("%r: data_received failed; closing", self.protocol)
            self._close(exc)

    def _read_into(self, protocol: StreamProtocol, get_buffer: Callable[[int], Any]) -> None:
        """One read for a buffered protocol: straight into the buffer it lends us."""
        try:
            buffer = get_buffer(-1)
            if not len(buffer):
                raise RuntimeError("get_buffer() returned an empty buffer")
        except Exception as exc:
            log.exception("%r: get_buffer failed; closing", protocol)
            self._close(exc)
            return
        try:
            nbytes = self._recv_into(buffer)
        except _WOULD_BLOCK:
            return
        except OSError as exc:
            self._close(_lost_from(exc))
            return
        except Exception as exc:  # e.g. TypeError: the buffer is not writable
            log.exception("%r: cannot receive into the buffer from get_buffer(); closing", protocol)
            self._close(exc)
            return
        finally:
            del buffer  # the protocol may move or replace it now
        if not nbytes:
            self._on_eof()
            return
        try:
            protocol.buffer_updated(nbytes)  # type: ignore[attr-defined]  # it lent: a BufferedStreamProtocol
        except Exception as exc:
            log.exception("%r: buffer_updated failed; closing", protocol)
            self._close(exc)

    def _on_eof(self) -> None:
        self._eof = True
        self._stop_reading()
        try:
            keep_open = self.protocol.eof_received()
        except Exception as exc:
            log.exception("%r: eof_received failed; closing", self.protocol)
            self._close(exc)
            return
        if not keep_open or self._write_closed:
            # Not the default ConnectionDone: the peer ended it, and the protocol may want to say so.
            # After our own write_eof() both directions are done, whatever the protocol answered.
            self.lose_connection(ConnectionDone("The peer closed the connection.", by_peer=True))

    def _on_writable(self) -> None:
        buffer = self._buffer
        if buffer.size:
            try:
                if buffer.segment_count == 1 or self._sendmsg is None:
                    sent = self._send(buffer.first())
                else:
                    sent = self._sendmsg(buffer.gather(_IOV_MAX))
            except _WOULD_BLOCK:
                return
            except OSError as exc:
                self._close(_lost_from(exc))
                return
            buffer.consume(sent)
        producer = buffer.producer
        if producer is not None and not self.disconnecting and not self._write_closed:
            try:
                buffer.resume_producer_if_drained()
            except Exception as exc:
                log.exception("%r: producer failed; closing", producer)
                self._close(exc)
                return
        if buffer.size or self.disconnected:
            return
        if self.disconnecting:
            self._close(self._lose_reason or ConnectionDone())
        elif self._write_closed:
            self._stop_writing()
            self._shutdown_write()
        elif buffer.producer is None or buffer.streaming:
            self._stop_writing()

    # -- internals -----------------------------------------------------------------------------

    def _start_reading(self) -> None:
        if not self._reading and not self._read_paused:
            self._reading = True
            self.reactor.add_reader(self._fd, self._on_readable)

    def _stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            self.reactor.remove_reader(self._fd)

    def _start_writing(self) -> None:
        if not self._writing:
            self._writing = True
            self.reactor.add_writer(self._fd, self._on_writable)

    def _stop_writing(self) -> None:
        if self._writing:
            self._writing = False
            self.reactor.remove_writer(self._fd)

    def _close(self, reason: BaseException) -> None:
        """Close the socket now; report ``reason`` to the protocol from the next iteration."""
        if self.disconnected:
            return
        self.disconnected = True
        self.connected = False
        self.disconnecting = False
        self._stop_reading()
        self._stop_writing()
        self._buffer.clear()
        try:
            self.socket.close()
        except OSError:
            pass
        released, self._on_socket_closed = self._on_socket_closed, None
        if released is not None:
            try:
                released()
            except Exception:
                log.exception("%r: releasing the connection slot failed", self)
        self.reactor.call_later(0, self._connection_lost, reason)

    def _connection_lost(self, reason: BaseException) -> None:
        producer = self._buffer.detach_producer()
        if producer is not None:
            try:
                producer.stop_producing()
            except Exception:
                log.exception("%r: stop_producing failed", producer)
        failure = Failure(reason)
        try:
            self.protocol.connection_lost(failure)
        except Exception:
            log.exception("%r: connection_lost failed", self.protocol)
        if self._on_lost is not None:
            self._on_lost(failure)


@implementer(ITCPTransport)
class TCPConnection(Connection):
    """A TCP connection; Nagle's algorithm is off by default because RPC latency matters."""

    def __init__(self, sock: socket.socket, protocol: StreamProtocol, reactor: ReactorIO, **kwargs: Any) -> None:
        super().__init__(sock, protocol, reactor, **kwargs)
        self.set_tcp_nodelay(True)

    def set_tcp_nodelay(self, enabled: bool) -> None:
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(enabled))

    def get_tcp_nodelay(self) -> bool:
        return bool(self.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    def set_tcp_keepalive(self, enabled: bool) -> None:
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, int(enabled))

    def get_tcp_keepalive(self) -> bool:
        return bool(self.socket.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE))


def default_backlog() -> int:
    """The OS maximum listen backlog: Linux's ``net.core.somaxconn``, else ``socket.SOMAXCONN``.

    Read at each listen, so raising the sysctl takes effect without a restart of the code path.
    """
    try:
        with open("/proc/sys/net/core/somaxconn", "rb") as f:
            value = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return socket.SOMAXCONN
    return max(1, min(value, 0x7FFFFFFF))


def _host_key(family: int, sockaddr: Any) -> str | None:
    """What ``max_connections_per_host`` counts by: the peer's IP address (an IPv4-mapped IPv6
    address as its IPv4 form); an IPv6 peer by its /64 prefix, the block one host normally gets.
    None for non-IP families."""
    if family not in (socket.AF_INET, socket.AF_INET6) or not isinstance(sockaddr, tuple):
        return None
    host = str(sockaddr[0]).split("%", 1)[0]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _check_limit(name: str, value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
    return value


class _RefusalLog:
    """Rate-limited WARNINGs about one kind of refusal on one port.

    The first refusal is logged at once; later ones are counted and summarised in one line per
    :attr:`Port.refusal_log_interval` seconds while they go on (and when the port stops). A quiet
    interval ends the episode: the next refusal is logged at once again.
    """

    def __init__(self, port: Port, reason: str, noun: str = "connection(s) refused") -> None:
        self.port = port
        self.reason = reason
        self.noun = noun
        self.count = 0
        self.hosts: dict[str, int] = {}
        self.total = 0
        self._since = 0.0
        self._timer: DelayedCall | None = None

    def refused(self, message: str, *args: Any, host: str | None = None) -> None:
        self.total += 1
        if self._timer is None:
            log.warning(message + "; further refusals for this reason are summarised every %gs",
                        *args, self.port.refusal_log_interval)
            self._arm()
            return
        self.count += 1
        if host is not None:
            self.hosts[host] = self.hosts.get(host, 0) + 1

    def _arm(self) -> None:
        reactor = self.port.reactor
        self._since = reactor.seconds()
        self._timer = reactor.call_later(self.port.refusal_log_interval, self._tick)

    def _tick(self) -> None:
        self._timer = None
        if self.count:
            self._summarise()
            self._arm()

    def _summarise(self) -> None:
        top = ""
        if self.hosts:
            host, n = max(self.hosts.items(), key=lambda item: item[1])
            top = f" ({n} from {host})"
        elapsed = self.port.reactor.seconds() - self._since
        log.warning("%r: %d more %s in the last %.1fs: %s%s",
                    self.port, self.count, self.noun, elapsed, self.reason, top)
        self.count = 0
        self.hosts = {}

    def close(self) -> None:
        """Cancel the timer, logging what is not summarised yet."""
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None
        if self.count:
            self._summarise()


@implementer(IListeningPort)
class Port:
    """A listening socket that builds a protocol and a transport for each accepted connection.

    Accepts up to :attr:`accepts_per_event` connections per readiness event, so a burst of
    clients is taken in few iterations without starving established connections.

    Limits (docs/SECURITY.md, "Connections"):

    * ``backlog``: the listen queue; None (the default) is the OS maximum (:func:`default_backlog`).
    * ``max_connections``: open connections of this port at most; one more is accepted and closed
      at once. None: no cap but the descriptor limit.
    * ``max_connections_per_host``: the same per peer IP address (IPv6: per /64).

    Running out of file descriptors (EMFILE/ENFILE) does not leave clients hanging in the listen
    queue: from its first accept on, the port keeps one reserve descriptor (``/dev/null``) open, and when ``accept()``
    fails for want of descriptors it closes the reserve, accepts into the freed slot, and, unless
    the reserve can be reopened at once (descriptors were freed meanwhile: the connection is
    then served), closes that connection, so its client sees an orderly close. Then it stops
    reading the listening socket for :attr:`resource_retry_delay` seconds, doubling per episode
    up to :attr:`resource_retry_max_delay`, or until one of its own connections closes, rather
    than spinning on a socket that stays readable. Refusals are logged as rate-limited WARNINGs
    (:attr:`refusal_log_interval`).
    """

    accepts_per_event: int = 128
    resource_retry_delay: float = 0.1
    """First pause of accepting when descriptors (or buffers) run out, in seconds."""
    resource_retry_max_delay: float = 1.0
    """The pause doubles per consecutive episode up to this."""
    refusal_log_interval: float = 10.0
    """Seconds between summary lines while connections keep being refused."""
    transport_class: type[Connection] = TCPConnection
    kind: str = "TCP"
    reuse_port: bool = False
    """Bind with SO_REUSEPORT (set before :meth:`start_listening`; ``listen_tcp(reuse_port=True)``):
    ports of several processes share one address, and the kernel spreads connections over them
    (Linux). Every socket on the address must set it, and run as the same user."""

    #: Whether the reactor's shutdown stops this port (net._shutdown). A Unix port does, so that
    #: its files go; a TCP port does not, since a reactor may be run again after stop() and code
    #: (the test suite's ``run`` above all) listens in one run and connects in the next.
    stop_at_shutdown: bool = False

    def __init__(
        self,
        reactor: ReactorIO,
        port: int,
        factory: ProtocolFactory,
        backlog: int | None = None,
        interface: str = "",
        *,
        max_connections: int | None = None,
        max_connections_per_host: int | None = None,
    ) -> None:
        self.reactor = reactor
        self.port = port
        self.factory = factory
        self.backlog = default_backlog() if backlog is None else backlog
        self.interface = interface
        self.max_connections = _check_limit("max_connections", max_connections)
        self.max_connections_per_host = _check_limit("max_connections_per_host", max_connections_per_host)
        self.listening = False
        self.socket: socket.socket | None = None
        self._fd = -1
        self._host: Address | None = None
        self._retry_call: DelayedCall | None = None
        self._retry_delay: float | None = None  # the next pause; None: resource_retry_delay
        self._reserve = -1  # the reserve descriptor, -1 while not held
        self._at_shutdown: StopAtShutdown | None = None  # stops us if the reactor stops first
        self.connection_count = 0
        """Open connections accepted by this port."""
        self._per_host: dict[str, int] = {}
        self._refusals = {
            "fds": _RefusalLog(self, "out of file descriptors"),
            "total": _RefusalLog(self, "max_connections reached"),
            "host": _RefusalLog(self, "max_connections_per_host reached"),
            "pause": _RefusalLog(self, "cannot accept", "pause(s) of accepting"),
        }

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._host or self.interface + ':' + str(self.port)}>"

    @property
    def refused_count(self) -> int:
        """Connections accepted and closed at once since listening (caps or descriptors)."""
        return sum(r.total for k, r in self._refusals.items() if k != "pause")

    def _bind(self) -> socket.socket:
        """Create, bind and listen; subclasses for other families override this."""
        family = socket.AF_INET6 if ":" in self.interface else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if os.name == "posix":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if self.reuse_port:
                option = getattr(socket, "SO_REUSEPORT", None)
                if option is None:
                    raise OSError("SO_REUSEPORT is not available on this platform")
                sock.setsockopt(socket.SOL_SOCKET, option, 1)
            sock.bind((self.interface, self.port))
            sock.listen(self.backlog)
        except OSError as exc:
            sock.close()
            raise CannotListenError(self.interface, self.port, exc) from exc
        return sock

    def start_listening(self) -> None:
        """Bind and start accepting. Raises :class:`CannotListenError`."""
        sock = self._bind()
        sock.setblocking(False)
        try:
            self.factory.do_start()
        except BaseException:
            sock.close()
            raise
        self.socket = sock
        self._fd = sock.fileno()
        self._host = address_from_sockaddr(
            self.kind, sock.family, sock.getsockname())  # type: ignore[arg-type]
        self.listening = True
        self.reactor.add_reader(self._fd, self._on_readable)
        if self.stop_at_shutdown:
            self._at_shutdown = StopAtShutdown(self.reactor, self.stop_listening)

    def get_host(self) -> Address:
        assert self._host is not None, "get_host() before start_listening()"
        return self._host

    def stop_listening(self) -> Deferred[None]:
        """Stop accepting and close the socket; the Deferred has fired by the time this returns.

        With :attr:`stop_at_shutdown`, the reactor's shutdown calls this for a port still listening.
        """
        if self.listening:
            self.listening = False
            if self._at_shutdown is not None:
                self._at_shutdown.cancel()
                self._at_shutdown = None
            if self._retry_call is not None and self._retry_call.active():
                self._retry_call.cancel()
            self._retry_call = None
            self.reactor.remove_reader(self._fd)
            assert self.socket is not None
            self.socket.close()
            self._close_reserve()
            for refusals in self._refusals.values():
                refusals.close()
            try:
                self.factory.do_stop()
            except Exception:
                log.exception("%r: do_stop failed", self.factory)
        return succeed(None)

    # -- accepting -----------------------------------------------------------------------------

    def _open_reserve(self) -> bool:
        if self._reserve < 0 and os.name == "posix":
            try:
                self._reserve = os.open(os.devnull, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            except OSError:
                self._reserve = -1
        return self._reserve >= 0

    def _close_reserve(self) -> None:
        if self._reserve >= 0:
            os.close(self._reserve)
            self._reserve = -1

    def _on_readable(self) -> None:
        assert self.socket is not None
        if self._reserve < 0:  # taken at the first accept, and again after being spent
            self._open_reserve()
        accept = self.socket.accept
        shed = False
        for _ in range(self.accepts_per_event):
            try:
                sock, sockaddr = accept()
            except _WOULD_BLOCK:
                break
            except OSError as exc:
                if exc.errno == errno.ECONNABORTED:  # the client gave up before we accepted
                    continue
                if exc.errno in (errno.EMFILE, errno.ENFILE):
                    outcome = self._accept_into_reserve(exc)
                    if outcome is True:  # one connection shed; take the next
                        shed = True
                        continue
                    if outcome is None:  # nothing (more) pending
                        break
                    if outcome is False:  # no reserve to spend: wait for descriptors
                        self._pause(exc)
                        return
                    sock, sockaddr = outcome
                elif exc.errno in _OUT_OF_RESOURCES:
                    self._pause(exc)
                    return
                else:
                    log.error("%r: accept failed: %s", self, exc)
                    return
            if not shed:
                self._retry_delay = None
            self._accepted(sock, sockaddr)
        if shed:
            self._pause(None)

    def _accept_into_reserve(self, exc: OSError) -> tuple[socket.socket, Any] | bool | None:
        """``accept()`` failed for want of descriptors: spend the reserve on one connection.

        Returns the connection if descriptors turned out to be free again (the reserve could be
        reopened), True if the connection was closed at once (shed), None if none was pending,
        False if there is no reserve to spend.
        """
        assert self.socket is not None
        if not self._open_reserve():
            return False
        self._close_reserve()
        try:
            sock, sockaddr = self.socket.accept()
        except _WOULD_BLOCK:
            self._open_reserve()
            return None
        except OSError as again:
            self._open_reserve()
            if again.errno == errno.ECONNABORTED:
                return None
            return False
        if self._open_reserve():
            return sock, sockaddr
        key = _host_key(sock.family, sockaddr)
        sock.close()
        self._open_reserve()
        self._refusals["fds"].refused(
            "%r: out of file descriptors (%s): accepted and closed a connection from %s",
            self, exc.strerror, key, host=key)
        return True

    def _pause(self, exc: OSError | None) -> None:
        """Stop reading the listening socket for the current back-off (doubled for next time)."""
        delay = self.resource_retry_delay if self._retry_delay is None else self._retry_delay
        self._retry_delay = min(delay * 2, max(delay, self.resource_retry_max_delay))
        if exc is not None:
            self._refusals["pause"].refused(
                "%r: cannot accept (%s); pausing accepts for %gs", self, exc.strerror, delay)
        if self._retry_call is not None and self._retry_call.active():
            self._retry_call.cancel()
        self.reactor.remove_reader(self._fd)
        self._retry_call = self.reactor.call_later(delay, self._resume_accepting)

    def _resume_accepting(self) -> None:
        if self._retry_call is not None and self._retry_call.active():
            self._retry_call.cancel()
        self._retry_call = None
        if self.listening:
            self._open_reserve()
            self.reactor.add_reader(self._fd, self._on_readable)

    def _refuse(self, sock: socket.socket, kind: str, message: str, *args: Any, host: str | None) -> None:
        sock.close()
        self._refusals[kind].refused(message, *args, host=host)

    def _accepted(self, sock: socket.socket, sockaddr: Any) -> None:
        key = _host_key(sock.family, sockaddr)
        limit = self.max_connections
        if limit is not None and self.connection_count >= limit:
            self._refuse(sock, "total", "%r: max_connections=%d reached: closed a connection from %s",
                         self, limit, key, host=key)
            return
        limit = self.max_connections_per_host
        if limit is not None and key is not None and self._per_host.get(key, 0) >= limit:
            self._refuse(sock, "host", "%r: max_connections_per_host=%d reached for %s: closed a connection",
                         self, limit, key, host=key)
            return
        peer = address_from_sockaddr(self.kind, sock.family, sockaddr)  # type: ignore[arg-type]
        try:
            protocol = self.factory.build_protocol(peer)
        except Exception:
            log.exception("%r: build_protocol failed; dropping %s", self.factory, peer)
            protocol = None
        if protocol is None:
            sock.close()
            return
        try:
            transport = self.transport_class(sock, protocol, self.reactor, peer=peer, kind=self.kind)
        except OSError as exc:  # the peer already went away
            log.debug("%r: dropping %s: %s", self, peer, exc)
            sock.close()
            return
        self.connection_count += 1
        if key is not None:
            self._per_host[key] = self._per_host.get(key, 0) + 1
        transport._on_socket_closed = lambda: self._released(key)
        transport.start()

    def _released(self, key: str | None) -> None:
        """One of our connections closed its socket: a slot and a descriptor are free."""
        self.connection_count -= 1
        if key is not None:
            left = self._per_host.get(key, 0) - 1
            if left > 0:
                self._per_host[key] = left
            else:
                self._per_host.pop(key, None)
        if self._retry_call is not None and self.listening:
            self._resume_accepting()  # paused for want of descriptors: one is free now


def listen_tcp(
    reactor: ReactorIO,
    port: int,
    factory: ProtocolFactory,
    backlog: int | None = None,
    interface: str = "",
    *,
    max_connections: int | None = None,
    max_connections_per_host: int | None = None,
    reuse_port: bool = False,
) -> Port:
    """Listen on ``interface:port`` (port 0 picks a free one). Raises CannotListenError.

    ``backlog`` None is the OS maximum (:func:`default_backlog`); ``max_connections`` and
    ``max_connections_per_host`` cap the open connections of the port in total and per peer IP
    address (None: no cap); see :class:`Port` and docs/SECURITY.md. ``reuse_port``: bind with
    SO_REUSEPORT, so that worker processes can listen on the same port (:attr:`Port.reuse_port`).
    """
    p = Port(reactor, port, factory, backlog, interface,
             max_connections=max_connections, max_connections_per_host=max_connections_per_host)
    p.reuse_port = reuse_port
    p.start_listening()
    return p


def connect_tcp(
    reactor: Reactor,
    host: str,
    port: int,
    factory: ClientProtocolFactory,
    timeout: float | None = 30,
    bind_address: tuple[str, int] | None = None,
) -> Connector:
    """Connect to ``host:port`` for a ClientFactory; outcomes go to the factory's hooks."""
    from .connector import Connector

    connector = Connector(reactor, host, port, factory, timeout, bind_address)
    connector.connect()
    return connector


def __getattr__(name: str) -> Any:
    # net.connector imports this module (a Connector builds TCPConnections), so the old name
    # net.tcp.Connector is resolved on first use instead of by an import cycle.
    if name == "Connector":
        from .connector import Connector

        return Connector
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
