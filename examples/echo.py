"""The echo server from the classic Twisted talk, on net: the whole server is ``Echo`` below.

    python examples/echo.py server [ENDPOINT]             # default tcp:8000; Ctrl-C stops it
    python examples/echo.py client [ENDPOINT] MESSAGE...  # default tcp:127.0.0.1:8000
    python examples/echo.py demo                          # both in one process, over loopback

The reactor comes from ``make_reactor()``, so ``PBROKER_REACTOR=asyncio`` (say) picks the backend.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Coroutine
from typing import Any

from net.basic import LineReceiver
from net.defer import Deferred, Failure, ensure_deferred
from net.endpoints import client, server
from net.error import NetError
from net.protocol import ClientFactory, Factory, Protocol
from net.reactor import make_reactor

__all__ = ["Echo", "EchoFactory", "LoggingEcho", "EchoClient"]
__all__ += ["serve", "serve_forever", "talk", "demo", "run", "main"]


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


async def serve(reactor: Any, endpoint: str = "tcp:8000") -> Any:
    """Listen on ``endpoint``; say where on stdout (a parent process may be waiting for it)."""
    port = await server(reactor, endpoint).listen(EchoFactory.for_protocol(LoggingEcho))
    address = port.get_host()
    print(f"listening on {address.host}:{address.port}", flush=True)
    return port


async def serve_forever(reactor: Any, endpoint: str = "tcp:8000") -> None:
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


def run(main: Callable[..., Coroutine[Any, Any, object]], *args: Any) -> None:
    """Run ``main(reactor, *args)`` on a new reactor; stop it when main ends; re-raise errors."""
    reactor = make_reactor()
    outcome: list[object] = []

    def start() -> None:
        done = ensure_deferred(main(reactor, *args))
        done.add_both(outcome.append)
        done.add_both(lambda _: reactor.stop())

    reactor.call_when_running(start)
    try:
        reactor.run()
    finally:
        reactor.close()
    if outcome and isinstance(outcome[0], Failure):
        outcome[0].raise_exception()


def _client_args(args: list[str]) -> tuple[str, list[str]]:
    """``[ENDPOINT] MESSAGE...``: the first argument is the endpoint if it parses as one."""
    if args:
        try:
            client(None, args[0])
        except ValueError:
            pass
        else:
            return args[0], args[1:]
    return "tcp:127.0.0.1:8000", args


def main(argv: list[str] | None = None) -> None:
    mode, *args = argv if argv is not None else sys.argv[1:] or ["demo"]
    try:
        _main(mode, args)
    except (NetError, ValueError) as exc:  # refused, cannot listen, bad endpoint: no traceback
        sys.exit(f"echo.py {mode}: {exc}")


def _main(mode: str, args: list[str]) -> None:
    if mode == "server":
        run(serve_forever, *args[:1])
    elif mode == "client":
        endpoint, messages = _client_args(args)
        run(talk, endpoint, messages or ["hello"])
    elif mode == "demo":
        run(demo, args or None)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
