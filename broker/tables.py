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

import itertools
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = ["ExportTable", "ImportTable", "ImportEntry"]

P = TypeVar("P")


class ExportTable:
    """Objects we own that the peer may call, with the number of times each was sent."""

    def __init__(self, bootstrap: Any) -> None:
        self._objects: dict[int, Any] = {0: bootstrap}
        self._counts: dict[int, int] = {}
        self._ids: dict[int, int] = {}  # id(obj) -> object id; objects are kept alive by _objects
        self._next_id = itertools.count(1)
        self._unconfirmed: list[int] = []  # ids sent in the message being encoded

    def __len__(self) -> int:
        """Live exports, not counting the bootstrap object."""
        return len(self._counts)

    def get(self, object_id: int) -> Any | None:
        return self._objects.get(object_id)

    def add_send(self, obj: Any) -> int:
        """Record one more send of ``obj``; return its id (allocated on first send).

        The send stays unconfirmed until :meth:`confirm_sends` (the message was encoded) or
        :meth:`undo_sends` (it failed to encode, so nothing was sent).
        """
        key = id(obj)
        object_id = self._ids.get(key)
        if object_id is None:
            object_id = next(self._next_id)
            self._ids[key] = object_id
            self._objects[object_id] = obj
            self._counts[object_id] = 1
        else:
            self._counts[object_id] += 1
        self._unconfirmed.append(object_id)
        return object_id

    def confirm_sends(self) -> None:
        """The message holding the sends since the last confirm or undo was encoded."""
        if self._unconfirmed:
            self._unconfirmed.clear()

    def undo_sends(self) -> None:
        """Take back the sends since the last confirm or undo: their message never left."""
        unconfirmed, self._unconfirmed = self._unconfirmed, []
        for object_id in unconfirmed:
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
        bootstrap = self._objects.get(0)
        self._objects = {0: bootstrap}
        self._counts.clear()
        self._ids.clear()


@dataclass(slots=True)
class ImportEntry(Generic[P]):
    proxy: weakref.ref[P]
    count: int


class ImportTable(Generic[P]):
    """Proxies for the peer's objects, held weakly, with the number of times each id arrived."""

    def __init__(self, on_dead: Callable[[int], None]) -> None:
        self._entries: dict[int, ImportEntry[P]] = {}
        self._on_dead = on_dead
        self._released: dict[int, int] = {}

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
            self._released[object_id] = self._released.get(object_id, 0) + entry.count
        proxy = make_proxy(object_id)
        on_dead = self._on_dead
        self._entries[object_id] = ImportEntry(weakref.ref(proxy, lambda _r: on_dead(object_id)), 1)
        return proxy

    def collect_releases(self, died: list[int]) -> dict[int, int]:
        """Counts to ``decref`` for proxies that died (ids in ``died``), consuming them."""
        releases = self._released
        self._released = {}
        for object_id in died:
            entry = self._entries.get(object_id)
            if entry is not None and entry.proxy() is None:
                del self._entries[object_id]
                releases[object_id] = releases.get(object_id, 0) + entry.count
        return releases

    def clear(self) -> None:
        self._entries.clear()
        self._released.clear()
