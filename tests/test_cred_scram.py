"""SCRAM-SHA-256: the RFC 7677 vector, full exchanges, replay, impostor servers, parsing."""

from __future__ import annotations

import base64
import re

import pytest
from zope.interface.verify import verifyObject

from cred.credentials import IUsernameScramSha256
from cred.error import ScramError, UnauthorizedLogin
from cred.saslprep import saslprep
from cred.scram import MIN_ITERATIONS, ScramClient, ScramServer, ScramVerifier

# RFC 7677 section 3.
RFC_USER, RFC_PASSWORD = "user", "pencil"
RFC_CLIENT_NONCE = "rOprNGfwEbeRWgbNEkqO"
RFC_SERVER_NONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
RFC_SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
RFC_CLIENT_FIRST = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
RFC_SERVER_FIRST = (
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
RFC_CLIENT_FINAL = (
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
RFC_SERVER_FINAL = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

SERVER_FIRST_SHAPE = re.compile(r"r=[\x21-\x2b\x2d-\x7e]+,s=[A-Za-z0-9+/]{22}==,i=4096")


def rfc_verifier() -> ScramVerifier:
    return ScramVerifier.from_password(RFC_PASSWORD, salt=RFC_SALT, iterations=4096)


class Users:
    """A lookup for ScramServer: username -> verifier."""

    def __init__(self, **passwords: str) -> None:
        self.verifiers = {
            user: ScramVerifier.from_password(pw, iterations=MIN_ITERATIONS)
            for user, pw in passwords.items()
        }

    def __call__(self, username: str) -> ScramVerifier | None:
        return self.verifiers.get(username)


USERS = Users(alice="wonderland", **{"a,b=c": "odd name"})


def exchange(client: ScramClient, server: ScramServer) -> str:
    """Run the three messages; return the server-final message."""
    server_first = server.server_first(client.client_first())
    return server.server_final(client.client_final(server_first))


# --- RFC 7677 vector --------------------------------------------------------------------------


def test_rfc7677_client_side() -> None:
    client = ScramClient(RFC_USER, RFC_PASSWORD, nonce=RFC_CLIENT_NONCE)
    assert client.client_first() == RFC_CLIENT_FIRST
    assert client.client_final(RFC_SERVER_FIRST) == RFC_CLIENT_FINAL
    client.verify_server_final(RFC_SERVER_FINAL)
    assert client.done


def test_rfc7677_server_side() -> None:
    server = ScramServer(lambda user: rfc_verifier() if user == "user" else None, nonce=RFC_SERVER_NONCE)
    assert server.server_first(RFC_CLIENT_FIRST) == RFC_SERVER_FIRST
    assert server.server_final(RFC_CLIENT_FINAL) == RFC_SERVER_FINAL
    assert server.authenticated_username == "user"


# --- full exchanges ---------------------------------------------------------------------------


def test_right_password_authenticates_both_ways() -> None:
    client, server = ScramClient("alice", "wonderland"), ScramServer(USERS)
    client.verify_server_final(exchange(client, server))
    assert client.done
    assert server.authenticated_username == "alice"
    assert server.credentials().username == "alice"


def test_wrong_password_is_unauthorized() -> None:
    server = ScramServer(USERS)
    with pytest.raises(UnauthorizedLogin):
        exchange(ScramClient("alice", "wonderlamp"), server)
    assert server.authenticated_username is None
    with pytest.raises(ScramError):
        server.credentials()


def test_username_escaping_round_trips() -> None:
    client, server = ScramClient("a,b=c", "odd name"), ScramServer(USERS)
    client_first = client.client_first()
    assert client_first.startswith("n,,n=a=2Cb=3Dc,r=")
    client.verify_server_final(server.server_final(client.client_final(server.server_first(client_first))))
    assert server.authenticated_username == "a,b=c"


def test_unknown_user_looks_like_a_known_one() -> None:
    secret = b"s" * 32
    known = ScramServer(USERS, secret=secret, fake_iterations=MIN_ITERATIONS)
    unknown = ScramServer(USERS, secret=secret, fake_iterations=MIN_ITERATIONS)
    unknown_again = ScramServer(USERS, secret=secret, fake_iterations=MIN_ITERATIONS)
    first_known = known.server_first(ScramClient("alice", "x").client_first())
    first_unknown = unknown.server_first(ScramClient("mallory", "x").client_first())
    first_again = unknown_again.server_first(ScramClient("mallory", "y").client_first())
    assert SERVER_FIRST_SHAPE.fullmatch(first_known)
    assert SERVER_FIRST_SHAPE.fullmatch(first_unknown)
    salt = first_unknown.split(",")[1]
    assert salt == first_again.split(",")[1], "the fake salt must be stable per username"
    # ... and the login fails exactly like a wrong password.
    client = ScramClient("mallory", "guess")
    server = ScramServer(USERS, secret=secret, fake_iterations=MIN_ITERATIONS)
    with pytest.raises(UnauthorizedLogin) as unknown_error:
        server.server_final(client.client_final(server.server_first(client.client_first())))
    with pytest.raises(UnauthorizedLogin) as wrong_password_error:
        exchange(ScramClient("alice", "guess"), ScramServer(USERS))
    assert str(unknown_error.value) == str(wrong_password_error.value)


def test_fake_salt_depends_on_secret() -> None:
    def salt(secret: bytes) -> str:
        server = ScramServer(USERS, secret=secret, fake_iterations=MIN_ITERATIONS)
        return server.server_first(ScramClient("mallory", "x").client_first()).split(",")[1]

    assert salt(b"a" * 32) != salt(b"b" * 32)


def test_replayed_client_final_fails() -> None:
    client = ScramClient("alice", "wonderland")
    client_first = client.client_first()
    server = ScramServer(USERS)
    recorded = client.client_final(server.server_first(client_first))
    server.server_final(recorded)
    # An eavesdropper replays both client messages to a new exchange: the server nonce is
    # fresh, so the recorded nonce no longer matches...
    replay = ScramServer(USERS)
    replay.server_first(client_first)
    with pytest.raises(ScramError, match="nonce"):
        replay.server_final(recorded)
    # ... and patching the new nonce in breaks the proof, which covers the old AuthMessage.
    replay2 = ScramServer(USERS)
    new_nonce = replay2.server_first(client_first).split(",")[0]
    with pytest.raises(UnauthorizedLogin):
        replay2.server_final(re.sub(r"r=[^,]+", new_nonce, recorded))


def test_impostor_server_is_detected() -> None:
    # The impostor knows the salt and iteration count (they are public) but not ServerKey,
    # so it signs with a key of its own.
    client = ScramClient("alice", "wonderland")
    salt = USERS.verifiers["alice"].salt
    impostor_verifier = ScramVerifier.from_password("something else", salt=salt, iterations=MIN_ITERATIONS)
    impostor = ScramServer(lambda _user: impostor_verifier)
    server_first = impostor.server_first(client.client_first())
    client_final = client.client_final(server_first)
    with pytest.raises(UnauthorizedLogin):
        impostor.server_final(client_final)
    # The impostor lets the client in anyway and forges a signature:
    with pytest.raises(ScramError, match="signature"):
        client.verify_server_final("v=" + base64.b64encode(b"\0" * 32).decode())
    assert not client.done


def test_server_error_is_reported() -> None:
    client = ScramClient("alice", "wonderland")
    server = ScramServer(USERS)
    client.client_final(server.server_first(client.client_first()))
    with pytest.raises(ScramError, match="invalid-proof"):
        client.verify_server_final("e=invalid-proof")


@pytest.mark.parametrize("iterations", [1, 4095, 10_000_001])
def test_client_refuses_bad_iteration_counts(iterations: int) -> None:
    client = ScramClient("alice", "x", nonce="abc")
    client.client_first()
    with pytest.raises(ScramError, match="iterations"):
        client.client_final(f"r=abcdef,s=QUJDRA==,i={iterations}")


def test_client_refuses_foreign_nonce() -> None:
    client = ScramClient("alice", "x", nonce="abc")
    client.client_first()
    with pytest.raises(ScramError, match="nonce"):
        client.client_final("r=xyzdef,s=QUJDRA==,i=4096")


def test_y_flag_binds_its_own_header() -> None:
    verifier = rfc_verifier()
    server = ScramServer(lambda _user: verifier, nonce="srv")
    server.server_first("y,,n=user,r=cli")
    with pytest.raises(ScramError, match="channel binding"):
        server.server_final("c=biws,r=clisrv,p=" + base64.b64encode(b"\0" * 32).decode())


# --- malformed input and misuse ---------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        "",
        "n,,",
        "n,",
        "n=user,r=abc",
        "p=tls-unique,,n=user,r=abc",
        "n,a=admin,n=user,r=abc",
        "x,,n=user,r=abc",
        "n,,m=ext,n=user,r=abc",
        "n,,r=abc,n=user",
        "n,,n=user",
        "n,,n=user,r=",
        "n,,n=us=er,r=abc",
        "n,,n=us=2,r=abc",
        "n,,n=,r=abc",
        "n,,n=\x07,r=abc",
        "n,,n=user,r=a b",
        "n,,n=user,r=abc,",
        "n,,n=user,,r=abc",
        "n,,n=user,r=abc,x" * 1000,
        "n,,n=\ud800,r=abc",
        b"n,,n=user,r=abc",
        None,
    ],
)
def test_malformed_client_first(message: object) -> None:
    with pytest.raises(ScramError):
        ScramServer(USERS).server_first(message)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "message",
    [
        "",
        "c=biws",
        "c=biws,r=NONCE",
        "r=NONCE,c=biws,p=AAAA",
        "c=biws,r=NONCE,p=",
        "c=biws,r=NONCE,p=not base64!",
        "c=biws,r=NONCE,p=AAAA",  # proof too short
        "c=eSws,r=NONCE,p=" + "A" * 43 + "=",  # binding of a "y" header
        "c=biws,r=NONCE,x=1",
        "c=biws,p=" + "A" * 43 + "=",
    ],
)
def test_malformed_client_final(message: str) -> None:
    server = ScramServer(USERS, nonce="srv")
    server.server_first("n,,n=alice,r=cli")
    with pytest.raises(ScramError):
        server.server_final(message.replace("NONCE", "clisrv"))


@pytest.mark.parametrize(
    "message",
    ["", "r=abcdef", "r=abcdef,s=QUJDRA==", "s=QUJDRA==,r=abcdef,i=4096", "r=abcdef,s=,i=4096",
     "r=abcdef,s=***,i=4096", "r=abcdef,s=QUJDRA==,i=-1", "r=abcdef,s=QUJDRA==,i=²",
     "r=abcdef,s=QUJDRA==,i=4096.0", "m=x,r=abcdef,s=QUJDRA==,i=4096", "r=abc,s=QUJDRA==,i=4096"],
)
def test_malformed_server_first(message: str) -> None:
    client = ScramClient("alice", "x", nonce="abc")
    client.client_first()
    with pytest.raises(ScramError):
        client.client_final(message)


@pytest.mark.parametrize("message", ["", "v=", "v=***", "x=1", "v=AAAA", "e"])
def test_malformed_server_final(message: str) -> None:
    client = ScramClient("alice", "wonderland")
    server = ScramServer(USERS)
    client.client_final(server.server_first(client.client_first()))
    with pytest.raises(ScramError):
        client.verify_server_final(message)


def test_calls_out_of_order_are_scram_errors() -> None:
    client = ScramClient("alice", "x")
    with pytest.raises(ScramError, match="state"):
        client.client_final("r=a,s=QUJDRA==,i=4096")
    server = ScramServer(USERS)
    with pytest.raises(ScramError, match="state"):
        server.server_final("c=biws,r=a,p=AAAA")
    # A failed step ends the exchange for good.
    client = ScramClient("alice", "wonderland", nonce="abc")
    client.client_first()
    with pytest.raises(ScramError):
        client.client_final("garbage")
    with pytest.raises(ScramError, match="state"):
        client.client_final("r=abcdef,s=QUJDRA==,i=4096")


def test_client_rejects_unpreparable_names() -> None:
    with pytest.raises(ValueError):
        ScramClient("", "x")
    with pytest.raises(ValueError):
        ScramClient("bell\x07", "x")
    with pytest.raises(ValueError):
        ScramClient("alice", "bell\x07")


# --- verifier, proof credentials, SASLprep ----------------------------------------------------


def test_verifier_round_trip_and_repr() -> None:
    verifier = rfc_verifier()
    text = verifier.to_string()
    assert text.startswith("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$")
    assert ScramVerifier.parse(text) == verifier
    assert "stored_key" not in repr(verifier)
    assert verifier.check_password("pencil")
    assert not verifier.check_password("pencil ")
    assert not verifier.check_password("\x07")


@pytest.mark.parametrize(
    "text",
    ["", "SCRAM-SHA-256", "SCRAM-SHA-1$4096:QUJD$QUJD:QUJD", "SCRAM-SHA-256$x:QUJD$QUJD:QUJD",
     "SCRAM-SHA-256$4096:QUJD$QUJD:QUJD", "SCRAM-SHA-256$0:QUJD$" + "A" * 43 + "=:" + "A" * 43 + "="],
)
def test_verifier_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        ScramVerifier.parse(text)


def test_proof_credentials() -> None:
    server = ScramServer(USERS)
    exchange(ScramClient("alice", "wonderland"), server)
    proof = server.credentials()
    assert verifyObject(IUsernameScramSha256, proof)
    assert proof.check_verifier(USERS.verifiers["alice"])
    assert not proof.check_verifier(rfc_verifier())
    assert "auth_message" not in repr(proof)


@pytest.mark.parametrize(
    ("raw", "prepared"),
    [  # RFC 4013 section 3, plus NFKC and space mapping
        ("I\u00adX", "IX"),
        ("user", "user"),
        ("USER", "USER"),
        ("\u00aa", "a"),
        ("\u2168", "IX"),
        ("pen\u00a0cil", "pen cil"),
        ("e\u0301", "\u00e9"),
    ],
)
def test_saslprep(raw: str, prepared: str) -> None:
    assert saslprep(raw) == prepared


@pytest.mark.parametrize("raw", ["\u0007", "\u0627\u0031", "a\ue000", "\ud800"])
def test_saslprep_prohibits(raw: str) -> None:
    with pytest.raises(ValueError):
        saslprep(raw)


def test_normalized_password_forms_agree() -> None:
    verifier = ScramVerifier.from_password("caf\u00e9", iterations=MIN_ITERATIONS)
    server = ScramServer(lambda _user: verifier)
    client = ScramClient("bob", "cafe\u0301")
    client.verify_server_final(exchange(client, server))
