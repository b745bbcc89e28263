"""Exceptions of the broker, one per way a remote call can fail.

A caller learns from the class how to react::

    BrokerError
    ├── RemoteError              kind "failed": the remote method raised; remote_type / message
    │   ├── OverloadedError      kind "overloaded": a limit was hit; retry later
    │   ├── UnimplementedError   kind "unimplemented": no such method, message or ext type
    │   ├── InvalidReferenceError kind "invalid": the call named an object the caller was never given
    │   └── RemoteCancelledError kind "cancelled": the callee cancelled the call
    ├── ConnectionLost           kind "disconnected": the connection closed before the answer
    ├── UnregisteredCopyError    a copyable arrived whose type name is not registered here
    ├── LimitExceeded            a local limit refused the call before it was sent
    └── HandshakeError           the peer spoke another protocol version or no pbroker at all

Exceptions registered as copyable travel as themselves instead of as ``RemoteError``.
"""

from __future__ import annotations

__all__ = [
    "BrokerError",
    "RemoteError",
    "OverloadedError",
    "UnimplementedError",
    "InvalidReferenceError",
    "RemoteCancelledError",
    "ConnectionLost",
    "UnregisteredCopyError",
    "LimitExceeded",
    "HandshakeError",
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


class OverloadedError(RemoteError):
    """A limit was hit on the remote side (outstanding calls, references, frame size)."""

    kind = "overloaded"


class UnimplementedError(RemoteError):
    """The remote object has no such remote method, or the peer does not know a message type."""

    kind = "unimplemented"


class InvalidReferenceError(RemoteError):
    """The call named an object id the caller was never given (or already released)."""

    kind = "invalid"


class RemoteCancelledError(RemoteError):
    """The remote side cancelled the call."""

    kind = "cancelled"


class ConnectionLost(BrokerError):
    """The connection closed while the call was pending, or before it was made."""

    kind = "disconnected"


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


class HandshakeError(BrokerError):
    """The peer is not a pbroker peer of a compatible protocol version."""


_KINDS: dict[str, type[RemoteError]] = {
    cls.kind: cls
    for cls in (RemoteError, OverloadedError, UnimplementedError, InvalidReferenceError, RemoteCancelledError)
}


def error_class_for_kind(kind: str) -> type[RemoteError]:
    """The exception class for a wire failure kind; unknown kinds read as plain ``failed``."""
    return _KINDS.get(kind, RemoteError)
