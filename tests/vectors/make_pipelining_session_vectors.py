"""Build ``pipelining_session.json``: session vectors of the "pipelining" feature (PROTOCOL.md §15).

Same scheme as ``session.json`` (PROTOCOL.md §13.1), plus the message ``finish``
(``question_ids``). Every vector requires ``"pipelining"`` except those that check a session
whose peer did not name it. Written by hand from the spec, message by message.
Run ``python tests/vectors/make_pipelining_session_vectors.py`` after changing a vector;
``tests/test_session_vectors.py`` fails while the file and this script disagree.
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_session_vectors import (  # noqa: E402
    ANY,
    OPEN,
    _m,
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

from broker.messages import Cancel, ExportedRef, Finish  # noqa: E402

__all__ = ["build", "PATH"]

PATH = Path(__file__).with_name("pipelining_session.json")
PEER_HELLO_PIPELINING = peer_hello("pipelining")
NEEDS = ["pipelining"]
#: Steps after a handshake in which the peer names "pipelining".
negotiated = partial(opened_with, PEER_HELLO_PIPELINING)


def finish(*ids: int) -> dict[str, Any]:
    return _m(Finish(list(ids)))


def on(question: int, request_id: int, method: str, *args: Any, flags: int = 2) -> dict[str, Any]:
    """A call pipelined on ``question`` (flag bit 1)."""
    return call(request_id, method, *args, target=question, flags=flags)


def _server() -> list[dict[str, Any]]:
    return [
        vector("pipelined-on-a-reference", "§15.1: a call on question 1's reference answer runs on that object.",
               negotiated({"in": [call(1, "child"), on(1, 2, "value")]},
                          {"out": [answer(1, ExportedRef(1)), answer(2, 42)]}, OPEN), requires=NEEDS),
        vector("pipelined-chain", "§15.1: calls pipelined on a pipelined call that failed fail the same way, later too.",
               negotiated({"in": [call(1, "child"), on(1, 2, "nope"), on(1, 3, "value")]},
                          {"out": [answer(1, ExportedRef(1)), error(2, "unimplemented"), answer(3, 42)]},
                          {"in": [on(2, 4, "value")]},
                          {"out": [error(4, "unimplemented", ANY, ANY)]}, OPEN), requires=NEEDS),
        vector("pipelined-one-way", "§15.1: bit 0 with bit 1: run on the answer, never answered.",
               negotiated({"in": [call(1, "child"), on(1, 0, "value", flags=3), on(1, 2, "value")]},
                          {"out": [answer(1, ExportedRef(1)), answer(2, 42)]}, OPEN), requires=NEEDS),
        vector("pipelined-on-a-failure", "§15.1 rule 3: same kind, message naming the question and the cause.",
               negotiated({"in": [call(1, "fail"), on(1, 2, "value"), on(2, 3, "value")]},
                          {"out": [error(1, "failed", ANY, "boom"),
                                   error(2, "failed", ANY, "pipelined on question 1, which failed: boom"),
                                   error(3, "failed", ANY,
                                         "pipelined on question 2, which failed: pipelined on question 1, which failed: boom")]},
                          OPEN), requires=NEEDS),
        vector("pipelined-waits-for-a-running-question", "§15.1 rule 1: waiting calls fail before the question's own error.",
               negotiated({"in": [call(1, "slow"), on(1, 2, "value")]}, {"out": []},
                          {"in": [_m(Cancel(1))]},
                          {"out": [error(2, "cancelled", ANY, ANY), error(1, "cancelled")]}, OPEN), requires=NEEDS),
        vector("pipelined-cancel-a-waiting-call", "§15.1: a waiting pipelined call is cancelled alone.",
               negotiated({"in": [call(1, "slow"), on(1, 2, "value")]}, {"out": []},
                          {"in": [_m(Cancel(2))]}, {"out": [error(2, "cancelled")]}, OPEN), requires=NEEDS),
        vector("pipelined-not-a-reference", "§15.1 rule 5: a plain answer is not kept; the call is invalid.",
               negotiated({"in": [call(1, "add", 1, 2), on(1, 2, "value")]},
                          {"out": [answer(1, 3), error(2, "invalid")]}, OPEN), requires=NEEDS),
        vector("pipelined-unknown-question", "§15.1 rule 5: a question never asked is invalid.",
               negotiated({"in": [on(9, 1, "value")]}, {"out": [error(1, "invalid")]}, OPEN), requires=NEEDS),
        vector("pipelined-after-finish", "§15.2: after finish the question can no longer be named.",
               negotiated({"in": [call(1, "child")]}, {"out": [answer(1, ExportedRef(1))]},
                          {"in": [finish(1), on(1, 2, "value"), call(3, "value", target=1)]},
                          {"out": [error(2, "invalid"), answer(3, 42)]}, OPEN), requires=NEEDS),
        vector("pipelined-reserved-flag", "§15.1: bits 2-31 stay reserved with bit 1.",
               negotiated({"in": [call(1, "child"), on(1, 2, "value", flags=6)]},
                          {"out": [answer(1, ExportedRef(1)), error(2, "unimplemented")]}, OPEN), requires=NEEDS),
        vector("finish-unknown-ignored", "§15.2: a finish of ids not kept is ignored.",
               negotiated({"in": [finish(5, 6)]}, {"out": []}, OPEN), requires=NEEDS),
        vector("finish-not-negotiated", "§3.1: without the feature a finish is an unknown message type.",
               opened({"in_hex": raw([9, [1]])}, {"out": [goodbye("unimplemented")]}, closed("unimplemented"))),
        vector("finish-malformed", "§15.2: an empty finish closes with goodbye invalid.",
               negotiated({"in_hex": raw([9, []])}, {"out": [goodbye("invalid")]}, closed("invalid")), requires=NEEDS),
    ]


def _client() -> list[dict[str, Any]]:
    client = {"role": "client", "root": "none"}
    return [
        vector("client-finishes-reference-answers", "§15.2: a caller finishes each reference answer, batched.",
               negotiated({"call": {"target": 0, "method": "child", "args": [], "kwargs": {}}},
                          {"call": {"target": 0, "method": "child", "args": [], "kwargs": {}}},
                          {"call": {"target": 0, "method": "add", "args": [1, 2], "kwargs": {}}},
                          {"out": [call(1, "child"), call(2, "child"), call(3, "add", 1, 2)]},
                          {"in": [answer(1, ExportedRef(4)), answer(2, ExportedRef(5)), answer(3, 3)]},
                          {"out": [finish(1, 2)]}, OPEN), requires=NEEDS, **client),
        vector("client-finishes-errors", "§15.2: a caller finishes each error, of a cancelled question too.",
               negotiated({"call": {"target": 0, "method": "fail", "args": [], "kwargs": {}}},
                          {"call": {"target": 0, "method": "slow", "args": [], "kwargs": {}}},
                          {"out": [call(1, "fail"), call(2, "slow")]}, {"cancel": 1}, {"out": [_m(Cancel(2))]},
                          {"in": [_m_error(1), _m_error(2, "cancelled")]},
                          {"out": [finish(1, 2)]}, {"result": {"call": 0, "error_kind": "failed"}}, OPEN),
               requires=NEEDS, **client),
        vector("client-no-finish-without-the-feature", "§15.2: nothing is finished for a peer that did not name it.",
               opened({"call": {"target": 0, "method": "child", "args": [], "kwargs": {}}},
                      {"out": [call(1, "child")]}, {"in": [answer(1, ExportedRef(4)), _m_error(9)]},
                      {"out": []}, OPEN), **client),
    ]


def _m_error(request_id: int, kind: str = "failed") -> dict[str, Any]:
    return {"type": "error", "request_id": request_id, "failure": [kind, "app.Error", "boom", None]}


def build() -> dict[str, Any]:
    return session_file([*_server(), *_client()])


def main() -> None:
    write(PATH, build())


if __name__ == "__main__":
    main()
