"""Write the checked-in seed corpus, ``fuzz/corpus/<target>/``: a few valid inputs per target.

Run ``python -m fuzz.make_seeds`` (from the repository root) after changing an input layout or
``tests/vectors/wire.json``; it rewrites every seed directory from scratch. Seeds are named
after what they hold, so a diff says what changed. Each target's docstring describes its input
layout (most start with a control byte, see ``fuzz/_util.py``).
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import sys
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
VECTORS = ROOT / "tests" / "vectors" / "wire.json"


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60]


def wire_seeds() -> Iterable[tuple[str, bytes]]:
    from broker import wire
    from broker.messages import Answer, Call, Cancel, Decref, Goodbye

    vectors = json.loads(VECTORS.read_text())
    stream = []
    for vector in vectors:
        frame = bytes.fromhex(vector["hex"])
        handshake = 0x80 if vector.get("handshake") else 0
        small = 0x40 if vector.get("limits") else 0
        kind = "valid" if "message" in vector else "invalid"
        yield f"{kind}-{_slug(vector['name'])}", bytes([handshake | small]) + frame
        if "message" in vector and not handshake and not vector.get("limits"):
            stream.append(frame)
    hello = bytes.fromhex(vectors[0]["hex"])
    body = b"".join(stream)
    yield "stream-hello-then-every-valid-vector-split", bytes([0x80 | 0x03]) + hello + body
    yield "stream-every-valid-vector-drained-by-messages", bytes([0x20 | 0x07]) + body
    yield "stream-every-valid-vector-zero-copy-split", bytes([0x10 | 0x05]) + body
    few = b"".join(wire.encode(m) for m in (Call(1, 0, "echo", [1, [2, {"k": b"v"}]], {"a": 1.5}, 0),
                                             Answer(1, None), Cancel(2), Decref(3, 1), Goodbye("normal", "")))
    yield "stream-few-messages-truncated", bytes([0x01]) + few[:-3]


def session_seeds() -> Iterable[tuple[str, bytes]]:
    from broker import wire
    from broker.messages import (
        Answer, Call, Cancel, CopyState, Decref, Error, ExportedRef, FailureInfo, Goodbye, Hello,
        ReturnedRef,
    )

    def frames(*messages: object) -> bytes:
        return b"".join(wire.encode(m) for m in messages)  # type: ignore[arg-type]

    hello = frames(Hello(1, 1 << 24, 64, 1 << 20, ()))
    point = CopyState("fuzz.Point", {"x": 1, "y": 2})
    calls = {
        "echo": Call(1, 0, "echo", ["hi"], {}, 0),
        "add-kwargs": Call(2, 0, "add", [1], {"b": 2}, 0),
        "fail": Call(3, 0, "fail", ["no"], {}, 0),
        "later": Call(4, 0, "later", [[1, 2]], {}, 0),
        "coro": Call(5, 0, "coro", [b"x"], {}, 0),
        "one-way": Call(0, 0, "echo", [1], {}, 1),
        "unknown-method": Call(6, 0, "nothing", [], {}, 0),
        "unknown-object": Call(7, 99, "echo", [], {}, 0),
        "copy-in": Call(8, 0, "give_back", [point], {}, 0),
        "copy-out": Call(9, 0, "point", [3, 4], {}, 0),
    }
    for name, call in calls.items():
        yield f"call-{name}", bytes([0]) + frames(call)
    yield "counter-then-call-it-then-release", bytes([0x03]) + frames(
        Call(1, 0, "counter", [], {}, 0), Call(2, 1, "incr", [5], {}, 0), Decref(1, 1))
    yield "hang-then-cancel", bytes([0]) + frames(Call(1, 0, "hang", [], {}, 0), Cancel(1))
    yield "call-back-into-peer", bytes([0]) + frames(
        Call(1, 0, "call_back", [ExportedRef(1), "echo", 7], {}, 0), Answer(3, "back"))
    yield "give-back-their-own-ref", bytes([0]) + frames(
        Answer(2, ExportedRef(5)), Call(1, 0, "give_back", [ReturnedRef(1)], {}, 0))
    yield "answer-and-error-our-questions", bytes([0x05]) + frames(
        Answer(1, [1, {"a": ExportedRef(4)}]),
        Error(2, FailureInfo("failed", "builtins.ValueError", "bad", None)))
    yield "remote-failure-value", bytes([0]) + frames(
        Answer(1, FailureInfo("overloaded", "x.Y", "busy", "tb")))
    yield "goodbye", bytes([0]) + frames(Goodbye("normal", "bye"))
    yield "raw-handshake-then-call", bytes([0x80]) + hello + frames(Call(1, 0, "echo", [1], {}, 0))
    yield "raw-second-hello", bytes([0x80 | 0x02]) + hello + hello
    yield "small-limits-many-calls", bytes([0x20]) + frames(
        *(Call(i, 0, "hang", [], {}, 0) for i in range(1, 7)))
    yield "end-of-stream-mid-frame", bytes([0x40]) + frames(Call(1, 0, "echo", [1], {}, 0))[:-2]


def scram_seeds() -> Iterable[tuple[str, bytes]]:
    from fuzz import fuzz_scram as s

    yield "0-client-first-rfc7677", b"\x00" + s.CLIENT_FIRST.encode()
    yield "0-client-first-escaped-name-y-flag", b"\x00" + "y,,n=a=2Cb=3Dc,r=abc".encode()
    yield "0-client-first-unicode-name", b"\x00" + "n,,n=I\u00adX\u2168,r=nonce".encode()
    yield "1-client-final-rfc7677", b"\x01" + s.CLIENT_FINAL.encode()
    yield "1-client-final-extension", b"\x01" + s.CLIENT_FINAL.replace(",p=", ",x=ext,p=").encode()
    yield "2-server-first-rfc7677", b"\x02" + s.SERVER_FIRST.encode()
    yield "2-server-first-mandatory-extension", b"\x02" + ("m=x," + s.SERVER_FIRST).encode()
    yield "3-server-final-rfc7677", b"\x03" + s.SERVER_FINAL.encode()
    yield "3-server-final-error", b"\x03" + b"e=invalid-proof"


def userfile_seeds() -> Iterable[tuple[str, bytes]]:
    from cred.scram import ScramVerifier
    from cred.userfile import format_user_file

    users = {
        "alice": ScramVerifier.from_password("wonderland", salt=b"0123456789abcdef", iterations=4096),
        "b\u00e9atrice": ScramVerifier.from_password("pw", salt=b"salt", iterations=1),
    }
    text = format_user_file(users)
    yield "two-users", text.encode()
    yield "comments-blank-lines-crlf", ("# a comment\r\n\r\n" + text.replace("\n", "\r\n") + "\n   \n").encode()
    yield "one-line-no-newline", text.splitlines()[1].encode()


def framers_seeds() -> Iterable[tuple[str, bytes]]:
    lines = b"hello\r\nraw\r\nraw bytes!after raw\r\npause\r\nmore\r\n" + b"x" * 70 + b"\r\n"
    yield "lines-whole", bytes([0 << 5]) + lines
    yield "lines-split", bytes([0 << 5 | 0x0B]) + lines
    for which, prefix in ((1, "!I"), (2, "!H"), (3, "!B")):
        stream = b"".join(struct.pack(prefix, len(s)) + s for s in (b"", b"one", b"two" * 20))
        yield f"strings-{prefix[1]}-split", bytes([which << 5 | 0x06]) + stream
        yield f"strings-{prefix[1]}-over-limit", bytes([which << 5]) + struct.pack(prefix, 201) + b"x"


SEEDS = {
    "wire": wire_seeds,
    "session": session_seeds,
    "scram": scram_seeds,
    "userfile": userfile_seeds,
    "framers": framers_seeds,
}


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(ROOT))
    targets = (argv if argv is not None else sys.argv[1:]) or list(SEEDS)
    for target in targets:
        directory = CORPUS / target
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        count = 0
        for name, data in SEEDS[target]():
            path = directory / name
            assert not path.exists(), f"two seeds named {name}"
            path.write_bytes(data)
            count += 1
        print(f"{directory.relative_to(ROOT)}: {count} seeds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
