"""Checkers, the login throttle, the user file and its command-line tool."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import crypto
from zope.interface.verify import verifyObject

from cred.checkers import (
    ANONYMOUS,
    AllowAnonymousAccess,
    ClientCertificateChecker,
    ICredentialsChecker,
    IScramVerifierSource,
    InMemoryUsernamePasswordDatabase,
)
from cred.credentials import (
    Anonymous,
    ClientCertificate,
    IClientCertificate,
    IUsernamePassword,
    UsernamePassword,
)
from cred.error import LoginDenied, ScramError, UnauthorizedLogin, UserFileError
from cred.scram import MIN_ITERATIONS, ScramClient, ScramProof, ScramServer
from cred.throttle import LoginThrottle
from cred.userfile import FileUserDatabase, format_user_file, parse_user_file
from net.defer import Deferred, Failure, fail, succeed

REPO = Path(__file__).resolve().parent.parent


def result_of(d: Deferred[Any]) -> Any:
    """The result of an already-fired Deferred; raises its failure."""
    out: list[Any] = []
    d.add_both(out.append)
    assert out, "the Deferred has not fired"
    if isinstance(out[0], Failure):
        out[0].raise_exception()
    return out[0]


def scram_login(source: Any, username: str, password: str) -> ScramProof:
    client, server = ScramClient(username, password), ScramServer(source)
    final = server.server_final(client.client_final(server.server_first(client.client_first())))
    client.verify_server_final(final)
    return server.credentials()


@pytest.fixture
def db() -> InMemoryUsernamePasswordDatabase:
    return InMemoryUsernamePasswordDatabase({"alice": "wonderland"}, iterations=MIN_ITERATIONS)


# --- in-memory database -----------------------------------------------------------------------


def test_in_memory_provides_its_interfaces(db: InMemoryUsernamePasswordDatabase) -> None:
    assert verifyObject(ICredentialsChecker, db)
    assert verifyObject(IScramVerifierSource, db)
    assert verifyObject(IUsernamePassword, UsernamePassword("a", "b"))


def test_username_password(db: InMemoryUsernamePasswordDatabase) -> None:
    assert result_of(db.request_avatar_id(UsernamePassword("alice", "wonderland"))) == "alice"
    messages = set()
    for creds in (UsernamePassword("alice", "wrong"), UsernamePassword("nobody", "wonderland"),
                  UsernamePassword("", "x"), UsernamePassword("bell\x07", "x")):
        with pytest.raises(UnauthorizedLogin) as info:
            result_of(db.request_avatar_id(creds))
        messages.add(str(info.value))
    assert len(messages) == 1, "the message must not tell what was wrong"
    assert "password" not in messages.pop()


def test_scram_proof_is_rechecked(db: InMemoryUsernamePasswordDatabase) -> None:
    proof = scram_login(db, "alice", "wonderland")
    assert result_of(db.request_avatar_id(proof)) == "alice"
    forged = ScramProof("alice", proof.auth_message, bytes(32))
    with pytest.raises(UnauthorizedLogin):
        result_of(db.request_avatar_id(forged))
    db.set_password("alice", "changed")  # the portal's checker has the last word
    with pytest.raises(UnauthorizedLogin):
        result_of(db.request_avatar_id(proof))


def test_in_memory_keeps_no_password(db: InMemoryUsernamePasswordDatabase) -> None:
    assert "wonderland" not in repr(vars(db))
    with pytest.raises(ValueError):
        db.add_user("alice", "again")
    with pytest.raises(KeyError):
        db.set_password("bob", "x")
    db.remove_user("alice")
    assert db.users() == []


def test_usernames_are_normalized(db: InMemoryUsernamePasswordDatabase) -> None:
    db.add_user("re\u0301sume\u0301", "x")
    assert db.users() == ["alice", "r\u00e9sum\u00e9"]
    assert result_of(db.request_avatar_id(UsernamePassword("r\u00e9sum\u00e9", "x"))) == "r\u00e9sum\u00e9"


def test_anonymous() -> None:
    checker = AllowAnonymousAccess()
    assert verifyObject(ICredentialsChecker, checker)
    assert result_of(checker.request_avatar_id(Anonymous())) is ANONYMOUS


# --- client certificates ----------------------------------------------------------------------

NOW = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)


def make_cert(common_name: str | None = "alice", days: int = 30) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)] if common_name else [
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "org")]
    name = x509.Name(attrs)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=1))
        .not_valid_after(NOW + datetime.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )


def colon_hex(cert: x509.Certificate) -> str:
    return ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA256()))


def test_client_certificate_credentials() -> None:
    cert = make_cert()
    creds = ClientCertificate(cert)
    assert verifyObject(IClientCertificate, creds)
    assert creds.common_name == "alice"
    assert creds.fingerprint == cert.fingerprint(hashes.SHA256()).hex()
    from_openssl = ClientCertificate(crypto.X509.from_cryptography(cert))
    assert from_openssl.fingerprint == creds.fingerprint
    with pytest.raises(TypeError):
        ClientCertificate(b"not a certificate")


def test_certificate_by_fingerprint() -> None:
    cert, other = make_cert(), make_cert()
    checker = ClientCertificateChecker(fingerprints=[colon_hex(cert)], now=lambda: NOW)
    assert verifyObject(ICredentialsChecker, checker)
    assert result_of(checker.request_avatar_id(ClientCertificate(cert))) == "alice"
    with pytest.raises(UnauthorizedLogin):
        result_of(checker.request_avatar_id(ClientCertificate(other)))
    no_cn = make_cert(common_name=None)
    checker = ClientCertificateChecker(fingerprints=[colon_hex(no_cn)], now=lambda: NOW)
    assert result_of(checker.request_avatar_id(ClientCertificate(no_cn))) == ClientCertificate(no_cn).fingerprint


def test_certificate_by_common_name_and_both() -> None:
    alice, bob = make_cert("alice"), make_cert("bob")
    by_name = ClientCertificateChecker(common_names=["alice"], now=lambda: NOW)
    assert result_of(by_name.request_avatar_id(ClientCertificate(alice))) == "alice"
    with pytest.raises(UnauthorizedLogin):
        result_of(by_name.request_avatar_id(ClientCertificate(bob)))
    both = ClientCertificateChecker(common_names=["bob"], fingerprints=[colon_hex(alice)], now=lambda: NOW)
    for cert in (alice, bob):
        with pytest.raises(UnauthorizedLogin):
            result_of(both.request_avatar_id(ClientCertificate(cert)))


def test_certificate_outside_validity_period() -> None:
    cert = make_cert(days=1)
    later = NOW + datetime.timedelta(days=2)
    checker = ClientCertificateChecker(common_names=["alice"], now=lambda: later)
    with pytest.raises(UnauthorizedLogin):
        result_of(checker.request_avatar_id(ClientCertificate(cert)))


def test_certificate_checker_needs_configuration() -> None:
    with pytest.raises(ValueError):
        ClientCertificateChecker()


# --- throttling -------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.time = 1000.0

    def __call__(self) -> float:
        return self.time


def attempt_login(throttle: LoginThrottle, db: InMemoryUsernamePasswordDatabase,
                  user: str, password: str, peer: str) -> Any:
    return result_of(throttle.guard(user, peer, lambda: db.request_avatar_id(UsernamePassword(user, password))))


def test_throttle_locks_a_user_out(db: InMemoryUsernamePasswordDatabase) -> None:
    clock = Clock()
    throttle = LoginThrottle(max_failures=3, window=60.0, lockout=300.0, now=clock)
    for i in range(3):
        with pytest.raises(UnauthorizedLogin):
            attempt_login(throttle, db, "alice", f"guess{i}", peer=f"10.0.0.{i}")
    assert throttle.is_throttled("alice", "10.9.9.9")
    # Now even the right password fails, with the same message, and the check is not run.
    calls = []
    d = throttle.guard("alice", "10.9.9.9", lambda: calls.append(1))
    with pytest.raises(UnauthorizedLogin) as info:
        result_of(d)
    assert calls == [] and str(info.value) == UnauthorizedLogin.MESSAGE
    clock.time += 301
    assert attempt_login(throttle, db, "alice", "wonderland", peer="10.9.9.9") == "alice"


def test_throttle_locks_a_peer_out(db: InMemoryUsernamePasswordDatabase) -> None:
    clock = Clock()
    throttle = LoginThrottle(max_failures=3, window=60.0, lockout=300.0, now=clock)
    for user in ("u1", "u2", "u3"):
        with pytest.raises(UnauthorizedLogin):
            attempt_login(throttle, db, user, "x", peer="10.6.6.6")
    with pytest.raises(UnauthorizedLogin):
        attempt_login(throttle, db, "alice", "wonderland", peer="10.6.6.6")
    assert attempt_login(throttle, db, "alice", "wonderland", peer="10.1.1.1") == "alice"


def test_throttle_window_and_success(db: InMemoryUsernamePasswordDatabase) -> None:
    clock = Clock()
    throttle = LoginThrottle(max_failures=3, window=60.0, now=clock)
    for _ in range(2):
        with pytest.raises(UnauthorizedLogin):
            attempt_login(throttle, db, "alice", "x", peer="p")
    clock.time += 61  # those two have left the window
    for _ in range(2):
        with pytest.raises(UnauthorizedLogin):
            attempt_login(throttle, db, "alice", "x", peer=f"q{_}")
    assert not throttle.is_throttled("alice", "r")
    assert attempt_login(throttle, db, "alice", "wonderland", peer="r") == "alice"
    with pytest.raises(UnauthorizedLogin):  # the success reset the user's count
        attempt_login(throttle, db, "alice", "x", peer="s")
    assert not throttle.is_throttled("alice", "t")


def test_throttle_counts_only_credential_failures() -> None:
    throttle = LoginThrottle(max_failures=1, now=Clock())
    with pytest.raises(LoginDenied):
        result_of(throttle.guard("alice", "p", lambda: fail(LoginDenied("no"))))
    assert not throttle.is_throttled("alice", "p")
    with pytest.raises(ScramError):
        result_of(throttle.guard("alice", "p", lambda: fail(ScramError("garbage"))))
    assert throttle.is_throttled("alice", None)
    assert result_of(LoginThrottle().guard(None, None, lambda: succeed(7))) == 7


def test_throttle_prunes_old_records() -> None:
    clock = Clock()
    throttle = LoginThrottle(max_failures=5, window=10.0, lockout=10.0, now=clock, max_entries=10)
    for i in range(10):
        throttle.record_failure(f"user{i}", None)
    clock.time += 11
    throttle.record_failure("fresh", None)
    assert len(throttle._records) == 1


# --- the user file ----------------------------------------------------------------------------


def salted_password(password: str, verifier_text: str) -> bytes:
    iterations, salt = verifier_text.split("$")[1].split(":")
    return hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))


def assert_no_password_equivalent(path: Path, user: str, password: str) -> None:
    data = path.read_bytes()
    assert password.encode() not in data
    verifier_text = next(line for line in data.decode().splitlines() if line.startswith(user + ":"))
    salted = salted_password(password, verifier_text.partition(":")[2])
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    for secret in (salted, client_key):
        assert secret not in data
        assert base64.b64encode(secret) not in data
        assert secret.hex().encode() not in data


def test_file_database(tmp_path: Path) -> None:
    path = tmp_path / "users"
    db = FileUserDatabase(path, iterations=MIN_ITERATIONS)
    assert verifyObject(ICredentialsChecker, db) and verifyObject(IScramVerifierSource, db)
    assert db.users() == []  # a missing file is an empty database
    db.add_user("alice", "wonderland")
    db.add_user("bob", "builder")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert db.users() == ["alice", "bob"] and "alice" in db
    assert_no_password_equivalent(path, "alice", "wonderland")
    assert result_of(db.request_avatar_id(UsernamePassword("bob", "builder"))) == "bob"
    assert result_of(db.request_avatar_id(scram_login(db, "alice", "wonderland"))) == "alice"
    db.set_password("alice", "looking glass")
    with pytest.raises(UnauthorizedLogin):
        scram_login(db, "alice", "wonderland")
    db.remove_user("bob")
    assert db.users() == ["alice"]
    with pytest.raises(ValueError):
        db.add_user("alice", "x")
    with pytest.raises(KeyError):
        db.remove_user("bob")
    with pytest.raises(ValueError):
        db.add_user("a:b", "x")
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_file_database_reloads_on_change(tmp_path: Path) -> None:
    path = tmp_path / "users"
    server_db = FileUserDatabase(path, iterations=MIN_ITERATIONS)
    FileUserDatabase(path, iterations=MIN_ITERATIONS).add_user("carol", "secret")  # another process
    assert server_db.get_scram_verifier("carol") is not None
    path.write_text(path.read_text() + "garbage\n")  # a botched edit keeps the last good users
    assert server_db.users() == ["carol"]
    with pytest.raises(UserFileError, match="line 3"):
        FileUserDatabase(path)


def test_user_file_round_trip_and_errors() -> None:
    db = InMemoryUsernamePasswordDatabase({"alice": "a", "b=c,d": "b"}, iterations=MIN_ITERATIONS)
    users = {name: db.get_scram_verifier(name) for name in db.users()}
    text = format_user_file(users)  # type: ignore[arg-type]
    assert parse_user_file(text) == users
    assert parse_user_file("\n# comment\n\r\n" + text.replace("\n", "\r\n")) == users
    line = text.splitlines()[1]
    for bad in ("alice", "alice:nonsense", line + "\n" + line, "e\u0301" + line[5:], ":" + line[6:]):
        with pytest.raises(UserFileError, match="line"):
            parse_user_file(bad)


def run_cli(path: Path, *args: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "cred.userfile", str(path), *args]
    if password is not None:
        command += ["--password-stdin", "--iterations", str(MIN_ITERATIONS)]
    return subprocess.run(
        command, input=None if password is None else password + "\n", capture_output=True,
        text=True, cwd=REPO, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def test_cli(tmp_path: Path) -> None:
    path = tmp_path / "users"
    assert run_cli(path, "add", "alice", password="wonderland").returncode == 0
    assert run_cli(path, "add", "bob", password="builder").returncode == 0
    listed = run_cli(path, "list")
    assert listed.returncode == 0 and listed.stdout.split() == ["alice", "bob"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert_no_password_equivalent(path, "alice", "wonderland")
    assert_no_password_equivalent(path, "bob", "builder")

    db = FileUserDatabase(path)
    assert result_of(db.request_avatar_id(scram_login(db, "alice", "wonderland"))) == "alice"
    assert run_cli(path, "passwd", "alice", password="looking glass").returncode == 0
    with pytest.raises(UnauthorizedLogin):
        scram_login(db, "alice", "wonderland")
    assert scram_login(db, "alice", "looking glass").username == "alice"
    assert_no_password_equivalent(path, "alice", "looking glass")

    assert run_cli(path, "remove", "bob").returncode == 0
    assert run_cli(path, "list").stdout.split() == ["alice"]

    for failing in (run_cli(path, "add", "alice", password="x"), run_cli(path, "remove", "bob"),
                    run_cli(path, "passwd", "bob", password="x"), run_cli(path, "add", "eve", password="")):
        assert failing.returncode == 1 and "error" in failing.stderr
    assert run_cli(path, "list").stdout.split() == ["alice"]
    assert run_cli(path, "frobnicate").returncode == 2


def test_throttle_counts_unicode_forms_of_a_name_together() -> None:
    throttle = LoginThrottle(max_failures=2, now=Clock())
    throttle.record_failure("alice", None)
    throttle.record_failure("ali\u00adce", None)  # SASLprep maps the soft hyphen to nothing
    assert throttle.is_throttled("alice", None)
