"""The client side of an HTTP CONNECT tunnel, as a sans-I/O state machine.

The same shape as the SOCKS machines of :mod:`net.socks`: ``start()`` returns the request,
``receive_data(data)`` takes the proxy's bytes in any chunking (and returns the bytes to send
next: always none here), :attr:`~ConnectHandshake.done` says the tunnel is open and
:attr:`~ConnectHandshake.leftover` holds the target's first bytes that came with the response.

Request (RFC 9110 section 9.3.6)::

    CONNECT host:port HTTP/1.1
    Host: host:port
    Proxy-Authorization: Basic base64(user:password)      (with user= and password=)

Response: a status line and header fields up to an empty line. A 2xx opens the tunnel (its
header fields are ignored, Content-Length included, as the RFC says); a 1xx is skipped; anything
else is a :class:`~net.error.ProxyError` carrying the status. The response head is bounded
(``max_head_bytes``): a proxy sending an endless header is cut off with an error. Lines may end
with CRLF or a bare LF. This is all of HTTP a tunnel needs, so no HTTP library is used.
"""

from __future__ import annotations

import base64
import enum
import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Any

from .error import ProxyError

__all__ = ["ConnectHandshake", "DEFAULT_MAX_HEAD_BYTES"]

DEFAULT_MAX_HEAD_BYTES = 16 * 1024
"""Bytes of response head (status line and header fields, all 1xx responses included) accepted."""

_STATUS_LINE = re.compile(rb"HTTP/(\d)\.(\d)[ \t]+(\d{3})(?:[ \t]+([^\r\n]*))?\r?")
_TOKEN_FREE = re.compile(r"[\x00-\x20\x7f]")


class _State(enum.Enum):
    HEAD = "waiting for its response to our CONNECT request"
    OPEN = "with the tunnel open"


class _Event(enum.Enum):
    INTERIM = "a 1xx response: the real one follows"
    SUCCESS = "a 2xx response: the tunnel is open"


#: Statuses with their own explanation: whose fault it is and what to do.
_STATUS_ADVICE: Mapping[int, str] = {
    400: "the proxy did not understand our CONNECT request",
    403: "the proxy's rules refuse this client or this target (some allow CONNECT to port 443 only); "
         "ask its operator",
    404: "the proxy does not know the target host",
    405: "the proxy does not allow CONNECT",
    500: "the proxy could not reach the target: is a server listening there, as seen from the proxy?",
    501: "the proxy does not implement CONNECT",
    502: "the proxy could not reach the target: is a server listening there, as seen from the proxy?",
    503: "the proxy could not reach the target, or is overloaded: is a server listening there?",
    504: "the proxy timed out connecting to the target: is the target reachable from the proxy?",
}


def _printable(raw: bytes, limit: int = 120) -> str:
    text = raw.decode("latin-1").strip()
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text[:limit] + ("..." if len(text) > limit else "")


def _authority(host: str, port: int) -> str:
    try:
        is_v6 = ipaddress.ip_address(host.strip("[]")).version == 6
    except ValueError:
        is_v6 = False
    return f"[{host.strip('[]')}]:{port}" if is_v6 else f"{host}:{port}"


class ConnectHandshake:
    """``CONNECT host:port`` through an HTTP proxy, with Basic proxy authentication if given.

    ``proxy`` names the proxy (``host:port``) in error messages. Raises ValueError for a target
    or credentials that cannot go in a request (a space or control character in the host, a
    colon in the user name).
    """

    kind = "connect"

    def __init__(self, host: str, port: int, *, user: str | None = None, password: str | None = None,
                 proxy: str = "", max_head_bytes: int = DEFAULT_MAX_HEAD_BYTES) -> None:
        if not host or _TOKEN_FREE.search(host):
            raise ValueError(f"the target host {host!r} cannot go in an HTTP request")
        if not 0 < port <= 65535:
            raise ValueError(f"the target port must be from 1 to 65535, got {port}")
        if (user is None) != (password is None):
            raise ValueError("HTTP proxy authentication needs both user= and password=")
        if user is not None and (":" in user or _TOKEN_FREE.search(user.replace(" ", "x"))):
            raise ValueError("the HTTP proxy user name must not contain ':' or control characters")
        if password is not None and re.search(r"[\x00-\x1f\x7f]", password):
            raise ValueError("the HTTP proxy password must not contain control characters")
        self.host = host
        self.port = port
        self.user = user
        self.proxy = proxy
        self.max_head_bytes = max_head_bytes
        self.state = _State.HEAD
        self.leftover = b""
        self.status: int | None = None
        """The final response's status code, once it arrived."""
        self.reason = ""
        self._credentials = None if user is None or password is None else f"{user}:{password}"
        self._buffer = bytearray()
        self._scanned = 0  # bytes of _buffer known to hold no end of head
        self._head_bytes = 0  # bytes of 1xx heads already taken

    def __repr__(self) -> str:
        return f"<ConnectHandshake to {self.target} {self.state.name.lower()}>"

    @property
    def target(self) -> str:
        return _authority(self.host, self.port)

    @property
    def done(self) -> bool:
        return self.state is _State.OPEN

    @property
    def phase(self) -> str:
        return self.state.value

    def start(self) -> bytes:
        lines = [f"CONNECT {self.target} HTTP/1.1", f"Host: {self.target}"]
        if self._credentials is not None:
            token = base64.b64encode(self._credentials.encode("utf-8")).decode("ascii")
            lines.append(f"Proxy-Authorization: Basic {token}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")

    def receive_data(self, data: bytes) -> bytes:
        """Take bytes from the proxy. Raises ProxyError for a refusal or a broken response,
        RuntimeError once :attr:`done` (the bytes are the protocol above's then)."""
        if self.done:
            raise RuntimeError(f"{self!r}: the handshake is over; give the bytes to the protocol above")
        self._buffer += data
        while not self.done:
            parsed = self._PARSERS[self.state](self, self._buffer)
            if parsed is None:
                break
            used, event = parsed
            del self._buffer[:used]
            self._scanned = 0
            self.state = self._TRANSITIONS[(self.state, event)]
        if self.done:
            self.leftover, self._buffer = bytes(self._buffer), bytearray()
        return b""

    # -- parsing -----------------------------------------------------------------------------------

    @property
    def who(self) -> str:
        """The proxy as error messages name it: "the HTTP proxy at host:port"."""
        return "the HTTP proxy" + (f" at {self.proxy}" if self.proxy else "")

    def _error(self, message: str, code: int | None = None) -> ProxyError:
        return ProxyError(f"{self.who} {message}", proxy=self.proxy, kind=self.kind, code=code)

    def _end_of_head(self, buffer: bytearray) -> int:
        """The offset just past the empty line ending the head, or -1; scans each byte once."""
        start = max(0, self._scanned - 2)
        ends = [at + len(ending) for ending in (b"\n\r\n", b"\n\n")
                if (at := buffer.find(ending, start)) >= 0]
        if ends:
            return min(ends)
        self._scanned = len(buffer)
        return -1

    def _parse_head(self, buffer: bytearray) -> tuple[int, _Event] | None:
        if len(buffer) >= 5 and not buffer.startswith(b"HTTP/"):
            hint = " (it answered like a SOCKS proxy: use socks5: or socks4:)" if buffer[0] in (0, 4, 5) else ""
            raise self._error(f"did not answer as an HTTP proxy: its response starts with "
                              f"{bytes(buffer[:24])!r}{hint}")
        end = self._end_of_head(buffer)
        if end < 0:
            if self._head_bytes + len(buffer) > self.max_head_bytes:
                raise self._error(f"sent more than {self.max_head_bytes} bytes of response header "
                                  "without ending it; it is not a well-behaved HTTP proxy")
            return None
        self._head_bytes += end
        if self._head_bytes > self.max_head_bytes:
            raise self._error(f"sent more than {self.max_head_bytes} bytes of response header; "
                              "it is not a well-behaved HTTP proxy")
        status_line = bytes(buffer[:buffer.index(b"\n")])
        match = _STATUS_LINE.fullmatch(status_line)
        if match is None:
            raise self._error(f"sent a malformed status line {_printable(status_line)!r}")
        status = int(match.group(3))
        reason = _printable(match.group(4) or b"")
        if 100 <= status < 200:
            return end, _Event.INTERIM
        self.status, self.reason = status, reason
        if 200 <= status < 300:
            return end, _Event.SUCCESS
        raise self._refused(status, reason)

    def _refused(self, status: int, reason: str) -> ProxyError:
        said = f"HTTP {status}" + (f" {reason}" if reason else "")
        if status in (401, 407):
            if self._credentials is None:
                return self._error(f"refused the tunnel to {self.target} ({said}): proxy "
                                   "authentication required: pass user= and password=", status)
            return self._error(f"rejected the credentials of user {self.user!r} ({said}): "
                               "check user= and password=", status)
        advice = _STATUS_ADVICE.get(status)
        if advice is None:
            advice = ("the proxy answered with a redirect, which a tunnel cannot follow"
                      if 300 <= status < 400 else "the proxy refused the tunnel")
        return self._error(f"refused the tunnel to {self.target} ({said}): {advice}", status)

    _PARSERS: Mapping[_State, Callable[[Any, bytearray], tuple[int, _Event] | None]] = {
        _State.HEAD: _parse_head,
    }
    _TRANSITIONS: Mapping[tuple[_State, _Event], _State] = {
        (_State.HEAD, _Event.INTERIM): _State.HEAD,
        (_State.HEAD, _Event.SUCCESS): _State.OPEN,
    }
