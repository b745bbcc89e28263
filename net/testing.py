"""Test helpers: an in-memory transport pair, and a conformance kit for real transports.

**In memory.** :func:`connect_protocols` joins two protocols with :class:`MemoryTransport`\\ s and
returns a :class:`Pump` that moves bytes between them when asked, so framing and broker protocols
are tested sans I/O: no reactor, no sockets, every step deterministic. The transports model what a
protocol can observe of a real one: buffering, half-close (EOF), clean close after flushing, abort,
paused reading, and producers paused and resumed at the water marks.

**A fake clock.** :class:`Clock` is the time-and-queue part of a reactor (``seconds``,
``call_later``, ``call_soon``, ``call_from_thread``) in the manner of Twisted's
``task.Clock``: nothing runs until the test calls :meth:`Clock.run_until_idle` (what is due now)
or :meth:`Clock.advance` (time moves, timers fire in order). Pass it as the ``reactor`` of a
protocol on memory transports (a broker's ``BrokerProtocol``/``BrokerFactory``) or to
``Deferred.add_timeout``, and timeouts are tested without waiting::

    clock = Clock()
    d = Deferred().add_timeout(5, clock)
    clock.advance(4.9)   # not yet
    clock.advance(0.1)   # d fails with TimeoutError now

**Conformance kit.** Every stream transport (TCP now; TLS and Unix sockets later) on every reactor
backend must behave the same. :data:`TRANSPORT_CHECKS` are coroutine functions
``check(reactor, pair)`` that exercise one property each over a :class:`StreamPair` (how to listen
and how to connect with that transport); :func:`check_transport` runs them all. A test module
parametrises over them::

    @pytest.mark.parametrize("check", TRANSPORT_CHECKS, ids=lambda c: c.__name__)
    def test_conformance(reactor, run, check):
        run(reactor, check(reactor, tcp_pair(reactor)))
"""

from __future__ import annotations

import collections
import hashlib
import heapq
import itertools
import threading
from typing import Any, Callable, Coroutine, Iterable, Protocol as TypingProtocol

from zope.interface import implementer

from ._reactorbase import DelayedCall
from .address import Address, IPv4Address
from .defer import Deferred, Failure, succeed
from .error import ConnectionDone, ConnectionLost
from .interfaces import IDelayedCall, IReactorTime, ITCPTransport
from .protocol import Factory, Protocol

__all__ = [
    "MemoryTransport",
    "Pump",
    "connect_protocols",
    "Clock",
    "ClockCall",
    "Recorder",
    "Echo",
    "CollectingFactory",
    "ChunkProducer",
    "StreamPair",
    "EndpointPair",
    "tcp_pair",
    "iterations",
    "check_transport",
    "TRANSPORT_CHECKS",
]

_DEFAULT_HIGH = 64 * 1024
_DEFAULT_LOW = 16 * 1024
_MIB = 1024 * 1024


# =================================================================================================
# In-memory transports


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
        self.protocol: Any = None
        self.written = bytearray()
        self.outgoing = bytearray()
        self.disconnecting = False
        self.disconnected = False
        self.aborted = False
        self.close_reason: BaseException | None = None
        self.reading_paused = False
        self.eof_received = False
        self.producer: Any = None
        self.streaming = False
        self.producer_paused = False
        self.high, self.low = _DEFAULT_HIGH, _DEFAULT_LOW
        self.nodelay = True
        self.keepalive = False

    def __repr__(self) -> str:
        return f"<MemoryTransport {self.host} -> {self.peer}>"

    def value(self) -> bytes:
        """Everything written since creation or the last :meth:`clear`."""
        return bytes(self.written)

    def clear(self) -> None:
        self.written.clear()

    def write(self, data: bytes) -> None:
        if isinstance(data, str):
            raise TypeError("write() takes bytes, not str")
        if self.disconnecting or self.disconnected or not data:
            return
        self.written += data
        self.outgoing += data
        if self.streaming and not self.producer_paused and len(self.outgoing) > self.high:
            self.producer_paused = True
            self.producer.pause_producing()

    def writelines(self, seq: Iterable[bytes]) -> None:
        self.write(b"".join(seq))

    def lose_connection(self, reason: BaseException | None = None) -> None:
        if not (self.disconnecting or self.disconnected):
            self.disconnecting = True
            self.close_reason = reason

    def abort_connection(self, reason: BaseException | None = None) -> None:
        if not self.disconnected:
            self.aborted = True
            self.close_reason = reason or ConnectionLost("Connection was aborted.")

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
        producer, self.producer, self.streaming = self.producer, None, False
        if producer is not None:
            producer.stop_producing()
        if self.protocol is not None:
            self.protocol.connection_lost(Failure(reason))

    def get_host(self) -> Address:
        return self.host

    def get_peer(self) -> Address:
        return self.peer

    def pause_reading(self) -> None:
        self.reading_paused = True

    def resume_reading(self) -> None:
        self.reading_paused = False

    pause_producing = pause_reading
    resume_producing = resume_reading

    def stop_producing(self) -> None:
        self.abort_connection()

    def set_tcp_nodelay(self, enabled: bool) -> None:
        self.nodelay = enabled

    def set_tcp_keepalive(self, enabled: bool) -> None:
        self.keepalive = enabled

    def get_write_buffer_size(self) -> int:
        return len(self.outgoing)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if high is None:
            high = _DEFAULT_HIGH if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"need high >= low >= 0, got high={high!r}, low={low!r}")
        self.high, self.low = high, low

    def register_producer(self, producer: Any, streaming: bool) -> None:
        if self.producer is not None:
            raise RuntimeError(
                f"Cannot register producer {producer!r}: {self.producer!r} is already registered.")
        if self.disconnected:
            producer.stop_producing()
            return
        self.producer, self.streaming, self.producer_paused = producer, bool(streaming), False
        if streaming:
            if len(self.outgoing) > self.high:
                self.producer_paused = True
                producer.pause_producing()
        else:
            producer.resume_producing()

    def unregister_producer(self) -> None:
        self.producer, self.streaming, self.producer_paused = None, False, False

    def _drained(self) -> None:
        """The pump took bytes away: resume the producer as a socket transport would."""
        producer = self.producer
        if producer is None or self.disconnecting or self.disconnected:
            return
        if self.streaming:
            if self.producer_paused and len(self.outgoing) <= self.low:
                self.producer_paused = False
                producer.resume_producing()
        elif not self.outgoing:
            producer.resume_producing()


class Pump:
    """Moves bytes and closes between two connected :class:`MemoryTransport`\\ s, on request.

    ``chunk_size`` splits deliveries (1 feeds byte by byte: framing must not care).
    """

    max_rounds = 100_000

    def __init__(
        self,
        server: Any,
        client: Any,
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
        if src.disconnected:
            return False
        if src.aborted:
            src.outgoing.clear()
            src.report_lost()
            dst.outgoing.clear()
            dst.report_lost(ConnectionLost("Connection was reset by the peer."))
            return True
        moved = False
        if src.outgoing and not dst.reading_paused:
            data = bytes(src.outgoing)
            src.outgoing.clear()
            if not dst.disconnected:
                step = self.chunk_size or len(data)
                for i in range(0, len(data), step):
                    dst.protocol.data_received(data[i : i + step])
            src._drained()
            moved = True
        if src.disconnecting and not src.outgoing:
            src.report_lost()
            if not (dst.disconnected or dst.eof_received):
                dst.eof_received = True
                if not dst.protocol.eof_received():
                    dst.lose_connection()
            moved = True
        return moved


def connect_protocols(
    server: Any,
    client: Any,
    *,
    server_address: Address | None = None,
    client_address: Address | None = None,
    chunk_size: int | None = None,
) -> Pump:
    """Connect ``server`` and ``client`` in memory (``connection_made`` runs now, server first)."""
    server_address = server_address or IPv4Address("TCP", "127.0.0.1", 8000)
    client_address = client_address or IPv4Address("TCP", "127.0.0.1", 40000)
    st = MemoryTransport(host=server_address, peer=client_address)
    ct = MemoryTransport(host=client_address, peer=server_address)
    st.protocol, ct.protocol = server, client
    server.make_connection(st)
    client.make_connection(ct)
    return Pump(server, client, st, ct, chunk_size)


# =================================================================================================
# A fake clock: a reactor's timers and queues, driven by the test


class ClockCall(DelayedCall):
    """A call scheduled on a :class:`Clock`: a reactor's ``DelayedCall``, moved by the clock."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<Clock" + super().__repr__().removeprefix("<Delayed")


@implementer(IReactorTime)
class Clock:
    """The time-and-queue part of a reactor, with time that moves only when the test says so.

    Enough of a reactor to pass as the ``reactor`` of a broker protocol or factory over memory
    transports, or to :meth:`~net.defer.Deferred.add_timeout`: :meth:`seconds`,
    :meth:`call_later` (a :class:`ClockCall`, with ``cancel``/``active``/``reset``/``delay``),
    :meth:`call_soon` and :meth:`call_from_thread` (thread-safe; queued, run by the test's
    thread). Nothing runs by itself:

    * :meth:`run_until_idle` (also :meth:`pump`) runs what is due *now* -- ``call_soon``,
      ``call_later(0)``, work from threads, and whatever those schedule for now -- until none is
      left; time stands still.
    * :meth:`advance` moves time forward, running every call that falls due, in time order (the
      same time: in the order scheduled), with :meth:`seconds` reading each call's own time.

    Unlike a reactor, which logs an exception a call raises, the clock lets it propagate out of
    ``advance``/``run_until_idle``: a test should see it.
    """

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self._heap: list[tuple[float, int, ClockCall]] = []
        self._next_seq = itertools.count(1).__next__
        self._from_threads: collections.deque[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = (
            collections.deque())
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Clock at {self.now:.6f}, {len(self.get_delayed_calls())} calls pending>"

    def seconds(self) -> float:
        """The clock's time: ``start`` plus every :meth:`advance` so far."""
        return self.now

    def call_later(self, delay: float, f: Callable[..., object], *args: Any, **kwargs: Any) -> ClockCall:
        """Run ``f(*args, **kwargs)`` once the clock has advanced ``delay`` seconds (0: at the next pump)."""
        call = ClockCall(self, self.now + max(0.0, delay), f, args, kwargs)
        self._push(call)
        return call

    def call_soon(self, f: Callable[..., object], *args: Any, **kwargs: Any) -> ClockCall:
        """``call_later(0, ...)``: runs at the next :meth:`run_until_idle` or :meth:`advance`."""
        return self.call_later(0, f, *args, **kwargs)

    def call_from_thread(self, f: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        """Queue ``f(*args, **kwargs)`` from any thread; it runs, in order, when the test pumps."""
        with self._lock:
            self._from_threads.append((f, args, kwargs))

    def get_delayed_calls(self) -> list[ClockCall]:
        """The calls still to run, in the order they will run."""
        return [call for _, seq, call in sorted(self._heap) if call._seq == seq and call.active()]

    def run_until_idle(self) -> int:
        """Run everything due now, and what that schedules for now, until none is left; how many ran."""
        ran = 0
        while True:
            ran += self._run_from_threads()
            call = self._pop_due(self.now)
            if call is None:
                if not self._from_threads:
                    return ran
                continue
            self._run(call)
            ran += 1

    pump = run_until_idle

    def advance(self, seconds: float) -> int:
        """Move time ``seconds`` forward, running each call as its time comes; how many ran."""
        if seconds < 0:
            raise ValueError(f"time only moves forward: advance({seconds!r})")
        target = self.now + seconds
        ran = self.run_until_idle()
        while (call := self._pop_due(target)) is not None:
            self.now = max(self.now, call.time)
            self._run(call)
            ran += 1 + self.run_until_idle()
        self.now = target
        return ran + self.run_until_idle()

    # -- internals -------------------------------------------------------------------------------

    def _push(self, call: ClockCall) -> None:
        call._seq = self._next_seq()
        heapq.heappush(self._heap, (call.time, call._seq, call))

    # What a DelayedCall asks of its reactor when it is cancelled or moved:
    def _forget_call(self, call: DelayedCall) -> None:
        pass  # its heap entry is skipped when popped (it is no longer active)

    def _move_call(self, call: DelayedCall, time: float) -> None:
        call.time = time
        self._push(call)  # type: ignore[arg-type]  # the old entry no longer matches call._seq

    def _pop_due(self, until: float) -> ClockCall | None:
        heap = self._heap
        while heap and heap[0][0] <= until:
            _, seq, call = heapq.heappop(heap)
            if call._seq == seq and call.active():
                return call
        return None

    def _run(self, call: ClockCall) -> None:
        call.called = True
        call.func(*call.args, **call.kwargs)

    def _run_from_threads(self) -> int:
        with self._lock:
            queued, self._from_threads = self._from_threads, collections.deque()
        for f, args, kwargs in queued:
            f(*args, **kwargs)
        return len(queued)


# =================================================================================================
# Conformance kit: protocols and factories that record, and Deferreds to wait on


class Recorder(Protocol):
    """Records what happens to it; ``when_*`` methods return Deferreds for awaiting events.

    Each ``when_*`` call returns a new Deferred firing with ``self``, so several waiters never
    share (and disturb) one callback chain. ``keep`` False hashes incoming data instead of keeping it.
    """

    keep = True
    keep_open_on_eof = False

    def __init__(self) -> None:
        self.received = bytearray()
        self.count = 0
        self.digest = hashlib.sha256()
        self.events: list[str] = []
        self.reasons: list[Failure] = []
        self._waiters: list[tuple[Callable[[], bool], Deferred[Any]]] = []

    def connection_made(self, transport: Any) -> None:
        self.events.append("made")
        self._fire()

    def data_received(self, data: bytes) -> None:
        if not self.events or self.events[-1] != "data":
            self.events.append("data")
        self.count += len(data)
        self.digest.update(data)
        if self.keep:
            self.received += data
        self._fire()

    def eof_received(self) -> bool | None:
        self.events.append("eof")
        self._fire()
        return self.keep_open_on_eof

    def connection_lost(self, reason: Failure) -> None:
        self.events.append("lost")
        self.reasons.append(reason)
        self._fire()

    @property
    def reason(self) -> BaseException:
        """The exception ``connection_lost`` got (asserting it was called exactly once)."""
        assert len(self.reasons) == 1, f"connection_lost called {len(self.reasons)} times"
        return self.reasons[0].value

    def when(self, condition: Callable[[], bool]) -> Deferred[Any]:
        if condition():
            return succeed(self)
        d: Deferred[Any] = Deferred()
        self._waiters.append((condition, d))
        return d

    def when_made(self) -> Deferred[Any]:
        return self.when(lambda: "made" in self.events)

    def when_received(self, nbytes: int) -> Deferred[Any]:
        return self.when(lambda: self.count >= nbytes)

    def when_eof(self) -> Deferred[Any]:
        return self.when(lambda: "eof" in self.events)

    def when_lost(self) -> Deferred[Any]:
        return self.when(lambda: bool(self.reasons))

    def _fire(self) -> None:
        if not self._waiters:
            return
        ready = [w for w in self._waiters if w[0]()]
        if ready:
            self._waiters = [w for w in self._waiters if w not in ready]
            for _, d in ready:
                d.callback(self)


class Echo(Recorder):
    """Writes back whatever it receives (and records it)."""

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self.transport.write(data)


class CollectingFactory(Factory):
    """Builds protocols with ``make()`` and keeps them; :meth:`connection` awaits the i-th one."""

    def __init__(self, make: Callable[[], Recorder] = Recorder) -> None:
        self.make = make
        self.protocols: list[Recorder] = []
        self._waiters: dict[int, list[Deferred[Any]]] = {}

    def build_protocol(self, addr: Any) -> Recorder:
        protocol = self.make()
        protocol.factory = self
        index = len(self.protocols)
        self.protocols.append(protocol)
        for d in self._waiters.pop(index, []):
            protocol.when_made().chain_deferred(d)
        return protocol

    def connection(self, index: int = 0) -> Deferred[Any]:
        """Fires with the ``index``-th protocol built, once its ``connection_made`` ran."""
        if index < len(self.protocols):
            return self.protocols[index].when_made()
        d: Deferred[Any] = Deferred()
        self._waiters.setdefault(index, []).append(d)
        return d


class StreamPair(TypingProtocol):
    """How the kit listens and connects with one transport; see :class:`EndpointPair`."""

    def listen(self, factory: Any) -> Deferred[Any]:
        """Listen on a fresh address; fires with an IListeningPort."""

    def connect(self, port: Any, factory: Any) -> Deferred[Any]:
        """Connect to ``port`` (from :meth:`listen`); fires with the connected protocol."""


class EndpointPair:
    """A :class:`StreamPair` from endpoint strings: ``client_spec(port)`` names the listener."""

    def __init__(self, reactor: Any, server_spec: str, client_spec: Callable[[Any], str]) -> None:
        self.reactor = reactor
        self.server_spec = server_spec
        self.client_spec = client_spec

    def listen(self, factory: Any) -> Deferred[Any]:
        from .endpoints import server

        d: Deferred[Any] = server(self.reactor, self.server_spec).listen(factory)
        return d

    def connect(self, port: Any, factory: Any) -> Deferred[Any]:
        from .endpoints import client

        d: Deferred[Any] = client(self.reactor, self.client_spec(port)).connect(factory)
        return d


def tcp_pair(reactor: Any) -> EndpointPair:
    """TCP over loopback, on a port the OS picks."""
    return EndpointPair(
        reactor, "tcp:0:interface=127.0.0.1", lambda port: f"tcp:127.0.0.1:{port.get_host().port}")


def iterations(reactor: Any, count: int = 3) -> Deferred[None]:
    """Fires after ``count`` more loop iterations: lets in-flight events land, without sleeping."""
    d: Deferred[None] = Deferred()

    def step(left: int) -> None:
        if left:
            reactor.call_later(0, step, left - 1)
        else:
            d.callback(None)

    step(count)
    return d


def _pattern(size: int, seed: int = 0) -> bytes:
    block = bytes((seed + i) % 251 for i in range(251))
    return (block * (size // 251 + 1))[:size]


async def _setup(
    pair: StreamPair, server_make: Callable[[], Recorder], client_make: Callable[[], Recorder] = Recorder
) -> tuple[Any, CollectingFactory, Recorder, Recorder]:
    factory = CollectingFactory(server_make)
    port = await pair.listen(factory)
    try:
        client = await pair.connect(port, CollectingFactory(client_make))
        server = await factory.connection(0)
    except BaseException:
        await port.stop_listening()
        raise
    return port, factory, server, client


async def _settle(reactor: Any, *protocols: Recorder) -> None:
    """Wait until every protocol lost its connection, then a bit more: a second call would show."""
    for p in protocols:
        await p.when_lost()
    await iterations(reactor, 3)
    for p in protocols:
        assert p.events.count("lost") == 1, f"{p!r} saw connection_lost {p.events.count('lost')} times"


# -- the checks ------------------------------------------------------------------------------------


async def _echo(reactor: Any, pair: StreamPair, size: int) -> None:
    port, _, server, client = await _setup(pair, Echo, _hashing)
    try:
        data = _pattern(size)
        client.transport.write(data)
        await client.when_received(size)
        assert client.count == size and client.digest.digest() == hashlib.sha256(data).digest()
        client.transport.lose_connection()
        await _settle(reactor, client, server)
        assert isinstance(client.reason, ConnectionDone), client.reason
        assert isinstance(server.reason, ConnectionDone), server.reason
    finally:
        await port.stop_listening()


def _hashing() -> Recorder:
    recorder = Recorder()
    recorder.keep = False
    return recorder


async def check_echo_one_byte(reactor: Any, pair: StreamPair) -> None:
    """One byte goes there and back; both ends then see one clean connection_lost."""
    await _echo(reactor, pair, 1)


async def check_echo_16_mib(reactor: Any, pair: StreamPair) -> None:
    """16 MiB written at once comes back intact (same SHA-256), in order."""
    await _echo(reactor, pair, 16 * 1024 * 1024)


async def check_lose_connection_flushes(reactor: Any, pair: StreamPair) -> None:
    """write(1 MiB); lose_connection() at once: the peer gets every byte, then ConnectionDone."""
    port, _, server, client = await _setup(pair, Recorder, _hashing)
    try:
        data = _pattern(_MIB, seed=7)
        server.transport.write(data)
        server.transport.lose_connection()
        await _settle(reactor, client, server)
        assert client.count == _MIB
        assert client.digest.digest() == hashlib.sha256(data).digest()
        assert isinstance(client.reason, ConnectionDone), client.reason
        assert isinstance(server.reason, ConnectionDone), server.reason
        assert client.events[-1] == "lost" and "data" in client.events
    finally:
        await port.stop_listening()


async def check_abort_drops(reactor: Any, pair: StreamPair) -> None:
    """abort_connection() closes now: both ends see ConnectionLost (not every byte need arrive)."""
    port, _, server, client = await _setup(pair, Recorder, _hashing)
    try:
        server.transport.write(_pattern(_MIB, seed=7))
        server.transport.abort_connection()
        await _settle(reactor, client, server)
        assert client.count <= _MIB
        assert isinstance(server.reason, ConnectionLost), server.reason
        assert isinstance(client.reason, ConnectionLost), client.reason
    finally:
        await port.stop_listening()


async def check_abort_reason(reactor: Any, pair: StreamPair) -> None:
    """The reason given to abort_connection/lose_connection is what connection_lost gets."""
    port, _, server, client = await _setup(pair, Recorder)
    try:
        client.transport.abort_connection(KeyError("mine"))
        server.transport.lose_connection(ValueError("theirs"))
        await _settle(reactor, client, server)
        assert isinstance(client.reason, KeyError)
        assert isinstance(server.reason, (ValueError, ConnectionLost))
    finally:
        await port.stop_listening()


async def check_write_after_close_ignored(reactor: Any, pair: StreamPair) -> None:
    """Writes after lose_connection are ignored, not errors; only what came before arrives."""
    port, _, server, client = await _setup(pair, Recorder)
    try:
        client.transport.write(b"before")
        client.transport.lose_connection()
        client.transport.write(b"after")
        client.transport.lose_connection()  # idempotent
        await _settle(reactor, client, server)
        assert bytes(server.received) == b"before"
    finally:
        await port.stop_listening()


async def check_pause_resume_reading(reactor: Any, pair: StreamPair) -> None:
    """Nothing is delivered while reading is paused; everything is, in order, after resuming."""
    port, _, server, client = await _setup(pair, Recorder)
    try:
        client.transport.pause_reading()
        server.transport.write(b"x" * 1000)
        server.transport.write(b"y" * 1000)
        await iterations(reactor, 5)
        assert client.count == 0, "data_received while paused"
        client.transport.resume_reading()
        await client.when_received(2000)
        assert bytes(client.received) == b"x" * 1000 + b"y" * 1000
        client.transport.lose_connection()
        await _settle(reactor, client, server)
    finally:
        await port.stop_listening()


async def check_addresses(reactor: Any, pair: StreamPair) -> None:
    """Each end's get_host() is the other's get_peer(); the server's host is the port's address."""
    port, _, server, client = await _setup(pair, Recorder)
    try:
        assert client.transport.get_peer() == server.transport.get_host()
        assert client.transport.get_host() == server.transport.get_peer()
        assert server.transport.get_host() == port.get_host()
        client.transport.lose_connection()
        await _settle(reactor, client, server)
    finally:
        await port.stop_listening()


class ChunkProducer:
    """A producer writing ``chunk``-sized pieces to ``transport`` and recording what it saw.

    Streaming: writes while not paused (a push producer). Pull: one chunk per resume_producing.
    After ``limit`` bytes (None: unlimited) it unregisters, and closes the connection if ``close``.
    """

    def __init__(
        self,
        transport: Any,
        streaming: bool,
        chunk: int = 64 * 1024,
        limit: int | None = None,
        close: bool = True,
    ) -> None:
        self.transport = transport
        self.close = close
        self.streaming = streaming
        self.chunk = chunk
        self.limit = limit
        self.sent = 0
        self.digest = hashlib.sha256()
        self.paused = False
        self.pauses = 0
        self.resumes = 0
        self.stopped = False
        self.finished = False
        self.max_buffer = 0
        self._seq = 0
        self._pause_waiters: list[Deferred[Any]] = []

    def start(self) -> None:
        self.transport.register_producer(self, self.streaming)
        if self.streaming:
            self._produce()

    def when_paused(self) -> Deferred[Any]:
        if self.pauses:
            return succeed(self)
        d: Deferred[Any] = Deferred()
        self._pause_waiters.append(d)
        return d

    def pause_producing(self) -> None:
        self.paused = True
        self.pauses += 1
        waiters, self._pause_waiters = self._pause_waiters, []
        for d in waiters:
            d.callback(self)

    def resume_producing(self) -> None:
        self.paused = False
        self.resumes += 1
        self._produce()

    def stop_producing(self) -> None:
        self.stopped = True

    def _write_one(self) -> None:
        data = _pattern(self.chunk, seed=self._seq)
        self._seq += 1
        self.sent += len(data)
        self.digest.update(data)
        self.transport.write(data)
        self.max_buffer = max(self.max_buffer, self.transport.get_write_buffer_size())

    def _produce(self) -> None:
        if self.finished or self.stopped:
            return
        if self.limit is not None and self.sent >= self.limit:
            self.finished = True
            self.transport.unregister_producer()
            if self.close:
                self.transport.lose_connection()
            return
        if not self.streaming:
            self._write_one()
            return
        cap = 256 * _MIB  # a streaming producer that is never paused is a bug: don't loop forever
        while not self.paused and not self.finished and self.sent < min(self.limit or cap, cap):
            self._write_one()
        if self.limit is not None and self.sent >= self.limit and not self.paused:
            self._produce()


async def check_streaming_producer(reactor: Any, pair: StreamPair) -> None:
    """A push producer against a reader that stopped reading is paused at the high-water mark.

    The write buffer never exceeds high-water + one chunk; after the reader resumes, the producer
    is resumed and everything arrives in order.
    """
    port, _, server, client = await _setup(pair, Recorder, _hashing)
    try:
        client.transport.pause_reading()
        producer = ChunkProducer(server.transport, streaming=True)
        producer.start()
        await producer.when_paused()
        assert producer.max_buffer <= 64 * 1024 + producer.chunk, producer.max_buffer
        producer.limit = producer.sent + 8 * producer.chunk
        client.transport.resume_reading()
        await _settle(reactor, client, server)
        assert producer.resumes >= 1 and producer.finished
        assert producer.max_buffer <= 64 * 1024 + producer.chunk, producer.max_buffer
        assert client.count == producer.sent
        assert client.digest.digest() == producer.digest.digest()
        assert isinstance(client.reason, ConnectionDone), client.reason
    finally:
        await port.stop_listening()


async def check_pull_producer(reactor: Any, pair: StreamPair) -> None:
    """A pull producer is asked for one chunk each time the buffer drains, never more is queued."""
    port, _, server, client = await _setup(pair, Recorder, _hashing)
    try:
        producer = ChunkProducer(server.transport, streaming=False, limit=4 * 1024 * 1024)
        producer.start()
        await _settle(reactor, client, server)
        assert producer.finished and not producer.paused
        assert producer.resumes == producer.sent // producer.chunk + 1  # +1: the one that finished
        assert producer.max_buffer <= producer.chunk, producer.max_buffer
        assert client.count == producer.sent
        assert client.digest.digest() == producer.digest.digest()
        assert isinstance(client.reason, ConnectionDone), client.reason
    finally:
        await port.stop_listening()


class _PauseSpy:
    """Registered as the server protocol's producer: forwards to its transport, records pauses."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.pauses = 0
        self.waiters: list[Deferred[Any]] = []

    def pause_producing(self) -> None:
        self.pauses += 1
        self.transport.pause_producing()
        waiters, self.waiters = self.waiters, []
        for d in waiters:
            d.callback(self)

    def resume_producing(self) -> None:
        self.transport.resume_producing()

    def stop_producing(self) -> None:
        self.transport.stop_producing()


class _BackPressureEcho(Echo):
    """Echoes, and stops reading while its own write buffer is above the high-water mark."""

    keep = False

    def connection_made(self, transport: Any) -> None:
        self.spy = _PauseSpy(transport)
        self.max_buffer = 0
        transport.register_producer(self.spy, True)
        super().connection_made(transport)  # announces the protocol: set up everything first

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self.max_buffer = max(self.max_buffer, self.transport.get_write_buffer_size())

    def eof_received(self) -> bool | None:
        self.transport.unregister_producer()
        return super().eof_received()


async def check_protocol_as_consumer(reactor: Any, pair: StreamPair) -> None:
    """A protocol registering its transport as its producer pushes back on a fast writer.

    The client writes without reading; the echoing server stops reading once its own write
    buffer is full, so its buffer stays bounded, and the client's writer is paused in turn. When
    the client reads again, everything flows and arrives in order.
    """
    port, _, server, client = await _setup(pair, _BackPressureEcho, _hashing)
    try:
        assert isinstance(server, _BackPressureEcho)
        client.transport.pause_reading()
        writer = ChunkProducer(client.transport, streaming=True, close=False)
        paused: Deferred[Any] = Deferred()
        server.spy.waiters.append(paused)
        writer.start()
        await paused
        await writer.when_paused()
        limit = 64 * 1024 + server.transport.read_size if hasattr(server.transport, "read_size") else None
        if limit is not None:
            assert server.max_buffer <= limit, server.max_buffer
        writer.limit = writer.sent + 4 * writer.chunk
        client.transport.resume_reading()
        await client.when_received(writer.limit)
        assert writer.sent == writer.limit
        client.transport.lose_connection()
        await _settle(reactor, client, server)
        assert client.count == writer.sent
        assert client.digest.digest() == writer.digest.digest()
    finally:
        await port.stop_listening()


CheckFunction = Callable[[Any, StreamPair], Coroutine[Any, Any, None]]

TRANSPORT_CHECKS: tuple[CheckFunction, ...] = (
    check_echo_one_byte,
    check_echo_16_mib,
    check_lose_connection_flushes,
    check_abort_drops,
    check_abort_reason,
    check_write_after_close_ignored,
    check_pause_resume_reading,
    check_addresses,
    check_streaming_producer,
    check_pull_producer,
    check_protocol_as_consumer,
)
"""Every conformance check, in a cheap-first order."""


async def check_transport(reactor: Any, pair: StreamPair) -> None:
    """Run every check in :data:`TRANSPORT_CHECKS` over ``pair``, one after the other."""
    for check in TRANSPORT_CHECKS:
        await check(reactor, pair)
