"""Cacheable / RemoteCache (PROTOCOL.md §16, feature ``"cache"``): objects copied once per
connection and then kept in sync by the owner's pushes.

The owner's object is a :class:`Cacheable`. The first time it is sent on a connection, its
``get_state_to_cache_and_observe_for(perspective, observer)`` gives the state the peer sees
(each viewer may see a different slice) and gets a :class:`CacheObserver` for that connection;
later sends of the same object carry only its cache id. The holder builds a :class:`RemoteCache`
of the class registered for the Cacheable's ``cache_type``
(:func:`register_remote_cache`), gives it the state (``set_copyable_state``) and from then on
runs ``observe_<method>`` for each ``observer.call_remote(method, ...)`` of the owner. The same
Cacheable sent twice on one connection is the same RemoteCache object there.

Cache refs are counted like sender refs (§6): the holder releases what it received when its
RemoteCache is no longer referenced (it dies in the garbage collector; the release is sent
from the loop, never from the collector) or when asked (:meth:`RemoteCache.release_cache`).
When the owner's count falls to 0, or the connection ends, the Cacheable's
``stopped_observing(perspective, observer)`` runs: exactly once per observer. Observer calls
after that are dropped silently.

Per connection, :class:`CacheTables` holds both sides' tables; the session makes it on first
use (an idle connection pays one empty slot) and drops it when the connection ends.
"""

from __future__ import annotations

import inspect
import logging
import weakref
from collections import deque
from typing import TYPE_CHECKING, Any, ClassVar, Final, NoReturn

from net.defer import Deferred, ensure_deferred

from . import wire
from .errors import InvalidReferenceError, OverloadedError, UnimplementedError
from .lifecycle import State
from .messages import FEATURE_CACHE, CacheRef, CacheRelease, CacheUpdate

if TYPE_CHECKING:
    from .session import Session

__all__ = [
    "Cacheable",
    "RemoteCache",
    "CacheObserver",
    "CacheTables",
    "register_remote_cache",
    "remote_cache_class",
]

log = logging.getLogger("broker.cache")


class Cacheable:
    """An object the peer keeps a live copy of. Subclasses set ``cache_type`` (the name the
    holder registered its RemoteCache class under) and override the two methods below."""

    #: The type name sent with the state, e.g. ``"app.Scoreboard"``.
    cache_type: ClassVar[str] = ""

    def get_state_to_cache_and_observe_for(self, perspective: Any, observer: CacheObserver) -> Any:
        """The state ``perspective``'s connection gets (any wire value); keep ``observer`` to
        push changes to it. Called once per connection, when the object is first sent there."""
        raise NotImplementedError(f"{type(self).__qualname__} must define get_state_to_cache_and_observe_for")

    def stopped_observing(self, perspective: Any, observer: CacheObserver) -> None:
        """The connection's copy is gone (released, or the connection ended): forget
        ``observer``. Runs exactly once for each observer handed out."""


class CacheObserver:
    """The owner's handle on one connection's copy of a Cacheable."""

    __slots__ = ("_session", "cache_id", "perspective", "_live", "__weakref__")

    def __init__(self, session: Session, cache_id: int, perspective: Any) -> None:
        self._session: Session | None = session
        self.cache_id = cache_id
        self.perspective = perspective
        self._live = True

    @property
    def active(self) -> bool:
        """False once the copy was released or the connection ended (calls are then dropped)."""
        return self._live

    def call_remote(self, _method: str, /, *args: Any, **kwargs: Any) -> None:
        """Run ``observe_<_method>(*args, **kwargs)`` on the holder's RemoteCache; no answer.

        Dropped silently once the copy is released or the connection is gone: the application
        learns of that through ``stopped_observing``. Arguments that cannot be sent raise here.
        """
        session = self._session
        if not self._live or session is None or session.state is not State.OPEN:
            return
        frame = session._encode(CacheUpdate(self.cache_id, _method, list(args), kwargs))
        session._queue(frame)

    def _stop(self) -> None:
        self._live = False
        self._session = None

    def __repr__(self) -> str:
        state = "active" if self._live else "stopped"
        return f"<CacheObserver cache {self.cache_id} for {self.perspective!r} {state}>"


class RemoteCache:
    """The holder's copy of a peer's Cacheable. Subclass it, register the subclass with
    :func:`register_remote_cache`, and define ``observe_<method>`` for each change the owner
    pushes. Built with no arguments, then given the state."""

    _cache_holder: tuple[CacheTables, int] | None = None

    def set_copyable_state(self, state: Any) -> None:
        """Take the owner's state (default: a map's entries become attributes)."""
        if isinstance(state, dict):
            self.__dict__.update({k: v for k, v in state.items() if isinstance(k, str)})
        else:
            self.state = state

    def release_cache(self) -> None:
        """Let go of this copy now: the owner stops observing, and no more updates arrive."""
        holder = self._cache_holder
        if holder is not None:
            self._cache_holder = None
            tables, cache_id = holder
            tables.release_held(cache_id)


#: type name -> RemoteCache subclass; only registered names are ever built.
_REMOTE_CACHES: Final[dict[str, type[RemoteCache]]] = {}


def register_remote_cache(type_name: str, cls: type[RemoteCache]) -> None:
    """Build ``cls`` for Cacheables whose ``cache_type`` is ``type_name``."""
    if not isinstance(type_name, str) or not type_name:
        raise ValueError(f"a cache type name is a non-empty str, not {type_name!r}")
    if not (isinstance(cls, type) and issubclass(cls, RemoteCache)):
        raise TypeError(f"register_remote_cache({type_name!r}, cls): cls must be a RemoteCache subclass, not {cls!r}")
    _REMOTE_CACHES[type_name] = cls


def remote_cache_class(type_name: str) -> type[RemoteCache] | None:
    """The class registered for ``type_name``, if any."""
    return _REMOTE_CACHES.get(type_name)


class _Owned:
    """One Cacheable sent on this connection: its id, the refs the holder has, its observer."""

    __slots__ = ("cacheable", "cache_id", "count", "observer")

    def __init__(self, cacheable: Cacheable, cache_id: int, observer: CacheObserver) -> None:
        self.cacheable = cacheable
        self.cache_id = cache_id
        self.count = 0
        self.observer = observer


class _Held:
    """One RemoteCache held here: a weak reference (the application keeps it alive) and the
    refs received for it, all released at once when it dies."""

    __slots__ = ("ref", "count")

    def __init__(self, ref: weakref.ref[RemoteCache], count: int) -> None:
        self.ref = ref
        self.count = count


class CacheTables:
    """Both sides' cache tables of one connection (made on first use, dropped at its end)."""

    __slots__ = ("_session", "_owned", "_by_object", "_next_id", "_pending", "_held", "_dead", "_released",
                 "__weakref__")

    def __init__(self, session: Session) -> None:
        self._session: Session | None = session
        self._owned: dict[int, _Owned] = {}  # cache id -> entry (ours)
        self._by_object: dict[int, _Owned] = {}  # id(cacheable) -> entry (the entry keeps it alive)
        self._next_id = 0
        self._pending: list[tuple[_Owned, bool]] = []  # sends of the message being encoded
        self._held: dict[int, _Held] = {}  # cache id -> entry (theirs)
        self._dead: deque[int] = deque()  # ids of RemoteCaches that died (any thread appends)
        self._released: deque[int] = deque()  # ids released by release_cache() (any thread)

    @property
    def owned(self) -> int:
        """Cacheables of ours the peer holds (they count under ``max_live_references``)."""
        return len(self._owned)

    @property
    def held(self) -> int:
        """The peer's Cacheables held here."""
        return len(self._held)

    # -- the owner's side -----------------------------------------------------------------

    def to_wire(self, obj: Cacheable) -> CacheRef:
        """Encoder hook: ``obj`` as a cache ref, with its state the first time."""
        session = self._session
        assert session is not None
        if FEATURE_CACHE not in session.negotiated:
            raise UnimplementedError(
                "broker.CacheNotNegotiated",
                f"cannot send {type(obj).__qualname__} as a cache: the peer did not announce the "
                f"'cache' feature (send a copy or a reference instead)",
            )
        entry = self._by_object.get(id(obj))
        if entry is not None:
            entry.count += 1
            self._pending.append((entry, False))
            return CacheRef(entry.cache_id)
        limit = session.limits.max_live_references
        if len(session.exports) + len(self._owned) >= limit:
            raise OverloadedError("broker.TooManyReferences", f"the limit of {limit} live references is reached")
        type_name = obj.cache_type
        if not type_name:
            raise TypeError(f"{type(obj).__qualname__} is a Cacheable without a cache_type")
        cache_id = self._next_id = self._next_id + 1  # never reused on a connection
        observer = CacheObserver(session, cache_id, session.perspective)
        entry = _Owned(obj, cache_id, observer)
        state = obj.get_state_to_cache_and_observe_for(session.perspective, observer)
        entry.count = 1
        self._owned[cache_id] = entry
        self._by_object[id(obj)] = entry
        self._pending.append((entry, True))
        return CacheRef(cache_id, type_name, state)

    def confirm_sends(self) -> None:
        """The message went out: its cache refs count."""
        self._pending.clear()

    def undo_sends(self) -> None:
        """The message could not be encoded: its cache refs never left."""
        pending, self._pending = self._pending, []
        for entry, new in reversed(pending):
            entry.count -= 1
            if new:
                self._forget(entry)

    def release_owned(self, cache_id: int, count: int) -> bool:
        """The holder released ``count`` refs; False if it did not hold that many (its bug)."""
        entry = self._owned.get(cache_id)
        if entry is None or count > entry.count:
            return False
        entry.count -= count
        if entry.count == 0:
            self._forget(entry)
        return True

    def _forget(self, entry: _Owned) -> None:
        del self._owned[entry.cache_id]
        del self._by_object[id(entry.cacheable)]
        self._stop_observing(entry)

    @staticmethod
    def _stop_observing(entry: _Owned) -> None:
        observer = entry.observer
        observer._stop()
        try:
            entry.cacheable.stopped_observing(observer.perspective, observer)
        except Exception:
            log.exception("stopped_observing of %r failed", entry.cacheable)

    # -- the holder's side ----------------------------------------------------------------

    def received(self, ref: CacheRef) -> RemoteCache:
        """Decoder hook: the RemoteCache a cache ref names (``wire.Refused`` if refused; the
        ref is then released at once, so the owner's count stays right)."""
        session = self._session
        assert session is not None
        cache_id = ref.cache_id
        held = self._held.get(cache_id)
        if held is not None:
            obj = held.ref()
            if obj is not None and obj._cache_holder is not None:  # alive, not released
                held.count += 1
                return obj  # a first ref again (a peer's mistake) keeps the copy we have
        if ref.type_name is None:
            self._refuse(cache_id, InvalidReferenceError(
                "broker.NoSuchCache",
                f"cache {cache_id} is not held here: it was released while this reference was on "
                f"its way, or its state was never sent; ask for the object again"))
        cls = _REMOTE_CACHES.get(ref.type_name)
        if cls is None:
            self._refuse(cache_id, InvalidReferenceError(
                "broker.UnregisteredCache",
                f"cache type {ref.type_name!r} is not registered here; register a RemoteCache "
                f"subclass with broker.register_remote_cache({ref.type_name!r}, cls)"))
        limit = session.limits.max_live_references
        if held is None and len(self._held) >= limit:
            self._refuse(cache_id, OverloadedError("broker.TooManyReferences",
                                                   f"the limit of {limit} live caches is reached"))
        try:
            built = cls()
            built.set_copyable_state(ref.state)
            built._cache_holder = (self, cache_id)
            wref = weakref.ref(built, _DeathNotice(self, cache_id))
        except Exception as exc:
            self._refuse(cache_id, InvalidReferenceError("broker.BadCache", f"cannot build {ref.type_name!r}: {exc}"))
        if held is None:
            self._held[cache_id] = _Held(wref, 1)
        else:  # the old copy died and its release is not sent yet: this one takes its count
            held.ref = wref
            held.count += 1
        return built

    def _refuse(self, cache_id: int, reason: Exception) -> NoReturn:
        session = self._session
        assert session is not None
        session._queue_message(CacheRelease(cache_id, 1))
        raise wire.Refused(reason)

    def _died(self, cache_id: int) -> None:
        """Weakref callback: may run in any thread, inside the GC. Queue only; never send here."""
        self._dead.append(cache_id)
        self._schedule()

    def _schedule(self) -> None:
        session = self._session
        if session is not None and not session._release_scheduled:
            session._schedule_release()

    def release_held(self, cache_id: int) -> None:
        """Release a copy now (RemoteCache.release_cache, from any thread): sent with the next
        batch of releases, from the session's thread."""
        self._released.append(cache_id)
        self._schedule()

    def flush_releases(self) -> None:
        """Queue the releases of the RemoteCaches that died (from the session's thread)."""
        session = self._session
        released = self._released
        while released:
            cache_id = released.popleft()
            held = self._held.pop(cache_id, None)
            if held is not None and session is not None:
                session._queue_message(CacheRelease(cache_id, held.count))
        dead = self._dead
        while dead:
            cache_id = dead.popleft()
            held = self._held.get(cache_id)
            if held is not None and held.ref() is None:
                del self._held[cache_id]
                if session is not None:
                    session._queue_message(CacheRelease(cache_id, held.count))

    def update(self, message: CacheUpdate) -> None:
        """The owner pushed a change: run ``observe_<method>`` on the copy."""
        held = self._held.get(message.cache_id)
        obj = held.ref() if held is not None else None
        if obj is None or obj._cache_holder is None:  # gone, or released by the application
            log.debug("%r: update %r for cache %d not held here (released): dropped",
                      self._session, message.method, message.cache_id)
            return
        method = getattr(obj, "observe_" + message.method, None)
        if method is None:
            log.warning("%r: %s has no observe_%s; update of cache %d dropped (the cache stays)",
                        self._session, type(obj).__qualname__, message.method, message.cache_id)
            return
        try:
            result = method(*message.args, **message.kwargs)
        except Exception:
            log.exception("%r: %s.observe_%s failed (the cache stays)", self._session,
                          type(obj).__qualname__, message.method)
            return
        if inspect.iscoroutine(result):
            result = ensure_deferred(result)
        if isinstance(result, Deferred):
            result.add_errback(lambda f: log.error("%r: %s.observe_%s failed: %s", self._session,
                                                   type(obj).__qualname__, message.method, f.value))

    # -- the end --------------------------------------------------------------------------

    def connection_ended(self) -> None:
        """Every observer stops (once each); the holder's copies are left as they are."""
        owned, self._owned = self._owned, {}
        self._by_object = {}
        self._pending = []
        self._held = {}
        self._dead.clear()
        self._released.clear()
        self._session = None
        for entry in owned.values():
            self._stop_observing(entry)


class _DeathNotice:
    """A RemoteCache's weakref callback: tells its tables which cache died."""

    __slots__ = ("_tables", "_cache_id")

    def __init__(self, tables: CacheTables, cache_id: int) -> None:
        self._tables = weakref.ref(tables)
        self._cache_id = cache_id

    def __call__(self, _ref: object) -> None:
        tables = self._tables()
        if tables is not None:
            tables._died(self._cache_id)


def handle_update(session: Session, message: CacheUpdate) -> None:
    tables = session._caches
    if tables is not None:
        tables.update(message)


def handle_release(session: Session, message: CacheRelease) -> None:
    tables = session._caches
    if tables is None or not tables.release_owned(message.cache_id, message.count):
        from .session import _QuietLog  # at run time: session imports this module

        if session._quiet is None:
            session._quiet = _QuietLog(log, logging.WARNING)
        session._quiet.log("bogus cache_release", session, "peer released %d refs of cache %d it does not hold",
                           message.count, message.cache_id)
