"""The echo server from the classic Twisted talk, on net: the whole server is ``Echo`` below.

    .venv/bin/python examples/echo.py server [--listen ENDPOINT]              # default tcp:8000:interface=127.0.0.1
    .venv/bin/python examples/echo.py client [--connect ENDPOINT] MESSAGE...  # default tcp:127.0.0.1:8000
    .venv/bin/python examples/echo.py demo [--listen ENDPOINT] [--connect ENDPOINT] [MESSAGE...]

Any endpoint string works, so the same echo runs over a Unix socket or through a proxy:

    .venv/bin/python examples/echo.py server --listen unix:/tmp/echo.sock
    .venv/bin/python examples/echo.py client --connect unix:/tmp/echo.sock hello
    .venv/bin/python examples/echo.py client --connect socks5:127.0.0.1:1080:tcp:127.0.0.1:8000 hello

``demo`` runs both in one process, by default on an ephemeral loopback TCP port; its client
connects to where the server listens, or to ``--connect``, in which ``{server}`` stands for that
address (``--connect socks5:127.0.0.1:1080:{server}`` goes through a SOCKS5 proxy). The endpoint
may also be given alone, without ``--listen``/``--connect``, as before.

Each mode is a coroutine run by ``net.react``: a fresh reactor from ``make_reactor()`` (so
``PBROKER_REACTOR=asyncio``, say, picks the backend), exit status 0 when it is done, 1 with the
error, and Ctrl-C (130) or SIGTERM (0) stop the server cleanly.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from net.address import Address, UNIXAddress
from net.basic import LineReceiver
from net.defer import Deferred, Failure
from net.endpoints import client, server
from net.error import NetError
from net.protocol import ClientFactory, Factory, Protocol
from net.react import react

__all__ = ["Echo", "EchoFactory", "LoggingEcho", "EchoClient"]
__all__ += ["serve", "serve_forever", "talk", "demo", "client_endpoint", "echo_main", "main"]

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


def client_endpoint(address: Address) -> str:
    """The client endpoint string that reaches a listening port's ``address``."""
    if isinstance(address, UNIXAddress):
        name = address.name or ""
        return "unix:" + name.replace("\\", "\\\\").replace(":", "\\:")
    host = f"[{address.host}]" if ":" in address.host else address.host
    return f"tcp:{host}:{address.port}"


def _where(address: Address) -> str:
    if isinstance(address, UNIXAddress):
        return address.name or "?"
    return f"{address.host}:{address.port}"


async def serve(reactor: Any, endpoint: str = SERVER_ENDPOINT) -> Any:
    """Listen on ``endpoint``; say where on stdout (a parent process may be waiting for it)."""
    port = await server(reactor, endpoint).listen(EchoFactory.for_protocol(LoggingEcho))
    print(f"listening on {_where(port.get_host())}", flush=True)
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


async def demo(reactor: Any, messages: list[str] | None = None, *,
               listen: str = "tcp:0:interface=127.0.0.1", connect: str = "{server}") -> None:
    """Server and client in this process; ``{server}`` in ``connect`` is where the server listens."""
    port = await serve(reactor, listen)
    try:
        endpoint = connect.replace("{server}", client_endpoint(port.get_host()))
        await talk(reactor, endpoint, messages or ["hello", "world"])
    finally:
        await port.stop_listening()


def _options(args: list[str], allowed: tuple[str, ...]) -> tuple[dict[str, str], list[str]]:
    """Take ``--listen ENDPOINT``/``--connect ENDPOINT`` (or ``--listen=ENDPOINT``) out of ``args``."""
    options: dict[str, str] = {}
    rest: list[str] = []
    items = iter(args)
    for arg in items:
        name, equals, value = arg.partition("=")
        if name in allowed:
            if not equals:
                value = next(items, "")
                if not value:
                    raise ValueError(f"{name} needs an endpoint, e.g. {name} unix:/tmp/echo.sock")
            options[name[2:]] = value
        elif arg.startswith("--"):
            raise ValueError(f"unknown option {arg!r}; this mode takes {' or '.join(allowed)}")
        else:
            rest.append(arg)
    return options, rest


def _client_args(args: list[str]) -> tuple[str, list[str]]:
    """``[--connect ENDPOINT | ENDPOINT] MESSAGE...``: a first argument alone is the endpoint if
    it parses as one."""
    options, args = _options(args, ("--connect",))
    if "connect" in options:
        return options["connect"], args
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
            options, rest = _options(list(args), ("--listen",))
            await serve_forever(reactor, options.get("listen", rest[0] if rest else SERVER_ENDPOINT))
        elif mode == "client":
            endpoint, messages = _client_args(list(args))
            await talk(reactor, endpoint, messages or ["hello"])
        elif mode == "demo":
            options, messages = _options(list(args), ("--listen", "--connect"))
            await demo(reactor, messages or None, **options)
        else:
            sys.exit(__doc__)
    except (NetError, ValueError) as exc:  # refused, cannot listen, bad endpoint: no traceback
        sys.exit(f"echo.py {mode}: {exc}")


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    react(echo_main, argv)


if __name__ == "__main__":
    main()
