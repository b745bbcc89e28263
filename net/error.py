"""Exceptions of the networking layer, named by cause.

``ConnectionDone`` means the connection closed cleanly; ``ConnectionLost`` means it did not.
Connect failures share the base :class:`ConnectError` so a client can catch them all. ``OSError`` is
translated into these at the socket boundary only, with the original kept in ``__cause__`` (and its
``errno`` copied).

The I/O failures are also the matching builtin exceptions, so code written against the standard
library's names works unchanged::

    ConnectError            ⊂ OSError                  (any failed connection attempt)
    ConnectionRefusedError  ⊂ builtins.ConnectionRefusedError (nobody listens there)
    ConnectTimeoutError     ⊂ TimeoutError             (itself an OSError)
    DNSLookupError          ⊂ OSError                  (the name did not resolve)
    ConnectionLost          ⊂ builtins.ConnectionError (reset, aborted, broken: an I/O failure)
    CannotListenError       ⊂ OSError                  (bind/listen failed)

``ConnectionDone`` is deliberately *not* an ``OSError``: a clean close is no I/O error.
``ConnectionClosed.by_peer`` tells whether the peer ended the connection (end of stream, or a
close without TLS close_notify) rather than this side.
"""

from __future__ import annotations

import builtins

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
    "ProcessDone",
    "ProcessTerminated",
    "ProxyError",
]


class NetError(Exception):
    """Base of every error raised by :mod:`net`."""


class ConnectionClosed(NetError):
    """The connection is closed; base of the clean and unclean cases.

    ``by_peer`` is True when the peer ended it (we read the end of its stream), False when this
    side closed it or it is not known.
    """

    by_peer: bool = False

    def __init__(self, message: str = "Connection was closed.", *, by_peer: bool = False) -> None:
        super().__init__(message)
        self.by_peer = by_peer


class ConnectionDone(ConnectionClosed):
    """The connection was closed cleanly (by either side, after flushing)."""

    def __init__(self, message: str = "Connection was closed cleanly.", *, by_peer: bool = False) -> None:
        super().__init__(message, by_peer=by_peer)


class ConnectionLost(ConnectionClosed, builtins.ConnectionError):
    """The connection was closed uncleanly: reset, aborted, or an I/O error.

    Also a builtin ``ConnectionError`` (so an ``OSError``); ``errno`` is the socket error's when
    there was one (``errno.ECONNRESET`` for a reset), else None.
    """

    def __init__(self, message: str = "Connection was lost in a non-clean fashion.", *, by_peer: bool = False) -> None:
        super().__init__(message, by_peer=by_peer)


class ConnectError(NetError, OSError):
    """A client connection attempt failed (also an ``OSError``; ``errno`` set when known)."""


class ConnectionRefusedError(ConnectError, builtins.ConnectionRefusedError):
    """Nobody listens at the address (the peer answered with a reset).

    Also the builtin ``ConnectionRefusedError``: ``except ConnectionRefusedError:`` catches it
    whichever of the two names is in scope.
    """


class ConnectTimeoutError(ConnectError, TimeoutError):
    """The connection attempt did not complete within its timeout."""


class DNSLookupError(ConnectError):
    """The host name could not be resolved."""


class CannotListenError(NetError, OSError):
    """A listening socket could not be bound (address in use, permission, ...); an ``OSError``."""

    def __init__(self, interface: str, port: int, reason: BaseException) -> None:
        super().__init__(f"Couldn't listen on {interface or 'any'}:{port}: {reason}.")
        self.interface = interface
        self.port = port
        self.reason = reason
        self.errno = getattr(reason, "errno", None)

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.interface, self.port, self.reason))


class ReactorNotRunning(NetError, RuntimeError):
    """``stop()`` was called on a reactor that is not running."""


class ReactorAlreadyRunning(NetError, RuntimeError):
    """``run()`` was called on a reactor that is already running."""


class ProtocolViolation(NetError):
    """The peer sent something the protocol cannot accept (too long a line, a bad length, ...)."""


class ProcessDone(ConnectionDone):
    """A child process exited with code 0."""

    exit_code: int = 0
    signal: int | None = None
    status: int = 0

    def __init__(self, status: int = 0) -> None:
        super().__init__("The process exited with code 0.")
        self.status = status


class ProcessTerminated(ConnectionLost):
    """A child process exited with a non-zero code (``exit_code``) or was killed (``signal``)."""

    def __init__(self, exit_code: int | None = None, signal: int | None = None, status: int | None = None) -> None:
        if signal is not None:
            import signal as _signal

            try:
                name = _signal.Signals(signal).name
            except ValueError:
                name = str(signal)
            message = f"The process was killed by signal {name} ({signal})."
        else:
            message = f"The process exited with code {exit_code}."
        super().__init__(message)
        self.exit_code = exit_code
        self.signal = signal
        self.status = status

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.exit_code, self.signal, self.status))


class ProxyError(ConnectError):
    """A SOCKS or HTTP CONNECT proxy refused or failed the tunnel.

    ``proxy`` names the proxy (``host:port``), ``kind`` the protocol (``socks4``, ``socks5``,
    ``connect``), ``code`` the proxy's reply code or HTTP status when it sent one.
    """

    def __init__(self, message: str, *, proxy: str = "", kind: str = "", code: int | None = None) -> None:
        super().__init__(message)
        self.proxy = proxy
        self.kind = kind
        self.code = code

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_proxy_error, (str(self), self.proxy, self.kind, self.code))


def _rebuild_proxy_error(message: str, proxy: str, kind: str, code: int | None) -> ProxyError:
    return ProxyError(message, proxy=proxy, kind=kind, code=code)
