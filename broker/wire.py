"""Sans-IO codec for the broker wire format: bytes in → messages out, messages in → bytes out.

No sockets, clocks or threads (h11's shape): :class:`WireDecoder` buffers whatever
``receive_data`` is given and hands out one :mod:`broker.messages` message per frame;
:class:`WireEncoder` turns a message into one frame. The spec is ``docs/PROTOCOL.md``.

Decoding is one C pass (``msgpack.unpackb`` with every length limit set, and strict map keys)
and, only where needed, one Python walk over *containers only*, which enforces the nesting limit,
checks map keys, and turns each ext value into its :mod:`broker.messages` dataclass and then
through the ``resolve`` hook — so the broker layer never walks a decoded tree a second time. The
walk is skipped when the C pass shows it has nothing to do (``WireDecoder._plain``): no ext value,
only str and bin map keys (msgpack's ``strict_map_key`` checks them in C; another key makes the
pass start again without it), no msgpack timestamp, and no container deeper than ``max_depth``
(a second, non-building C parse by an Unpacker kept ``max_depth`` levels below msgpack's own
stack limit). Lists made only of scalars are checked in C (``set.issuperset(map(type, ...))``).
Nor is a frame walked whose only work for the walk is its ext values (``_decoded_in_c``): the C
pass's ext hook notes each one, they are built from that list (refs in bulk), and a second C
pass puts them in place, resolved; when the walk could do anything else, or that cannot be told
cheaply (see there), it runs as before. Either way, the same message or error.

The per-frame limits (PROTOCOL.md §8.2) are counted by msgpack's hooks during the C pass, so a
frame over them is abandoned part-way instead of being built whole first. A frame body can hold
no more values than it has bytes, so bodies too short to break any of them (most) are decoded
without the hooks and pay nothing for them.

Exceptions say whose fault it is::

    WireError
    ├── LocalProtocolError         you misused the API (nothing was sent)
    │   ├── UnencodableValue       a value msgpack and the ``default`` hook cannot encode
    │   └── MessageTooLarge        the encoded frame exceeds the peer's max_frame_size
    └── RemoteProtocolError        the peer broke the protocol: send Goodbye(err.kind) and close
        ├── FrameTooLarge          length header above max_frame_size (checked before buffering)
        ├── TruncatedFrame         the stream ended inside a frame
        ├── NestingTooDeep         nesting above max_depth
        ├── ContainerTooLong       an array or map above max_container_len
        ├── FrameTooComplex        a frame above a per-frame limit (items, containers, ext values)
        ├── MalformedMessage       not msgpack, wrong arity, wrong field type or value
        ├── UnknownMessageType     a message type this version does not implement
        ├── UnknownExtCode         an ext code this version does not implement
        └── HandshakeError         hello missing, repeated or not from a pbroker peer
            └── VersionMismatch    the peer speaks another protocol version
    MessageRefused                 a well-formed message named a value ``resolve`` refused

Exceptions raised by the ``resolve`` and ``default`` hooks propagate unchanged, except
:class:`Refused`: ``resolve`` raises it for a value the layer above will not accept (an object
id it never exported, an unregistered copy type). The frame is still decoded to its end, so
every reference in it is resolved (and counted) exactly once, and then ``next_message`` raises
:class:`MessageRefused` carrying the whole message and the first refusal. That is not a
protocol error: the connection goes on, and the broker answers the call with an error.
"""

from __future__ import annotations

import enum
import struct
import sys
import threading
from collections.abc import Callable, Iterable
from itertools import chain, islice
from operator import itemgetter
from typing import Any, Final, Literal, Union

import msgpack
from msgpack import ExtType, Packer, Unpacker, unpackb
from msgpack.exceptions import OutOfData, StackError, UnpackException

from .messages import (
    DEFAULT_MAX_CONTAINER_LENGTH,
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_CONTAINERS_PER_FRAME,
    DEFAULT_MAX_EXT_VALUES_PER_FRAME,
    DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_MAX_ITEMS_PER_FRAME,
    FEATURE_CACHE,
    FEATURE_CALL_OPTIONS,
    FEATURE_DECREFS,
    FEATURE_HEARTBEAT,
    FEATURE_PIPELINING,
    FEATURE_STREAMS,
    MAX_ID,
    PROTOCOL_NAME,
    PROTOCOL_VERSION,
    Answer,
    CacheRef,
    CacheRelease,
    CacheUpdate,
    Call,
    Cancel,
    CopyState,
    Decref,
    Decrefs,
    Error,
    ExportedRef,
    ExtCode,
    FailureInfo,
    Finish,
    Goodbye,
    Hello,
    Message,
    MessageType,
    Ping,
    Pong,
    ReturnedRef,
    StreamCredit,
    StreamEnd,
    StreamItems,
    StreamRef,
    WireValue,
)

__all__ = [
    "PROTOCOL_VERSION",
    "DEFAULT_MAX_FRAME_SIZE",
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_CONTAINER_LENGTH",
    "DEFAULT_MAX_ITEMS_PER_FRAME",
    "DEFAULT_MAX_CONTAINERS_PER_FRAME",
    "DEFAULT_MAX_EXT_VALUES_PER_FRAME",
    "FEATURE_MESSAGES",
    "MAX_DEPTH_CAP",
    "Signal",
    "NEED_DATA",
    "CLOSED",
    "WireDecoder",
    "WireEncoder",
    "encode",
    "decode",
    "WireError",
    "LocalProtocolError",
    "UnencodableValue",
    "MessageTooLarge",
    "RemoteProtocolError",
    "FrameTooLarge",
    "TruncatedFrame",
    "NestingTooDeep",
    "ContainerTooLong",
    "FrameTooComplex",
    "MalformedMessage",
    "UnknownMessageType",
    "UnknownExtCode",
    "HandshakeError",
    "VersionMismatch",
    "Refused",
    "MessageRefused",
]

#: Deeper limits are refused: the decoder's walk recurses once per level, and Python (and
#: msgpack's packer, which stops at 511) must be able to handle whatever we accept.
MAX_DEPTH_CAP: Final = 256

_chain: Final = chain.from_iterable
_HEADER: Final = struct.Struct(">I")
_PACK_BUFFER: Final = 4096
#: A shared Packer whose last message was bigger than this is dropped instead of pooled (its
#: buffer, grown to twice that, would stay that big).
_POOL_PACKED_BELOW: Final = 4 * 1024 * 1024
#: Shared Packers kept for reuse: one per encode in progress at once (nesting, threads) at most.
_POOLED_PACKERS: Final = 2
_MAX_FRAME_LIMIT: Final = (1 << 32) - 1

# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


class WireError(Exception):
    """Base of every exception this module raises."""


class LocalProtocolError(WireError):
    """You asked the encoder for something the protocol cannot carry; nothing was produced."""


class UnencodableValue(LocalProtocolError):
    """A value is neither a msgpack native nor a wire value, and ``default`` did not map it."""


class MessageTooLarge(LocalProtocolError):
    """The encoded frame is larger than the peer's announced ``max_frame_size``."""


class RemoteProtocolError(WireError):
    """The peer sent bytes that break the protocol.

    ``kind`` is the failure kind to put in the Goodbye sent before closing.
    """

    kind: str = "invalid"


class FrameTooLarge(RemoteProtocolError):
    """A frame's length header exceeds ``max_frame_size``; refused before buffering the body."""


class TruncatedFrame(RemoteProtocolError):
    """The stream ended in the middle of a frame."""

    kind = "disconnected"


class NestingTooDeep(RemoteProtocolError):
    """Arrays, maps and ext values nest deeper than ``max_depth``."""


class ContainerTooLong(RemoteProtocolError):
    """An array or map has more than ``max_container_length`` entries."""


class FrameTooComplex(RemoteProtocolError):
    """A frame holds more items, containers or ext values, or ext payload bytes, than a frame may."""


class MalformedMessage(RemoteProtocolError):
    """The body is not valid msgpack, or a message has the wrong arity or field types."""


class UnknownMessageType(RemoteProtocolError):
    """The message type is unknown or reserved in this protocol version."""

    kind = "unimplemented"


class UnknownExtCode(RemoteProtocolError):
    """An ext code is unknown or reserved in this protocol version."""

    kind = "unimplemented"


class HandshakeError(RemoteProtocolError):
    """The first message was not a pbroker hello, or a hello came later."""


class VersionMismatch(HandshakeError):
    """The peer's hello names a protocol version other than ours."""

    kind = "unimplemented"

    def __init__(self, peer_version: int) -> None:
        super().__init__(
            f"peer speaks pbroker protocol version {peer_version}, we speak {PROTOCOL_VERSION}"
        )
        self.peer_version = peer_version


# ---------------------------------------------------------------------------------------------
# Signals
# ---------------------------------------------------------------------------------------------


class Refused(Exception):
    """Raised by a ``resolve`` hook for a value it will not accept; ``reason`` says why."""

    def __init__(self, reason: BaseException) -> None:
        super().__init__(str(reason))
        self.reason = reason


class MessageRefused(WireError):
    """A well-formed message held a value ``resolve`` refused: answer it, keep the connection.

    ``message`` is the decoded message (refused values replaced by None); ``reason`` is the first
    refusal's reason.
    """

    def __init__(self, message: Message, reason: BaseException) -> None:
        super().__init__(f"{type(message).__name__} refused: {reason}")
        self.message = message
        self.reason = reason


class Signal(enum.Enum):
    """What ``next_message`` returns when it has no message."""

    NEED_DATA = "NEED_DATA"  # call receive_data() first
    CLOSED = "CLOSED"  # the peer closed the stream cleanly, at a frame boundary


NEED_DATA: Final = Signal.NEED_DATA
CLOSED: Final = Signal.CLOSED

# ---------------------------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------------------------


def _body(message: Message) -> list[Any]:
    """The body array of ``message``, fields in spec order."""
    t = type(message)
    if t is Call:
        m: Any = message
        if m.options is not None:  # field 8, only when "call-options" is negotiated (§18)
            return [3, m.request_id, m.target, m.method, m.args, m.kwargs, m.flags, m.options]
        return [3, m.request_id, m.target, m.method, m.args, m.kwargs, m.flags]
    if t is Answer:
        m = message
        return [4, m.request_id, m.value]
    if t is Error:
        m = message
        f = m.failure
        return [5, m.request_id, f.kind, f.type_name, f.message, f.traceback]
    if t is Decref:
        m = message
        return [7, m.object_id, m.count]
    if t is Cancel:
        m = message
        return [6, m.request_id]
    if t is Decrefs:
        return [12, list(_chain(message.releases.items()))]  # type: ignore[union-attr]
    if t is Ping:
        return [10, message.nonce]  # type: ignore[union-attr]
    if t is Pong:
        return [11, message.nonce]  # type: ignore[union-attr]
    if t is Finish:
        return [9, list(message.question_ids)]  # type: ignore[union-attr]
    if t is Hello:
        m = message
        return [
            1,
            PROTOCOL_NAME,
            m.version,
            m.max_frame_size,
            m.max_depth,
            m.max_container_length,
            list(m.features),
        ]
    if t is Goodbye:
        m = message
        return [2, m.kind, m.message]
    if t is CacheUpdate:  # "cache" feature (PROTOCOL.md §16)
        m = message
        return [17, m.cache_id, m.method, m.args, m.kwargs]
    if t is CacheRelease:
        m = message
        return [18, m.cache_id, m.count]
    if t is StreamItems:  # "streams" feature (PROTOCOL.md §17)
        return [13, message.stream_id, message.items]  # type: ignore[union-attr]
    if t is StreamEnd:
        return [14, message.stream_id, message.failure]  # type: ignore[union-attr]
    if t is StreamCredit:
        return [15, message.stream_id, message.items, message.nbytes]  # type: ignore[union-attr]
    raise UnencodableValue(f"not a broker message: {message!r}")


_WIRE_VALUE_TYPES: Final = frozenset({ExportedRef, ReturnedRef, CopyState, FailureInfo, CacheRef, StreamRef})
#: Frame bodies from this size on are encoded by encode_frame() into a reused buffer.
_REUSE_FROM: Final = 64 * 1024
#: CPython's reference count tells encode_frame() when its buffer is free again (elsewhere: never).
_getrefcount: Final = getattr(sys, "getrefcount", None)


#: Packs the object ids of ExportedRef/ReturnedRef for every encoder: packing an int runs no
#: Python code, so under the GIL no two packs of it ever interleave.
_ID_PACKER: Final = Packer(use_bin_type=True, buf_size=64)


class _PooledPacker:
    """A msgpack Packer shared by every encoder, one encode at a time, and whose encode it is.

    A Packer's buffer grows to the largest message it packed and stays that size, and its
    ``default`` hook is fixed when it is made: one per encoder (per connection) cost kilobytes
    per idle connection. So encoders borrow one from ``_PACKERS`` for each encode (a nested or a
    concurrent encode borrows another, or makes one), and its hook asks :attr:`encoder`.
    """

    __slots__ = ("packer", "encoder")

    def __init__(self) -> None:
        self.encoder: WireEncoder | None = None
        self.packer = Packer(use_bin_type=True, autoreset=False, default=self._default, buf_size=_PACK_BUFFER)

    def _default(self, obj: Any) -> Any:
        encoder = self.encoder
        if encoder is None:
            raise UnencodableValue(f"cannot encode a {type(obj).__qualname__}: no encoder is packing")
        return encoder._default(obj)


#: Idle shared Packers; ``list.pop`` and ``list.append`` are atomic, so threads share it too.
_PACKERS: Final[list[_PooledPacker]] = []


class WireEncoder:
    """Messages → frames. Borrows a shared msgpack Packer for each encode; not thread-safe.

    ``default(obj)`` is called for every object msgpack cannot encode natively and must return
    something it can (typically a wire value: a Referenceable → ``ExportedRef(id)``). Set
    ``max_frame_size`` from the peer's Hello; encoding a larger frame raises MessageTooLarge.
    Tuples are encoded as arrays (they decode as lists).
    """

    __slots__ = ("_user_default", "max_frame_size", "_frame")

    def __init__(
        self,
        *,
        default: Callable[[Any], Any] | None = None,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    ) -> None:
        self._user_default = default
        self.max_frame_size = max_frame_size
        self._frame: bytearray | None = None  # encode_frame()'s reused buffer for big frames

    def close(self) -> None:
        """Let go of the hook and the big-frame buffer (the hook refers back to the encoder's
        owner, which holds the encoder: a cycle only the cyclic GC would free)."""
        self._user_default = None
        self._frame = None

    def trim(self) -> None:
        """Let go of the buffer kept for the next big frame (say the connection is idle)."""
        self._frame = None

    def encode(self, message: Message) -> bytes:
        """One whole frame (length header + body) for ``message``."""
        frame = self._encode(message, reuse=False)
        assert isinstance(frame, bytes)
        return frame

    def encode_frame(self, message: Message) -> bytes | bytearray:
        """Like :meth:`encode`, but a big frame comes in a ``bytearray`` this encoder reuses.

        For transports: frames of at least 64 KiB are written into one buffer that is used again
        for the next big frame once nothing else refers to it any more (say the transport sent
        it whole and the caller dropped it); while anything still does, a new one is made. So a
        stream of big frames needs no fresh allocation each (a fresh megabyte costs page faults,
        not just a copy). Treat the result as read-only.
        """
        return self._encode(message, reuse=True)

    def _encode(self, message: Message, reuse: bool) -> bytes | bytearray:
        try:
            pooled = _PACKERS.pop()
        except IndexError:
            pooled = _PooledPacker()
        pooled.encoder = self
        packer = pooled.packer
        size = _POOL_PACKED_BELOW  # not pooled again unless the message is known to be smaller
        try:
            packer.pack(_body(message))
            with packer.getbuffer() as body:
                size = len(body)
                if size > self.max_frame_size:
                    raise MessageTooLarge(
                        f"{type(message).__name__} encodes to {size} bytes; "
                        f"the peer accepts at most {self.max_frame_size}"
                    )
                if not reuse or size < _REUSE_FROM or _getrefcount is None:
                    frame: bytes = _HEADER.pack(size) + body
                    return frame
                # Two references: self._frame and getrefcount's argument. More: still in use.
                if (self._frame is None or _getrefcount(self._frame) > 2
                        or len(self._frame) < 4 + size):
                    self._frame = bytearray(4 + size)
                buffer = self._frame
                if len(buffer) > 4 + size:
                    del buffer[4 + size :]
                _HEADER.pack_into(buffer, 0, size)
                # Through a memoryview: ``bytearray[a:b] = x`` first copies x into a temporary.
                with memoryview(buffer) as view:
                    view[4:] = body
                return buffer
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            raise UnencodableValue(f"cannot encode {type(message).__name__}: {exc}") from exc
        finally:
            packer.reset()
            pooled.encoder = None
            if size < _POOL_PACKED_BELOW and len(_PACKERS) < _POOLED_PACKERS:
                _PACKERS.append(pooled)

    def encode_all(self, messages: Iterable[Message]) -> bytes:
        """Frames for several messages, concatenated (one write for a batch)."""
        return b"".join([self.encode(m) for m in messages])

    def _default(self, obj: Any) -> Any:
        t = type(obj)
        if t is ExportedRef or t is ReturnedRef:
            return ExtType(obj.CODE, _ID_PACKER.pack(obj.object_id))
        if t is CopyState:
            return ExtType(ExtCode.COPY, self._payload([obj.type_name, obj.state]))
        if t is FailureInfo:
            payload = [obj.kind, obj.type_name, obj.message, obj.traceback]
            return ExtType(ExtCode.FAILURE, self._payload(payload))
        if t is CacheRef:  # "cache" feature (§16): the state travels only with the first ref
            first = [obj.cache_id, obj.type_name, obj.state] if obj.first else [obj.cache_id]
            return ExtType(ExtCode.CACHE_REF, self._payload(first))
        if t is StreamRef:  # "streams" feature (§17)
            return ExtType(ExtCode.STREAM, self._payload([obj.stream_id, obj.window_items, obj.window_bytes]))
        if self._user_default is not None:
            value = self._user_default(obj)
            if type(value) in _WIRE_VALUE_TYPES:
                return self._default(value)  # msgpack calls default only once per object
            if value is not obj:
                return value
        raise UnencodableValue(
            f"cannot encode a {t.__module__}.{t.__qualname__}: it is not a msgpack native or "
            f"a wire value, and no default= hook mapped it to one"
        )

    def _payload(self, payload: list[Any]) -> bytes:
        # A fresh Packer: the shared one is busy with the enclosing message.
        return msgpack.packb(payload, use_bin_type=True, default=self._default)  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------

#: Types a decoded msgpack scalar can have; anything else needs the walk.
_SCALARS: Final = frozenset({type(None), bool, int, float, str, bytes})
#: Bodies shorter than this are sliced (copied); longer ones are decoded through a memoryview.
_SLICE_BELOW: Final = 4096
#: Spare room ``get_buffer`` offers at first; doubled each time a read fills it, up to the max.
_MIN_READ_SIZE: Final = 4096
_MAX_READ_SIZE: Final = 256 * 1024
#: A buffer grown above this (by a frame that big) is not kept once that frame is decoded: it is
#: dropped if empty, or what is pending (at most ``_MAX_READ_SIZE``) moves to a small new one.
_RETAIN_CAPACITY: Final = 4 * 1024 * 1024 + 64 * 1024
#: A buffer emptied by decoding is kept for the next frame if at least this big (and at most
#: _RETAIN_CAPACITY), until :meth:`WireDecoder.trim`; a smaller one goes at once.
_KEEP_FROM: Final = 64 * 1024
#: Reads up to this size (a transport's usual read, net.tcp.Connection.read_size) go to the
#: thread's shared read buffer when a decoder has nothing pending; bigger ones (a connection
#: busy with big frames or bursts) to a buffer of its own, kept until :meth:`WireDecoder.trim`.
_SHARED_READ_SIZE: Final = 64 * 1024
#: What a decoder holds while it has nothing pending: no buffer. Never written to (a write first
#: makes room, and room in an empty buffer means a new one).
_NO_BUFFER: Final = bytearray()


class _ReadBuffer:
    """The read buffer the decoders of one thread lend while they have nothing pending.

    So an idle connection holds no receive buffer: the transport reads into this one, and only
    what it received is copied into a buffer of the connection's own, which it keeps only while
    a frame is incomplete or not yet decoded. Per thread, because a decoder lends it until its
    ``buffer_updated`` (broker.blocking receives with its lock released).
    """

    __slots__ = ("data", "view", "lent_to")

    def __init__(self) -> None:
        self.lent_to: WireDecoder | None = None  # whose get_buffer() it was lent by last
        self.resize(_MIN_READ_SIZE)  # it grows to the largest read asked, up to _SHARED_READ_SIZE

    def resize(self, size: int) -> None:
        """A new buffer of ``size`` bytes (views of the old one may still be held: not resized)."""
        self.data = bytearray(size)
        self.view = memoryview(self.data)  # kept: sliced for every read lent


_THREAD_LOCAL: Final = threading.local()


def _read_buffer() -> _ReadBuffer:
    """This thread's shared read buffer."""
    try:
        shared: _ReadBuffer = _THREAD_LOCAL.read_buffer
    except AttributeError:
        shared = _THREAD_LOCAL.read_buffer = _ReadBuffer()
    return shared


class WireDecoder:
    """Bytes → messages, enforcing our limits while decoding.

    Call ``receive_data(data)`` with whatever arrived (``b""`` means end of stream), then
    ``next_message()`` until it returns NEED_DATA, or ``messages()`` to get every complete message
    at once (the fast path for a burst of frames). ``resolve(value)`` is applied to each decoded
    wire value (ExportedRef, ReturnedRef, CopyState, FailureInfo — innermost first) and its result
    takes the value's place; by default values are left as they are.

    The limits are what we accept; announce them with ``hello()``. The per-frame limits
    (``max_items_per_frame``, ``max_containers_per_frame``, ``max_ext_values_per_frame``, and ext
    payload bytes up to ``max_frame_size``) are the protocol's and not announced: raise them to
    accept more from a trusted peer; lowering them is for tests (announce a smaller
    ``max_frame_size`` instead). ``features`` are the optional extensions we implement and
    announce; once the peer's hello arrives, ``negotiated`` holds those both hellos named, and only
    their messages decode (the others are UnknownMessageType). With ``expect_hello`` (the
    default) the first message must be a pbroker Hello of our version, and no other Hello may
    follow; without it the decoder is past a handshake in which both sides named ``features``.
    After a RemoteProtocolError about one frame the decoder has moved past that frame; after
    FrameTooLarge or TruncatedFrame it cannot find the next frame and re-raises forever.
    """

    # One per connection: slots, and "__dict__" only so an instance can still be given an
    # attribute (tests replace a method); the dict is made only then.
    __slots__ = (
        "max_items_per_frame", "max_containers_per_frame", "max_ext_values_per_frame", "features",
        "negotiated", "_decoders", "_count_above", "_items", "_containers", "_ext_values",
        "_payload_bytes", "max_frame_size", "max_depth", "max_container_length", "_resolve",
        "_expect_hello", "_refusal", "_buf", "_start", "_end", "_lent", "_shared", "_read_size",
        "_eof", "_stored_error", "_error_is_fatal", "_unpack_options", "_counting_cache", "_counted",
        "_strict_options", "_strict_counting_cache", "_options", "_keys_ok", "_plain_state",
        "_body", "_src", "_scan", "__dict__",
    )

    def __init__(
        self,
        *,
        resolve: Callable[[WireValue], Any] | None = None,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        max_depth: int = DEFAULT_MAX_DEPTH,
        max_container_length: int = DEFAULT_MAX_CONTAINER_LENGTH,
        max_items_per_frame: int = DEFAULT_MAX_ITEMS_PER_FRAME,
        max_containers_per_frame: int = DEFAULT_MAX_CONTAINERS_PER_FRAME,
        max_ext_values_per_frame: int = DEFAULT_MAX_EXT_VALUES_PER_FRAME,
        features: Iterable[str] = (),
        expect_hello: bool = True,
    ) -> None:
        if not 1 <= max_frame_size <= _MAX_FRAME_LIMIT:
            raise ValueError(f"max_frame_size must be in 1..2**32-1, got {max_frame_size}")
        if not 2 <= max_depth <= MAX_DEPTH_CAP:
            raise ValueError(f"max_depth must be in 2..{MAX_DEPTH_CAP}, got {max_depth}")
        if not 1 <= max_container_length <= _MAX_FRAME_LIMIT:
            raise ValueError(f"max_container_length must be in 1..2**32-1, got {max_container_length}")
        for name, value in (
            ("max_items_per_frame", max_items_per_frame),
            ("max_containers_per_frame", max_containers_per_frame),
            ("max_ext_values_per_frame", max_ext_values_per_frame),
        ):
            if type(value) is not int or not 1 <= value <= _MAX_FRAME_LIMIT:
                raise ValueError(f"{name} must be in 1..2**32-1, got {value}")
        self.max_items_per_frame = max_items_per_frame
        self.max_containers_per_frame = max_containers_per_frame
        self.max_ext_values_per_frame = max_ext_values_per_frame
        self.features: tuple[str, ...] = tuple(features)
        #: The features both hellos named (before the peer's hello: none, unless past it already).
        self.negotiated: frozenset[str] = _shared_set(frozenset() if expect_hello else frozenset(self.features))
        self._decoders = _decoders_for(self.negotiated)
        # Bodies longer than this might break a per-frame limit (a value takes at least one byte
        # of the body, an ext value three): only they are decoded with the counting hooks.
        self._count_above = min(max_items_per_frame, max_containers_per_frame, 3 * max_ext_values_per_frame)
        self._counted = False  # whether the frame being decoded is counted by the hooks
        self._items = 0  # counts of the frame being decoded
        self._containers = 0
        self._ext_values = 0
        self._payload_bytes = 0
        self.max_frame_size = max_frame_size
        self.max_depth = max_depth
        self.max_container_length = max_container_length
        self._resolve = resolve
        self._expect_hello = expect_hello
        self._refusal: Refused | None = None  # the first value resolve refused in this frame
        self._buf = _NO_BUFFER
        self._start = 0
        self._end = 0
        self._lent = 0  # size of the view get_buffer() handed out
        self._shared: _ReadBuffer | None = None  # whose read buffer that view is of, if not ours
        self._read_size = _MIN_READ_SIZE
        self._eof = False
        # An error to raise on the next call: once if deferred by messages(), forever if fatal.
        self._stored_error: Exception | None = None
        self._error_is_fatal = False
        self._unpack_options: dict[str, Any] = dict(
            raw=False,
            strict_map_key=False,  # dict keys may be any scalar; _convert rejects the rest
            use_list=True,
            max_array_len=max_container_length,
            max_map_len=max_container_length,
            max_str_len=max_frame_size,
            max_bin_len=max_frame_size,
            max_ext_len=max_frame_size,
            ext_hook=self._note_ext,
        )
        # The counting options (see _counting_options) are made on first use.
        self._counting_cache: dict[str, Any] | None = None
        self._strict_counting_cache: dict[str, Any] | None = None
        # The body's own pass first tries msgpack's strict map keys (str and bin only, checked in
        # C); a map with another key makes it start again with the options above (§8.1 rule 2
        # is unaffected: up to that key both passes do the same).
        # Its ext hook also builds each ext value's wire value (see _decoded_in_c).
        self._strict_options = dict(self._unpack_options, strict_map_key=True, ext_hook=self._gather_ext)
        self._options = self._unpack_options  # per frame: with the hooks or without
        self._scan: _ExtScan | None = None  # per frame, once it has an ext value
        # Per frame: what the C pass showed (see _plain()).
        self._keys_ok = True  # every map key a str or bin
        self._plain_state: bool | None = None
        self._body: bytes | bytearray | memoryview | None = None
        self._src: tuple[bytes | bytearray, int, int] | None = None  # body as (buffer, lo, hi)

    @property
    def _counting_options(self) -> dict[str, Any]:
        """Options for bodies long enough to break a per-frame limit, with the counting hooks.

        Made on first use: most connections never send such a body, and the hooks (bound
        methods of this decoder) and the dicts cost about a kilobyte per connection.
        """
        options = self._counting_cache
        if options is None:
            options = self._counting_cache = dict(
                self._unpack_options,
                list_hook=self._count_array,
                object_hook=self._count_map,
                ext_hook=self._count_ext,
            )
        return options

    @_counting_options.setter
    def _counting_options(self, options: dict[str, Any]) -> None:
        self._counting_cache = options

    @property
    def _strict_counting_options(self) -> dict[str, Any]:
        options = self._strict_counting_cache
        if options is None:
            options = self._strict_counting_cache = dict(
                self._counting_options, strict_map_key=True, ext_hook=self._gather_counted_ext
            )
        return options

    @_strict_counting_options.setter
    def _strict_counting_options(self, options: dict[str, Any]) -> None:
        self._strict_counting_cache = options

    def hello(self, features: Iterable[str] | None = None) -> Hello:
        """Our Hello, announcing the limits this decoder enforces and our features.

        ``features``, if given, replace the ones the decoder was made with.
        """
        if features is not None:
            self.features = tuple(features)
            if not self._expect_hello:
                self._negotiate(self.features)
        return Hello(
            PROTOCOL_VERSION,
            self.max_frame_size,
            self.max_depth,
            self.max_container_length,
            self.features,
        )

    def _negotiate(self, theirs: Iterable[str]) -> None:
        self.negotiated = _shared_set(frozenset(self.features).intersection(theirs))
        self._decoders = _decoders_for(self.negotiated)

    # -- stream -----------------------------------------------------------------------------
    #
    # While bytes are pending, the decoder has a ``bytearray`` of its own: ``_buf[_start:_end]`` is
    # received but not yet decoded, ``_buf[_end:]`` is spare capacity. Bytes are appended by
    # ``receive_data`` (one copy) or received straight into the spare capacity by the transport
    # (``get_buffer``/``buffer_updated``, asyncio's BufferedProtocol shape: no copy at all).
    # Decoded frames only move ``_start``; the bytes still pending are moved to the front only
    # when the spare capacity at the end is too small, and the buffer grows geometrically: in
    # place when nothing else holds a view of it (realloc: usually no copy), else it is replaced,
    # so a view still held elsewhere cannot break it. The size follows the bytes actually
    # received, never a length header (a header is a promise, and 16 idle peers each promising
    # 16 MiB must not cost 256 MiB).
    #
    # Once everything is decoded a small buffer goes; a big one (_KEEP_FROM to _RETAIN_CAPACITY)
    # is kept for the next big frame (a fresh megabyte costs page faults) until :meth:`trim`
    # (the I/O adapter calls it when the connection has been idle a while). With no buffer,
    # ``get_buffer`` lends the thread's shared read buffer (:class:`_ReadBuffer`) and
    # ``buffer_updated`` copies what arrived into a buffer of the decoder's own, with room for
    # the rest of a frame bigger than the read. So an idle connection holds no receive buffer, a
    # burst of small messages costs one copy of each read, and a big frame one copy of its first
    # read only (the rest is received straight into its buffer).

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Buffer ``data`` (copied); ``b""`` marks the end of the stream."""
        if not data:
            self._eof = True
            return
        if self._eof:
            raise RuntimeError("receive_data() after the end of the stream")
        if type(data) is not bytes and type(data) is not bytearray:
            data = memoryview(data).cast("B")
        n = len(data)
        if self._start == self._end and n < _MIN_READ_SIZE:  # nothing pending: a buffer just this big
            self._buf = bytearray(data)
            self._start = 0
            self._end = n
            return
        end = self._end
        if end + n > len(self._buf):
            self._make_room(n)
            end = self._end
        if n < 4096:
            self._buf[end : end + n] = data
        else:  # through a memoryview: ``bytearray[a:b] = x`` copies x to a temporary first
            with memoryview(self._buf) as view:
                view[end : end + n] = data
        self._end = end + n

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """Spare capacity at the end of the buffer for the transport to receive into.

        At least ``sizehint`` bytes (when positive). Inside a big frame the room offered grows
        with the bytes that have arrived (as many again, or the rest of the frame once that is at
        most twice as many), so the buffer grows geometrically, stays within three times what was
        received, and a frame of n bytes costs O(n) copying in all; it never grows with the size
        the header announces: a peer sending a header alone costs a few KiB, not
        ``max_frame_size``. Report what was written with :meth:`buffer_updated`; the view must
        not be used after that.
        """
        if self._eof:
            raise RuntimeError("get_buffer() after the end of the stream")
        want = self._read_size
        if sizehint > want:
            want = sizehint
        start = self._start
        pending = self._end - start
        if not pending and len(self._buf) < want <= _SHARED_READ_SIZE:  # no buffer: lend the thread's
            shared = _read_buffer()
            if len(shared.data) < want:
                shared.resize(want)
            shared.lent_to = self
            self._shared = shared
            self._lent = want
            return shared.view[:want]
        self._shared = None
        if pending > want:
            (size,) = _HEADER.unpack_from(self._buf, start)
            if size <= self.max_frame_size:
                rest = 4 + size - pending
                # Room for as many bytes again as have arrived; for the whole rest once that is at
                # most twice as many (one last step, rather than two with a big copy between).
                want = max(want, rest if rest <= 2 * pending else pending)
        if len(self._buf) - self._end < want:
            self._make_room(want)
        view = memoryview(self._buf)[self._end :]
        self._lent = len(view)
        return view

    def buffer_updated(self, nbytes: int) -> None:
        """``nbytes`` were written at the start of the view :meth:`get_buffer` returned."""
        if not 0 <= nbytes <= self._lent:
            raise ValueError(f"buffer_updated({nbytes}): the buffer lent was {self._lent} bytes")
        if nbytes == self._lent and self._read_size < _MAX_READ_SIZE:
            self._read_size *= 2  # the read filled what we offered: offer more next time
        self._lent = 0
        shared = self._shared
        if shared is None:
            self._end += nbytes
            return
        self._shared = None
        if shared.lent_to is not self:
            raise LocalProtocolError(
                "buffer_updated(): the shared read buffer this decoder lent was lent again by another "
                "decoder of this thread since; the I/O layer must call buffer_updated() before the next get_buffer()")
        shared.lent_to = None
        if nbytes:
            self._take(shared, nbytes)

    def _take(self, shared: _ReadBuffer, n: int) -> None:
        """Copy the ``n`` bytes received into the shared read buffer into a buffer of our own.

        Just as big, unless they begin a frame bigger than them: then with room for the next
        read as :meth:`get_buffer` would offer it, so the rest is received straight into it.
        """
        data = shared.data
        if self._end > self._start:  # bytes pending (receive_data meanwhile): append
            self.receive_data(data[:n])
            return
        buf = None
        if n >= 4:
            (size,) = _HEADER.unpack_from(data, 0)
            rest = 4 + size - n
            if rest > 0 and size <= self.max_frame_size:
                buf = bytearray(n + max(self._read_size, rest if rest <= 2 * n else n))
                with memoryview(buf) as target:
                    target[:n] = shared.view[:n]
        self._buf = data[:n] if buf is None else buf  # a bytearray slice: a copy, just as big
        self._start = 0
        self._end = n

    def _make_room(self, n: int) -> None:
        """Make ``_buf[_end:]`` at least ``n`` bytes: move pending bytes to the front, or grow.

        Growing at least doubles the buffer (amortised O(1) copying per byte) but never past what
        the bytes pending and ``n`` need plus the largest frame, so the size stays proportional to
        what was received (``n`` is bounded by the caller: a read size, or data in hand).
        """
        buf = self._buf
        start = self._start
        pending = self._end - start
        if pending + n <= len(buf) and (start >= pending or start >= len(buf) // 2):
            # Enough room once compacted, and the move is cheap relative to what it frees.
            if pending:
                with memoryview(buf) as view:
                    view[:pending] = view[start : start + pending]  # memmove
        else:
            doubled = min(2 * len(buf), 4 + self.max_frame_size + _MAX_READ_SIZE)
            size = max(pending + n, doubled, _MIN_READ_SIZE)
            if start == 0 and pending >= _MIN_READ_SIZE:
                # In place: realloc can often extend without copying (mremap for big buffers).
                # Refused while a view of the buffer is still held somewhere: then copy.
                try:
                    buf.extend(bytes(size - len(buf)))
                except BufferError:
                    pass
                else:
                    self._end = pending
                    return
            new = bytearray(size)
            if pending:
                with memoryview(buf) as view, memoryview(new) as target:
                    target[:pending] = view[start : start + pending]
            self._buf = new
        self._start = 0
        self._end = pending

    def trim(self) -> None:
        """Let go of a buffer kept for the next big frame, if nothing is pending (say the
        connection has been idle a while): an idle decoder then holds no buffer at all."""
        if self._start == self._end and not self._lent:  # and no view of it is out
            self._buf = _NO_BUFFER
            self._start = self._end = 0

    def _shrink(self, start: int) -> None:
        """A big frame ending at ``start`` is decoded: copy what follows it to a small buffer."""
        pending = self._end - start
        new = bytearray(max(pending + self._read_size, _MIN_READ_SIZE))
        with memoryview(self._buf) as view, memoryview(new) as target:
            target[:pending] = view[start : self._end]
        self._buf = new  # the caller still holds the old one, to decode the frame from
        self._start = 0
        self._end = pending

    def close(self) -> None:
        """Let go of the buffer and the hooks (they refer back to their owners, and the counting
        hooks to this decoder: a cycle only the cyclic GC would free). Unusable afterwards."""
        self._buf = _NO_BUFFER
        self._start = self._end = self._lent = 0
        shared, self._shared = self._shared, None
        if shared is not None and shared.lent_to is self:
            shared.lent_to = None  # it would keep this decoder (and its owner) alive
        self._resolve = None
        inert = dict(self._unpack_options, ext_hook=_raw_ext)
        self._unpack_options = self._counting_options = self._options = inert
        self._strict_options = self._strict_counting_options = inert
        self._scan = None
        self._count_above = sys.maxsize  # no frame is decoded with the (now dropped) hooks
        self._fail(TruncatedFrame("the decoder was closed"))

    @property
    def buffered(self) -> int:
        """Bytes received but not yet decoded."""
        return self._end - self._start

    def next_message(self) -> Message | Literal[Signal.NEED_DATA, Signal.CLOSED]:
        """The next message, NEED_DATA, or CLOSED once the stream ended at a frame boundary."""
        if self._stored_error is not None:
            exc = self._stored_error
            if not self._error_is_fatal:
                self._stored_error = None
            raise exc
        buf = self._buf
        start = self._start
        available = self._end - start
        if available >= 4:
            (size,) = _HEADER.unpack_from(buf, start)
            if size > self.max_frame_size:
                limit = self.max_frame_size
                raise self._fail(FrameTooLarge(f"frame of {size} bytes; the limit is {limit}"))
            end = start + 4 + size
            if end <= self._end:
                if end == self._end:
                    self._start = self._end = 0
                    if not _KEEP_FROM <= len(buf) <= _RETAIN_CAPACITY:
                        self._buf = _NO_BUFFER  # small, or a huge frame passed: do not hold on to it
                elif len(buf) > _RETAIN_CAPACITY and self._end - end <= _MAX_READ_SIZE:
                    self._shrink(end)  # likewise, keeping the few bytes that follow it
                else:
                    self._start = end
                if size < _SLICE_BELOW:
                    return self.decode_body(buf[start + 4 : end])
                body = memoryview(buf)[start + 4 : end]
                self._src = (buf, start + 4, end)
                try:
                    return self.decode_body(body)
                finally:
                    body.release()  # even if an exception (and its traceback) outlives this call
        if not self._eof:
            return NEED_DATA
        if available:
            raise self._fail(TruncatedFrame(f"the stream ended {available} bytes into a frame"))
        return CLOSED

    def _fail(self, exc: RemoteProtocolError) -> RemoteProtocolError:
        """Remember an error after which the stream cannot be decoded any further."""
        self._stored_error = exc
        self._error_is_fatal = True
        return exc

    def messages(self) -> list[Message]:
        """Every complete message buffered so far (maybe none).

        If a frame is bad, the messages before it are returned and the error is raised by the
        next call, so nothing the peer sent before its mistake is lost.
        """
        out: list[Message] = []
        try:
            while True:
                message = self.next_message()
                if message is NEED_DATA or message is CLOSED:
                    return out
                out.append(message)
        except Exception as exc:
            if not out:
                raise
            self._stored_error = exc
            return out

    # -- one body ---------------------------------------------------------------------------

    def decode_body(self, body: bytes | bytearray | memoryview) -> Message:
        """Decode one frame body (without its length header)."""
        self._payload_bytes = self._items = self._containers = self._ext_values = 0
        self._plain_state = None
        self._body = body
        try:
            return self._decode_body(body)
        finally:
            self._body = self._src = self._scan = None

    def _decode_body(self, body: bytes | bytearray | memoryview) -> Message:
        if len(body) > self._count_above and self._may_break_frame_limits(body):
            self._counted = True
            self._options = self._counting_options
            strict = self._strict_counting_options
        else:
            self._counted = False
            self._options = self._unpack_options
            strict = self._strict_options
        try:
            fields = unpackb(body, **strict)
            self._keys_ok = True
        except ValueError as exc:
            if "strict_map_key" not in str(exc):
                raise self._unpack_error(exc) from exc
            # A key other than a str or bin: decode again, keys as they come; the walk checks them.
            self._items = self._containers = self._ext_values = 0
            self._keys_ok = False
            self._scan = None
            fields = self._unpack(body)
        except Exception as exc:
            raise self._unpack_error(exc) from exc
        if type(fields) is not list or not fields:
            raise MalformedMessage("a message body must be a non-empty array")
        mtype = fields[0]
        if type(mtype) is not int:
            raise MalformedMessage(f"message type must be an int, not {type(mtype).__name__}")
        if self._expect_hello:
            if mtype == MessageType.GOODBYE:  # the peer refuses us instead of saying hello
                return self._goodbye(fields)
            if mtype != MessageType.HELLO:
                raise HandshakeError(f"expected hello as the first message, got message type {mtype}")
            message = self._hello(fields)
            self._expect_hello = False
            self._negotiate(message.features)
            return message
        decoder = self._decoders.get(mtype)
        if decoder is None:
            if mtype == MessageType.HELLO:
                raise HandshakeError("hello received after the handshake")
            raise UnknownMessageType(f"message type {mtype} is not implemented")
        try:
            decoded = decoder(self, fields)
        finally:
            refusal, self._refusal = self._refusal, None
        if refusal is not None:
            raise MessageRefused(decoded, refusal.reason)
        return decoded

    def _unpack(self, data: bytes | bytearray | memoryview) -> Any:
        try:
            return unpackb(data, **self._options)
        except Exception as exc:
            raise self._unpack_error(exc) from exc

    def _unpack_error(self, exc: Exception) -> RemoteProtocolError:
        """Name by cause what msgpack raised (it has no exception class per limit)."""
        if isinstance(exc, RemoteProtocolError):  # raised by our hooks
            return exc
        if isinstance(exc, StackError):
            return NestingTooDeep(f"nesting deeper than {self.max_depth}")
        text = str(exc) or type(exc).__name__
        if "exceeds max_array_len" in text or "exceeds max_map_len" in text:
            return ContainerTooLong(f"container longer than {self.max_container_length}")
        if isinstance(exc, (ValueError, TypeError, UnpackException)):  # TypeError: array as map key
            return MalformedMessage(f"not a msgpack value: {text}")
        raise exc

    @staticmethod
    def _build(cls: Callable[..., Any], *args: Any) -> Any:
        try:
            return cls(*args)
        except (TypeError, ValueError) as exc:
            raise MalformedMessage(f"bad {cls.__name__}: {exc}") from exc

    # Field-by-field decoders. Level 1 is the body array, so top-level fields are at level 2.

    def _hello(self, f: list[Any]) -> Hello:
        # [1, "pbroker", version, ...] is the same in every version, so check it first.
        if len(f) < 3 or f[1] != PROTOCOL_NAME or type(f[1]) is not str:
            raise HandshakeError("the peer does not speak the pbroker protocol")
        if f[2] != PROTOCOL_VERSION or type(f[2]) is not int:
            raise VersionMismatch(f[2])
        if len(f) != 7 or type(f[6]) is not list:
            raise HandshakeError(
                "malformed hello: expected [1, name, version, max_frame_size, max_depth, "
                "max_container_length, features]"
            )
        try:
            return Hello(f[2], f[3], f[4], f[5], f[6])
        except (TypeError, ValueError) as exc:
            raise HandshakeError(f"malformed hello: {exc}") from exc

    def _goodbye(self, f: list[Any]) -> Goodbye:
        _arity(f, 3, "goodbye")
        message: Goodbye = self._build(Goodbye, f[1], f[2])
        return message

    def _call(self, f: list[Any]) -> Call:
        options = None
        if len(f) == 8 and FEATURE_CALL_OPTIONS in self.negotiated:  # §18: field 8, a map
            options = f.pop()
            if type(options) is not dict or not all(
                type(k) is str and type(v) in _SCALARS or (type(v) is dict and _SCALARS.issuperset(map(type, v.values())))
                for k, v in options.items()
            ):  # no refs or copies in there: nothing to count or resolve; the session checks the rest
                raise MalformedMessage("call options must be a map of scalars and maps of scalars")
        if len(f) != 7:
            raise MalformedMessage(f"call has {len(f) - 1} fields; expected 6")
        _, request_id, target, method, args, kwargs, flags = f
        if type(args) is not list:
            raise MalformedMessage("call args must be an array")
        if type(kwargs) is not dict:
            raise MalformedMessage("call kwargs must be a map")
        walk_args = args and not _SCALARS.issuperset(map(type, args))
        if (walk_args or kwargs) and not self._plain():
            redone = self._decoded_in_c(f, _CALL_UNWALKED)
            if redone is not None:
                args, kwargs = redone[4], redone[5]
            else:
                if walk_args:
                    self._convert(args, 2)
                if kwargs:
                    self._convert(kwargs, 2)
        try:
            return Call(request_id, target, method, args, kwargs, flags, options)
        except (TypeError, ValueError) as exc:
            raise MalformedMessage(f"bad call: {exc}") from exc

    def _answer(self, f: list[Any]) -> Answer:
        if len(f) != 3:
            raise MalformedMessage(f"answer has {len(f) - 1} fields; expected 2")
        _, request_id, value = f
        if type(value) not in _SCALARS and not self._plain():
            # A lone ext value is no walk: it is converted as it is.
            redone = None if type(value) is tuple else self._decoded_in_c(f, _ANSWER_UNWALKED)
            value = self._convert(value, 2) if redone is None else redone[2]
        try:
            return Answer(request_id, value)
        except (TypeError, ValueError) as exc:
            raise MalformedMessage(f"bad answer: {exc}") from exc

    def _error(self, f: list[Any]) -> Error:
        _arity(f, 6, "error")
        failure = self._build(FailureInfo, f[2], f[3], f[4], f[5])
        message: Error = self._build(Error, f[1], failure)
        return message

    def _cancel(self, f: list[Any]) -> Cancel:
        _arity(f, 2, "cancel")
        message: Cancel = self._build(Cancel, f[1])
        return message

    def _decref(self, f: list[Any]) -> Decref:
        _arity(f, 3, "decref")
        message: Decref = self._build(Decref, f[1], f[2])
        return message

    def _decrefs(self, f: list[Any]) -> Decrefs:
        _arity(f, 2, "decrefs")
        message: Decrefs = self._build(Decrefs.from_flat, f[1])
        return message

    def _cache_ref(self, payload: Any, level: int) -> CacheRef:
        """Ext 6 (§16): ``[cache_id]``, or ``[cache_id, type_name, state]`` the first time."""
        if type(payload) is not list or len(payload) not in (1, 3):
            raise MalformedMessage("a cache ref's payload must be [cache_id] or [cache_id, type_name, state]")
        if len(payload) == 1:
            ref: CacheRef = self._build(CacheRef, payload[0])
            return ref
        cache_id, type_name, state = payload
        if type(type_name) is not str:
            raise MalformedMessage("a cache ref's type_name must be a str")
        if type(state) not in _SCALARS:
            state = self._convert(state, level + 1)
        ref = self._build(CacheRef, cache_id, type_name, state)
        return ref

    def _cache_update(self, f: list[Any]) -> CacheUpdate:
        if len(f) != 5:
            raise MalformedMessage(f"cache_update has {len(f) - 1} fields; expected 4")
        _, cache_id, method, args, kwargs = f
        if type(args) is not list:
            raise MalformedMessage("cache_update args must be an array")
        if type(kwargs) is not dict:
            raise MalformedMessage("cache_update kwargs must be a map")
        if not self._plain():
            if args and not _SCALARS.issuperset(map(type, args)):
                self._convert(args, 2)
            if kwargs:
                self._convert(kwargs, 2)
        message: CacheUpdate = self._build(CacheUpdate, cache_id, method, args, kwargs)
        return message

    def _cache_release(self, f: list[Any]) -> CacheRelease:
        _arity(f, 3, "cache_release")
        message: CacheRelease = self._build(CacheRelease, f[1], f[2])
        return message

    def _ping(self, f: list[Any]) -> Ping:
        _arity(f, 2, "ping")
        message: Ping = self._build(Ping, f[1])
        return message

    def _pong(self, f: list[Any]) -> Pong:
        _arity(f, 2, "pong")
        message: Pong = self._build(Pong, f[1])
        return message

    def _stream_items(self, f: list[Any]) -> StreamItems:
        """13 (§17): ``[13, stream_id, items]``; the items are walked like a call's args."""
        _arity(f, 3, "stream_items")
        items = f[2]
        if type(items) is not list:
            raise MalformedMessage("stream_items items must be an array")
        if items and not _SCALARS.issuperset(map(type, items)) and not self._plain():
            self._convert(items, 2)
        body = self._body
        message: StreamItems = self._build(StreamItems, f[1], items, 0 if body is None else len(body))
        return message

    def _stream_end(self, f: list[Any]) -> StreamEnd:
        """14 (§17): ``[14, stream_id, failure or nil]``; the failure is not resolved (the
        session turns it into the consumer's exception)."""
        _arity(f, 3, "stream_end")
        failure = f[2]
        if failure is not None:
            if type(failure) is not tuple or failure[0] != ExtCode.FAILURE:
                raise MalformedMessage("stream_end's third field must be a failure (ext 4) or nil")
            self._payload_bytes += len(failure[1])
            if self._payload_bytes > self.max_frame_size:
                raise self._too_complex()
            payload = self._unpack(failure[1])
            if type(payload) is not list or len(payload) != 4:
                raise MalformedMessage("a failure's payload must be [kind, type_name, message, traceback]")
            failure = self._build(FailureInfo, *payload)
        message: StreamEnd = self._build(StreamEnd, f[1], failure)
        return message

    def _stream_credit(self, f: list[Any]) -> StreamCredit:
        _arity(f, 4, "stream_credit")
        message: StreamCredit = self._build(StreamCredit, f[1], f[2], f[3])
        return message

    def _stream_ref(self, payload: Any) -> StreamRef:
        """Ext 7 (§17): ``[stream_id, window_items, window_bytes]``."""
        if type(payload) is not list or len(payload) != 3:
            raise MalformedMessage("a stream's payload must be [stream_id, window_items, window_bytes]")
        ref: StreamRef = self._build(StreamRef, *payload)
        return ref

    def _finish(self, f: list[Any]) -> Finish:
        _arity(f, 2, "finish")
        if type(f[1]) is not list:
            raise MalformedMessage(f"finish question ids must be an array, not {type(f[1]).__name__}")
        message: Finish = self._build(Finish, f[1])
        return message

    # -- per-frame counts (msgpack hooks; only for bodies long enough to break a limit) -------

    def _count_array(self, obj: list[Any]) -> list[Any]:
        self._items += len(obj)
        self._containers += 1
        if self._items > self.max_items_per_frame or self._containers > self.max_containers_per_frame:
            raise self._too_complex()
        return obj

    def _may_break_frame_limits(self, body: bytes | bytearray | memoryview) -> bool:
        """Whether ``body`` could break a per-frame limit, by an upper bound from its bytes alone:
        every value takes a byte, and every container or ext value starts with one of the header
        bytes msgpack gives them (string and binary contents may look like headers too, which
        only makes the bound higher). Two C passes instead of one Python call per container."""
        if len(body) > self.max_items_per_frame:
            return True
        classes = (body if type(body) is not memoryview else bytes(body)).translate(_HEADER_CLASSES)
        return (classes.count(b"c") > self.max_containers_per_frame
                or classes.count(b"e") > self.max_ext_values_per_frame)

    def _count_map(self, obj: dict[Any, Any]) -> dict[Any, Any]:
        self._items += 2 * len(obj)
        self._containers += 1
        if self._items > self.max_items_per_frame or self._containers > self.max_containers_per_frame:
            raise self._too_complex()
        return obj

    def _note_ext(self, code: int, data: bytes) -> tuple[int, bytes]:
        self._ext_values += 1  # only noted: a body this short cannot break the limit
        return (code, data)

    def _count_ext(self, code: int, data: bytes) -> tuple[int, bytes]:
        self._ext_values += 1
        if self._ext_values > self.max_ext_values_per_frame:
            raise self._too_complex()
        return (code, data)

    def _too_complex(self) -> FrameTooComplex:
        if self._items > self.max_items_per_frame:
            what = f"more than {self.max_items_per_frame} items"
        elif self._containers > self.max_containers_per_frame:
            what = f"more than {self.max_containers_per_frame} arrays and maps"
        elif self._ext_values > self.max_ext_values_per_frame:
            what = f"more than {self.max_ext_values_per_frame} ext values"
        else:
            what = f"more than {self.max_frame_size} bytes of ext payloads"
        return FrameTooComplex(f"the frame holds {what}")

    # -- ext values put in place in C, not by the walk -------------------------------------
    #
    # The strict C pass's ext hook also notes each ext value it reads (the tuple it puts in the
    # tree), in byte order. After the message's shape is checked (§8.1 rules 3-6),
    # _decoded_in_c decides from what the C pass found whether the walk (rule 7) could raise
    # or change anything but put each ext value's wire value in place; if not, it builds those
    # values from the noted list (refs in bulk, by C builtins; a copy or failure by decoding its
    # payload, whose own ext values a nested hook builds), and a second C pass over the body
    # puts them in place, resolved, in the walk's order: no container is visited in Python. If
    # the walk could do anything else, or that cannot be told cheaply, the walk runs on the
    # first pass's tree as it always did: same errors, same messages, same resolve calls.

    def _gather_ext(self, code: int, data: bytes) -> tuple[int, bytes]:
        """The strict C pass's ext hook: what _note_ext does, and the value noted."""
        self._ext_values += 1  # only noted: a body this short cannot break the limit
        ext = (code, data)
        scan = self._scan
        if scan is None:
            scan = self._scan = _ExtScan()
        scan.exts.append(ext)
        return ext

    def _gather_counted_ext(self, code: int, data: bytes) -> tuple[int, bytes]:
        """Likewise for bodies long enough to break a per-frame limit: what _count_ext does."""
        self._ext_values += 1
        if self._ext_values > self.max_ext_values_per_frame:
            raise self._too_complex()
        ext = (code, data)
        scan = self._scan
        if scan is None:
            scan = self._scan = _ExtScan()
        scan.exts.append(ext)
        return ext

    def _decoded_in_c(self, fields: list[Any], unwalked: tuple[int, ...]) -> list[Any] | None:
        """The body's fields decoded again, each ext value's wire value (resolved) in its place,
        or None: the walk must run, and will find whatever is wrong in its own order.

        The walk would only have put those values in place if: every map key is a str or bin,
        there is no timestamp, the fields never walked hold no ext value (they are scalars), no
        map entry holding one was replaced by a later one with the same key (the walk never
        sees such a value; CPython's reference counts show it), every value can be built (a
        known code, a valid payload, within the per-frame limits and the payload bytes), and no
        container and no ext value is too deep. Depth: an ext value is at most one level below
        the deepest container, so if no container is deeper than ``max_depth - 1 - need``,
        where ``need`` bounds how far below its own level any value reaches (0 for a ref), none
        of them is deeper than ``max_depth``: one C parse (or the byte count) shows that.
        """
        scan = self._scan
        if scan is None or not self._keys_ok or _getrefcount is None:
            return None
        body = self._body
        assert body is not None
        n = len(body)
        if n < _IN_C_FROM:
            return None  # a walk this short costs less than the checks
        for i in unwalked:
            if type(fields[i]) not in _SCALARS:
                return None  # an ext value or container in a field never walked: a bad field
        counted = self._counted
        if counted and (self._containers + self._ext_values) * _C_PASS_BYTES_PER_VISIT < n:
            return None  # the walk's visits cost less than two more C parses of the body
        exts = scan.exts
        if self._has_timestamp() or min(map(_getrefcount, exts)) <= _ALONE:
            return None
        codes = list(map(_first, exts))
        if _REF_CODES.issuperset(codes):
            if not self._build_refs(scan, codes):
                return None
        elif not self._build_values(scan, counted):
            return None
        budget = self.max_depth - 1 - _rounded_up(scan.need)  # a few budgets: a few checkers
        if budget < 1 or not (n <= budget or (counted and self._containers <= budget) or _nests_within(body, budget)):
            return None
        redone: list[Any] = unpackb(body, **self._second_pass_options(scan))
        return redone

    def _build_refs(self, scan: _ExtScan, codes: list[int]) -> bool:
        """Build refs only: each payload must be exactly one int (its first byte gives its
        size), so all of them decode as one array, in one C call."""
        datas = list(map(_second, scan.exts))
        try:
            sizes = list(map(_INT_SIZES.__getitem__, map(_first, datas)))
        except IndexError:  # an empty payload
            return False
        if sizes != list(map(len, datas)) or sum(sizes) > self.max_frame_size:
            return False  # not an int, or more than one value (or a body longer than a frame)
        ids: list[int] = unpackb(_ARRAY32.pack(0xDD, len(datas)) + b"".join(datas))
        if min(ids) < 0 or max(ids) > MAX_ID:
            return False
        if len(set(codes)) == 1:
            scan.values = list(map(_REFS[codes[0]], ids))
        else:
            scan.values = [_REFS[code](object_id) for code, object_id in zip(codes, ids)]
        return True

    def _build_values(self, scan: _ExtScan, counting: bool) -> bool:
        """Build each value in turn (copies and failures decode their payloads: counted, in a
        body long enough to break a per-frame limit); False, the counts as they were, if one
        is not certainly fine."""
        counts = self._items, self._containers, self._ext_values
        values = scan.values
        scan.counting = counting
        scan.options = _ExtOptions(self)
        rebuild = self._resolve is not None
        try:
            for code, data in scan.exts:
                value, need, nested = self._wire_value(scan, code, data)
                if nested and rebuild:
                    value = _REBUILD
                    scan.rebuild = True
                values.append(value)
                if need > scan.need:
                    scan.need = need
        except Exception:  # whatever is wrong, the walk will name it, in its order
            self._items, self._containers, self._ext_values = counts
            return False
        return True

    def _wire_value(self, scan: _ExtScan, code: int, data: bytes) -> tuple[Any, int, bool]:
        """The wire value of one ext, unresolved; how many levels below its own it reaches (at
        most); whether it holds further ext values. Raises if it is not certainly fine (and
        then the scan is left as it is: the frame goes to the walk)."""
        if not 1 <= code <= 4:
            raise _Unproven
        scan.payload_bytes += len(data)
        if scan.payload_bytes > self.max_frame_size:
            raise _Unproven
        if code <= 2:
            if not data or _INT_SIZES[data[0]] != len(data):
                raise _Unproven  # not exactly one int
            return _REFS[code](_object_id(data)), 0, False
        options = scan.options
        assert options is not None
        if code == 4:  # its payload holds no ext value: it nests no further parse
            payload = unpackb(data, **(options.counted_failure if scan.counting else options.failure))
            if type(payload) is not list or len(payload) != 4:
                raise _Unproven
            return FailureInfo(*payload), 0, False
        if scan.nesting >= _MAX_PAYLOAD_NESTING:
            raise _Unproven  # see _MAX_PAYLOAD_NESTING
        # The ext values inside are appended to scan.children by _nested_ext as they are built
        # (each having taken its own off again), so those after ``mark`` are this payload's.
        children = scan.children
        mark = len(children)
        scan.nesting += 1
        payload = unpackb(data, **(options.counted_payload if scan.counting else options.payload))
        scan.nesting -= 1
        if type(payload) is not list or len(payload) != 2:
            raise _Unproven
        type_name, state = payload
        value = CopyState(type_name, state)
        nested = len(children) > mark
        if not nested:
            kind = type(state)
            if kind in _SCALARS:
                return value, 0, False
            if (kind is list and _SCALARS.issuperset(map(type, state))) or (
                kind is dict and _SCALARS.issuperset(map(type, state.values()))
            ):
                return value, 1, False  # keys are str or bin: the payload was decoded strictly
        elif min(map(_getrefcount, islice(children, mark, None))) <= _ALONE:  # type: ignore[arg-type]
            raise _Unproven  # a map entry holding one was replaced by a later one, same key
        # The payload's own array shares the copy's level; below it, at most this many more.
        for depth in _PAYLOAD_BUDGETS:
            if _nests_within(data, depth):
                break
        else:
            raise _Unproven
        depth = min(depth, len(data))
        need = depth - 1
        if nested:  # each inside at most ``depth`` containers, and its own 3 bytes at least
            need = max(need, min(depth, len(data) - 3) + max(islice(scan.child_needs, mark, None)))
            del children[mark:], scan.child_needs[mark:]
        return value, need, nested

    def _nested_ext(self, code: int, data: bytes) -> Any:
        """ext_hook for a copy's payload: an ext value in it, built at once (and counted as the
        walk's decoding of the payload would count it, if it counts)."""
        scan = self._scan
        assert scan is not None
        if scan.counting:
            self._ext_values += 1
            if self._ext_values > self.max_ext_values_per_frame:
                raise _Unproven
        value, need, _ = self._wire_value(scan, code, data)
        scan.children.append(value)
        scan.child_needs.append(need)
        return value

    def _second_pass_options(self, scan: _ExtScan) -> dict[str, Any]:
        """Options whose ext hook hands out the values built, in order, resolved."""
        take = iter(scan.values).__next__
        resolve = self._resolve
        hook: Callable[[int, bytes], Any]
        if resolve is None:
            hook = lambda code, data: take()  # noqa: E731
        elif not scan.rebuild:

            def hook(code: int, data: bytes) -> Any:
                try:
                    return resolve(take())
                except Refused as refusal:
                    return self._refused(refusal)

        else:
            resolved = self._resolved

            def hook(code: int, data: bytes) -> Any:
                value = take()
                if value is _REBUILD:
                    return self._resolved_ext(code, data)  # nested values resolved first
                return resolved(value)

        return dict(self._unpack_options, strict_map_key=True, ext_hook=hook)

    def _resolved_ext(self, code: int, data: bytes) -> Any:
        """An ext value already shown fine, built again with its nested values resolved."""
        if code <= 2:
            value: WireValue = _REFS[code](_object_id(data))
        else:
            scan = self._scan
            assert scan is not None and scan.options is not None
            options = scan.options
            if code == 3:
                type_name, state = unpackb(data, **options.resolving)
                value = CopyState(type_name, state)
            else:
                value = FailureInfo(*unpackb(data, **options.failure))
        return self._resolved(value)

    def _resolved(self, value: WireValue) -> Any:
        resolve = self._resolve
        if resolve is None:
            return value
        try:
            return resolve(value)
        except Refused as refusal:
            return self._refused(refusal)

    def _refused(self, refusal: Refused) -> None:
        """A value resolve refused becomes None; decode on, so every reference in the frame is
        counted, and remember the first refusal."""
        if self._refusal is None:
            self._refusal = refusal

    # -- is there anything to walk? ---------------------------------------------------------

    def _plain(self) -> bool:
        """True if the body's C pass left the walk (§8.1 rule 7) nothing to do, anywhere.

        That is: no ext value (the walk turns them into wire values), every map key a str or bin
        (msgpack checked them in C), no msgpack timestamp (msgpack decodes ext -1 itself), and no
        array or map deeper than ``max_depth`` (checked in C too, by :meth:`_depth_ok`). Then
        walking any field would change nothing and raise nothing, so it is not walked. Otherwise
        the walk runs as it always did, and finds the first problem in its own order.
        """
        plain = self._plain_state
        if plain is None:
            plain = self._plain_state = (
                self._keys_ok
                and not self._ext_values
                and not self._has_timestamp()
                and self._depth_ok()
            )
        return plain

    def _has_timestamp(self) -> bool:
        """Whether the body may hold a msgpack timestamp (ext -1 of 4, 8 or 12 bytes).

        Looks for the byte pairs every encoding of one contains (fixext 4 or 8: d6 ff, d7 ff; ext
        8/16/32, whose length ends in 04, 08 or 0c: 04 ff, 08 ff, 0c ff), after a first look for
        ff at all. A match may be data, which costs only the walk.
        """
        src = self._src
        if src is None:
            body = self._body
            assert body is not None
            data = body if type(body) is not memoryview else bytes(body)
            src = (data, 0, len(data))
        buf, lo, hi = src
        find = buf.find
        # Most bodies hold few ff bytes: look at the byte before each (one pass in all) ...
        at = find(b"\xff", lo, hi)
        for _ in range(32):
            if at < 0:
                return False
            if at > lo and buf[at - 1] in _TIMESTAMP_LEADS:
                return True
            at = find(b"\xff", at + 1, hi)
        # ... but binary data may hold many: then five searches for the pairs cost less.
        return at >= 0 and (
            find(b"\xd6\xff", at - 1, hi) >= 0 or find(b"\xd7\xff", at - 1, hi) >= 0
            or find(b"\x04\xff", at - 1, hi) >= 0 or find(b"\x08\xff", at - 1, hi) >= 0
            or find(b"\x0c\xff", at - 1, hi) >= 0
        )

    def _depth_ok(self) -> bool:
        """Whether no array or map in the body is deeper than ``max_depth`` (body = level 1).

        msgpack's C unpacker refuses containers nested more than 1024 deep (StackError), empty
        ones included. A depth checker is an Unpacker that has read ``1024 - max_depth``
        array headers of 2**32-1 elements each and waits for their first element: each body fed
        to it is parsed (without building anything) as the next element of the innermost one, so
        it raises StackError exactly when the body nests deeper than ``max_depth``. Checkers are
        shared by every decoder (``_DEPTH_CHECKERS``): one is ~50 KiB (msgpack's unpack stack).
        """
        body = self._body
        assert body is not None
        n = len(body)
        if n <= self.max_depth:
            return True  # every container takes a byte at least
        counted = self._counted
        if counted and self._containers <= self.max_depth:
            return True  # no deeper than there are containers
        if counted and self._containers * 16384 < n:
            return False  # mostly bytes: walking the few containers is cheaper than a copy
        return _nests_within(body, self.max_depth, keep=1)

    @property
    def _depth_checker(self) -> Any:
        """The idle depth checker the next check will use (shared by every decoder with this
        ``max_depth``), or None if there is none yet (or it was spent or dropped)."""
        pool = _DEPTH_CHECKERS.get(self.max_depth)
        return pool[-1][0] if pool else None

    # -- values -----------------------------------------------------------------------------

    def _convert(self, obj: Any, level: int) -> Any:
        """Check and convert a non-scalar value found at ``level``; returns its replacement."""
        t = type(obj)
        if t is list:
            if level > self.max_depth:
                raise NestingTooDeep(f"nesting deeper than {self.max_depth}")
            if not _SCALARS.issuperset(map(type, obj)):
                for i, item in enumerate(obj):
                    if type(item) not in _SCALARS:
                        obj[i] = self._convert(item, level + 1)
            return obj
        if t is dict:
            if level > self.max_depth:
                raise NestingTooDeep(f"nesting deeper than {self.max_depth}")
            if not _SCALARS.issuperset(map(type, obj)):
                raise MalformedMessage("map keys must be nil, bool, int, float, str or bin")
            if not _SCALARS.issuperset(map(type, obj.values())):
                for key, item in obj.items():
                    if type(item) not in _SCALARS:
                        obj[key] = self._convert(item, level + 1)  # same keys: safe while iterating
            return obj
        if t is tuple:  # what _raw_ext and _count_ext make of an ext value
            return self._ext(obj, level)
        # msgpack decodes ext -1 (timestamp) itself, without asking us.
        raise UnknownExtCode(f"ext code -1 ({t.__name__}) is not implemented")

    def _ext(self, ext: tuple[int, bytes], level: int) -> Any:
        if level > self.max_depth:
            raise NestingTooDeep(f"nesting deeper than {self.max_depth}")
        code, data = ext
        if not 1 <= code <= 4 and not (code == 6 and FEATURE_CACHE in self.negotiated) and not (
            code == 7 and FEATURE_STREAMS in self.negotiated
        ):
            raise UnknownExtCode(f"ext code {code} is not implemented")
        self._payload_bytes += len(data)
        if self._payload_bytes > self.max_frame_size:
            raise self._too_complex()
        value: WireValue
        if code == 1 or code == 2:
            if len(data) == 1 and data[0] < 0x80:  # positive fixint: most ids
                object_id: Any = data[0]
            else:
                object_id = self._unpack(data)
            value = self._build(ExportedRef if code == 1 else ReturnedRef, object_id)
        elif code == 3:
            payload = self._unpack(data)
            if type(payload) is not list or len(payload) != 2:
                raise MalformedMessage("a copy's payload must be [type_name, state]")
            type_name, state = payload
            if type(state) not in _SCALARS:
                state = self._convert(state, level + 1)
            value = self._build(CopyState, type_name, state)
        elif code == 4:
            payload = self._unpack(data)
            if type(payload) is not list or len(payload) != 4:
                raise MalformedMessage("a failure's payload must be [kind, type_name, message, traceback]")
            value = self._build(FailureInfo, *payload)
        elif code == 6:
            value = self._cache_ref(self._unpack(data), level)
        elif code == 7:
            value = self._stream_ref(self._unpack(data))
        resolve = self._resolve
        if resolve is None:
            return value
        try:
            return resolve(value)
        except Refused as refusal:  # decode on, so every reference in the frame is counted
            if self._refusal is None:
                self._refusal = refusal
            return None


def _arity(fields: list[Any], n: int, name: str) -> None:
    if len(fields) != n:
        raise MalformedMessage(f"{name} has {len(fields) - 1} fields; expected {n - 1}")


#: Bodies parsed by one depth checker before a new one is made: its innermost enclosing array
#: has room for 2**32-1 of them.
_DEPTH_CHECKS_PER_CHECKER: Final = 1 << 31
#: A depth checker that was fed a body larger than this is dropped (its buffer grew that big).
_DEPTH_CHECKER_RETAIN: Final = 64 * 1024
#: The idle depth checker of each max_depth, with the bodies it has parsed (see _depth_ok): one
#: at most; a check that finds none (nested, or in another thread meanwhile) makes one.
_DEPTH_CHECKERS: Final[dict[int, list[tuple[Any, int]]]] = {}
_ARRAY32_OPEN: Final = b"\xdd\xff\xff\xff\xff"


def _depth_checker(max_depth: int) -> Any:
    """An Unpacker that refuses (StackError) a body fed to it nesting deeper than ``max_depth``."""
    checker = Unpacker(max_buffer_size=0, read_size=4096)
    checker.feed(_ARRAY32_OPEN * (1024 - max_depth))
    try:
        checker.skip()
    except OutOfData:
        return checker
    raise AssertionError("the depth checker's enclosing arrays closed")


def _raw_ext(code: int, data: bytes) -> tuple[int, bytes]:
    """msgpack's ext_hook: a plain tuple (msgpack's ExtType refuses negative codes as malformed)."""
    return (code, data)


# -- ext values without the walk (WireDecoder._decoded_in_c) -----------------------------------


class _Unproven(Exception):
    """Raised while building ext values for _decoded_in_c: this frame's values cannot be shown
    fine without the walk (a bad or unknown value, a limit that may be broken). Never escapes
    the decoder: the frame goes to the walk, which names what is wrong."""


class _ExtScan:
    """What one frame's C pass found about its ext values (see WireDecoder._decoded_in_c).

    ``exts`` are the body's own (outermost) ext values as the tuples put in the decoded tree, in
    byte order; ``values`` the wire value each makes (a ``_Rebuild`` for one holding further ext
    values, which resolving decodes again); ``need`` bounds how many levels the deepest of them
    reaches below its own.
    """

    __slots__ = ("exts", "values", "rebuild", "need", "payload_bytes", "nesting", "counting", "children",
                 "child_needs", "options")

    def __init__(self) -> None:
        self.exts: list[tuple[int, bytes]] = []
        self.values: list[Any] = []
        self.rebuild = False  # whether a value is a _Rebuild
        self.need = 0
        self.payload_bytes = 0
        self.nesting = 0  # copies being decoded inside one another
        self.counting = False  # whether the payload being decoded counts its contents
        self.children: list[Any] = []  # values built in the payloads being decoded
        self.child_needs: list[int] = []  # how far below its own level each reaches
        self.options: _ExtOptions | None = None  # made once a copy or failure is built


class _Rebuild:
    """In ``_ExtScan.values``: a copy holding ext values, built again in the second pass."""

    __slots__ = ()


_REBUILD: Final = _Rebuild()


class _ExtOptions:
    """msgpack options for decoding ext payloads: made per frame that has copies or failures (the
    hooks are the decoder's bound methods; a decoder keeping them would cost ~4 KiB a connection)."""

    __slots__ = ("payload", "counted_payload", "failure", "counted_failure", "resolving")

    def __init__(self, decoder: WireDecoder) -> None:
        strict = dict(decoder._unpack_options, strict_map_key=True)
        counting = dict(strict, list_hook=decoder._count_array, object_hook=decoder._count_map)
        self.payload = dict(strict, ext_hook=decoder._nested_ext)
        self.counted_payload = dict(counting, ext_hook=decoder._nested_ext)
        self.failure = dict(strict, ext_hook=_no_nested_ext)
        self.counted_failure = dict(counting, ext_hook=_no_nested_ext)
        self.resolving = dict(strict, ext_hook=decoder._resolved_ext)


#: Copies decoded inside one another at most, in _decoded_in_c (deeper ones go to the walk). Each
#: ``unpackb`` running keeps ~40 KiB of msgpack's parse stack on the C stack: copies nested a few
#: hundred deep, each decoding the next from its ext hook, would overflow a thread's stack.
_MAX_PAYLOAD_NESTING: Final = 2


def _object_id(data: bytes) -> Any:
    """The int a ref's payload holds (its size already checked against _INT_SIZES)."""
    head = data[0]
    if head < 0x80:
        return head
    if 0xCC <= head <= 0xCF:
        return int.from_bytes(data[1:], "big")
    return unpackb(data)  # a negative fixint, or a signed int


#: Bodies shorter than this are walked: the walk costs less than _decoded_in_c's checks (measured
#: with bench.decode_cost: even at about 100 bytes, 8 refs in dicts).
_IN_C_FROM: Final = 128
#: A counted body (long enough to break a per-frame limit) with fewer containers and ext values
#: than one per this many bytes is walked: the walk's visit of one costs about what msgpack takes
#: to parse 250 bytes, and _decoded_in_c parses the body twice more (bench.decode_cost and
#: bench.worst_frame: a 1 MiB bytes answer with a ref is walked, a frame at the limits is not).
_C_PASS_BYTES_PER_VISIT: Final = 128
#: The fields of a call and an answer that are never walked (all but args, kwargs and value).
_CALL_UNWALKED: Final = (1, 2, 3, 6)
_ANSWER_UNWALKED: Final = (1,)


def _rounded_up(need: int) -> int:
    """``need`` rounded up to 2**k - 1: the depth budgets asked for stay few."""
    return (1 << need.bit_length()) - 1


_REFS: Final[dict[int, Any]] = {1: ExportedRef, 2: ReturnedRef}
_REF_CODES: Final = frozenset(_REFS)
_first: Final = itemgetter(0)
_second: Final = itemgetter(1)
#: The size of a msgpack int, by its first byte (0: not an int): a ref's payload is one int.
_INT_SIZES: Final = bytes(
    1 if b < 0x80 or b >= 0xE0 else {0xCC: 2, 0xCD: 3, 0xCE: 5, 0xCF: 9, 0xD0: 2, 0xD1: 3, 0xD2: 5, 0xD3: 9}.get(b, 0)
    for b in range(256)
)
_ARRAY32: Final = struct.Struct(">BI")


def _no_nested_ext(code: int, data: bytes) -> Any:
    """ext_hook for a ref's or a failure's payload: an ext value there is never valid."""
    raise _Unproven


def _alone_refcount() -> int:
    """What ``getrefcount`` says, through ``map``, of an object only one list holds."""
    if _getrefcount is None:
        return 0
    held = [tuple([0, b""])]
    count: int = min(map(_getrefcount, held))
    return count


#: An ext tuple with this reference count is held only by _ExtScan.exts: the map entry it was the
#: value of was replaced by a later one with the same key, so it is not in the decoded tree.
_ALONE: Final = _alone_refcount()
#: Depth budgets tried for a copy's payload (beyond the bytes it has) before giving up on it.
_PAYLOAD_BUDGETS: Final = (8, 32)


#: The bytes before ff in every encoding of a msgpack timestamp (ext -1): fixext 4 and 8 (d6, d7),
#: and ext 8/16/32 whose length ends in 04, 08 or 0c.
_TIMESTAMP_LEADS: Final = b"\xd6\xd7\x04\x08\x0c"

#: Each byte value's class as a msgpack header: "c" container (fixmap, fixarray, array/map 16/32),
#: "e" ext (fixext 1-16, ext 8/16/32), "." anything else (see WireDecoder._may_break_frame_limits).
_HEADER_CLASSES: Final = bytes(
    ord("c") if 0x80 <= b <= 0x9F or 0xDC <= b <= 0xDF
    else ord("e") if 0xC7 <= b <= 0xC9 or 0xD4 <= b <= 0xD8
    else ord(".")
    for b in range(256)
)


def _nests_within(data: bytes | bytearray | memoryview, budget: int, keep: int = 2) -> bool:
    """Whether no array or map in the encoded value ``data`` (itself level 1) is deeper than
    ``budget``: one C parse that builds nothing, by a depth checker from the shared pool
    (``_DEPTH_CHECKERS``, keyed by budget; see WireDecoder._depth_ok). Up to ``keep`` idle
    checkers per budget stay in the pool."""
    n = len(data)
    if n <= budget:
        return True  # every container takes a byte at least
    pool = _DEPTH_CHECKERS.setdefault(budget, [])
    try:
        checker, checks = pool.pop()  # atomic: a checker is used by one decoder at a time
    except IndexError:
        checker, checks = _depth_checker(budget), 0
    ok = False
    try:
        checker.feed(data)
        checker.skip()  # never returns: the enclosing arrays are still open
    except OutOfData:
        ok = True
    except Exception:  # StackError: too deep (and the checker is spent)
        pass
    # Dropped if spent, holding a big body's buffer, or not needed (enough are idle).
    if ok and n <= _DEPTH_CHECKER_RETAIN and checks + 1 < _DEPTH_CHECKS_PER_CHECKER and len(pool) < keep:
        pool.append((checker, checks + 1))
    return ok


_Decoder = Callable[[WireDecoder, list[Any]], Message]

_DECODERS: Final[dict[int, _Decoder]] = {
    MessageType.GOODBYE: WireDecoder._goodbye,
    MessageType.CALL: WireDecoder._call,
    MessageType.ANSWER: WireDecoder._answer,
    MessageType.ERROR: WireDecoder._error,
    MessageType.CANCEL: WireDecoder._cancel,
    MessageType.DECREF: WireDecoder._decref,
}

#: The optional messages of version 1, by the feature both hellos must name (PROTOCOL.md §3).
FEATURE_MESSAGES: Final[dict[str, dict[int, _Decoder]]] = {
    FEATURE_HEARTBEAT: {MessageType.PING: WireDecoder._ping, MessageType.PONG: WireDecoder._pong},
    FEATURE_DECREFS: {MessageType.DECREFS: WireDecoder._decrefs},
    FEATURE_PIPELINING: {MessageType.FINISH: WireDecoder._finish},
    FEATURE_CACHE: {MessageType.CACHE_UPDATED: WireDecoder._cache_update,
                    MessageType.CACHE_RELEASED: WireDecoder._cache_release},
    FEATURE_STREAMS: {MessageType.STREAM_ITEMS: WireDecoder._stream_items,
                      MessageType.STREAM_END: WireDecoder._stream_end,
                      MessageType.STREAM_CREDIT: WireDecoder._stream_credit},
}


#: Interned feature sets and their message tables: one per distinct set, not per connection.
#: Bounded: past _SHARED_SETS distinct sets, new ones are simply not interned.
_FEATURE_SETS: Final[dict[frozenset[str], frozenset[str]]] = {}
_DECODER_TABLES: Final[dict[frozenset[str], dict[int, _Decoder]]] = {}
_SHARED_SETS: Final = 64


def _shared_set(features: frozenset[str]) -> frozenset[str]:
    """The interned copy of ``features`` (every connection negotiates one of a few sets)."""
    shared = _FEATURE_SETS.get(features)
    if shared is None:
        shared = features
        if len(_FEATURE_SETS) < _SHARED_SETS:
            _FEATURE_SETS[features] = features
    return shared


def _decoders_for(features: frozenset[str]) -> dict[int, _Decoder]:
    """The message decoders for a negotiated feature set (shared: never modify the result)."""
    decoders = _DECODER_TABLES.get(features)
    if decoders is None:
        decoders = dict(_DECODERS)
        for feature in features:
            decoders.update(FEATURE_MESSAGES.get(feature, {}))
        if len(_DECODER_TABLES) < _SHARED_SETS:
            _DECODER_TABLES[features] = decoders
    return decoders

# ---------------------------------------------------------------------------------------------
# One-shot helpers (tests, tools, test vectors)
# ---------------------------------------------------------------------------------------------

_ENCODER: Final = WireEncoder(max_frame_size=_MAX_FRAME_LIMIT)


def encode(message: Message) -> bytes:
    """One frame for ``message``, with no ``default`` hook and no peer limit."""
    return _ENCODER.encode(message)


def decode(data: bytes, *, expect_hello: bool = False, **options: Any) -> Message:
    """The single message in ``data``, a whole stream holding exactly one complete frame.

    ``options`` are WireDecoder's (``resolve``, ``max_frame_size``, ...).
    """
    decoder = WireDecoder(expect_hello=expect_hello, **options)
    decoder.receive_data(data)
    decoder.receive_data(b"")
    message = decoder.next_message()
    if message is CLOSED:
        raise TruncatedFrame("no frame in the data")
    assert message is not NEED_DATA  # the stream has ended
    if decoder.next_message() is not CLOSED:
        raise MalformedMessage("more than one frame in the data")
    return message
