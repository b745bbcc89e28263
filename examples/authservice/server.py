"""An authenticated notes service over TLS: each user sees only their own notes.

    .venv/bin/python examples/authservice/server.py --users users.db --certs certs [--port 8801]

Users log in with SCRAM-SHA-256 against a hashed user file (``python -m cred.userfile``); the
connection is TLS (``python -m net.tls make-dev-certs``). After login a client holds nothing but
its own avatar, so "alice cannot read bob's notes" needs no access checks: no reference to bob's
notes is ever sent to alice. Listens on 127.0.0.1 unless ``--interface`` says otherwise; prints
``listening on HOST:PORT`` once ready; Ctrl-C or SIGTERM stops it (``net.react``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import broker
from cred.portal import Portal, Realm
from cred.userfile import FileUserDatabase
from net.defer import Deferred
from net.error import NetError
from net.react import react

__all__ = ["Board", "NotesUser", "make_portal", "main"]


class Board(broker.Viewable):
    """A board shared by every user. ``view_`` methods learn who is asking, so the same call
    shows each caller a different summary: their own posts are marked."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, str]] = []

    def post(self, author: str, text: str) -> None:
        self.posts.append((author, text))

    def view_summary(self, perspective: NotesUser) -> list[str]:
        return [f"{'(you)' if author == perspective.name else author}: {text}" for author, text in self.posts]


class NotesUser(broker.Avatar):
    """One logged-in user. Only ``perspective_`` methods are callable remotely."""

    def __init__(self, name: str, notes: list[str], board: Board) -> None:
        self.name = name
        self.notes = notes  # this user's own list, shared by their connections
        self.board = board

    def perspective_add_note(self, text: str) -> int:
        self.notes.append(str(text))
        return len(self.notes)

    def perspective_list_notes(self) -> list[str]:
        return list(self.notes)

    def perspective_post(self, text: str) -> None:
        self.board.post(self.name, str(text))

    def perspective_board(self) -> Board:
        return self.board


def make_portal(users_path: str | Path) -> Portal:
    """A portal over the user file; the realm keeps every user's notes in memory."""
    notes: dict[str, list[str]] = {}
    board = Board()

    def avatar(avatar_id: Any, mind: Any) -> NotesUser:
        name = str(avatar_id)
        return NotesUser(name, notes.setdefault(name, []), board)

    return Portal(Realm(avatar), [FileUserDatabase(users_path)])


async def serve(reactor: Any, endpoint: str, portal: Portal) -> None:
    """Serve ``portal`` on ``endpoint`` until the reactor is stopped."""
    try:
        port = await broker.serve(reactor, endpoint, portal)
    except (NetError, OSError, ValueError) as exc:  # port taken, unreadable certificates, ...
        sys.exit(f"cannot listen: {exc}")
    print(f"listening on {port.get_host().host}:{port.get_host().port}", flush=True)
    await Deferred()  # never fires: Ctrl-C or SIGTERM stops the reactor


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", required=True, help="user file (python -m cred.userfile USERS add NAME)")
    parser.add_argument("--certs", required=True, help="directory from python -m net.tls make-dev-certs")
    parser.add_argument("--port", type=int, default=8801, help="0 picks a free port (default %(default)s)")
    parser.add_argument("--interface", default="127.0.0.1", help="address to listen on (default %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    certs = Path(args.certs)
    endpoint = f"tls:{args.port}:cert={certs / 'server.pem'}:key={certs / 'server.key'}:interface={args.interface}"
    react(serve, [endpoint, make_portal(args.users)])


if __name__ == "__main__":
    main()
