"""The shared vector files of tests/vectors and the generators that write them, for the test modules.

One table each for the two schemes (codec, docs/PROTOCOL.md §13; session, §13.1): wire.json and
session.json, then one file a feature. ``tests/test_wire.py`` runs every codec file and
``tests/test_session_vectors.py`` every session file, so a feature adds its files here, not a
copy of the runners; a feature's own module keeps only what is particular to it.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

__all__ = ["VECTORS_DIR", "CODEC_FILES", "SESSION_FILES", "load_generator", "read_vectors", "vector_id"]

VECTORS_DIR = Path(__file__).resolve().parent / "vectors"

#: Codec vector file -> the generator module that writes it (its ``build()``).
CODEC_FILES: dict[str, str] = {
    "wire.json": "make_vectors",
    "pipelining.json": "make_pipelining_vectors",
    "cache.json": "make_cache_vectors",
    "call_options.json": "make_call_options_vectors",
    "streams.json": "make_streams_vectors",
}

#: Session vector file -> (generator module, its function that builds the file).
SESSION_FILES: dict[str, tuple[str, str]] = {
    "session.json": ("make_session_vectors", "build"),
    "pipelining_session.json": ("make_pipelining_session_vectors", "build"),
    "cache_session.json": ("make_cache_vectors", "build_session"),
    "call_options_session.json": ("make_call_options_session_vectors", "build"),
}


def load_generator(name: str) -> Any:
    """The generator ``tests/vectors/<name>.py``, loaded from its file (tests/vectors is no package)."""
    spec = importlib.util.spec_from_file_location(name, VECTORS_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_vectors(file_name: str) -> Any:
    """The parsed contents of ``tests/vectors/<file_name>``."""
    return json.loads((VECTORS_DIR / file_name).read_text(encoding="utf-8"))


def vector_id(file_name: str, vector: dict[str, Any]) -> str:
    """A test id: the vector's name, after its file's for all but the two base files."""
    if file_name in ("wire.json", "session.json"):
        return str(vector["name"])
    return f"{file_name.removesuffix('.json')}: {vector['name']}"
