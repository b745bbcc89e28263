"""The "call-options" feature's codec vectors (``tests/vectors/call_options.json``, PROTOCOL.md
§18) held to bytes written out by hand. ``tests/test_wire.py`` runs them, as it runs every codec
file, and ``tests/test_session_vectors.py`` runs ``call_options_session.json``."""

from __future__ import annotations

from typing import Any

from vector_files import read_vectors

VECTORS: list[dict[str, Any]] = read_vectors("call_options.json")


def test_hand_assembled_bytes() -> None:
    """The encoder checked against bytes written out by hand, not only against itself."""
    by_name = {v["name"]: v["hex"] for v in VECTORS}
    assert by_name["call with a timeout in whole seconds"] == (
        "00000016" "98 03 02 00 a4 736c6f77 90 80 00 81 a7 74696d656f7574 05".replace(" ", ""))
