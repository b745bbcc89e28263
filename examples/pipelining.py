"""Promise pipelining (PROTOCOL.md §15): a chain of dependent calls in one round trip.

    .venv/bin/python examples/pipelining.py

``root.call_remote("get_user", 7)`` returns a Deferred that is also a promise of the user: a
``call_remote`` on it is sent at once, addressed to the answer that has not arrived yet, so

    root.call_remote("get_user", 7).call_remote("rename", "renamed").call_remote("describe")

costs one round trip where waiting for each answer costs three. The two brokers here are joined
by a loop that moves their bytes one way at a time, so the round trips are counted exactly;
over a socket the code is the same (``await broker.connect(...)`` gives the root).
"""

from __future__ import annotations

from typing import Any

import broker.session as session_module
from broker import Referenceable, Session
from broker.messages import FEATURE_DECREFS, FEATURE_HEARTBEAT
from net.defer import Deferred

__all__ = ["User", "Directory", "chain", "main"]


class User(Referenceable):
    def __init__(self, uid: int) -> None:
        self.name = f"user{uid}"

    def remote_rename(self, name: str) -> User:
        self.name = name
        return self  # a reference: calls can be pipelined on it

    def remote_describe(self) -> str:
        return f"<{self.name}>"


class Directory(Referenceable):
    def __init__(self) -> None:
        self.users: dict[int, User] = {}

    def remote_get_user(self, uid: int) -> User:
        return self.users.setdefault(uid, User(uid))


def _move(src: Session, dst: Session) -> bool:
    data = src.data_to_send()
    if data:
        dst.receive_data(data)
        dst.process()
    return bool(data)


def chain(pipelining: bool) -> tuple[Any, int]:
    """Run the chain against a server with or without the feature: (result, round trips)."""
    features = session_module._FEATURES
    if not pipelining:  # a server of before the feature: it never announces it
        session_module._FEATURES = (FEATURE_HEARTBEAT, FEATURE_DECREFS)  # type: ignore[misc, assignment]
    try:
        server = Session(root=Directory(), side="server")
    finally:
        session_module._FEATURES = features  # type: ignore[misc]
    client = Session(side="client")
    while _move(client, server) | _move(server, client):  # the handshake
        pass
    described: Deferred[Any] = (client.root().call_remote("get_user", 7)
                                .call_remote("rename", "renamed").call_remote("describe"))
    trips = 0
    while not described.called:
        if _move(client, server):
            trips += 1
        _move(server, client)
    box: list[Any] = []
    described.add_both(box.append)
    return box[0], trips


def main() -> None:
    for pipelining in (True, False):
        result, trips = chain(pipelining)
        label = "with pipelining" if pipelining else "without pipelining"
        print(f"{label}: {result} in {trips} round trip{'s' if trips != 1 else ''}")


if __name__ == "__main__":
    main()
