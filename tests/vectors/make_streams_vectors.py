"""Generate ``tests/vectors/streams.json`` and ``streams_session.json``: the vectors of the
"streams" feature (PROTOCOL.md §17).

``streams.json`` has the format of ``wire.json`` (PROTOCOL.md §13), with the value tag
``{"$stream": [stream_id, window_items, window_bytes]}`` and the messages ``stream_items``
(``stream_id``, ``items``), ``stream_end`` (``stream_id``, ``failure``: ``[kind, type_name,
message, traceback]`` or null) and ``stream_credit`` (``stream_id``, ``items``, ``bytes``).
``streams_session.json`` has the scheme of ``session.json`` (§13.1) with the fixtures in its
``fixtures``. Run ``python tests/vectors/make_streams_vectors.py`` to rewrite both;
``tests/test_streams_vectors.py`` fails when the files and this generator disagree.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import msgpack

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_session_vectors as sv  # noqa: E402
import make_vectors as mv  # noqa: E402

from broker.messages import (  # noqa: E402
    MAX_ID,
    Answer,
    Call,
    CopyState,
    ExportedRef,
    FailureInfo,
    StreamCredit,
    StreamEnd,
    StreamItems,
    StreamRef,
)

__all__ = ["build", "build_session", "PATH", "SESSION_PATH", "SESSION_FIXTURES"]

PATH = Path(__file__).with_name("streams.json")
SESSION_PATH = Path(__file__).with_name("streams_session.json")
STREAMS = ["streams"]
CANCEL = FailureInfo("cancelled", "broker.StreamCancelled", "the consumer cancelled the stream", None)

#: Fixtures of the session vectors (implementations build them).
SESSION_FIXTURES = {
    "numbers": {
        "role": "a root whose methods return streams (the session under test produces them)",
        "numbers(n)": "a stream of the ints 0 … n−1, then done",
        "failing(n)": "a stream of 0 … n−1, then a failure (kind \"failed\")",
        "endless()": "a stream of 0, 1, 2, … that only a cancel stops",
    },
    "none": {"role": "no root (the session under test consumes what the script produces)"},
    "as a result": ('a call whose answer is a stream is written {"$stream": {"items": [...], "end": e}}: '
                    "at that step the runner takes every item the stream has buffered (credit may go out "
                    "then, §17.2); e is null while it is open, \"done\" once it ended, else the failure kind"),
}


def _stream(payload: Any) -> msgpack.ExtType:
    return mv._ext(7, payload)


def build() -> list[dict[str, Any]]:
    valid = mv._valid
    bad = mv._bad
    return [
        # ext 7 (§17.1), wherever a wire value may be
        valid("stream in an answer", Answer(1, StreamRef(1, 64, 1024 * 1024)), features=STREAMS),
        valid("stream in call args", Call(1, 0, "total", [StreamRef(2, 16, 65536)], {}), features=STREAMS),
        valid("stream ids and windows max", Answer(2, StreamRef(MAX_ID, MAX_ID, MAX_ID)), features=STREAMS),
        valid("stream as an item of a stream", StreamItems(1, [StreamRef(2, 1, 1)]), features=STREAMS),
        # stream_items (13), stream_end (14), stream_credit (15)
        valid("stream_items", StreamItems(1, [0, 1, 2]), features=STREAMS),
        valid("stream_items with refs and copies", StreamItems(3, [ExportedRef(5), CopyState("app.P", {"x": 1})]),
              features=STREAMS),
        valid("stream_end done", StreamEnd(1), features=STREAMS),
        valid("stream_end failed", StreamEnd(1, FailureInfo("failed", "builtins.ValueError", "ran dry", None)),
              features=STREAMS),
        valid("stream_end cancel", StreamEnd(7, CANCEL), features=STREAMS),
        valid("stream_credit", StreamCredit(1, 32, 0), features=STREAMS),
        valid("stream_credit bytes only", StreamCredit(1, 0, 4096), features=STREAMS),
        valid("stream_credit max", StreamCredit(MAX_ID, MAX_ID, MAX_ID), features=["streams", "decrefs"]),
        # not negotiated: unknown (§3.1, §17.4)
        bad("stream_items not negotiated", [13, 1, [1]], "UnknownMessageType"),
        bad("stream_end not negotiated", [14, 1, None], "UnknownMessageType", features=["heartbeat", "decrefs"]),
        bad("stream_credit not negotiated", [15, 1, 1, 1], "UnknownMessageType", features=["cache"]),
        bad("stream ext not negotiated", [4, 1, _stream([1, 64, 1024])], "UnknownExtCode"),
        bad("ext 8 stays reserved", [4, 1, mv._ext(8, [1])], "UnknownExtCode", features=STREAMS),
        # malformed (§17.1-17.3)
        bad("stream payload of two", [4, 1, _stream([1, 64])], "MalformedMessage", features=STREAMS),
        bad("stream payload not an array", [4, 1, _stream(1)], "MalformedMessage", features=STREAMS),
        bad("stream id 0", [4, 1, _stream([0, 64, 1024])], "MalformedMessage", features=STREAMS),
        bad("stream window 0 items", [4, 1, _stream([1, 0, 1024])], "MalformedMessage", features=STREAMS),
        bad("stream window 0 bytes", [4, 1, _stream([1, 64, 0])], "MalformedMessage", features=STREAMS),
        bad("stream window negative", [4, 1, _stream([1, -1, 1024])], "MalformedMessage", features=STREAMS),
        bad("stream_items empty", [13, 1, []], "MalformedMessage", features=STREAMS),
        bad("stream_items not an array", [13, 1, {"a": 1}], "MalformedMessage", features=STREAMS),
        bad("stream_items id 0", [13, 0, [1]], "MalformedMessage", features=STREAMS),
        bad("stream_items too many fields", [13, 1, [1], 0], "MalformedMessage", features=STREAMS),
        bad("stream_end failure as an array", [14, 1, ["failed", "x", "y", None]], "MalformedMessage", features=STREAMS),
        bad("stream_end failure a str", [14, 1, "done"], "MalformedMessage", features=STREAMS),
        bad("stream_end failure a sender ref", [14, 1, mv._ext(1, 5)], "MalformedMessage", features=STREAMS),
        bad("stream_end failure of an unknown kind", [14, 1, mv._ext(4, ["oops", "x", "y", None])],
            "MalformedMessage", features=STREAMS),
        bad("stream_end too few fields", [14, 1], "MalformedMessage", features=STREAMS),
        bad("stream_credit of nothing", [15, 1, 0, 0], "MalformedMessage", features=STREAMS),
        bad("stream_credit negative", [15, 1, -1, 10], "MalformedMessage", features=STREAMS),
        bad("stream_credit bool", [15, 1, True, 10], "MalformedMessage", features=STREAMS),
        bad("stream_credit too few fields", [15, 1, 10], "MalformedMessage", features=STREAMS),
    ]


PEER_HELLO_STREAMS = sv.peer_hello("streams")
ANY = sv.ANY


def _streaming(*steps: dict[str, Any]) -> list[dict[str, Any]]:
    """Steps after a handshake in which the peer names "streams" (the vectors require it of us)."""
    return sv.opened_with(PEER_HELLO_STREAMS, *steps)


def _in(*messages: Any) -> dict[str, Any]:
    return {"in": [sv._m(m) for m in messages]}


def _out(*messages: Any) -> dict[str, Any]:
    return {"out": [m if isinstance(m, dict) else sv._m(m) for m in messages]}


def _ask(method: str, *args: Any) -> dict[str, Any]:
    return {"call": {"target": 0, "method": method, "args": list(args), "kwargs": {}}}


def _answered_stream(request_id: int, stream_id: int) -> dict[str, Any]:
    """Our answer carrying our stream ``stream_id``, with the window this implementation offers."""
    return {"type": "answer", "request_id": request_id, "value": {"$stream": [stream_id, ANY, ANY]}}


def _failed_end(stream_id: int, kind: str) -> dict[str, Any]:
    return {"type": "stream_end", "stream_id": stream_id, "failure": [kind, ANY, ANY, None]}


def _taken(call: int, items: list[Any], end: str | None) -> dict[str, Any]:
    return {"result": {"call": call, "value": {"$stream": {"items": items, "end": end}}}}


def build_session() -> dict[str, Any]:
    """Exchanges of §17, written from the spec: producers (root numbers) and consumers (role client)."""
    vector, OPEN, closed, error, goodbye = sv.vector, sv.OPEN, sv.closed, sv.error, sv.goodbye
    producer = {"role": "server", "root": "numbers", "requires": ["streams"]}
    consumer = {"role": "client", "root": "none", "requires": ["streams"]}
    vectors = [
        vector("streams-producer-waits-for-credit",
               "§17.1-17.3: nothing but the stream ext before the first credit; then no more items than "
               "the credit; the end after the last item.",
               _streaming(_in(Call(1, 0, "numbers", [3])), _out(_answered_stream(1, 1)),
                          _in(StreamCredit(1, 2, 1000)), _out(StreamItems(1, [0]), StreamItems(1, [1])),
                          _in(StreamCredit(1, 1, 0)), _out(StreamItems(1, [2])),
                          _in(StreamCredit(1, 1, 0)), _out(StreamEnd(1)), OPEN), **producer),
        vector("streams-producer-byte-credit",
               "§17.2: items need at least one byte of credit; a frame's body length is spent (5 bytes "
               "for the first, taking the byte credit below 0); a batch holds as many items as the byte "
               "credit does at the last batch's bytes per item (5, then 7 // 3 = 2).",
               _streaming(_in(Call(1, 0, "endless")), _out(_answered_stream(1, 1)),
                          _in(StreamCredit(1, 3, 1)), _out(StreamItems(1, [0])),
                          _in(StreamCredit(1, 5, 3)), _out(),
                          _in(StreamCredit(1, 0, 20)), _out(StreamItems(1, [1, 2, 3]), StreamItems(1, [4, 5, 6, 7])),
                          OPEN), **producer),
        vector("streams-producer-failure-after-items",
               "§17.3: the source's failure is a stream_end of kind failed, after the items before it.",
               _streaming(_in(Call(1, 0, "failing", [2])), _out(_answered_stream(1, 1)),
                          _in(StreamCredit(1, 10, 1000)),
                          _out(StreamItems(1, [0]), StreamItems(1, [1]), _failed_end(1, "failed")),
                          OPEN), **producer),
        vector("streams-producer-cancelled",
               "§17.3: after the consumer's cancel nothing more is sent for the stream, not even its end; "
               "credit for it is ignored.",
               _streaming(_in(Call(1, 0, "endless")), _out(_answered_stream(1, 1)),
                          _in(StreamCredit(1, 2, 1000)), _out(StreamItems(1, [0]), StreamItems(1, [1])),
                          _in(StreamEnd(1, CANCEL), StreamCredit(1, 5, 1000), Call(2, 0, "numbers", [0])),
                          _out(_answered_stream(2, 2)), OPEN), **producer),
        vector("streams-unknown-ids-ignored",
               "§17.2, §17.3: credit, items and ends for streams not in the tables are ignored.",
               _streaming(_in(StreamCredit(9, 1, 1), StreamItems(9, [1]), StreamEnd(9), StreamEnd(8, CANCEL),
                              Call(1, 0, "numbers", [0])), _out(_answered_stream(1, 1)), OPEN), **producer),
        vector("streams-producer-without-feature",
               "§17.4: a stream in an answer to a peer without \"streams\": an unimplemented error.",
               sv.opened(_in(Call(1, 0, "numbers", [3])), _out(error(1, "unimplemented", "broker.StreamsNotNegotiated")),
                         OPEN), role="server", root="numbers"),
        vector("streams-consumer-credit",
               "§17.1, §17.2: the first credit is the smaller window, at once; credit goes back as items are "
               "taken (half a window of items; the bytes of batches wholly taken); none after the end.",
               _streaming(_ask("numbers", 3), _out(Call(1, 0, "numbers", [3])),
                          _in(Answer(1, StreamRef(4, 2, 1000))), _out(StreamCredit(4, 2, 1000)),
                          _in(StreamItems(4, [0, 1])), _out(),
                          _taken(0, [0, 1], None), _out(StreamCredit(4, 1, 0), StreamCredit(4, 1, 6)),
                          _in(StreamItems(4, [2]), StreamEnd(4)), _taken(0, [2], "done"), _out(), OPEN), **consumer),
        vector("streams-consumer-failure",
               "§17.3: the items before a failure, then the failure.",
               _streaming(_ask("numbers", 1), _out(Call(1, 0, "numbers", [1])),
                          _in(Answer(1, StreamRef(1, 8, 1000))), _out(StreamCredit(1, 8, 1000)),
                          _in(StreamItems(1, [7]), StreamEnd(1, FailureInfo("failed", "builtins.ValueError", "no", None))),
                          _taken(0, [7], "failed"), OPEN), **consumer),
        vector("streams-consumer-over-credit",
               "§17.2: items beyond the credit are a protocol error: goodbye invalid.",
               _streaming(_ask("numbers", 3), _out(Call(1, 0, "numbers", [3])),
                          _in(Answer(1, StreamRef(1, 2, 1000))), _out(StreamCredit(1, 2, 1000)),
                          _in(StreamItems(1, [0, 1, 2])), _out(goodbye("invalid")), closed("invalid")), **consumer),
        vector("streams-consumer-disconnected",
               "§17.3, §10: the connection's end fails the stream after the items already received.",
               _streaming(_ask("numbers", 3), _out(Call(1, 0, "numbers", [3])),
                          _in(Answer(1, StreamRef(1, 4, 1000))), _out(StreamCredit(1, 4, 1000)),
                          _in(StreamItems(1, [0])), {"eof": True}, _taken(0, [0], "disconnected"), closed()),
               **consumer),
        vector("streams-consumer-without-feature",
               "§17.4: a stream ext from a peer whose hello lacked \"streams\" is an unknown ext code.",
               sv.opened(_ask("numbers", 3), _out(Call(1, 0, "numbers", [3])),
                         {"in_hex": sv.raw([4, 1, _stream([1, 64, 1024])])}, _out(goodbye("unimplemented")),
                         {"result": {"call": 0, "error_kind": "disconnected"}}, closed("unimplemented")),
               role="client", root="none"),
    ]
    names = [v["name"] for v in vectors]
    assert len(names) == len(set(names)), "vector names must be unique"
    return {"version": 1, "fixtures": SESSION_FIXTURES, "vectors": vectors}


def main() -> None:
    mv.write(PATH, build())
    mv.write(SESSION_PATH, build_session())


if __name__ == "__main__":
    main()
