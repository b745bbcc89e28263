"""Generate ``tests/vectors/call_options.json``: codec vectors of "call-options" (PROTOCOL.md §18).

Same format as ``wire.json`` (PROTOCOL.md §13); a call's field 8 is the message member
``"options"`` (absent: no field 8). Run ``python tests/vectors/make_call_options_vectors.py`` to
rewrite it; ``tests/test_wire.py`` fails when the file and this generator disagree.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_vectors as mv  # noqa: E402

from broker.messages import Call, Error, FailureInfo  # noqa: E402

__all__ = ["build", "PATH"]

PATH = Path(__file__).with_name("call_options.json")
OPTIONS = ["call-options"]
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def build() -> list[dict[str, Any]]:
    valid = mv._valid
    bad = mv._bad
    return [
        # field 8 (§18.1): a map; the codec checks only its shape, the session the rest (§18.2)
        valid("call with a timeout", Call(1, 0, "slow", [], {}, 0, {"timeout": 0.25}), features=OPTIONS),
        valid("call with a timeout in whole seconds", Call(2, 0, "slow", [], {}, 0, {"timeout": 5}), features=OPTIONS),
        valid("call with metadata", Call(3, 0, "add", [1, 2], {}, 0, {"metadata": {"traceparent": TRACEPARENT}}),
              features=OPTIONS),
        valid("call with timeout and metadata", Call(4, 7, "m", [], {"k": 1}, 0,
                                                     {"timeout": 1.5, "metadata": {"tracestate": "a=1", "call-id": "x"}}),
              features=OPTIONS),
        valid("one-way call with options", Call(0, 0, "log", ["hi"], {}, 1, {"timeout": 2.0}), features=OPTIONS),
        valid("call with empty options", Call(5, 0, "m", [], {}, 0, {}), features=OPTIONS),
        valid("call with an unknown option key", Call(6, 0, "m", [], {}, 0, {"priority": 3, "timeout": 1.0}),
              features=OPTIONS),
        valid("call without options, feature negotiated", Call(7, 0, "m", [], {}), features=OPTIONS),
        valid("error of kind deadline", Error(8, FailureInfo("deadline", "broker.DeadlineExceeded", "the deadline passed")),
              features=OPTIONS),
        # not negotiated: a call has 6 fields, as in version 1 (§3.3, §18.5)
        bad("call options not negotiated", [3, 1, 0, "m", [], {}, 0, {"timeout": 1.0}], "MalformedMessage"),
        bad("call options not negotiated, other features", [3, 1, 0, "m", [], {}, 0, {}], "MalformedMessage",
            features=["heartbeat", "decrefs"]),
        # malformed (§18.1)
        bad("call options not a map", [3, 1, 0, "m", [], {}, 0, [1.0]], "MalformedMessage", features=OPTIONS),
        bad("call options nil", [3, 1, 0, "m", [], {}, 0, None], "MalformedMessage", features=OPTIONS),
        bad("call options holding a ref", [3, 1, 0, "m", [], {}, 0, {"metadata": {"k": mv._ext(1, 5)}}],
            "MalformedMessage", features=OPTIONS),
        bad("call options holding an array", [3, 1, 0, "m", [], {}, 0, {"timeout": [1]}], "MalformedMessage",
            features=OPTIONS),
        bad("call options key not str", [3, 1, 0, "m", [], {}, 0, {1: 1.0}], "MalformedMessage", features=OPTIONS),
        bad("call with 9 fields", [3, 1, 0, "m", [], {}, 0, {}, {}], "MalformedMessage", features=OPTIONS),
    ]


def main() -> None:
    mv.write(PATH, build())


if __name__ == "__main__":
    main()
