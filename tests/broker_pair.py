"""Two brokers joined in memory on a fake clock: broker tests with no ports and no event loop.

:func:`memory_pair` connects a client :class:`~broker.protocol.BrokerProtocol` to a server one
(built by a real :class:`~broker.protocol.BrokerFactory`) over :mod:`net.testing`'s memory
transports, with one :class:`net.testing.Clock` as the reactor of both, and returns once the
handshake is done. Nothing moves by itself: :meth:`MemoryPair.pump` moves bytes both ways and runs
what the clock has due (scheduled writes, releases queued from the garbage collector, a root's
``call_later(0, ...)``) until both are quiet. A Deferred has then fired if it ever will without
time passing, so results are checked synchronously::

    pair = memory_pair(Calculator())
    assert pair.call("add", 1, 2) == 3                  # call_remote, pump, result
    d = pair.root.call_remote("slow")
    pair.pump()
    assert not d.called                                 # deterministic: nothing more will come
    pair.advance(30)                                    # time passes only when the test says

Every byte each side received is kept (:attr:`MemoryPair.client_transport` ``.written`` is what
the client sent), so a test may decode the exchange itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from broker import wire
from broker.messages import FEATURE_DECREFS, FEATURE_HEARTBEAT, FEATURE_PIPELINING, Decref, Decrefs, Message
from broker.protocol import BrokerClientFactory, BrokerFactory, BrokerProtocol
from broker.session import RemoteReference, Session
from net.address import IPv4Address
from net.defer import Deferred, Failure
from net.protocol import Protocol
from net.testing import Clock, MemoryTransport, Pump, connect_protocols

__all__ = ["MemoryPair", "memory_pair", "raw_peer", "RawPeer", "result_of", "decode_all", "releases_in"]


def result_of(d: Deferred[Any]) -> Any:
    """The result ``d`` has fired with (raising its failure's exception); AssertionError if none yet."""
    box: list[Any] = []
    d.add_both(box.append)
    assert box, f"{d!r} has not fired"
    outcome = box[0]
    if isinstance(outcome, Failure):
        outcome.raise_exception()
    return outcome


def releases_in(messages: list[Message]) -> list[tuple[int, int]]:
    """The (object id, count) releases in ``messages``, from decref and decrefs alike, in order."""
    out: list[tuple[int, int]] = []
    for m in messages:
        if isinstance(m, Decref):
            out.append((m.object_id, m.count))
        elif isinstance(m, Decrefs):
            out.extend(m.releases.items())
    return out


def decode_all(data: bytes | bytearray) -> list[Message]:
    """Every message in ``data`` (a whole stream, from its hello), with a codec that refuses nothing."""
    decoder = wire.WireDecoder(max_frame_size=2**32 - 1, resolve=lambda value: value,
                               features=(FEATURE_HEARTBEAT, FEATURE_DECREFS, FEATURE_PIPELINING))
    decoder.receive_data(data)
    messages: list[Message] = []
    while True:
        message = decoder.next_message()
        if message is wire.NEED_DATA or message is wire.CLOSED:
            return messages
        messages.append(message)


@dataclass
class MemoryPair:
    """A connected client and server broker; see the module docstring."""

    clock: Clock
    server_factory: BrokerFactory
    client_factory: BrokerClientFactory
    server: BrokerProtocol
    client: BrokerProtocol
    transports: Pump
    root: RemoteReference = field(init=False)

    @property
    def server_session(self) -> Session:
        return self.server.session

    @property
    def client_session(self) -> Session:
        return self.client.session

    @property
    def server_transport(self) -> MemoryTransport:
        return self.transports.server_transport

    @property
    def client_transport(self) -> MemoryTransport:
        return self.transports.client_transport

    def pump(self) -> int:
        """Move bytes both ways and run the clock's due work until neither has anything left."""
        rounds = 0
        while True:
            moved = self.transports.pump()
            ran = self.clock.run_until_idle()
            if not moved and not ran:
                return rounds
            rounds += 1
            if rounds > Pump.max_rounds:
                raise RuntimeError(f"{self!r} did not go quiet after {rounds} rounds")

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass on the clock (timers fire in order), then pump."""
        self.pump()
        self.clock.advance(seconds)
        self.pump()

    def result(self, d: Deferred[Any]) -> Any:
        """Pump, then the result of ``d`` (raising its failure); AssertionError if it has not fired."""
        self.pump()
        return result_of(d)

    def call(self, _name: str, /, *args: Any, **kwargs: Any) -> Any:
        """``root.call_remote(...)``, pumped until it is answered; its result (or its exception)."""
        return self.result(self.root.call_remote(_name, *args, **kwargs))

    def lose(self, side: str = "server", reason: BaseException | None = None) -> None:
        """Drop the connection under both brokers: ``side``'s transport aborts (a reset), then pump."""
        transport = self.server_transport if side == "server" else self.client_transport
        transport.abort_connection(reason)
        self.pump()


def memory_pair(
    server_root: Any,
    client_root: Any = None,
    *,
    clock: Clock | None = None,
    server_options: dict[str, Any] | None = None,
    client_options: dict[str, Any] | None = None,
    chunk_size: int | None = None,
    **options: Any,
) -> MemoryPair:
    """Serve ``server_root``, connect a client (serving ``client_root``), finish the handshake.

    ``options`` (``limits``, ``registry``, ``debug``, ...) go to both sides; ``server_options``
    and ``client_options`` to one side each, over ``options``. ``chunk_size`` splits deliveries
    (1: byte by byte).
    """
    clock = clock or Clock()
    server_factory = BrokerFactory(clock, server_root, **{**options, **(server_options or {})})
    client_factory = BrokerClientFactory(clock, client_root, **{**options, **(client_options or {})})
    server_address = IPv4Address("TCP", "127.0.0.1", 8000)
    client_address = IPv4Address("TCP", "127.0.0.1", 40000)
    server = server_factory.build_protocol(client_address)
    client = client_factory.build_protocol(server_address)
    transports = connect_protocols(server, client, server_address=server_address,
                                   client_address=client_address, chunk_size=chunk_size)
    pair = MemoryPair(clock, server_factory, client_factory, server, client, transports)
    pair.pump()
    pair.root = result_of(client_factory.root)
    return pair


class RawPeer(Protocol):
    """A peer that is not a broker: what it receives is kept; it writes what the test gives it."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.eof = False
        self.lost: Failure | None = None

    def data_received(self, data: bytes) -> None:
        self.received += data

    def eof_received(self) -> bool | None:
        self.eof = True
        return None

    def connection_lost(self, reason: Failure) -> None:
        self.lost = reason

    def messages(self) -> list[Message]:
        return decode_all(self.received)


@dataclass
class RawConnection:
    server: BrokerProtocol
    peer: RawPeer
    transports: Pump

    def send(self, data: bytes) -> None:
        """Write ``data`` as the raw peer, then pump both ways (the clock too) until quiet."""
        self.peer.transport.write(data)
        self.pump()

    def pump(self) -> None:
        clock = self.server.reactor
        while self.transports.pump() or clock.run_until_idle():
            pass


def raw_peer(factory: BrokerFactory, port: int = 40001) -> RawConnection:
    """Connect a :class:`RawPeer` (from 127.0.0.1:``port``) to a new protocol of ``factory``."""
    address = IPv4Address("TCP", "127.0.0.1", port)
    server = factory.build_protocol(address)
    peer = RawPeer()
    transports = connect_protocols(server, peer, client_address=address)
    connection = RawConnection(server, peer, transports)
    connection.pump()
    return connection
