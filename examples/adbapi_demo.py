"""A library catalogue in sqlite3, served by the broker: remote methods that query a database
without ever blocking the reactor (net.adbapi, docs/DATABASE.md).

    .venv/bin/python examples/adbapi_demo.py [DATABASE-FILE]

One process plays the server and a client, over loopback TCP, on one reactor. Each remote
method returns the pool's Deferred, so the broker answers once the query has run in a worker
thread. ``add_books`` is one transaction: a duplicate title anywhere in the batch rolls the
whole batch back, and the client gets the database's own error.

To serve it for real, with the runner (the pool, a service ahead of the listeners, closes after
them on SIGTERM)::

    PYTHONPATH=examples pbroker serve adbapi_demo:app --listen tcp:8800 --state-dir /var/lib/library
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from typing import Any

import broker
from broker.service import BrokerService
from net.adbapi import ConnectionPool
from net.defer import Deferred
from net.react import react
from net.service import MultiService

__all__ = ["Library", "app", "main"]

SCHEMA = "CREATE TABLE IF NOT EXISTS books (title TEXT PRIMARY KEY, author TEXT NOT NULL, year INTEGER)"


class Library(broker.Root):
    """The catalogue. Every method is one pool call; none blocks the reactor thread."""

    #: A refused batch is an answer to the caller, not a server bug: logged at INFO, no traceback.
    expected_errors = (sqlite3.IntegrityError,)

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    def remote_add_book(self, title: str, author: str, year: int) -> Deferred[None]:
        return self.pool.run_operation("INSERT INTO books VALUES (?, ?, ?)", (title, author, year))

    def remote_add_books(self, books: list[list[Any]]) -> Deferred[int]:
        """All of them or none: one interaction is one transaction."""

        def insert_all(cursor: sqlite3.Cursor) -> int:
            for title, author, year in books:
                cursor.execute("INSERT INTO books VALUES (?, ?, ?)", (title, author, year))
            return len(books)

        return self.pool.run_interaction(insert_all)

    def remote_books_by(self, author: str) -> Deferred[list[list[Any]]]:
        d = self.pool.run_query("SELECT title, year FROM books WHERE author = ? ORDER BY year", (author,))
        return d.add_callback(lambda rows: [list(row) for row in rows])

    def remote_count(self) -> Deferred[int]:
        return self.pool.run_query("SELECT COUNT(*) FROM books").add_callback(lambda rows: rows[0][0])


def app(context: Any) -> MultiService:
    """For ``pbroker serve adbapi_demo:app``: the catalogue in ``--state-dir``/library.db,
    served on every ``--listen`` endpoint.

    The pool comes first in the MultiService: it starts before the listeners and stops after
    them, so calls still running during the listeners' graceful stop can use the database."""
    path = os.path.join(context.state_dir or ".", "library.db")
    # Once, before the reactor serves anything (so there is nothing to block yet): the table.
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute(SCHEMA)
    pool = ConnectionPool("sqlite3", path, reactor=context.reactor)
    pool.name = "database"
    library = Library(pool)
    return MultiService(pool, *(BrokerService(context.reactor, endpoint, library) for endpoint in context.listen))


async def main(reactor: Any, path: str = "") -> None:
    with tempfile.TemporaryDirectory() as scratch:
        pool = ConnectionPool("sqlite3", path or os.path.join(scratch, "library.db"), max=3, reactor=reactor)
        await pool.run_operation(SCHEMA)
        library = Library(pool)
        port = await broker.serve(reactor, "tcp:0:interface=127.0.0.1", library)
        client = await broker.connect(reactor, f"tcp:127.0.0.1:{port.get_host().port}")

        await client.call_remote("add_book", "The Left Hand of Darkness", "Le Guin", 1969)
        added = await client.call_remote("add_books", [["The Dispossessed", "Le Guin", 1974],
                                                       ["Solaris", "Lem", 1961]])
        print(f"added {added} books in one transaction; {await client.call_remote('count')} in all")
        try:  # the second title is there already: nothing of this batch is kept
            await client.call_remote("add_books", [["Lathe of Heaven", "Le Guin", 1971], ["Solaris", "Lem", 1961]])
        except broker.RemoteError as exc:
            print(f"batch refused with {exc.remote_type}: {exc.message}")
        print(f"still {await client.call_remote('count')} books")
        print(f"Le Guin: {await client.call_remote('books_by', 'Le Guin')}")

        client.session.disconnect()
        await port.stop_listening()
        await pool.close()
        print("pool closed")


if __name__ == "__main__":
    react(main)
