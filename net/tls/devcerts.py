"""Throw-away certificates for development and tests: a CA, a server and a client certificate.

Tests generate these at run time into a temporary directory, so no private key is ever checked
into the repository. EC P-256 keys keep generation fast (milliseconds, not the seconds RSA takes).
"""

import datetime
import ipaddress
import os
from pathlib import Path
from typing import NamedTuple, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["DEFAULT_HOSTS", "DevCerts", "make_dev_certs"]

DEFAULT_HOSTS: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
"""Names the server certificate is valid for unless told otherwise: every loopback spelling."""


class DevCerts(NamedTuple):
    """Paths of the files :func:`make_dev_certs` wrote."""

    ca: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_dev_certs(
    directory: str | os.PathLike[str],
    hosts: Sequence[str] = DEFAULT_HOSTS,
    *,
    client_name: str = "pbroker-dev-client",
    days: int = 365,
) -> DevCerts:
    """Write ``ca.pem``/``ca.key``, ``server.pem``/``server.key`` and ``client.pem``/``client.key``.

    The server certificate names every entry of ``hosts`` in its subjectAltName (IP literals as IP
    entries, the rest as DNS names); the client certificate's common name is ``client_name``.
    Keys are written readable by the owner only. Existing files are overwritten.
    """
    hosts = [h.strip() for h in hosts if h.strip()]
    if not hosts:
        raise ValueError("make_dev_certs needs at least one host name for the server certificate")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=days)  # tolerate skew

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("pbroker development CA")
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key(), start, end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(common_name: str, usage: x509.ObjectIdentifier, san: list[x509.GeneralName]) -> tuple[
            x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            _builder(_name(common_name), ca_name, key.public_key(), start, end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(ca_key, hashes.SHA256()), key

    server_cert, server_key = leaf(hosts[0], ExtendedKeyUsageOID.SERVER_AUTH, [_general_name(h) for h in hosts])
    client_cert, client_key = leaf(client_name, ExtendedKeyUsageOID.CLIENT_AUTH, [])

    paths = DevCerts(*(out / n for n in (
        "ca.pem", "ca.key", "server.pem", "server.key", "client.pem", "client.key")))
    _write_cert(paths.ca, ca_cert)
    _write_key(paths.ca_key, ca_key)
    _write_cert(paths.server_cert, server_cert)
    _write_key(paths.server_key, server_key)
    _write_cert(paths.client_cert, client_cert)
    _write_key(paths.client_key, client_key)
    return paths


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey,
             start: datetime.datetime, end: datetime.datetime) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
    )


def _key_usage(cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign, crl_sign=cert_sign,
        encipher_only=False, decipher_only=False)


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)  # O_CREAT's mode does not apply to a file that already existed
