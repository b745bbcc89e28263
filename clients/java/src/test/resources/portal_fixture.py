"""A real cred Portal served by the Python broker, for the Java client's login tests.

    .venv/bin/python clients/java/src/test/resources/portal_fixture.py CERTDIR

CERTDIR is what ``python -m net.tls make-dev-certs CERTDIR`` wrote (the Java test makes it in a
temporary directory; no key is ever committed). The portal has users ``alice`` / ``s3cret`` and
``bob`` / ``hunter2`` (in-memory SCRAM verifiers), an anonymous checker, and a client-certificate
checker accepting the dev client certificate (common name ``pbroker-dev-client``). It is served:

- ``tcp``:   plain TCP on 127.0.0.1;
- ``tls``:   TLS with ``server.pem`` (no client certificate asked for);
- ``mtls``:  TLS that requires a client certificate signed by ``ca.pem`` (``login_certificate``);
- ``other``: TLS with a certificate signed by the same CA but naming only
  ``pbroker-other.invalid``, for the host-name-mismatch test.

Prints ``READY tcp=<port> tls=<port> mtls=<port> other=<port>`` once listening, and exits when
stdin closes. The client key is also written as PKCS#8 DER (``client.key.der``) next to the PEM
file, for readers that cannot take PEM (Java's KeyFactory reads either after base64 decoding).
"""

from __future__ import annotations

import datetime
import os
import sys
import threading
from pathlib import Path
from typing import Any

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", ".."))
sys.path.insert(0, ROOT)

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402

import broker  # noqa: E402
import net.tls  # noqa: E402,F401  (registers the tls: endpoint type)
from broker.login import Avatar  # noqa: E402
from cred.checkers import (  # noqa: E402
    AllowAnonymousAccess,
    ClientCertificateChecker,
    InMemoryUsernamePasswordDatabase,
)
from cred.portal import Portal, Realm  # noqa: E402
from cred.throttle import LoginThrottle  # noqa: E402
from net.defer import Deferred, Failure, gather  # noqa: E402
from net.reactor import make_reactor  # noqa: E402


class Counter(broker.Referenceable):
    def __init__(self, start: int) -> None:
        self.value = start

    def remote_increment(self, by: int = 1) -> int:
        self.value += by
        return self.value


class User(Avatar):
    """The avatar: who logged in, a reference it hands out, and calls into the client's mind."""

    logouts: list[str] = []

    def __init__(self, reactor: Any, avatar_id: Any, mind: Any) -> None:
        self.reactor = reactor
        self.name = avatar_id if isinstance(avatar_id, str) else "anonymous"
        self.mind = mind
        self.replies: list[Any] = []

    def perspective_whoami(self) -> str:
        return self.name

    def perspective_has_mind(self) -> bool:
        return self.mind is not None

    def perspective_echo(self, value: Any) -> Any:
        return value

    def perspective_counter(self, start: int) -> Counter:
        return Counter(start)

    def perspective_ask_mind(self, method: str, *args: Any) -> Deferred[Any]:
        """Call the mind while this call is running and answer with what it said."""
        d: Deferred[Any] = self.mind.call_remote(method, *args)
        return d

    def perspective_notify_later(self, delay: float, text: str) -> None:
        """Return at once; ``delay`` seconds later the server calls ``notice(text)`` on the mind
        of its own accord, and keeps the answer for ``replies()``."""

        def fire() -> None:
            self.mind.call_remote("notice", text).add_both(self.replies.append)

        self.reactor.call_later(delay, fire)

    def perspective_replies(self) -> list[Any]:
        return [f"error: {r.value}" if isinstance(r, Failure) else r for r in self.replies]

    def perspective_logouts(self) -> list[str]:
        return list(User.logouts)


def make_portal(reactor: Any) -> Portal:
    users = InMemoryUsernamePasswordDatabase(iterations=4096)
    users.add_user("alice", "s3cret")
    users.add_user("bob", "hunter2")
    certificates = ClientCertificateChecker(common_names=["pbroker-dev-client"])
    realm = Realm(lambda avatar_id, mind: User(reactor, avatar_id, mind),
                  on_logout=lambda avatar: User.logouts.append(avatar.name))
    return Portal(realm, [users, AllowAnonymousAccess(), certificates])


def other_name_certificate(certs: Path) -> tuple[Path, Path]:
    """A server certificate from the dev CA that names only ``pbroker-other.invalid``."""
    ca_cert = x509.load_pem_x509_certificate((certs / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((certs / "ca.key").read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pbroker-other.invalid")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("pbroker-other.invalid")]), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    cert_path, key_path = certs / "other.pem", certs / "other.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    os.chmod(key_path, 0o600)
    return cert_path, key_path


def client_key_der(certs: Path) -> None:
    """``client.key`` as PKCS#8 DER, whatever format the PEM file used (PKCS#1, SEC1, PKCS#8)."""
    key = serialization.load_pem_private_key((certs / "client.key").read_bytes(), password=None)
    out = certs / "client.key.der"
    out.write_bytes(key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    os.chmod(out, 0o600)


def main() -> None:
    certs = Path(sys.argv[1]).resolve()
    other_cert, other_key = other_name_certificate(certs)
    client_key_der(certs)
    reactor = make_reactor()
    portal = make_portal(reactor)
    # Generous throttle: the tests fail a few logins on purpose, all from 127.0.0.1.
    throttle = LoginThrottle(max_failures=1000)
    server = f"cert={certs / 'server.pem'}:key={certs / 'server.key'}"
    endpoints = {
        "tcp": "tcp:0:interface=127.0.0.1",
        "tls": f"tls:0:{server}:interface=127.0.0.1",
        "mtls": f"tls:0:{server}:ca={certs / 'ca.pem'}:interface=127.0.0.1",
        "other": f"tls:0:cert={other_cert}:key={other_key}:interface=127.0.0.1",
    }
    listening = [broker.serve(reactor, ep, portal, throttle=throttle) for ep in endpoints.values()]

    def ready(ports: list[Any]) -> None:
        print("READY " + " ".join(f"{name}={p.get_host().port}" for name, p in zip(endpoints, ports)), flush=True)

    def failed(failure: Failure) -> None:
        print(f"cannot listen: {failure.value}", file=sys.stderr, flush=True)
        reactor.stop()

    gather(*listening, consume_errors=True).add_callbacks(ready, failed)

    def watch_stdin() -> None:
        sys.stdin.read()
        reactor.call_from_thread(reactor.stop)

    threading.Thread(target=watch_stdin, daemon=True).start()
    reactor.run()


if __name__ == "__main__":
    main()
