"""net._writebuffer.WriteBuffer: the byte accounting and producer decisions every transport shares.

The state machine below writes, sends partially, moves the marks and swaps producers at random,
against a plain ``bytearray`` model: the bytes queued are always the model's, in order, whatever
the caller does to its buffers afterwards, and the producer sees exactly the pause/resume calls
the water marks call for (no double pause, no resume without a pause, never paused below the
low mark after a drain nor running above the high mark after a write).
"""

from __future__ import annotations

import array
from typing import Any

import pytest
from helpers_net import SpyProducer
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from net._writebuffer import (
    COALESCE_BELOW,
    DEFAULT_HIGH_WATER,
    DEFAULT_LOW_WATER,
    WriteBuffer,
    as_bytes_like,
    check_limits,
)


def joined(buffer: WriteBuffer) -> bytes:
    return b"".join(bytes(s) for s in buffer.gather(buffer.segment_count))


# -- examples --------------------------------------------------------------------------------------


def test_small_writes_coalesce_into_one_segment() -> None:
    buffer = WriteBuffer()
    for piece in (b"a", bytearray(b"b"), memoryview(b"c")):
        buffer.append(as_bytes_like(piece))
    assert buffer.segment_count == 1 and joined(buffer) == b"abc" and buffer.size == 3


def test_big_bytes_are_kept_not_copied_and_their_tail_is_a_view() -> None:
    big = bytes(COALESCE_BELOW * 2)
    buffer = WriteBuffer()
    buffer.append(big)
    assert buffer.first() is big
    buffer.consume(10)
    view = buffer.first()
    assert isinstance(view, memoryview) and view.obj is big and len(view) == len(big) - 10
    buffer.append(big, len(big) - 5)  # an unsent tail of 5 bytes: coalesced, copied
    assert buffer.size == len(big) - 10 + 5 and buffer.segment_count == 2


def test_mutable_data_is_copied_so_the_caller_may_reuse_it() -> None:
    for size in (10, COALESCE_BELOW * 2):
        data = bytearray(b"x" * size)
        buffer = WriteBuffer()
        buffer.append(data)
        data[:] = b"y" * size
        assert joined(buffer) == b"x" * size


def test_non_byte_buffers_are_counted_in_bytes() -> None:
    words = array.array("H", [1, 2, 3])
    buffer = WriteBuffer()
    buffer.append(as_bytes_like(words))
    assert buffer.size == 6 and joined(buffer) == words.tobytes()
    with pytest.raises(TypeError):
        as_bytes_like("text")


def test_consume_more_than_queued_is_refused() -> None:
    buffer = WriteBuffer()
    buffer.append(b"abc")
    with pytest.raises(ValueError, match="cannot consume 4 bytes of a buffer holding 3"):
        buffer.consume(4)
    buffer.consume(3)
    assert buffer.size == 0 and buffer.segment_count == 0


def test_take_all_and_clear() -> None:
    buffer = WriteBuffer()
    buffer.append(b"ab")
    buffer.append(bytes(COALESCE_BELOW))
    assert buffer.take_all() == b"ab" + bytes(COALESCE_BELOW)
    assert buffer.size == 0 and buffer.take_all() == b""


def test_limits_follow_asyncio_rules() -> None:
    assert check_limits(None, None) == (DEFAULT_HIGH_WATER, DEFAULT_LOW_WATER)
    assert check_limits(None, 1000) == (4000, 1000)
    assert check_limits(8000, None) == (8000, 2000)
    assert check_limits(0, 0) == (0, 0)
    for high, low in ((10, 20), (10, -1)):
        with pytest.raises(ValueError, match="high >= low >= 0"):
            check_limits(high, low)


def test_a_second_producer_is_refused_with_the_way_out() -> None:
    buffer = WriteBuffer()
    first = SpyProducer()
    buffer.register_producer(first, True)
    with pytest.raises(RuntimeError, match="unregister_producer"):
        buffer.register_producer(SpyProducer(), True)
    assert buffer.detach_producer() is first and buffer.producer is None
    assert buffer.detach_producer() is None


def test_new_marks_apply_at_once() -> None:
    buffer = WriteBuffer()
    producer = SpyProducer()
    buffer.register_producer(producer, True)
    buffer.append(b"x" * 100)
    buffer.set_limits(high=50)
    assert producer.calls == ["pause"] and buffer.producer_paused
    buffer.set_limits(high=400, low=100)
    assert producer.calls == ["pause", "resume"] and not buffer.producer_paused


def test_pull_producer_is_asked_when_empty_only() -> None:
    buffer = WriteBuffer()
    producer = SpyProducer()
    buffer.register_producer(producer, False)
    assert producer.calls == ["resume"]
    buffer.append(b"chunk")
    buffer.pause_producer_if_full()  # never for a pull producer
    buffer.resume_producer_if_drained()
    assert producer.calls == ["resume"]
    buffer.consume(5)
    buffer.resume_producer_if_drained()
    assert producer.calls == ["resume", "resume"]


# -- the state machine -----------------------------------------------------------------------------

_PATTERN = bytes(range(251)) * (4 * COALESCE_BELOW // 251 + 2)
sizes = st.one_of(st.integers(1, 64), st.integers(1, 3 * COALESCE_BELOW))


class WriteBufferMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.buffer = WriteBuffer(high=1024, low=256)
        self.model = bytearray()
        self.producer: SpyProducer | None = None
        self.streaming = False
        self.pull_drains = 0  # empty-buffer drains seen while a pull producer is registered
        self.counter = 0

    def _data(self, size: int) -> bytes:
        """``size`` bytes no earlier write had at the same place (a pattern, shifted per write)."""
        self.counter += 1
        shift = self.counter % 251
        return _PATTERN[shift:shift + size]

    @rule(size=sizes, kind=st.sampled_from(["bytes", "bytearray", "memoryview"]),
          offset=st.one_of(st.just(0), st.integers(0, 100)), scribble=st.booleans())
    def write(self, size: int, kind: str, offset: int, scribble: bool) -> None:
        raw = self._data(size)
        offset = min(offset, size)
        data: Any = {"bytes": raw, "bytearray": bytearray(raw), "memoryview": memoryview(bytearray(raw))}[kind]
        self.buffer.append(as_bytes_like(data), offset)
        self.model += raw[offset:]
        if scribble and kind != "bytes":  # the caller reuses its buffer once write() returned
            data[:] = bytes(len(data))
        self.buffer.pause_producer_if_full()
        if self.streaming:
            assert self.buffer.producer_paused or self.buffer.size <= self.buffer.high

    @rule(sizes_=st.lists(st.integers(1, 2 * COALESCE_BELOW), min_size=1, max_size=5), data=st.data())
    def gathered_write(self, sizes_: list[int], data: st.DataObject) -> None:
        items = [self._data(n) for n in sizes_]
        sent = data.draw(st.one_of(st.just(0), st.integers(0, sum(sizes_))))
        self.buffer.append_unsent(items, sent)
        self.model += b"".join(items)[sent:]
        self.buffer.pause_producer_if_full()

    @precondition(lambda self: self.buffer.size > 0)
    @rule(data=st.data(), gather=st.booleans())
    def send(self, data: st.DataObject, gather: bool) -> None:
        """A partial send: the kernel takes any prefix of the first segment(s) offered."""
        offered = self.buffer.gather(16) if gather else [self.buffer.first()]
        total = sum(len(s) for s in offered)
        assert b"".join(bytes(s) for s in offered) == self.model[:total]
        sent = data.draw(st.one_of(st.just(total), st.integers(0, total)))  # all of it, often
        self.buffer.consume(sent)
        del self.model[:sent]
        if self.producer is not None and not self.streaming and not self.buffer.size:
            self.pull_drains += 1
        self.buffer.resume_producer_if_drained()
        if self.streaming:
            assert not (self.buffer.producer_paused and self.buffer.size <= self.buffer.low)

    @rule(high=st.integers(0, 4096), low=st.integers(0, 4096))
    def set_limits(self, high: int, low: int) -> None:
        before = (self.buffer.high, self.buffer.low)
        if high < low:
            with pytest.raises(ValueError):
                self.buffer.set_limits(high, low)
            assert (self.buffer.high, self.buffer.low) == before
            return
        self.buffer.set_limits(high, low)
        if self.streaming:
            paused = self.buffer.producer_paused
            assert not (paused and self.buffer.size <= low)
            assert paused or self.buffer.size <= high

    @precondition(lambda self: self.producer is None)
    @rule(streaming=st.booleans())
    def register(self, streaming: bool) -> None:
        self.producer, self.streaming, self.pull_drains = SpyProducer(), streaming, 0
        self.buffer.register_producer(self.producer, streaming)

    @precondition(lambda self: self.producer is not None)
    @rule(detach=st.booleans())
    def unregister(self, detach: bool) -> None:
        if detach:
            assert self.buffer.detach_producer() is self.producer
        else:
            self.buffer.unregister_producer()
        self.producer, self.streaming = None, False
        assert not self.buffer.producer_paused

    @rule()
    def clear(self) -> None:
        self.buffer.clear()
        self.model.clear()

    @invariant()
    def bytes_match_the_model(self) -> None:
        assert self.buffer.size == len(self.model)
        assert sum(len(s) for s in self.buffer.gather(self.buffer.segment_count)) == len(self.model)
        assert joined(self.buffer) == self.model

    @invariant()
    def producer_calls_are_consistent(self) -> None:
        if self.producer is None:
            return
        calls = self.producer.calls
        assert "stop" not in calls  # the buffer never stops a producer: the transport does
        if self.streaming:
            for earlier, later in zip(calls, calls[1:]):
                assert earlier != later, f"{earlier} twice in a row: {calls}"
            assert not calls or calls[0] == "pause"
            assert self.buffer.producer_paused == (bool(calls) and calls[-1] == "pause")
        else:
            assert calls == ["resume"] * (1 + self.pull_drains)
            assert not self.buffer.producer_paused


WriteBufferMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40)
test_write_buffer_state_machine = WriteBufferMachine.TestCase


@given(st.lists(st.binary(min_size=1, max_size=COALESCE_BELOW + 10), max_size=8), st.data())
def test_any_sequence_of_partial_sends_delivers_every_byte_once_in_order(
    pieces: list[bytes], data: st.DataObject
) -> None:
    buffer = WriteBuffer()
    for piece in pieces:
        buffer.append(piece)
    out = bytearray()
    while buffer.size:
        segment = bytes(buffer.first())
        sent = data.draw(st.integers(1, len(segment)))
        out += segment[:sent]
        buffer.consume(sent)
    assert out == b"".join(pieces)
