"""Generate ``tests/vectors/pipelining.json``: codec vectors of the "pipelining" feature (PROTOCOL.md §15).

Same format as ``wire.json`` (PROTOCOL.md §13), with the message ``finish`` (``question_ids``:
the ids in wire order) and calls with flag bit 1. Run ``python tests/vectors/make_pipelining_vectors.py``
to rewrite it; ``tests/test_wire.py`` fails when the file and this generator disagree.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_vectors as mv  # noqa: E402

from broker.messages import Call, ExportedRef, Finish  # noqa: E402

__all__ = ["build", "PATH"]

PATH = Path(__file__).with_name("pipelining.json")
PIPELINING = ["pipelining"]
MAX = (1 << 63) - 1


def build() -> list[dict[str, Any]]:
    valid = mv._valid
    bad = mv._bad
    return [
        # finish (9), §15.2
        valid("finish", Finish([1, 2]), features=PIPELINING),
        valid("finish of one", Finish([7]), features=PIPELINING),
        valid("finish max id", Finish([MAX, 300, 65536]), features=["pipelining", "decrefs"]),
        # call flag bit 1, §15.1: the codec passes it; the session decides
        valid("pipelined call", Call(2, 1, "rename", ["x"], {}, 2), features=PIPELINING),
        valid("pipelined one-way call", Call(0, 5, "record", [ExportedRef(3)], {}, 3), features=PIPELINING),
        # not negotiated: unknown, as any reserved number (§3.1)
        bad("finish not negotiated", [9, [1]], "UnknownMessageType"),
        bad("finish not negotiated by this side", [9, [1]], "UnknownMessageType", features=["heartbeat", "decrefs"]),
        bad("message 8 stays reserved", [8, 1], "UnknownMessageType", features=PIPELINING),
        bad("ext 5 stays reserved", [4, 1, mv._ext(5, [1])], "UnknownExtCode", features=PIPELINING),
        # malformed (§15.2)
        bad("finish empty", [9, []], "MalformedMessage", features=PIPELINING),
        bad("finish id 0", [9, [0]], "MalformedMessage", features=PIPELINING),
        bad("finish id negative", [9, [-1]], "MalformedMessage", features=PIPELINING),
        bad("finish id twice", [9, [1, 1]], "MalformedMessage", features=PIPELINING),
        bad("finish id not int", [9, ["x"]], "MalformedMessage", features=PIPELINING),
        bad("finish id bool", [9, [True]], "MalformedMessage", features=PIPELINING),
        bad("finish ids not an array", [9, 1], "MalformedMessage", features=PIPELINING),
        bad("finish too many fields", [9, [1], 2], "MalformedMessage", features=PIPELINING),
        bad("finish too few fields", [9], "MalformedMessage", features=PIPELINING),
    ]


def main() -> None:
    mv.write(PATH, build())


if __name__ == "__main__":
    main()
