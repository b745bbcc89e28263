"""Stream transports with buffered protocols (recv_into a lent buffer) and the gathering write path,
over real loopback sockets on every reactor backend."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest

from broker import Limits, Root
from broker import connect as broker_connect
from broker import serve as broker_serve
from broker.messages import Answer, Cancel
from broker.protocol import BrokerProtocol
from broker.wire import WireDecoder, encode
from net.endpoints import client
from net.error import ConnectionDone
from net.interfaces import IBufferedProtocol
from net.testing import CollectingFactory, Echo, Recorder
from zope.interface.verify import verifyClass

MIB = 1024 * 1024


def listen(reactor: Any, factory: Any) -> Any:
    return reactor.listen_tcp(0, factory, interface="127.0.0.1")


def spec(port: Any) -> str:
    return f"tcp:127.0.0.1:{port.get_host().port}"


class BufferedRecorder(Recorder):
    """A Recorder that lends a small buffer: every read is a ``recv_into`` of at most ``size``."""

    size = 4096

    def __init__(self) -> None:
        super().__init__()
        self._buffer = bytearray(self.size)
        self.reads = 0
        self.data_calls = 0
        self.hints: list[int] = []

    def get_buffer(self, sizehint: int) -> memoryview:
        self.hints.append(sizehint)
        return memoryview(self._buffer)

    def buffer_updated(self, nbytes: int) -> None:
        self.reads += 1
        Recorder.data_received(self, bytes(self._buffer[:nbytes]))

    def data_received(self, data: bytes) -> None:
        self.data_calls += 1
        super().data_received(data)


class FrameCollector(Recorder):
    """Receives broker frames straight into a WireDecoder's buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.decoder = WireDecoder(expect_hello=False)
        self.messages: list[Any] = []
        self.reads = 0

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.decoder.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        self.reads += 1
        self.decoder.buffer_updated(nbytes)
        self.messages.extend(self.decoder.messages())
        self.count = len(self.messages)
        self._fire()


def test_broker_protocol_provides_the_buffered_interface() -> None:
    assert verifyClass(IBufferedProtocol, BrokerProtocol)


def test_sixteen_mebibytes_in_many_small_reads(reactor: Any, run: Any) -> None:
    blob = os.urandom(16 * MIB)

    async def scenario() -> None:
        factory = CollectingFactory(BufferedRecorder)
        port = listen(reactor, factory)
        sender = await client(reactor, spec(port)).connect(CollectingFactory())
        server = await factory.connection()
        sender.transport.write(blob)
        await server.when_received(len(blob))
        assert server.received == blob
        assert server.data_calls == 0 and server.reads >= len(blob) // BufferedRecorder.size
        assert set(server.hints) == {-1}
        sender.transport.lose_connection()
        await server.when_lost()
        assert isinstance(server.reason, ConnectionDone) and "eof" in server.events
        await port.stop_listening()

    run(reactor, scenario())


def test_wrapped_client_protocol_is_still_buffered(reactor: Any, run: Any) -> None:
    """Endpoints wrap the client's protocol; the wrapper must keep the buffered path."""

    async def scenario() -> None:
        factory = CollectingFactory(Echo)
        port = listen(reactor, factory)
        protocol = await client(reactor, spec(port)).connect(CollectingFactory(BufferedRecorder))
        data = b"round trip " * 2000
        protocol.transport.write(data)
        await protocol.when_received(len(data))
        assert protocol.received == data and protocol.data_calls == 0 and protocol.reads >= 1
        protocol.transport.lose_connection()
        await protocol.when_lost()
        await port.stop_listening()

    run(reactor, scenario())


def test_frames_split_and_batched_decode_in_order(reactor: Any, run: Any) -> None:
    messages = [Cancel(i) for i in range(1, 2001)]  # many frames: several per read
    messages[500] = Answer(501, os.urandom(3 * MIB))  # and one spread over many reads
    stream = b"".join(encode(m) for m in messages)

    async def scenario() -> None:
        factory = CollectingFactory(FrameCollector)
        port = listen(reactor, factory)
        sender = await client(reactor, spec(port)).connect(CollectingFactory())
        server = await factory.connection()
        for i in range(0, len(stream), 100_003):  # writes cut frames anywhere
            sender.transport.write(stream[i : i + 100_003])
        await server.when_received(len(messages))
        assert server.messages == messages
        assert server.reads < len(messages)  # several frames per read
        sender.transport.lose_connection()
        await server.when_lost()
        await port.stop_listening()

    run(reactor, scenario())


class BadBuffer(Recorder):
    def __init__(self, buffer: Any) -> None:
        super().__init__()
        self.buffer = buffer

    def get_buffer(self, sizehint: int) -> Any:
        if isinstance(self.buffer, Exception):
            raise self.buffer
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        raise AssertionError("never reached")


@pytest.mark.parametrize(
    "buffer, error",
    [(bytearray(), RuntimeError), (b"read-only", TypeError), (ValueError("no buffer"), ValueError)],
    ids=["empty", "read-only", "raises"],
)
def test_a_bad_buffer_closes_the_connection(reactor: Any, run: Any, buffer: Any, error: type) -> None:
    async def scenario() -> None:
        factory = CollectingFactory(lambda: BadBuffer(buffer))
        port = listen(reactor, factory)
        sender = await client(reactor, spec(port)).connect(CollectingFactory())
        server = await factory.connection()
        sender.transport.write(b"x")
        await server.when_lost()
        assert isinstance(server.reason, error)
        await sender.when_lost()
        await port.stop_listening()

    run(reactor, scenario())


def test_buffer_updated_failure_closes_with_it(reactor: Any, run: Any) -> None:
    class Failing(BufferedRecorder):
        def buffer_updated(self, nbytes: int) -> None:
            raise KeyError("boom")

    async def scenario() -> None:
        factory = CollectingFactory(Failing)
        port = listen(reactor, factory)
        sender = await client(reactor, spec(port)).connect(CollectingFactory())
        server = await factory.connection()
        sender.transport.write(b"x")
        await server.when_lost()
        assert isinstance(server.reason, KeyError)
        await port.stop_listening()

    run(reactor, scenario())


# -- the write path ---------------------------------------------------------------------------


def test_queued_writes_of_every_kind_arrive_in_order(reactor: Any, run: Any) -> None:
    """Reading paused on the peer fills the socket buffers, so writes queue up: small ones are
    coalesced, big bytes are kept by reference, big mutable ones copied (then changed by us)."""
    big = os.urandom(4 * MIB)
    mutable = bytearray(os.urandom(2 * MIB))
    expected = hashlib.sha256()

    async def scenario() -> None:
        factory = CollectingFactory()
        factory.make = lambda: _KeepNothing()
        port = listen(reactor, factory)
        sender = await client(reactor, spec(port)).connect(CollectingFactory())
        server = await factory.connection()
        server.transport.pause_reading()
        t = sender.transport
        pieces: list[bytes] = []

        def out(data: Any) -> None:
            pieces.append(bytes(data))

        for i in range(3):
            t.write(big)
            out(big)
            t.write(b"small %d" % i)
            out(b"small %d" % i)
            t.write(mutable)
            out(mutable)
            mutable[:8] = b"changed!"  # after write() returned: must not affect what is sent
            t.writelines([b"head", memoryview(big)[:MIB], bytearray(b"x" * 70_000), b"", b"tail"])
            for piece in (b"head", big[:MIB], b"x" * 70_000, b"tail"):
                out(piece)
            t.writelines([b"a", b"b"])
            out(b"ab")
        assert t.get_write_buffer_size() > 0
        total = sum(map(len, pieces))
        for piece in pieces:
            expected.update(piece)
        server.transport.resume_reading()
        await server.when_received(total)
        assert server.count == total and server.digest.digest() == expected.digest()
        await _drained(reactor, t)
        assert t.get_write_buffer_size() == 0
        t.lose_connection()
        await server.when_lost()
        await port.stop_listening()

    run(reactor, scenario())


def test_writelines_gathers_into_one_send_when_idle(reactor: Any, run: Any) -> None:
    chunks = [os.urandom(300_000), b"-", os.urandom(500_000)]

    async def scenario() -> None:
        factory = CollectingFactory()
        port = listen(reactor, factory)
        sender = await client(reactor, spec(port)).connect(CollectingFactory())
        server = await factory.connection()
        sender.transport.writelines(iter(chunks))  # any iterable
        await server.when_received(800_001)
        assert server.received == b"".join(chunks)
        sender.transport.lose_connection()
        await server.when_lost()
        await port.stop_listening()

    run(reactor, scenario())


def test_broker_echo_of_sixteen_mebibytes(reactor: Any, run: Any) -> None:
    """The whole stack: a value just under the frame limit each way, twice (buffers reused)."""
    blob = os.urandom(16 * MIB - 64)
    limits = Limits(max_frame_size=16 * MIB)

    class Echoer(Root):  # type: ignore[misc]
        def remote_echo(self, value: Any) -> Any:
            return value

    async def scenario() -> None:
        port = await broker_serve(reactor, "tcp:0:interface=127.0.0.1", Echoer(), limits=limits)
        root = await broker_connect(reactor, spec(port), limits=limits)
        for _ in range(2):
            assert await root.call_remote("echo", blob) == blob
        small = [await root.call_remote("echo", i) for i in range(3)]
        assert small == [0, 1, 2]
        root.session.disconnect()
        await port.stop_listening()

    run(reactor, scenario(), timeout=120)


class _KeepNothing(Recorder):
    keep = False


def _drained(reactor: Any, transport: Any) -> Any:
    from net.defer import Deferred

    d: Deferred[None] = Deferred()

    def check() -> None:
        if transport.get_write_buffer_size() == 0:
            d.callback(None)
        else:
            reactor.call_later(0, check)

    check()
    return d
