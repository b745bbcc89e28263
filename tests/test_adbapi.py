"""net.adbapi's ConnectionPool on every reactor backend, against sqlite3 and PostgreSQL.

The scenarios every DB-API backend must pass take the ``database`` fixture, which runs each of
them on sqlite3 (a file in tmp_path) and on a real PostgreSQL server (tests/postgres_server.py
starts one; psycopg 3 talks to it); the PostgreSQL runs skip, saying why, where that server
cannot be had. The sqlite3-only cases and the example follow; tests/test_adbapi_postgres.py has
the PostgreSQL-only ones.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from postgres_server import PostgresServer, postgres  # noqa: F401  (postgres: a fixture)

from net.adbapi import ConnectionPool, PoolClosedError
from net.defer import Deferred, ensure_deferred, gather

BARRIER_TIMEOUT = 20.0  # a guard against a hang, not a synchronisation: the barrier trips at once


@dataclass
class Database:
    """One DB-API backend as the scenarios see it."""

    module: Any
    #: make_pool(reactor, **pool_options) -> a ConnectionPool on a fresh, empty database
    make_pool: Callable[..., ConnectionPool]
    #: the paramstyle's placeholder: "?" (qmark) or "%s" (format)
    p: str
    #: drop(reactor, pool): kill the pool's one idle connection behind its back
    drop: Callable[[Any, ConnectionPool], Awaitable[None]]
    #: what a call on a connection that died under it fails with
    dead_errors: tuple[type[BaseException], ...]

    _tables = itertools.count(1)

    def table(self) -> str:
        return f"t{next(self._tables)}_{os.getpid()}"


def fd_set() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


# -- the backends ------------------------------------------------------------------------------


async def _drop_sqlite(reactor: Any, pool: ConnectionPool) -> None:
    """Close the pool's (only) sqlite3 connection object under it, as a crash of the database
    handle would: the pool's next use of it fails with sqlite3.ProgrammingError."""
    connection = await pool.run_interaction(lambda cursor: cursor.connection)
    connection.close()


def _sqlite_database(tmp_path: Path) -> Database:
    paths = (tmp_path / f"db{i}.sqlite" for i in itertools.count())
    return Database(
        module=sqlite3,
        make_pool=lambda reactor, **options: ConnectionPool("sqlite3", str(next(paths)), reactor=reactor, **options),
        p="?",
        drop=_drop_sqlite,
        dead_errors=(sqlite3.ProgrammingError, sqlite3.OperationalError),
    )


def _postgres_database(server: PostgresServer) -> Database:
    import psycopg  # the postgres fixture has made sure it is there

    def make_pool(reactor: Any, **options: Any) -> ConnectionPool:
        return ConnectionPool("psycopg", server.conninfo, reactor=reactor, **options)

    def terminate(pid: int) -> None:
        with psycopg.connect(server.conninfo, autocommit=True) as admin:
            # With a timeout, pg_terminate_backend returns once the backend has exited.
            assert admin.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,)).fetchone() == (True,)

    async def drop(reactor: Any, pool: ConnectionPool) -> None:
        """Kill the backend serving the pool's connection, as a server restart or a network
        failure would: the pool learns of it on its next use of that connection."""
        [(pid,)] = await pool.run_query("SELECT pg_backend_pid()")
        await reactor.defer_to_thread(terminate, pid)

    return Database(module=psycopg, make_pool=make_pool, p="%s", drop=drop,
                    dead_errors=(psycopg.OperationalError,))


@pytest.fixture(params=["sqlite3", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    """Each backend in turn: a fresh sqlite3 file per pool, or the module's PostgreSQL server
    (started on first use; its skip, where it cannot start, skips just these runs)."""
    if request.param == "sqlite3":
        return _sqlite_database(tmp_path)
    return _postgres_database(request.getfixturevalue("postgres"))


# -- the scenarios: every backend --------------------------------------------------------------


def test_queries_and_operations(reactor: Any, run: Any, database: Database) -> None:
    async def scenario() -> None:
        pool = database.make_pool(reactor)
        t = database.table()
        await pool.run_operation(f"CREATE TABLE {t} (id INTEGER PRIMARY KEY, name TEXT UNIQUE)")
        for i, name in enumerate(["ann", "bob", "cy"], 1):
            assert await pool.run_operation(f"INSERT INTO {t} (id, name) VALUES ({database.p}, {database.p})", (i, name)) is None  # type: ignore[func-returns-value]
        rows = await pool.run_query(f"SELECT id, name FROM {t} WHERE id >= {database.p} ORDER BY id", (2,))
        assert [tuple(row) for row in rows] == [(2, "bob"), (3, "cy")]
        # A statement without a result set answers no rows rather than a driver error.
        assert await pool.run_query(f"UPDATE {t} SET name = {database.p} WHERE id = {database.p}", ("ada", 1)) == []
        assert [tuple(r) for r in await pool.run_query(f"SELECT name FROM {t} WHERE id = 1")] == [("ada",)]
        await pool.close()

    run(reactor, scenario())


def test_concurrency_bounded_by_max(reactor: Any, run: Any, database: Database) -> None:
    """Many interactions in flight: exactly ``max`` run at once (the barrier of ``max`` parties
    trips only if that many are inside together, and the counter would see one more), on at
    most ``max`` distinct connections."""
    max_connections = 3

    async def scenario() -> None:
        pool = database.make_pool(reactor, min=0, max=max_connections)
        t = database.table()
        await pool.run_operation(f"CREATE TABLE {t} (id INTEGER)")
        lock = threading.Lock()
        inside = [0]
        peak = [0]
        connections: set[int] = set()
        barrier = threading.Barrier(max_connections, timeout=BARRIER_TIMEOUT)

        def work(cursor: Any, i: int) -> int:
            with lock:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
                connections.add(id(cursor.connection))
            try:
                cursor.execute(f"SELECT COUNT(*) FROM {t}")
                cursor.fetchall()
                barrier.wait()
            finally:
                with lock:
                    inside[0] -= 1
            return i

        calls = 4 * max_connections
        results = await gather(*[pool.run_interaction(work, i) for i in range(calls)])
        assert results == list(range(calls))
        assert 1 < peak[0] <= max_connections
        assert peak[0] == max_connections
        assert len(connections) <= max_connections
        assert pool.open_connections <= max_connections
        await pool.close()

    run(reactor, scenario())


def test_interaction_commits(reactor: Any, run: Any, database: Database) -> None:
    async def scenario() -> None:
        pool = database.make_pool(reactor)
        t = database.table()
        await pool.run_operation(f"CREATE TABLE {t} (id INTEGER, note TEXT)")

        def insert_two(cursor: Any, note: str) -> int:
            cursor.execute(f"INSERT INTO {t} VALUES (1, {database.p})", (note,))
            cursor.execute(f"INSERT INTO {t} VALUES (2, {database.p})", (note,))
            cursor.execute(f"SELECT COUNT(*) FROM {t}")
            return int(cursor.fetchall()[0][0])

        assert await pool.run_interaction(insert_two, note="kept") == 2
        assert [tuple(r) for r in await pool.run_query(f"SELECT id, note FROM {t} ORDER BY id")] == [(1, "kept"), (2, "kept")]
        await pool.close()

    run(reactor, scenario())


def test_rollback(reactor: Any, run: Any, database: Database) -> None:
    async def scenario() -> None:
        pool = database.make_pool(reactor, max=1)  # one connection: the next calls see what it kept
        t = database.table()
        await pool.run_operation(f"CREATE TABLE {t} (id INTEGER)")
        await pool.run_operation(f"INSERT INTO {t} VALUES (1)")

        class Changed(Exception):
            pass

        def insert_then_fail(cursor: Any) -> None:
            cursor.execute(f"INSERT INTO {t} VALUES (2)")
            cursor.execute(f"DELETE FROM {t} WHERE id = 1")
            raise Changed("changed my mind")

        with pytest.raises(Changed, match="changed my mind"):
            await pool.run_interaction(insert_then_fail)
        assert [tuple(r) for r in await pool.run_query(f"SELECT id FROM {t}")] == [(1,)]

        # A database error half-way through rolls back the first half too.
        def insert_then_duplicate(cursor: Any) -> None:
            cursor.execute(f"INSERT INTO {t} VALUES (3)")
            cursor.execute(f"INSERT INTO {t}_missing VALUES (4)")

        with pytest.raises(database.module.Error):
            await pool.run_interaction(insert_then_duplicate)
        assert [tuple(r) for r in await pool.run_query(f"SELECT id FROM {t}")] == [(1,)]
        await pool.close()

    run(reactor, scenario())


def test_errors_are_failures_of_the_db_type(reactor: Any, run: Any, database: Database) -> None:
    async def scenario() -> None:
        pool = database.make_pool(reactor, max=1)
        t = database.table()
        await pool.run_operation(f"CREATE TABLE {t} (name TEXT UNIQUE)")
        await pool.run_operation(f"INSERT INTO {t} VALUES ({database.p})", ("ann",))
        d = pool.run_operation(f"INSERT INTO {t} VALUES ({database.p})", ("ann",))
        failures: list[Any] = []
        d.add_errback(lambda failure: failures.append(failure))
        await d
        assert failures and failures[0].check(database.module.IntegrityError)
        with pytest.raises(database.module.Error) as info:
            await pool.run_query("SELEC nothing")
        assert not isinstance(info.value, database.module.IntegrityError)
        # Errors on a live connection do not cost the connection: the same one serves on.
        assert pool.open_connections == 1
        assert [tuple(r) for r in await pool.run_query(f"SELECT name FROM {t}")] == [("ann",)]
        await pool.close()

    run(reactor, scenario())


def test_reconnect(reactor: Any, run: Any, database: Database) -> None:
    """The connection dropped behind the pool's back (sqlite3: its connection object closed;
    PostgreSQL: its backend ended with pg_terminate_backend) and replaced on the next call."""

    async def scenario() -> None:
        pool = database.make_pool(reactor, min=1, max=1)
        t = database.table()
        await pool.run_operation(f"CREATE TABLE {t} (id INTEGER)")

        def connection_id(cursor: Any) -> int:
            return id(cursor.connection)

        first = await pool.run_interaction(connection_id)
        # A query on a dropped connection: retried once on a new one, the caller sees only the rows.
        await database.drop(reactor, pool)
        await pool.run_operation(f"INSERT INTO {t} VALUES (1)")
        assert [tuple(r) for r in await pool.run_query(f"SELECT id FROM {t}")] == [(1,)]
        second = await pool.run_interaction(connection_id)
        assert pool.open_connections == 1
        # An interaction on a dropped connection is never retried: it fails with the driver's error...
        await database.drop(reactor, pool)
        ran: list[int] = []

        def insert(cursor: Any) -> None:
            ran.append(1)
            cursor.execute(f"INSERT INTO {t} VALUES (2)")

        with pytest.raises(database.dead_errors):
            await pool.run_interaction(insert)
        assert len(ran) <= 1
        # ... and the next call gets a fresh connection.
        await pool.run_interaction(insert)
        assert [tuple(r) for r in await pool.run_query(f"SELECT id FROM {t} ORDER BY id")] == [(1,), (2,)]
        assert pool.open_connections == 1
        del first, second
        await pool.close()

    run(reactor, scenario())


def test_close_waits_then_refuses(reactor: Any, run: Any, database: Database) -> None:
    async def scenario() -> None:
        pool = database.make_pool(reactor, max=2)
        release = threading.Event()
        entered = Deferred[None]()

        def slow(cursor: Any) -> str:
            reactor.call_from_thread(entered.callback, None)
            assert release.wait(BARRIER_TIMEOUT)
            cursor.execute("SELECT 1")
            return "finished"

        in_flight = pool.run_interaction(slow)
        await entered
        closing = pool.close()
        assert pool.closed and not closing.called  # waits for the call in flight
        with pytest.raises(PoolClosedError, match="is closed"):
            await pool.run_query("SELECT 1")
        release.set()
        assert await in_flight == "finished"
        await closing
        assert pool.open_connections == 0
        await pool.close()  # idempotent
        with pytest.raises(PoolClosedError):
            await pool.run_interaction(slow)

    run(reactor, scenario())


def test_reactor_shutdown_closes_pool(reactor: Any, database: Database) -> None:
    """reactor.stop() with a call in flight: the call finishes, then every connection closes,
    before the reactor's thread pool stops; calls afterwards fail with PoolClosedError. Every
    file (sqlite3's database, -wal and -shm) and socket (PostgreSQL's connections) is closed."""
    before = fd_set()
    pool = database.make_pool(reactor, min=2, max=3)
    release = threading.Event()
    outcome: list[Any] = []
    kept: list[Any] = []

    def slow(cursor: Any) -> str:
        kept.append(cursor.connection)
        reactor.call_from_thread(reactor.stop)
        assert release.wait(BARRIER_TIMEOUT)
        return "finished"

    def start() -> None:
        pool.run_interaction(slow).add_both(outcome.append)
        # Runs in the same before-shutdown phase as the pool's close, which waits for `slow`.
        reactor.add_system_event_trigger("before", "shutdown", release.set)

    reactor.call_when_running(start)
    guard = reactor.call_later(30, reactor.stop)
    reactor.run()
    if guard.active():
        guard.cancel()
    assert outcome == ["finished"]
    assert pool.closed and pool.open_connections == 0
    assert not pool.running
    with pytest.raises(database.module.Error):  # the connection object itself was closed
        kept[0].cursor().execute("SELECT 1")
    failures: list[Any] = []
    pool.run_query("SELECT 1").add_errback(failures.append)
    assert failures and failures[0].check(PoolClosedError)
    assert fd_set() - before == set()


def test_service(reactor: Any, run: Any, database: Database) -> None:
    async def scenario() -> None:
        pool = database.make_pool(reactor, min=2, max=4)
        assert pool.name is None and pool.running is False
        pool.name = "db"
        await pool.start_service()
        assert pool.running and pool.open_connections == 2
        assert [tuple(r) for r in await pool.run_query("SELECT 1")] == [(1,)]
        await pool.stop_service()
        assert not pool.running and pool.closed and pool.open_connections == 0

    run(reactor, scenario())


# -- sqlite3 only ---------------------------------------------------------------------------


def test_a_service_in_a_multiservice(reactor: Any, run: Any, tmp_path: Path) -> None:
    """The pool as net.service sees it: an IService (both the Protocol and the zope interface),
    started before and stopped after the services that need it."""
    from zope.interface.verify import verifyObject

    from net.interfaces import IService as IServiceInterface
    from net.service import IService, MultiService, Service

    pool = ConnectionPool("sqlite3", str(tmp_path / "m.db"), min=2, reactor=reactor)
    assert isinstance(pool, IService) and verifyObject(IServiceInterface, pool)
    seen: list[tuple[str, int]] = []

    class User(Service):
        def start_service(self) -> None:
            super().start_service()
            seen.append(("start", pool.open_connections))

        def stop_service(self) -> None:
            super().stop_service()
            seen.append(("stop", pool.open_connections))

    top = MultiService(pool, User())

    async def scenario() -> None:
        await top.start_service()
        assert pool.running
        await top.stop_service()
        assert not pool.running and pool.closed

    run(reactor, scenario())
    assert seen == [("start", 2), ("stop", 2)]  # the pool was up for its user, both ways
    assert pool.open_connections == 0


def test_sqlite_settings(reactor: Any, run: Any, tmp_path: Path) -> None:
    """WAL mode, a busy timeout, and connections that may serve any pool thread."""
    pool = ConnectionPool("sqlite3", str(tmp_path / "s.db"), reactor=reactor)

    def settings(cursor: Any) -> tuple[str, int]:
        cursor.execute("PRAGMA journal_mode")
        mode = cursor.fetchall()[0][0]
        cursor.execute("PRAGMA busy_timeout")
        return mode, cursor.fetchall()[0][0]

    async def scenario() -> None:
        assert await pool.run_interaction(settings) == ("wal", 10_000)
        # The pool hands a connection from thread to thread, so sqlite3's same-thread check is
        # off: this connection, opened in a pool thread, answers in the reactor thread too.
        connection = await pool.run_interaction(lambda cursor: cursor.connection)
        assert connection.execute("SELECT 7").fetchall() == [(7,)]
        await pool.close()

    run(reactor, scenario())


def test_busy_writer_waits_instead_of_failing(reactor: Any, run: Any, tmp_path: Path) -> None:
    """Two writers at once: the second waits on the busy timeout for the first's commit rather
    than failing at once with "database is locked". The first commits only once the second's
    INSERT has started (sqlite3's trace callback says so), so the second does meet the lock."""
    pool = ConnectionPool("sqlite3", str(tmp_path / "w.db"), max=2, reactor=reactor)
    first_holds_lock = threading.Event()
    second_started = threading.Event()

    def first(cursor: Any) -> None:
        cursor.execute("INSERT INTO t VALUES (1)")  # holds the write lock from here to commit
        first_holds_lock.set()
        assert second_started.wait(BARRIER_TIMEOUT)

    def second(cursor: Any) -> None:
        assert first_holds_lock.wait(BARRIER_TIMEOUT)
        connection = cursor.connection
        def trace(sql: str) -> None:
            if sql.startswith("INSERT"):
                second_started.set()

        connection.set_trace_callback(trace)
        try:
            cursor.execute("INSERT INTO t VALUES (2)")
        finally:
            connection.set_trace_callback(None)

    async def scenario() -> None:
        await pool.run_operation("CREATE TABLE t (id INTEGER)")
        await gather(pool.run_interaction(first), pool.run_interaction(second))
        assert sorted(tuple(r) for r in await pool.run_query("SELECT id FROM t")) == [(1,), (2,)]
        await pool.close()

    run(reactor, scenario())


def test_named_parameters(reactor: Any, run: Any, tmp_path: Path) -> None:
    pool = ConnectionPool("sqlite3", str(tmp_path / "n.db"), reactor=reactor)

    async def scenario() -> None:
        rows = await pool.run_query("SELECT :a + :b", {"a": 2, "b": 3})
        assert rows == [(5,)]
        await pool.close()

    run(reactor, scenario())


def test_connect_failure_fails_start(reactor: Any, run: Any, tmp_path: Path) -> None:
    pool = ConnectionPool("sqlite3", str(tmp_path / "no" / "such" / "dir.db"), reactor=reactor)

    async def scenario() -> None:
        with pytest.raises(sqlite3.OperationalError, match="unable to open"):
            await pool.start_service()
        with pytest.raises(sqlite3.OperationalError):
            await pool.run_query("SELECT 1")
        assert pool.open_connections == 0
        await pool.close()

    run(reactor, scenario())


def test_bad_arguments_say_what_to_do(reactor: Any) -> None:
    with pytest.raises(TypeError, match="reactor=reactor"):
        ConnectionPool("sqlite3", "x.db")
    with pytest.raises(ValueError, match="own empty database"):
        ConnectionPool("sqlite3", ":memory:", reactor=reactor)
    with pytest.raises(ValueError, match="min <= max"):
        ConnectionPool("sqlite3", "x.db", min=3, max=2, reactor=reactor)
    with pytest.raises(ModuleNotFoundError):
        ConnectionPool("no_such_db_module", reactor=reactor)
    ConnectionPool("sqlite3", ":memory:", max=1, reactor=reactor).close()


# -- the example -------------------------------------------------------------------------------

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_example_runs(tmp_path: Path) -> None:
    """examples/adbapi_demo.py as a user runs it: the batch with a duplicate is refused whole."""
    import subprocess
    import sys

    path = tmp_path / "library.db"
    out = subprocess.run([sys.executable, str(EXAMPLES / "adbapi_demo.py"), str(path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "added 2 books in one transaction; 3 in all" in out.stdout
    assert "batch refused with sqlite3.IntegrityError" in out.stdout
    assert "still 3 books" in out.stdout
    assert "pool closed" in out.stdout
    with sqlite3.connect(path) as db:  # what the example committed is on disk; the refused batch is not
        titles = sorted(row[0] for row in db.execute("SELECT title FROM books"))
    assert titles == ["Solaris", "The Dispossessed", "The Left Hand of Darkness"]


def test_example_app_for_the_runner(reactor: Any, tmp_path: Path) -> None:
    """The example's ``app(context)`` as ``pbroker serve adbapi_demo:app`` runs it: started once
    the reactor runs, stopped by a before-shutdown trigger; the pool, first in the MultiService,
    closes only after the listener has stopped."""
    import logging
    import sys

    import broker
    from broker.runner import AppContext

    sys.path.insert(0, str(EXAMPLES))
    try:
        import adbapi_demo
    finally:
        sys.path.remove(str(EXAMPLES))
    context = AppContext(reactor, ["tcp:0:interface=127.0.0.1"], [], logging.getLogger("test"), str(tmp_path))
    top = adbapi_demo.app(context)
    children: list[Any] = list(top)
    pool, listener = children
    answers: list[Any] = []

    async def client() -> None:
        await top.start_service()
        remote = await broker.connect(reactor, f"tcp:127.0.0.1:{listener.port.get_host().port}")
        await remote.call_remote("add_book", "Solaris", "Lem", 1961)
        answers.append(await remote.call_remote("books_by", "Lem"))
        remote.session.disconnect()
        reactor.stop()

    closed_when_listener_stopped: list[bool] = []
    stop_listener = listener.stop_service

    def stopping() -> Any:
        return stop_listener().add_callback(lambda _: closed_when_listener_stopped.append(pool.closed))

    listener.stop_service = stopping
    reactor.call_when_running(lambda: ensure_deferred(client()).add_errback(answers.append))
    reactor.add_system_event_trigger("before", "shutdown", top.stop_service)
    guard = reactor.call_later(30, reactor.stop)
    reactor.run()
    if guard.active():
        guard.cancel()
    assert answers == [[["Solaris", 1961]]]
    assert closed_when_listener_stopped == [False] and pool.closed
    assert (tmp_path / "library.db").exists()
