"""The portal: where authentication (checkers) meets the application (the realm).

``portal.login(credentials, mind, *interfaces)`` picks the checker registered for an
interface the credentials provide, asks it for an avatar id, then asks the realm for an
avatar providing one of `interfaces`, and fires with ``(interface, avatar, logout)``.

`logout` runs the realm's logout at most once however often it is called: the broker calls
it on disconnect and perhaps on an explicit logout as well.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from zope.interface import Interface, implementer, providedBy
from zope.interface.interface import InterfaceClass

from cred.checkers import ANONYMOUS, AvatarId, ICredentialsChecker
from cred.error import LoginDenied, UnhandledCredentials
from net.defer import Deferred, fail, maybe_deferred

__all__ = ["ANONYMOUS", "IRealm", "LoginResult", "Portal", "Realm"]

#: What `Portal.login` fires with and `IRealm.request_avatar` returns.
LoginResult = tuple[InterfaceClass, Any, Callable[[], None]]


class IRealm(Interface):
    """The application side of login: makes avatars for authenticated avatar ids."""

    def request_avatar(avatar_id: AvatarId, mind: Any, *interfaces: InterfaceClass) -> Any:
        """Return ``(interface, avatar, logout)`` or a Deferred of it.

        `interface` is one of `interfaces` and `avatar` provides it; `mind` is the client's
        side (for the broker: a reference to the client's callback object, or None);
        `logout()` detaches the mind from the avatar. Raise (or fail with) LoginDenied to
        refuse an authenticated id.
        """


class _LogoutOnce:
    """Wraps a realm's logout so that only the first call runs it."""

    def __init__(self, logout: Callable[[], None]) -> None:
        self._logout: Callable[[], None] | None = logout

    def __call__(self) -> None:
        logout, self._logout = self._logout, None
        if logout is not None:
            logout()

    @property
    def called(self) -> bool:
        return self._logout is None


class Portal:
    """Mediates between clients, checkers and one realm. Customise checkers and realms,
    not this class."""

    def __init__(self, realm: Any, checkers: Iterable[Any] = ()) -> None:
        self.realm = realm
        self._checkers: dict[InterfaceClass, Any] = {}
        for checker in checkers:
            self.register_checker(checker)

    def register_checker(self, checker: Any, *credential_interfaces: InterfaceClass) -> None:
        """Use `checker` for credentials providing any of `credential_interfaces` (default:
        its ``credential_interfaces``). A later registration for an interface replaces an
        earlier one."""
        if not ICredentialsChecker.providedBy(checker):
            raise TypeError(f"{checker!r} does not provide ICredentialsChecker")
        for interface in credential_interfaces or checker.credential_interfaces:
            self._checkers[interface] = checker

    def list_credentials_interfaces(self) -> list[InterfaceClass]:
        """The credentials interfaces a client can log in with, in registration order."""
        return list(self._checkers)

    def checker_for(self, credential_interface: InterfaceClass) -> Any | None:
        """The checker registered for `credential_interface`, or None: a SCRAM exchange
        needs the verifier source behind the IUsernameScramSha256 checker."""
        return self._checkers.get(credential_interface)

    def login(self, credentials: Any, mind: Any, *interfaces: InterfaceClass) -> Deferred[LoginResult]:
        """Fire with ``(interface, avatar, logout)``; fail with UnauthorizedLogin (bad
        credentials), LoginDenied (the realm refused) or UnhandledCredentials (no checker
        for these credentials: a configuration error)."""
        for interface, checker in self._checkers.items():
            if interface.providedBy(credentials):
                d = maybe_deferred(checker.request_avatar_id, credentials)
                d.add_callback(lambda avatar_id: maybe_deferred(
                    self.realm.request_avatar, avatar_id, mind, *interfaces))
                return d.add_callback(self._check_result, interfaces)
        provided = ", ".join(i.__identifier__ for i in providedBy(credentials)) or "nothing"
        return fail(UnhandledCredentials(f"no checker for credentials providing {provided}"))

    def _check_result(self, result: Any, interfaces: tuple[InterfaceClass, ...]) -> LoginResult:
        """Catch realm bugs here rather than in the broker, and make logout idempotent."""
        if not (isinstance(result, tuple) and len(result) == 3 and callable(result[2])):
            raise TypeError(f"{self.realm!r}.request_avatar must return (interface, avatar, logout)")
        interface, avatar, logout = result
        if interfaces and interface not in interfaces:
            raise TypeError(f"realm returned {interface!r}, which was not requested")
        return interface, avatar, _LogoutOnce(logout)


@implementer(IRealm)
class Realm:
    """A realm for tests and examples: ``avatar_factory(avatar_id, mind)`` makes the
    avatar, the first requested interface it provides is used, and ``on_logout(avatar)``
    (if given) runs at logout."""

    def __init__(
        self,
        avatar_factory: Callable[[AvatarId, Any], Any],
        *,
        on_logout: Callable[[Any], None] | None = None,
    ) -> None:
        self._avatar_factory = avatar_factory
        self._on_logout = on_logout

    def request_avatar(self, avatar_id: AvatarId, mind: Any, *interfaces: InterfaceClass) -> LoginResult:
        avatar = self._avatar_factory(avatar_id, mind)
        for interface in interfaces:
            if interface.providedBy(avatar):
                on_logout = self._on_logout
                return interface, avatar, (lambda: on_logout(avatar)) if on_logout else _noop
        raise LoginDenied("the avatar provides none of the requested interfaces")


def _noop() -> None:
    pass
