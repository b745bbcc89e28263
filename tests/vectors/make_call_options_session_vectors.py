"""Build ``call_options_session.json``: session vectors of "call-options" (PROTOCOL.md §18).

Same scheme as ``session.json`` (PROTOCOL.md §13.1); a call's field 8 is the message member
``"options"``. The session under test is the callee: what it answers to calls carrying options
(§18.2 rule 1, unknown keys ignored) and to field 8 from a peer that did not name the feature
(§18.5). A deadline's expiry needs a clock, which the scheme has not: tests/test_call_options.py
and the interop tests cover it. Run ``python tests/vectors/make_call_options_session_vectors.py``
after changing a vector; ``tests/test_session_vectors.py`` fails while they disagree.
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path
from typing import Any

import msgpack

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_session_vectors import (  # noqa: E402
    OPEN,
    answer,
    call,
    closed,
    error,
    goodbye,
    opened,
    opened_with,
    peer_hello,
    raw,
    session_file,
    vector,
)
from make_vectors import write  # noqa: E402

__all__ = ["build", "PATH"]

PATH = Path(__file__).with_name("call_options_session.json")
PEER_HELLO_OPTIONS = peer_hello("call-options")
NEEDS = ["call-options"]
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
#: Steps after a handshake in which the peer names "call-options".
negotiated = partial(opened_with, PEER_HELLO_OPTIONS)


def with_options(message: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    return {**message, "options": options}


def build() -> dict[str, Any]:
    many = {f"k{i}": "v" for i in range(33)}
    vectors = [
        vector("options-timeout-and-metadata", "§18.1: a call with a budget and metadata runs and is answered.",
               negotiated({"in": [with_options(call(1, "add", 1, 2), {"timeout": {"$float": "5.0"},
                                                                       "metadata": {"traceparent": TRACEPARENT}})]},
                          {"out": [answer(1, 3)]}, OPEN), requires=NEEDS),
        vector("options-unknown-keys-ignored", "§18.1: option keys a callee does not know are ignored.",
               negotiated({"in": [with_options(call(1, "add", 2, 2), {"priority": 3})]},
                          {"out": [answer(1, 4)]}, OPEN), requires=NEEDS),
        vector("options-empty", "§18.1: an empty options map means nothing.",
               negotiated({"in": [with_options(call(1, "add", 1, 1), {})]}, {"out": [answer(1, 2)]}, OPEN),
               requires=NEEDS),
        vector("options-negative-timeout-invalid", "§18.2 rule 1: a negative budget: kind invalid; the connection goes on.",
               negotiated({"in": [with_options(call(1, "add", 1, 2), {"timeout": -1})]},
                          {"out": [error(1, "invalid")]},
                          {"in": [call(2, "add", 1, 2)]}, {"out": [answer(2, 3)]}, OPEN), requires=NEEDS),
        vector("options-timeout-not-a-number-invalid", "§18.2 rule 1: a budget that is no number: kind invalid.",
               negotiated({"in": [with_options(call(1, "add", 1, 2), {"timeout": "soon"})]},
                          {"out": [error(1, "invalid")]}, OPEN), requires=NEEDS),
        vector("options-too-many-metadata-entries", "§18.2 rule 1: 33 metadata entries (the limit is 32): kind invalid.",
               negotiated({"in": [with_options(call(1, "add", 1, 2), {"metadata": many})]},
                          {"out": [error(1, "invalid")]}, OPEN), requires=NEEDS),
        vector("options-metadata-too-large", "§18.2 rule 1: over 8 KiB of metadata: kind invalid.",
               negotiated({"in": [with_options(call(1, "add", 1, 2), {"metadata": {"k": "x" * 8192}})]},
                          {"out": [error(1, "invalid")]}, OPEN), requires=NEEDS),
        vector("options-metadata-value-not-str", "§18.2 rule 1: metadata maps str to str: kind invalid.",
               negotiated({"in": [with_options(call(1, "add", 1, 2), {"metadata": {"k": 1}})]},
                          {"out": [error(1, "invalid")]}, OPEN), requires=NEEDS),
        vector("options-holding-a-ref-malformed", "§18.1: no ext values in field 8: a protocol error.",
               negotiated({"in_hex": raw([3, 1, 0, "add", [1, 2], {}, 0, {"metadata": {"k": msgpack.ExtType(1, b"\x01")}}])},
                          {"out": [goodbye("invalid")]}, closed("invalid")), requires=NEEDS),
        vector("options-not-negotiated-malformed", "§18.5: field 8 from a peer that did not name the feature: "
               "a call has 6 fields, as in version 1.",
               opened({"in_hex": raw([3, 1, 0, "add", [1, 2], {}, 0, {"timeout": 1}])},
                      {"out": [goodbye("invalid")]}, closed("invalid"))),
    ]
    return session_file(vectors)


def main() -> None:
    write(PATH, build())


if __name__ == "__main__":
    main()
