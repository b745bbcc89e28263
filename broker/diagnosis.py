"""Words for how a connection ended and why a handshake failed, for error messages.

Pure functions of what the session saw (how it learned the connection was ending, the reason
the transport gave, the first bytes the peer sent), so the session itself only records facts.
The causes are :data:`broker.errors.CAUSES`.
"""

from __future__ import annotations

import errno

import net.error

from . import wire
from .errors import HandshakeError

__all__ = ["SNIFF_BYTES", "Ending", "why_lost", "not_pbroker", "looks_like_tls"]

#: How many of the first bytes received are kept to tell what a non-pbroker peer speaks.
SNIFF_BYTES = 8

#: (cause, text, goodbye kind): how a connection ended, as ConnectionLost reports it.
Ending = tuple[str, str, "str | None"]

#: Socket errors that mean the connection was reset or broke under us.
_RESET_ERRNOS = frozenset({errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED, errno.ENETRESET,
                           errno.EHOSTUNREACH, errno.ENETUNREACH})


def looks_like_tls(first: bytes) -> bool:
    """A TLS record header: content type 20..23 (handshake 22, alert 21), major version 3."""
    return len(first) >= 2 and 0x14 <= first[0] <= 0x17 and first[1] == 0x03


def _preview(first: bytes) -> str:
    text = first.decode("ascii", "replace")
    if text.isprintable():
        return repr(text) + "..."
    return "bytes " + first.hex(" ") + " ..."


def why_lost(reason: BaseException | None, *, side: str, handshaking: bool, first_bytes: bytes) -> Ending:
    """How a connection ended that this side did not end knowingly (no goodbye, no close)."""
    peer = {"client": "the server", "server": "the client"}.get(side, "the peer")
    if isinstance(reason, TimeoutError) or (isinstance(reason, OSError) and reason.errno == errno.ETIMEDOUT):
        return "timeout", str(reason), None
    if reason is None or (isinstance(reason, net.error.ConnectionClosed) and reason.by_peer):
        if handshaking and not first_bytes:
            return ("closed", "the peer closed the connection during the handshake without sending "
                    "anything: is it a pbroker server? (one serving TLS needs a tls: endpoint)", None)
        return ("closed", f"the peer closed the connection without a goodbye: "
                f"{peer} process may have exited", None)
    if isinstance(reason, net.error.ConnectionDone):
        return "local", "the connection was closed on this side", None
    if isinstance(reason, OSError):  # net.error.ConnectionLost, TLS errors, socket errors
        if reason.errno in _RESET_ERRNOS:
            return ("reset", f"the connection was reset ({reason}): {peer} host or process may have "
                    "crashed, or the network dropped it", None)
        return "reset", f"the connection broke: {reason}", None
    return "local", f"closed on this side after an error: {type(reason).__name__}: {reason}", None


def _tls_hint(side: str, peer: object) -> str:
    """What to write instead, in the transport's own endpoint syntax (TLS over a Unix socket is
    the ``unix:`` endpoint with TLS options, not ``tls:``). Told apart by shape, since this module
    imports nothing of net's but its errors: a Unix address has a ``name`` and no ``host``."""
    if hasattr(peer, "name") and not hasattr(peer, "host"):
        if side == "server":
            return ("the client seems to speak TLS to this plain endpoint: give the unix: endpoint "
                    "cert= and key=, or have the client connect without TLS options")
        path = getattr(peer, "name", None) or "PATH"
        return (f"the peer seems to expect TLS: give the unix: endpoint TLS options "
                f"(e.g. 'unix:{path}:hostname=NAME:ca=ca.pem')")
    if side == "server":
        return ("the client seems to speak TLS to this plain endpoint: serve a tls: endpoint, "
                "or have the client connect with tcp:")
    return "the peer seems to expect TLS: use a tls: endpoint (e.g. 'tls:HOST:PORT:ca=ca.pem')"


def not_pbroker(reason: BaseException | None, *, side: str, first_bytes: bytes, peer: object = None) -> str:
    """Why a handshake failed, from the first bytes the peer sent; ``peer`` (the transport's
    ``get_peer()``, if known) picks the endpoint syntax of the hint."""
    if looks_like_tls(first_bytes):
        return _tls_hint(side, peer)
    if isinstance(reason, wire.HandshakeError) and not isinstance(reason, HandshakeError):
        return str(reason)
    detail = f" ({reason})" if reason is not None else ""
    return f"not a pbroker peer: it sent {_preview(first_bytes)} instead of a pbroker hello{detail}"
