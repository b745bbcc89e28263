"""cred.sqlstore's SQLUserDatabase on a net.adbapi pool over sqlite3 (in tmp_path), including a
SCRAM login through the broker over loopback with the store as the Portal's checker."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import broker
from broker import Avatar
from broker.login import IPerspective
from cred.checkers import ICredentialsChecker, IScramVerifierSource, VerifierChecker
from cred.credentials import Anonymous, UsernamePassword
from cred.error import UnauthorizedLogin
from cred.portal import Portal, Realm
from cred.scram import ScramClient, ScramServer, ScramVerifier
from cred.sqlstore import NoSuchUser, SQLUserDatabase, UserExists
from cred.userfile import format_user_file, parse_user_file
from net.adbapi import ConnectionPool
from net.defer import Deferred, gather, succeed

ITERATIONS = 4096  # the minimum a client accepts: keeps the tests fast
PASSWORD = "correct horse ✓ battery staple"
LOCAL = "tcp:0:interface=127.0.0.1"


@pytest.fixture
def reactor(reactor: Any) -> Iterator[Any]:
    """conftest's reactor; proxies in failed logins' reference cycles are collected before it closes."""
    yield reactor
    gc.collect()


def make_store(reactor: Any, path: Path, **options: Any) -> tuple[ConnectionPool, SQLUserDatabase]:
    pool = ConnectionPool("sqlite3", str(path), reactor=reactor)
    return pool, SQLUserDatabase(pool, iterations=ITERATIONS, **options)


def test_add_check_set_remove(reactor: Any, run: Any, tmp_path: Path) -> None:
    pool, users = make_store(reactor, tmp_path / "users.db")

    async def scenario() -> None:
        await users.create_table()
        await users.create_table()  # idempotent
        await users.add_user("alice", PASSWORD)
        await users.add_user("bob", "bob's password")
        assert await users.users() == ["alice", "bob"]
        assert await users.check_password("alice", PASSWORD) is True
        assert await users.check_password("alice", "wrong") is False
        assert await users.check_password("mallory", PASSWORD) is False  # unknown user
        assert await users.check_password("", PASSWORD) is False  # no user can have that name
        with pytest.raises(UserExists, match="'alice' already exists"):
            await users.add_user("alice", "another")
        assert await users.check_password("alice", PASSWORD) is True  # untouched by the refusal

        old = await users.get_scram_verifier("alice")
        await users.set_password("alice", "new password")
        new = await users.get_scram_verifier("alice")
        assert isinstance(old, ScramVerifier) and isinstance(new, ScramVerifier)
        assert new.salt != old.salt  # a new salt with the new password
        assert await users.check_password("alice", "new password") is True
        assert await users.check_password("alice", PASSWORD) is False
        with pytest.raises(NoSuchUser):
            await users.set_password("mallory", "x")

        await users.remove_user("bob")
        assert await users.users() == ["alice"]
        assert await users.get_scram_verifier("bob") is None
        with pytest.raises(NoSuchUser):
            await users.remove_user("bob")
        with pytest.raises(ValueError, match="empty"):
            await users.add_user("", "x")
        await pool.close()

    run(reactor, scenario())


def test_usernames_are_saslprepared(reactor: Any, run: Any, tmp_path: Path) -> None:
    """As in the user file: the same name typed in another Unicode form is the same user."""
    pool, users = make_store(reactor, tmp_path / "users.db")

    async def scenario() -> None:
        await users.create_table()
        await users.add_user("ＡＬＩＣＥ", PASSWORD)  # fullwidth letters: NFKC makes them ASCII
        assert await users.users() == ["ALICE"]
        assert await users.check_password("ALICE", PASSWORD) is True
        with pytest.raises(UserExists):
            await users.add_user("ALICE", "x")
        assert await users.get_scram_verifier("ＡＬＩＣＥ") is not None
        await pool.close()

    run(reactor, scenario())


def test_stored_verifiers_have_the_user_file_format(reactor: Any, run: Any, tmp_path: Path) -> None:
    """The verifier column holds exactly what a user file line holds after "username:", and no
    byte of the database files (main, WAL) holds the password."""
    path = tmp_path / "users.db"
    pool, users = make_store(reactor, path)

    async def scenario() -> list[Any]:
        await users.create_table()
        await users.add_user("alice", PASSWORD)
        rows = await pool.run_query("SELECT username, verifier FROM users")
        await pool.close()
        return rows

    rows = run(reactor, scenario())
    assert len(rows) == 1
    name, text = rows[0]
    verifier = ScramVerifier.parse(text)
    assert verifier.to_string() == text and text.startswith(f"SCRAM-SHA-256${ITERATIONS}:")
    assert parse_user_file(format_user_file({name: verifier})) == {"alice": verifier}
    assert verifier.check_password(PASSWORD)
    files = [p for p in tmp_path.iterdir() if p.name.startswith("users.db")]
    assert path in files
    for file in files:
        data = file.read_bytes()
        for form in (PASSWORD.encode("utf-8"), PASSWORD.encode("utf-16-le"), b"correct horse"):
            assert form not in data, f"{file.name} holds the password"


def test_table_name_and_paramstyle_checked(reactor: Any, tmp_path: Path) -> None:
    pool = ConnectionPool("sqlite3", str(tmp_path / "x.db"), reactor=reactor)
    with pytest.raises(ValueError, match="plain SQL identifier"):
        SQLUserDatabase(pool, table="users; DROP TABLE users")
    with pytest.raises(ValueError, match="paramstyle"):
        SQLUserDatabase(pool, paramstyle="named")
    assert SQLUserDatabase(pool, table="staff")._sql("SELECT {} FROM {table}") == "SELECT ? FROM staff"
    assert SQLUserDatabase(pool, paramstyle="format")._sql("{} {}") == "%s %s"
    pool.close()


def test_is_a_checker_and_verifier_source(reactor: Any, run: Any, tmp_path: Path) -> None:
    """Portal.login with a password (PBKDF2 in a pool thread) and with a SCRAM proof (the
    proof re-checked against the stored verifier)."""
    pool, users = make_store(reactor, tmp_path / "users.db")
    assert ICredentialsChecker.providedBy(users) and IScramVerifierSource.providedBy(users)
    portal = Portal(Realm(lambda avatar_id, mind: Avatar()), [users])

    async def scenario() -> None:
        await users.create_table()
        await users.add_user("alice", PASSWORD)
        assert await users.request_avatar_id(UsernamePassword("alice", PASSWORD)) == "alice"
        for wrong in (UsernamePassword("alice", "nope"), UsernamePassword("mallory", PASSWORD),
                      UsernamePassword("", PASSWORD), Anonymous()):
            with pytest.raises(UnauthorizedLogin):
                await users.request_avatar_id(wrong)
        # A SCRAM exchange run by hand against the store's verifier, then the proof as credentials.
        verifier = await users.get_scram_verifier("alice")
        client = ScramClient("alice", PASSWORD)
        server = ScramServer(lambda name: verifier, fake_iterations=ITERATIONS)
        final = server.server_final(client.client_final(server.server_first(client.client_first())))
        client.verify_server_final(final)
        interface, avatar, logout = await portal.login(server.credentials(), None, IPerspective)
        assert isinstance(avatar, Avatar)
        logout()
        await pool.close()

    run(reactor, scenario())


class Me(Avatar):
    def __init__(self, name: str) -> None:
        self.name = name

    def perspective_whoami(self) -> str:
        return self.name


def test_scram_login_through_the_broker(reactor: Any, run: Any, tmp_path: Path) -> None:
    """A client logs in over loopback with SCRAM; the server's verifiers come from SQL through
    the Deferred-returning get_scram_verifier. Wrong and unknown users fail alike."""
    pool, users = make_store(reactor, tmp_path / "users.db")
    portal = Portal(Realm(lambda avatar_id, mind: Me(str(avatar_id))), [users])

    async def scenario() -> None:
        await users.create_table()
        await users.add_user("alice", PASSWORD)
        await users.add_user("bob", "bob's password")
        port = await broker.serve(reactor, LOCAL, portal)
        endpoint = f"tcp:127.0.0.1:{port.get_host().port}"
        alice, bob = await gather(broker.login(reactor, endpoint, UsernamePassword("alice", PASSWORD)),
                                  broker.login(reactor, endpoint, UsernamePassword("bob", "bob's password")))
        assert await alice.call_remote("whoami") == "alice"
        assert await bob.call_remote("whoami") == "bob"
        for wrong in (UsernamePassword("alice", "wrong"), UsernamePassword("mallory", PASSWORD)):
            with pytest.raises(UnauthorizedLogin) as info:
                await broker.login(reactor, endpoint, wrong)
            assert str(info.value) == UnauthorizedLogin.MESSAGE
        # A password change takes effect on the next login, with no restart.
        await users.set_password("alice", "changed")
        with pytest.raises(UnauthorizedLogin):
            await broker.login(reactor, endpoint, UsernamePassword("alice", PASSWORD))
        again = await broker.login(reactor, endpoint, UsernamePassword("alice", "changed"))
        assert await again.call_remote("whoami") == "alice"
        for avatar in (alice, bob, again):
            avatar.session.disconnect()
        await port.stop_listening()
        await pool.close()

    run(reactor, scenario())


class AsyncSource(VerifierChecker):
    """A verifier source that answers later, as any database-backed one does."""

    default_iterations = ITERATIONS

    def __init__(self, verifiers: dict[str, ScramVerifier]) -> None:
        self.verifiers = verifiers
        self.asked: list[str] = []

    def get_scram_verifier(self, username: str) -> Deferred[ScramVerifier | None]:
        self.asked.append(username)
        return succeed(None).add_callback(lambda _: self.verifiers.get(username))


def test_verifier_checker_waits_for_an_asynchronous_source(reactor: Any, run: Any) -> None:
    source = AsyncSource({"alice": ScramVerifier.from_password(PASSWORD, iterations=ITERATIONS)})

    async def scenario() -> None:
        assert await source.request_avatar_id(UsernamePassword("alice", PASSWORD)) == "alice"
        with pytest.raises(UnauthorizedLogin):
            await source.request_avatar_id(UsernamePassword("alice", "wrong"))
        with pytest.raises(UnauthorizedLogin):
            await source.request_avatar_id(UsernamePassword("mallory", PASSWORD))
        assert source.asked == ["alice", "alice", "mallory"]

    run(reactor, scenario())
