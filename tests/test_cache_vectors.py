"""The "cache" feature's vectors (PROTOCOL.md §16): the codec's (``tests/vectors/cache.json``), run
as ``tests/test_wire.py`` runs ``wire.json`` (whole and byte by byte, then the end of the stream),
and the session's (``tests/vectors/cache_session.json``), run as ``tests/test_session_vectors.py``
runs ``session.json``, with the fixtures the file describes."""

from __future__ import annotations

import importlib.util
import json
import struct
from pathlib import Path
from typing import Any

import msgpack
import pytest
import test_session_vectors as tsv
from hypothesis import given, settings
from hypothesis import strategies as st
from test_wire import _run, same

import broker
from broker import wire
from broker.cache import CacheObserver
from broker.messages import MAX_ID, Answer, CacheRef, CacheRelease, CacheUpdate

VECTORS_DIR = Path(__file__).with_name("vectors")


def _load_generator() -> Any:
    spec = importlib.util.spec_from_file_location("make_cache_vectors", VECTORS_DIR / "make_cache_vectors.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_cache_vectors = _load_generator()
mv = make_cache_vectors.mv
VECTORS: list[dict[str, Any]] = json.loads((VECTORS_DIR / "cache.json").read_text(encoding="utf-8"))
VALID = [v for v in VECTORS if "message" in v]
INVALID = [v for v in VECTORS if "error" in v]


def test_vectors_file_is_up_to_date() -> None:
    assert make_cache_vectors.build() == VECTORS, "run: python tests/vectors/make_cache_vectors.py"


def test_every_cache_number_is_covered() -> None:
    types = {v["message"]["type"] for v in VALID}
    assert {"cache_update", "cache_release"} <= types
    assert any("$cache_ref" in json.dumps(v["message"]) for v in VALID)
    assert {"UnknownMessageType", "UnknownExtCode", "MalformedMessage"} <= {v["error"] for v in INVALID}


@pytest.mark.parametrize("vector", VALID, ids=[v["name"] for v in VALID])
@pytest.mark.parametrize("chunk", [None, 1])
def test_valid_vector(vector: dict[str, Any], chunk: int | None) -> None:
    expected = mv.from_json(vector["message"])
    messages = _run(vector, chunk)
    assert len(messages) == 1 and same(messages[0], expected)
    assert wire.encode(messages[0]) == bytes.fromhex(vector.get("canonical_hex", vector["hex"]))
    assert mv.to_json(messages[0]) == vector["message"]


@pytest.mark.parametrize("vector", INVALID, ids=[v["name"] for v in INVALID])
@pytest.mark.parametrize("chunk", [None, 1])
def test_invalid_vector(vector: dict[str, Any], chunk: int | None) -> None:
    with pytest.raises(wire.RemoteProtocolError) as info:
        _run(vector, chunk)
    assert type(info.value).__name__ == vector["error"]


def test_hand_assembled_bytes() -> None:
    """The encoder checked against bytes written out by hand, not only against itself."""
    by_name = {v["name"]: v["hex"] for v in VECTORS}
    assert by_name["cache ref without state"] == "00000007" "93 04 02 d5 06 91 01".replace(" ", "")
    assert by_name["cache_release"] == "00000004" "93 12 01 02".replace(" ", "")
    assert by_name["cache_update"] == "00000014" "95 11 01 a9 7365745f73636f7265 92 a3 626f62 05 80".replace(" ", "")


def test_message_classes_validate_themselves() -> None:
    with pytest.raises(ValueError):
        CacheRef(1, None, {"state": "without a type name"})
    with pytest.raises(ValueError):
        CacheRelease(1, 0)
    with pytest.raises(TypeError):
        CacheUpdate(1, "m", [], {1: 2})  # type: ignore[dict-item]


# -- session vectors (tests/vectors/cache_session.json, the scheme of PROTOCOL.md §13.1) ----------

SESSION_FILE = json.loads((VECTORS_DIR / "cache_session.json").read_text(encoding="utf-8"))


class Board(broker.RemoteCache):
    """The holder fixture "vectors.Board"."""

    def set_copyable_state(self, state: Any) -> None:
        self.state = dict(state)

    def observe_set(self, key: str, value: Any) -> None:
        self.state[key] = value


broker.register_remote_cache("vectors.Board", Board)


class BoardCacheable(broker.Cacheable):
    cache_type = "vectors.Board"

    def __init__(self) -> None:
        self.state: dict[str, Any] = {"a": 1}
        self.observers: list[CacheObserver] = []
        self.stopped = 0

    def get_state_to_cache_and_observe_for(self, perspective: Any, observer: CacheObserver) -> Any:
        self.observers.append(observer)
        return dict(self.state)

    def stopped_observing(self, perspective: Any, observer: CacheObserver) -> None:
        self.observers.remove(observer)
        self.stopped += 1


class BoardRoot(broker.Referenceable):
    """The owner fixture "board"."""

    def __init__(self) -> None:
        self.board = BoardCacheable()

    def remote_board(self) -> BoardCacheable:
        return self.board

    def remote_set(self, key: str, value: Any) -> None:
        self.board.state[key] = value
        for observer in self.board.observers:
            observer.call_remote("set", key, value)

    def remote_stopped(self) -> int:
        return self.board.stopped


def cache_json(value: Any) -> Any:
    if isinstance(value, Board):
        holder = value._cache_holder
        assert holder is not None
        return {"$cache": [holder[1], mv.value_to_json(value.state)]}
    if isinstance(value, list):
        return [cache_json(x) for x in value]
    return tsv.result_json(value)


class CacheRun(tsv.Run):
    """tsv.Run with the fixtures of cache_session.json and a decoder that reads cache messages."""

    def __init__(self, vector: dict[str, Any]) -> None:
        self.releases_due = 0
        self.connection_ended = False
        self.calls = []
        self.outcomes = []
        self.out_decoder = wire.WireDecoder(max_frame_size=2**32 - 1, features=(*tsv.ALL_FEATURES, "cache"))
        root = BoardRoot() if vector["root"] == "board" else tsv.ROOTS[vector["root"]]()
        self.session = broker.Session(root=root, limits=broker.Limits(**vector.get("limits", {})),
                                      name=vector["name"], release_due=self._release_due)

    def step(self, step: dict[str, Any]) -> None:
        (action, arg), = step.items()
        if action == "result" and "value" in arg:
            outcome = self.outcomes[arg["call"]]
            assert outcome is not None and outcome[0] == "value", outcome
            assert cache_json(outcome[1]) == arg["value"]
            self.end_of_step()
            return
        super().step(step)


def test_session_file_matches_generator() -> None:
    assert make_cache_vectors.build_session() == SESSION_FILE, "run: python tests/vectors/make_cache_vectors.py"


@pytest.mark.parametrize("vector", SESSION_FILE["vectors"], ids=[v["name"] for v in SESSION_FILE["vectors"]])
def test_session_vector(vector: dict[str, Any]) -> None:
    run = CacheRun(vector)
    for step in vector["steps"]:
        if "closed" in step:
            assert run.close_requested == step["closed"]
            assert run.goodbye_kind() == step.get("goodbye_kind"), (run.session.lost, run.session.close_reason)
            continue
        run.step(step)


# -- properties: any cache message round-trips; any ext 6 payload is decoded or refused cleanly -----

_ids = st.integers(1, MAX_ID)
_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=8) | st.binary(max_size=8)
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(st.text(max_size=4), inner, max_size=4), max_leaves=12)
_refs = st.builds(CacheRef, _ids) | st.builds(CacheRef, _ids, st.text(min_size=1, max_size=8), _values)


@settings(max_examples=200, deadline=None)
@given(st.lists(_refs, max_size=4), _ids, st.text(min_size=1, max_size=8), st.lists(_values | _refs, max_size=3),
       st.integers(1, MAX_ID))
def test_cache_messages_round_trip(refs: list[CacheRef], cache_id: int, method: str, args: list[Any], count: int) -> None:
    for message in (Answer(1, refs), CacheUpdate(cache_id, method, args, {"k": refs}), CacheRelease(cache_id, count)):
        data = wire.encode(message)
        assert same(wire.decode(data, features=("cache",)), message)
        if isinstance(message, Answer) and not refs:
            continue  # nothing of the feature in it
        with pytest.raises((wire.UnknownExtCode, wire.UnknownMessageType)):
            wire.decode(data)  # not negotiated


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40) | st.builds(lambda v: msgpack.packb(v, use_bin_type=True), _values))
def test_any_cache_ref_payload_is_decoded_or_refused_as_malformed(payload: bytes) -> None:
    body = msgpack.packb([4, 1, msgpack.ExtType(6, payload)], use_bin_type=True)
    data = struct.pack(">I", len(body)) + body
    try:
        message = wire.decode(data, features=("cache",))
    except wire.RemoteProtocolError as exc:
        assert type(exc).__name__ in {"MalformedMessage", "ContainerTooLong", "UnknownExtCode", "NestingTooDeep", "FrameTooComplex"}
        return
    assert isinstance(message, Answer) and isinstance(message.value, CacheRef)
