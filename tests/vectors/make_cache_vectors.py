"""Generate ``tests/vectors/cache.json``: codec vectors of the "cache" feature (PROTOCOL.md §16).

Same format as ``wire.json`` (PROTOCOL.md §13), with the ``$cache_ref`` value tag
(``{"$cache_ref": [cache_id]}`` or ``{"$cache_ref": [cache_id, type_name, state]}``) and the
messages ``cache_update`` (``cache_id``, ``method``, ``args``, ``kwargs``) and ``cache_release``
(``cache_id``, ``count``). Run ``python tests/vectors/make_cache_vectors.py`` to rewrite it and
``cache_session.json``; ``tests/test_wire.py`` and ``tests/test_session_vectors.py`` fail when the
files and this generator disagree.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import msgpack

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_session_vectors as sv  # noqa: E402
import make_vectors as mv  # noqa: E402

from broker.messages import Answer, CacheRef, CacheRelease, CacheUpdate, Call, CopyState, ExportedRef  # noqa: E402

__all__ = ["build", "build_session", "PATH", "SESSION_PATH", "SESSION_FIXTURES"]

PATH = Path(__file__).with_name("cache.json")
#: Session vectors of the feature (the scheme of PROTOCOL.md §13.1, ``session.json``'s).
SESSION_PATH = Path(__file__).with_name("cache_session.json")
CACHE = ["cache"]

#: Fixtures of the cache session vectors, besides session.json's (implementations build them).
SESSION_FIXTURES = {
    "vectors.Board": {
        "role": "a RemoteCache class the session under test registers (as a holder)",
        "set_copyable_state(state)": "keeps state, a map",
        "observe_set(key, value)": "sets state[key] = value",
        "as a result": '{"$cache": [cache_id, state]}: the copy, with its current state',
    },
    "board": {
        "role": "a root owning one Cacheable, cache_type \"vectors.Board\", state {\"a\": 1}",
        "board()": "returns the Cacheable",
        "set(key, value)": "sets the key and pushes observer.call_remote(\"set\", key, value) to every copy, then returns nil",
        "stopped()": "returns how many times stopped_observing ran",
    },
}


def _cache_ref(payload: Any) -> msgpack.ExtType:
    return mv._ext(6, payload)


def build() -> list[dict[str, Any]]:
    valid = mv._valid
    bad = mv._bad
    return [
        # ext 6, both forms (§16.1)
        valid("cache ref with state", Answer(1, CacheRef(1, "app.Scoreboard", {"ann": 3, "bob": 4})), features=CACHE),
        valid("cache ref without state", Answer(2, CacheRef(1)), features=CACHE),
        valid("cache ref twice in one answer", Answer(3, [CacheRef(7, "app.Room", ["ann"]), CacheRef(7)]), features=CACHE),
        valid("cache ref with nil state", Answer(4, CacheRef(2, "app.Empty")), features=CACHE),
        valid("cache ref state holding refs", Answer(5, CacheRef(3, "app.Board", [ExportedRef(5), CopyState("app.P", 1)])),
              features=CACHE),
        valid("cache ref in call args", Call(1, 0, "watch", [CacheRef((1 << 63) - 1)], {}), features=CACHE),
        valid("cache ref nested in a copy", Answer(6, CopyState("app.Holder", {"board": CacheRef(4)})), features=CACHE),
        # cache_update (17) and cache_release (18)
        valid("cache_update", CacheUpdate(1, "set_score", ["bob", 5], {}), features=CACHE),
        valid("cache_update with kwargs and refs", CacheUpdate(300, "add_member", [ExportedRef(9)], {"role": "op"}),
              features=CACHE),
        valid("cache_release", CacheRelease(1, 2), features=CACHE),
        valid("cache_release max", CacheRelease((1 << 63) - 1, (1 << 63) - 1), features=["cache", "decrefs"]),
        # not negotiated: unknown, as any reserved number (§3.1, §16.5)
        bad("cache_update not negotiated", [17, 1, "set", [], {}], "UnknownMessageType"),
        bad("cache_release not negotiated", [18, 1, 1], "UnknownMessageType", features=["heartbeat", "decrefs"]),
        bad("cache ref not negotiated", [4, 1, _cache_ref([1])], "UnknownExtCode"),
        bad("message 16 stays reserved", [16, 1], "UnknownMessageType", features=CACHE),
        bad("ext 5 is not cache", [4, 1, mv._ext(5, [1])], "UnknownExtCode", features=CACHE),
        # malformed (§16.1-16.3)
        bad("cache ref payload empty array", [4, 1, _cache_ref([])], "MalformedMessage", features=CACHE),
        bad("cache ref payload of two", [4, 1, _cache_ref([1, "app.X"])], "MalformedMessage", features=CACHE),
        bad("cache ref payload not an array", [4, 1, _cache_ref(1)], "MalformedMessage", features=CACHE),
        bad("cache ref id 0", [4, 1, _cache_ref([0])], "MalformedMessage", features=CACHE),
        bad("cache ref id negative", [4, 1, _cache_ref([-1])], "MalformedMessage", features=CACHE),
        bad("cache ref empty type name", [4, 1, _cache_ref([1, "", None])], "MalformedMessage", features=CACHE),
        bad("cache ref type name not str", [4, 1, _cache_ref([1, 5, None])], "MalformedMessage", features=CACHE),
        bad("cache_update too few fields", [17, 1, "set", []], "MalformedMessage", features=CACHE),
        bad("cache_update empty method", [17, 1, "", [], {}], "MalformedMessage", features=CACHE),
        bad("cache_update id 0", [17, 0, "set", [], {}], "MalformedMessage", features=CACHE),
        bad("cache_update args not array", [17, 1, "set", {}, {}], "MalformedMessage", features=CACHE),
        bad("cache_update kwargs key not str", [17, 1, "set", [], {1: 2}], "MalformedMessage", features=CACHE),
        bad("cache_release count 0", [18, 1, 0], "MalformedMessage", features=CACHE),
        bad("cache_release id 0", [18, 0, 1], "MalformedMessage", features=CACHE),
        bad("cache_release count bool", [18, 1, True], "MalformedMessage", features=CACHE),
        bad("cache_release too many fields", [18, 1, 1, 1], "MalformedMessage", features=CACHE),
    ]


PEER_HELLO_CACHE = sv.peer_hello("cache")


def _cached(*steps: dict[str, Any]) -> list[dict[str, Any]]:
    """Steps after a handshake in which the peer names "cache" (the vectors require it of us)."""
    return sv.opened_with(PEER_HELLO_CACHE, *steps)


def _ask(method: str, *args: Any) -> dict[str, Any]:
    return {"call": {"target": 0, "method": method, "args": list(args), "kwargs": {}}}


def _in(*messages: Any) -> dict[str, Any]:
    return {"in": [sv._m(m) for m in messages]}


def _out(*messages: Any) -> dict[str, Any]:
    return {"out": [m if isinstance(m, dict) else sv._m(m) for m in messages]}


def _cache(cache_id: int, state: Any) -> dict[str, Any]:
    return {"$cache": [cache_id, state]}


def build_session() -> dict[str, Any]:
    """Exchanges of §16, written from the spec: holders (role client) and owners (root board)."""
    vector, OPEN, closed, error, goodbye = sv.vector, sv.OPEN, sv.closed, sv.error, sv.goodbye
    holder = {"role": "client", "root": "none", "requires": ["cache"]}
    owner = {"role": "server", "root": "board", "requires": ["cache"]}
    board = CacheRef(1, "vectors.Board", {"a": 1})
    vectors = [
        vector("cache-holder-state-updates-release",
               "§16.1-16.3: the first ref builds the copy from its state, updates apply in order, a later "
               "ref is the same copy, and letting go releases every ref received in one cache_release.",
               _cached(_ask("board"), _out(Call(1, 0, "board")), _in(Answer(1, board)),
                       {"result": {"call": 0, "value": _cache(1, {"a": 1})}},
                       _in(CacheUpdate(1, "set", ["b", 2]), CacheUpdate(1, "set", ["a", 3])), _out(),
                       _ask("board"), _out(Call(2, 0, "board")), _in(Answer(2, [CacheRef(1), CacheRef(1)])),
                       {"result": {"call": 1, "value": [_cache(1, {"a": 3, "b": 2}), _cache(1, {"a": 3, "b": 2})]}},
                       {"release": "all"}, _out(CacheRelease(1, 3)), OPEN), **holder),
        vector("cache-holder-unregistered-type",
               "§16.1: a type the holder never registered: released at once, the call fails invalid.",
               _cached(_ask("board"), _out(Call(1, 0, "board")),
                       _in(Answer(1, CacheRef(4, "vectors.Nobody", None))), _out(CacheRelease(4, 1)),
                       {"result": {"call": 0, "error_kind": "invalid"}}, OPEN), **holder),
        vector("cache-holder-unknown-id",
               "§16.1, §16.4: [cache_id] for a cache not held: released at once, the call fails invalid.",
               _cached(_ask("board"), _out(Call(1, 0, "board")), _in(Answer(1, CacheRef(9))),
                       _out(CacheRelease(9, 1)), {"result": {"call": 0, "error_kind": "invalid"}}, OPEN), **holder),
        vector("cache-holder-update-unknown",
               "§16.2: an update for a cache not held, or naming a method the class lacks, is dropped; "
               "the connection and the cache stay.",
               _cached(_ask("board"), _out(Call(1, 0, "board")), _in(Answer(1, board)),
                       _in(CacheUpdate(7, "set", ["x", 1]), CacheUpdate(1, "no_such_change", [])),
                       _in(CacheUpdate(1, "set", ["c", 3])), _out(),
                       _ask("board"), _out(Call(2, 0, "board")), _in(Answer(2, CacheRef(1))),
                       {"result": {"call": 1, "value": _cache(1, {"a": 1, "c": 3})}}, OPEN), **holder),
        vector("cache-holder-released-on-disconnect",
               "§10, §16.3: the connection's end releases nothing (the tables are dropped).",
               _cached(_ask("board"), _out(Call(1, 0, "board")), _in(Answer(1, board)), {"eof": True},
                       {"release": "all"}, _out(), closed()), **holder),
        vector("cache-without-feature-update",
               "§16.5: a cache_update from a peer whose hello lacked \"cache\" is an unknown type.",
               sv.opened(_in(CacheUpdate(1, "set", ["a", 1])), _out(goodbye("unimplemented")),
                         closed("unimplemented")), role="client", root="none"),
        vector("cache-without-feature-ref",
               "§16.5: a cache ref in an answer from a peer whose hello lacked \"cache\" is an unknown ext.",
               sv.opened(_ask("board"), _out(Call(1, 0, "board")), {"in_hex": sv.raw([4, 1, _cache_ref([1])])},
                         _out(goodbye("unimplemented")), {"result": {"call": 0, "error_kind": "disconnected"}},
                         closed("unimplemented")), role="client", root="none"),
        vector("cache-bogus-release",
               "§16.3: a cache_release for a cache never sent is logged and ignored.",
               _cached(_in(CacheRelease(3, 1), Call(1, 0, "add", [1, 2])), _out(Answer(1, 3)), OPEN),
               role="server", root="calc", requires=["cache"]),
        vector("cache-owner-state-once",
               "§16.1-16.3: the owner sends the state with the first ref only, pushes updates before the "
               "answers that follow them, stops observing once all refs are released, and drops later updates.",
               _cached(_in(Call(1, 0, "board"), Call(2, 0, "board")),
                       _out(Answer(1, board), Answer(2, CacheRef(1))),
                       _in(Call(3, 0, "set", ["b", 2])), _out(CacheUpdate(1, "set", ["b", 2]), Answer(3, None)),
                       _in(CacheRelease(1, 1), Call(4, 0, "stopped")), _out(Answer(4, 0)),
                       _in(CacheRelease(1, 1), Call(5, 0, "stopped")), _out(Answer(5, 1)),
                       _in(Call(6, 0, "set", ["c", 3])), _out(Answer(6, None)),
                       _in(Call(7, 0, "board")),
                       _out(Answer(7, CacheRef(2, "vectors.Board", {"a": 1, "b": 2, "c": 3}))), OPEN), **owner),
        vector("cache-owner-disconnect",
               "§16.3: the connection's end stops every observer, once.",
               _cached(_in(Call(1, 0, "board")), _out(Answer(1, board)), {"eof": True}, closed()), **owner),
        vector("cache-owner-without-feature",
               "§16.1, §16.5: a Cacheable in an answer to a peer without \"cache\": an unimplemented error.",
               sv.opened(_in(Call(1, 0, "board")), _out(error(1, "unimplemented")), OPEN),
               role="server", root="board"),
    ]
    return sv.session_file(vectors, SESSION_FIXTURES)


def main() -> None:
    mv.write(PATH, build())
    mv.write(SESSION_PATH, build_session())


if __name__ == "__main__":
    main()
