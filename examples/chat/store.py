"""What the chat server keeps across restarts, in SQLite through ``net.adbapi``.

* users: ``cred.sqlstore.SQLUserDatabase`` (SCRAM verifiers only; the same table the web signup
  writes and the IRC and broker logins read);
* rooms and their topics;
* a short history: the last ``history`` messages of each room, shown to whoever joins.

:class:`ChatStore` is the model's observer (:class:`~examples.chat.model.ModelObserver`): the model
never waits for the database. Writes go out one after another in the order the model made them
(a chain of Deferreds), so a room row is always written before its first message; at most
:attr:`ChatStore.max_pending` writes wait, and past that a write is dropped with a warning (a
stuck disk must not make the server buffer without bound). :meth:`ChatStore.flush` waits for the
chain (shutdown, tests).
"""

from __future__ import annotations

import logging
from typing import Any

from net.adbapi import ConnectionPool
from net.defer import Deferred, Failure, succeed

from .model import ChatModel, HistoryLine, Room, irc_lower

__all__ = ["ChatStore", "SCHEMA"]

log = logging.getLogger(__name__)

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS chat_rooms (
        key TEXT PRIMARY KEY,           -- irc_lower(name): #Lobby and #lobby are one room
        name TEXT NOT NULL,
        created_at REAL NOT NULL,
        topic TEXT NOT NULL DEFAULT '',
        topic_by TEXT NOT NULL DEFAULT '',
        topic_at REAL NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE IF NOT EXISTS chat_messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        room_key TEXT NOT NULL REFERENCES chat_rooms(key),
        at REAL NOT NULL,
        sender TEXT NOT NULL,
        text TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS chat_messages_room ON chat_messages (room_key, id)",
)


class ChatStore:
    """Rooms, topics and history in the pool's database."""

    max_pending = 1000

    def __init__(self, pool: ConnectionPool, *, history: int = 20) -> None:
        self.pool = pool
        self.history = history
        self._chain: Deferred[None] = succeed(None)
        self._pending = 0

    def create_tables(self) -> Deferred[None]:
        def create(cursor: Any) -> None:
            for statement in SCHEMA:
                cursor.execute(statement)

        return self.pool.run_interaction(create)

    def load_into(self, model: ChatModel) -> Deferred[int]:
        """Put every stored room (topic, last messages) into ``model``; fires with the count."""

        def load(cursor: Any) -> list[tuple[tuple[Any, ...], list[tuple[Any, ...]]]]:
            cursor.execute("SELECT key, name, created_at, topic, topic_by, topic_at FROM chat_rooms")
            rooms = cursor.fetchall()
            out = []
            for row in rooms:
                cursor.execute(
                    "SELECT at, sender, text FROM chat_messages WHERE room_key = ? ORDER BY id DESC LIMIT ?",
                    (row[0], self.history))
                out.append((row, list(reversed(cursor.fetchall()))))
            return out

        def restore(found: list[tuple[tuple[Any, ...], list[tuple[Any, ...]]]]) -> int:
            for (_key, name, created_at, topic, topic_by, topic_at), lines in found:
                model.restore_room(name, created_at, topic, topic_by, topic_at,
                                   [HistoryLine(at, sender, text) for at, sender, text in lines])
            return len(found)

        return self.pool.run_interaction(load).add_callback(restore)

    # -- the model's observer --------------------------------------------------------------

    def room_created(self, room: Room) -> None:
        self._write("INSERT OR IGNORE INTO chat_rooms (key, name, created_at) VALUES (?, ?, ?)",
                    (room.key, room.name, room.created_at))

    def topic_changed(self, room: Room) -> None:
        self._write("UPDATE chat_rooms SET topic = ?, topic_by = ?, topic_at = ? WHERE key = ?",
                    (room.topic, room.topic_by, room.topic_at, room.key))

    def message_said(self, room: Room, line: HistoryLine) -> None:
        key, keep = irc_lower(room.name), self.history

        def insert(cursor: Any) -> None:
            cursor.execute("INSERT INTO chat_messages (room_key, at, sender, text) VALUES (?, ?, ?, ?)",
                           (key, line.when, line.sender, line.text))
            cursor.execute(
                "DELETE FROM chat_messages WHERE room_key = ? AND id NOT IN "
                "(SELECT id FROM chat_messages WHERE room_key = ? ORDER BY id DESC LIMIT ?)",
                (key, key, keep))

        self._enqueue(lambda: self.pool.run_interaction(insert), "message")

    def flush(self) -> Deferred[None]:
        """Fires once every write queued so far is done (failures were logged already)."""
        done: Deferred[None] = Deferred()
        self._chain.add_both(lambda _: done.callback(None))
        return done

    def _write(self, sql: str, params: tuple[Any, ...]) -> None:
        self._enqueue(lambda: self.pool.run_operation(sql, params), sql.split()[0])

    def _enqueue(self, start: Any, what: str) -> None:
        if self._pending >= self.max_pending:
            log.warning("chat store: %d writes are waiting for the database; dropping a %s", self._pending, what)
            return
        self._pending += 1

        def run(_: object) -> Deferred[None]:
            return start()  # type: ignore[no-any-return]

        def done(result: object) -> None:
            self._pending -= 1
            if isinstance(result, Failure):
                log.error("chat store: a %s write failed: %s", what, result.get_traceback())

        self._chain = self._chain.add_callback(run).add_both(done)
