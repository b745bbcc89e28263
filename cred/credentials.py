"""Credentials: what a client offers to prove who it is.

Each kind of credentials is a zope.interface interface; the portal picks a checker by which
of these interfaces the offered object provides. The objects only carry evidence; deciding
whether it is good is the checkers' job (`cred.checkers`).

SCRAM-SHA-256 credentials (`IUsernameScramSha256`) live with the exchange in `cred.scram`.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from zope.interface import Attribute, Interface, implementer

__all__ = [
    "Anonymous",
    "ClientCertificate",
    "IAnonymous",
    "IClientCertificate",
    "ICredentials",
    "ISSLCertificate",
    "IUsernamePassword",
    "IUsernameScramSha256",
    "UsernamePassword",
    "normalize_fingerprint",
]


class ICredentials(Interface):
    """Marker for every kind of credentials. Give a credentials class a narrower interface
    too, or no checker can be registered for it."""


class IUsernamePassword(ICredentials):
    """A username and a cleartext password, for checking locally (never sent over the wire:
    the wire uses SCRAM)."""

    username = Attribute("str: the claimed username.")
    password = Attribute("str: the cleartext password.")

    def check_password(password: str) -> bool:  # type: ignore[empty-body]
        """Return whether `password` equals the carried password (constant time)."""


class IAnonymous(ICredentials):
    """No evidence at all: a login as nobody in particular (see `AllowAnonymousAccess`)."""


class IUsernameScramSha256(ICredentials):
    """A username and a SCRAM-SHA-256 client proof over one exchange's AuthMessage.

    A checker holding the user's `ScramVerifier` verifies it without ever seeing the
    password (RFC 5802 section 3: ClientKey = proof XOR ClientSignature, H(ClientKey) must
    equal StoredKey). Produced by `cred.scram.ScramServer.credentials()`.
    """

    username = Attribute("str: the SASLprepared, unescaped username.")

    def check_verifier(verifier: Any) -> bool:  # type: ignore[empty-body]
        """Return whether the proof was made with the password `verifier` was derived from."""


class IClientCertificate(ICredentials):
    """The certificate a TLS client presented (and the TLS layer already verified the
    client holds the matching private key)."""

    certificate = Attribute("cryptography.x509.Certificate: the peer certificate.")
    fingerprint = Attribute("str: lowercase hex SHA-256 of the DER certificate.")
    common_name = Attribute("str | None: the subject's first commonName, if any.")


#: Twisted's name for the same idea.
ISSLCertificate = IClientCertificate


@implementer(IUsernamePassword)
@dataclass(frozen=True)
class UsernamePassword:
    """A username and cleartext password, for local checking (tests, examples, a login
    form on the server side). The password is kept out of the repr."""

    username: str
    password: str = field(repr=False)

    def check_password(self, password: str) -> bool:
        return hmac.compare_digest(self.password.encode("utf-8"), password.encode("utf-8"))


@implementer(IAnonymous)
@dataclass(frozen=True)
class Anonymous:
    """Credentials of a client that does not say who it is."""


def normalize_fingerprint(fingerprint: str) -> str:
    """Lowercase hex without separators, so "AB:CD:..." and "abcd..." compare equal."""
    return fingerprint.replace(":", "").replace(" ", "").lower()


@implementer(IClientCertificate)
class ClientCertificate:
    """The peer certificate of a TLS connection.

    Accepts a `cryptography.x509.Certificate` or a pyOpenSSL `OpenSSL.crypto.X509` (what a
    pyOpenSSL connection's ``get_peer_certificate()`` returns) and keeps the former.
    """

    def __init__(self, cert: Any) -> None:
        if not isinstance(cert, x509.Certificate):
            to_cryptography = getattr(cert, "to_cryptography", None)
            if to_cryptography is None:
                raise TypeError(
                    "ClientCertificate(cert) takes a cryptography.x509.Certificate or an "
                    f"OpenSSL.crypto.X509, not {type(cert).__name__}"
                )
            cert = to_cryptography()
        self.certificate: x509.Certificate = cert
        der = cert.public_bytes(Encoding.DER)
        self.fingerprint: str = hashlib.sha256(der).hexdigest()
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        value = names[0].value if names else None
        self.common_name: str | None = value if isinstance(value, str) else None

    def __repr__(self) -> str:
        return f"ClientCertificate(common_name={self.common_name!r}, fingerprint={self.fingerprint!r})"
