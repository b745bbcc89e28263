"""The heartbeat (docs/PROTOCOL.md §5.2) on memory transports and a fake clock: deterministic."""

from __future__ import annotations

from typing import Any

import pytest
from broker_pair import decode_all, memory_pair

import broker
from broker.messages import Ping, Pong
from net.defer import Deferred

DEAD_AFTER = 3.0
IDLE = DEAD_AFTER / 3


class Service(broker.Root):
    def remote_add(self, a: Any, b: Any) -> Any:
        return a + b

    def remote_hang(self) -> Deferred[None]:
        return Deferred()


def pair_watching(dead_after: float | None = DEAD_AFTER) -> Any:
    """The client watches the server; the server does not ping (its own heartbeat is off)."""
    return memory_pair(Service(), client_options={"limits": broker.Limits(dead_after=dead_after)},
                       server_options={"limits": broker.Limits(dead_after=None)})


def test_both_sides_negotiate_the_heartbeat() -> None:
    pair = pair_watching()
    assert "heartbeat" in pair.client_session.negotiated
    assert "heartbeat" in pair.server_session.negotiated


def test_an_idle_peer_that_answers_pings_lives_forever() -> None:
    pair = pair_watching()
    pending = pair.root.call_remote("hang")
    for _ in range(100):
        pair.advance(IDLE / 2)
    assert not pending.called  # 50 s of idleness: still waiting, the connection alive
    pings = [m for m in decode_all(pair.client_transport.value()) if isinstance(m, Ping)]
    pongs = [m for m in decode_all(pair.server_transport.value()) if isinstance(m, Pong)]
    assert len(pings) >= 20 and [p.nonce for p in pings] == [p.nonce for p in pongs]
    assert pair.call("add", 1, 2) == 3


def test_a_busy_connection_sends_no_pings() -> None:
    pair = pair_watching()
    for _ in range(40):
        assert pair.call("add", 1, 1) == 2
        pair.advance(IDLE / 4)
    assert not [m for m in decode_all(pair.client_transport.value()) if isinstance(m, Ping)]


def test_a_silent_peer_is_declared_dead_and_pending_calls_fail() -> None:
    pair = pair_watching()
    pending = pair.root.call_remote("hang")
    pair.pump()
    pair.server_transport.pause_reading()  # the server hears nothing more: no pongs come back
    pair.advance(DEAD_AFTER - IDLE / 2 - 0.01)
    assert not pending.called  # not before dead_after
    pair.advance(IDLE)  # within dead_after + idle_interval / 2
    assert pending.called
    with pytest.raises(broker.ConnectionLost, match=r"the peer stopped answering \(nothing received for 3 s\)") as lost:
        pair.result(pending)
    assert lost.value.cause == "timeout"
    assert pair.client_transport.aborted  # closed at once, no goodbye, nothing drained


def test_the_heartbeat_can_be_turned_off() -> None:
    pair = pair_watching(dead_after=None)
    pending = pair.root.call_remote("hang")
    pair.pump()
    pair.server_transport.pause_reading()
    pair.advance(1000)
    assert not pending.called
