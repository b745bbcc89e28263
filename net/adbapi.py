"""A pool of DB-API 2.0 connections whose blocking calls run on the reactor's thread pool.

Like ``twisted.enterprise.adbapi``, in snake_case. The reactor thread never blocks on the
database: every call runs in a worker of the reactor's thread pool (``defer_to_thread``) and its
Deferred fires back in the reactor thread.

::

    pool = ConnectionPool("sqlite3", "app.db", reactor=reactor)          # or "psycopg", "dbname=app"
    rows = await pool.run_query("SELECT name FROM users WHERE id = ?", (7,))
    await pool.run_operation("UPDATE users SET seen = ? WHERE id = ?", (now, 7))
    total = await pool.run_interaction(transfer, src, dst, amount)        # transfer(cursor, ...)

The rules:

* **At most ``max`` connections**, and at most ``max`` calls in the pool's workers at once (a
  ``DeferredSemaphore`` queues the rest in the reactor thread, so a burst of calls does not occupy
  the whole shared thread pool). ``min`` connections are opened when the reactor starts (or by
  :meth:`start_service`); the others as the load needs them, one per worker thread.
* **A connection is used by one thread at a time.** A call takes an idle connection (preferring
  the one its thread used last, so each worker keeps "its" connection) and gives it back when the
  call ends. Since the reactor's pool may have more threads than ``max``, a connection can move
  to another thread between calls; that is why the pool opens sqlite3 connections with
  ``check_same_thread=False`` (the pool, not sqlite3's check, guarantees the exclusive use).
* **Every call is one transaction**: commit when it returns, rollback when it raises. The
  exception reaches the caller as the Deferred's Failure, of the database's own type
  (``sqlite3.IntegrityError``, ``psycopg.errors.UniqueViolation``, ...).
* **Reconnection.** When a call fails with one of the driver's errors, the pool checks the
  connection (``closed``/``broken`` attributes, else a ``ping_sql`` round trip). A dead one is
  closed and forgotten. :meth:`run_query` and :meth:`run_operation` are then retried once on a
  fresh connection: they are one statement, so nothing of them was committed. An interaction is
  **never** retried: the function may have done work (sent mail, changed objects) before the
  connection died, so it fails with the driver's error and the caller decides; the next call
  gets a fresh connection.
* **Closing.** :meth:`close` refuses new calls (they fail with :class:`PoolClosedError`), waits
  for the calls already queued or running, then closes every connection. It runs by itself
  before the reactor's shutdown, so a stopping reactor closes the pool before it stops its
  threads -- unless the pool was started as a service (:meth:`start_service`): then its parent
  service stops it, in its turn. Cancelling a call's Deferred does not stop the call in the
  database; the connection stays busy until it ends.

sqlite3 gets WAL mode (readers do not block the writer), a busy timeout (``timeout=``, default
10 s), autocommit mode with an explicit ``BEGIN`` per call (so a read-only interaction also sees
one snapshot), and ``BEGIN IMMEDIATE`` for :meth:`run_operation` (it writes: take the write lock
first rather than fail to upgrade a read lock later). ``":memory:"`` is refused with ``max > 1``:
each connection would see its own empty database.

A ConnectionPool is also an ``IService`` (``start_service``/``stop_service``, ``name``,
``running``), so an application can put it in its ``MultiService``. See docs/DATABASE.md.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from zope.interface import implementer

from .defer import Deferred, DeferredSemaphore, Failure, fail, succeed
from .error import NetError
from .interfaces import IService

if TYPE_CHECKING:
    from ._reactorbase import ReactorBase

__all__ = ["ConnectionPool", "PoolClosedError"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")
Params = Sequence[Any] | Mapping[str, Any]


class PoolClosedError(NetError):
    """A call on a ConnectionPool after :meth:`ConnectionPool.close` (or the reactor's shutdown)."""


@implementer(IService)
class ConnectionPool:
    """DB-API 2.0 connections of module ``module_name``, used from the reactor's thread pool.

    ``connect_args``/``connect_kwargs`` go to ``module.connect`` for every connection. ``reactor``
    is required: its thread pool runs the calls and its shutdown closes the pool. (Raise the
    reactor's pool with ``reactor.set_thread_pool_size`` if ``max`` exceeds it, default 10.)
    ``ping_sql`` checks a connection's life after an error.
    """

    def __init__(
        self,
        module_name: str,
        *connect_args: Any,
        min: int = 1,  # noqa: A002 - the fixed API (and Twisted's) names them min/max
        max: int = 5,  # noqa: A002
        reactor: ReactorBase | None = None,
        ping_sql: str = "SELECT 1",
        **connect_kwargs: Any,
    ) -> None:
        if reactor is None:
            raise TypeError(
                f"ConnectionPool needs the reactor whose thread pool runs the calls: "
                f"ConnectionPool({module_name!r}, ..., reactor=reactor)"
            )
        if max < 1 or min < 0 or min > max:
            raise ValueError(f"ConnectionPool needs 0 <= min <= max and max >= 1; got min={min}, max={max}")
        self.module_name = module_name
        self.module: Any = importlib.import_module(module_name)
        self.min = min
        self.max = max
        self.ping_sql = ping_sql
        #: IService attributes (net.service): the pool is a service of the application.
        self.name: str | None = None
        self.running = False
        self._reactor = reactor
        self._sqlite = module_name == "sqlite3"
        if self._sqlite:
            connect_kwargs = _sqlite_connect_kwargs(connect_args, connect_kwargs, max)
        self._connect_args = connect_args
        self._connect_kwargs = connect_kwargs
        # Thread side (guarded by _lock): idle connections, and which thread used each last.
        self._lock = threading.Condition(threading.Lock())
        self._idle: list[Any] = []
        self._connect_lock = threading.Lock()
        self._last_thread: dict[int, int] = {}  # id(connection) -> thread ident
        self._open = 0  # connections open (idle or in use)
        self._discarding = False  # close() began: connections given back are closed, not kept
        # Reactor side.
        self._slots = DeferredSemaphore(max)
        self._pending = 0  # calls queued or running
        self._drained: list[Deferred[None]] = []
        self._closed = False
        self._closing: Deferred[None] | None = None
        self._close_waiters: list[Deferred[None]] = []
        self._close_result: object = _NOT_YET
        self._started = False
        self._start_waiters: list[Deferred[None]] = []
        self._shutdown_trigger: object | None = reactor.add_system_event_trigger("before", "shutdown", self._on_shutdown)
        reactor.call_when_running(self._start_quietly)

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self._open} open"
        return f"<ConnectionPool {self.module_name} max={self.max} {state}>"

    @property
    def open_connections(self) -> int:
        """How many connections are open now (idle or in use): never more than ``max``."""
        with self._lock:
            return self._open

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called (or the reactor shut down): calls then fail."""
        return self._closed

    # -- the API ---------------------------------------------------------------------------------

    def run_query(self, sql: str, params: Params = ()) -> Deferred[list[Any]]:
        """Execute ``sql`` (with ``params``, in the driver's paramstyle) and fire with all its
        rows (``[]`` for a statement without a result set). Retried once on a dropped connection."""
        return self._submit(self._query_body(sql, params), retry=True, begin="BEGIN")

    def run_operation(self, sql: str, params: Params = ()) -> Deferred[None]:
        """Execute ``sql`` for its effect and fire with None once committed. Retried once on a
        dropped connection."""
        def body(cursor: Any) -> None:
            cursor.execute(sql, params)

        return self._submit(body, retry=True, begin="BEGIN IMMEDIATE")

    def run_interaction(self, f: Callable[..., _T], *args: Any, **kwargs: Any) -> Deferred[_T]:
        """Call ``f(cursor, *args, **kwargs)`` in a worker thread inside one transaction: commit
        when it returns (the Deferred fires with its result), rollback when it raises (the
        Deferred fails with that exception). ``f`` must not touch the reactor (it runs in a
        worker): return what the reactor side needs. Never retried (see the module doc)."""
        return self._submit(lambda cursor: f(cursor, *args, **kwargs), retry=False, begin="BEGIN")

    def start(self) -> Deferred[None]:
        """Open the ``min`` connections (once); fires when they are open, fails if one could not
        be opened. Runs by itself when the reactor starts."""
        if self._closed:
            return fail(PoolClosedError(f"{self!r}: start() after close()"))
        if self._started:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._start_waiters.append(d)
        if len(self._start_waiters) == 1:  # not opening yet
            self._track(self._reactor.defer_to_thread(self._open_min)).add_both(self._start_done)
        return d

    def close(self) -> Deferred[None]:
        """Refuse new calls, let the queued and running ones finish, close every connection.
        Idempotent: every call returns a Deferred firing when the pool is closed."""
        if self._closing is None:
            self._closed = True
            self.running = False
            if self._shutdown_trigger is not None:
                trigger, self._shutdown_trigger = self._shutdown_trigger, None
                try:
                    self._reactor.remove_system_event_trigger(trigger)
                except ValueError:  # it is this very trigger that is running
                    pass
            self._closing = self._wait_drained().add_callback(self._close_connections).add_both(self._close_done)
        d: Deferred[None] = Deferred()
        if self._close_result is _NOT_YET:
            self._close_waiters.append(d)
        else:
            _fire(d, self._close_result)
        return d

    # -- IService --------------------------------------------------------------------------------

    def start_service(self) -> Deferred[None]:
        """IService: open the ``min`` connections; fails if the database cannot be reached.

        From here on whoever started the service stops it: the pool no longer closes itself at
        the reactor's shutdown, so a MultiService that holds it before the services using it
        closes it after they have stopped (and they may still query while stopping)."""
        self.running = True
        if self._shutdown_trigger is not None:
            trigger, self._shutdown_trigger = self._shutdown_trigger, None
            self._reactor.remove_system_event_trigger(trigger)
        return self.start()

    def stop_service(self) -> Deferred[None]:
        """IService: :meth:`close`."""
        return self.close()

    # -- reactor side ----------------------------------------------------------------------------

    def _submit(self, body: Callable[[Any], _T], *, retry: bool, begin: str) -> Deferred[_T]:
        if self._closed:
            return fail(PoolClosedError(
                f"{self!r} is closed (close() was called, or the reactor shut down): "
                f"make a new ConnectionPool to use the database again"
            ))
        d = self._slots.run(self._reactor.defer_to_thread, self._in_thread, body, retry, begin)
        return self._track(d)

    def _track(self, d: Deferred[_T]) -> Deferred[_T]:
        """Count ``d`` as pending work until it fires (close waits for it)."""
        self._pending += 1

        def done(result: Any) -> Any:
            self._pending -= 1
            if self._pending == 0:
                waiters, self._drained = self._drained, []
                for waiter in waiters:
                    waiter.callback(None)
            return result

        return d.add_both(done)

    def _wait_drained(self) -> Deferred[None]:
        if self._pending == 0:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._drained.append(d)
        return d

    def _close_connections(self, _: object) -> Deferred[None] | None:
        with self._lock:
            self._discarding = True
        if self._reactor.running and self.open_connections:
            return self._reactor.defer_to_thread(self._close_idle)
        self._close_idle()  # no loop to come back to: closing sqlite/psycopg connections is quick
        return None

    def _start_done(self, result: object) -> None:
        # A failure leaves the pool unstarted: a later start() (or call) tries again.
        self._started = not isinstance(result, Failure)
        waiters, self._start_waiters = self._start_waiters, []
        for waiter in waiters:
            _fire(waiter, result)

    def _close_done(self, result: object) -> None:
        self._close_result = result
        waiters, self._close_waiters = self._close_waiters, []
        for waiter in waiters:
            _fire(waiter, result)

    def _on_shutdown(self) -> Deferred[None]:
        self._shutdown_trigger = None  # fired: nothing to remove any more
        return self.close()

    def _start_quietly(self) -> None:
        if self._closed or self._started or self._start_waiters:
            return
        self.start().add_errback(lambda failure: log.error(
            "%r could not open its %d connection(s) at startup (calls will try again): %s",
            self, self.min, failure.value))

    # -- thread side -----------------------------------------------------------------------------

    def _query_body(self, sql: str, params: Params) -> Callable[[Any], list[Any]]:
        def body(cursor: Any) -> list[Any]:
            cursor.execute(sql, params)
            return list(cursor.fetchall()) if cursor.description is not None else []

        return body

    def _in_thread(self, body: Callable[[Any], _T], retry: bool, begin: str) -> _T:
        for attempt in (1, 2):
            connection = self._checkout()
            try:
                result = self._transaction(connection, body, begin)
            except self.module.Error as exc:
                if not self._is_dead(connection):
                    self._checkin(connection)
                    raise
                self._discard(connection)
                if not retry or attempt == 2:
                    raise
                log.warning("%r: the connection was dropped (%s); retrying once on a new one", self, exc)
                continue
            except BaseException:
                self._checkin(connection)
                raise
            self._checkin(connection)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _transaction(self, connection: Any, body: Callable[[Any], _T], begin: str) -> _T:
        cursor = connection.cursor()
        try:
            if self._sqlite:
                cursor.execute(begin)
            result = body(cursor)
            connection.commit()
            return result
        except BaseException:
            try:
                connection.rollback()
            except Exception as exc:  # a dead connection: _is_dead will tell
                log.debug("%r: rollback failed: %s", self, exc)
            raise
        finally:
            try:
                cursor.close()
            except Exception:
                pass

    def _is_dead(self, connection: Any) -> bool:
        """Whether ``connection`` is unusable (then it is replaced), after one of its errors."""
        if getattr(connection, "closed", False) or getattr(connection, "broken", False):
            return True
        try:
            cursor = connection.cursor()
            try:
                cursor.execute(self.ping_sql)
                cursor.fetchall()
            finally:
                cursor.close()
            connection.rollback()
        except Exception:
            return True
        return False

    def _connect(self) -> Any:
        # One at a time: two sqlite3 connections switching a new file to WAL together make one
        # fail with "database is locked" (that switch does not wait on the busy timeout).
        with self._connect_lock:
            connection = self.module.connect(*self._connect_args, **self._connect_kwargs)
            if self._sqlite:
                try:
                    # WAL is a property of the file: set once, every later connection finds it.
                    if connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                        connection.execute("PRAGMA journal_mode=WAL")
                except BaseException:
                    connection.close()
                    raise
            return connection

    def _checkout(self) -> Any:
        me = threading.get_ident()
        with self._lock:
            if self._idle:
                # The connection this thread used last, else the most recently used one.
                for i in range(len(self._idle) - 1, -1, -1):
                    if self._last_thread.get(id(self._idle[i])) == me:
                        return self._idle.pop(i)
                return self._idle.pop()
            # The semaphore admits at most max calls; only the startup's min connections, still
            # on their way in, can make this wait.
            while self._open >= self.max and not self._idle:
                self._lock.wait()
            if self._idle:
                return self._idle.pop()
            self._open += 1
        try:
            return self._connect()
        except BaseException:
            with self._lock:
                self._open -= 1
                self._lock.notify()
            raise

    def _checkin(self, connection: Any) -> None:
        with self._lock:
            self._last_thread[id(connection)] = threading.get_ident()
            if not self._discarding:
                self._idle.append(connection)
                self._lock.notify()
                return
        self._discard(connection)

    def _discard(self, connection: Any) -> None:
        with self._lock:
            self._open -= 1
            self._last_thread.pop(id(connection), None)
            self._lock.notify()
        try:
            connection.close()
        except Exception as exc:
            log.debug("%r: closing a connection failed: %s", self, exc)

    def _open_min(self) -> None:
        with self._lock:
            wanted = self.min - self._open
            if wanted <= 0:
                return
            self._open += wanted
        opened = []
        try:
            for _ in range(wanted):
                opened.append(self._connect())
        except BaseException:
            with self._lock:
                self._open -= wanted - len(opened)
                self._lock.notify_all()
            for connection in opened:
                self._checkin(connection)
            raise
        for connection in opened:
            self._checkin(connection)

    def _close_idle(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            self._discard(connection)


_NOT_YET = object()


def _fire(d: Deferred[None], result: object) -> None:
    if isinstance(result, Failure):
        d.errback(result)
    else:
        d.callback(None)


def _sqlite_connect_kwargs(args: tuple[Any, ...], kwargs: dict[str, Any], max_connections: int) -> dict[str, Any]:
    """sqlite3.connect options for a pool: see the module doc for why each one."""
    database = args[0] if args else kwargs.get("database")
    if max_connections > 1 and (database == ":memory:" or database == ""):
        raise ValueError(
            "ConnectionPool('sqlite3', ':memory:') with max > 1 would give each connection its own "
            "empty database: use a file path, or max=1"
        )
    kwargs = dict(kwargs)
    kwargs.setdefault("check_same_thread", False)
    kwargs.setdefault("timeout", 10.0)
    kwargs.setdefault("isolation_level", None)
    return kwargs
