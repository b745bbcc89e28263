"""Credentials checkers: turn credentials into an avatar id, or fail with UnauthorizedLogin.

A checker decides *who* a client is; what that client may do is the realm's business
(`cred.portal`). Every failure is the same `UnauthorizedLogin()`, whatever went wrong.

The two user databases here and in `cred.userfile` store only SCRAM verifiers, check both
cleartext `UsernamePassword` (one PBKDF2 per check) and `ScramProof` credentials (cheap),
and serve verifiers to `cred.scram.ScramServer` through ``get_scram_verifier``.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any, Literal

from zope.interface import Attribute, Interface, implementer
from zope.interface.interface import InterfaceClass

from cred.credentials import (
    IAnonymous,
    IClientCertificate,
    IUsernamePassword,
    IUsernameScramSha256,
    normalize_fingerprint,
)
from cred.error import UnauthorizedLogin
from cred.scram import DEFAULT_ITERATIONS, SALT_LENGTH, ScramVerifier, normalize_username
from net.defer import Deferred, fail, succeed

__all__ = [
    "ANONYMOUS",
    "AllowAnonymousAccess",
    "AvatarId",
    "ClientCertificateChecker",
    "ICredentialsChecker",
    "IScramVerifierSource",
    "InMemoryUsernamePasswordDatabase",
    "VerifierChecker",
]


class _Anonymous(enum.Enum):
    ANONYMOUS = "ANONYMOUS"

    def __repr__(self) -> str:
        return "ANONYMOUS"


#: The avatar id of an anonymous login: not a str, so it can never collide with a username.
ANONYMOUS: Literal[_Anonymous.ANONYMOUS] = _Anonymous.ANONYMOUS
AvatarId = str | _Anonymous


class ICredentialsChecker(Interface):
    """Checks one or more kinds of credentials."""

    credential_interfaces = Attribute(
        "tuple of the ICredentials interfaces this checker accepts; the portal registers it "
        "under each."
    )

    def request_avatar_id(credentials: Any) -> Deferred[AvatarId]:  # type: ignore[empty-body]
        """Return a Deferred firing with the avatar id (a str, or ANONYMOUS) or failing with
        UnauthorizedLogin. The message must not tell which part of the credentials was wrong."""


class IScramVerifierSource(Interface):
    """Serves stored SCRAM verifiers; usable as the ``lookup`` of `ScramServer`."""

    default_iterations = Attribute("int: iteration count of new verifiers (and fake ones).")

    def get_scram_verifier(username: str) -> ScramVerifier | None | Deferred[ScramVerifier | None]:
        """The verifier of the (SASLprepared) `username`, or None if there is no such user; or
        a Deferred of either, for a source that asks a database (`cred.sqlstore`). The broker's
        login and `VerifierChecker` wait for it; `ScramServer` itself needs a synchronous one."""


class VerifierChecker:
    """Checks `UsernamePassword` and SCRAM credentials against verifiers from
    `get_scram_verifier`. Subclasses provide that method and `default_iterations`."""

    credential_interfaces: tuple[InterfaceClass, ...] = (IUsernamePassword, IUsernameScramSha256)
    default_iterations: int = DEFAULT_ITERATIONS

    def get_scram_verifier(self, username: str) -> ScramVerifier | None | Deferred[ScramVerifier | None]:
        raise NotImplementedError

    def request_avatar_id(self, credentials: Any) -> Deferred[AvatarId]:
        try:
            username = normalize_username(credentials.username)
        except (ValueError, TypeError, AttributeError):
            return fail(UnauthorizedLogin())
        found = self.get_scram_verifier(username)
        if isinstance(found, Deferred):  # an asynchronous source: check once it answers
            return found.add_callback(self._check, username, credentials)
        return self._check(found, username, credentials)

    def _check(self, verifier: ScramVerifier | None, username: str, credentials: Any) -> Deferred[AvatarId]:
        if IUsernameScramSha256.providedBy(credentials):
            ok = verifier is not None and credentials.check_verifier(verifier)
        elif IUsernamePassword.providedBy(credentials):
            # An unknown user costs the same PBKDF2 as a known one: no timing oracle.
            candidate = verifier or _unmatchable_verifier(self.default_iterations)
            ok = candidate.check_password(credentials.password) and verifier is not None
        else:
            ok = False
        return succeed(username) if ok else fail(UnauthorizedLogin())


_UNMATCHABLE: dict[int, ScramVerifier] = {}


def _unmatchable_verifier(iterations: int) -> ScramVerifier:
    """A verifier with random keys: checking a password against it costs a real PBKDF2 and
    always fails."""
    if iterations not in _UNMATCHABLE:
        _UNMATCHABLE[iterations] = ScramVerifier(
            os.urandom(SALT_LENGTH), iterations, os.urandom(32), os.urandom(32)
        )
    return _UNMATCHABLE[iterations]


@implementer(ICredentialsChecker, IScramVerifierSource)
class InMemoryUsernamePasswordDatabase(VerifierChecker):
    """A user database in memory, for tests and examples. Like the file database it keeps
    only verifiers, never the passwords it was given."""

    def __init__(
        self, users: Mapping[str, str] | None = None, *, iterations: int = DEFAULT_ITERATIONS
    ) -> None:
        self.default_iterations = iterations
        self._verifiers: dict[str, ScramVerifier] = {}
        for username, password in (users or {}).items():
            self.add_user(username, password)

    def add_user(self, username: str, password: str) -> None:
        """Add a user; ValueError if it exists."""
        name = normalize_username(username)
        if name in self._verifiers:
            raise ValueError(f"user {name!r} already exists")
        self._verifiers[name] = ScramVerifier.from_password(password, iterations=self.default_iterations)

    def set_password(self, username: str, password: str) -> None:
        """Give an existing user a new password (and a new salt); KeyError if none."""
        name = normalize_username(username)
        if name not in self._verifiers:
            raise KeyError(name)
        self._verifiers[name] = ScramVerifier.from_password(password, iterations=self.default_iterations)

    def remove_user(self, username: str) -> None:
        """Remove a user; KeyError if there is none."""
        del self._verifiers[normalize_username(username)]

    def users(self) -> list[str]:
        return sorted(self._verifiers)

    def get_scram_verifier(self, username: str) -> ScramVerifier | None:
        return self._verifiers.get(username)


@implementer(ICredentialsChecker)
class AllowAnonymousAccess:
    """Accepts `Anonymous()` credentials as ANONYMOUS. Register it only if the realm
    hands anonymous users something harmless."""

    credential_interfaces = (IAnonymous,)

    def request_avatar_id(self, credentials: Any) -> Deferred[AvatarId]:
        return succeed(ANONYMOUS)


@implementer(ICredentialsChecker)
class ClientCertificateChecker:
    """Accepts a TLS client certificate by SHA-256 fingerprint and/or subject common name.

    With `fingerprints` (hex, any case, colons allowed) the exact certificate is pinned:
    safe even for self-signed certificates. With `common_names` only the subject is
    matched: safe only if the TLS layer verified the chain against a CA you trust, since
    anyone can mint a certificate with any CN. Given both, both must match. The
    certificate must also be within its validity period at `now()`.

    The avatar id is the certificate's common name, or its fingerprint if it has none.
    """

    credential_interfaces = (IClientCertificate,)

    def __init__(
        self,
        *,
        fingerprints: Iterable[str] = (),
        common_names: Iterable[str] = (),
        now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self._fingerprints = frozenset(normalize_fingerprint(f) for f in fingerprints)
        self._common_names = frozenset(common_names)
        if not (self._fingerprints or self._common_names):
            raise ValueError("ClientCertificateChecker needs fingerprints= and/or common_names=")
        self._now = now

    def request_avatar_id(self, credentials: Any) -> Deferred[AvatarId]:
        cert = credentials.certificate
        now = self._now()
        in_period = cert.not_valid_before_utc <= now <= cert.not_valid_after_utc
        fingerprint: str = credentials.fingerprint
        common_name: str | None = credentials.common_name
        ok = (
            in_period
            and (not self._fingerprints or fingerprint in self._fingerprints)
            and (not self._common_names or common_name in self._common_names)
        )
        if not ok:
            return fail(UnauthorizedLogin())
        return succeed(common_name or fingerprint)
