"""An in-memory transport pair: protocols tested sans I/O, or on a reactor without sockets.

:func:`connect_protocols` joins two protocols with :class:`MemoryTransport`\\ s and returns a
:class:`Pump` that moves bytes between them when asked, so framing and broker protocols are
tested with no reactor and no sockets, every step deterministic. The transports model what a
protocol can observe of a real one: buffering (the same :class:`~net._writebuffer.WriteBuffer` as
TCP's, so the same water marks and producer calls), half-close (``write_eof``, EOF), clean close
after flushing, abort, paused reading.

On a reactor, :class:`MemoryPort` stands in for a listening socket: :meth:`MemoryPort.connect`
joins a client protocol to one the port's factory builds, and a :class:`LoopPump` moves the bytes
from the reactor's loop (one round per iteration, while anything moves), so the conformance kit
(:mod:`net.testing.conformance`) runs over memory exactly as over TCP.

Rules the :class:`Pump` keeps, as a socket pair would:

* bytes move only while the receiving side reads (``pause_reading`` holds them in the sender's
  buffer, where the sender's producer sees them);
* ``lose_connection()`` delivers what was written, then ends the sender (its ``connection_lost``)
  and gives the receiver EOF; ``write_eof()`` gives EOF after the last byte and ends nothing;
* the receiver's ``eof_received()`` returning false closes the receiver; so does EOF arriving
  after the receiver's own ``write_eof()`` (both directions are done);
* ``abort_connection()`` drops what is queued on both sides: the aborting side gets its reason,
  the other a ``ConnectionLost`` reset;
* nothing reaches a protocol after its ``connection_lost``, which runs once.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any, Callable, Iterable

from zope.interface import implementer

from .._writebuffer import WriteBuffer, as_bytes_like
from ..address import Address, IPv4Address
from ..defer import Deferred, Failure, succeed
from ..error import ConnectError, ConnectionDone, ConnectionLost, ConnectionRefusedError
from ..interfaces import IListeningPort, ITCPTransport

if TYPE_CHECKING:
    from ..contracts import ProtocolFactory, PullProducer, PushProducer, ReactorTime, StreamProtocol

__all__ = ["MemoryTransport", "Pump", "LoopPump", "MemoryPort", "connect_protocols"]

_port_numbers = itertools.count(40000)


@implementer(ITCPTransport)
class MemoryTransport:
    """An :class:`~net.interfaces.ITCPTransport` that keeps what is written in memory.

    :attr:`written` records every byte ever written (for assertions; :meth:`clear` empties it);
    the bytes not yet moved by a :class:`Pump` are :meth:`get_write_buffer_size`. Closing only
    marks the transport (``disconnecting``/``aborted``); a Pump, or :meth:`report_lost` for a
    transport used alone, delivers ``connection_lost`` -- exactly once.
    """

    def __init__(self, host: Address | None = None, peer: Address | None = None) -> None:
        self.host = host or IPv4Address("TCP", "127.0.0.1", 8000)
        self.peer = peer or IPv4Address("TCP", "127.0.0.1", 40000)
        # The StreamProtocol once joined (None before). Any: the pump's paths need no None checks.
        self.protocol: Any = None
        self.written = bytearray()
        self._buffer = WriteBuffer()
        self.disconnecting = False
        self.disconnected = False
        self.aborted = False
        self.close_reason: BaseException | None = None
        self.reading_paused = False
        self.eof_received = False
        """The peer's EOF was delivered to our protocol."""
        self.write_closed = False
        """:meth:`write_eof` was called: the peer gets EOF once the buffer has moved."""
        self.eof_sent = False
        """Our EOF (from write_eof or lose_connection) is on its way: the buffer before it moved."""
        self.nodelay = True
        self.keepalive = False
        self.on_activity: Callable[[], None] | None = None
        """Called when there may be something to move (a :class:`LoopPump` schedules a round)."""

    def __repr__(self) -> str:
        return f"<MemoryTransport {self.host} -> {self.peer}>"

    def value(self) -> bytes:
        """Everything written since creation or the last :meth:`clear`."""
        return bytes(self.written)

    def clear(self) -> None:
        self.written.clear()

    @property
    def outgoing(self) -> bytes:
        """The bytes written and not moved yet (a copy)."""
        return b"".join(self._buffer.gather(self._buffer.segment_count))

    # The producer state and water marks, as attributes (the buffer holds them).
    @property
    def producer(self) -> PushProducer | PullProducer | None:
        return self._buffer.producer

    @property
    def streaming(self) -> bool:
        return self._buffer.streaming

    @property
    def producer_paused(self) -> bool:
        return self._buffer.producer_paused

    @property
    def high(self) -> int:
        return self._buffer.high

    @property
    def low(self) -> int:
        return self._buffer.low

    def _activity(self) -> None:
        if self.on_activity is not None:
            self.on_activity()

    # -- writing ---------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if isinstance(data, str):
            raise TypeError("write() takes bytes, not str")
        if self.disconnecting or self.disconnected or self.aborted or not data:
            return
        if self.write_closed:
            raise RuntimeError(
                f"write() after write_eof() on {self!r}: the sending side is shut down, so nothing "
                "more can be sent; write everything first, then call write_eof()")
        data = as_bytes_like(data)
        self.written += data
        self._buffer.append(data)
        self._buffer.pause_producer_if_full()
        self._activity()

    def writelines(self, seq: Iterable[bytes]) -> None:
        self.write(b"".join(seq))

    def get_write_buffer_size(self) -> int:
        return self._buffer.size

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._buffer.set_limits(high, low)

    def can_write_eof(self) -> bool:
        """True: the memory transport models half-close."""
        return True

    def write_eof(self) -> None:
        """Give the peer EOF after what was written; reading goes on. Writes after it raise."""
        if self.write_closed or self.disconnecting or self.disconnected or self.aborted:
            return
        self.write_closed = True
        if self.eof_received:  # the peer is done too: nothing is left open
            self.lose_connection()
        self._activity()

    # -- closing ---------------------------------------------------------------------------------

    def lose_connection(self, reason: BaseException | None = None) -> None:
        if not (self.disconnecting or self.disconnected or self.aborted):  # an abort's reason stands
            self.disconnecting = True
            self.close_reason = reason
            self._activity()

    def abort_connection(self, reason: BaseException | None = None) -> None:
        if not (self.disconnected or self.aborted):  # the first abort's reason stands
            self.aborted = True
            self.close_reason = reason or ConnectionLost("Connection was aborted.")
            self._activity()

    def is_closing(self) -> bool:
        """True once lose_connection or abort_connection was called, or the loss was reported."""
        return self.disconnecting or self.aborted or self.disconnected

    def report_lost(self, reason: BaseException | None = None) -> None:
        """Tell the protocol the connection is gone (once); what a reactor would do."""
        if self.disconnected:
            return
        self.disconnected = True
        self.disconnecting = False
        reason = reason or self.close_reason or ConnectionDone()
        self._buffer.clear()
        producer = self._buffer.detach_producer()
        if producer is not None:
            producer.stop_producing()
        if self.protocol is not None:
            self.protocol.connection_lost(Failure(reason))

    def _receive_eof(self) -> None:
        """The peer's EOF arrives: tell the protocol; close unless it keeps writing."""
        self.eof_received = True
        if not self.protocol.eof_received() or self.write_closed:
            # As a socket transport says it: the peer ended the connection.
            self.lose_connection(ConnectionDone("The peer closed the connection.", by_peer=True))

    # -- addresses, reading, options -------------------------------------------------------------

    def get_host(self) -> Address:
        return self.host

    def get_peer(self) -> Address:
        return self.peer

    def pause_reading(self) -> None:
        self.reading_paused = True

    def resume_reading(self) -> None:
        self.reading_paused = False
        self._activity()

    pause_producing = pause_reading
    resume_producing = resume_reading

    def stop_producing(self) -> None:
        self.abort_connection()

    def set_tcp_nodelay(self, enabled: bool) -> None:
        self.nodelay = enabled

    def set_tcp_keepalive(self, enabled: bool) -> None:
        self.keepalive = enabled

    # -- producers -------------------------------------------------------------------------------

    def register_producer(self, producer: PushProducer | PullProducer, streaming: bool) -> None:
        if self._buffer.producer is None and self.disconnected:
            producer.stop_producing()
            return
        self._buffer.register_producer(producer, streaming)  # raises if one is registered

    def unregister_producer(self) -> None:
        self._buffer.unregister_producer()

    def _drained(self) -> None:
        """The pump took bytes away: resume the producer as a socket transport would."""
        if self.disconnecting or self.disconnected or self.write_closed:
            return
        self._buffer.resume_producer_if_drained()


class Pump:
    """Moves bytes and closes between two connected :class:`MemoryTransport`\\ s, on request.

    ``chunk_size`` splits deliveries (1 feeds byte by byte: framing must not care).
    """

    max_rounds = 100_000

    def __init__(
        self,
        server: StreamProtocol,
        client: StreamProtocol,
        server_transport: MemoryTransport,
        client_transport: MemoryTransport,
        chunk_size: int | None = None,
    ) -> None:
        self.server, self.client = server, client
        self.server_transport, self.client_transport = server_transport, client_transport
        self.chunk_size = chunk_size

    def pump_once(self) -> bool:
        """One round in each direction; True if anything happened."""
        a, b = self.client_transport, self.server_transport
        moved = self._move(a, b)
        moved = self._move(b, a) or moved
        return moved

    def pump(self) -> int:
        """Pump until nothing moves any more (returns the number of rounds that did something)."""
        rounds = 0
        while self.pump_once():
            rounds += 1
            if rounds > self.max_rounds:
                raise RuntimeError(f"{self!r} did not go quiet after {self.max_rounds} rounds")
        return rounds

    flush = pump

    def _move(self, src: MemoryTransport, dst: MemoryTransport) -> bool:
        if src.aborted and not src.disconnected:
            src.report_lost()
            dst.report_lost(ConnectionLost("Connection was reset by the peer."))
            return True
        moved = False
        buffer = src._buffer
        if buffer.size and not dst.reading_paused:
            data = buffer.take_all()
            step = self.chunk_size or len(data)
            for i in range(0, len(data), step):
                if dst.disconnected or dst.aborted:  # a closed (or aborting) end reads no more
                    break
                dst.protocol.data_received(data[i : i + step])
            src._drained()
            moved = True
        if not buffer.size and not src.disconnected:
            if src.disconnecting:  # flushed: this end is done
                src.eof_sent = True
                src.report_lost()
                moved = True
            elif src.write_closed and not src.eof_sent:
                src.eof_sent = True
                moved = True
        if src.eof_sent and not (dst.eof_received or dst.disconnected or dst.aborted or dst.reading_paused):
            dst._receive_eof()
            moved = True
        return moved


class LoopPump(Pump):
    """A :class:`Pump` that runs itself from a reactor's loop: a round from the next iteration
    whenever either transport has something to move, and again while rounds move anything.

    So a protocol never hears of its peer's writes (or of its connection's end) from inside a
    call it made itself, as over a socket.
    """

    def __init__(
        self,
        reactor: ReactorTime,
        server: StreamProtocol,
        client: StreamProtocol,
        server_transport: MemoryTransport,
        client_transport: MemoryTransport,
        chunk_size: int | None = None,
    ) -> None:
        super().__init__(server, client, server_transport, client_transport, chunk_size)
        self.reactor = reactor
        self._scheduled = False
        server_transport.on_activity = client_transport.on_activity = self.wake
        self.wake()

    def wake(self) -> None:
        """Run a round from the next loop iteration (one pending round at most)."""
        if not self._scheduled:
            self._scheduled = True
            self.reactor.call_later(0, self._round)

    def _round(self) -> None:
        self._scheduled = False
        if self.pump_once():
            self.wake()


def _join(server: StreamProtocol, client: StreamProtocol, server_address: Address, client_address: Address,
          ) -> tuple[MemoryTransport, MemoryTransport]:
    """Two transports for ``server`` and ``client``; ``connection_made`` runs now, server first."""
    st = MemoryTransport(host=server_address, peer=client_address)
    ct = MemoryTransport(host=client_address, peer=server_address)
    st.protocol, ct.protocol = server, client
    server.make_connection(st)
    client.make_connection(ct)
    return st, ct


def connect_protocols(
    server: StreamProtocol,
    client: StreamProtocol,
    *,
    server_address: Address | None = None,
    client_address: Address | None = None,
    chunk_size: int | None = None,
) -> Pump:
    """Connect ``server`` and ``client`` in memory (``connection_made`` runs now, server first)."""
    server_address = server_address or IPv4Address("TCP", "127.0.0.1", 8000)
    client_address = client_address or IPv4Address("TCP", "127.0.0.1", 40000)
    st, ct = _join(server, client, server_address, client_address)
    return Pump(server, client, st, ct, chunk_size)


@implementer(IListeningPort)
class MemoryPort:
    """A listening port in memory, for a factory, on a reactor: :meth:`connect` is the client side.

    ``get_host()`` is a made-up loopback address (unique per port); each connection's client end
    gets one too. The factory's ``do_start``/``do_stop`` run at creation and at
    :meth:`stop_listening`, as for a real port.
    """

    def __init__(self, reactor: ReactorTime, factory: ProtocolFactory, chunk_size: int | None = None) -> None:
        self.reactor = reactor
        self.factory = factory
        self.chunk_size = chunk_size
        self.host = IPv4Address("TCP", "127.0.0.1", next(_port_numbers))
        self.listening = True
        factory.do_start()

    def __repr__(self) -> str:
        return f"<MemoryPort {self.host}{'' if self.listening else ' closed'}>"

    def get_host(self) -> Address:
        return self.host

    def stop_listening(self) -> Deferred[None]:
        if self.listening:
            self.listening = False
            self.factory.do_stop()
        return succeed(None)

    def connect(self, factory: ProtocolFactory) -> StreamProtocol:
        """Join a protocol of ``factory`` to one of the port's factory; returns the client's.

        ``connection_made`` runs now on both (server first); a :class:`LoopPump` on the port's
        reactor moves the bytes. ConnectionRefusedError once the port stopped listening,
        ConnectError if either factory refuses to build a protocol.
        """
        if not self.listening:
            raise ConnectionRefusedError(f"{self!r} is no longer listening")
        client_address = IPv4Address("TCP", "127.0.0.1", next(_port_numbers))
        server = self.factory.build_protocol(client_address)
        client = factory.build_protocol(self.host) if server is not None else None
        if server is None or client is None:
            raise ConnectError(f"{self.factory if server is None else factory!r} refused to build a protocol")
        st, ct = _join(server, client, self.host, client_address)
        LoopPump(self.reactor, server, client, st, ct, self.chunk_size)
        return client
