"""The "cache" feature's vectors (PROTOCOL.md §16): the codec's (``tests/vectors/cache.json``, run
by ``tests/test_wire.py`` with every codec file) held to bytes written by hand, and the session's
(``tests/vectors/cache_session.json``), run by ``tests/test_session_vectors.py``'s runner with
the fixtures the file describes; and properties of the cache messages."""

from __future__ import annotations

import json
import struct
from typing import Any

import msgpack
import pytest
import test_session_vectors as tsv
from hypothesis import given, settings
from hypothesis import strategies as st
from test_wire import same
from vector_files import read_vectors

import broker
from broker import wire
from broker.cache import CacheObserver
from broker.messages import MAX_ID, Answer, CacheRef, CacheRelease, CacheUpdate

VECTORS: list[dict[str, Any]] = read_vectors("cache.json")
VALID = [v for v in VECTORS if "message" in v]
INVALID = [v for v in VECTORS if "error" in v]


def test_every_cache_number_is_covered() -> None:
    types = {v["message"]["type"] for v in VALID}
    assert {"cache_update", "cache_release"} <= types
    assert any("$cache_ref" in json.dumps(v["message"]) for v in VALID)
    assert {"UnknownMessageType", "UnknownExtCode", "MalformedMessage"} <= {v["error"] for v in INVALID}


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

SESSION_FILE = read_vectors("cache_session.json")


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
        return {"$cache": [holder[1], tsv.make_vectors.value_to_json(value.state)]}
    if isinstance(value, list):
        return [cache_json(x) for x in value]
    return tsv.result_json(value)


class CacheRun(tsv.Run):
    """tsv.Run with the fixtures of cache_session.json and a decoder that reads cache messages."""

    features = (*tsv.ALL_FEATURES, "cache")
    roots = {**tsv.ROOTS, "board": BoardRoot}

    def step(self, step: dict[str, Any]) -> None:
        (action, arg), = step.items()
        if action == "result" and "value" in arg:
            outcome = self.outcomes[arg["call"]]
            assert outcome is not None and outcome[0] == "value", outcome
            assert cache_json(outcome[1]) == arg["value"]
            self.end_of_step()
            return
        super().step(step)


@pytest.mark.parametrize("vector", SESSION_FILE["vectors"], ids=[v["name"] for v in SESSION_FILE["vectors"]])
def test_session_vector(vector: dict[str, Any]) -> None:
    tsv._run(vector, CacheRun)


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
