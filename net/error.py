"""Exceptions of the networking layer, named by cause.

``ConnectionDone`` means the connection closed cleanly; ``ConnectionLost`` means it did not.
Connect failures share the base :class:`ConnectError` so a client can catch them all. ``OSError`` is
translated into these at the socket boundary only, with the original kept in ``__cause__``.
"""

from __future__ import annotations

__all__ = [
    "NetError",
    "ConnectionClosed",
    "ConnectionDone",
    "ConnectionLost",
    "ConnectError",
    "ConnectionRefusedError",
    "ConnectTimeoutError",
    "DNSLookupError",
    "CannotListenError",
    "ReactorNotRunning",
    "ReactorAlreadyRunning",
    "ProtocolViolation",
]


class NetError(Exception):
    """Base of every error raised by :mod:`net`."""


class ConnectionClosed(NetError):
    """The connection is closed; base of the clean and unclean cases."""


class ConnectionDone(ConnectionClosed):
    """The connection was closed cleanly (by either side, after flushing)."""

    def __init__(self, message: str = "Connection was closed cleanly.") -> None:
        super().__init__(message)


class ConnectionLost(ConnectionClosed):
    """The connection was closed uncleanly: reset, aborted, or an I/O error."""

    def __init__(self, message: str = "Connection was lost in a non-clean fashion.") -> None:
        super().__init__(message)


class ConnectError(NetError):
    """A client connection attempt failed."""


class ConnectionRefusedError(ConnectError):
    """Nobody listens at the address (the peer answered with a reset)."""


class ConnectTimeoutError(ConnectError, TimeoutError):
    """The connection attempt did not complete within its timeout."""


class DNSLookupError(ConnectError):
    """The host name could not be resolved."""


class CannotListenError(NetError):
    """A listening socket could not be bound (address in use, permission, ...)."""

    def __init__(self, interface: str, port: int, reason: BaseException) -> None:
        super().__init__(f"Couldn't listen on {interface or 'any'}:{port}: {reason}.")
        self.interface = interface
        self.port = port
        self.reason = reason


class ReactorNotRunning(NetError, RuntimeError):
    """``stop()`` was called on a reactor that is not running."""


class ReactorAlreadyRunning(NetError, RuntimeError):
    """``run()`` was called on a reactor that is already running."""


class ProtocolViolation(NetError):
    """The peer sent something the protocol cannot accept (too long a line, a bad length, ...)."""
