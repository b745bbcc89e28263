"""cred.scram's message parsers: the server fed client messages, the client fed server messages.

Input: one control byte, then one SCRAM message as UTF-8 (undecodable bytes become lone
surrogates, which the parsers must refuse as text that cannot be sent). ``control % 4`` picks
the step:

0. ``ScramServer.server_first(message)`` (a client-first message);
1. the RFC 7677 client-first, then ``ScramServer.server_final(message)`` (a client-final);
2. ``ScramClient.client_final(message)`` (a server-first message);
3. the RFC 7677 exchange up to the client-final, then ``verify_server_final(message)``.

Checked: only ScramError (or UnauthorizedLogin, for a well-formed client-final with a wrong
proof) escapes, and a step that succeeds returns a str. The client under test accepts at most
8192 iterations (the library allows 10 million, ~10 s of PBKDF2: not a bug, just too slow for a
fuzzer).
"""

from __future__ import annotations

import base64

from fuzz import _util

with _util.instrument(__name__):
    from cred.error import ScramError, UnauthorizedLogin
    from cred.scram import MIN_ITERATIONS, ScramClient, ScramServer, ScramVerifier

# RFC 7677 section 3.
USER, PASSWORD = "user", "pencil"
CLIENT_NONCE = "rOprNGfwEbeRWgbNEkqO"
SERVER_NONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
CLIENT_FIRST = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
SERVER_FIRST = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
CLIENT_FINAL = (
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
SERVER_FINAL = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

VERIFIER = ScramVerifier.from_password(PASSWORD, salt=SALT, iterations=MIN_ITERATIONS)
MAX_ITERATIONS = 2 * MIN_ITERATIONS


def _lookup(username: str) -> ScramVerifier | None:
    return VERIFIER if username == USER else None


def _server() -> ScramServer:
    return ScramServer(_lookup, secret=b"fuzz", fake_iterations=MIN_ITERATIONS, nonce=SERVER_NONCE)


def _client() -> ScramClient:
    return ScramClient(USER, PASSWORD, nonce=CLIENT_NONCE, max_iterations=MAX_ITERATIONS)


# The fixed part of steps 1 and 3 is the same every time: do it once, copy the state per input.
_CLIENT_AT_FINAL = _client()
_CLIENT_AT_FINAL.client_first()
_CLIENT_AT_FINAL.client_final(SERVER_FIRST)


def _client_at_final() -> ScramClient:
    client = ScramClient.__new__(ScramClient)
    client.__dict__.update(_CLIENT_AT_FINAL.__dict__)
    return client


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    step = data[0] % 4
    message = data[1:].decode("utf-8", "surrogateescape")
    try:
        if step == 0:
            result = _server().server_first(message)
        elif step == 1:
            server = _server()
            server.server_first(CLIENT_FIRST)
            result = server.server_final(message)
            assert server.authenticated_username == USER
        elif step == 2:
            client = _client()
            client.client_first()
            result = client.client_final(message)
        else:
            client = _client_at_final()
            client.verify_server_final(message)
            assert client.done
            result = ""
    except UnauthorizedLogin:
        assert step == 1, "only server_final refuses a login"
        return
    except ScramError:
        return
    assert isinstance(result, str)


if __name__ == "__main__":
    _util.main(TestOneInput)
