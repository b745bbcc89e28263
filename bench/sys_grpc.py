"""gRPC's asyncio API (grpcio), no code generation: generic handlers with msgpack bodies.

The server is ``grpc.aio.server()`` with one ``method_handlers_generic_handler`` whose
unary-unary handlers (de)serialize requests and responses with msgpack packb/unpackb, so the
bodies are the same msgpack as the floors' and no .proto is compiled. The client calls
``channel.unary_unary(...)`` multicallables on a ``grpc.aio`` channel. B keeps 100 calls in
flight as 100 asyncio tasks on one channel (HTTP/2 streams over one connection); E opens one
channel per connection with a local subchannel pool so no two channels share a connection.
"""

from __future__ import annotations

from typing import Any

from bench.common import BLOB, SMALL_DICTS, Cfg, EResult, Sample, async_e, async_pipelined, async_sequential, ready

NAME = "grpc"
LABEL = "gRPC aio"
SCENARIOS = "ABCDE"
IDIOMS = {
    "B": "100 asyncio tasks awaiting unary calls on one channel",
    "E": "1 asyncio loop per client process, a channel (own subchannel pool) and coroutine per connection",
}
NOTES = [
    "gRPC aio: generic handlers (`grpc.method_handlers_generic_handler`) with msgpack packb/unpackb as "
    "request/response (de)serializers, so no code generation; message size limits raised to 128 MiB.",
]

__all__ = ["NAME", "LABEL", "SCENARIOS", "IDIOMS", "NOTES", "unavailable", "version", "serve", "client", "e_client"]

SERVICE = "bench.Calc"
_MAX = 128 * 2**20
OPTIONS = [("grpc.max_receive_message_length", _MAX), ("grpc.max_send_message_length", _MAX)]


def unavailable() -> str | None:
    try:
        import grpc  # noqa: F401
        import grpc.aio  # noqa: F401
        import msgpack  # noqa: F401
    except ImportError as e:
        return f"not installed ({e})"
    return None


def version() -> str:
    import grpc

    return grpc.__version__


def _unpack(b: bytes) -> Any:
    import msgpack

    return msgpack.unpackb(b)


def serve() -> None:
    import asyncio

    import grpc
    import msgpack

    async def add(req: Any, _ctx: Any) -> Any:
        return req[0] + req[1]

    async def echo(req: Any, _ctx: Any) -> Any:
        return req

    def h(f: Any) -> Any:
        return grpc.unary_unary_rpc_method_handler(f, request_deserializer=_unpack, response_serializer=msgpack.packb)

    async def main() -> None:
        server = grpc.aio.server(options=OPTIONS)
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {"add": h(add), "echo": h(echo)}),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        ready(port)
        await server.wait_for_termination()

    asyncio.run(main())


def _channel(port: int, own_pool: bool = False) -> Any:
    import grpc

    opts = list(OPTIONS) + ([("grpc.use_local_subchannel_pool", 1)] if own_pool else [])
    return grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=opts)


def _stubs(channel: Any) -> tuple[Any, Any]:
    import msgpack

    add = channel.unary_unary(f"/{SERVICE}/add", request_serializer=msgpack.packb, response_deserializer=_unpack)
    echo = channel.unary_unary(f"/{SERVICE}/echo", request_serializer=msgpack.packb, response_deserializer=_unpack)
    return add, echo


def _gather(coros: list[Any]) -> Any:
    import asyncio

    return asyncio.gather(*coros)


def client(scenario: str, port: int, cfg: Cfg) -> Sample:
    import asyncio

    async def main() -> Sample:
        async with _channel(port) as ch:
            add, echo = _stubs(ch)
            call = {"A": lambda: add((1, 2)), "B": lambda: add((1, 2)), "C": lambda: echo(BLOB),
                    "D": lambda: echo(SMALL_DICTS)}[scenario]
            if scenario == "B":
                await async_pipelined(call, cfg.warmup, cfg.pipeline, _gather)
                return await async_pipelined(call, cfg.duration, cfg.pipeline, _gather)
            await async_sequential(call, cfg.warmup, False)
            return await async_sequential(call, cfg.duration, scenario == "A")

    return asyncio.run(asyncio.wait_for(main(), cfg.warmup + cfg.duration + cfg.scenario_timeout))


def e_client(port: int, nconn: int, cfg: Cfg) -> EResult:
    import asyncio

    async def main() -> EResult:
        async def open_conn() -> Any:
            add, _echo = _stubs(_channel(port, own_pool=True))
            return lambda: add((1, 2))

        return await async_e(open_conn, nconn, cfg, _gather)

    return asyncio.run(main())
