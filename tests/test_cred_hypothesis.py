"""Property tests: the cred parsers raise only their own errors, whatever they are fed."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cred.error import ScramError, UnauthorizedLogin, UserFileError
from cred.scram import MIN_ITERATIONS, ScramClient, ScramServer, ScramVerifier
from cred.userfile import format_user_file, parse_user_file

VERIFIER = ScramVerifier.from_password("pencil", salt=b"0123456789abcdef", iterations=MIN_ITERATIONS)

# Text that looks like SCRAM messages more often than uniform noise does.
_pieces = st.sampled_from(
    ["n", "y", "p=x", ",", "=", "n=", "r=", "s=", "i=", "c=", "p=", "v=", "e=", "m=", "a=",
     "biws", "user", "=2C", "=3D", "4096", "QUJDRA==", "clisrv", "cli", "srv", "\x00", "é", "\ud800"]
)
scramish = st.lists(st.one_of(_pieces, st.text(max_size=8)), max_size=12).map("".join)
messages = st.one_of(st.text(), scramish)


def lookup(_username: str) -> ScramVerifier:
    return VERIFIER


@given(messages)
def test_server_first_raises_only_scram_errors(message: str) -> None:
    try:
        ScramServer(lookup, nonce="srv").server_first(message)
    except ScramError:
        pass


@given(messages)
def test_server_final_raises_only_login_errors(message: str) -> None:
    server = ScramServer(lookup, nonce="srv")
    server.server_first("n,,n=user,r=cli")
    try:
        server.server_final(message)
    except (ScramError, UnauthorizedLogin):
        pass


@given(messages)
def test_client_final_raises_only_scram_errors(message: str) -> None:
    client = ScramClient("user", "pencil", nonce="cli", max_iterations=MIN_ITERATIONS)
    client.client_first()
    try:
        client.client_final(message)
    except ScramError:
        pass


@settings(max_examples=50)
@given(messages)
def test_verify_server_final_raises_only_scram_errors(message: str) -> None:
    client = ScramClient("user", "pencil", nonce="cli")
    client.client_first()
    client.client_final("r=clisrv,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=4096")
    try:
        client.verify_server_final(message)
    except ScramError:
        pass


@given(st.one_of(st.text(), st.lists(st.one_of(
    st.sampled_from(["alice:", "SCRAM-SHA-256$", "4096:", "$", ":", "\n", "#", "\r", "MDEy", "=="]),
    st.text(max_size=6)), max_size=12).map("".join)))
def test_user_file_parser_raises_only_user_file_errors(text: str) -> None:
    try:
        parse_user_file(text)
    except UserFileError:
        pass


def _file_name(name: str) -> bool:
    try:
        return parse_user_file(format_user_file({name: VERIFIER})) == {name: VERIFIER}
    except UserFileError:
        return False


@given(st.dictionaries(st.text(min_size=1, max_size=12).filter(_file_name), st.binary(min_size=1, max_size=32),
                       max_size=5))
def test_user_file_round_trip(salts: dict[str, bytes]) -> None:
    users = {name: ScramVerifier(salt, 4096, VERIFIER.stored_key, VERIFIER.server_key) for name, salt in salts.items()}
    assert parse_user_file(format_user_file(users)) == users


@settings(max_examples=30, deadline=None)
@given(st.text(min_size=1, max_size=16))
def test_any_preparable_username_survives_the_exchange(username: str) -> None:
    try:
        client = ScramClient(username, "pencil")
    except ValueError:
        return  # SASLprep refuses it on the client already
    server = ScramServer(lookup)
    client.verify_server_final(server.server_final(client.client_final(server.server_first(client.client_first()))))
    assert server.authenticated_username == client._username
