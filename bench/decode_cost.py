"""What decoding one message costs ``WireDecoder.decode_body``, per workload (issue 13).

    .venv/bin/python -m bench.decode_cost                      # broker/wire.py as it is
    .venv/bin/python -m bench.decode_cost --wire OLD_WIRE.PY   # another version of it, to compare

Prints the best of 5 runs (microseconds per message) for: a call with scalar args, an answer
with 1,000 small dicts ``{"a": 1, "b": "x"}``, a 1 MiB bytes answer, the frames at the per-frame
limits of bench.worst_frame, and the raw ``msgpack.unpackb`` of the same body (the floor). Then
frames carrying ext values (references, copies): 1,000 dicts each with a reference, a list of
1,000 references, 1,000 small copies, a call with one reference, each bare and with a ``resolve``
hook (a function call per value, as the session's). Then how long refusing hostile frames takes:
a 200,000-deep list, a 10^6-element array, and the same with references in them. Timing only: no
test depends on these figures.
"""

from __future__ import annotations

import argparse
import importlib.util
import struct
import sys
import time
import timeit
from types import ModuleType
from typing import Any

import msgpack

from broker.messages import Answer, Call, CopyState, ExportedRef

from . import worst_frame


def _load(path: str | None) -> ModuleType:
    if path is None:
        from broker import wire

        return wire
    spec = importlib.util.spec_from_file_location("broker._wire_compared", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _floor(body: bytes) -> float:
    options: dict[str, Any] = dict(raw=False, strict_map_key=False, ext_hook=lambda c, d: (c, d))
    return _best(lambda: msgpack.unpackb(body, **options), body)


def _best(fn: Any, body: bytes) -> float:
    number = max(1, min(2000, 2_000_000 // max(len(body), 1)))
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def _resolve(value: Any) -> Any:
    """A resolve hook that costs what a call does, and keeps the value."""
    return value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wire", help="path of a broker/wire.py to measure instead")
    args = parser.parse_args(argv)
    wire = _load(args.wire)
    body = lambda message: wire.encode(message)[4:]  # noqa: E731
    cases = {
        "call, scalar args": body(Call(7, 3, "method", [1, "two", 3.0, None], {"x": 1}, 0)),
        "answer, 1,000 small dicts": body(Answer(1, [{"a": 1, "b": "x"} for _ in range(1000)])),
        "answer, 1 MiB bytes": body(Answer(1, b"\0" * (1 << 20))),
    }
    for name in ("empty arrays + floats", "maps {1: 2}", "distinct refs + empty arrays + floats"):
        cases[f"limits: {name}"] = worst_frame.frames()[name]
    with_exts = {
        "answer, 1,000 dicts each with a ref": body(
            Answer(1, [{"a": 1, "ref": ExportedRef(i)} for i in range(1000)])
        ),
        "answer, list of 1,000 refs": body(Answer(1, [ExportedRef(i) for i in range(1000)])),
        "answer, 1,000 copies {x, y}": body(
            Answer(1, [CopyState("Point", {"x": i, "y": 2}) for i in range(1000)])
        ),
        "call, one ref arg": body(Call(7, 3, "method", [ExportedRef(5)], {}, 0)),
    }
    cases.update(with_exts)
    for name in with_exts:
        cases[f"{name} + resolve"] = with_exts[name]
    print(f"{'workload':44} {'bytes':>9} {'decode µs':>11} {'msgpack µs':>11} {'ratio':>6}")
    for name, data in cases.items():
        decoder = wire.WireDecoder(expect_hello=False, resolve=_resolve if name.endswith(" + resolve") else None)
        cost = _best(lambda: decoder.decode_body(data), data)
        floor = _floor(data)
        print(f"{name:44} {len(data):9} {cost:11.1f} {floor:11.1f} {floor / cost:6.2f}")
    deep = b"\x93\x04\x01" + b"\x91" * 200_000 + b"\xc0"
    long = b"\x93\x04\x01\xdd" + struct.pack(">I", 10**6) + b"\x01" * 10**6
    ref = b"\xd4\x01\x05"  # fixext 1: a sender ref to object 5
    deep_refs = b"\x93\x04\x01" + (b"\x92" + ref) * 200_000 + b"\xc0"
    long_refs = b"\x93\x04\x01\xdd" + struct.pack(">I", 10**6) + ref * 10**6
    for name, data in (
        ("refuse a 200,000-deep list", deep),
        ("refuse a 10^6-element array", long),
        ("refuse a 200,000-deep list, a ref each level", deep_refs),
        ("refuse a 10^6-element array of refs", long_refs),
    ):
        decoder = wire.WireDecoder(expect_hello=False)
        start = time.perf_counter()
        try:
            decoder.decode_body(data)
        except wire.RemoteProtocolError as exc:
            error = type(exc).__name__
        else:
            error = "accepted!"
        print(f"{name:44} {len(data):9} {(time.perf_counter() - start) * 1e3:10.2f} ms  {error}")


if __name__ == "__main__":
    main()
