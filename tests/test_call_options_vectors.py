"""The "call-options" feature's codec vectors (``tests/vectors/call_options.json``, PROTOCOL.md
§18), run as ``tests/test_wire.py`` runs ``wire.json``: whole and byte by byte, then the end."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from test_wire import _run, same

from broker import wire

VECTORS_DIR = Path(__file__).with_name("vectors")


def _load_generator() -> Any:
    spec = importlib.util.spec_from_file_location("make_call_options_vectors", VECTORS_DIR / "make_call_options_vectors.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generator = _load_generator()
mv = generator.mv
VECTORS: list[dict[str, Any]] = json.loads((VECTORS_DIR / "call_options.json").read_text(encoding="utf-8"))
VALID = [v for v in VECTORS if "message" in v]
INVALID = [v for v in VECTORS if "error" in v]


def test_vectors_file_is_up_to_date() -> None:
    assert generator.build() == VECTORS, "run: python tests/vectors/make_call_options_vectors.py"


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
    assert by_name["call with a timeout in whole seconds"] == (
        "00000016" "98 03 02 00 a4 736c6f77 90 80 00 81 a7 74696d656f7574 05".replace(" ", ""))


# -- session vectors (tests/vectors/call_options_session.json, PROTOCOL.md §13.1 scheme) ----------

from test_session_vectors import _load as _load_session_generator  # noqa: E402
from test_session_vectors import _run as run_session_vector  # noqa: E402

make_session = _load_session_generator("make_call_options_session_vectors")
SESSION_FILE = json.loads((VECTORS_DIR / "call_options_session.json").read_text(encoding="utf-8"))


def test_session_file_matches_generator() -> None:
    assert make_session.build() == SESSION_FILE, "run: python tests/vectors/make_call_options_session_vectors.py"


@pytest.mark.parametrize("vector", SESSION_FILE["vectors"], ids=[v["name"] for v in SESSION_FILE["vectors"]])
def test_session_vector(vector: dict[str, Any]) -> None:
    run_session_vector(vector)
