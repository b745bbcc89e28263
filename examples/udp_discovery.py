"""Finding broker servers with UDP multicast, on this host: "who is there?" and "here I am".

    .venv/bin/python examples/udp_discovery.py server NAME [--port 8801]   # a discoverable broker server
    .venv/bin/python examples/udp_discovery.py client [--expect N]         # find N servers, call each once
    .venv/bin/python examples/udp_discovery.py demo                        # two servers and a client, here

Each server serves a ``Greeter`` over TCP on an ephemeral loopback port, and joins the multicast
group :data:`GROUP` on interface 127.0.0.1 at the discovery port; several servers share that port
(``listen_multiple``), and each gets its own copy of every query. A client sends a query with a
fresh nonce to the group from its own ephemeral UDP port, again every :data:`RETRY` seconds (UDP
may lose a datagram), and each server answers it directly (unicast) with its name and broker
endpoint. The client waits for ``--expect`` distinct servers (or fails after ``--timeout``),
then makes one broker call on each.

Every datagram is one JSON object of at most :data:`MAX_DATAGRAM` bytes; anything else is
logged and ignored (a datagram can come from any local process). Interface 127.0.0.1 and a TTL
of 0 keep it all on this host: to discover servers on a LAN, use the address of a LAN
interface and a TTL of 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import sys
from typing import Any

import broker
from net import udp
from net.defer import Deferred
from net.error import NetError
from net.protocol import DatagramProtocol
from net.react import react

__all__ = ["Greeter", "Responder", "Seeker", "serve", "discover", "call_each", "demo", "discovery_main", "main"]

log = logging.getLogger("udp_discovery")

GROUP = "239.255.80.66"
"""An administratively scoped (site-local) IPv4 group: never routed beyond its site."""
DISCOVERY_PORT = 8801
INTERFACE = "127.0.0.1"
TTL = 0  # this host only
RETRY = 0.25
MAX_DATAGRAM = 1024


class Greeter(broker.Root):
    """What a discovered server offers: one method, enough to show the call went through."""

    def __init__(self, name: str) -> None:
        self.name = name

    def remote_hello(self, who: str) -> str:
        return f"hello {who}, this is {self.name} (pid {os.getpid()})"


def encode(message: dict[str, str]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode()


def decode(data: bytes, kind: str, fields: tuple[str, ...]) -> dict[str, str]:
    """The message of ``kind`` in ``data``; ValueError saying what is wrong with it otherwise."""
    try:
        message = json.loads(data)
    except ValueError as exc:  # bad JSON or bad UTF-8
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(message, dict) or message.get("kind") != kind:
        raise ValueError(f"not a {kind!r} message")
    for field in fields:
        if not isinstance(message.get(field), str) or not 0 < len(message[field]) <= 200:
            raise ValueError(f"{kind!r} message without a proper {field!r}")
    return message


class Responder(DatagramProtocol):
    """A server's side: answer each query, to whoever sent it, with our name and endpoint."""

    def __init__(self, name: str, endpoint: str) -> None:
        self.name = name
        self.endpoint = endpoint

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            query = decode(data, "query", ("nonce",))
        except ValueError as exc:
            log.warning("ignoring a datagram from %s: %s", addr, exc)
            return
        reply = {"kind": "here", "nonce": query["nonce"], "name": self.name, "endpoint": self.endpoint}
        self.transport.write(encode(reply), addr)


class Seeker(DatagramProtocol):
    """A client's side: collect the answers to our query until ``expect`` servers are known."""

    def __init__(self, nonce: str, expect: int) -> None:
        self.nonce = nonce
        self.expect = expect
        self.found: dict[str, str] = {}
        self.done: Deferred[dict[str, str]] = Deferred()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            reply = decode(data, "here", ("nonce", "name", "endpoint"))
            if not reply["endpoint"].startswith("tcp:"):
                raise ValueError(f"an endpoint we do not expect: {reply['endpoint']!r}")
        except ValueError as exc:
            log.warning("ignoring a datagram from %s: %s", addr, exc)
            return
        if reply["nonce"] != self.nonce or self.done.called:  # someone else's query, or late
            return
        name, endpoint = reply["name"], reply["endpoint"]
        if name not in self.found:
            self.found[name] = endpoint
            print(f"found {name} at {endpoint}", flush=True)
        if len(self.found) >= self.expect:
            self.done.callback(dict(self.found))


async def serve(reactor: Any, name: str, port: int = DISCOVERY_PORT, group: str = GROUP) -> Any:
    """A Greeter on an ephemeral TCP port, answering discovery queries on ``group:port``.

    Returns the discovery transport. Prints ``listening on HOST:PORT`` once both are ready.
    """
    tcp_port = await broker.serve(reactor, f"tcp:0:interface={INTERFACE}", Greeter(name))
    host = tcp_port.get_host()
    endpoint = f"tcp:{host.host}:{host.port}"
    responder = udp.listen_udp(reactor, port, Responder(name, endpoint), interface=group,
                               max_packet_size=MAX_DATAGRAM, listen_multiple=True)
    try:
        responder.join_group(group, INTERFACE)
    except OSError as exc:
        responder.stop_listening()
        sys.exit(f"cannot join the multicast group {group} on {INTERFACE}: {exc}")
    print(f"listening on {host.host}:{host.port}", flush=True)
    print(f"discoverable as {name} on {group}:{responder.get_host().port}", flush=True)
    return responder


async def discover(reactor: Any, port: int = DISCOVERY_PORT, group: str = GROUP, expect: int = 1,
                   timeout: float = 5.0) -> dict[str, str]:
    """Ask ``group:port`` until ``expect`` servers have answered: {name: endpoint}."""
    seeker = Seeker(secrets.token_hex(8), expect)
    asker = reactor.listen_udp(0, seeker, interface=INTERFACE, max_packet_size=MAX_DATAGRAM)
    asker.set_outgoing_interface(INTERFACE)
    asker.set_ttl(TTL)
    query = encode({"kind": "query", "nonce": seeker.nonce})
    timer: list[Any] = []

    def ask() -> None:
        asker.write(query, (group, port))
        timer[:] = [reactor.call_later(RETRY, ask)]

    ask()
    try:
        return await seeker.done.add_timeout(timeout, reactor)
    except TimeoutError:
        raise SystemExit(f"discovery: {len(seeker.found)} of {expect} broker server(s) answered on "
                         f"{group}:{port} within {timeout}s; are they running (udp_discovery.py server NAME)?")
    finally:
        timer[0].cancel()
        await asker.stop_listening()


async def call_each(reactor: Any, found: dict[str, str]) -> None:
    """One broker call on every server found, in name order."""
    for name, endpoint in sorted(found.items()):
        root = await broker.connect(reactor, endpoint)
        print(f"{name} says: {await root.call_remote('hello', 'discoverer')}", flush=True)
        closed: Deferred[None] = Deferred()
        root.notify_on_disconnect(lambda _ref: closed.callback(None))
        root.session.disconnect()
        await closed


async def demo(reactor: Any) -> None:
    """Two servers and a client in this process, on a discovery port picked for the occasion."""
    first = await serve(reactor, "alpha", 0)
    port = first.get_host().port
    second = await serve(reactor, "beta", port)
    try:
        await call_each(reactor, await discover(reactor, port, expect=2))
    finally:
        await first.stop_listening()
        await second.stop_listening()


async def discovery_main(reactor: Any, *argv: str) -> None:
    """``udp_discovery.py MODE ...`` as one coroutine, for ``net.react``."""
    parser = argparse.ArgumentParser(prog="udp_discovery.py", description=__doc__.split("\n")[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    server_args = modes.add_parser("server", help="serve a Greeter and answer discovery queries")
    server_args.add_argument("name")
    client_args = modes.add_parser("client", help="find servers and call each once")
    client_args.add_argument("--expect", type=int, default=1, help="servers to wait for (default 1)")
    client_args.add_argument("--timeout", type=float, default=5.0, help="seconds to wait (default 5)")
    modes.add_parser("demo", help="two servers and a client in this process")
    for sub in (server_args, client_args):
        sub.add_argument("--port", type=int, default=DISCOVERY_PORT, help=f"discovery port (default {DISCOVERY_PORT})")
        sub.add_argument("--group", default=GROUP, help=f"multicast group (default {GROUP})")
    args = parser.parse_args(argv)
    try:
        if args.mode == "server":
            await serve(reactor, args.name, args.port, args.group)
            await Deferred()  # never fires: Ctrl-C or SIGTERM stops the reactor
        elif args.mode == "client":
            await call_each(reactor, await discover(reactor, args.port, args.group, args.expect, args.timeout))
        else:
            await demo(reactor)
    except (NetError, OSError, ValueError) as exc:  # port taken, refused, bad group: no traceback
        sys.exit(f"udp_discovery.py {args.mode}: {exc}")


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    react(discovery_main, argv)


if __name__ == "__main__":
    main()
