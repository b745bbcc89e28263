"""Addresses of transport endpoints, as returned by ``get_host()`` and ``get_peer()``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast

__all__ = ["IPv4Address", "IPv6Address", "UNIXAddress", "Address", "address_from_sockaddr"]


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
    name: str | None


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
    name = sockaddr.decode() if isinstance(sockaddr, bytes) else cast("str | None", sockaddr)
    return UNIXAddress(name or None)
