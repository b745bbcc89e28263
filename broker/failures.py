"""Exceptions to wire failures and back (docs/PROTOCOL.md §7), in one table.

Going out, an exception becomes a :class:`~broker.messages.FailureInfo` (kind, type name,
message, traceback): a RemoteError keeps its own kind and type name, the exceptions in
:data:`FAILURES` travel as the kind given there, and everything else is ``"failed"`` under its
registered copy name or its qualified class name. Coming in, a failure becomes the class
:data:`FAILURES` names for its (kind, type name), else the registered copyable exception of
that type name (kind ``"failed"`` only: nothing is built from a name nobody registered), else
the class its kind names (:func:`broker.errors.error_class_for_kind`).
"""

from __future__ import annotations

from typing import Final

from net.defer import CancelledError

from .errors import DeadlineExceeded, NoSuchMethodError, RemoteError, UnregisteredCopyError, error_class_for_kind
from .flavors import CopyRegistry
from .messages import FailureInfo

__all__ = ["FAILURES", "to_failure", "from_failure"]

#: (class, kind, type name, message going out or None for ``str(exc)``): exceptions whose wire
#: form is fixed both ways. Going out the first ``isinstance`` match wins; coming in, a failure
#: with this kind and type name is raised as this class.
FAILURES: Final[tuple[tuple[type[BaseException], str, str, str | None], ...]] = (
    (CancelledError, "cancelled", "net.defer.CancelledError", "call was cancelled"),
    (UnregisteredCopyError, "invalid", "broker.UnregisteredCopyError", None),
    (NoSuchMethodError, "unimplemented", "broker.NoSuchMethod", None),
    # A deadline's failure to a peer without "call-options" (§18): kind "cancelled", this type name.
    (DeadlineExceeded, "cancelled", "broker.DeadlineExceeded", None),
)

_OUT: Final = tuple((cls, kind, name, text) for cls, kind, name, text in FAILURES
                    if not issubclass(cls, RemoteError))  # RemoteErrors carry their own form
_IN: Final[dict[tuple[str, str], type[RemoteError]]] = {
    (kind, name): cls for cls, kind, name, _ in FAILURES if issubclass(cls, RemoteError)
}


def to_failure(exc: BaseException, registry: CopyRegistry, traceback: str | None = None) -> FailureInfo:
    """The failure to send for ``exc``; ``traceback`` only when the callee is debugging."""
    if isinstance(exc, RemoteError):
        return FailureInfo(exc.kind, exc.remote_type, exc.message, traceback)
    for cls, kind, type_name, message in _OUT:
        if isinstance(exc, cls):
            return FailureInfo(kind, type_name, str(exc) if message is None else message, traceback)
    cls_of = type(exc)
    type_name = registry.name_for(exc) or f"{cls_of.__module__}.{cls_of.__qualname__}"
    return FailureInfo("failed", type_name, str(exc), traceback)


def from_failure(info: FailureInfo, registry: CopyRegistry) -> BaseException:
    """The exception a received failure stands for (see the module docstring for the order)."""
    cls = _IN.get((info.kind, info.type_name))
    if cls is not None:
        return cls(info.type_name, info.message, info.traceback)
    if info.kind == "failed" and registry.is_registered(info.type_name):
        state = {"args": [info.message], "type_name": info.type_name, "message": info.message,
                 "traceback": info.traceback}
        try:
            exc = registry.build(info.type_name, state)
        except Exception:
            exc = None
        if isinstance(exc, BaseException):
            return exc
    return error_class_for_kind(info.kind)(info.type_name, info.message, info.traceback)
