"""How objects travel: by reference (Referenceable, Root, Viewable) or by copy (Copyable).

References are capabilities: a peer can call ``remote_<name>`` methods of an object only after it
was handed a reference to it, and nothing else of it. Copies are explicit: a type name arriving
from the wire builds an object only when a class was registered for that name here.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Protocol, TypeVar, overload, runtime_checkable

from .errors import NoSuchMethodError, UnregisteredCopyError

__all__ = [
    "Referenceable",
    "Root",
    "Viewable",
    "Copyable",
    "RemoteCopy",
    "CopyRegistry",
    "default_registry",
    "register_copyable",
    "copyable",
    "copy_type_name",
    "Caller",
]


@runtime_checkable
class Caller(Protocol):
    """What a remote method can learn about who called it (the broker connection)."""

    perspective: Any


class Referenceable:
    """An object passed by reference. Peers holding the reference may call ``remote_<name>``."""

    def remote_message_received(self, caller: Caller, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        """Dispatch a remote call. Raise NoSuchMethodError for unknown methods."""
        method = getattr(self, "remote_" + name, None) if name != "message_received" else None
        if method is None:
            raise NoSuchMethodError.lookup_failed(self, name, ("remote_",))
        return method(*args, **kwargs)


class Root(Referenceable):
    """The object a client gets first, from ``get_root_object()`` / ``broker.connect``."""

    def root_object(self, caller: Caller) -> Referenceable:
        """The root for one connection; override to hand each connection its own object."""
        return self


class Viewable(Referenceable):
    """An object whose ``view_<name>(perspective, *args)`` methods learn who is calling.

    ``perspective`` is the caller's avatar after login, or the connection's anonymous identity.
    Its ``remote_<name>`` methods stay callable as on any Referenceable.
    """

    def remote_message_received(self, caller: Caller, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        method = getattr(self, "view_" + name, None)
        if method is not None:
            return method(caller.perspective, *args, **kwargs)
        if getattr(self, "remote_" + name, None) is None or name == "message_received":
            raise NoSuchMethodError.lookup_failed(self, name, ("view_", "remote_"))
        return super().remote_message_received(caller, name, args, kwargs)


class Copyable:
    """An object passed by copy: its state (``get_state_to_copy()``) travels under a type name.

    The type name is ``copy_type_name`` if the class sets it, else ``module.QualName``.
    """

    copy_type_name: str | None = None

    def get_state_to_copy(self) -> Any:
        return dict(self.__dict__)


class RemoteCopy:
    """The receiving side of a copy; ``set_copyable_state`` gets the sent state."""

    def set_copyable_state(self, state: Any) -> None:
        self.__dict__.update(state)


def copy_type_name(cls: type) -> str:
    """The wire name of a copyable class."""
    explicit = cls.__dict__.get("copy_type_name") or getattr(cls, "_pbroker_copy_name", None)
    return explicit or f"{cls.__module__}.{cls.__qualname__}"


Unjelly = Callable[[Any], Any]


def _builder_for(cls: type) -> Unjelly:
    """How to make an instance of ``cls`` from its state, by the kind of class it is."""
    if dataclasses.is_dataclass(cls):
        return lambda state: cls(**state)
    if hasattr(cls, "from_copyable_state"):  # its own way, even for an exception (RemoteError)
        return cls.from_copyable_state  # type: ignore[no-any-return]
    if issubclass(cls, BaseException):
        return lambda state: _build_exception(cls, state)
    if hasattr(cls, "set_copyable_state"):

        def build(state: Any) -> Any:
            obj = cls.__new__(cls)
            obj.set_copyable_state(state)
            return obj

        return build
    raise TypeError(
        f"{cls.__name__} cannot be built from a copy: make it a dataclass, an exception, "
        "a RemoteCopy subclass, or give it set_copyable_state / from_copyable_state"
    )


def _build_exception(cls: type, state: Any) -> BaseException:
    exc = cls(*state.get("args", ()))
    for key, value in state.get("attrs", {}).items():
        setattr(exc, key, value)
    return exc  # type: ignore[no-any-return]


def state_of(obj: Any) -> Any:
    """The state to send for a copyable instance (dataclass, exception or Copyable)."""
    if isinstance(obj, Copyable):
        return obj.get_state_to_copy()
    if dataclasses.is_dataclass(obj):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, BaseException):
        return {"args": list(obj.args), "attrs": dict(vars(obj))}
    if hasattr(obj, "get_state_to_copy"):
        return obj.get_state_to_copy()
    return dict(vars(obj))


class CopyRegistry:
    """Which classes may be sent by copy, and which type names may be built when received."""

    def __init__(self) -> None:
        self._builders: dict[str, Unjelly] = {}
        self._names: dict[type, str] = {}

    def register(self, type_name: str, cls: type, *, send: bool = True, receive: bool = True) -> None:
        """Allow ``cls`` to be sent as ``type_name`` and/or built when ``type_name`` arrives."""
        if receive:
            self._builders[type_name] = _builder_for(cls)
        if send:
            self._names[cls] = type_name

    def unregister(self, type_name: str) -> None:
        self._builders.pop(type_name, None)
        for cls, name in list(self._names.items()):
            if name == type_name:
                del self._names[cls]

    def name_for(self, obj: Any) -> str | None:
        """The type name to send ``obj`` under, or None if it is not copyable."""
        cls = type(obj)
        name = self._names.get(cls)
        if name is None and isinstance(obj, Copyable):
            name = copy_type_name(cls)
        return name

    def build(self, type_name: str, state: Any) -> Any:
        """Make the local object for a received copy; refuses names never registered."""
        builder = self._builders.get(type_name)
        if builder is None:
            raise UnregisteredCopyError(type_name)
        return builder(state)

    def is_registered(self, type_name: str) -> bool:
        return type_name in self._builders


default_registry = CopyRegistry()

C = TypeVar("C", bound=type)


def register_copyable(type_name: str, cls: type, *, registry: CopyRegistry | None = None) -> None:
    """Let ``cls`` travel by copy under ``type_name``, both ways. Nothing else is built from the wire."""
    (registry or default_registry).register(type_name, cls)


@overload
def copyable(arg: C) -> C: ...
@overload
def copyable(arg: str | None = None, *, registry: CopyRegistry | None = None) -> Callable[[C], C]: ...
def copyable(arg: Any = None, *, registry: CopyRegistry | None = None) -> Any:
    """Class decorator registering a dataclass, exception or Copyable for copying.

    ``@copyable`` uses ``module.QualName``; ``@copyable("calc.Point")`` names it explicitly.
    """

    def decorate(cls: C, name: str | None = None) -> C:
        type_name = name or copy_type_name(cls)
        cls._pbroker_copy_name = type_name  # type: ignore[attr-defined]
        register_copyable(type_name, cls, registry=registry)
        return cls

    if isinstance(arg, type):
        return decorate(arg)
    return lambda cls: decorate(cls, arg)
