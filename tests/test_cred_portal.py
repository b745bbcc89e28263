"""The portal: checker selection, realm results, errors, and logout exactly once."""

from __future__ import annotations

from typing import Any

import pytest
from zope.interface import Interface, implementer
from zope.interface.verify import verifyObject

from cred.checkers import ANONYMOUS, AllowAnonymousAccess, InMemoryUsernamePasswordDatabase
from cred.credentials import Anonymous, IAnonymous, IUsernamePassword, IUsernameScramSha256, UsernamePassword
from cred.error import LoginDenied, UnauthorizedLogin, UnhandledCredentials
from cred.portal import IRealm, Portal, Realm
from cred.scram import MIN_ITERATIONS, ScramClient, ScramServer
from net.defer import Deferred, Failure, succeed


def result_of(d: Deferred[Any]) -> Any:
    out: list[Any] = []
    d.add_both(out.append)
    assert out, "the Deferred has not fired"
    if isinstance(out[0], Failure):
        out[0].raise_exception()
    return out[0]


class IPerspective(Interface):
    """What logged-in users get."""


class IAdmin(Interface):
    """Something nobody gets here."""


@implementer(IPerspective)
class Avatar:
    def __init__(self, avatar_id: Any, mind: Any) -> None:
        self.avatar_id, self.mind = avatar_id, mind


@implementer(IRealm)
class RecordingRealm:
    """A realm that counts logouts."""

    def __init__(self) -> None:
        self.logouts: list[Any] = []
        self.requests = 0

    def request_avatar(self, avatar_id: Any, mind: Any, *interfaces: Any) -> Any:
        self.requests += 1
        avatar = Avatar(avatar_id, mind)
        return IPerspective, avatar, lambda: self.logouts.append(avatar_id)


@pytest.fixture
def users() -> InMemoryUsernamePasswordDatabase:
    return InMemoryUsernamePasswordDatabase({"alice": "wonderland"}, iterations=MIN_ITERATIONS)


def test_portal_picks_the_checker_by_credentials_interface(users: InMemoryUsernamePasswordDatabase) -> None:
    portal = Portal(Realm(Avatar), [users, AllowAnonymousAccess()])
    interface, avatar, logout = result_of(portal.login(UsernamePassword("alice", "wonderland"), "mind", IPerspective))
    assert interface is IPerspective and avatar.avatar_id == "alice" and avatar.mind == "mind"
    _, anonymous, _ = result_of(portal.login(Anonymous(), None, IPerspective))
    assert anonymous.avatar_id is ANONYMOUS
    assert portal.list_credentials_interfaces() == [IUsernamePassword, IUsernameScramSha256, IAnonymous]


def test_register_checker_for_chosen_interfaces(users: InMemoryUsernamePasswordDatabase) -> None:
    portal = Portal(Realm(Avatar))
    portal.register_checker(users, IUsernamePassword)
    assert portal.list_credentials_interfaces() == [IUsernamePassword]
    with pytest.raises(TypeError):
        portal.register_checker(object())  # type: ignore[arg-type]


def test_unhandled_credentials(users: InMemoryUsernamePasswordDatabase) -> None:
    portal = Portal(Realm(Avatar), [users])
    with pytest.raises(UnhandledCredentials, match="IAnonymous"):
        result_of(portal.login(Anonymous(), None, IPerspective))
    with pytest.raises(UnhandledCredentials):
        result_of(portal.login(object(), None, IPerspective))


def test_bad_credentials_never_reach_the_realm(users: InMemoryUsernamePasswordDatabase) -> None:
    realm = RecordingRealm()
    portal = Portal(realm, [users])
    with pytest.raises(UnauthorizedLogin):
        result_of(portal.login(UsernamePassword("alice", "nope"), None, IPerspective))
    assert realm.requests == 0


def test_logout_runs_exactly_once(users: InMemoryUsernamePasswordDatabase) -> None:
    realm = RecordingRealm()
    assert verifyObject(IRealm, realm)
    _, _, logout = result_of(Portal(realm, [users]).login(UsernamePassword("alice", "wonderland"), None, IPerspective))
    logout()  # explicit logout ...
    logout()  # ... and then the disconnect
    assert realm.logouts == ["alice"]


def test_realm_helper_logout_and_denial(users: InMemoryUsernamePasswordDatabase) -> None:
    logged_out: list[Any] = []
    portal = Portal(Realm(Avatar, on_logout=logged_out.append), [users])
    _, avatar, logout = result_of(portal.login(UsernamePassword("alice", "wonderland"), None, IAdmin, IPerspective))
    logout()
    logout()
    assert logged_out == [avatar]
    with pytest.raises(LoginDenied):
        result_of(portal.login(UsernamePassword("alice", "wonderland"), None, IAdmin))


def test_realm_may_return_a_deferred(users: InMemoryUsernamePasswordDatabase) -> None:
    @implementer(IRealm)
    class DeferringRealm:
        def request_avatar(self, avatar_id: Any, mind: Any, *interfaces: Any) -> Any:
            return succeed((IPerspective, Avatar(avatar_id, mind), lambda: None))

    _, avatar, _ = result_of(Portal(DeferringRealm(), [users]).login(
        UsernamePassword("alice", "wonderland"), None, IPerspective))
    assert avatar.avatar_id == "alice"


def test_realm_bugs_are_caught(users: InMemoryUsernamePasswordDatabase) -> None:
    @implementer(IRealm)
    class BrokenRealm:
        def __init__(self, result: Any) -> None:
            self.result = result

        def request_avatar(self, avatar_id: Any, mind: Any, *interfaces: Any) -> Any:
            return self.result

    for result in (None, (IPerspective, object()), (IAdmin, object(), lambda: None), (IPerspective, 1, 2)):
        portal = Portal(BrokenRealm(result), [users])
        with pytest.raises(TypeError):
            result_of(portal.login(UsernamePassword("alice", "wonderland"), None, IPerspective))


def test_scram_exchange_then_portal(users: InMemoryUsernamePasswordDatabase) -> None:
    """The broker's flow: three SCRAM messages, then the proof goes through the portal."""
    client, server = ScramClient("alice", "wonderland"), ScramServer(users)
    server_first = server.server_first(client.client_first())
    server_final = server.server_final(client.client_final(server_first))
    portal = Portal(Realm(Avatar), [users])
    _, avatar, _ = result_of(portal.login(server.credentials(), "mind", IPerspective))
    client.verify_server_final(server_final)
    assert avatar.avatar_id == "alice"
