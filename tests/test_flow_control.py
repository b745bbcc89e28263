"""Flow control on TCP transports: water marks, producer registration rules, the transport as a
producer. (The end-to-end producer scenarios are in the conformance kit, run by
test_conformance.py.)"""

from __future__ import annotations

from typing import Any

import pytest
from helpers_net import SpyProducer
from zope.interface.verify import verifyObject

from net.endpoints import client
from net.error import ConnectionDone
from net.interfaces import IConsumer, IPushProducer
from net.testing import ChunkProducer, CollectingFactory, Recorder, iterations


async def connected_pair(reactor: Any) -> tuple[Any, Recorder, Recorder]:
    factory = CollectingFactory()
    port = reactor.listen_tcp(0, factory, interface="127.0.0.1")
    c = await client(reactor, f"tcp:127.0.0.1:{port.get_host().port}").connect(CollectingFactory())
    s = await factory.connection()
    return port, s, c


async def close(port: Any, *protocols: Recorder) -> None:
    for p in protocols:
        p.transport.lose_connection()
    for p in protocols:
        await p.when_lost()
    await port.stop_listening()


def test_transport_is_consumer_and_push_producer(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        port, s, c = await connected_pair(reactor)
        assert verifyObject(IConsumer, c.transport) and verifyObject(IPushProducer, c.transport)
        s.transport.pause_producing()  # = pause_reading
        c.transport.write(b"held back")
        await iterations(reactor, 5)
        assert s.count == 0
        s.transport.resume_producing()
        await s.when_received(9)
        assert bytes(s.received) == b"held back"
        await close(port, s, c)

    run(reactor, scenario())


def test_stop_producing_aborts(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        port, s, c = await connected_pair(reactor)
        c.transport.stop_producing()
        await c.when_lost()
        await s.when_lost()
        assert not isinstance(c.reason, ConnectionDone)
        await port.stop_listening()

    run(reactor, scenario())


def test_write_buffer_limits_validation(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        port, s, c = await connected_pair(reactor)
        t = c.transport
        t.set_write_buffer_limits(low=1000)
        assert (t._high, t._low) == (4000, 1000)
        t.set_write_buffer_limits(high=8000)
        assert (t._high, t._low) == (8000, 2000)
        t.set_write_buffer_limits()
        assert (t._high, t._low) == (64 * 1024, 16 * 1024)
        with pytest.raises(ValueError, match="high >= low >= 0"):
            t.set_write_buffer_limits(high=10, low=20)
        with pytest.raises(ValueError):
            t.set_write_buffer_limits(high=10, low=-1)
        assert t.get_write_buffer_size() == 0
        await close(port, s, c)

    run(reactor, scenario())


def test_custom_water_marks_bound_the_buffer(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        port, s, c = await connected_pair(reactor)
        c.transport.pause_reading()
        s.transport.set_write_buffer_limits(high=8192, low=2048)
        producer = ChunkProducer(s.transport, streaming=True, chunk=4096)
        producer.start()
        await producer.when_paused()
        assert 8192 < s.transport.get_write_buffer_size() <= 8192 + 4096
        producer.limit = producer.sent + 4096 * 4
        c.transport.resume_reading()
        await c.when_lost()
        assert producer.max_buffer <= 8192 + 4096
        assert c.count == producer.sent and c.digest.digest() == producer.digest.digest()
        await s.when_lost()
        await port.stop_listening()

    run(reactor, scenario())


def test_changing_limits_pauses_and_resumes(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        port, s, c = await connected_pair(reactor)
        c.transport.pause_reading()
        producer = ChunkProducer(s.transport, streaming=True)
        producer.start()
        await producer.when_paused()
        size = s.transport.get_write_buffer_size()
        spy = SpyProducer()
        s.transport.unregister_producer()
        s.transport.register_producer(spy, True)
        assert spy.calls == ["pause"]  # registered above the high-water mark: paused at once
        s.transport.set_write_buffer_limits(high=size * 2, low=size)
        assert spy.calls == ["pause", "resume"]
        s.transport.set_write_buffer_limits(high=size - 1, low=0)
        assert spy.calls == ["pause", "resume", "pause"]
        s.transport.unregister_producer()
        c.transport.resume_reading()
        await c.when_received(producer.sent)
        await close(port, s, c)
        assert spy.calls == ["pause", "resume", "pause"]  # unregistered: not told to stop

    run(reactor, scenario())


def test_register_twice_is_an_error(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        port, s, c = await connected_pair(reactor)
        first, second = SpyProducer(), SpyProducer()
        c.transport.register_producer(first, True)
        with pytest.raises(RuntimeError, match="already registered; call unregister_producer"):
            c.transport.register_producer(second, True)
        c.transport.unregister_producer()
        c.transport.unregister_producer()  # idempotent
        c.transport.register_producer(second, True)
        await close(port, s, c)
        await iterations(reactor, 2)
        assert first.calls == [] and second.calls == ["stop"]

    run(reactor, scenario())


def test_producer_stopped_when_connection_lost(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        port, s, c = await connected_pair(reactor)
        spy = SpyProducer()
        s.transport.register_producer(spy, True)
        c.transport.lose_connection()
        await s.when_lost()
        assert spy.calls == ["stop"]  # before connection_lost, exactly once
        late = SpyProducer()
        s.transport.register_producer(late, False)  # too late: stopped at once
        assert late.calls == ["stop"]
        await c.when_lost()
        await port.stop_listening()

    run(reactor, scenario())


def test_lose_connection_with_pull_producer(reactor: Any, run: Any) -> None:
    """lose_connection does not wait for the producer: what was written is sent, then stop."""

    async def scenario() -> None:
        port, s, c = await connected_pair(reactor)
        producer = ChunkProducer(s.transport, streaming=False)  # unlimited
        producer.start()
        assert producer.resumes == 1 and producer.sent == producer.chunk
        s.transport.lose_connection()
        await c.when_lost()
        await s.when_lost()
        assert producer.stopped and not producer.finished
        assert c.count == producer.sent and c.digest.digest() == producer.digest.digest()
        assert isinstance(c.reason, ConnectionDone)
        await port.stop_listening()

    run(reactor, scenario())
