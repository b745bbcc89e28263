"""The echo server from the classic Twisted talk, on net: the whole server is ``Echo`` below.

    .venv/bin/python examples/echo.py server [ENDPOINT]             # default tcp:8000:interface=127.0.0.1
    .venv/bin/python examples/echo.py client [ENDPOINT] MESSAGE...  # default tcp:127.0.0.1:8000
    .venv/bin/python examples/echo.py demo                          # both in one process, over loopback

Each mode is a coroutine run by ``net.react``: a fresh reactor from ``make_reactor()`` (so
``PBROKER_REACTOR=asyncio``, say, picks the backend), exit status 0 when it is done, 1 with the
error, and Ctrl-C (130) or SIGTERM (0) stop the server cleanly.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from net.basic import LineReceiver
from net.defer import Deferred, Failure
from net.endpoints import client, server
from net.error import NetError
from net.protocol import ClientFactory, Factory, Protocol
from net.react import react

__all__ = ["Echo", "EchoFactory", "LoggingEcho", "EchoClient"]
__all__ += ["serve", "serve_forever", "talk", "demo", "echo_main", "main"]

SERVER_ENDPOINT = "tcp:8000:interface=127.0.0.1"  # loopback only; "tcp:8000" would listen everywhere
CLIENT_ENDPOINT = "tcp:127.0.0.1:8000"


class Echo(Protocol):
    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


class EchoFactory(Factory):
    protocol = Echo


class LoggingEcho(Echo):
    """Echo that first says what it heard (as lines: that is what our client sends)."""

    def data_received(self, data: bytes) -> None:
        for line in data.decode(errors="replace").splitlines():
            print(f"server <- {line!r}", flush=True)
        super().data_received(data)


class EchoClient(LineReceiver):
    """Sends lines; :meth:`echo` returns a Deferred of the reply, for callers to await."""

    def connection_made(self, transport: Any) -> None:
        self.waiting: list[Deferred[str]] = []
        self.closed: Deferred[None] = Deferred()

    def echo(self, message: str) -> Deferred[str]:
        print(f"client -> {message!r}", flush=True)
        self.send_line(message.encode())
        reply: Deferred[str] = Deferred()
        self.waiting.append(reply)
        return reply

    def line_received(self, line: bytes) -> None:
        self.waiting.pop(0).callback(line.decode(errors="replace"))

    def connection_lost(self, reason: Failure) -> None:
        for reply in self.waiting:  # the server went away before answering
            reply.errback(reason)
        self.closed.callback(None)


async def serve(reactor: Any, endpoint: str = SERVER_ENDPOINT) -> Any:
    """Listen on ``endpoint``; say where on stdout (a parent process may be waiting for it)."""
    port = await server(reactor, endpoint).listen(EchoFactory.for_protocol(LoggingEcho))
    address = port.get_host()
    print(f"listening on {address.host}:{address.port}", flush=True)
    return port


async def serve_forever(reactor: Any, endpoint: str = SERVER_ENDPOINT) -> None:
    await serve(reactor, endpoint)
    await Deferred()  # never fires: Ctrl-C or SIGTERM stops the reactor


async def talk(reactor: Any, endpoint: str, messages: list[str]) -> None:
    """Send each message and wait for its echo before the next; then hang up."""
    protocol = await client(reactor, endpoint).connect(ClientFactory.for_protocol(EchoClient))
    for message in messages:
        reply = await protocol.echo(message)
        print(f"client <- {reply!r}", flush=True)
    protocol.transport.lose_connection()
    await protocol.closed


async def demo(reactor: Any, messages: list[str] | None = None) -> None:
    """Server and client in this process, on an ephemeral loopback port."""
    port = await serve(reactor, "tcp:0:interface=127.0.0.1")
    try:
        await talk(reactor, f"tcp:127.0.0.1:{port.get_host().port}", messages or ["hello", "world"])
    finally:
        await port.stop_listening()


def _client_args(args: list[str]) -> tuple[str, list[str]]:
    """``[ENDPOINT] MESSAGE...``: the first argument is the endpoint if it parses as one."""
    if args:
        try:
            client(None, args[0])
        except ValueError:
            pass
        else:
            return args[0], args[1:]
    return CLIENT_ENDPOINT, args


async def echo_main(reactor: Any, mode: str = "demo", *args: str) -> None:
    """``echo.py MODE ARGS...`` as one coroutine, for ``net.react``."""
    try:
        if mode == "server":
            await serve_forever(reactor, *args[:1])
        elif mode == "client":
            endpoint, messages = _client_args(list(args))
            await talk(reactor, endpoint, messages or ["hello"])
        elif mode == "demo":
            await demo(reactor, list(args) or None)
        else:
            sys.exit(__doc__)
    except (NetError, ValueError) as exc:  # refused, cannot listen, bad endpoint: no traceback
        sys.exit(f"echo.py {mode}: {exc}")


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    react(echo_main, argv)


if __name__ == "__main__":
    main()
