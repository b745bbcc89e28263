"""The "pipelining" feature's codec vectors (``tests/vectors/pipelining.json``, PROTOCOL.md §15)
held to bytes written out by hand, and the properties of ``finish``. ``tests/test_wire.py`` runs
the vectors, as it runs every codec file, and ``tests/test_session_vectors.py`` runs
``pipelining_session.json``."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from vector_files import load_generator, read_vectors

from broker import wire
from broker.messages import MAX_ID, Finish

mv = load_generator("make_vectors")
VECTORS: list[dict[str, Any]] = read_vectors("pipelining.json")


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


# -- properties -----------------------------------------------------------------------------------


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
