"""A user database in an SQL table of SCRAM verifiers, on a DB-API connection pool.

The table holds what a user file (`cred.userfile`) holds, one row per user::

    CREATE TABLE users (username TEXT PRIMARY KEY, verifier TEXT NOT NULL)
    -- verifier: SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>  (base64 values)

Usernames are stored SASLprepared; never a password or anything password-equivalent, so a
leaked database only allows offline guessing, slowed by PBKDF2.

Every method returns a Deferred: the pool (``net.adbapi.ConnectionPool``, or anything with its
three methods, :class:`Pool`) runs the SQL in its worker threads. The PBKDF2 that
``add_user``/``set_password``/``check_password`` need runs there too, inside the interaction,
so a login with a password never stalls the reactor for tens of milliseconds. An unknown user
costs the same PBKDF2 as a known one (against an unmatchable verifier): no timing oracle.

``cred`` may use only ``net.defer`` of ``net``: the pool is taken by its shape, not imported.
The SQL placeholders follow the pool's driver (``pool.module.paramstyle``: ``?`` for sqlite3,
``%s`` for psycopg), or ``paramstyle=``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from zope.interface import implementer

from cred.checkers import AvatarId, ICredentialsChecker, IScramVerifierSource, _unmatchable_verifier
from cred.credentials import IUsernamePassword, IUsernameScramSha256
from cred.error import UnauthorizedLogin
from cred.scram import DEFAULT_ITERATIONS, ScramVerifier, normalize_username
from net.defer import Deferred, fail, succeed

__all__ = ["NoSuchUser", "Pool", "SQLUserDatabase", "UserExists"]

_T = TypeVar("_T")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_PLACEHOLDERS: dict[str, Callable[[int], str]] = {
    "qmark": lambda i: "?",
    "format": lambda i: "%s",
    "pyformat": lambda i: "%s",
    "numeric": lambda i: f":{i}",
}


class Pool(Protocol):
    """What the store needs of a connection pool: ``net.adbapi.ConnectionPool``'s three calls."""

    def run_query(self, sql: str, params: Sequence[Any] = ...) -> Deferred[list[Any]]: ...

    def run_operation(self, sql: str, params: Sequence[Any] = ...) -> Deferred[None]: ...

    def run_interaction(self, f: Callable[..., _T], *args: Any, **kwargs: Any) -> Deferred[_T]: ...


class UserExists(ValueError):
    """``add_user`` of a name the table has already (a ValueError, as the other stores raise)."""


class NoSuchUser(KeyError):
    """``set_password``/``remove_user`` of a name the table does not have (a KeyError, as the
    other stores raise)."""


@implementer(ICredentialsChecker, IScramVerifierSource)
class SQLUserDatabase:
    """SCRAM verifiers in table ``table`` of the pool's database: a checker for the Portal
    (SCRAM proofs and cleartext passwords) and the verifier source of the broker's SCRAM login.

    Call :meth:`create_table` once (it is idempotent) before the first use.
    """

    credential_interfaces = (IUsernamePassword, IUsernameScramSha256)

    def __init__(
        self,
        pool: Pool,
        *,
        table: str = "users",
        iterations: int = DEFAULT_ITERATIONS,
        paramstyle: str | None = None,
    ) -> None:
        if not _IDENTIFIER.fullmatch(table):
            raise ValueError(f"table name {table!r} is not a plain SQL identifier (letters, digits, _)")
        if paramstyle is None:
            paramstyle = getattr(getattr(pool, "module", None), "paramstyle", "qmark")
        if paramstyle not in _PLACEHOLDERS:
            raise ValueError(
                f"paramstyle {paramstyle!r} is not supported; pass paramstyle= one of {', '.join(_PLACEHOLDERS)}"
            )
        self.pool = pool
        self.table = table
        self.default_iterations = iterations
        self._mark = _PLACEHOLDERS[paramstyle]

    def __repr__(self) -> str:
        return f"<SQLUserDatabase table={self.table!r} on {self.pool!r}>"

    def _sql(self, template: str) -> str:
        """``template`` with ``{table}`` and each ``{}`` placeholder in the driver's style."""
        marks = iter(range(1, 100))
        return re.sub(r"\{\}", lambda _m: self._mark(next(marks)), template.replace("{table}", self.table))

    # -- administration ----------------------------------------------------------------------------

    def create_table(self) -> Deferred[None]:
        """Create the table if it does not exist."""
        return self.pool.run_operation(self._sql(
            "CREATE TABLE IF NOT EXISTS {table} (username TEXT PRIMARY KEY, verifier TEXT NOT NULL)"
        ))

    def add_user(self, username: str, password: str) -> Deferred[None]:
        """Add a user; fails with UserExists if the name is taken, ValueError for a bad name."""
        try:
            name = normalize_username(username)
        except ValueError as exc:
            return fail(exc)
        select = self._sql("SELECT 1 FROM {table} WHERE username = {}")
        insert = self._sql("INSERT INTO {table} (username, verifier) VALUES ({}, {})")

        def add(cursor: Any) -> None:
            verifier = ScramVerifier.from_password(password, iterations=self.default_iterations)
            cursor.execute(select, (name,))
            if cursor.fetchall():
                raise UserExists(f"user {name!r} already exists")
            try:
                cursor.execute(insert, (name, verifier.to_string()))
            except Exception as exc:
                if _is_integrity_error(exc):  # added by someone else since our SELECT
                    raise UserExists(f"user {name!r} already exists") from exc
                raise

        return self.pool.run_interaction(add)

    def set_password(self, username: str, password: str) -> Deferred[None]:
        """Give an existing user a new password (and a new salt); fails with NoSuchUser if none."""
        try:
            name = normalize_username(username)
        except ValueError as exc:
            return fail(exc)
        update = self._sql("UPDATE {table} SET verifier = {} WHERE username = {}")

        def change(cursor: Any) -> None:
            verifier = ScramVerifier.from_password(password, iterations=self.default_iterations)
            cursor.execute(update, (verifier.to_string(), name))
            if cursor.rowcount == 0:
                raise NoSuchUser(name)

        return self.pool.run_interaction(change)

    def remove_user(self, username: str) -> Deferred[None]:
        """Remove a user; fails with NoSuchUser if there is none."""
        try:
            name = normalize_username(username)
        except ValueError as exc:
            return fail(exc)
        delete = self._sql("DELETE FROM {table} WHERE username = {}")

        def remove(cursor: Any) -> None:
            cursor.execute(delete, (name,))
            if cursor.rowcount == 0:
                raise NoSuchUser(name)

        return self.pool.run_interaction(remove)

    def users(self) -> Deferred[list[str]]:
        """Every username, sorted."""
        d = self.pool.run_query(self._sql("SELECT username FROM {table} ORDER BY username"))
        return d.add_callback(lambda rows: [str(row[0]) for row in rows])

    # -- checking ----------------------------------------------------------------------------------

    def get_scram_verifier(self, username: str) -> Deferred[ScramVerifier | None]:
        """The user's verifier, or None if there is no such user (or the name is not valid)."""
        try:
            name = normalize_username(username)
        except ValueError:
            return succeed(None)
        d = self.pool.run_query(self._sql("SELECT verifier FROM {table} WHERE username = {}"), (name,))
        return d.add_callback(self._parse_row, name)

    def _parse_row(self, rows: list[Any], name: str) -> ScramVerifier | None:
        if not rows:
            return None
        try:
            return ScramVerifier.parse(str(rows[0][0]))
        except ValueError as exc:
            raise ValueError(f"table {self.table!r}: the verifier of user {name!r} is malformed: {exc}") from None

    def check_password(self, username: str, password: str) -> Deferred[bool]:
        """Whether ``password`` is the user's (for IRC PASS, a web login form): derives the keys
        from the stored salt and compares in constant time, in a pool thread. An unknown user
        costs the same PBKDF2 and answers False."""
        try:
            name = normalize_username(username)
        except ValueError:
            return succeed(False)  # no user can have this name: nothing to leak
        select = self._sql("SELECT verifier FROM {table} WHERE username = {}")
        iterations = self.default_iterations

        def check(cursor: Any) -> bool:
            cursor.execute(select, (name,))
            verifier = self._parse_row(list(cursor.fetchall()), name)
            candidate = verifier or _unmatchable_verifier(iterations)
            return candidate.check_password(password) and verifier is not None

        return self.pool.run_interaction(check)

    def request_avatar_id(self, credentials: Any) -> Deferred[AvatarId]:
        """ICredentialsChecker: the username for a right SCRAM proof or password, else
        UnauthorizedLogin (the same for every kind of wrong)."""
        try:
            name = normalize_username(credentials.username)
        except (ValueError, TypeError, AttributeError):
            return fail(UnauthorizedLogin())
        if IUsernameScramSha256.providedBy(credentials):
            d: Deferred[bool] = self.get_scram_verifier(name).add_callback(
                lambda verifier: verifier is not None and credentials.check_verifier(verifier))
        elif IUsernamePassword.providedBy(credentials):
            d = self.check_password(name, credentials.password)
        else:
            return fail(UnauthorizedLogin())

        def decide(ok: bool) -> AvatarId:
            if not ok:
                raise UnauthorizedLogin()
            return name

        return d.add_callback(decide)


def _is_integrity_error(exc: BaseException) -> bool:
    """DB-API 2.0 names the exception for a violated constraint IntegrityError in every driver."""
    return any(cls.__name__ == "IntegrityError" for cls in type(exc).__mro__)
