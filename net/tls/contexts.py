"""TLS errors, context builders and certificate checks.

Secure by default: a client context verifies the server's certificate chain *and* that the
certificate names the host connected to; only ``insecure_skip_verify=True`` turns that off, and
says so in the log. Both sides speak TLS 1.2 or newer with OpenSSL's default cipher suites, and
refuse renegotiation (a TLS 1.2 feature with a history of attacks that we do not need).

Host names are checked here, against the certificate's subjectAltName only (DNS entries, with a
wildcard allowed as the whole leftmost label, and IP entries for IP literals such as 127.0.0.1),
as browsers and Python's ``ssl`` do; the legacy common-name fallback is not used. The check runs
in OpenSSL's verify callback, so a mismatch aborts the handshake with an alert to the server.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from typing import Callable, Protocol as TypingProtocol

from cryptography import x509
from OpenSSL import SSL, crypto

from ..error import ConnectError, ConnectionLost

__all__ = [
    "TLSError",
    "CertificateError",
    "server_context",
    "client_context",
    "match_hostname",
]

log = logging.getLogger("net.tls")

PathLike = str | os.PathLike[str]


class TLSError(ConnectError, ConnectionLost):
    """TLS failed: the handshake (a :class:`ConnectError` for clients) or a record later on
    (a :class:`ConnectionLost`). The message names the reason OpenSSL or our checks gave."""


class CertificateError(TLSError):
    """A certificate was refused, by us ("certificate verify failed: ...", "hostname mismatch:
    expected 'x'", "peer did not return a certificate") or by the peer (its alert, e.g.
    "alert unknown ca", "alert certificate required")."""


# The verify errors people actually meet, in OpenSSL's words (the lookup function is not public).
_VERIFY_REASONS = {
    2: "unable to get issuer certificate",
    7: "certificate signature failure",
    9: "certificate is not yet valid",
    10: "certificate has expired",
    18: "self-signed certificate",
    19: "self-signed certificate in certificate chain",
    20: "unable to get local issuer certificate",
    21: "unable to verify the first certificate",
    23: "certificate revoked",
    24: "invalid CA certificate",
    26: "unsupported certificate purpose",
}


class _Verified(TypingProtocol):
    """What the verify callback needs from the connection (its ``app_data``)."""

    hostname: str | None
    verify_error: str | None


def _verify_callback(check_host: bool) -> Callable[..., bool]:
    """A verify callback that records *why* it refused, so the error can say more than
    OpenSSL's bare "certificate verify failed"."""

    def verify(conn: SSL.Connection, cert: crypto.X509, errnum: int, depth: int, ok: int) -> bool:
        owner: _Verified | None = conn.get_app_data()
        if not ok:
            if owner is not None and owner.verify_error is None:
                reason = _VERIFY_REASONS.get(errnum, f"X509 verify error {errnum}")
                subject = cert.to_cryptography().subject.rfc4514_string() or "an empty subject"
                owner.verify_error = f"certificate verify failed: {reason} (for {subject})"
            return False
        if depth == 0 and check_host and owner is not None and owner.hostname:
            leaf = cert.to_cryptography()
            if not match_hostname(leaf, owner.hostname):
                names = ", ".join(_san_names(leaf)) or "no subjectAltName"
                owner.verify_error = (f"certificate verify failed: hostname mismatch: expected "
                                      f"{owner.hostname!r}, certificate is for {names}")
                return False
        return True

    return verify


def _san_names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(n) for n in san.get_values_for_type(x509.DNSName)] + [
        str(ip) for ip in san.get_values_for_type(x509.IPAddress)]


def match_hostname(cert: x509.Certificate, hostname: str) -> bool:
    """True if ``cert``'s subjectAltName covers ``hostname`` (a DNS name or an IP literal)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    host = hostname.strip("[]").split("%", 1)[0]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return ip in san.get_values_for_type(x509.IPAddress)
    wanted = host.rstrip(".").lower().split(".")
    for pattern in san.get_values_for_type(x509.DNSName):
        labels = pattern.rstrip(".").lower().split(".")
        if len(labels) != len(wanted):
            continue
        if labels[0] == "*" and len(labels) > 2:  # "*.example.com" yes, "*.com" no
            if labels[1:] == wanted[1:]:
                return True
        elif labels == wanted:
            return True
    return False


def _base_context(method: int) -> SSL.Context:
    ctx = SSL.Context(method)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    ctx.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_NO_RENEGOTIATION)
    return ctx


def _load_identity(ctx: SSL.Context, cert: PathLike, key: PathLike) -> None:
    """Load a certificate (chain) and its key, failing early if they do not belong together."""
    ctx.use_certificate_chain_file(os.fspath(cert))
    ctx.use_privatekey_file(os.fspath(key))
    ctx.check_privatekey()


def server_context(cert: PathLike, key: PathLike, ca: PathLike | None = None) -> SSL.Context:
    """A server context presenting ``cert`` (PEM, leaf first, then intermediates) with ``key``.

    With ``ca``, clients must present a certificate signed by it; the handshake fails otherwise.
    Raises ``OSError`` or ``OpenSSL.SSL.Error`` if the files are missing or do not match.
    """
    ctx = _base_context(SSL.TLS_SERVER_METHOD)
    _load_identity(ctx, cert, key)
    if ca is not None:
        ctx.load_verify_locations(os.fspath(ca))
        ctx.load_client_ca(os.fspath(ca).encode())  # tells clients which CA to pick a cert for
        ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, _verify_callback(False))
    return ctx


def client_context(
    ca: PathLike | None = None,
    cert: PathLike | None = None,
    key: PathLike | None = None,
    *,
    insecure_skip_verify: bool = False,
) -> SSL.Context:
    """A client context that verifies the server's certificate against ``ca`` (else the system's
    trust store) and checks that it names the host connected to.

    ``cert``/``key`` present a client certificate. ``insecure_skip_verify=True`` accepts any
    server certificate -- anyone on the path can then read and change the traffic -- and logs a
    warning each time such a context is made.
    """
    ctx = _base_context(SSL.TLS_CLIENT_METHOD)
    if (cert is None) != (key is None):
        raise ValueError("client_context needs both cert= and key= for a client certificate, or neither")
    if cert is not None and key is not None:
        _load_identity(ctx, cert, key)
    if insecure_skip_verify:
        log.warning("TLS client context made with insecure_skip_verify=True: server certificates "
                    "and host names are NOT verified")
        ctx.set_verify(SSL.VERIFY_NONE)
        return ctx
    if ca is not None:
        ctx.load_verify_locations(os.fspath(ca))
    else:
        ctx.set_default_verify_paths()
    ctx.set_verify(SSL.VERIFY_PEER, _verify_callback(True))
    return ctx


def describe_ssl_error(exc: BaseException) -> str:
    """OpenSSL's reasons from an ``SSL.Error`` (a list of (lib, func, reason)), as one string."""
    reasons: list[str] = []
    if exc.args and isinstance(exc.args[0], list):
        reasons = [str(item[2]) for item in exc.args[0] if isinstance(item, tuple) and len(item) > 2]
    return "; ".join(r for r in reasons if r) or str(exc) or type(exc).__name__


def is_certificate_problem(reason: str) -> bool:
    """Whether OpenSSL's reason is about a certificate (ours refused by the peer, or theirs)."""
    reason = reason.lower()
    return any(word in reason for word in ("certificate", "unknown ca", "unknown_ca"))


