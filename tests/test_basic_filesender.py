"""FileSender: a file written to a consumer as a pull producer.

Over real loopback TCP (and TLS) on every reactor backend: a file of a few MiB made at run time
arrives intact (SHA-256), the Deferred fires with its size, and a consumer that goes away (either
end aborting) fails the Deferred. In memory: one chunk at a time, empty files, transforms, read
errors, file positions.
"""

from __future__ import annotations

import hashlib
import io
import random
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from zope.interface.verify import verifyObject

from net.basic import FileSender
from net.defer import Deferred, Failure
from net.error import ConnectionDone, ConnectionLost
from net.interfaces import IPullProducer
from net.protocol import Factory, Protocol
from net.testing import CollectingFactory, EndpointPair, MemoryTransport, Recorder, connect_protocols
from net.tls import DevCerts, make_dev_certs

MIB = 1024 * 1024
SIZE = 5 * MIB + 12345  # not a multiple of the chunk size


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> DevCerts:
    return make_dev_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """A file of SIZE random bytes, and its SHA-256."""
    data = random.Random(14).randbytes(SIZE)
    path = tmp_path_factory.mktemp("files") / "big.bin"
    path.write_bytes(data)
    return path, hashlib.sha256(data).digest()


def esc(path: Any) -> str:
    return str(path).replace("\\", "\\\\").replace(":", "\\:")


def make_pair(reactor: Any, kind: str, certs: DevCerts) -> EndpointPair:
    if kind == "tcp":
        return EndpointPair(reactor, "tcp:0:interface=127.0.0.1",
                            lambda port: f"tcp:127.0.0.1:{port.get_host().port}")
    return EndpointPair(
        reactor,
        f"tls:0:cert={esc(certs.server_cert)}:key={esc(certs.server_key)}:interface=127.0.0.1",
        lambda port: f"tls:127.0.0.1:{port.get_host().port}:ca={esc(certs.ca)}:timeout=10",
    )


class Endless(io.RawIOBase):
    """A file that never ends (like /dev/zero, but a known pattern): the transfer cannot finish
    before the consumer goes away, whatever the socket buffers hold."""

    def __init__(self) -> None:
        self.position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        for i in range(len(view)):
            view[i] = (self.position + i) % 251
        self.position += len(view)
        return len(view)


def pattern(size: int) -> bytes:
    return bytes(i % 251 for i in range(size))


class SendingFactory(Factory):
    """Each connection sends ``open()``'s file; ``outcome`` fires with ("done", bytes) or
    ("failed", exception) -- never an errback, so the test reads it with a plain await."""

    def __init__(self, open: Any) -> None:
        self.open = open
        self.made: Deferred[Sending] = Deferred()  # one connection per test
        self.outcome: Deferred[tuple[str, Any]] = Deferred()

    def build_protocol(self, addr: Any) -> Protocol:
        protocol = Sending()
        protocol.factory = self
        return protocol


class Sending(Protocol):
    def connection_made(self, transport: Any) -> None:
        factory: Any = self.factory
        self.file: BinaryIO = factory.open()
        self.sender = FileSender()
        d = self.sender.begin_file_transfer(self.file, transport)
        d.add_callbacks(self.done, self.failed)
        factory.made.callback(self)

    def done(self, size: int) -> None:
        self.file.close()
        self.transport.lose_connection()  # what was written is still sent, then the close
        self.factory.outcome.callback(("done", size))  # type: ignore[union-attr]

    def failed(self, failure: Failure) -> None:
        self.file.close()
        self.factory.outcome.callback(("failed", failure.value))  # type: ignore[union-attr]


def hashing() -> Recorder:
    recorder = Recorder()
    recorder.keep = False
    return recorder


@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_file_arrives_intact(reactor: Any, run: Any, certs: DevCerts, big_file: Any,
                             transport: str) -> None:
    path, digest = big_file
    pair = make_pair(reactor, transport, certs)

    async def scenario() -> None:
        factory = SendingFactory(lambda: path.open("rb"))
        port = await pair.listen(factory)
        try:
            client: Recorder = await pair.connect(port, CollectingFactory(hashing))
            assert await factory.outcome == ("done", SIZE)
            await client.when_lost()
            assert client.count == SIZE
            assert client.digest.digest() == digest
            assert isinstance(client.reason, ConnectionDone), client.reason
        finally:
            await port.stop_listening()

    run(reactor, scenario(), timeout=60)


@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_client_going_away_fails_the_transfer(reactor: Any, run: Any, certs: DevCerts,
                                              transport: str) -> None:
    """The peer aborts mid-transfer (the file never ends, so it is mid-transfer): errback."""
    pair = make_pair(reactor, transport, certs)

    async def scenario() -> None:
        factory = SendingFactory(lambda: io.BufferedReader(Endless()))
        port = await pair.listen(factory)
        try:
            client: Recorder = await pair.connect(port, CollectingFactory())
            await client.when_received(MIB)
            assert bytes(client.received[:MIB]) == pattern(MIB)
            client.transport.abort_connection()
            kind, error = await factory.outcome
            assert kind == "failed"
            assert isinstance(error, ConnectionLost), error
            assert "the consumer stopped the transfer after" in str(error)
        finally:
            await port.stop_listening()

    run(reactor, scenario(), timeout=60)


@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_sender_dropping_the_connection_fails_the_transfer(reactor: Any, run: Any, certs: DevCerts,
                                                           transport: str) -> None:
    """The sending side aborts its own connection mid-transfer: its consumer is gone, errback."""
    pair = make_pair(reactor, transport, certs)

    async def scenario() -> None:
        factory = SendingFactory(lambda: io.BufferedReader(Endless()))
        port = await pair.listen(factory)
        try:
            client: Recorder = await pair.connect(port, CollectingFactory(hashing))
            server = await factory.made
            await client.when_received(1)
            server.transport.abort_connection()
            kind, error = await factory.outcome
            assert kind == "failed" and isinstance(error, ConnectionLost), error
            await client.when_lost()
            assert client.count > 0
        finally:
            await port.stop_listening()

    run(reactor, scenario(), timeout=60)


# -- in memory ----------------------------------------------------------------------------------


def memory_pair() -> Any:
    return connect_protocols(Protocol(), hashing())


def outcome(d: Deferred[Any]) -> list[Any]:
    results: list[Any] = []
    d.add_both(results.append)
    return results


def test_provides_pull_producer() -> None:
    assert verifyObject(IPullProducer, FileSender())


def test_one_chunk_at_a_time() -> None:
    pump = memory_pair()
    data = pattern(10 * FileSender.chunk_size + 7)
    sender = FileSender()
    results = outcome(sender.begin_file_transfer(io.BytesIO(data), pump.server_transport))
    assert pump.server_transport.get_write_buffer_size() == FileSender.chunk_size
    rounds = 0
    while pump.pump_once():
        rounds += 1
        assert pump.server_transport.get_write_buffer_size() <= FileSender.chunk_size
    assert results == [len(data)]
    assert pump.server_transport.producer is None  # unregistered at the end
    assert pump.client.digest.digest() == hashlib.sha256(data).digest()
    assert rounds == 11


def test_empty_file_fires_at_once() -> None:
    transport = MemoryTransport()
    results = outcome(FileSender().begin_file_transfer(io.BytesIO(b""), transport))
    assert results == [0]
    assert transport.producer is None and transport.value() == b""


def test_sends_from_the_current_position() -> None:
    pump = memory_pair()
    f = io.BytesIO(b"skip me|send me")
    f.seek(8)
    results = outcome(FileSender().begin_file_transfer(f, pump.server_transport))
    pump.pump()
    assert results == [7]
    assert pump.server_transport.value() == b"send me"


def test_transform() -> None:
    pump = memory_pair()
    sender = FileSender()
    sender.chunk_size = 4
    results = outcome(sender.begin_file_transfer(io.BytesIO(b"abcdefghij"), pump.server_transport,
                                                 transform=bytes.upper))
    pump.pump()
    assert results == [10]  # bytes read from the file
    assert pump.server_transport.value() == b"ABCDEFGHIJ"


def test_transform_holding_chunks_back() -> None:
    """A transform that returns nothing for a chunk (buffering) does not end the transfer."""
    held: list[bytes] = []

    def every_other(chunk: bytes) -> bytes:
        held.append(chunk)
        return b"" if len(held) % 2 else b"".join(held[-2:])

    pump = memory_pair()
    sender = FileSender()
    sender.chunk_size = 3
    results = outcome(sender.begin_file_transfer(io.BytesIO(b"123456789abc"), pump.server_transport,
                                                 transform=every_other))
    pump.pump()
    assert results == [12]
    assert pump.server_transport.value() == b"123456789abc"


def test_consumer_going_away_fails() -> None:
    pump = memory_pair()
    sender = FileSender()
    results = outcome(sender.begin_file_transfer(io.BytesIO(pattern(5 * sender.chunk_size)),
                                                 pump.server_transport))
    pump.pump_once()
    pump.server_transport.report_lost()  # the connection is gone: stop_producing
    assert len(results) == 1 and isinstance(results[0], Failure)
    assert isinstance(results[0].value, ConnectionLost)
    assert str(results[0].value) == f"the consumer stopped the transfer after {2 * sender.chunk_size} bytes"
    sender.resume_producing()  # late calls are harmless
    sender.stop_producing()
    assert len(results) == 1


def test_read_error_fails_and_unregisters() -> None:
    class Broken(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            raise OSError("disk on fire")

    transport = MemoryTransport()
    results = outcome(FileSender().begin_file_transfer(Broken(), transport))  # type: ignore[arg-type]
    assert len(results) == 1 and isinstance(results[0], Failure)
    assert str(results[0].value) == "disk on fire"
    assert transport.producer is None


def test_one_transfer_per_sender() -> None:
    sender = FileSender()
    sender.begin_file_transfer(io.BytesIO(b""), MemoryTransport())
    with pytest.raises(RuntimeError, match="already begun"):
        sender.begin_file_transfer(io.BytesIO(b""), MemoryTransport())


def test_file_is_left_open() -> None:
    f = io.BytesIO(b"data")
    outcome(FileSender().begin_file_transfer(f, MemoryTransport()))
    assert not f.closed
