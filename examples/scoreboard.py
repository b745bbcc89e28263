"""A live scoreboard (PROTOCOL.md §16, feature "cache"): every client's copy stays in sync.

    .venv/bin/python examples/scoreboard.py

The server's :class:`Scoreboard` is a ``broker.Cacheable``. Each client that asks for it gets
its state once (``get_state_to_cache_and_observe_for``) as a :class:`ScoreboardView`, a
``broker.RemoteCache``; then every ``set_score`` on the server is pushed to every view
(``observer.call_remote("set_score", ...)`` runs ``observe_set_score`` there). When a client lets
go of its view, or disconnects, the server's ``stopped_observing`` runs once for it.

One process plays the server and two clients, over loopback TCP, on one reactor.
"""

from __future__ import annotations

import gc
from typing import Any

import broker
from net.defer import Deferred
from net.react import react

__all__ = ["Scoreboard", "ScoreboardView", "Game", "main"]


class Scoreboard(broker.Cacheable):
    """The original: scores by player, and one observer per connection that holds a copy."""

    cache_type = "examples.Scoreboard"

    def __init__(self) -> None:
        self.scores: dict[str, int] = {}
        self.observers: list[broker.CacheObserver] = []
        self.nobody_watching: Deferred[None] = Deferred()

    def get_state_to_cache_and_observe_for(self, perspective: Any, observer: broker.CacheObserver) -> Any:
        self.observers.append(observer)
        print(f"server: a viewer joined ({len(self.observers)} watching)")
        return dict(self.scores)

    def stopped_observing(self, perspective: Any, observer: broker.CacheObserver) -> None:
        self.observers.remove(observer)
        print(f"server: a viewer left ({len(self.observers)} watching)")
        if not self.observers:
            self.nobody_watching.callback(None)

    def set_score(self, player: str, score: int) -> None:
        self.scores[player] = score
        for observer in self.observers:
            observer.call_remote("set_score", player, score)


class ScoreboardView(broker.RemoteCache):
    """A client's copy, kept up to date by the server."""

    name = "?"

    def set_copyable_state(self, state: Any) -> None:
        self.scores: dict[str, int] = dict(state)

    def observe_set_score(self, player: str, score: int) -> None:
        self.scores[player] = score
        print(f"{self.name}: {player} now has {score} -> {self.scores}")


broker.register_remote_cache("examples.Scoreboard", ScoreboardView)


class Game(broker.Root):
    def __init__(self) -> None:
        self.board = Scoreboard()

    def remote_scoreboard(self) -> Scoreboard:
        return self.board

    def remote_score(self, player: str, score: int) -> None:
        self.board.set_score(player, score)

    def remote_sync(self) -> None:
        """Nothing: its answer comes after every update sent to the caller before it."""


async def main(reactor: Any) -> None:
    game = Game()
    game.board.set_score("ann", 1)
    port = await broker.serve(reactor, "tcp:0:interface=127.0.0.1", game)
    endpoint = f"tcp:127.0.0.1:{port.get_host().port}"
    alice = await broker.connect(reactor, endpoint)
    bob = await broker.connect(reactor, endpoint)
    alice_view = await alice.call_remote("scoreboard")
    bob_view = await bob.call_remote("scoreboard")
    alice_view.name, bob_view.name = "alice", "bob"
    print(f"alice sees {alice_view.scores}; bob sees {bob_view.scores}")
    assert await alice.call_remote("scoreboard") is alice_view  # one copy per connection
    await alice.call_remote("score", "bob", 7)  # a change through the server reaches both
    await bob.call_remote("score", "ann", 3)
    await alice.call_remote("score", "cy", 2)
    await alice.call_remote("sync")  # updates to a client go out before its later answers
    await bob.call_remote("sync")
    print(f"in sync: {alice_view.scores == bob_view.scores == game.board.scores}")
    del alice_view  # alice lets go of her copy: the server stops observing her
    gc.collect()
    turn: Deferred[None] = Deferred()
    reactor.call_from_thread(turn.callback, None)  # the release is queued from the collector
    await turn
    await alice.call_remote("score", "ann", 4)
    await bob.call_remote("sync")
    bob.session.disconnect()  # bob leaves: the server stops observing him too
    await game.board.nobody_watching
    alice.session.disconnect()
    await port.stop_listening()
    print("server: nobody watching; done")


if __name__ == "__main__":
    react(main)
