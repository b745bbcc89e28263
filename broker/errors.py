"""Exceptions of the broker, one per way a remote call can fail.

A caller learns from the class how to react::

    BrokerError
    ├── RemoteError              kind "failed": the remote method raised; remote_type / message
    │   ├── OverloadedError      kind "overloaded": a limit was hit; retry later
    │   ├── UnimplementedError   kind "unimplemented": no such message or ext type, ...
    │   │   └── NoSuchMethodError  ... or no such remote method (wire type broker.NoSuchMethod)
    │   ├── InvalidReferenceError kind "invalid": the call named an object the caller was never given
    │   └── RemoteCancelledError kind "cancelled": the callee cancelled the call
    │       └── DeadlineExceeded kind "deadline": the call's deadline passed (also a TimeoutError)
    ├── ConnectionLost           kind "disconnected": the connection closed before the answer;
    │                            also a net.error.ConnectionLost (so a builtin ConnectionError);
    │                            ``cause`` says how it closed
    ├── UnregisteredCopyError    a copyable arrived whose type name is not registered here
    ├── LimitExceeded            a local limit refused the call before it was sent
    └── HandshakeError           the peer spoke another protocol version or no pbroker at all;
                                 also a broker.wire.HandshakeError (one class per concept:
                                 the codec's error is the base, this is what the broker raises)

Exceptions registered as copyable travel as themselves instead of as ``RemoteError``.
"""

from __future__ import annotations

from collections.abc import Iterable

from typing import Any

import net.error  # pure exception classes, no I/O: the broker's errors extend the net ones

from . import wire

__all__ = [
    "BrokerError",
    "RemoteError",
    "OverloadedError",
    "UnimplementedError",
    "NoSuchMethodError",
    "InvalidReferenceError",
    "RemoteCancelledError",
    "DeadlineExceeded",
    "ConnectionLost",
    "UnregisteredCopyError",
    "LimitExceeded",
    "HandshakeError",
    "CAUSES",
    "error_class_for_kind",
]


class BrokerError(Exception):
    """Base of every broker error."""


class RemoteError(BrokerError):
    """The remote side reported a failure; ``remote_type`` names the remote exception class.

    ``remote_traceback`` is the remote traceback text when the server runs with ``debug=True``,
    else None: tracebacks leak internals, so they are not sent by default.
    """

    kind = "failed"

    def __init__(self, remote_type: str, message: str, remote_traceback: str | None = None) -> None:
        super().__init__(f"{remote_type}: {message}" if remote_type else message)
        self.remote_type = remote_type
        self.message = message
        self.remote_traceback = remote_traceback

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.remote_type, self.message, self.remote_traceback))

    @classmethod
    def from_copyable_state(cls, state: dict[str, Any]) -> RemoteError:
        """Build a RemoteError subclass registered as copyable from the failure that named it."""
        return cls(state["type_name"], state["message"], state.get("traceback"))

    def __str__(self) -> str:
        # With debug=True on the server the traceback travels: show it wherever this is printed,
        # including under an uncaught exception's own (local) traceback.
        text = super().__str__()
        if self.remote_traceback:
            text += "\n\nRemote traceback (the server runs with debug=True):\n" + self.remote_traceback.rstrip("\n")
        return text


class OverloadedError(RemoteError):
    """A limit was hit on the remote side (outstanding calls, references, frame size)."""

    kind = "overloaded"


class UnimplementedError(RemoteError):
    """The remote object has no such remote method, or the peer does not know a message type."""

    kind = "unimplemented"


class NoSuchMethodError(UnimplementedError):
    """The target object has no remote method of that name (wire type ``broker.NoSuchMethod``).

    Raised by ``remote_message_received`` where the lookup fails; the message names the prefixes
    looked for, e.g. ``Calculator has no remote method 'ad' (looked for remote_ad)``.
    """

    def __init__(self, remote_type: str = "broker.NoSuchMethod", message: str = "no such remote method",
                 remote_traceback: str | None = None) -> None:
        super().__init__(remote_type, message, remote_traceback)

    @classmethod
    def lookup_failed(cls, target: object, name: str, prefixes: Iterable[str], what: str = "remote method") -> NoSuchMethodError:
        """The error for ``target`` lacking ``<prefix><name>`` for every prefix; suggests near names."""
        import difflib

        prefixes = tuple(prefixes)
        looked = ", ".join(p + name for p in prefixes)
        available = {attr[len(p):] for attr in dir(target) for p in prefixes
                     if attr.startswith(p) and attr != "remote_message_received" and callable(getattr(target, attr, None))}
        close = difflib.get_close_matches(name, sorted(available), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return cls(message=f"{type(target).__name__} has no {what} {name!r} (looked for {looked}){hint}")


class InvalidReferenceError(RemoteError):
    """The call named an object id the caller was never given (or already released)."""

    kind = "invalid"


class RemoteCancelledError(RemoteError):
    """The remote side cancelled the call."""

    kind = "cancelled"


class DeadlineExceeded(RemoteCancelledError, TimeoutError):
    """The call's deadline passed (``ref.options(timeout=...)``, ``Limits.call_timeout``) before
    its answer came: the callee was told to stop (PROTOCOL.md §18). Raised here when our own
    timer fires first, else from the callee's failure of kind "deadline"."""

    kind = "deadline"

    def __init__(self, remote_type: str = "broker.DeadlineExceeded", message: str = "the call's deadline passed",
                 remote_traceback: str | None = None) -> None:
        super().__init__(remote_type, message, remote_traceback)


#: Values of :attr:`ConnectionLost.cause`: how the connection ended.
CAUSES = {
    "goodbye": "the peer said goodbye (``goodbye_kind`` says why: normal, shutdown, invalid, ...)",
    "closed": "the peer closed the connection without a goodbye (its process may have exited)",
    "reset": "the connection was reset or broke (peer host gone, network, aborted)",
    "timeout": "a timeout ended the connection (handshake timeout, TCP keepalive/retransmission)",
    "local": "this side closed it (disconnect(), or a local error)",
    "protocol": "this side closed it because the peer broke the protocol",
}


class ConnectionLost(BrokerError, net.error.ConnectionLost):
    """The connection closed while the call was pending, or before it was made.

    Also a ``net.error.ConnectionLost`` and so a builtin ``ConnectionError``: ``except
    ConnectionError`` catches a broker disconnect. ``cause`` is one of :data:`CAUSES` (or None when
    not known); after a goodbye ``goodbye_kind`` is the kind the peer gave.
    """

    kind = "disconnected"

    def __init__(self, message: str = "connection lost", cause: str | None = None,
                 goodbye_kind: str | None = None) -> None:
        super().__init__(message)
        self.cause = cause
        self.goodbye_kind = goodbye_kind

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (str(self.args[0]) if self.args else "connection lost", self.cause, self.goodbye_kind))


class UnregisteredCopyError(BrokerError):
    """A copyable arrived whose type name is not registered: nothing is built from wire names."""

    def __init__(self, type_name: str) -> None:
        super().__init__(
            f"copyable type {type_name!r} is not registered here; "
            f"register a class with broker.register_copyable({type_name!r}, cls)"
        )
        self.type_name = type_name


class LimitExceeded(BrokerError):
    """A local limit refused the call before sending it (too many outstanding calls, too big)."""


class HandshakeError(BrokerError, wire.HandshakeError):
    """The peer is not a pbroker peer of a compatible protocol version.

    What ``broker.connect`` fails with for a version mismatch, a peer speaking something else
    (TLS, HTTP, ...) and a bad hello alike; the codec's error is kept as ``__cause__``.
    """


_KINDS: dict[str, type[RemoteError]] = {
    cls.kind: cls
    for cls in (RemoteError, OverloadedError, UnimplementedError, InvalidReferenceError, RemoteCancelledError,
                DeadlineExceeded)
}


def error_class_for_kind(kind: str) -> type[RemoteError]:
    """The exception class for a wire failure kind; unknown kinds read as plain ``failed``.

    :func:`broker.failures.from_failure` refines this by type name (NoSuchMethodError, and
    RemoteError subclasses registered as copyable).
    """
    return _KINDS.get(kind, RemoteError)
