"""Streams with credit (PROTOCOL.md §17, feature "streams"): items in order under the consumer's
window (items and bytes), errors after the items before them, cancel from either end (and by
dropping the stream), disconnect failing the consumer and closing the producer, a peer without
the feature getting "unimplemented", a peer breaking its credit being dropped, 10^6 items to a
slow consumer with both sides' buffers bounded.

Sans-I/O over memory pairs (tests/broker_pair.py) on a fake clock; then loopback TCP on every
reactor backend, the blocking client, and the example.
"""

from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from broker_pair import memory_pair, raw_peer, result_of
from broker_sockets import served_in_a_thread, tcp_endpoints

import broker
from broker import blocking, wire
from broker.errors import ConnectionLost, RemoteError
from broker.messages import (
    Answer,
    Call,
    Error,
    Goodbye,
    Hello,
    StreamCredit,
    StreamEnd,
    StreamItems,
    StreamRef,
)
from broker.protocol import BrokerFactory
from broker.session import Limits, State
from net.defer import CancelledError, Deferred, ensure_deferred
from net.testing import Clock


class Numbers(broker.Root):
    """Producers of every kind, counting what they were asked for."""

    def __init__(self) -> None:
        self.pulled = 0  # items taken from the big generator
        self.closed: list[str] = []
        self.feeds: list[Deferred[int]] = []  # items the async producer awaits
        self.got: list[Any] = []

    def remote_numbers(self, n: int) -> Iterator[int]:
        return iter(range(n))

    def remote_big(self, n: int) -> Iterator[int]:
        def gen() -> Iterator[int]:
            for i in range(n):
                self.pulled += 1
                yield i
        return gen()

    def remote_blobs(self, n: int, size: int) -> Iterator[bytes]:
        def gen() -> Iterator[bytes]:
            for i in range(n):
                self.pulled += 1
                yield bytes([i % 256]) * size
        return gen()

    def remote_failing(self, n: int) -> Iterator[int]:
        def gen() -> Iterator[int]:
            yield from range(n)
            raise ValueError("ran dry")
        return gen()

    def remote_endless(self) -> Iterator[int]:
        def gen() -> Iterator[int]:
            i = 0
            try:
                while True:
                    yield i
                    i += 1
            finally:
                self.closed.append("endless")
        return gen()

    def remote_slow(self) -> AsyncIterator[int]:
        async def agen() -> AsyncIterator[int]:
            try:
                while True:
                    d: Deferred[int] = Deferred()
                    self.feeds.append(d)
                    value = await d
                    if value < 0:
                        return
                    yield value
            finally:
                self.closed.append("slow")
        return agen()

    def remote_listed(self) -> broker.Stream:
        return broker.Stream([1, 2, 3], window_items=2)

    async def remote_total(self, stream: broker.RemoteStream) -> int:
        total = 0
        async for item in stream:
            total += item
        return total

    def remote_keep(self, stream: broker.RemoteStream) -> str:
        self.got.append(stream)
        return "kept"

    def remote_ping(self) -> str:
        return "pong"


async def collect(stream: broker.RemoteStream) -> list[Any]:
    return [item async for item in stream]


def test_numbers_arrive_in_order_and_the_stream_ends() -> None:
    pair = memory_pair(Numbers())
    stream = pair.call("numbers", 10)
    assert isinstance(stream, broker.RemoteStream)
    d = ensure_deferred(collect(stream))
    assert pair.result(d) == list(range(10))
    assert not pair.server_session._streams.produced  # type: ignore[union-attr]
    assert not pair.client_session._streams.consumed  # type: ignore[union-attr]


def test_a_list_wrapped_in_stream_with_its_own_window() -> None:
    pair = memory_pair(Numbers())
    stream = pair.call("listed")
    assert stream.window_items == 2
    assert pair.result(ensure_deferred(collect(stream))) == [1, 2, 3]


def test_async_producer_items_come_as_they_are_made() -> None:
    numbers = Numbers()
    pair = memory_pair(numbers)
    stream = pair.call("slow")
    first = stream.next()
    pair.pump()
    assert not first.called and len(numbers.feeds) == 1
    numbers.feeds[-1].callback(7)
    pair.pump()
    assert result_of(first) == 7
    numbers.feeds[-1].callback(8)
    numbers.feeds[-1].callback(-1)  # the generator returns: the stream ends after 8
    assert pair.result(ensure_deferred(collect(stream))) == [8]
    assert numbers.closed == ["slow"]


def test_errors_come_after_the_items_before_them() -> None:
    pair = memory_pair(Numbers())
    stream = pair.call("failing", 3)
    seen: list[int] = []

    async def run() -> None:
        async for item in stream:
            seen.append(item)

    d = ensure_deferred(run())
    pair.pump()
    with pytest.raises(RemoteError, match="ran dry") as info:
        result_of(d)
    assert seen == [0, 1, 2] and info.value.remote_type == "builtins.ValueError"


def test_the_consumer_cancels_and_the_producer_closes() -> None:
    numbers = Numbers()
    pair = memory_pair(numbers)
    stream = pair.call("endless")
    assert [pair.result(stream.next()) for _ in range(3)] == [0, 1, 2]
    stream.cancel()
    pair.pump()
    assert numbers.closed == ["endless"]
    assert not pair.server_session._streams.produced  # type: ignore[union-attr]
    with pytest.raises(StopAsyncIteration):
        result_of(stream.next())
    assert pair.call("ping") == "pong"


def test_a_pending_step_fails_cancelled_and_an_async_producer_is_aclosed() -> None:
    numbers = Numbers()
    pair = memory_pair(numbers)
    stream = pair.call("slow")
    waiting = stream.next()
    pair.pump()
    stream.cancel()
    with pytest.raises(CancelledError):
        result_of(waiting)
    pair.pump()
    assert numbers.closed == ["slow"]


def test_a_stream_dropped_unread_is_cancelled_from_the_loop() -> None:
    numbers = Numbers()
    pair = memory_pair(numbers)
    stream = pair.call("endless")
    del stream
    gc.collect()
    pair.pump()
    assert numbers.closed == ["endless"]
    assert not pair.server_session._streams.produced  # type: ignore[union-attr]


def test_disconnect_fails_the_consumer_and_stops_the_producer() -> None:
    numbers = Numbers()
    pair = memory_pair(numbers)
    stream = pair.call("slow")
    waiting = stream.next()
    pair.pump()
    pair.lose("server")
    with pytest.raises(ConnectionLost):
        result_of(waiting)
    assert numbers.closed == ["slow"]


def test_a_stream_as_an_argument_the_callee_consumes() -> None:
    pair = memory_pair(Numbers())
    assert pair.call("total", iter(range(100))) == sum(range(100))

    async def agen() -> AsyncIterator[int]:
        for i in range(5):
            yield i

    assert pair.call("total", agen()) == 10


def test_a_million_items_to_a_slow_consumer_stay_within_the_window() -> None:
    """The bounded-memory test of the issue: 10^6 items; the consumer takes half a window per
    round; at every step neither side holds more than the window."""
    window = 1000
    numbers = Numbers()
    pair = memory_pair(numbers, limits=Limits(stream_window_items=window))
    stream = pair.call("big", 10**6)
    taken = 0
    while True:
        pair.pump()
        assert stream.buffered <= window
        assert numbers.pulled - taken <= window  # made but not yet taken: in flight or buffered
        assert pair.server_session.output_bytes == 0  # nothing piles up in the producer's outbox
        if stream.ended and not stream.buffered:
            break
        for _ in range(min(window // 2, stream.buffered)):
            step = stream.next()
            assert result_of(step) == taken
            taken += 1
    assert taken == numbers.pulled == 10**6
    with pytest.raises(StopAsyncIteration):
        result_of(stream.next())


def test_the_byte_window_bounds_big_items() -> None:
    size = 100_000
    window_bytes = 350_000
    numbers = Numbers()
    pair = memory_pair(numbers, limits=Limits(stream_window_bytes=window_bytes))
    stream = pair.call("blobs", 40, size)
    taken = 0
    while not (stream.ended and not stream.buffered):
        pair.pump()
        # at most the window, overshot by about one item (§17.2's batches)
        assert stream.buffered_bytes <= window_bytes + size + 64
        assert numbers.pulled - taken <= window_bytes // size + 1
        if stream.buffered:
            assert result_of(stream.next()) == bytes([taken % 256]) * size
            taken += 1
    assert taken == 40


def test_a_peer_without_the_feature_gets_unimplemented() -> None:
    factory = BrokerFactory(Clock(), Numbers())
    old = raw_peer(factory)
    old.send(wire.encode(Hello(features=("heartbeat", "decrefs"))))
    old.send(wire.encode(Call(1, 0, "numbers", [3])))
    error = [m for m in old.peer.messages() if isinstance(m, Error)][0]
    assert error.failure.kind == "unimplemented"
    assert error.failure.type_name == "broker.StreamsNotNegotiated"
    assert "the caller does not support streams" in error.failure.message
    old.send(wire.encode(Call(2, 0, "ping")))
    assert Answer(2, "pong") in old.peer.messages()
    assert not old.server.session._streams.produced  # type: ignore[union-attr]
    old.send(wire.encode(StreamCredit(1, 5, 5)))
    assert old.peer.messages()[-1] == Goodbye("unimplemented", "message type 15 is not implemented")


def decode_with_streams(data: bytes | bytearray) -> list[Any]:
    decoder = wire.WireDecoder(expect_hello=True, features=("streams",))
    decoder.receive_data(bytes(data))
    return decoder.messages()


def test_the_wire_exchange_of_a_raw_consumer() -> None:
    """A raw peer consumes: the ext carries the window, items wait for credit, then end."""
    factory = BrokerFactory(Clock(), Numbers())
    peer = raw_peer(factory)
    peer.send(wire.encode(Hello(features=("streams",))))
    peer.send(wire.encode(Call(1, 0, "numbers", [3])))
    out = decode_with_streams(peer.peer.received)
    assert out[-1] == Answer(1, StreamRef(1, 64, 1024 * 1024))  # nothing before credit
    peer.send(wire.encode(StreamCredit(1, 2, 1000)))
    out = decode_with_streams(peer.peer.received)
    assert [m.items for m in out if isinstance(m, StreamItems)] == [[0], [1]]  # the first alone (§17.2)
    peer.send(wire.encode(StreamCredit(1, 5, 0)))
    out = decode_with_streams(peer.peer.received)
    assert out[-2:] == [StreamItems(1, [2], 5), StreamEnd(1, None)]


def test_a_producer_that_breaks_its_credit_is_dropped() -> None:
    numbers = Numbers()
    factory = BrokerFactory(Clock(), numbers, limits=Limits(stream_window_items=4))
    peer = raw_peer(factory)
    peer.send(wire.encode(Hello(features=("streams",))))
    peer.send(wire.encode(Call(1, 0, "keep", [StreamRef(9, 100, 10**6)])))
    out = decode_with_streams(peer.peer.received)
    assert StreamCredit(9, 4, 10**6) in out and Answer(1, "kept") in out
    peer.send(wire.encode(StreamItems(9, [1, 2, 3])))
    assert numbers.got[0].buffered == 3
    peer.send(wire.encode(StreamItems(9, [4, 5])))  # one more than the credit
    goodbye = decode_with_streams(peer.peer.received)[-1]
    assert isinstance(goodbye, Goodbye) and goodbye.kind == "invalid" and "credit" in goodbye.message
    assert peer.server.session.state is State.CLOSED


def test_unknown_stream_ids_are_ignored() -> None:
    factory = BrokerFactory(Clock(), Numbers())
    peer = raw_peer(factory)
    peer.send(wire.encode(Hello(features=("streams",))))
    peer.send(wire.encode(StreamItems(5, [1])))
    peer.send(wire.encode(StreamCredit(5, 1, 1)))
    peer.send(wire.encode(StreamEnd(5, None)))
    peer.send(wire.encode(Call(1, 0, "ping")))
    assert Answer(1, "pong") in decode_with_streams(peer.peer.received)


# -- loopback TCP, every backend ------------------------------------------------------------------


async def check_numbers_over_tcp(reactor: Any) -> None:
    endpoints = tcp_endpoints()
    numbers = Numbers()
    port = await broker.serve(reactor, endpoints.server, numbers)
    root = await broker.connect(reactor, endpoints.client(port))
    assert [item async for item in await root.call_remote("numbers", 200)] == list(range(200))
    with pytest.raises(RemoteError, match="ran dry"):
        await collect(await root.call_remote("failing", 2))
    endless = await root.call_remote("endless")
    assert await endless.next() == 0
    await endless.aclose()
    assert await root.call_remote("ping") == "pong"  # the cancel arrived before this call
    assert numbers.closed == ["endless"]
    root.session.disconnect()
    await port.stop_listening()


def test_numbers_over_tcp(reactor: Any, run: Any) -> None:
    run(reactor, check_numbers_over_tcp(reactor))


def test_the_blocking_client_iterates_a_stream() -> None:
    with served_in_a_thread(tcp_endpoints(), lambda _reactor: Numbers()) as spec:
        with blocking.connect(spec, timeout=30) as root:
            assert list(root.call_remote("numbers", 300)) == list(range(300))
            endless = root.call_remote("endless")
            assert [next(endless) for _ in range(5)] == [0, 1, 2, 3, 4]
            endless.close()
            assert root.call_remote("ping") == "pong"


def test_streams_example() -> None:
    """examples/streams.py, run as a user would."""
    script = Path(__file__).resolve().parent.parent / "examples" / "streams.py"
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "sum of 0..99999 = 4999950000" in out.stdout
    assert "cancelled after 5 items" in out.stdout
