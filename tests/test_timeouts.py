"""The frame and idle timeouts on a fake clock: what counts as progress (deterministic)."""

from __future__ import annotations

from typing import Any

from broker_pair import raw_peer

import broker
from broker import wire
from broker.messages import Call, Goodbye, Hello
from broker.protocol import BrokerFactory
from net.testing import Clock


class Calc(broker.Root):
    def remote_add(self, a: Any, b: Any) -> Any:
        return a + b


def connect(**limits: Any) -> Any:
    clock = Clock()
    factory = BrokerFactory(clock, Calc(), limits=broker.Limits(dead_after=None, **limits))
    peer = raw_peer(factory)
    peer.send(wire.encode(Hello()))
    return clock, peer


def closed_with(peer: Any) -> Goodbye | None:
    goodbyes = [m for m in peer.peer.messages() if isinstance(m, Goodbye)]
    return goodbyes[-1] if goodbyes else None


def test_frames_that_keep_completing_never_trip_the_frame_timeout() -> None:
    clock, peer = connect(frame_timeout=1.0)
    frame = wire.encode(Call(1, 0, "add", [1, 2], {}, 0))
    peer.send(frame[:3])
    for i in range(2, 200):  # 200 frames, each finished 0.9 s after it started: 180 s in all
        clock.advance(0.9)
        peer.pump()
        following = wire.encode(Call(i, 0, "add", [i, 0], {}, 0))
        peer.send(frame[3:] + following[:3])
        frame = following
    assert closed_with(peer) is None
    assert len([m for m in peer.peer.messages() if type(m).__name__ == "Answer"]) == 198


def test_a_stalled_frame_trips_the_frame_timeout() -> None:
    clock, peer = connect(frame_timeout=1.0)
    peer.send(wire.encode(Call(1, 0, "add", [1, 2], {}, 0))[:5])
    clock.advance(0.99)
    peer.pump()
    assert closed_with(peer) is None
    clock.advance(0.02)
    peer.pump()
    goodbye = closed_with(peer)
    assert goodbye is not None and goodbye.kind == "invalid"


def test_the_idle_timeout_counts_any_bytes() -> None:
    clock, peer = connect(idle_timeout=5.0, frame_timeout=1000.0)
    frame = wire.encode(Call(1, 0, "add", [1, 2], {}, 0))
    for byte in frame:  # one byte every 4 s: never idle for 5 s
        clock.advance(4.0)
        peer.send(bytes([byte]))
    assert closed_with(peer) is None
    clock.advance(5.0)
    peer.pump()
    goodbye = closed_with(peer)
    assert goodbye is not None and goodbye.kind == "normal" and "idle_timeout" in goodbye.message
