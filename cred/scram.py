"""SCRAM-SHA-256 (RFC 5802, RFC 7677) as a sans-IO exchange: messages in, messages out.

No sockets, clocks or Deferreds here: the broker carries the three messages in calls on its
login object (see docs/CRED.md), tests pass them from one object to the other.

::

    client                                     server
    ScramClient(user, pw).client_first()  ->   ScramServer(lookup).server_first(msg)
                       .client_final(msg) <-
                                          ->   .server_final(msg)   (UnauthorizedLogin if wrong)
                .verify_server_final(msg) <-   (ScramError if the server is an impostor)

Why SCRAM: the password never crosses the wire, the server stores only a verifier that is
not password-equivalent (`ScramVerifier`), and the client checks the server too.

Only the no-channel-binding form (gs2 header ``n,,``) is supported; run it inside TLS for
confidentiality. Neither authzid nor any mandatory extension (``m=``) is accepted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from zope.interface import implementer

from cred.credentials import IUsernameScramSha256
from cred.error import ScramError, UnauthorizedLogin
from cred.saslprep import saslprep

__all__ = [
    "DEFAULT_ITERATIONS",
    "MAX_ITERATIONS",
    "MIN_ITERATIONS",
    "MECHANISM",
    "ScramClient",
    "ScramProof",
    "ScramServer",
    "ScramVerifier",
    "VerifierLookup",
    "VerifierSource",
    "normalize_username",
]

MECHANISM = "SCRAM-SHA-256"
#: Iterations for new verifiers: slow enough to make offline guessing of a stolen user file
#: costly, fast enough (tens of ms) for an interactive login.
DEFAULT_ITERATIONS = 100_000
#: RFC 7677 section 4: a client SHOULD refuse fewer (a fake server could ask for 1 to make a
#: captured proof cheap to brute-force).
MIN_ITERATIONS = 4096
#: A client refuses more, so a hostile server cannot make it spin for minutes.
MAX_ITERATIONS = 10_000_000
SALT_LENGTH = 16
#: Longest message accepted: every legitimate message is far shorter.
MAX_MESSAGE_LENGTH = 8192

_KEY_LENGTH = 32  # SHA-256 output
_GS2_HEADER = "n,,"
_NONCE_CHARS = re.compile(r"[\x21-\x2b\x2d-\x7e]+")  # printable ASCII except ","
_SASLNAME = re.compile(r"(?:[^=,]|=2C|=3D)+")
_PROCESS_SECRET = secrets.token_bytes(32)


# --- primitives (RFC 5802 section 2.2) -------------------------------------------------------


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except ValueError:  # binascii.Error and UnicodeEncodeError are ValueErrors
        raise ScramError(f"{what} is not valid base64: {text[:40]!r}") from None


def _salted_password(password: str, salt: bytes, iterations: int) -> bytes:
    """SaltedPassword := Hi(Normalize(password), salt, i) — PBKDF2-HMAC-SHA256."""
    return hashlib.pbkdf2_hmac("sha256", saslprep(password).encode("utf-8"), salt, iterations)


def _nonce() -> str:
    return secrets.token_urlsafe(18)  # 144 bits, 24 characters, no ","


def normalize_username(username: str) -> str:
    """The canonical form of a username: SASLprep. User databases key on it, so an
    administrator and a client who type the same name in different Unicode forms agree.
    Raises ValueError for an empty or prohibited name."""
    prepared = saslprep(username)
    if not prepared:
        raise ValueError("username must not be empty")
    return prepared


def _escape_username(username: str) -> str:
    return username.replace("=", "=3D").replace(",", "=2C")


def _unescape_username(saslname: str) -> str:
    if not _SASLNAME.fullmatch(saslname):
        raise ScramError(f"malformed username {saslname[:40]!r}: '=' must start =2C or =3D")
    return re.sub("=(2C|3D)", lambda m: "," if m.group(1) == "2C" else "=", saslname)


# --- the stored verifier ---------------------------------------------------------------------


@dataclass(frozen=True)
class ScramVerifier:
    """What a server stores per user: salt, iteration count, StoredKey and ServerKey.

    Neither the password nor SaltedPassword nor ClientKey is kept: any of those would let a
    thief of the user file log in directly. StoredKey only lets one *check* a proof, and
    ServerKey only lets one *sign* as the server.
    """

    salt: bytes
    iterations: int
    stored_key: bytes = field(repr=False)
    server_key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not self.salt:
            raise ValueError("salt must not be empty")
        if not 1 <= self.iterations <= MAX_ITERATIONS:
            raise ValueError(f"iterations must be in 1..{MAX_ITERATIONS}, not {self.iterations}")
        if len(self.stored_key) != _KEY_LENGTH or len(self.server_key) != _KEY_LENGTH:
            raise ValueError(f"stored_key and server_key must be {_KEY_LENGTH} bytes")

    @classmethod
    def from_password(
        cls, password: str, salt: bytes | None = None, iterations: int = DEFAULT_ITERATIONS
    ) -> ScramVerifier:
        """Derive a verifier; a fresh random salt unless one is given (tests, vectors)."""
        if salt is None:
            salt = os.urandom(SALT_LENGTH)
        salted = _salted_password(password, salt, iterations)
        return cls(
            salt=salt,
            iterations=iterations,
            stored_key=_h(_hmac(salted, b"Client Key")),
            server_key=_hmac(salted, b"Server Key"),
        )

    def check_password(self, password: str) -> bool:
        """Whether `password` is the one this verifier was derived from (costs one PBKDF2)."""
        try:
            salted = _salted_password(password, self.salt, self.iterations)
        except ValueError:  # prohibited characters: cannot be the stored password
            return False
        return hmac.compare_digest(_h(_hmac(salted, b"Client Key")), self.stored_key)

    def to_string(self) -> str:
        """``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`` (base64), the
        format PostgreSQL uses too."""
        return (
            f"{MECHANISM}${self.iterations}:{_b64(self.salt)}"
            f"${_b64(self.stored_key)}:{_b64(self.server_key)}"
        )

    @classmethod
    def parse(cls, text: str) -> ScramVerifier:
        """Inverse of `to_string`; raises ValueError on anything else."""
        mechanism, sep1, rest = text.partition("$")
        params, sep2, keys = rest.partition("$")
        iterations, sep3, salt = params.partition(":")
        stored_key, sep4, server_key = keys.partition(":")
        if mechanism != MECHANISM or not (sep1 and sep2 and sep3 and sep4):
            raise ValueError(f"not a {MECHANISM} verifier")
        if not (iterations.isascii() and iterations.isdigit() and len(iterations) <= 9):
            raise ValueError(f"bad iteration count {iterations[:20]!r}")

        def decode(value: str) -> bytes:
            return base64.b64decode(value.encode("ascii"), validate=True)

        return cls(decode(salt), int(iterations), decode(stored_key), decode(server_key))


class VerifierSource(Protocol):
    """Anything with ``get_scram_verifier(username)`` (the user databases); the protocol
    behind `cred.checkers.IScramVerifierSource`."""

    def get_scram_verifier(self, username: str) -> ScramVerifier | None: ...


#: ``lookup(username) -> ScramVerifier | None``, or an object with ``get_scram_verifier``.
VerifierLookup = Callable[[str], ScramVerifier | None] | VerifierSource


# --- the credentials a finished exchange yields ----------------------------------------------


@implementer(IUsernameScramSha256)
@dataclass(frozen=True)
class ScramProof:
    """A username with a SCRAM client proof over one exchange's AuthMessage.

    Passing this to `Portal.login` lets the portal's checker re-verify the proof against
    its own verifier (two HMACs and a hash, no PBKDF2), so the portal trusts evidence, not
    the code that ran the exchange.
    """

    username: str
    auth_message: str = field(repr=False)
    client_proof: bytes = field(repr=False)

    def check_verifier(self, verifier: ScramVerifier) -> bool:
        """RFC 5802 section 3: ClientKey := ClientProof XOR HMAC(StoredKey, AuthMessage);
        the proof is good iff H(ClientKey) == StoredKey."""
        if len(self.client_proof) != _KEY_LENGTH:
            return False
        signature = _hmac(verifier.stored_key, self.auth_message.encode("utf-8"))
        return hmac.compare_digest(_h(_xor(self.client_proof, signature)), verifier.stored_key)


# --- message parsing -------------------------------------------------------------------------


def _check_message(message: object, what: str) -> str:
    if not isinstance(message, str):
        raise ScramError(f"{what} must be a str, not {type(message).__name__}")
    if len(message) > MAX_MESSAGE_LENGTH:
        raise ScramError(f"{what} is longer than {MAX_MESSAGE_LENGTH} characters")
    try:
        message.encode("utf-8")
    except UnicodeEncodeError:
        raise ScramError(f"{what} is not valid Unicode text") from None
    return message


def _attributes(message: str, what: str) -> list[tuple[str, str]]:
    """Split ``a=1,b=2`` into [("a", "1"), ("b", "2")]; names are one ASCII letter."""
    result = []
    for part in message.split(","):
        if len(part) < 2 or part[1] != "=" or not (part[0].isascii() and part[0].isalpha()):
            raise ScramError(f"malformed {what}: expected 'x=value', got {part[:40]!r}")
        result.append((part[0], part[2:]))
    return result


def _expect(attrs: list[tuple[str, str]], index: int, name: str, what: str) -> str:
    if index >= len(attrs) or attrs[index][0] != name:
        if attrs and attrs[0][0] == "m":
            raise ScramError(f"{what} carries a mandatory extension (m=), which is not supported")
        raise ScramError(f"malformed {what}: attribute {index + 1} must be '{name}='")
    return attrs[index][1]


def _check_nonce(nonce: str, what: str) -> str:
    if not _NONCE_CHARS.fullmatch(nonce):
        raise ScramError(f"malformed {what}: nonce must be printable ASCII without ','")
    return nonce


# --- client ----------------------------------------------------------------------------------


class ScramClient:
    """The client side of one exchange: call `client_first`, `client_final`,
    `verify_server_final` in that order; a failed step ends the exchange.

    `nonce` is for test vectors only; by default a random one is drawn.
    """

    def __init__(
        self,
        username: str,
        password: str,
        *,
        nonce: str | None = None,
        min_iterations: int = MIN_ITERATIONS,
        max_iterations: int = MAX_ITERATIONS,
    ) -> None:
        self._username = normalize_username(username)
        self._password: str | None = saslprep(password)
        self._nonce = _check_nonce(_nonce() if nonce is None else nonce, "client nonce")
        self._min_iterations = min_iterations
        self._max_iterations = max_iterations
        self._state = "start"
        self._client_first_bare = ""
        self._server_signature = b""

    def _advance(self, expected: str, method: str) -> None:
        if self._state != expected:
            raise ScramError(f"ScramClient.{method}() called in state {self._state!r}")
        self._state = "failed"  # until the step succeeds

    def client_first(self) -> str:
        """The first message: ``n,,n=<user>,r=<client nonce>``."""
        self._advance("start", "client_first")
        self._client_first_bare = f"n={_escape_username(self._username)},r={self._nonce}"
        self._state = "first-sent"
        return _GS2_HEADER + self._client_first_bare

    def client_final(self, server_first: str) -> str:
        """Answer the server's challenge with the proof; raises ScramError if the server's
        message is malformed, does not extend our nonce, or asks for an iteration count
        outside [min_iterations, max_iterations]."""
        self._advance("first-sent", "client_final")
        server_first = _check_message(server_first, "server-first message")
        attrs = _attributes(server_first, "server-first message")
        nonce = _check_nonce(_expect(attrs, 0, "r", "server-first message"), "server-first")
        salt = _unb64(_expect(attrs, 1, "s", "server-first message"), "salt")
        count = _expect(attrs, 2, "i", "server-first message")
        if not nonce.startswith(self._nonce) or len(nonce) == len(self._nonce):
            raise ScramError("server nonce does not extend the client nonce")
        if not salt:
            raise ScramError("server sent an empty salt")
        if not (count.isascii() and count.isdigit() and len(count) <= 9):
            raise ScramError(f"malformed iteration count {count[:20]!r}")
        iterations = int(count)
        if not self._min_iterations <= iterations <= self._max_iterations:
            raise ScramError(
                f"server asked for {iterations} iterations; this client accepts "
                f"{self._min_iterations}..{self._max_iterations}"
            )
        assert self._password is not None
        salted = _salted_password(self._password, salt, iterations)
        self._password = None  # not needed any more; do not keep it around
        client_key = _hmac(salted, b"Client Key")
        without_proof = f"c={_b64(_GS2_HEADER.encode())},r={nonce}"
        auth_message = f"{self._client_first_bare},{server_first},{without_proof}".encode()
        proof = _xor(client_key, _hmac(_h(client_key), auth_message))
        self._server_signature = _hmac(_hmac(salted, b"Server Key"), auth_message)
        self._state = "final-sent"
        return f"{without_proof},p={_b64(proof)}"

    def verify_server_final(self, server_final: str) -> None:
        """Check the server's signature (mutual authentication). Raises ScramError if the
        server reported an error or does not know the user's ServerKey — an impostor."""
        self._advance("final-sent", "verify_server_final")
        server_final = _check_message(server_final, "server-final message")
        attrs = _attributes(server_final, "server-final message")
        if attrs[0][0] == "e":
            raise ScramError(f"server reported an error: {attrs[0][1][:80]!r}")
        signature = _unb64(_expect(attrs, 0, "v", "server-final message"), "server signature")
        if not hmac.compare_digest(signature, self._server_signature):
            raise ScramError("server signature does not verify: the server is not who it claims")
        self._state = "done"

    @property
    def done(self) -> bool:
        """True once the server has proved itself."""
        return self._state == "done"


# --- server ----------------------------------------------------------------------------------


class ScramServer:
    """The server side of one exchange: `server_first`, then `server_final`.

    `lookup(username)` returns the user's `ScramVerifier` or None (an object with a
    ``get_scram_verifier`` method works too: both user databases do). For an unknown user
    the exchange goes on with a fake verifier whose salt is derived from the username and
    `secret`, so probing "does alice exist?" sees the same shape (and the same salt on every
    try) as for a real user, and the login fails at the proof like a wrong password.

    `secret` defaults to a per-process random value: pass a persistent one, or a restart
    changes unknown users' fake salts while real users' salts stay put. `fake_iterations`
    should match what real verifiers use; by default the lookup's ``default_iterations``
    attribute, else DEFAULT_ITERATIONS. `nonce` is for test vectors only.
    """

    def __init__(
        self,
        lookup: VerifierLookup,
        *,
        secret: bytes | None = None,
        fake_iterations: int | None = None,
        nonce: str | None = None,
    ) -> None:
        get = getattr(lookup, "get_scram_verifier", None)
        self._lookup: Callable[[str], ScramVerifier | None] = get if callable(get) else lookup  # type: ignore[assignment]
        self._secret = _PROCESS_SECRET if secret is None else secret
        if fake_iterations is None:
            fake_iterations = getattr(lookup, "default_iterations", DEFAULT_ITERATIONS)
        self._fake_iterations: int = fake_iterations
        self._server_nonce = _check_nonce(_nonce() if nonce is None else nonce, "server nonce")
        self._state = "start"
        self._verifier: ScramVerifier | None = None
        self._gs2_header = ""
        self._nonce = ""
        self._client_first_bare = ""
        self._server_first = ""
        self._proof: ScramProof | None = None
        #: The username the client claims, known after `server_first` (for throttling).
        self.claimed_username: str | None = None
        #: The username the client proved, set when `server_final` succeeds.
        self.authenticated_username: str | None = None

    def _advance(self, expected: str, method: str) -> None:
        if self._state != expected:
            raise ScramError(f"ScramServer.{method}() called in state {self._state!r}")
        self._state = "failed"  # until the step succeeds

    def _fake_verifier(self, username: str) -> ScramVerifier:
        """Deterministic per (secret, username); no password matches its StoredKey."""
        key = _hmac(self._secret, b"pbroker scram fake verifier\0" + username.encode("utf-8"))
        return ScramVerifier(
            salt=_hmac(key, b"salt")[:SALT_LENGTH],
            iterations=self._fake_iterations,
            stored_key=_hmac(key, b"stored key"),
            server_key=_hmac(key, b"server key"),
        )

    def server_first(self, client_first: str) -> str:
        """Parse ``n,,n=<user>,r=<nonce>`` and answer ``r=<nonce>,s=<salt>,i=<count>``.
        Raises ScramError for malformed input, channel binding (``p=``), an authzid or a
        mandatory extension."""
        self._advance("start", "server_first")
        client_first = _check_message(client_first, "client-first message")
        cbind, sep1, rest = client_first.partition(",")
        authzid, sep2, bare = rest.partition(",")
        if not (sep1 and sep2):
            raise ScramError("malformed client-first message: no GS2 header")
        if cbind.startswith("p="):
            raise ScramError("channel binding (SCRAM-SHA-256-PLUS) is not supported")
        if cbind not in ("n", "y"):
            raise ScramError(f"malformed GS2 header: bad channel-binding flag {cbind[:20]!r}")
        if authzid:
            raise ScramError("an authorization identity (a=) is not supported")
        attrs = _attributes(bare, "client-first message")
        saslname = _expect(attrs, 0, "n", "client-first message")
        client_nonce = _check_nonce(_expect(attrs, 1, "r", "client-first message"), "client-first")
        try:
            username = normalize_username(_unescape_username(saslname))
        except ValueError as exc:
            raise ScramError(f"malformed username in client-first message: {exc}") from None
        verifier = self._lookup(username)
        self._verifier = self._fake_verifier(username) if verifier is None else verifier
        self.claimed_username = username
        self._gs2_header = f"{cbind},,"
        self._nonce = client_nonce + self._server_nonce
        self._client_first_bare = bare
        self._server_first = (
            f"r={self._nonce},s={_b64(self._verifier.salt)},i={self._verifier.iterations}"
        )
        self._state = "first-sent"
        return self._server_first

    def server_final(self, client_final: str) -> str:
        """Check ``c=...,r=...,p=<proof>`` and return ``v=<server signature>``.

        Raises UnauthorizedLogin if the proof is wrong (wrong password and unknown user
        alike) and ScramError if the message is malformed or its nonce is not this
        exchange's (a replay)."""
        self._advance("first-sent", "server_final")
        assert self._verifier is not None and self.claimed_username is not None
        client_final = _check_message(client_final, "client-final message")
        attrs = _attributes(client_final, "client-final message")
        binding = _expect(attrs, 0, "c", "client-final message")
        nonce = _expect(attrs, 1, "r", "client-final message")
        if len(attrs) < 3:
            raise ScramError("malformed client-final message: no proof (p=)")
        proof = _unb64(_expect(attrs, len(attrs) - 1, "p", "client-final message"), "proof")
        if binding != _b64(self._gs2_header.encode()):
            raise ScramError("channel binding data does not match the GS2 header")
        if not hmac.compare_digest(nonce.encode("utf-8"), self._nonce.encode("utf-8")):
            raise ScramError("nonce does not match this exchange (a replayed message?)")
        if len(proof) != _KEY_LENGTH:
            raise ScramError(f"client proof must be {_KEY_LENGTH} bytes, not {len(proof)}")
        without_proof = client_final.rsplit(",", 1)[0]
        auth_message = f"{self._client_first_bare},{self._server_first},{without_proof}"
        self._proof = ScramProof(self.claimed_username, auth_message, proof)
        if not self._proof.check_verifier(self._verifier):
            raise UnauthorizedLogin()
        self.authenticated_username = self.claimed_username
        self._state = "done"
        signature = _hmac(self._verifier.server_key, auth_message.encode("utf-8"))
        return f"v={_b64(signature)}"

    def credentials(self) -> ScramProof:
        """The proof of a successful exchange, as credentials for `Portal.login`."""
        if self._state != "done" or self._proof is None:
            raise ScramError(f"ScramServer.credentials() called in state {self._state!r}")
        return self._proof
