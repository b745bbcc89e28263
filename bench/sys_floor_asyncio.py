"""Floor: raw asyncio Protocol speaking length-prefixed msgpack, no RPC layer at all.

Frames are a 4-byte big-endian length then msgpack: requests `[id, method, args]`,
replies `[id, result]`.  Whatever pbroker does beyond this (references, errors,
Deferreds, flow control) is overhead to be measured against this floor.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any, Callable

from bench.common import BLOB, SMALL_DICTS, Cfg, EResult, Sample, chain_pipelined, e_sync, ready

NAME = "floor_asyncio"
LABEL = "floor: asyncio"
SCENARIOS = "ABCDE"
IDIOMS = {
    "B": "100 calls in flight on one connection; each reply callback issues the next, writes coalesced per read",
    "E": "1 event loop per client process, a coroutine per connection",
}
NOTES = [
    "floor: asyncio's C figure is dominated by glibc malloc handing each 1 MiB buffer back to the kernel and "
    "page-faulting a fresh one in (measured here: ~60 MB/s → ~360 MB/s with MALLOC_MMAP_THRESHOLD_=32 MiB); "
    "no system is run with malloc tuning.",
]

__all__ = ["NAME", "LABEL", "SCENARIOS", "IDIOMS", "NOTES", "unavailable", "version", "serve", "client", "e_client"]

HANDLERS: dict[str, Any] = {"add": lambda a, b: a + b, "echo": lambda x: x}


def unavailable() -> str | None:
    try:
        import msgpack  # noqa: F401
    except ImportError as e:
        return f"not installed ({e})"
    return None


def version() -> str:
    import msgpack

    return "msgpack " + ".".join(map(str, msgpack.version))


class Framed(asyncio.BufferedProtocol):
    """Splits the byte stream into frames and hands each decoded message to `on_message`.

    A BufferedProtocol so the kernel copies straight into our buffer: small
    frames are parsed out of one growing buffer, a frame too big for it gets a
    buffer of its own size and is received into in place (scenario C).
    """

    def __init__(self) -> None:
        import msgpack

        self._unpackb = msgpack.unpackb
        self._packb = msgpack.packb
        self.buf = bytearray(16 * 1024)
        self.start = 0  # unparsed data is buf[start:end]
        self.end = 0
        self.big: bytearray | None = None  # a large frame being received in place
        self.big_got = 0
        self._out: list[bytes] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def get_buffer(self, sizehint: int) -> memoryview:
        if self.big is not None:
            return memoryview(self.big)[self.big_got :]
        if self.end == len(self.buf):  # full: slide the unparsed tail to the front, or grow
            if self.start:
                n = self.end - self.start
                self.buf[:n] = self.buf[self.start : self.end]
                self.start, self.end = 0, n
            else:
                self.buf.extend(bytes(len(self.buf)))
        return memoryview(self.buf)[self.end :]

    def buffer_updated(self, nbytes: int) -> None:
        self._out = []  # replies/requests made while handling this read go out in one write
        try:
            if self.big is not None:
                self.big_got += nbytes
                if self.big_got == len(self.big):
                    big, self.big = self.big, None
                    self.on_message(self._unpackb(big))
                return
            self.end += nbytes
            self._parse()
        finally:
            out, self._out = self._out, None
            if out:
                assert self.transport is not None
                self.transport.writelines(out)

    def _parse(self) -> None:
        buf, start, end = self.buf, self.start, self.end
        with memoryview(buf) as view:
            while end - start >= 4:
                n = int.from_bytes(view[start : start + 4], "big")
                have = end - start - 4
                if have < n:
                    if n > len(buf) // 2:  # large frame: receive the rest straight into its own buffer
                        self.big = bytearray(n)
                        self.big[:have] = view[start + 4 : end]
                        self.big_got = have
                        start = end
                    break
                msg = self._unpackb(view[start + 4 : start + 4 + n])
                start += 4 + n
                self.on_message(msg)
        if start == end:
            start = end = 0
        self.start, self.end = start, end

    def send(self, msg: Any) -> None:
        body = self._packb(msg)
        if self._out is not None:
            self._out += (len(body).to_bytes(4, "big"), body)
        else:
            assert self.transport is not None
            self.transport.writelines((len(body).to_bytes(4, "big"), body))

    def on_message(self, msg: Any) -> None:
        raise NotImplementedError


class ServerProto(Framed):
    def on_message(self, msg: Any) -> None:
        rid, method, args = msg
        self.send([rid, HANDLERS[method](*args)])


class ClientProto(Framed):
    """Matches replies to callbacks by request id; `call` wraps that in a future for coroutines."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting: dict[int, Callable[[Any], None]] = {}
        self.ids = itertools.count()
        self.broken: Exception | None = None

    def on_message(self, msg: Any) -> None:
        rid, result = msg
        self.waiting.pop(rid)(result)

    def connection_lost(self, exc: Exception | None) -> None:
        self.broken = ConnectionError("connection lost")
        waiting, self.waiting = self.waiting, {}
        for cb in waiting.values():
            cb(self.broken)

    def call_cb(self, method: str, args: tuple[Any, ...], cb: Callable[[Any], None]) -> None:
        if self.broken:
            raise self.broken
        rid = next(self.ids)
        self.waiting[rid] = cb
        self.send([rid, method, args])

    def call(self, method: str, *args: Any) -> "asyncio.Future[Any]":
        fut = asyncio.get_running_loop().create_future()

        def settle(result: Any) -> None:
            if not fut.done():
                if isinstance(result, ConnectionError):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)

        self.call_cb(method, args, settle)
        return fut


def serve() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(ServerProto, "127.0.0.1", 0, backlog=1024)
        ready(server.sockets[0].getsockname()[1])
        await asyncio.Future()

    asyncio.run(main())


async def _connect(port: int) -> ClientProto:
    _t, proto = await asyncio.get_running_loop().create_connection(ClientProto, "127.0.0.1", port)
    return proto


async def _sequential(proto: ClientProto, method: str, args: tuple[Any, ...], seconds: float, record: bool) -> Sample:
    lat: list[int] = []
    pc = time.perf_counter_ns
    t0 = pc()
    end = t0 + int(seconds * 1e9)
    now, n = t0, 0
    while now < end:
        await proto.call(method, *args)
        t = pc()
        if record:
            lat.append(t - now)
        now, n = t, n + 1
    return Sample(n, (now - t0) / 1e9, lat)


async def _pipelined(proto: ClientProto, seconds: float, window: int) -> Sample:
    """Keep `window` calls in flight; each reply's callback issues the next (no task per call)."""
    done: asyncio.Future[Sample] = asyncio.get_running_loop().create_future()

    def call(cb: Callable[[Any, int], None], sent: int) -> None:
        proto.call_cb("add", (1, 2), lambda r: cb(r, sent))

    chain_pipelined(call, seconds, window, done.set_result)
    return await done


def client(scenario: str, port: int, cfg: Cfg) -> Sample:
    async def main() -> Sample:
        proto = await _connect(port)
        if scenario == "B":
            await _pipelined(proto, cfg.warmup, cfg.pipeline)
            return await _pipelined(proto, cfg.duration, cfg.pipeline)
        method, args = {"A": ("add", (1, 2)), "C": ("echo", (BLOB,)), "D": ("echo", (SMALL_DICTS,))}[scenario]
        await _sequential(proto, method, args, cfg.warmup, False)
        return await _sequential(proto, method, args, cfg.duration, scenario == "A")

    return asyncio.run(asyncio.wait_for(main(), cfg.warmup + cfg.duration + cfg.scenario_timeout))


def e_client(port: int, nconn: int, cfg: Cfg) -> EResult:
    res = EResult()

    async def main() -> None:
        gate = asyncio.Semaphore(cfg.e_connect_concurrency)

        async def open_one() -> ClientProto:
            async with gate:
                proto = await _connect(port)
                await proto.call("add", 1, 2)
                return proto

        outcomes = await asyncio.gather(
            *(asyncio.wait_for(open_one(), cfg.e_connect_timeout) for _ in range(nconn)), return_exceptions=True
        )
        protos = [p for p in outcomes if isinstance(p, ClientProto)]
        e_sync(len(protos), nconn - len(protos))
        ok = [0]
        last = [0.0]

        async def calls(proto: ClientProto) -> None:
            for _ in range(cfg.e_calls):
                await proto.call("add", 1, 2)
                ok[0] += 1
            last[0] = time.monotonic()

        res.t_start = time.monotonic()
        try:
            await asyncio.wait_for(
                asyncio.gather(*(calls(p) for p in protos), return_exceptions=True), cfg.e_call_timeout
            )
        except asyncio.TimeoutError:
            res.error = "call timeout"
        res.t_end = last[0] or time.monotonic()
        res.ok = ok[0]
        res.failed = nconn * cfg.e_calls - ok[0]

    asyncio.run(main())
    return res
