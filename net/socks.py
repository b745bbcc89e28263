"""SOCKS4, SOCKS4a and SOCKS5 client handshakes, as sans-I/O state machines.

A handshake owns no socket, clock or thread, so it is tested by feeding it bytes. ``start()``
returns the first bytes to send to the proxy; ``receive_data(data)`` takes whatever arrived, in
any chunking, and returns the bytes to send next (often none); it raises
:class:`~net.error.ProxyError` when the proxy refuses the tunnel or does not speak the protocol.
Once :attr:`~SocksHandshake.done` is true the tunnel is open and
:attr:`~SocksHandshake.leftover` holds what the proxy sent after its reply: the target's first
bytes, which belong to the protocol above. :mod:`net.tunnels` drives these over a transport;
:mod:`net.httpconnect` is the same shape for HTTP CONNECT.

Each machine is two tables: per state, the parser of the message awaited in it (it returns None
until the message is complete, else the bytes it used and an event), and per (state, event) the
next state and the message we send on entering it. Memory is bounded by the protocols: the
longest SOCKS reply is 262 bytes, and a parser takes no more than its message.

Protocols (client side): SOCKS4 (``CONNECT`` to an IPv4 address, with a user id), SOCKS4a
(the same with a host name the proxy resolves), SOCKS5 (RFC 1928: ``CONNECT`` to an IPv4 or
IPv6 address or a host name the proxy resolves; no authentication, or user name and password
as in RFC 1929).
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from .error import ProxyError

__all__ = [
    "SocksHandshake",
    "Socks4Handshake",
    "Socks5Handshake",
    "SOCKS4_REPLIES",
    "SOCKS5_REPLIES",
]


class _State(enum.Enum):
    """Where a handshake is; the value says it in the words of an error message."""

    METHOD = "waiting for its choice of authentication method"
    AUTH = "waiting for its answer to our user name and password"
    REPLY = "waiting for its reply to our CONNECT request"
    OPEN = "with the tunnel open"


class _Event(enum.Enum):
    NO_AUTH = "the proxy chose no authentication"
    USER_PASSWORD = "the proxy chose user name and password"
    ACCEPTED = "the proxy accepted our credentials"
    GRANTED = "the proxy opened the tunnel"


#: SOCKS5 reply codes (RFC 1928 section 6): (the RFC's name, whose fault it is and what to do).
SOCKS5_REPLIES: Mapping[int, tuple[str, str]] = {
    1: ("general SOCKS server failure", "the proxy failed; see its log"),
    2: ("connection not allowed by ruleset",
        "the proxy's rules refuse this client or this target; ask its operator"),
    3: ("network unreachable", "the proxy has no route to the target's network"),
    4: ("host unreachable",
        "the proxy cannot reach the target host (or could not resolve its name)"),
    5: ("connection refused",
        "the target refused the connection: is a server listening there, as seen from the proxy?"),
    6: ("TTL expired", "the target is too many hops away from the proxy, or the network loops"),
    7: ("command not supported", "the proxy does not offer CONNECT"),
    8: ("address type not supported",
        "the proxy cannot take this kind of target address; try an IP address instead of a name, "
        "or IPv4 instead of IPv6"),
}

#: SOCKS4 reply codes: (the protocol's name, whose fault it is and what to do).
SOCKS4_REPLIES: Mapping[int, tuple[str, str]] = {
    91: ("request rejected or failed",
         "the proxy's rules refuse the target, or it could not connect to it"),
    92: ("request rejected because the proxy cannot connect to identd on the client",
         "the proxy checks the user id with identd, which this host does not run; "
         "use a proxy that does not, or socks5: with user=/password="),
    93: ("request rejected because identd reports a different user id",
         "pass the user id identd reports for this process as user="),
}

_METHOD_NONE = 0x00
_METHOD_USER_PASSWORD = 0x02
_METHOD_NONE_ACCEPTABLE = 0xFF
_METHOD_NAMES = {_METHOD_NONE: "no authentication", _METHOD_USER_PASSWORD: "user name/password"}
_ATYP_IPV4, _ATYP_DOMAIN, _ATYP_IPV6 = 1, 3, 4
_ADDRESS_SIZES = {_ATYP_IPV4: 4, _ATYP_IPV6: 16}


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _host_bytes(host: str) -> bytes:
    """A host name as sent to a proxy: ASCII as it is, anything else as IDNA (ValueError if not)."""
    try:
        return host.encode("ascii") if host.isascii() else host.encode("idna")
    except UnicodeError as exc:
        raise ValueError(f"host name {host!r} cannot be encoded for the proxy: {exc}") from None


def _short(data: bytes, limit: int = 24) -> str:
    return repr(data[:limit]) + ("..." if len(data) > limit else "")


def _not_socks_hint(data: bytes) -> str:
    """Why a reply might have the wrong version byte, from what it looks like."""
    if data.startswith(b"HTTP/") or data[:1] == b"H":
        return " (it answered like an HTTP server: is it an HTTP proxy? then use connect:)"
    if data[:1] == b"\x16":
        return " (it answered like a TLS server)"
    return ""


#: A state's parser: (the handshake, the bytes received so far) -> None while the message is
#: incomplete, else (bytes used, event); raises ProxyError. Its first argument is the subclass.
Parser = Callable[[Any, bytearray], "tuple[int, _Event] | None"]
#: What (state, event) leads to: the next state and the message (a method) sent on entering it.
Transition = tuple[_State, "Callable[[Any], bytes] | None"]


class SocksHandshake:
    """The engine shared by the SOCKS machines: a receive buffer, a state and two tables.

    ``host``/``port`` is the target the proxy is asked to connect to; ``proxy`` names the proxy
    (``host:port``) in error messages.
    """

    kind: ClassVar[str] = "socks"
    _PARSERS: ClassVar[Mapping[_State, Parser]]
    _TRANSITIONS: ClassVar[Mapping[tuple[_State, _Event], Transition]]
    _FIRST_STATE: ClassVar[_State]

    def __init__(self, host: str, port: int, *, proxy: str = "") -> None:
        if not host:
            raise ValueError("the target host must not be empty")
        if not 0 < port <= 65535:
            raise ValueError(f"the target port must be from 1 to 65535, got {port}")
        self.host = host
        self.port = port
        self.proxy = proxy
        self.state = self._FIRST_STATE
        self.leftover = b""
        self._buffer = bytearray()
        self._received = 0  # handshake bytes taken from the proxy so far, for error messages

    def __repr__(self) -> str:
        return f"<{type(self).__name__} to {self.target} {self.state.name.lower()}>"

    @property
    def done(self) -> bool:
        """The proxy opened the tunnel: bytes from now on are the target's."""
        return self.state is _State.OPEN

    @property
    def target(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def phase(self) -> str:
        """Where the handshake is, for messages such as "closed the connection <phase>"."""
        return self.state.value

    def start(self) -> bytes:
        """The first bytes to send to the proxy."""
        raise NotImplementedError

    def receive_data(self, data: bytes) -> bytes:
        """Take bytes from the proxy; returns the bytes to send it next (possibly none).

        Raises ProxyError if the proxy refused or broke the protocol; RuntimeError if called
        after :attr:`done` (the bytes belong to the protocol above then).
        """
        if self.done:
            raise RuntimeError(f"{self!r}: the handshake is over; give the bytes to the protocol above")
        self._buffer += data
        out: list[bytes] = []
        while not self.done:
            parsed = self._PARSERS[self.state](self, self._buffer)
            if parsed is None:
                break
            used, event = parsed
            del self._buffer[:used]
            self._received += used
            try:
                self.state, enter = self._TRANSITIONS[(self.state, event)]
            except KeyError:  # a parser returned an event its state does not expect: our bug
                raise RuntimeError(f"{self!r}: no transition for {event} in state {self.state}") from None
            if enter is not None:
                out.append(enter(self))
        if self.done:
            self.leftover, self._buffer = bytes(self._buffer), bytearray()
        return b"".join(out)

    @property
    def who(self) -> str:
        """The proxy as error messages name it: "the socks5 proxy at host:port"."""
        return f"the {self.kind} proxy" + (f" at {self.proxy}" if self.proxy else "")

    def _error(self, message: str, code: int | None = None) -> ProxyError:
        return ProxyError(f"{self.who} {message}", proxy=self.proxy, kind=self.kind, code=code)


# -- SOCKS4 and SOCKS4a ----------------------------------------------------------------------------


class Socks4Handshake(SocksHandshake):
    """``CONNECT`` through a SOCKS4 proxy; SOCKS4a when the target is a host name.

    SOCKS4 carries IPv4 addresses only: a host name needs the 4a extension (the proxy resolves
    it), which ``allow_names`` permits; without it a name is refused here (ValueError), so that no
    name reaches a proxy that has not been chosen to resolve it. IPv6 targets need SOCKS5.
    """

    kind = "socks4"
    _FIRST_STATE = _State.REPLY

    def __init__(self, host: str, port: int, *, user: str = "", allow_names: bool = False,
                 proxy: str = "") -> None:
        super().__init__(host, port, proxy=proxy)
        ip = _ip(host)
        if isinstance(ip, ipaddress.IPv6Address):
            raise ValueError(f"SOCKS4 cannot carry the IPv6 address {host}; use socks5:")
        if ip is None and not allow_names:
            raise ValueError(
                f"SOCKS4 carries IPv4 addresses only, and {host!r} is a name: use socks4a: to have "
                "the proxy resolve it (if it supports SOCKS4a), socks5:, or an IPv4 address")
        self.user_id = user.encode("utf-8")
        if b"\0" in self.user_id or len(self.user_id) > 255:
            raise ValueError("the SOCKS4 user id must be at most 255 bytes, without NUL characters")
        self._address = ip.packed if ip is not None else None
        self._name = None if ip is not None else _host_bytes(host)
        if self._name is not None and (b"\0" in self._name or not 0 < len(self._name) <= 255):
            raise ValueError(f"host name {host!r} must be 1 to 255 bytes, without NUL characters")

    def start(self) -> bytes:
        if self._name is None:
            assert self._address is not None
            return struct.pack(">BBH", 4, 1, self.port) + self._address + self.user_id + b"\0"
        # SOCKS4a: the address 0.0.0.x (x != 0) says "the host name follows the user id".
        return struct.pack(">BBH", 4, 1, self.port) + b"\0\0\0\1" + self.user_id + b"\0" + self._name + b"\0"

    def _parse_reply(self, buffer: bytearray) -> tuple[int, _Event] | None:
        if len(buffer) >= 1 and buffer[0] not in (0, 4):  # 0 per the protocol; some servers send 4
            raise self._error(
                f"did not answer as a SOCKS4 proxy: its reply starts with {_short(bytes(buffer))}"
                f"{_not_socks_hint(bytes(buffer))}")
        if len(buffer) >= 2 and buffer[1] != 90:
            code = buffer[1]
            name, advice = SOCKS4_REPLIES.get(code, (f"unknown reply code {code}",
                                                     "the proxy broke the protocol"))
            if code == 91 and self._name is not None:
                advice += ("; note that a plain SOCKS4 proxy (dante, for one) refuses SOCKS4a host "
                           "names this way: try an IPv4 address, or socks5:")
            raise self._error(f"refused the tunnel to {self.target}: {name} (SOCKS4 reply {code}): {advice}",
                              code)
        if len(buffer) < 8:
            return None
        return 8, _Event.GRANTED

    _PARSERS = {_State.REPLY: _parse_reply}
    _TRANSITIONS = {(_State.REPLY, _Event.GRANTED): (_State.OPEN, None)}


# -- SOCKS5 ------------------------------------------------------------------------------------------


class Socks5Handshake(SocksHandshake):
    """``CONNECT`` through a SOCKS5 proxy (RFC 1928), with RFC 1929 credentials if given.

    The target goes as an IPv4 or IPv6 address when it is a literal, else as a host name for
    the proxy to resolve (so no name is looked up here). With ``user``/``password`` both methods
    are offered, and the proxy picks.
    """

    kind = "socks5"
    _FIRST_STATE = _State.METHOD

    def __init__(self, host: str, port: int, *, user: str | None = None, password: str | None = None,
                 proxy: str = "") -> None:
        super().__init__(host, port, proxy=proxy)
        if (user is None) != (password is None):
            raise ValueError("SOCKS5 user name/password authentication needs both user= and password=")
        self.user = user
        self._credentials: tuple[bytes, bytes] | None = None
        if user is not None and password is not None:
            name, secret = user.encode("utf-8"), password.encode("utf-8")
            if not 0 < len(name) <= 255 or not 0 < len(secret) <= 255:
                raise ValueError("the SOCKS5 user name and password must be 1 to 255 bytes each (RFC 1929)")
            self._credentials = (name, secret)
        ip = _ip(host)
        if ip is None:
            name = _host_bytes(host)
            if not 0 < len(name) <= 255:
                raise ValueError(f"host name {host!r} is longer than the 255 bytes SOCKS5 carries")
            self._address = bytes([_ATYP_DOMAIN, len(name)]) + name
        else:
            self._address = bytes([_ATYP_IPV4 if ip.version == 4 else _ATYP_IPV6]) + ip.packed
        self.bound: tuple[str, int] | None = None
        """The address the proxy connected from (its BND.ADDR, BND.PORT), once open."""

    @property
    def _methods(self) -> bytes:
        return bytes([_METHOD_NONE, _METHOD_USER_PASSWORD] if self._credentials else [_METHOD_NONE])

    def start(self) -> bytes:
        return bytes([5, len(self._methods)]) + self._methods

    def _check_version(self, buffer: bytearray) -> None:
        if buffer and buffer[0] != 5:
            raise self._error(
                f"did not answer as a SOCKS5 proxy: its reply starts with {_short(bytes(buffer))}"
                f"{_not_socks_hint(bytes(buffer))}")

    def _parse_method(self, buffer: bytearray) -> tuple[int, _Event] | None:
        self._check_version(buffer)
        if len(buffer) < 2:
            return None
        method = buffer[1]
        if method == _METHOD_NONE_ACCEPTABLE:
            if self._credentials is None:
                raise self._error("requires authentication: pass user= and password= "
                                  "(SOCKS5 method reply 0xFF to our offer of no authentication)", method)
            raise self._error("accepts none of our authentication methods (no authentication, user "
                              "name/password); it may want GSSAPI, which we do not offer", method)
        if method not in self._methods:
            raise self._error(f"chose authentication method 0x{method:02X}, which we did not offer "
                              f"({', '.join(_METHOD_NAMES[m] for m in self._methods)}); it broke the protocol",
                              method)
        return 2, _Event.NO_AUTH if method == _METHOD_NONE else _Event.USER_PASSWORD

    def _auth_request(self) -> bytes:
        assert self._credentials is not None
        name, secret = self._credentials
        return bytes([1, len(name)]) + name + bytes([len(secret)]) + secret

    def _parse_auth(self, buffer: bytearray) -> tuple[int, _Event] | None:
        if buffer and buffer[0] not in (1, 5):  # RFC 1929 says 1; some servers answer 5
            raise self._error(f"answered our user name and password with {_short(bytes(buffer))}, "
                              "not an RFC 1929 reply; it broke the protocol")
        if len(buffer) < 2:
            return None
        if buffer[1] != 0:
            raise self._error(f"rejected the user name and password for user {self.user!r} "
                              f"(RFC 1929 status {buffer[1]}): check user= and password=", buffer[1])
        return 2, _Event.ACCEPTED

    def _connect_request(self) -> bytes:
        return bytes([5, 1, 0]) + self._address + struct.pack(">H", self.port)

    def _parse_reply(self, buffer: bytearray) -> tuple[int, _Event] | None:
        self._check_version(buffer)
        if len(buffer) >= 2 and buffer[1] != 0:  # a refusal is clear at once, whatever follows
            code = buffer[1]
            name, advice = SOCKS5_REPLIES.get(code, (f"unknown reply code {code}",
                                                     "the proxy broke the protocol"))
            if code == 8:
                sent = {_ATYP_IPV4: "IPv4 addresses", _ATYP_IPV6: "IPv6 addresses",
                        _ATYP_DOMAIN: "host names"}[self._address[0]]
                advice = (f"the proxy does not take {sent} (or has no route to that address family); "
                          "try another form of the target address")
            raise self._error(f"could not open a tunnel to {self.target}: {name} "
                              f"(SOCKS5 reply {code}): {advice}", code)
        if len(buffer) < 5:
            return None
        atyp = buffer[3]
        if atyp == _ATYP_DOMAIN:
            size = 1 + buffer[4]
        elif atyp in _ADDRESS_SIZES:
            size = _ADDRESS_SIZES[atyp]
        else:
            raise self._error(f"sent a reply with the unknown address type {atyp}; it broke the protocol")
        total = 4 + size + 2
        if len(buffer) < total:
            return None
        raw = bytes(buffer[4:4 + size])
        if atyp == _ATYP_DOMAIN:
            host = raw[1:].decode("ascii", "replace")
        else:
            host = str(ipaddress.ip_address(raw))
        self.bound = (host, struct.unpack(">H", buffer[total - 2:total])[0])
        return total, _Event.GRANTED

    _PARSERS = {
        _State.METHOD: _parse_method,
        _State.AUTH: _parse_auth,
        _State.REPLY: _parse_reply,
    }
    _TRANSITIONS = {
        (_State.METHOD, _Event.NO_AUTH): (_State.REPLY, _connect_request),
        (_State.METHOD, _Event.USER_PASSWORD): (_State.AUTH, _auth_request),
        (_State.AUTH, _Event.ACCEPTED): (_State.REPLY, _connect_request),
        (_State.REPLY, _Event.GRANTED): (_State.OPEN, None),
    }
