"""The transport conformance kit: what every stream transport must do, on every reactor backend.

A protocol written for TCP must run unchanged over TLS, a Unix socket, a tunnel or the in-memory
transport, so each must behave the same where a protocol can tell. :data:`TRANSPORT_CHECKS` are
coroutine functions ``check(reactor, pair)``, one property each; :func:`check_transport` runs them
all. tests/test_conformance.py runs every check over every pair in :data:`STREAM_PAIRS`, on every
backend.

**What a transport provides: a pair.** A :class:`StreamPair` says how to listen and how to connect
with the transport; for anything with endpoint strings that is one :class:`EndpointPair`. The kit
takes it from a function with this signature (a :data:`PairMaker`)::

    def unix_pair(reactor: Any) -> StreamPair:
        \"\"\"Unix sockets in a fresh temporary directory.\"\"\"
        path = ...
        return EndpointPair(reactor, f"unix:{path}", lambda port: f"unix:{path}")

    register_pair("unix", unix_pair)  # or add it to STREAM_PAIRS below

and nothing else: no subclass, no per-transport branch in a check. A check that only makes sense
for some transports asks the transport (``can_write_eof()``) and raises ``unittest.SkipTest``
(which pytest reports as a skip) when it does not apply.

**How a check is written.** ``async with Connected(reactor, pair, server_make, client_make) as
(port, server, client)`` listens, connects, and hands over the two
:class:`~net.testing.recording.Recorder` protocols once both ends are connected; however the body ends, :func:`force_close_both`
leaves nothing open (a failed check must not leak sockets into the next). :func:`settle` waits for
both ``connection_lost`` and asserts what every check wants of the end: ``connection_lost``
exactly once, nothing delivered after it, and ``is_closing()`` true inside it.
"""

from __future__ import annotations

import atexit
import hashlib
import shutil
import tempfile
import unittest
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable, Coroutine, Protocol as TypingProtocol

from ..defer import Deferred, succeed
from ..error import ConnectionDone, ConnectionLost
from .memory import MemoryPort
from .recording import CollectingFactory, Echo, Recorder, iterations

if TYPE_CHECKING:
    from ..contracts import ListeningPort, ProtocolFactory, Reactor, ReactorTime, Transport
    from ..tls import DevCerts

__all__ = [
    "StreamPair",
    "EndpointPair",
    "PairMaker",
    "tcp_pair",
    "tls_pair",
    "memory_pair",
    "MemoryPair",
    "STREAM_PAIRS",
    "register_pair",
    "Connected",
    "force_close_both",
    "settle",
    "ChunkProducer",
    "CheckFunction",
    "TRANSPORT_CHECKS",
    "check_transport",
    "check_echo_one_byte",
    "check_echo_16_mib",
    "check_lose_connection_flushes",
    "check_abort_drops",
    "check_abort_reason",
    "check_write_after_close_ignored",
    "check_is_closing",
    "check_nothing_after_close",
    "check_half_close",
    "check_pause_resume_reading",
    "check_addresses",
    "check_streaming_producer",
    "check_pull_producer",
    "check_protocol_as_consumer",
]

_MIB = 1024 * 1024


# =================================================================================================
# Pairs: how the kit listens and connects with one transport


class StreamPair(TypingProtocol):
    """How the kit listens and connects with one transport; see :class:`EndpointPair`."""

    def listen(self, factory: ProtocolFactory) -> Deferred[Any]:
        """Listen on a fresh address; fires with a ListeningPort."""

    def connect(self, port: Any, factory: ProtocolFactory) -> Deferred[Any]:
        """Connect to ``port`` (from :meth:`listen`); fires with the connected protocol."""


PairMaker = Callable[["Reactor"], StreamPair]
"""``make_pair(reactor) -> StreamPair``: how a transport joins the kit (see the module doc)."""


class EndpointPair:
    """A :class:`StreamPair` from endpoint strings: ``client_spec(port)`` names the listener."""

    def __init__(self, reactor: Reactor, server_spec: str, client_spec: Callable[[Any], str]) -> None:
        self.reactor = reactor
        self.server_spec = server_spec
        self.client_spec = client_spec

    def __repr__(self) -> str:
        return f"<EndpointPair {self.server_spec!r}>"

    def listen(self, factory: ProtocolFactory) -> Deferred[Any]:
        from ..endpoints import server

        d: Deferred[Any] = server(self.reactor, self.server_spec).listen(factory)
        return d

    def connect(self, port: ListeningPort, factory: ProtocolFactory) -> Deferred[Any]:
        from ..endpoints import client

        d: Deferred[Any] = client(self.reactor, self.client_spec(port)).connect(factory)
        return d


def tcp_pair(reactor: Reactor) -> EndpointPair:
    """TCP over loopback, on a port the OS picks."""
    return EndpointPair(
        reactor, "tcp:0:interface=127.0.0.1", lambda port: f"tcp:127.0.0.1:{port.get_host().port}")


def _escape(path: Any) -> str:
    """A path as an endpoint-string value (colons and backslashes escaped)."""
    return str(path).replace("\\", "\\\\").replace(":", "\\:")


_dev_certs: list[DevCerts] = []


def _process_dev_certs() -> DevCerts:
    """Throw-away certificates for this process, made once, removed at exit."""
    if not _dev_certs:
        from ..tls import make_dev_certs

        directory = tempfile.mkdtemp(prefix="net-testing-certs-")
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        _dev_certs.append(make_dev_certs(directory))
    return _dev_certs[0]


def tls_pair(reactor: Reactor, certs: DevCerts | None = None) -> EndpointPair:
    """TLS over loopback TCP, verified against ``certs`` (:func:`net.tls.make_dev_certs`; None:
    a set made once per process in a temporary directory)."""
    certs = certs or _process_dev_certs()
    server_spec = (f"tls:0:cert={_escape(certs.server_cert)}:key={_escape(certs.server_key)}"
                   ":interface=127.0.0.1")
    ca = _escape(certs.ca)
    return EndpointPair(
        reactor, server_spec, lambda port: f"tls:127.0.0.1:{port.get_host().port}:ca={ca}:timeout=10")


class MemoryPair:
    """A :class:`StreamPair` of in-memory transports (:class:`~net.testing.memory.MemoryPort`),
    pumped from ``reactor``'s loop: the kit's model of a transport, checked like the real ones."""

    def __init__(self, reactor: ReactorTime) -> None:
        self.reactor = reactor

    def __repr__(self) -> str:
        return "<MemoryPair>"

    def listen(self, factory: ProtocolFactory) -> Deferred[Any]:
        return succeed(MemoryPort(self.reactor, factory))

    def connect(self, port: MemoryPort, factory: ProtocolFactory) -> Deferred[Any]:
        return succeed(port.connect(factory))


def memory_pair(reactor: ReactorTime) -> MemoryPair:
    """The in-memory transport pair of :mod:`net.testing.memory`, on ``reactor``."""
    return MemoryPair(reactor)


STREAM_PAIRS: dict[str, PairMaker] = {
    "tcp": tcp_pair,
    "tls": tls_pair,
    "memory": memory_pair,
}
"""Every transport the kit knows, by name; tests/test_conformance.py runs the checks over each."""


def register_pair(name: str, make_pair: PairMaker) -> None:
    """Add (or replace) a transport in :data:`STREAM_PAIRS`; ``make_pair(reactor)`` builds its pair."""
    if not name.isidentifier():
        raise ValueError(f"a pair name is a short identifier such as 'unix', got {name!r}")
    STREAM_PAIRS[name] = make_pair


# =================================================================================================
# Running a check: a connection, and whatever happens, nothing left open


async def force_close_both(
    reactor: ReactorTime, server: Recorder | None, client: Recorder | None, port: ListeningPort | None = None,
    timeout: float = 5.0,
) -> None:
    """End what a check leaves behind, in whatever state it stopped: abort each end that has not
    seen ``connection_lost``, wait (``timeout`` seconds at most) until it has, stop listening.

    Never raises for what it finds (a check that failed already said what is wrong); a no-op for
    ends that are closed.
    """
    ends = [p for p in (server, client) if p is not None and p.transport is not None]
    for p in ends:
        if not p.reasons:
            try:
                p.transport.abort_connection()
            except Exception:  # a transport broken enough to fail a check may fail this too
                pass
    for p in ends:
        if not p.reasons:
            lost = p.when_lost().add_timeout(timeout, reactor)
            lost.add_errback(lambda _failure: None)  # a transport that never reports: gave up
            await lost
    if port is not None:
        await port.stop_listening()


class Connected:
    """``async with Connected(reactor, pair, server_make, client_make) as (port, server, client)``.

    Listens with ``pair``, connects, and enters once both ends' ``connection_made`` has run (and
    one loop iteration later, so the body never runs inside a transport's callback). ``server``
    and ``client`` are the protocols built by ``server_make()``/``client_make()``. On leaving,
    by any path, :func:`force_close_both`.
    """

    def __init__(
        self,
        reactor: ReactorTime,
        pair: StreamPair,
        server_make: Callable[[], Recorder] = Recorder,
        client_make: Callable[[], Recorder] = Recorder,
    ) -> None:
        self.reactor = reactor
        self.pair = pair
        self.factory = CollectingFactory(server_make)
        self.client_factory = CollectingFactory(client_make)
        self.port: Any = None

    async def __aenter__(self) -> tuple[Any, Any, Any]:
        self.port = await self.pair.listen(self.factory)
        try:
            client = await self.pair.connect(self.port, self.client_factory)
            server = await self.factory.connection(0)
            await iterations(self.reactor, 1)
        except BaseException:
            await self._close()
            raise
        return self.port, server, client

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None,
    ) -> None:
        await self._close()

    async def _close(self) -> None:
        server = self.factory.protocols[0] if self.factory.protocols else None
        client = self.client_factory.protocols[0] if self.client_factory.protocols else None
        await force_close_both(self.reactor, server, client, self.port)


async def settle(reactor: ReactorTime, *protocols: Recorder) -> None:
    """Wait until every protocol lost its connection, then a few iterations more, and assert
    what every end must show: ``connection_lost`` once, nothing after it, ``is_closing()`` true
    from inside it."""
    for p in protocols:
        await p.when_lost()
    await iterations(reactor, 3)
    for p in protocols:
        assert p.events.count("lost") == 1, f"{p!r} saw connection_lost {p.events.count('lost')} times"
        assert not p.after_lost, f"{p!r} was called after connection_lost: {p.after_lost}"
        assert p.closing_at_lost == [True], f"{p!r}: is_closing() was False inside connection_lost"


def _pattern(size: int, seed: int = 0) -> bytes:
    block = bytes((seed + i) % 251 for i in range(251))
    return (block * (size // 251 + 1))[:size]


def _hashing() -> Recorder:
    recorder = Recorder()
    recorder.keep = False
    return recorder


# =================================================================================================
# The checks


async def _echo(reactor: ReactorTime, pair: StreamPair, size: int) -> None:
    async with Connected(reactor, pair, Echo, _hashing) as (_, server, client):
        data = _pattern(size)
        client.transport.write(data)
        await client.when_received(size)
        assert client.count == size and client.digest.digest() == hashlib.sha256(data).digest()
        client.transport.lose_connection()
        await settle(reactor, client, server)
        assert isinstance(client.reason, ConnectionDone), client.reason
        assert isinstance(server.reason, ConnectionDone), server.reason


async def check_echo_one_byte(reactor: ReactorTime, pair: StreamPair) -> None:
    """One byte goes there and back; both ends then see one clean connection_lost."""
    await _echo(reactor, pair, 1)


async def check_echo_16_mib(reactor: ReactorTime, pair: StreamPair) -> None:
    """16 MiB written at once comes back intact (same SHA-256), in order."""
    await _echo(reactor, pair, 16 * 1024 * 1024)


async def check_lose_connection_flushes(reactor: ReactorTime, pair: StreamPair) -> None:
    """write(1 MiB); lose_connection() at once: the peer gets every byte, then ConnectionDone."""
    async with Connected(reactor, pair, Recorder, _hashing) as (_, server, client):
        data = _pattern(_MIB, seed=7)
        server.transport.write(data)
        server.transport.lose_connection()
        await settle(reactor, client, server)
        assert client.count == _MIB
        assert client.digest.digest() == hashlib.sha256(data).digest()
        assert isinstance(client.reason, ConnectionDone), client.reason
        assert isinstance(server.reason, ConnectionDone), server.reason
        assert client.events[-1] == "lost" and "data" in client.events


async def check_abort_drops(reactor: ReactorTime, pair: StreamPair) -> None:
    """abort_connection() closes now: both ends see ConnectionLost (not every byte need arrive)."""
    async with Connected(reactor, pair, Recorder, _hashing) as (_, server, client):
        server.transport.write(_pattern(_MIB, seed=7))
        server.transport.abort_connection()
        await settle(reactor, client, server)
        assert client.count <= _MIB
        assert isinstance(server.reason, ConnectionLost), server.reason
        assert isinstance(client.reason, ConnectionLost), client.reason


async def check_abort_reason(reactor: ReactorTime, pair: StreamPair) -> None:
    """The reason given to abort_connection/lose_connection is what connection_lost gets."""
    async with Connected(reactor, pair) as (_, server, client):
        client.transport.abort_connection(KeyError("mine"))
        server.transport.lose_connection(ValueError("theirs"))
        await settle(reactor, client, server)
        assert isinstance(client.reason, KeyError)
        assert isinstance(server.reason, (ValueError, ConnectionLost))


async def check_write_after_close_ignored(reactor: ReactorTime, pair: StreamPair) -> None:
    """Writes after lose_connection are ignored, not errors; only what came before arrives."""
    async with Connected(reactor, pair) as (_, server, client):
        client.transport.write(b"before")
        client.transport.lose_connection()
        client.transport.write(b"after")
        client.transport.writelines([b"after", b"too"])
        client.transport.lose_connection()  # idempotent
        await settle(reactor, client, server)
        assert bytes(server.received) == b"before"


async def check_is_closing(reactor: ReactorTime, pair: StreamPair) -> None:
    """is_closing() is False while open, True at once after lose_connection() (while flushing)
    or abort_connection(), and True at both ends from their connection_lost on."""
    async with Connected(reactor, pair, Recorder, _hashing) as (_, server, client):
        assert not client.transport.is_closing() and not server.transport.is_closing()
        client.transport.write(_pattern(_MIB))  # something to flush
        client.transport.lose_connection()
        assert client.transport.is_closing(), "is_closing() False after lose_connection()"
        await settle(reactor, client, server)
        assert client.transport.is_closing() and server.transport.is_closing()
    async with Connected(reactor, pair) as (_, server, client):
        server.transport.abort_connection()
        assert server.transport.is_closing(), "is_closing() False after abort_connection()"
        await settle(reactor, client, server)
        assert client.transport.is_closing() and server.transport.is_closing()


class _Flood(Recorder):
    """Writes 1 MiB in 16 KiB pieces as soon as it is connected, and again for each byte read."""

    keep = False

    def connection_made(self, transport: Transport) -> None:
        for _ in range(64):
            transport.write(_pattern(16 * 1024))
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self.transport.is_closing():
            self.transport.write(_pattern(len(data)))


def _closes_on_first_data(close: str) -> Callable[[], Recorder]:
    class ClosesOnFirstData(Recorder):
        """Closes (``close``) from inside its first data_received, with more still arriving."""

        keep = False

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if not self.transport.is_closing():
                self.transport.write(b"and a last word")
                getattr(self.transport, close)()

    return ClosesOnFirstData


async def check_nothing_after_close(reactor: ReactorTime, pair: StreamPair) -> None:
    """Once connection_lost has run, a protocol hears nothing more: no data_received, no
    eof_received, no second connection_lost; even when its peer keeps writing and it closes
    from inside data_received, by lose_connection() or by abort_connection()."""
    for close in ("lose_connection", "abort_connection"):
        async with Connected(reactor, pair, _Flood, _closes_on_first_data(close)) as (_, server, client):
            await settle(reactor, client, server)  # asserts nothing came after connection_lost
            assert client.count >= 1


class _AnswersAtEof(Recorder):
    """Reads the request to its end (EOF), then writes it back and closes: ``lose_connection``, or
    ``write_eof`` with :attr:`half_close_too`."""

    keep_open_on_eof = True
    half_close_too = False

    def eof_received(self) -> bool | None:
        keep = super().eof_received()
        self.transport.write(b"answer: " + bytes(self.received))
        if self.half_close_too:
            self.transport.write_eof()  # the peer's side is closed already: this closes
        else:
            self.transport.lose_connection()
        return keep


class _HalfClosesToo(_AnswersAtEof):
    half_close_too = True


async def check_half_close(reactor: ReactorTime, pair: StreamPair) -> None:
    """write_eof() ends one direction only: the peer reads everything, then eof_received()
    (returning True keeps it open for writing), and its answer still arrives; write() after
    write_eof() raises RuntimeError; write_eof() is idempotent and leaves is_closing() False.
    Whether the answering end then closes or half-closes too, each end sees one ConnectionDone.

    Skipped (``unittest.SkipTest``) for transports whose ``can_write_eof()`` is False.
    """
    request = _pattern(_MIB, seed=3)
    for server_make in (_AnswersAtEof, _HalfClosesToo):
        async with Connected(reactor, pair, server_make) as (_, server, client):
            transport = client.transport
            if not transport.can_write_eof():
                raise unittest.SkipTest(f"{transport!r} has no half-close (can_write_eof() is False)")
            transport.write(request)  # more than a socket takes at once: EOF waits for it
            transport.write_eof()
            transport.write_eof()
            assert not transport.is_closing(), "is_closing() True after write_eof()"
            try:
                transport.write(b"too late")
            except RuntimeError:
                pass
            else:
                raise AssertionError(f"{transport!r}: write() after write_eof() did not raise")
            await settle(reactor, client, server)
            assert server.events == ["made", "data", "eof", "lost"], server.events
            assert bytes(server.received) == request
            assert bytes(client.received) == b"answer: " + request
            assert client.events == ["made", "data", "eof", "lost"], client.events
            assert isinstance(client.reason, ConnectionDone), client.reason
            assert isinstance(server.reason, ConnectionDone), server.reason


async def check_pause_resume_reading(reactor: ReactorTime, pair: StreamPair) -> None:
    """Nothing is delivered while reading is paused; everything is, in order, after resuming."""
    async with Connected(reactor, pair) as (_, server, client):
        client.transport.pause_reading()
        server.transport.write(b"x" * 1000)
        server.transport.write(b"y" * 1000)
        await iterations(reactor, 5)
        assert client.count == 0, "data_received while paused"
        client.transport.resume_reading()
        await client.when_received(2000)
        assert bytes(client.received) == b"x" * 1000 + b"y" * 1000
        client.transport.lose_connection()
        await settle(reactor, client, server)


async def check_addresses(reactor: ReactorTime, pair: StreamPair) -> None:
    """Each end's get_host() is the other's get_peer(); the server's host is the port's address."""
    async with Connected(reactor, pair) as (port, server, client):
        assert client.transport.get_peer() == server.transport.get_host()
        assert client.transport.get_host() == server.transport.get_peer()
        assert server.transport.get_host() == port.get_host()
        client.transport.lose_connection()
        await settle(reactor, client, server)


class ChunkProducer:
    """A producer writing ``chunk``-sized pieces to ``transport`` and recording what it saw.

    Streaming: writes while not paused (a push producer). Pull: one chunk per resume_producing.
    After ``limit`` bytes (None: unlimited) it unregisters, and closes the connection if ``close``.
    """

    def __init__(
        self,
        transport: Transport,
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


async def check_streaming_producer(reactor: ReactorTime, pair: StreamPair) -> None:
    """A push producer against a reader that stopped reading is paused at the high-water mark.

    The write buffer never exceeds high-water + one chunk; after the reader resumes, the producer
    is resumed and everything arrives in order.
    """
    async with Connected(reactor, pair, Recorder, _hashing) as (_, server, client):
        client.transport.pause_reading()
        producer = ChunkProducer(server.transport, streaming=True)
        producer.start()
        await producer.when_paused()
        assert producer.max_buffer <= 64 * 1024 + producer.chunk, producer.max_buffer
        producer.limit = producer.sent + 8 * producer.chunk
        client.transport.resume_reading()
        await settle(reactor, client, server)
        assert producer.resumes >= 1 and producer.finished
        assert producer.max_buffer <= 64 * 1024 + producer.chunk, producer.max_buffer
        assert client.count == producer.sent
        assert client.digest.digest() == producer.digest.digest()
        assert isinstance(client.reason, ConnectionDone), client.reason


async def check_pull_producer(reactor: ReactorTime, pair: StreamPair) -> None:
    """A pull producer is asked for one chunk each time the buffer drains, never more is queued."""
    async with Connected(reactor, pair, Recorder, _hashing) as (_, server, client):
        producer = ChunkProducer(server.transport, streaming=False, limit=4 * 1024 * 1024)
        producer.start()
        await settle(reactor, client, server)
        assert producer.finished and not producer.paused
        assert producer.resumes == producer.sent // producer.chunk + 1  # +1: the one that finished
        assert producer.max_buffer <= producer.chunk, producer.max_buffer
        assert client.count == producer.sent
        assert client.digest.digest() == producer.digest.digest()
        assert isinstance(client.reason, ConnectionDone), client.reason


class _PauseSpy:
    """Registered as the server protocol's producer: forwards to its transport, records pauses."""

    def __init__(self, transport: Transport) -> None:
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

    def connection_made(self, transport: Transport) -> None:
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


async def check_protocol_as_consumer(reactor: ReactorTime, pair: StreamPair) -> None:
    """A protocol registering its transport as its producer pushes back on a fast writer.

    The client writes without reading; the echoing server stops reading once its own write
    buffer is full, so its buffer stays bounded, and the client's writer is paused in turn. When
    the client reads again, everything flows and arrives in order.
    """
    async with Connected(reactor, pair, _BackPressureEcho, _hashing) as (_, server, client):
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
        await settle(reactor, client, server)
        assert client.count == writer.sent
        assert client.digest.digest() == writer.digest.digest()


CheckFunction = Callable[["ReactorTime", StreamPair], Coroutine[Any, Any, None]]

TRANSPORT_CHECKS: tuple[CheckFunction, ...] = (
    check_echo_one_byte,
    check_echo_16_mib,
    check_lose_connection_flushes,
    check_abort_drops,
    check_abort_reason,
    check_write_after_close_ignored,
    check_is_closing,
    check_nothing_after_close,
    check_half_close,
    check_pause_resume_reading,
    check_addresses,
    check_streaming_producer,
    check_pull_producer,
    check_protocol_as_consumer,
)
"""Every conformance check, in a cheap-first order."""


async def check_transport(reactor: ReactorTime, pair: StreamPair) -> list[str]:
    """Run every check in :data:`TRANSPORT_CHECKS` over ``pair``, one after the other; returns
    the names of those skipped as not applicable (``unittest.SkipTest``)."""
    skipped: list[str] = []
    for check in TRANSPORT_CHECKS:
        try:
            await check(reactor, pair)
        except unittest.SkipTest:
            skipped.append(check.__name__)
    return skipped
