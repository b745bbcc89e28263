"""The costliest frames the decoder's limits allow, and what decoding them costs here.

    .venv/bin/python -m bench.worst_frame            # the default limits (PROTOCOL.md §8)
    .venv/bin/python -m bench.worst_frame --runs 9   # more runs per frame (medians)

Each candidate is a frame at the limits of docs/PROTOCOL.md §8 (frame size, container length,
depth, and the per-frame items, containers, ext values and ext payload bytes of §8.2), built to
be as expensive as possible in one way: many containers, many refs, many copies, costly scalars,
nested payloads. For each, the bench prints the median time ``WireDecoder.decode_body`` takes
(bare, and with a ``resolve`` hook that does roughly what the session does for each ref: an
import entry and a proxy object), the peak memory it allocates (tracemalloc, in a separate run),
and the same frame with one element more, which must be refused (and how far it got). The
figures in PROTOCOL.md §8.2 come from this.

``frames(...)`` is shared with tests/test_wire.py, which checks at small limits that every
candidate is accepted and one element more is refused: work, not time.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import struct
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from broker.messages import (
    DEFAULT_MAX_CONTAINER_LENGTH,
    DEFAULT_MAX_CONTAINERS_PER_FRAME,
    DEFAULT_MAX_EXT_VALUES_PER_FRAME,
    DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_MAX_ITEMS_PER_FRAME,
)
from broker.wire import FrameTooComplex, WireDecoder

__all__ = ["Limits", "frames", "main"]


class Limits:
    """The limits the candidates are built for (the defaults unless told)."""

    def __init__(
        self,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        max_container_length: int = DEFAULT_MAX_CONTAINER_LENGTH,
        max_items_per_frame: int = DEFAULT_MAX_ITEMS_PER_FRAME,
        max_containers_per_frame: int = DEFAULT_MAX_CONTAINERS_PER_FRAME,
        max_ext_values_per_frame: int = DEFAULT_MAX_EXT_VALUES_PER_FRAME,
    ) -> None:
        self.max_frame_size = max_frame_size
        self.max_container_length = max_container_length
        self.max_items_per_frame = max_items_per_frame
        self.max_containers_per_frame = max_containers_per_frame
        self.max_ext_values_per_frame = max_ext_values_per_frame

    def decoder(self, resolve: Callable[[Any], Any] | None = None) -> WireDecoder:
        return WireDecoder(
            expect_hello=False,
            resolve=resolve,
            max_frame_size=self.max_frame_size,
            max_container_length=self.max_container_length,
            max_items_per_frame=self.max_items_per_frame,
            max_containers_per_frame=self.max_containers_per_frame,
            max_ext_values_per_frame=self.max_ext_values_per_frame,
        )


def _array(elements: list[bytes]) -> bytes:
    n = len(elements)
    if n < 16:
        header = bytes([0x90 | n])
    elif n < 1 << 16:
        header = b"\xdc" + struct.pack(">H", n)
    else:
        header = b"\xdd" + struct.pack(">I", n)
    return header + b"".join(elements)


def _bin(data: bytes) -> bytes:
    return b"\xc6" + struct.pack(">I", len(data)) + data


def _ext_any(code: int, payload: bytes) -> bytes:
    if len(payload) == 1:
        return bytes([0xD4, code]) + payload
    if len(payload) < 256:
        return bytes([0xC7, len(payload), code]) + payload
    if len(payload) < 1 << 16:
        return b"\xc8" + struct.pack(">Hb", len(payload), code) + payload
    return b"\xc9" + struct.pack(">Ib", len(payload), code) + payload


def _answer(value: bytes) -> bytes:
    """An answer body ``[4, 1, value]``: 3 items and 1 container of the budget."""
    return b"\x93\x04\x01" + value


#: Elements, as msgpack bytes.
_FLOAT = b"\xcb" + struct.pack(">d", 1.5)
_UINT64 = b"\xcf" + struct.pack(">Q", 1 << 63)
_EMPTY_ARRAY = b"\x90"
_EMPTY_MAP = b"\x80"
_SMALL_MAP = b"\x81\x01\x02"  # {1: 2}: 2 more items


def _ref(i: int) -> bytes:
    """A sender ref to a distinct object id (ids from 1, the costliest kind for a session)."""
    if i < 128:
        payload = bytes([i])
    elif i < 1 << 16:
        payload = b"\xcd" + struct.pack(">H", i)
    else:
        payload = b"\xce" + struct.pack(">I", i)
    return _ext_any(1, payload)


_COPY = _ext_any(3, b"\x92\xa1t\xc0")  # copy ["t", nil]: 1 container, 2 items, 1 ext value


def _fill(limits: Limits, head: list[bytes], head_items: int, head_containers: int, scalar: bytes) -> list[bytes]:
    """``head`` then as many ``scalar``s as the item, length and size budgets allow."""
    # The body [4, 1, X] is 3 items and a container, X itself a container.
    items_left = limits.max_items_per_frame - 3 - head_items
    assert items_left >= 0 and head_containers + 2 <= limits.max_containers_per_frame
    room = limits.max_frame_size - 16 - sum(map(len, head))
    n = min(items_left, limits.max_container_length - len(head), room // len(scalar))
    return head + [scalar] * max(n, 0)


def frames(limits: Limits | None = None) -> dict[str, bytes]:
    """The candidates: name → body, each within ``limits`` and at them in some way."""
    limits = limits or Limits()
    c = limits.max_containers_per_frame - 2  # containers left besides the body and X
    e = limits.max_ext_values_per_frame
    out: dict[str, bytes] = {}
    # Many containers: empty arrays, then the items left as costly scalars.
    out["empty arrays + floats"] = _answer(_array(_fill(limits, [_EMPTY_ARRAY] * c, c, c, _FLOAT)))
    out["empty maps + uint64"] = _answer(_array(_fill(limits, [_EMPTY_MAP] * c, c, c, _UINT64)))
    small = min(c, (limits.max_items_per_frame - 3) // 3)
    out["maps {1: 2}"] = _answer(_array(_fill(limits, [_SMALL_MAP] * small, 3 * small, small, _FLOAT)))
    # Many ext values: distinct sender refs (a session makes a proxy for each), copies.
    refs = [_ref(i + 1) for i in range(e)]
    out["distinct refs + empty arrays + floats"] = _answer(
        _array(_fill(limits, refs + [_EMPTY_ARRAY] * c, e + c, c, _FLOAT))
    )
    copies = min(e, c)
    out["copies + empty arrays + floats"] = _answer(
        _array(_fill(limits, [_COPY] * copies + [_EMPTY_ARRAY] * (c - copies), c + 2 * copies, c, _FLOAT))
    )
    # Scalars only: the item budget spent on the costliest scalar.
    out["uint64 only"] = _answer(_array(_fill(limits, [], 0, 0, _UINT64)))
    # Bytes: one copy holding a bin as big as the payload budget allows (payloads counted twice
    # would be amplified without the payload-bytes limit: nested copies re-decode their bytes).
    size = limits.max_frame_size - 64
    inner = _ext_any(3, b"\x92\xa1t" + _bin(b"\x00" * (size // 2 - 16)))
    out["copy in a copy, big state"] = _answer(_ext_any(3, b"\x92\xa1t" + inner))
    out["bin, whole frame"] = _answer(_bin(b"\x00" * (limits.max_frame_size - 16)))
    for name, body in out.items():
        assert len(body) <= limits.max_frame_size, name
    return out


class _Proxy:
    __slots__ = ("object_id", "__weakref__")

    def __init__(self, object_id: int) -> None:
        self.object_id = object_id


def session_like_resolve() -> Callable[[Any], Any]:
    """Roughly the session's work per ref: count the import, make (or find) its proxy."""
    counts: dict[int, int] = {}
    proxies: dict[int, _Proxy] = {}

    def resolve(value: Any) -> Any:
        object_id = getattr(value, "object_id", None)
        if object_id is None:
            return value
        counts[object_id] = counts.get(object_id, 0) + 1
        proxy = proxies.get(object_id)
        if proxy is None:
            proxy = proxies[object_id] = _Proxy(object_id)
        return proxy

    return resolve


def _time(body: bytes, limits: Limits, resolve: bool, runs: int) -> float:
    times = []
    for _ in range(runs):
        decoder = limits.decoder(session_like_resolve() if resolve else None)
        gc.collect()
        start = time.perf_counter()
        message = decoder.decode_body(body)
        times.append(time.perf_counter() - start)
        del message
    return statistics.median(times)


def _peak(body: bytes, limits: Limits) -> int:
    decoder = limits.decoder()
    gc.collect()
    tracemalloc.start()
    message = decoder.decode_body(body)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del message
    return peak


def _over(body: bytes, limits: Limits) -> str:
    """Decode ``body`` under limits one lower than it needs: refused, and how fast."""
    decoder = limits.decoder()
    decoder.decode_body(body)
    used = {
        "max_items_per_frame": decoder._items,
        "max_containers_per_frame": decoder._containers,
        "max_ext_values_per_frame": decoder._ext_values,
    }
    name, count = max(used.items(), key=lambda kv: kv[1] / getattr(limits, kv[0]))
    if count < getattr(limits, name):
        return "-"
    tighter = Limits(**{**vars(limits), name: count - 1})
    start = time.perf_counter()
    try:
        tighter.decoder().decode_body(body)
    except FrameTooComplex:
        return f"{name} {count - 1}: refused in {1000 * (time.perf_counter() - start):.1f} ms"
    return f"{name} {count - 1}: NOT refused"


def refused_frames(limits: Limits | None = None) -> dict[str, bytes]:
    """Frames within the frame size and container length but far over the per-frame limits."""
    limits = limits or Limits()
    n = limits.max_container_length
    k = (limits.max_frame_size - 64) // (n + 5)
    many = (limits.max_frame_size - 64) // (3 * n + 5)
    return {
        f"{k} x {n} empty arrays": _answer(_array([_array([_EMPTY_ARRAY] * n)] * k)),
        f"{many} x {n} refs": _answer(_array([_array([_ref(5)] * n)] * many)),
    }


def _refused(body: bytes, limits: Limits) -> str:
    start = time.perf_counter()
    try:
        limits.decoder().decode_body(body)
    except FrameTooComplex as exc:
        return f"refused in {1000 * (time.perf_counter() - start):.1f} ms ({exc})"
    return "NOT refused"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    limits = Limits()
    print(f"python {sys.version.split()[0]}, limits: {vars(limits)}")
    print(f"{'frame':40s} {'MiB':>6s} {'bare ms':>8s} {'resolve ms':>10s} {'peak MiB':>9s}  one below the count it needs")
    for name, body in frames(limits).items():
        bare = _time(body, limits, False, args.runs)
        resolved = _time(body, limits, True, args.runs)
        peak = _peak(body, limits)
        print(
            f"{name:40s} {len(body) / 2**20:6.2f} {1000 * bare:8.1f} {1000 * resolved:10.1f} "
            f"{peak / 2**20:9.1f}  {_over(body, limits)}",
            flush=True,
        )
    for name, body in refused_frames(limits).items():
        print(f"{name:40s} {len(body) / 2**20:6.2f}  {_refused(body, limits)}", flush=True)


if __name__ == "__main__":
    main()
