"""Addresses of transport endpoints, as returned by ``get_host()`` and ``get_peer()``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast

__all__ = ["IPv4Address", "IPv6Address", "UNIXAddress", "Address", "address_from_sockaddr",
           "unix_address"]


@dataclass(frozen=True, slots=True)
class IPv4Address:
    type: Literal["TCP", "UDP"]
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class IPv6Address:
    type: Literal["TCP", "UDP"]
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class UNIXAddress:
    """A Unix socket's address: its path, ``@name`` in Linux's abstract namespace, or None for an
    unbound socket (what a client usually is)."""

    name: str | None

    @property
    def abstract(self) -> bool:
        """True for a Linux abstract-namespace name (no file in the filesystem)."""
        return self.name is not None and self.name.startswith("@")


Address = IPv4Address | IPv6Address | UNIXAddress


def address_from_sockaddr(kind: Literal["TCP", "UDP"], family: int, sockaddr: object) -> Address:
    """Build an address object from what ``socket.getsockname()``/``getpeername()`` returned."""
    import socket

    if family == socket.AF_INET:
        host, port = cast("tuple[str, int]", sockaddr)
        return IPv4Address(kind, host, port)
    if family == socket.AF_INET6:
        host, port = cast("tuple[str, int, int, int]", sockaddr)[:2]  # (host, port, flowinfo, scope_id)
        return IPv6Address(kind, host, port)
    return unix_address(sockaddr)


def unix_address(sockaddr: object) -> UNIXAddress:
    """The :class:`UNIXAddress` of an ``AF_UNIX`` sockaddr as Python returns it.

    An abstract name (a leading NUL, given to us as bytes) is written ``@name``, as in endpoint
    strings; undecodable bytes are kept by ``surrogateescape`` rather than raised on, since the
    name may come from any local peer.
    """
    name: str | None
    if isinstance(sockaddr, (bytes, bytearray)):
        raw = bytes(sockaddr)
        if raw.startswith(b"\0"):
            raw = b"@" + raw[1:]
        name = raw.decode("utf-8", "surrogateescape")
    else:
        text = cast("str | None", sockaddr)
        name = "@" + text[1:] if text and text.startswith("\0") else text
    return UNIXAddress(name or None)
