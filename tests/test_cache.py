"""Cacheable / RemoteCache (PROTOCOL.md §16, feature "cache"): state once per connection, live
updates, one RemoteCache per cache per connection, release and disconnect stop the observer
exactly once, what a holder without the class or a peer without the feature gets.

Sans-I/O over memory pairs (tests/broker_pair.py) on a fake clock, then loopback TCP on every
reactor backend.
"""

from __future__ import annotations

import gc
import logging
from typing import Any

import pytest
from broker_pair import memory_pair, raw_peer, result_of
from broker_sockets import tcp_endpoints, turn

import broker
from broker import wire
from broker.cache import CacheObserver
from broker.errors import InvalidReferenceError, OverloadedError, UnimplementedError
from broker.messages import (
    Answer,
    CacheRef,
    CacheRelease,
    CacheUpdate,
    Call,
    Error,
    Goodbye,
    Hello,
)
from broker.protocol import BrokerFactory
from broker.session import Limits
from net.testing import Clock


class Scoreboard(broker.Cacheable):
    """Scores by player; each viewer sees only the players of its own team (per perspective)."""

    cache_type = "test.Scoreboard"

    def __init__(self) -> None:
        self.scores: dict[str, int] = {}
        self.observers: list[CacheObserver] = []
        self.stopped: list[CacheObserver] = []
        self.started: list[Any] = []

    def get_state_to_cache_and_observe_for(self, perspective: Any, observer: CacheObserver) -> Any:
        self.started.append(perspective)
        self.observers.append(observer)
        if isinstance(perspective, str):  # a "team": only its players
            return {p: s for p, s in self.scores.items() if p.startswith(perspective)}
        return dict(self.scores)

    def stopped_observing(self, perspective: Any, observer: CacheObserver) -> None:
        self.stopped.append(observer)
        self.observers.remove(observer)

    def set_score(self, player: str, score: int) -> None:
        self.scores[player] = score
        for observer in self.observers:
            observer.call_remote("set_score", player, score)


class ScoreboardCopy(broker.RemoteCache):
    def set_copyable_state(self, state: Any) -> None:
        self.scores = dict(state)
        self.updates = 0

    def observe_set_score(self, player: str, score: int) -> None:
        self.scores[player] = score
        self.updates += 1

    def observe_fail(self) -> None:
        raise ValueError("this update fails on the holder")


broker.register_remote_cache("test.Scoreboard", ScoreboardCopy)


class Unregistered(broker.Cacheable):
    cache_type = "test.NobodyKnowsMe"

    def __init__(self) -> None:
        self.stopped = 0

    def get_state_to_cache_and_observe_for(self, perspective: Any, observer: CacheObserver) -> Any:
        return None

    def stopped_observing(self, perspective: Any, observer: CacheObserver) -> None:
        self.stopped += 1


class Game(broker.Root):
    def __init__(self) -> None:
        self.board = Scoreboard()
        self.other = Scoreboard()
        self.unregistered = Unregistered()

    def remote_board(self) -> Scoreboard:
        return self.board

    def remote_twice(self) -> list[Scoreboard]:
        return [self.board, self.board]

    def remote_other(self) -> Scoreboard:
        return self.other

    def remote_unregistered(self) -> Unregistered:
        return self.unregistered

    def remote_unencodable(self) -> list[Any]:
        return [self.other, object()]

    def remote_ping(self) -> str:
        return "pong"


def collect(pair: Any) -> None:
    gc.collect()
    pair.pump()


def test_state_once_then_live_updates_and_identity() -> None:
    game = Game()
    game.board.scores = {"ann": 1}
    pair = memory_pair(game)
    copy = pair.call("board")
    assert isinstance(copy, ScoreboardCopy) and copy.scores == {"ann": 1}
    game.board.set_score("bob", 5)
    pair.pump()
    assert copy.scores == {"ann": 1, "bob": 5} and copy.updates == 1
    # The same Cacheable again, in another answer and twice in one: the same object, no state.
    assert pair.call("board") is copy
    a, b = pair.call("twice")
    assert a is copy and b is copy
    assert game.board.started == [broker.session._ANONYMOUS]  # state asked for once
    assert copy.scores == {"ann": 1, "bob": 5}  # not replaced by a second state
    # Dropping the copy releases all four refs in one cache_release: stopped once.
    observer = game.board.observers[0]
    del copy, a, b
    collect(pair)
    assert game.board.stopped == [observer] and not observer.active
    assert pair.server_session._caches is not None and pair.server_session._caches.owned == 0
    game.board.set_score("cy", 2)  # an observer call after release: dropped silently
    pair.pump()
    assert game.board.stopped == [observer]
    # Sent again after the release: a fresh id, the state again, a new observer.
    again = pair.call("board")
    assert again.scores == {"ann": 1, "bob": 5, "cy": 2}
    assert len(game.board.observers) == 1 and game.board.observers[0] is not observer


def test_exactly_one_cache_release_on_the_wire() -> None:
    game = Game()
    pair = memory_pair(game)
    copy = pair.call("twice")
    written = len(pair.client_transport.written)
    del copy
    collect(pair)
    sent = decode_all_with_cache(pair.client_transport.written[written:], handshake=False)
    assert [m for m in sent if isinstance(m, CacheRelease)] == [CacheRelease(1, 2)]
    assert len(game.board.stopped) == 1


def test_per_perspective_state() -> None:
    game = Game()
    game.board.scores = {"red-ann": 1, "blue-bob": 2}
    red = memory_pair(game)
    blue = memory_pair(game)
    red.server_session.perspective = "red"
    blue.server_session.perspective = "blue"
    red_copy = red.call("board")
    blue_copy = blue.call("board")
    assert red_copy.scores == {"red-ann": 1}
    assert blue_copy.scores == {"blue-bob": 2}
    assert sorted(o.perspective for o in game.board.observers) == ["blue", "red"]


def test_disconnect_stops_every_observer_once() -> None:
    game = Game()
    pair = memory_pair(game)
    copy = pair.call("board")
    other = pair.call("other")
    pair.lose("server")
    pair.pump()
    assert len(game.board.stopped) == 1 and len(game.other.stopped) == 1
    game.board.set_score("x", 1)  # dropped silently: no error to the application
    del copy, other
    collect(pair)
    assert len(game.board.stopped) == 1 and len(game.other.stopped) == 1


def test_a_copy_cannot_be_sent_back() -> None:
    """§16.1: no receiver form of a cache ref; the call fails locally and sends nothing."""
    pair = memory_pair(Game())
    copy = pair.call("board")
    d = pair.root.call_remote("ping", copy)
    with pytest.raises(TypeError, match="cannot send ScoreboardCopy"):
        result_of(d)
    assert pair.call("ping") == "pong"


def test_release_on_demand() -> None:
    game = Game()
    game.board.scores = {"a": 1}
    pair = memory_pair(game)
    copy = pair.call("board")
    copy.release_cache()
    pair.pump()
    assert len(game.board.stopped) == 1
    game.board.set_score("a", 2)
    pair.pump()
    assert copy.scores == {"a": 1}  # no more updates for a released copy
    copy.release_cache()  # twice: nothing more
    del copy
    collect(pair)
    assert len(game.board.stopped) == 1


def test_unknown_method_and_failing_update_are_logged_and_the_cache_stays(caplog: pytest.LogCaptureFixture) -> None:
    game = Game()
    pair = memory_pair(game)
    copy = pair.call("board")
    observer = game.board.observers[0]
    with caplog.at_level(logging.WARNING, "broker.cache"):
        observer.call_remote("no_such_thing", 1)
        observer.call_remote("fail")
        pair.pump()
    assert "has no observe_no_such_thing" in caplog.text
    assert "observe_fail failed" in caplog.text
    game.board.set_score("z", 9)
    pair.pump()
    assert copy.scores == {"z": 9}
    assert pair.client_session.state is broker.session.State.OPEN


def test_unregistered_type_fails_the_call_invalid_and_is_released_at_once() -> None:
    game = Game()
    pair = memory_pair(game)
    d = pair.root.call_remote("unregistered")
    pair.pump()
    with pytest.raises(InvalidReferenceError, match="register_remote_cache"):
        result_of(d)
    assert game.unregistered.stopped == 1
    assert pair.call("ping") == "pong"


class Picky(broker.RemoteCache):
    def set_copyable_state(self, state: Any) -> None:
        raise ValueError("this state will not do")


def test_a_class_that_cannot_be_built_fails_the_call_invalid() -> None:
    broker.register_remote_cache("test.Picky", Picky)
    game = Game()
    game.other.cache_type = "test.Picky"  # type: ignore[misc]
    pair = memory_pair(game)
    d = pair.root.call_remote("other")
    pair.pump()
    with pytest.raises(InvalidReferenceError, match="cannot build 'test.Picky': this state will not do"):
        result_of(d)
    assert len(game.other.stopped) == 1
    assert pair.call("ping") == "pong"


def test_undone_when_the_answer_cannot_be_encoded() -> None:
    game = Game()
    pair = memory_pair(game)
    d = pair.root.call_remote("unencodable")
    pair.pump()
    with pytest.raises(broker.RemoteError):
        result_of(d)
    assert len(game.other.stopped) == 1 and game.other.observers == []
    assert pair.server_session._caches is not None and pair.server_session._caches.owned == 0


def test_live_caches_count_under_max_live_references() -> None:
    game = Game()
    pair = memory_pair(game, server_options={"limits": Limits(max_live_references=1)})
    copy = pair.call("board")
    assert pair.call("board") is copy  # the same cache again is no new one
    d = pair.root.call_remote("other")
    pair.pump()
    with pytest.raises(OverloadedError, match="live references"):
        result_of(d)
    assert pair.call("ping") == "pong"


def test_sending_a_cacheable_needs_the_feature_unimplemented_otherwise() -> None:
    """A peer whose hello lacks "cache" gets an error of kind unimplemented, not a crash; and a
    cache message it sends is an unknown type (goodbye "unimplemented"), only to it."""
    game = Game()
    factory = BrokerFactory(Clock(), game)
    old = raw_peer(factory)
    old.send(wire.encode(Hello(features=("heartbeat", "decrefs"))))
    old.send(wire.encode(Call(1, 0, "board")))
    error = [m for m in old.peer.messages() if isinstance(m, Error)][0]
    assert error.failure.kind == "unimplemented" and error.failure.type_name == "broker.CacheNotNegotiated"
    old.send(wire.encode(Call(2, 0, "ping")))
    assert Answer(2, "pong") in old.peer.messages()
    old.send(wire.encode(CacheRelease(1, 1)))
    assert old.peer.messages()[-1] == Goodbye("unimplemented", "message type 18 is not implemented")
    # A peer that has it sees the ext 6 payload of §16: [id, type, state], then [id].
    new = raw_peer(factory, port=40002)
    new.send(wire.encode(Hello(features=("cache",))))
    new.send(wire.encode(Call(1, 0, "twice")))
    answer = [m for m in decode_all_with_cache(new.peer.received) if isinstance(m, Answer)][0]
    assert answer.value == [CacheRef(1, "test.Scoreboard", {}), CacheRef(1)]
    new.send(wire.encode(CacheRelease(1, 2)))
    assert len(game.board.stopped) == 1


def decode_all_with_cache(data: bytes | bytearray, handshake: bool = True) -> list[Any]:
    """Every message in ``data`` (from its hello, unless ``handshake`` is False), "cache" negotiated."""
    decoder = wire.WireDecoder(expect_hello=handshake, features=("cache",))
    decoder.receive_data(bytes(data))
    return decoder.messages()


def test_holder_side_errors_from_a_raw_owner() -> None:
    """A raw peer as the owner: unknown cache ids, bogus releases, updates for released caches."""
    factory = BrokerFactory(Clock(), Game())
    peer = raw_peer(factory)
    peer.send(wire.encode(Hello(features=("cache",))))
    session = peer.server.session
    # A call whose args hold [cache_id] never sent with state: refused invalid, released at once.
    peer.send(wire.encode(Call(1, 0, "ping", [CacheRef(7)])))
    out = decode_all_with_cache(peer.peer.received)
    assert CacheRelease(7, 1) in out
    error = [m for m in out if isinstance(m, Error)][0]
    assert error.failure.kind == "invalid" and error.failure.type_name == "broker.NoSuchCache"
    # Updates for a cache not held, and releases of caches never sent: logged, connection stays.
    peer.send(wire.encode(CacheUpdate(9, "set_score", ["a", 1])))
    peer.send(wire.encode(CacheRelease(9, 1)))
    peer.send(wire.encode(Call(2, 0, "ping")))
    assert Answer(2, "pong") in decode_all_with_cache(peer.peer.received)
    assert session.state is broker.session.State.OPEN


# -- loopback TCP, every backend ------------------------------------------------------------------


async def check_scoreboard_over_tcp(reactor: Any) -> None:
    endpoints = tcp_endpoints()
    game = Game()
    game.board.scores = {"ann": 3}
    port = await broker.serve(reactor, endpoints.server, game)
    root = await broker.connect(reactor, endpoints.client(port))
    copy = await root.call_remote("board")
    assert copy.scores == {"ann": 3}
    game.board.set_score("bob", 4)
    assert await root.call_remote("ping") == "pong"  # the update went out before the answer
    assert copy.scores == {"ann": 3, "bob": 4}
    assert await root.call_remote("board") is copy
    del copy
    gc.collect()
    await turn(reactor)
    await root.call_remote("ping")  # the release was sent before this call
    assert len(game.board.stopped) == 1
    again = await root.call_remote("board")
    root.session.disconnect()
    await port.stop_listening()
    del again


def test_scoreboard_over_tcp(reactor: Any, run: Any) -> None:
    run(reactor, check_scoreboard_over_tcp(reactor))


def test_scoreboard_example() -> None:
    """examples/scoreboard.py, run as a user would: two clients stay in sync, both leave."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "examples" / "scoreboard.py"
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "alice sees {'ann': 1}; bob sees {'ann': 1}" in lines
    assert "in sync: True" in lines
    assert "bob: ann now has 4 -> {'ann': 4, 'bob': 7, 'cy': 2}" in lines
    assert not any(line.startswith("alice: ann now has 4") for line in lines)  # she had let go
    assert lines.count("server: a viewer left (1 watching)") == 1
    assert lines[-2:] == ["server: a viewer left (0 watching)", "server: nobody watching; done"]
