"""The in-memory transport pair of net.testing: what sans-I/O protocol tests rely on."""

from __future__ import annotations

from typing import Any

import pytest
from zope.interface.verify import verifyObject

from net.error import ConnectionDone, ConnectionLost
from net.interfaces import ITCPTransport, ITransport
from net.testing import ChunkProducer, Echo, MemoryTransport, Recorder, connect_protocols


def pair(server: Any = None, client: Any = None, **kwargs: Any) -> tuple[Recorder, Recorder, Any]:
    server = server or Echo()
    client = client or Recorder()
    return server, client, connect_protocols(server, client, **kwargs)


def test_memory_transport_provides_the_interfaces() -> None:
    t = MemoryTransport()
    assert verifyObject(ITransport, t) and verifyObject(ITCPTransport, t)


def test_standalone_transport_records_writes() -> None:
    t = MemoryTransport()
    p = Recorder()
    t.protocol = p
    p.make_connection(t)
    t.write(b"ab")
    t.writelines([b"c", b"d"])
    t.write(b"")
    assert t.value() == b"abcd" and t.get_write_buffer_size() == 4
    with pytest.raises(TypeError):
        t.write("text")  # type: ignore[arg-type]
    t.clear()
    assert t.value() == b""
    t.lose_connection()
    assert t.disconnecting
    t.write(b"ignored")
    assert t.value() == b""
    t.report_lost()
    t.report_lost()
    assert isinstance(p.reason, ConnectionDone) and p.events == ["made", "lost"]


def test_echo_round_trip_and_addresses() -> None:
    server, client, pump = pair()
    assert client.transport.get_peer() == server.transport.get_host()
    assert client.transport.get_host() == server.transport.get_peer()
    client.transport.write(b"hello")
    assert server.count == 0  # nothing moves until pumped
    pump.pump()
    assert bytes(server.received) == b"hello" and bytes(client.received) == b"hello"
    assert pump.pump() == 0  # quiet


def test_byte_by_byte_delivery() -> None:
    server, client, pump = pair(chunk_size=1)
    client.transport.write(b"abc")
    pump.flush()
    assert server.events == ["made", "data"] and bytes(client.received) == b"abc"


def test_lose_connection_flushes_then_eof_then_lost() -> None:
    server, client, pump = pair()
    server.transport.write(b"bye")
    server.transport.lose_connection()
    server.transport.write(b"ignored")
    pump.pump()
    assert bytes(client.received) == b"bye"
    assert client.events == ["made", "data", "eof", "lost"]
    assert isinstance(client.reason, ConnectionDone) and isinstance(server.reason, ConnectionDone)


def test_half_close_keeps_the_other_side_open() -> None:
    class Replier(Recorder):
        keep_open_on_eof = True

        def eof_received(self) -> bool | None:
            keep = super().eof_received()
            self.transport.write(b"reply")
            self.transport.lose_connection(KeyError("done"))
            return keep

    server, client, pump = pair(Replier())
    client.transport.write(b"request")
    client.transport.lose_connection()
    pump.pump()
    assert server.events == ["made", "data", "eof", "lost"]
    assert isinstance(server.reason, KeyError) and isinstance(client.reason, ConnectionDone)


def test_abort_drops_and_resets() -> None:
    server, client, pump = pair()
    server.transport.write(b"never sent")
    server.transport.abort_connection()
    pump.pump()
    assert client.count == 0
    assert isinstance(server.reason, ConnectionLost) and isinstance(client.reason, ConnectionLost)


def test_paused_reading_holds_data() -> None:
    server, client, pump = pair(Recorder())
    server.transport.pause_reading()
    client.transport.write(b"wait")
    pump.pump()
    assert server.count == 0 and client.transport.get_write_buffer_size() == 4
    server.transport.resume_reading()
    pump.pump()
    assert bytes(server.received) == b"wait"


def test_streaming_producer_against_paused_reader() -> None:
    server, client, pump = pair(Recorder())
    client.transport.pause_reading()
    producer = ChunkProducer(server.transport, streaming=True, chunk=1000)
    server.transport.set_write_buffer_limits(high=5000, low=1000)
    producer.start()
    assert producer.paused and producer.sent == 6000
    pump.pump()
    assert client.count == 0
    producer.limit = 10_000
    client.transport.resume_reading()
    pump.pump()
    assert producer.finished and producer.max_buffer <= 6000
    assert client.count == 10_000 and client.digest.digest() == producer.digest.digest()
    assert isinstance(client.reason, ConnectionDone)


def test_pull_producer() -> None:
    server, client, pump = pair(Recorder())
    producer = ChunkProducer(server.transport, streaming=False, chunk=100, limit=1000)
    producer.start()
    pump.pump()
    assert producer.finished and producer.resumes == 11 and producer.max_buffer == 100
    assert client.count == 1000 and isinstance(client.reason, ConnectionDone)


def test_producer_stopped_on_close() -> None:
    server, client, pump = pair(Recorder())
    producer = ChunkProducer(server.transport, streaming=True, chunk=10, limit=None)
    server.transport.set_write_buffer_limits(high=100)
    client.transport.pause_reading()
    producer.start()
    client.transport.abort_connection()
    pump.pump()
    assert producer.stopped
    with pytest.raises(RuntimeError):
        t = MemoryTransport()
        t.register_producer(producer, True)
        t.register_producer(producer, True)
