"""The "streams" feature's vectors (PROTOCOL.md §17): the codec's (``tests/vectors/streams.json``),
run as ``tests/test_wire.py`` runs ``wire.json`` (whole and byte by byte, then the end of the
stream), and the session's (``tests/vectors/streams_session.json``), run as
``tests/test_session_vectors.py`` runs ``session.json``, with the fixtures the file describes."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest
import test_session_vectors as tsv
from hypothesis import given, settings
from hypothesis import strategies as st
from test_wire import _run, same
from vector_files import load_generator, read_vectors

import broker
from broker import wire
from broker.messages import MAX_ID, Answer, FailureInfo, StreamCredit, StreamEnd, StreamItems, StreamRef
from net.defer import Deferred, Failure

make_streams_vectors = load_generator("make_streams_vectors")
mv = make_streams_vectors.mv
VECTORS: list[dict[str, Any]] = read_vectors("streams.json")
VALID = [v for v in VECTORS if "message" in v]
INVALID = [v for v in VECTORS if "error" in v]
SESSION_FILE: dict[str, Any] = read_vectors("streams_session.json")


def test_vectors_files_are_up_to_date() -> None:
    assert make_streams_vectors.build() == VECTORS, "run: python tests/vectors/make_streams_vectors.py"
    assert make_streams_vectors.build_session() == SESSION_FILE, "run: python tests/vectors/make_streams_vectors.py"


def test_every_stream_number_is_covered() -> None:
    types = {v["message"]["type"] for v in VALID}
    assert {"stream_items", "stream_end", "stream_credit"} <= types
    assert any("$stream" in str(v["message"]) for v in VALID)
    assert {"UnknownMessageType", "UnknownExtCode", "MalformedMessage"} <= {v["error"] for v in INVALID}


def _expected(vector: dict[str, Any]) -> Any:
    message = mv.from_json(vector["message"])
    if isinstance(message, StreamItems):  # the decoder notes the body's length (§17.2)
        message = StreamItems(message.stream_id, message.items, len(bytes.fromhex(vector["hex"])) - 4)
    return message


@pytest.mark.parametrize("vector", VALID, ids=[v["name"] for v in VALID])
@pytest.mark.parametrize("chunk", [None, 1])
def test_valid_vector(vector: dict[str, Any], chunk: int | None) -> None:
    messages = _run(vector, chunk)
    assert len(messages) == 1 and same(messages[0], _expected(vector))
    assert wire.encode(mv.from_json(vector["message"])).hex() == vector.get("canonical_hex", vector["hex"])


@pytest.mark.parametrize("vector", INVALID, ids=[v["name"] for v in INVALID])
@pytest.mark.parametrize("chunk", [None, 1])
def test_invalid_vector(vector: dict[str, Any], chunk: int | None) -> None:
    with pytest.raises(wire.RemoteProtocolError) as info:
        _run(vector, chunk)
    assert type(info.value).__name__ == vector["error"]


# -- the session vectors ---------------------------------------------------------------------------


class NumbersRoot(broker.Referenceable):
    """The fixture "numbers"."""

    def remote_numbers(self, n: int) -> Iterator[int]:
        return iter(range(n))

    def remote_failing(self, n: int) -> Iterator[int]:
        yield from range(n)
        raise ValueError("ran dry")

    def remote_endless(self) -> Iterator[int]:
        i = 0
        while True:
            yield i
            i += 1


def _take_all(stream: broker.RemoteStream) -> dict[str, Any]:
    """Every item buffered now, and how the stream stands (the "as a result" of the fixtures)."""
    items: list[Any] = []
    while True:
        box: list[Any] = []
        d: Deferred[Any] = stream.next()
        d.add_both(box.append)
        if not box:  # nothing buffered: open
            d.cancel()
            return {"items": items, "end": None}
        outcome = box[0]
        if not isinstance(outcome, Failure):
            items.append(outcome)
            continue
        if outcome.check(StopAsyncIteration):
            return {"items": items, "end": "done"}
        return {"items": items, "end": tsv.error_kind(outcome)}


class StreamsRun(tsv.Run):
    """tsv.Run with the fixtures of streams_session.json and a decoder that reads stream messages."""

    def __init__(self, vector: dict[str, Any]) -> None:
        self.releases_due = 0
        self.connection_ended = False
        self.calls = []
        self.outcomes = []
        self.out_decoder = wire.WireDecoder(max_frame_size=2**32 - 1, features=(*tsv.ALL_FEATURES, "streams"))
        root = NumbersRoot() if vector["root"] == "numbers" else None
        self.session = broker.Session(root=root, limits=broker.Limits(**vector.get("limits", {})),
                                      name=vector["name"], release_due=self._release_due)

    def step(self, step: dict[str, Any]) -> None:
        (action, arg), = step.items()
        if action == "result" and isinstance(arg.get("value"), dict) and "$stream" in arg["value"]:
            outcome = self.outcomes[arg["call"]]
            assert outcome is not None and outcome[0] == "value", outcome
            assert isinstance(outcome[1], broker.RemoteStream), outcome
            assert _take_all(outcome[1]) == arg["value"]["$stream"]
            self.end_of_step()
            return
        super().step(step)


def test_fixtures_are_the_specified_ones() -> None:
    assert set(SESSION_FILE["fixtures"]) == {"numbers", "none", "as a result"}


@pytest.mark.parametrize("vector", SESSION_FILE["vectors"], ids=[v["name"] for v in SESSION_FILE["vectors"]])
def test_session_vector(vector: dict[str, Any]) -> None:
    tsv._run(vector, StreamsRun)


# -- properties: any stream message round-trips; any ext 7 payload is decoded or refused cleanly ---

_ids = st.integers(1, MAX_ID)
_counts = st.integers(0, MAX_ID)
_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=8) | st.binary(max_size=8)
_refs = st.builds(StreamRef, _ids, _ids, _ids)
_failures = st.none() | st.builds(FailureInfo, st.sampled_from(["failed", "cancelled", "overloaded"]),
                                  st.text(max_size=8), st.text(max_size=8), st.none() | st.text(max_size=8))


@settings(max_examples=200, deadline=None)
@given(_ids, st.lists(_scalars | _refs, min_size=1, max_size=5), _failures, _counts, _counts)
def test_stream_messages_round_trip(stream_id: int, items: list[Any], failure: FailureInfo | None,
                                    n_items: int, n_bytes: int) -> None:
    messages: list[Any] = [Answer(1, StreamRef(stream_id, stream_id, stream_id)), StreamItems(stream_id, items),
                           StreamEnd(stream_id, failure)]
    if n_items or n_bytes:
        messages.append(StreamCredit(stream_id, n_items, n_bytes))
    for message in messages:
        data = wire.encode(message)
        decoded = wire.decode(data, features=("streams",))
        if isinstance(message, StreamItems):
            message = StreamItems(stream_id, items, len(data) - 4)
        assert same(decoded, message)
        with pytest.raises((wire.UnknownExtCode, wire.UnknownMessageType)):
            wire.decode(data)  # not negotiated


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40) | st.builds(lambda v: msgpack.packb(v, use_bin_type=True),
                                          st.lists(st.integers(-5, 2**64 - 1) | st.booleans() | st.none(), max_size=4)))
def test_any_stream_payload_is_decoded_or_refused_as_malformed(payload: bytes) -> None:
    body = msgpack.packb([4, 1, msgpack.ExtType(7, payload)], use_bin_type=True)
    data = struct.pack(">I", len(body)) + body
    try:
        message = wire.decode(data, features=("streams",))
    except wire.RemoteProtocolError as exc:
        assert type(exc).__name__ in {"MalformedMessage", "ContainerTooLong", "UnknownExtCode", "NestingTooDeep", "FrameTooComplex"}
        return
    assert isinstance(message, Answer) and isinstance(message.value, StreamRef)
