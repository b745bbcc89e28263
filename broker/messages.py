"""The broker's wire vocabulary: one frozen dataclass per message and per ext value.

Rules of this file (the spec is ``docs/PROTOCOL.md``; this module transcribes it):

* Every class validates its own fields in ``__init__`` and raises ``TypeError`` (wrong type)
  or ``ValueError`` (right type, wrong value). Building a message is therefore the one place
  where field rules live: the decoder builds messages from what the peer sent and turns these
  exceptions into :class:`broker.wire.MalformedMessage`; code that builds a bad message itself
  gets the plain exception, because it misused the API.
* Integers are checked with ``type(x) is int`` so that ``True`` is never taken for ``1``: msgpack
  (and Java) keep booleans and integers apart, and so do we.
* "Frozen" means fields are never reassigned. ``Call.args``, ``Call.kwargs`` and the values in
  ``Answer`` / ``CopyState`` are still the (mutable) containers the decoder produced; copying them
  to make them immutable would cost a second walk over every message.
* ``__init__`` is written by hand (``init=False``, as h11's events do): one cheap combined check
  on the happy path, precise messages only on the error path, and the fields stored with one
  ``__dict__`` update — about twice as fast as the generated frozen ``__init__``, and every
  message the decoder produces is built here.
* Numbers (message types, ext codes, flags) are defined here once; ``broker/wire.py`` lays the
  fields out in the order the spec gives.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, Union

__all__ = [
    "PROTOCOL_NAME",
    "PROTOCOL_VERSION",
    "MAX_ID",
    "BOOTSTRAP_ID",
    "DEFAULT_MAX_FRAME_SIZE",
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_CONTAINER_LENGTH",
    "DEFAULT_MAX_ITEMS_PER_FRAME",
    "DEFAULT_MAX_CONTAINERS_PER_FRAME",
    "DEFAULT_MAX_EXT_VALUES_PER_FRAME",
    "FEATURE_HEARTBEAT",
    "FEATURE_DECREFS",
    "FEATURE_PIPELINING",
    "FEATURE_CALL_OPTIONS",
    "FEATURE_CACHE",
    "FEATURE_STREAMS",
    "HEARTBEAT_DEAD_AFTER",
    "HEARTBEAT_IDLE_FRACTION",
    "MessageType",
    "ExtCode",
    "CALL_NO_ANSWER",
    "CALL_TARGET_IS_QUESTION",
    "CALL_FLAGS_DEFINED",
    "FAILED",
    "OVERLOADED",
    "DISCONNECTED",
    "UNIMPLEMENTED",
    "CANCELLED",
    "DEADLINE",
    "INVALID",
    "FAILURE_KINDS",
    "NORMAL",
    "GOODBYE_KINDS",
    "Hello",
    "Goodbye",
    "Call",
    "Answer",
    "Error",
    "Cancel",
    "Decref",
    "Decrefs",
    "Ping",
    "Pong",
    "Finish",
    "CacheUpdate",
    "CacheRelease",
    "StreamItems",
    "StreamEnd",
    "StreamCredit",
    "Message",
    "ExportedRef",
    "ReturnedRef",
    "CopyState",
    "FailureInfo",
    "CacheRef",
    "StreamRef",
    "WireValue",
]

#: The string every hello starts with, so that a peer speaking something else is told so clearly.
PROTOCOL_NAME: Final = "pbroker"
#: Bumped on any incompatible change; peers with different versions refuse each other.
PROTOCOL_VERSION: Final = 1
#: Request ids, object ids and counts fit a signed 64-bit integer (a Java ``long``).
MAX_ID: Final = (1 << 63) - 1
#: Default decoding limits, announced in Hello (see broker.wire for how they are enforced).
DEFAULT_MAX_FRAME_SIZE: Final = 16 * 1024 * 1024
DEFAULT_MAX_DEPTH: Final = 64
DEFAULT_MAX_CONTAINER_LENGTH: Final = 1024 * 1024
#: Per-frame limits (PROTOCOL.md §8.2): protocol-wide in version 1, not announced. Every receiver
#: accepts frames within them; a sender never exceeds them. Chosen so that the worst frame they
#: allow decodes in under 100 ms (bench/worst_frame.py).
#: Elements of all arrays and maps in one frame (a map entry is two: key and value).
DEFAULT_MAX_ITEMS_PER_FRAME: Final = 512 * 1024
#: Arrays and maps in one frame.
DEFAULT_MAX_CONTAINERS_PER_FRAME: Final = 32 * 1024
#: Ext values (refs, copies, failures) in one frame.
DEFAULT_MAX_EXT_VALUES_PER_FRAME: Final = 16 * 1024
#: Feature names (hello ``features``) of the optional messages of version 1 (PROTOCOL.md §3).
FEATURE_HEARTBEAT: Final = "heartbeat"  # ping (10) and pong (11)
FEATURE_DECREFS: Final = "decrefs"  # decrefs (12)
#: Level 2 (PROTOCOL.md §15): finish (9), call flag bit 1 (the target is a question id).
FEATURE_PIPELINING: Final = "pipelining"
#: Level 2 (PROTOCOL.md §18): call field 8 ``options`` (deadline, metadata), failure kind "deadline".
FEATURE_CALL_OPTIONS: Final = "call-options"
#: Cacheable / RemoteCache (PROTOCOL.md §16): cache_update (17), cache_release (18), ext 6.
FEATURE_CACHE: Final = "cache"
#: Streams with credit (PROTOCOL.md §17): stream_items (13), stream_end (14), stream_credit (15), ext 7.
FEATURE_STREAMS: Final = "streams"
#: Heartbeat timing recommended by PROTOCOL.md §3.10: a peer silent this long (seconds) is dead…
HEARTBEAT_DEAD_AFTER: Final = 30.0
#: …and one is pinged after this fraction of it in silence (10 s of the default 30 s).
HEARTBEAT_IDLE_FRACTION: Final = 1 / 3
#: Each side's bootstrap object (the server's root, later the login object); never released.
BOOTSTRAP_ID: Final = 0

_MAX_U32: Final = (1 << 32) - 1


class MessageType(enum.IntEnum):
    """The first element of every body. Members marked reserved are not valid in version 1."""

    HELLO = 1
    GOODBYE = 2
    CALL = 3
    ANSWER = 4
    ERROR = 5
    CANCEL = 6
    DECREF = 7
    #: Reserved for promise pipelining ("pipelining" feature): a promise was resolved.
    RESOLVE = 8
    #: Reserved for promise pipelining: the caller is done with a question's answer.
    FINISH = 9
    #: Heartbeat ("heartbeat" feature): are you there? Answered at once with a pong.
    PING = 10
    #: Heartbeat: the answer to a ping, carrying its nonce.
    PONG = 11
    #: Many releases in one message ("decrefs" feature).
    DECREFS = 12
    #: Streams ("streams" feature, §17): items, the end (or a cancel), credit.
    STREAM_ITEMS = 13
    STREAM_END = 14
    STREAM_CREDIT = 15
    #: Reserved for Cacheable / RemoteCache ("cache" feature); 16–31 is the cache block.
    CACHE_CREATED = 16
    CACHE_UPDATED = 17
    CACHE_RELEASED = 18


class ExtCode(enum.IntEnum):
    """msgpack ext type codes of wire values. Members marked reserved are not valid in version 1."""

    #: An object the *sender* of the message owns (lives in the sender's exports).
    SENDER_REF = 1
    #: An object the *receiver* of the message owns (the sender imported it earlier).
    RECEIVER_REF = 2
    #: A copyable: registered type name + state.
    COPY = 3
    #: A failure: kind, type name, message, traceback.
    FAILURE = 4
    #: Reserved for promise pipelining: a reference to the future answer of a question.
    PROMISED_ANSWER = 5
    #: Reserved for Cacheable: a reference to a cached copy (object id + initial state).
    CACHE_REF = 6
    #: A stream the sender will feed ("streams" feature, §17): ``[stream_id, window_items, window_bytes]``.
    STREAM = 7


#: Call flag bit 0: the caller wants no answer (and will get none, not even an error).
CALL_NO_ANSWER: Final = 1
#: Call flag bit 1, reserved for pipelining: ``target`` is one of the caller's question ids.
CALL_TARGET_IS_QUESTION: Final = 2
#: The flag bits a version-1 peer may set.
CALL_FLAGS_DEFINED: Final = CALL_NO_ANSWER

# Failure kinds, as strings on the wire.
FAILED: Final = "failed"  # the method raised
OVERLOADED: Final = "overloaded"  # a limit was hit; retrying later may work
DISCONNECTED: Final = "disconnected"  # the connection went away (only ever produced locally)
UNIMPLEMENTED: Final = "unimplemented"  # unknown method, message type or ext code
CANCELLED: Final = "cancelled"  # the caller cancelled the call
INVALID: Final = "invalid"  # unknown object id, or a malformed request
DEADLINE: Final = "deadline"  # the call's deadline passed ("call-options", §18; never a goodbye kind)
FAILURE_KINDS: Final = frozenset({FAILED, OVERLOADED, DISCONNECTED, UNIMPLEMENTED, CANCELLED, INVALID, DEADLINE})
#: Goodbye kind of an orderly close; the other goodbye kinds are failure kinds.
NORMAL: Final = "normal"
GOODBYE_KINDS: Final = (FAILURE_KINDS - {DEADLINE}) | {NORMAL}


def _check_id(name: str, value: object) -> None:
    if type(value) is not int:
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not 0 <= value <= MAX_ID:
        raise ValueError(f"{name} must be in 0..2**63-1, got {value}")


def _check_u32(name: str, value: object, low: int = 0) -> None:
    if type(value) is not int:
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not low <= value <= _MAX_U32:
        raise ValueError(f"{name} must be in {low}..2**32-1, got {value}")


def _check_str(name: str, value: object) -> None:
    if type(value) is not str:
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")


def _check_kind(name: str, value: object, kinds: frozenset[str]) -> None:
    _check_str(name, value)
    if value not in kinds:
        raise ValueError(f"{name} must be one of {sorted(kinds)}, got {value!r}")


_STR_ONLY: Final = frozenset({str})
_INT_ONLY: Final = frozenset({int})

# ---------------------------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, init=False)
class Hello:
    """First message in each direction: who we are and the limits we enforce when decoding.

    The peer must not send frames, nesting or containers beyond these limits. ``features`` names
    optional extensions the sender supports ("pipelining" and "cache" are reserved names); a
    reserved message type or ext code may only be sent to a peer that announced its feature.
    """

    TYPE: ClassVar[MessageType] = MessageType.HELLO

    version: int
    max_frame_size: int
    max_depth: int
    max_container_length: int
    features: tuple[str, ...]

    def __init__(
        self,
        version: int = PROTOCOL_VERSION,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        max_depth: int = DEFAULT_MAX_DEPTH,
        max_container_length: int = DEFAULT_MAX_CONTAINER_LENGTH,
        features: tuple[str, ...] | list[str] = (),
    ) -> None:
        _check_id("version", version)
        _check_u32("max_frame_size", max_frame_size, 1)
        _check_u32("max_depth", max_depth, 1)
        _check_u32("max_container_length", max_container_length, 1)
        if not isinstance(features, (list, tuple)):
            raise TypeError(f"features must be a list of str, not {type(features).__name__}")
        for feature in features:
            _check_str("feature", feature)
        self.__dict__.update(
            version=version,
            max_frame_size=max_frame_size,
            max_depth=max_depth,
            max_container_length=max_container_length,
            features=tuple(features),
        )


@dataclass(frozen=True, init=False)
class Goodbye:
    """Sent just before closing, so the peer can tell why (``kind`` is "normal" or a failure kind)."""

    TYPE: ClassVar[MessageType] = MessageType.GOODBYE

    kind: str
    message: str

    def __init__(self, kind: str, message: str = "") -> None:
        _check_kind("kind", kind, GOODBYE_KINDS)
        _check_str("message", message)
        self.__dict__.update(kind=kind, message=message)


@dataclass(frozen=True, init=False)
class Call:
    """Invoke ``method`` on object ``target`` (an id in the receiver's exports; 0 = bootstrap).

    ``request_id`` is a question id chosen by the caller. With the ``CALL_NO_ANSWER`` flag the
    callee sends nothing back and the id enters no table (send 0). ``args`` may be given as a
    tuple; it is stored (and always decoded) as a list. ``options`` (field 8, feature
    ``"call-options"``, §18) is None when absent, else the map as sent: the session checks it.
    """

    TYPE: ClassVar[MessageType] = MessageType.CALL

    request_id: int
    target: int
    method: str
    args: list[Any]
    kwargs: dict[str, Any]
    flags: int
    options: dict[Any, Any] | None

    def __init__(
        self,
        request_id: int,
        target: int,
        method: str,
        args: list[Any] | tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        flags: int = 0,
        options: dict[Any, Any] | None = None,
    ) -> None:
        if type(args) is not list:
            if type(args) is not tuple:
                raise TypeError(f"args must be a list, not {type(args).__name__}")
            args = list(args)
        if kwargs is None:
            kwargs = {}
        if not (
            type(request_id) is int
            and 0 <= request_id <= MAX_ID
            and type(target) is int
            and 0 <= target <= MAX_ID
            and type(method) is str
            and method
            and type(kwargs) is dict
            and type(flags) is int
            and 0 <= flags <= _MAX_U32
        ):
            _check_id("request_id", request_id)
            _check_id("target", target)
            _check_str("method", method)
            if not method:
                raise ValueError("method must not be empty")
            if type(kwargs) is not dict:
                raise TypeError(f"kwargs must be a dict, not {type(kwargs).__name__}")
            _check_u32("flags", flags)
        if kwargs and not _STR_ONLY.issuperset(map(type, kwargs)):
            raise TypeError("kwargs keys must be str")
        if options is not None and type(options) is not dict:
            raise TypeError(f"options must be a dict or None, not {type(options).__name__}")
        self.__dict__.update(
            request_id=request_id,
            target=target,
            method=method,
            args=args,
            kwargs=kwargs,
            flags=flags,
            options=options,
        )

    @property
    def answer_wanted(self) -> bool:
        """False for a one-way call: no answer or error will ever come back."""
        return not self.flags & CALL_NO_ANSWER


@dataclass(frozen=True, init=False)
class Answer:
    """The successful result of the call with ``request_id``."""

    TYPE: ClassVar[MessageType] = MessageType.ANSWER

    request_id: int
    value: Any

    def __init__(self, request_id: int, value: Any = None) -> None:
        if not (type(request_id) is int and 0 <= request_id <= MAX_ID):
            _check_id("request_id", request_id)
        self.__dict__.update(request_id=request_id, value=value)


@dataclass(frozen=True, init=False)
class Error:
    """The failed result of the call with ``request_id`` (also the reply to a ``Cancel``)."""

    TYPE: ClassVar[MessageType] = MessageType.ERROR

    request_id: int
    failure: FailureInfo

    def __init__(self, request_id: int, failure: FailureInfo) -> None:
        _check_id("request_id", request_id)
        if type(failure) is not FailureInfo:
            raise TypeError(f"failure must be a FailureInfo, not {type(failure).__name__}")
        self.__dict__.update(request_id=request_id, failure=failure)


@dataclass(frozen=True, init=False)
class Cancel:
    """The caller no longer wants the answer to ``request_id``; the callee still replies once."""

    TYPE: ClassVar[MessageType] = MessageType.CANCEL

    request_id: int

    def __init__(self, request_id: int) -> None:
        _check_id("request_id", request_id)
        self.__dict__["request_id"] = request_id


@dataclass(frozen=True, init=False)
class Decref:
    """Release ``count`` of the references to ``object_id`` that the owner sent us.

    Counting sends (not "one release per object") is what makes release race-free: a reference
    sent while this message is in flight is still counted by the owner.
    """

    TYPE: ClassVar[MessageType] = MessageType.DECREF

    object_id: int
    count: int

    def __init__(self, object_id: int, count: int = 1) -> None:
        _check_id("object_id", object_id)
        _check_id("count", count)
        if object_id == BOOTSTRAP_ID:
            raise ValueError("the bootstrap object (id 0) is never released")
        if count == 0:
            raise ValueError("count must be at least 1")
        self.__dict__.update(object_id=object_id, count=count)


@dataclass(frozen=True, init=False)
class Decrefs:
    """Several releases at once: ``releases`` maps object ids to counts, each as in a Decref.

    Only for a peer whose hello named the "decrefs" feature (as ours did). The ids are distinct
    and never 0; the dict keeps wire order. Equivalent to one Decref per entry, in order.
    """

    TYPE: ClassVar[MessageType] = MessageType.DECREFS

    releases: dict[int, int]

    def __init__(self, releases: dict[int, int]) -> None:
        if type(releases) is not dict:
            raise TypeError(f"releases must be a dict of object ids to counts, not {type(releases).__name__}")
        if not releases:
            raise ValueError("releases must not be empty")
        for object_id, count in releases.items():
            _check_id("object_id", object_id)
            _check_id("count", count)
            if object_id == BOOTSTRAP_ID:
                raise ValueError("the bootstrap object (id 0) is never released")
            if count == 0:
                raise ValueError("count must be at least 1")
        self.__dict__["releases"] = releases

    @classmethod
    def from_flat(cls, flat: list[Any]) -> Decrefs:
        """From the wire layout ``[object_id, count, object_id, count, ...]`` (checked in C)."""
        if type(flat) is not list:
            raise TypeError(f"releases must be an array, not {type(flat).__name__}")
        if not flat or len(flat) % 2:
            raise ValueError(f"releases must be a non-empty array of (object_id, count) pairs, got {len(flat)} ints")
        if not _INT_ONLY.issuperset(map(type, flat)):
            raise TypeError("object ids and counts must be ints")
        if min(flat) < 1 or max(flat) > MAX_ID:
            raise ValueError("object ids and counts must be in 1..2**63-1")
        it = iter(flat)
        releases = dict(zip(it, it))
        if 2 * len(releases) != len(flat):
            raise ValueError("an object id appears twice")
        self = object.__new__(cls)
        self.__dict__["releases"] = releases
        return self


@dataclass(frozen=True, init=False)
class Ping:
    """Are you there? The receiver answers at once with ``Pong(nonce)`` ("heartbeat" feature)."""

    TYPE: ClassVar[MessageType] = MessageType.PING

    nonce: int

    def __init__(self, nonce: int) -> None:
        _check_id("nonce", nonce)
        self.__dict__["nonce"] = nonce


@dataclass(frozen=True, init=False)
class Pong:
    """The answer to ``Ping(nonce)``, with the same nonce."""

    TYPE: ClassVar[MessageType] = MessageType.PONG

    nonce: int

    def __init__(self, nonce: int) -> None:
        _check_id("nonce", nonce)
        self.__dict__["nonce"] = nonce


@dataclass(frozen=True, init=False)
class CacheUpdate:
    """The owner of cache ``cache_id`` tells a holder to run ``observe_<method>`` on its copy
    ("cache" feature, PROTOCOL.md §16); nothing is answered."""

    TYPE: ClassVar[MessageType] = MessageType.CACHE_UPDATED

    cache_id: int
    method: str
    args: list[Any]
    kwargs: dict[str, Any]

    def __init__(
        self, cache_id: int, method: str, args: list[Any] | tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> None:
        _check_id("cache_id", cache_id)
        if cache_id == 0:
            raise ValueError("cache_id 0 is never a cache")
        _check_str("method", method)
        if not method:
            raise ValueError("method must not be empty")
        if type(args) is tuple:
            args = list(args)
        if type(args) is not list:
            raise TypeError(f"args must be a list, not {type(args).__name__}")
        if kwargs is None:
            kwargs = {}
        if type(kwargs) is not dict:
            raise TypeError(f"kwargs must be a dict, not {type(kwargs).__name__}")
        if kwargs and not _STR_ONLY.issuperset(map(type, kwargs)):
            raise TypeError("kwargs keys must be str")
        self.__dict__.update(cache_id=cache_id, method=method, args=args, kwargs=kwargs)


@dataclass(frozen=True, init=False)
class CacheRelease:
    """A holder releases ``count`` of the cache refs to ``cache_id`` it received (§16)."""

    TYPE: ClassVar[MessageType] = MessageType.CACHE_RELEASED

    cache_id: int
    count: int

    def __init__(self, cache_id: int, count: int = 1) -> None:
        _check_id("cache_id", cache_id)
        _check_id("count", count)
        if cache_id == 0:
            raise ValueError("cache_id 0 is never a cache")
        if count == 0:
            raise ValueError("count must be at least 1")
        self.__dict__.update(cache_id=cache_id, count=count)


@dataclass(frozen=True, init=False)
class Finish:
    """The caller is done with the answers of ``question_ids`` ("pipelining", PROTOCOL.md §15):
    the callee may forget the outcomes it kept for pipelined calls on them. Distinct, never 0."""

    TYPE: ClassVar[MessageType] = MessageType.FINISH

    question_ids: tuple[int, ...]

    def __init__(self, question_ids: tuple[int, ...] | list[int]) -> None:
        if type(question_ids) not in (tuple, list):
            raise TypeError(f"question_ids must be a list of ints, not {type(question_ids).__name__}")
        ids = tuple(question_ids)
        if not ids:
            raise ValueError("question_ids must not be empty")
        if not _INT_ONLY.issuperset(map(type, ids)):
            raise TypeError("question ids must be ints")
        if min(ids) < 1 or max(ids) > MAX_ID:
            raise ValueError("question ids must be in 1..2**63-1")
        if len(set(ids)) != len(ids):
            raise ValueError("a question id appears twice")
        self.__dict__["question_ids"] = ids


@dataclass(frozen=True, init=False)
class StreamItems:
    """The producer of stream ``stream_id`` sends the next items, in order ("streams", §17)."""

    TYPE: ClassVar[MessageType] = MessageType.STREAM_ITEMS

    stream_id: int
    items: list[Any]
    #: The body length of the frame it came in (the consumer's byte count, §17.2); not a field.
    nbytes: int = field(default=0, compare=False, repr=False)

    def __init__(self, stream_id: int, items: list[Any] | tuple[Any, ...], nbytes: int = 0) -> None:
        _check_stream_id(stream_id)
        if type(items) is tuple:
            items = list(items)
        if type(items) is not list:
            raise TypeError(f"items must be a list, not {type(items).__name__}")
        if not items:
            raise ValueError("stream_items carries at least one item")
        self.__dict__.update(stream_id=stream_id, items=items, nbytes=nbytes)


@dataclass(frozen=True, init=False)
class StreamEnd:
    """The end of stream ``stream_id`` (§17): from its producer, done (``failure`` None) or
    failed; from its consumer, a cancel (``failure`` of kind "cancelled", which a producer never sends)."""

    TYPE: ClassVar[MessageType] = MessageType.STREAM_END

    stream_id: int
    failure: FailureInfo | None

    def __init__(self, stream_id: int, failure: FailureInfo | None = None) -> None:
        _check_stream_id(stream_id)
        if failure is not None and type(failure) is not FailureInfo:
            raise TypeError(f"failure must be a FailureInfo or None, not {type(failure).__name__}")
        self.__dict__.update(stream_id=stream_id, failure=failure)

    @property
    def is_cancel(self) -> bool:
        """Sent by the consumer: it wants no more items."""
        return self.failure is not None and self.failure.kind == CANCELLED


@dataclass(frozen=True, init=False)
class StreamCredit:
    """The consumer of stream ``stream_id`` lets its producer send ``items`` more items and
    ``nbytes`` more bytes of stream_items bodies (§17); added to what it had."""

    TYPE: ClassVar[MessageType] = MessageType.STREAM_CREDIT

    stream_id: int
    items: int
    nbytes: int

    def __init__(self, stream_id: int, items: int, nbytes: int) -> None:
        _check_stream_id(stream_id)
        _check_id("items", items)
        _check_id("bytes", nbytes)
        if items == 0 and nbytes == 0:
            raise ValueError("a credit of 0 items and 0 bytes says nothing")
        self.__dict__.update(stream_id=stream_id, items=items, nbytes=nbytes)


def _check_stream_id(stream_id: object) -> None:
    _check_id("stream_id", stream_id)
    if stream_id == 0:
        raise ValueError("stream_id 0 is never a stream")


Message = Union[Hello, Goodbye, Call, Answer, Error, Cancel, Decref, Decrefs, Ping, Pong, CacheUpdate, CacheRelease, Finish,
                StreamItems, StreamEnd, StreamCredit]

# ---------------------------------------------------------------------------------------------
# Wire values (msgpack ext types)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, init=False)
class ExportedRef:
    """A reference to an object the sender of the message owns (ext ``SENDER_REF``).

    Each one sent adds one to the owner's export count and to the receiver's import count.
    """

    CODE: ClassVar[ExtCode] = ExtCode.SENDER_REF

    object_id: int

    def __init__(self, object_id: int) -> None:
        if not (type(object_id) is int and 0 <= object_id <= MAX_ID):
            _check_id("object_id", object_id)
        self.__dict__["object_id"] = object_id


@dataclass(frozen=True, init=False)
class ReturnedRef:
    """A reference to an object the receiver of the message owns (ext ``RECEIVER_REF``).

    The sender imported it earlier and hands it back; no count changes.
    """

    CODE: ClassVar[ExtCode] = ExtCode.RECEIVER_REF

    object_id: int

    def __init__(self, object_id: int) -> None:
        if not (type(object_id) is int and 0 <= object_id <= MAX_ID):
            _check_id("object_id", object_id)
        self.__dict__["object_id"] = object_id


@dataclass(frozen=True, init=False)
class CopyState:
    """A copyable object: its registered type name and its state (any wire value)."""

    CODE: ClassVar[ExtCode] = ExtCode.COPY

    type_name: str
    state: Any

    def __init__(self, type_name: str, state: Any = None) -> None:
        _check_str("type_name", type_name)
        if not type_name:
            raise ValueError("type_name must not be empty")
        self.__dict__.update(type_name=type_name, state=state)


@dataclass(frozen=True, init=False)
class FailureInfo:
    """A failure: its kind, the exception type's name, its message, and a traceback in debug mode."""

    CODE: ClassVar[ExtCode] = ExtCode.FAILURE

    kind: str
    type_name: str
    message: str
    traceback: str | None

    def __init__(
        self, kind: str, type_name: str = "", message: str = "", traceback: str | None = None
    ) -> None:
        _check_kind("kind", kind, FAILURE_KINDS)
        _check_str("type_name", type_name)
        _check_str("message", message)
        if traceback is not None:
            _check_str("traceback", traceback)
        self.__dict__.update(kind=kind, type_name=type_name, message=message, traceback=traceback)


@dataclass(frozen=True, init=False)
class CacheRef:
    """A reference to a Cacheable of the sender (ext ``CACHE_REF``, "cache" feature, §16).

    ``type_name`` and ``state`` come with the first ref to a cache on a connection and are None
    after (payload ``[cache_id]``); each ref adds one to both sides' counts, like a sender ref.
    """

    CODE: ClassVar[ExtCode] = ExtCode.CACHE_REF

    cache_id: int
    type_name: str | None
    state: Any

    def __init__(self, cache_id: int, type_name: str | None = None, state: Any = None) -> None:
        _check_id("cache_id", cache_id)
        if cache_id == 0:
            raise ValueError("cache_id 0 is never a cache")
        if type_name is not None:
            _check_str("type_name", type_name)
            if not type_name:
                raise ValueError("type_name must not be empty")
        elif state is not None:
            raise ValueError("a cache ref without a type_name carries no state")
        self.__dict__.update(cache_id=cache_id, type_name=type_name, state=state)

    @property
    def first(self) -> bool:
        """Whether this ref carries the state (the first to this cache on the connection)."""
        return self.type_name is not None


@dataclass(frozen=True, init=False)
class StreamRef:
    """A stream the sender will feed (ext ``STREAM``, "streams" feature, §17): its id and the
    most items and bytes the sender wants in flight (the consumer grants at most that)."""

    CODE: ClassVar[ExtCode] = ExtCode.STREAM

    stream_id: int
    window_items: int
    window_bytes: int

    def __init__(self, stream_id: int, window_items: int, window_bytes: int) -> None:
        _check_stream_id(stream_id)
        _check_id("window_items", window_items)
        _check_id("window_bytes", window_bytes)
        if window_items == 0 or window_bytes == 0:
            raise ValueError("a stream's window is at least 1 item and 1 byte")
        self.__dict__.update(stream_id=stream_id, window_items=window_items, window_bytes=window_bytes)


WireValue = Union[ExportedRef, ReturnedRef, CopyState, FailureInfo, CacheRef, StreamRef]
