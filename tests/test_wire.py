"""The wire codec against the shared vectors, plus unit tests.

The vectors: ``tests/vectors/wire.json`` and every feature's codec file (``vector_files.CODEC_FILES``).
Every vector is fed to a fresh decoder whole, byte by byte, and followed by the end of the stream,
exactly as ``docs/PROTOCOL.md`` ("Test vectors") tells the Java client to do.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Any

import msgpack
import pytest
from vector_files import CODEC_FILES, load_generator, read_vectors, vector_id

from broker import wire
from broker.messages import (
    CALL_NO_ANSWER,
    Answer,
    Call,
    Cancel,
    CopyState,
    Decref,
    Decrefs,
    Error,
    ExportedRef,
    ExtCode,
    FailureInfo,
    Goodbye,
    Hello,
    Message,
    MessageType,
    Ping,
    Pong,
    ReturnedRef,
)
from broker.wire import (
    CLOSED,
    NEED_DATA,
    ContainerTooLong,
    FrameTooLarge,
    HandshakeError,
    LocalProtocolError,
    MalformedMessage,
    MessageTooLarge,
    NestingTooDeep,
    RemoteProtocolError,
    TruncatedFrame,
    UnencodableValue,
    UnknownExtCode,
    UnknownMessageType,
    VersionMismatch,
    WireDecoder,
    WireEncoder,
    WireError,
    decode,
    encode,
)

make_vectors = load_generator("make_vectors")
VECTORS: list[dict[str, Any]] = read_vectors("wire.json")


def same(a: Any, b: Any) -> bool:
    """Equality that tells True from 1, 1 from 1.0 and -0.0 from 0.0, and finds NaN equal to NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) and same(k, k2) for k, k2 in zip(a, b))
    if hasattr(a, "__dataclass_fields__"):  # the fields that make the value (not e.g. StreamItems.nbytes)
        return all(same(getattr(a, f.name), getattr(b, f.name)) for f in a.__dataclass_fields__.values() if f.compare)
    return bool(a == b)


def _decoder(vector: dict[str, Any]) -> WireDecoder:
    return WireDecoder(
        expect_hello=vector.get("handshake", False),
        features=vector.get("features", ()),
        **vector.get("limits", {}),
    )


def _run(vector: dict[str, Any], chunk: int | None = None) -> list[Any]:
    """Feed the vector (in ``chunk``-byte pieces), then the end of the stream; all messages."""
    data = bytes.fromhex(vector["hex"])
    decoder = _decoder(vector)
    out: list[Any] = []
    pieces = [data] if chunk is None else [data[i : i + chunk] for i in range(0, len(data), chunk)]
    for piece in pieces:
        decoder.receive_data(piece)
        while (message := decoder.next_message()) is not NEED_DATA:
            out.append(message)
    decoder.receive_data(b"")
    while (message := decoder.next_message()) is not CLOSED:
        out.append(message)
    return out


@pytest.mark.parametrize("file_name", CODEC_FILES)
def test_vectors_file_is_up_to_date(file_name: str) -> None:
    generator = CODEC_FILES[file_name]
    assert load_generator(generator).build() == read_vectors(file_name), f"run: python tests/vectors/{generator}.py"


def test_vectors_cover_every_message_type_and_error() -> None:
    types = {v["message"]["type"] for v in VECTORS if "message" in v}
    assert types == {
        "hello", "goodbye", "call", "answer", "error", "cancel", "decref", "decrefs", "ping", "pong",
    }  # fmt: skip
    errors = {v["error"] for v in VECTORS if "error" in v}
    classes = [c for c in vars(wire).values() if isinstance(c, type)]
    remote = {c.__name__ for c in classes if issubclass(c, RemoteProtocolError)}
    assert errors == remote - {"RemoteProtocolError"}


#: (file, vector) for every codec vector file: wire.json's, then each feature's.
EVERY_VECTOR = [(f, v) for f in CODEC_FILES for v in (VECTORS if f == "wire.json" else read_vectors(f))]
VALID = [pytest.param(v, id=vector_id(f, v)) for f, v in EVERY_VECTOR if "message" in v]
INVALID = [pytest.param(v, id=vector_id(f, v)) for f, v in EVERY_VECTOR if "error" in v]


@pytest.mark.parametrize("vector", VALID)
@pytest.mark.parametrize("chunk", [None, 1])
def test_valid_vector(vector: dict[str, Any], chunk: int | None) -> None:
    expected = make_vectors.from_json(vector["message"])
    messages = _run(vector, chunk)
    assert len(messages) == 1
    assert same(messages[0], expected), (messages[0], expected)
    canonical = bytes.fromhex(vector.get("canonical_hex", vector["hex"]))
    assert encode(messages[0]) == canonical
    assert encode(expected) == canonical
    assert make_vectors.to_json(messages[0]) == vector["message"]


@pytest.mark.parametrize("vector", INVALID)
@pytest.mark.parametrize("chunk", [None, 1])
def test_invalid_vector(vector: dict[str, Any], chunk: int | None) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        _run(vector, chunk)
    assert type(info.value).__name__ == vector["error"]


def test_spec_worked_example() -> None:
    """The hex example in docs/PROTOCOL.md, byte for byte."""
    call = Call(1, 0, "add", [1, 2])
    assert encode(call).hex(" ") == "00 00 00 0d 97 03 01 00 a3 61 64 64 92 01 02 80 00"
    assert encode(Answer(1, 3)).hex(" ") == "00 00 00 04 93 04 01 03"
    spec = (Path(__file__).parents[1] / "docs" / "PROTOCOL.md").read_text(encoding="utf-8")
    assert "00 00 00 0d 97 03 01 00 a3 61 64 64 92 01 02 80 00" in spec
    assert "00 00 00 04 93 04 01 03" in spec


def test_numbering_matches_the_spec_tables() -> None:
    assert [(m.name, m.value) for m in MessageType] == [
        ("HELLO", 1), ("GOODBYE", 2), ("CALL", 3), ("ANSWER", 4), ("ERROR", 5), ("CANCEL", 6),
        ("DECREF", 7), ("RESOLVE", 8), ("FINISH", 9), ("PING", 10), ("PONG", 11), ("DECREFS", 12),
        ("STREAM_ITEMS", 13), ("STREAM_END", 14), ("STREAM_CREDIT", 15),
        ("CACHE_CREATED", 16), ("CACHE_UPDATED", 17),
        ("CACHE_RELEASED", 18),
    ]  # fmt: skip
    assert [(c.name, c.value) for c in ExtCode] == [
        ("SENDER_REF", 1), ("RECEIVER_REF", 2), ("COPY", 3), ("FAILURE", 4),
        ("PROMISED_ANSWER", 5), ("CACHE_REF", 6), ("STREAM", 7),
    ]  # fmt: skip


# --- streaming -------------------------------------------------------------------------------


def _stream() -> tuple[list[Message], bytes]:
    messages: list[Message] = [
        Call(1, 0, "add", [1, 2]),
        Answer(1, {"big": b"x" * 100_000, "ref": ExportedRef(3)}),
        Cancel(1),
        Error(2, FailureInfo("cancelled")),
        Decref(3, 2),
        Goodbye("normal"),
    ]
    return messages, WireEncoder().encode_all(messages)


@pytest.mark.parametrize("chunk", [1, 3, 4, 5, 7, 64, 4096, 65536])
def test_stream_in_pieces(chunk: int) -> None:
    messages, data = _stream()
    decoder = WireDecoder(expect_hello=False)
    out: list[Any] = []
    for i in range(0, len(data), chunk):
        decoder.receive_data(data[i : i + chunk])
        out.extend(decoder.messages())
    assert out == messages
    assert decoder.buffered == 0
    decoder.receive_data(b"")
    assert decoder.next_message() is CLOSED


def test_many_frames_from_one_read() -> None:
    messages, data = _stream()
    decoder = WireDecoder(expect_hello=False)
    decoder.receive_data(data + data[:10])
    assert decoder.messages() == messages
    assert decoder.buffered == 10
    assert decoder.next_message() is NEED_DATA


def test_messages_keeps_what_came_before_a_bad_frame() -> None:
    good = encode(Cancel(1)) + encode(Cancel(2))
    bad = struct.pack(">I", 2) + msgpack.packb([99])
    decoder = WireDecoder(expect_hello=False)
    decoder.receive_data(good + bad + encode(Cancel(3)))
    assert decoder.messages() == [Cancel(1), Cancel(2)]
    with pytest.raises(UnknownMessageType):
        decoder.messages()
    # A bad body does not lose the frame boundary: the next frame still decodes.
    assert decoder.messages() == [Cancel(3)]


def test_frame_too_large_is_refused_before_the_body_arrives() -> None:
    decoder = WireDecoder(expect_hello=False, max_frame_size=100)
    decoder.receive_data(struct.pack(">I", 101))
    with pytest.raises(FrameTooLarge):
        decoder.next_message()
    with pytest.raises(FrameTooLarge):  # fatal: it stays broken
        decoder.next_message()


def test_truncated_frame_only_at_end_of_stream() -> None:
    decoder = WireDecoder(expect_hello=False)
    decoder.receive_data(encode(Cancel(1))[:-1])
    assert decoder.next_message() is NEED_DATA
    decoder.receive_data(b"")
    with pytest.raises(TruncatedFrame):
        decoder.next_message()


def test_receive_after_end_of_stream_is_a_bug() -> None:
    decoder = WireDecoder(expect_hello=False)
    decoder.receive_data(b"")
    with pytest.raises(RuntimeError):
        decoder.receive_data(b"x")


def test_receive_copies_mutable_buffers() -> None:
    data = bytearray(encode(Answer(1, "abc"))[:-1])
    decoder = WireDecoder(expect_hello=False)
    decoder.receive_data(data)
    data[:] = b"\x00" * len(data)
    decoder.receive_data(b"c")
    assert decoder.next_message() == Answer(1, "abc")


# --- handshake -------------------------------------------------------------------------------


def test_handshake_then_messages() -> None:
    decoder = WireDecoder()
    hello = decoder.hello(["x-test"])
    decoder.receive_data(encode(hello) + encode(Cancel(4)))
    assert decoder.messages() == [hello, Cancel(4)]


def test_version_mismatch_says_which_version() -> None:
    body = msgpack.packb([1, "pbroker", 9, 100, 10, 10, []])
    with pytest.raises(VersionMismatch) as info:
        decode(struct.pack(">I", len(body)) + body, expect_hello=True)
    assert info.value.peer_version == 9
    assert info.value.kind == "unimplemented"
    assert isinstance(info.value, HandshakeError)


# --- resolve / default hooks -----------------------------------------------------------------


def test_resolve_sees_each_ext_value_innermost_first() -> None:
    seen: list[Any] = []

    def resolve(value: Any) -> Any:
        seen.append(value)
        return ("resolved", type(value).__name__)

    message = Answer(1, [ExportedRef(1), {"c": CopyState("t", [ReturnedRef(2)])}, FailureInfo("failed")])
    decoded = decode(encode(message), resolve=resolve)
    assert decoded == Answer(
        1,
        [
            ("resolved", "ExportedRef"),
            {"c": ("resolved", "CopyState")},
            ("resolved", "FailureInfo"),
        ],
    )
    assert seen == [
        ExportedRef(1),
        ReturnedRef(2),
        CopyState("t", [("resolved", "ReturnedRef")]),
        FailureInfo("failed"),
    ]


def test_resolve_errors_propagate_unchanged_and_the_frame_is_consumed() -> None:
    class Refused(Exception):
        pass

    def resolve(value: Any) -> Any:
        raise Refused(value)

    decoder = WireDecoder(expect_hello=False, resolve=resolve)
    decoder.receive_data(encode(Answer(1, ExportedRef(5))) + encode(Cancel(2)))
    with pytest.raises(Refused):
        decoder.next_message()
    assert decoder.next_message() == Cancel(2)


def test_default_maps_objects_to_wire_values() -> None:
    class Thing:
        def __init__(self, n: int) -> None:
            self.n = n

    encoder = WireEncoder(default=lambda obj: ExportedRef(obj.n) if isinstance(obj, Thing) else obj)
    frame = encoder.encode(Call(1, 0, "m", [Thing(4)], {"t": (Thing(5), 1)}))
    assert decode(frame) == Call(1, 0, "m", [ExportedRef(4)], {"t": [ExportedRef(5), 1]})
    with pytest.raises(UnencodableValue):
        encoder.encode(Answer(1, {1, 2}))


def test_default_used_inside_copies() -> None:
    encoder = WireEncoder(default=lambda obj: ReturnedRef(7) if obj is Ellipsis else obj)
    assert decode(encoder.encode(Answer(1, CopyState("t", {"x": ...})))) == Answer(
        1, CopyState("t", {"x": ReturnedRef(7)})
    )


# --- local errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [object(), {1, 2}, 1 << 64, -(1 << 63) - 1, [[[]]] * 0 + [object()]],
    ids=["object", "set", "too big int", "too small int", "nested object"],
)
def test_unencodable_values_are_local_errors(value: Any) -> None:
    with pytest.raises(UnencodableValue) as info:
        encode(Answer(1, value))
    assert isinstance(info.value, LocalProtocolError)
    assert not isinstance(info.value, RemoteProtocolError)


def test_too_deep_to_encode_is_a_local_error() -> None:
    value: Any = 1
    for _ in range(5000):  # msgpack's packer gives up somewhere above 1000 levels
        value = [value]
    with pytest.raises(UnencodableValue):
        encode(Answer(1, value))


def test_encoder_recovers_after_an_error() -> None:
    encoder = WireEncoder()
    with pytest.raises(UnencodableValue):
        encoder.encode(Answer(1, [1, 2, object()]))
    assert encoder.encode(Answer(1, 3)) == bytes.fromhex("0000000493040103")


def test_message_too_large_for_the_peer() -> None:
    encoder = WireEncoder(max_frame_size=10)
    assert decode(encoder.encode(Answer(1, "x" * 6))) == Answer(1, "x" * 6)
    with pytest.raises(MessageTooLarge):
        encoder.encode(Answer(1, "x" * 7))
    assert encoder.encode(Cancel(1)) == encode(Cancel(1))


def test_encoding_a_non_message() -> None:
    with pytest.raises(UnencodableValue):
        encode("hello")  # type: ignore[arg-type]


# --- messages validate themselves ------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: Call(-1, 0, "m"),
        lambda: Call(1, 0, ""),
        lambda: Call(1, 0, "m", [], {1: 2}),  # type: ignore[dict-item]
        lambda: Call(True, 0, "m"),
        lambda: Call(1, 0, "m", flags=1 << 32),
        lambda: Call(1, 0, "m", args="abc"),  # type: ignore[arg-type]
        lambda: Answer(1 << 63),
        lambda: Error(1, "failed"),  # type: ignore[arg-type]
        lambda: Decref(0, 1),
        lambda: Decref(1, 0),
        lambda: Goodbye("whatever"),
        lambda: Hello(max_frame_size=0),
        lambda: Hello(features=[1]),  # type: ignore[list-item]
        lambda: ExportedRef(-1),
        lambda: ReturnedRef("1"),  # type: ignore[arg-type]
        lambda: CopyState(""),
        lambda: FailureInfo("boom"),
        lambda: FailureInfo("failed", traceback=b"tb"),  # type: ignore[arg-type]
    ],
)
def test_invalid_messages_cannot_be_built(build: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        build()


def test_messages_are_frozen_and_normalised() -> None:
    call = Call(1, 0, "m", (1, 2))
    assert call.args == [1, 2] and call.kwargs == {} and call.answer_wanted
    assert not Call(0, 0, "m", flags=CALL_NO_ANSWER).answer_wanted
    with pytest.raises(AttributeError):
        call.method = "other"  # type: ignore[misc]
    assert Hello(features=["a"]).features == ("a",)
    assert hash(ExportedRef(1)) == hash(ExportedRef(1))


def test_error_hierarchy() -> None:
    for cls in (FrameTooLarge, TruncatedFrame, NestingTooDeep, ContainerTooLong, MalformedMessage,
                UnknownMessageType, UnknownExtCode, HandshakeError, VersionMismatch):  # fmt: skip
        assert issubclass(cls, RemoteProtocolError) and issubclass(cls, WireError)
        assert cls.kind in {"invalid", "unimplemented", "disconnected"}
    for local in (UnencodableValue, MessageTooLarge):
        assert issubclass(local, LocalProtocolError) and not issubclass(local, RemoteProtocolError)


def test_decoder_limits_are_checked() -> None:
    with pytest.raises(ValueError):
        WireDecoder(max_depth=wire.MAX_DEPTH_CAP + 1)
    with pytest.raises(ValueError):
        WireDecoder(max_frame_size=0)
    assert WireDecoder(max_depth=8).hello().max_depth == 8


def test_big_bytes_round_trip_in_chunks() -> None:
    blob = bytes(range(256)) * 4096  # 1 MiB
    frame = encode(Answer(9, blob))
    decoder = WireDecoder(expect_hello=False)
    for i in range(0, len(frame), 65536):
        decoder.receive_data(frame[i : i + 65536])
    assert decoder.messages() == [Answer(9, blob)]


def test_deep_structures_in_kwargs_count_levels() -> None:
    # body (1) → kwargs map (2) → list (3) → list (4)
    frame = encode(Call(1, 0, "m", [], {"a": [[1]]}))
    assert decode(frame, max_depth=4) == Call(1, 0, "m", [], {"a": [[1]]})
    with pytest.raises(NestingTooDeep):
        decode(frame, max_depth=3)


def test_fatal_error_after_good_frames_stays_fatal() -> None:
    decoder = WireDecoder(expect_hello=False, max_frame_size=100)
    decoder.receive_data(encode(Cancel(1)) + struct.pack(">I", 1000))
    assert decoder.messages() == [Cancel(1)]
    for _ in range(2):
        with pytest.raises(FrameTooLarge):
            decoder.messages()


# --- per-frame limits (PROTOCOL.md §8.2) ------------------------------------------------------

SMALL = dict(
    max_frame_size=4096,
    max_container_length=512,
    max_items_per_frame=600,
    max_containers_per_frame=40,
    max_ext_values_per_frame=12,
)


def test_worst_frames_of_the_bench_are_accepted_and_one_more_is_refused() -> None:
    """bench/worst_frame.py's candidates sit at the limits: accepted, and refused one lower."""
    from bench import worst_frame

    limits = worst_frame.Limits(**SMALL)
    for name, body in worst_frame.frames(limits).items():
        decoder = limits.decoder()
        decoder.decode_body(body)
        for limit, used in (
            ("max_items_per_frame", decoder._items),
            ("max_containers_per_frame", decoder._containers),
            ("max_ext_values_per_frame", decoder._ext_values),
        ):
            assert used <= SMALL[limit], (name, limit)
            if used == SMALL[limit]:
                tighter = worst_frame.Limits(**{**SMALL, limit: used - 1})
                with pytest.raises(wire.FrameTooComplex):
                    tighter.decoder().decode_body(body)


def test_a_frame_over_the_limits_is_abandoned_part_way() -> None:
    """Work, not time: a frame of a million empty arrays stops at the container limit + 1."""
    body = b"\x93\x04\x01\xdd" + struct.pack(">I", 1 << 20) + b"\x90" * (1 << 20)
    decoder = WireDecoder(expect_hello=False, max_containers_per_frame=1000)
    with pytest.raises(wire.FrameTooComplex):
        decoder.decode_body(body)
    assert decoder._containers == 1001
    refs = b"\x93\x04\x01\xdd" + struct.pack(">I", 1 << 16) + b"\xd4\x01\x05" * (1 << 16)
    decoder = WireDecoder(expect_hello=False, max_ext_values_per_frame=100)
    with pytest.raises(wire.FrameTooComplex):
        decoder.decode_body(refs)
    assert decoder._ext_values == 101


def test_short_bodies_are_decoded_without_the_counting_hooks() -> None:
    decoder = WireDecoder(expect_hello=False, max_items_per_frame=200, max_ext_values_per_frame=50)
    decoder.decode_body(encode(Answer(1, [1] * 140))[4:])  # 146 bytes: cannot hold 51 ext values
    assert decoder._options is decoder._unpack_options
    # Longer, but its bytes show it cannot break a limit either: no hooks.
    decoder.decode_body(encode(Answer(1, [1] * 160))[4:])
    assert decoder._options is decoder._unpack_options
    # Bytes that look like ext headers (here inside a bin value) might be ext values: counted.
    decoder.decode_body(encode(Answer(1, b"\xd4" * 160))[4:])
    assert decoder._options is decoder._counting_options and decoder._items == 3
    decoder.decode_body(encode(Answer(1, [1] * 197))[4:])  # 203 bytes: might hold 201 items
    assert decoder._options is decoder._counting_options and decoder._items == 200


def test_per_frame_limits_are_checked() -> None:
    for name in ("max_items_per_frame", "max_containers_per_frame", "max_ext_values_per_frame"):
        with pytest.raises(ValueError):
            WireDecoder(**{name: 0})


# --- optional messages and their features ------------------------------------------------------


def test_features_are_negotiated_from_both_hellos() -> None:
    ours = ["heartbeat", "decrefs"]
    decoder = WireDecoder(features=ours)
    assert decoder.hello().features == tuple(ours) and decoder.negotiated == frozenset()
    peer = WireEncoder()
    decoder.receive_data(peer.encode(Hello(features=["heartbeat", "x-other"])) + peer.encode(Ping(7)))
    assert decoder.messages() == [Hello(features=["heartbeat", "x-other"]), Ping(7)]
    assert decoder.negotiated == {"heartbeat"}
    decoder.receive_data(peer.encode(Decrefs({5: 1})))
    with pytest.raises(UnknownMessageType):
        decoder.next_message()


def test_hello_features_replace_the_decoders() -> None:
    decoder = WireDecoder(expect_hello=False)
    assert decoder.hello(["decrefs"]).features == ("decrefs",)
    assert decoder.negotiated == {"decrefs"}
    assert decode(encode(Decrefs({3: 2})), features=["decrefs"]) == Decrefs({3: 2})


def test_decrefs_round_trip_in_order() -> None:
    releases = {9: 1, 2: 5, 1 << 40: 3}
    message = decode(encode(Decrefs(releases)), features=["decrefs"])
    assert isinstance(message, Decrefs) and list(message.releases.items()) == list(releases.items())


@pytest.mark.parametrize(
    "releases",
    [{}, {0: 1}, {1: 0}, {True: 1}, {1: -1}, {1: 1 << 63}, [(1, 1)]],
    ids=["empty", "bootstrap", "count 0", "bool id", "negative count", "huge count", "not a dict"],
)
def test_invalid_decrefs_cannot_be_built(releases: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        Decrefs(releases)


def test_ping_and_pong_validate_their_nonce() -> None:
    for cls in (Ping, Pong):
        assert cls(0).nonce == 0
        with pytest.raises(TypeError):
            cls(True)
        with pytest.raises(ValueError):
            cls(-1)
