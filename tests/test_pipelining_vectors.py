"""The "pipelining" feature's codec vectors (``tests/vectors/pipelining.json``, PROTOCOL.md §15),
run as ``tests/test_wire.py`` runs ``wire.json``: whole and byte by byte, then the end of the stream."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from test_wire import _run, same

from broker import wire
from broker.messages import Finish

VECTORS_DIR = Path(__file__).with_name("vectors")


def _load_generator() -> Any:
    spec = importlib.util.spec_from_file_location("make_pipelining_vectors", VECTORS_DIR / "make_pipelining_vectors.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_pipelining_vectors = _load_generator()
mv = make_pipelining_vectors.mv
VECTORS: list[dict[str, Any]] = json.loads((VECTORS_DIR / "pipelining.json").read_text(encoding="utf-8"))
VALID = [v for v in VECTORS if "message" in v]
INVALID = [v for v in VECTORS if "error" in v]


def test_vectors_file_is_up_to_date() -> None:
    assert make_pipelining_vectors.build() == VECTORS, "run: python tests/vectors/make_pipelining_vectors.py"


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
    """The encoder checked against bytes written out by hand (the spec's example, §15.4)."""
    by_name = {v["name"]: v["hex"] for v in VECTORS}
    assert by_name["finish"] == "00000005" "92 09 92 01 02".replace(" ", "")
    assert by_name["pipelined call"] == "00000010" "97 03 02 01 a6 72656e616d65 91 a1 78 80 02".replace(" ", "")


def test_finish_validates_itself() -> None:
    with pytest.raises(ValueError):
        Finish([])
    with pytest.raises(ValueError):
        Finish([3, 3])
    with pytest.raises(TypeError):
        Finish([True])


# -- session vectors (tests/vectors/pipelining_session.json, PROTOCOL.md §13.1 scheme) ------------

from test_session_vectors import _load as _load_session_generator  # noqa: E402
from test_session_vectors import _run as run_session_vector  # noqa: E402

make_pipelining_session_vectors = _load_session_generator("make_pipelining_session_vectors")
SESSION_FILE = json.loads((VECTORS_DIR / "pipelining_session.json").read_text(encoding="utf-8"))


def test_session_file_matches_generator() -> None:
    assert make_pipelining_session_vectors.build() == SESSION_FILE, "run: python tests/vectors/make_pipelining_session_vectors.py"


@pytest.mark.parametrize("vector", SESSION_FILE["vectors"], ids=[v["name"] for v in SESSION_FILE["vectors"]])
def test_session_vector(vector: dict[str, Any]) -> None:
    run_session_vector(vector)


# -- properties -----------------------------------------------------------------------------------

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from broker.messages import MAX_ID  # noqa: E402


@given(st.lists(st.one_of(st.integers(min_value=-(2**63), max_value=2**64 - 1), st.booleans(), st.text(max_size=2)),
                max_size=20))
def test_finish_decodes_exactly_the_valid_id_lists(ids: list[Any]) -> None:
    body = mv._pack([9, ids])
    decoder = wire.WireDecoder(max_frame_size=1 << 20, features=("pipelining",), expect_hello=False)
    decoder.receive_data(len(body).to_bytes(4, "big") + body)
    valid = (bool(ids) and all(type(i) is int and 1 <= i <= MAX_ID for i in ids) and len(set(ids)) == len(ids))
    if valid:
        message = decoder.next_message()
        assert message == Finish(ids) and wire.encode(message) == len(body).to_bytes(4, "big") + body
    else:
        with pytest.raises(wire.RemoteProtocolError):
            decoder.next_message()
