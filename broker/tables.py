"""The per-connection object tables, typed, one class each.

Named from this side of the connection (Cap'n Proto's vocabulary):

* exports — objects we own that the peer holds references to: id → (object, times sent).
  An id is allocated by us, starts at 1 (0 is the bootstrap object) and is never reused.
  The entry goes when the peer has released every reference we sent (``decref``).
* imports — objects the peer owns that we hold proxies for: id → (weak proxy, times received).
  When the proxy is garbage collected, the number of times we received it is released in one
  ``decref``. Counting sends makes release race-free: a reference in flight keeps the count up.
* questions — calls we made and await answers to: request id → Deferred.
* answers — calls the peer made that we are still running: request id → Deferred (for cancel).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

__all__ = ["ExportTable", "ImportTable", "ImportEntry", "EMPTY_MAP"]

P = TypeVar("P")


class _SharedEmpty(dict[Any, Any]):
    """The empty dict every empty table holds (a new dict is made on the first entry): most
    connections never export or import a reference beyond the bootstrap object, and dicts per
    connection add up over thousands of them. Shared, so it refuses anything that would add to
    it (removing from an empty dict changes nothing)."""

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("the tables' shared empty dict is read-only (a table makes its own on first entry)")

    __setitem__ = setdefault = update = __ior__ = _refuse


#: The shared read-only empty dict (see _SharedEmpty): ``table is EMPTY_MAP`` until a first entry.
EMPTY_MAP: Final[dict[Any, Any]] = _SharedEmpty()
_EMPTY: Final = EMPTY_MAP


class ExportTable:
    """Objects we own that the peer may call, with the number of times each was sent."""

    __slots__ = ("_bootstrap", "_objects", "_counts", "_ids", "_last_id", "_unconfirmed")

    def __init__(self, bootstrap: Any) -> None:
        self._bootstrap = bootstrap  # object id 0, never counted
        # object id -> object, and its sends; id(obj) -> object id (objects kept alive by _objects)
        self._objects: dict[int, Any] = _EMPTY
        self._counts: dict[int, int] = _EMPTY
        self._ids: dict[int, int] = _EMPTY
        self._last_id = 0
        self._unconfirmed: list[int] | None = None  # ids sent in the message being encoded

    def __len__(self) -> int:
        """Live exports, not counting the bootstrap object."""
        return len(self._counts)

    def get(self, object_id: int) -> Any | None:
        if object_id == 0:
            return self._bootstrap
        return self._objects.get(object_id)

    def add_send(self, obj: Any) -> int:
        """Record one more send of ``obj``; return its id (allocated on first send).

        The send stays unconfirmed until :meth:`confirm_sends` (the message was encoded) or
        :meth:`undo_sends` (it failed to encode, so nothing was sent).
        """
        key = id(obj)
        object_id = self._ids.get(key)
        if object_id is None:
            if self._ids is _EMPTY:
                self._objects, self._counts, self._ids = {}, {}, {}
            object_id = self._last_id = self._last_id + 1
            self._ids[key] = object_id
            self._objects[object_id] = obj
            self._counts[object_id] = 1
        else:
            self._counts[object_id] += 1
        if self._unconfirmed is None:
            self._unconfirmed = [object_id]
        else:
            self._unconfirmed.append(object_id)
        return object_id

    def confirm_sends(self) -> None:
        """The message holding the sends since the last confirm or undo was encoded."""
        if self._unconfirmed:
            self._unconfirmed.clear()

    def undo_sends(self) -> None:
        """Take back the sends since the last confirm or undo: their message never left."""
        unconfirmed, self._unconfirmed = self._unconfirmed, None
        for object_id in unconfirmed or ():
            self.release(object_id, 1)

    def release(self, object_id: int, count: int) -> bool:
        """The peer released ``count`` sends of ``object_id``. False if it held no such id."""
        held = self._counts.get(object_id)
        if held is None or count < 1 or count > held:
            return False
        if held == count:
            del self._counts[object_id]
            obj = self._objects.pop(object_id)
            del self._ids[id(obj)]
        else:
            self._counts[object_id] = held - count
        return True

    def is_exported(self, obj: Any) -> bool:
        return id(obj) in self._ids

    def clear(self) -> None:
        """Forget every export but the bootstrap object."""
        self._objects = self._counts = self._ids = _EMPTY


@dataclass(slots=True)
class ImportEntry(Generic[P]):
    proxy: weakref.ref[P]
    count: int


class ImportTable(Generic[P]):
    """Proxies for the peer's objects, held weakly, with the number of times each id arrived."""

    __slots__ = ("_entries", "_on_dead", "_released")

    def __init__(self, on_dead: Callable[[int], None]) -> None:
        self._entries: dict[int, ImportEntry[P]] = _EMPTY
        self._on_dead = on_dead
        self._released: dict[int, int] = _EMPTY

    def __len__(self) -> int:
        return len(self._entries)

    def received(self, object_id: int, make_proxy: Callable[[int], P]) -> P:
        """One more reference to ``object_id`` arrived; return its (possibly new) proxy."""
        entry = self._entries.get(object_id)
        if entry is not None:
            proxy = entry.proxy()
            if proxy is not None:
                entry.count += 1
                return proxy
            # The old proxy died and its release is not yet sent: keep its count apart.
            if self._released is _EMPTY:
                self._released = {}
            self._released[object_id] = self._released.get(object_id, 0) + entry.count
        proxy = make_proxy(object_id)
        on_dead = self._on_dead
        if self._entries is _EMPTY:
            self._entries = {}
        self._entries[object_id] = ImportEntry(weakref.ref(proxy, lambda _r: on_dead(object_id)), 1)
        return proxy

    def collect_releases(self, died: list[int]) -> dict[int, int]:
        """Counts to ``decref`` for proxies that died (ids in ``died``), consuming them."""
        releases = {} if self._released is _EMPTY else self._released
        self._released = _EMPTY
        entries = self._entries
        for object_id in died:
            entry = entries.get(object_id)
            if entry is not None and entry.proxy() is None:
                del entries[object_id]
                releases[object_id] = releases.get(object_id, 0) + entry.count
        return releases

    def clear(self) -> None:
        self._entries = self._released = _EMPTY
