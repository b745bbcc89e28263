"""The PostgreSQL-only cases, against a real server that tests/postgres_server.py starts (psycopg
3), on every reactor backend: cred.sqlstore on PostgreSQL. The scenarios every DB-API backend
passes, PostgreSQL included, are in tests/test_adbapi.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from postgres_server import PostgresServer, postgres  # noqa: F401  (postgres: a fixture)

from net.adbapi import ConnectionPool


def test_sql_user_database_on_postgres(reactor: Any, run: Any, postgres: PostgresServer) -> None:
    """cred.sqlstore with psycopg's %s placeholders, and UserExists from a UNIQUE violation."""
    from cred.credentials import UsernamePassword
    from cred.error import UnauthorizedLogin
    from cred.sqlstore import SQLUserDatabase, UserExists

    pool = ConnectionPool("psycopg", postgres.conninfo, reactor=reactor)
    users = SQLUserDatabase(pool, table=f"users_{reactor.__class__.__name__.lower()}_{id(reactor)}",
                            iterations=4096)

    async def scenario() -> None:
        await users.create_table()
        await users.add_user("alice", "s3cret ✓")
        with pytest.raises(UserExists):
            await users.add_user("alice", "other")
        assert await users.check_password("alice", "s3cret ✓") is True
        assert await users.check_password("alice", "wrong") is False
        assert await users.request_avatar_id(UsernamePassword("alice", "s3cret ✓")) == "alice"
        with pytest.raises(UnauthorizedLogin):
            await users.request_avatar_id(UsernamePassword("bob", "s3cret ✓"))
        assert await users.users() == ["alice"]
        await users.remove_user("alice")
        assert await users.users() == []
        await pool.close()

    run(reactor, scenario())
