"""The broker over a real socket, whatever the socket: the checks test_broker_tcp (TCP on
loopback) and test_broker_unix (a Unix socket file, an abstract name) both run, on every reactor
backend, as net.testing's conformance kit does for transports. Nothing in the broker knows which
transport it is on, so every check holds on each.

A socket kind is a :class:`BrokerEndpoints` (:func:`tcp_endpoints`, :func:`unix_endpoints`):
where the server listens, and how a client reaches the port it got. :data:`BROKER_CHECKS` are
coroutine functions ``check(reactor, endpoints)``. Run on their own: the blocking and asyncio
clients (:func:`check_blocking_client`, :func:`check_asyncio_client_and_server`, which make their
own reactors), and a server process killed mid-call (:func:`check_peer_killed_mid_call`, given
conftest's ``calculator_process``).
"""

from __future__ import annotations

import gc
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from helpers_net import esc
from test_broker import Callback, Point, Rejected, Service

import broker
from broker import ConnectionLost, RemoteError, RemoteReference
from net.defer import Deferred

__all__ = [
    "BrokerEndpoints",
    "tcp_endpoints",
    "unix_endpoints",
    "serve_and_connect",
    "turn",
    "check_calls_references_and_errors",
    "check_big_payloads",
    "check_server_disconnect_fails_pending_calls",
    "BROKER_CHECKS",
    "check_peer_killed_mid_call",
    "check_blocking_client",
    "check_asyncio_client_and_server",
]


@dataclass(frozen=True)
class BrokerEndpoints:
    """Where a test broker listens (``server``), and ``client(port)``: how a client reaches it."""

    server: str
    client: Callable[[Any], str]


def tcp_endpoints() -> BrokerEndpoints:
    """TCP on 127.0.0.1, on a port the OS picks."""
    return BrokerEndpoints("tcp:0:interface=127.0.0.1", lambda port: f"tcp:127.0.0.1:{port.get_host().port}")


def unix_endpoints(address: str) -> BrokerEndpoints:
    """A Unix socket at ``address``: a path, or ``@name`` in the abstract namespace."""
    spec = f"unix:{esc(address)}"
    return BrokerEndpoints(spec, lambda port: spec)


async def serve_and_connect(reactor: Any, endpoints: BrokerEndpoints,
                            **server_options: Any) -> tuple[Service, Any, RemoteReference]:
    """Serve a :class:`test_broker.Service` and connect to it: (service, listening port, root)."""
    service = Service(reactor)
    port = await broker.serve(reactor, endpoints.server, service, **server_options)
    root = await broker.connect(reactor, endpoints.client(port))
    return service, port, root


async def turn(reactor: Any) -> None:
    """Wait until work queued with call_from_thread so far (scheduled releases) has run: FIFO."""
    d: Deferred[None] = Deferred()
    reactor.call_from_thread(d.callback, None)
    await d


# -- the checks ------------------------------------------------------------------------------------


async def check_calls_references_and_errors(reactor: Any, endpoints: BrokerEndpoints) -> None:
    """Calls answered at once, by a Deferred and by a coroutine; a copyable; references both ways;
    remote errors; a one-way call; and a dropped proxy releasing the server's object."""
    service, port, root = await serve_and_connect(reactor, endpoints)
    assert await root.call_remote("add", 1, 2) == 3
    assert await root.call_remote("later", 7) == 7
    assert await root.call_remote("coro", [8]) == [8]
    assert await root.call_remote("echo", Point(3, 4)) == Point(3, 4)
    # References: one of theirs to us, one of ours to them and back.
    counter = await root.call_remote("counter")
    assert isinstance(counter, RemoteReference)
    assert await counter.call_remote("add", 5) == 5
    assert await counter.call_remote("add", 2) == 7
    callback = Callback()
    assert await root.call_remote("call_back", callback, "hi") == "got hi"
    assert callback.received == ["hi"]
    assert await root.call_remote("give_back", callback) is callback  # ours comes back as itself
    assert await root.call_remote("same", counter, counter) is True  # theirs goes back as theirs
    # Remote errors: an unregistered exception as RemoteError, a registered one as itself.
    with pytest.raises(RemoteError, match="boom") as info:
        await root.call_remote("fail", "boom")
    assert info.value.remote_type == "builtins.ValueError"
    with pytest.raises(Rejected, match="no way"):
        await root.call_remote("reject", "no way")
    root.call_remote_no_answer("record", 1)
    assert await root.call_remote("add", 0) == 0
    assert service.one_way == [1]
    # Dropping the proxy releases the server's object.
    del counter
    gc.collect()
    await turn(reactor)
    await root.call_remote("add", 0)  # the release was sent before this call
    assert len(service.sessions[0].exports) == 0
    root.session.disconnect()
    await port.stop_listening()


async def check_big_payloads(reactor: Any, endpoints: BrokerEndpoints) -> None:
    """Values of megabytes, and a long list, through the real transport in both directions."""
    _, port, root = await serve_and_connect(reactor, endpoints)
    text = "x" * (5 * 1024 * 1024)
    assert await root.call_remote("echo", text) == text
    blob = bytes(range(256)) * (12 * 1024 * 4)  # 12 MiB, under the 16 MiB frame limit
    assert await root.call_remote("echo", blob) == blob
    many = [{"i": i, "s": "y" * 100} for i in range(20_000)]
    assert await root.call_remote("echo", many) == many
    root.session.disconnect()
    await port.stop_listening()


async def check_server_disconnect_fails_pending_calls(reactor: Any, endpoints: BrokerEndpoints) -> None:
    """The server ends the session mid-call: the pending call fails with the goodbye, every
    reference is told, the server cancels the running call, and later calls fail at once."""
    service, port, root = await serve_and_connect(reactor, endpoints)
    counter = await root.call_remote("counter")
    notified: list[Any] = []
    root.notify_on_disconnect(notified.append)
    counter.notify_on_disconnect(notified.append)
    pending = root.call_remote("hang")
    await root.call_remote("add", 0)  # the hang call is running on the server now
    service.sessions[0].disconnect()
    with pytest.raises(ConnectionLost) as info:
        await pending
    assert (info.value.cause, info.value.goodbye_kind) == ("goodbye", "normal")
    assert sorted(r.object_id for r in notified) == [0, counter.object_id]
    assert service.cancelled == 1  # the server cancelled the running call
    with pytest.raises(ConnectionLost, match="cannot call 'add'"):
        await root.call_remote("add", 1)
    await port.stop_listening()


BROKER_CHECKS = [check_calls_references_and_errors, check_big_payloads,
                 check_server_disconnect_fails_pending_calls]
"""Every ``check(reactor, endpoints)`` above; each test module runs them over its sockets."""


# -- run on their own ------------------------------------------------------------------------------


async def check_peer_killed_mid_call(reactor: Any, proc: subprocess.Popen[str], client_spec: str) -> None:
    """The calculator server ``proc`` (conftest's ``calculator_process``, reached with
    ``client_spec``) is killed while a call is pending: the call fails as "closed", with no
    goodbye; the disconnect is told; later calls fail at once; the session's tables are empty."""
    root = await broker.connect(reactor, client_spec)
    assert await root.call_remote("add", 1, 2) == 3
    notified: list[Any] = []
    root.notify_on_disconnect(notified.append)
    pending = root.call_remote("hang")
    assert proc.stdout is not None
    assert await reactor.defer_to_thread(proc.stdout.readline) == "hanging\n"
    proc.kill()
    with pytest.raises(ConnectionLost) as info:
        await pending
    assert info.value.cause == "closed" and info.value.goodbye_kind is None
    assert notified == [root]
    with pytest.raises(ConnectionLost, match="cannot call 'add'"):
        await root.call_remote("add", 1, 1)
    assert root.session.questions == {} and len(root.session.imports) == 0


@contextmanager
def served_in_a_thread(endpoints: BrokerEndpoints, make_root: Callable[[Any], Any]) -> Iterator[str]:
    """Serve ``make_root(reactor)`` on a new reactor running in another thread (as a blocking
    client's server would be); yield the client endpoint; stop and close the reactor after."""
    from net.reactor import make_reactor

    reactor = make_reactor()
    ready = threading.Event()
    box: dict[str, Any] = {}

    def start() -> None:
        d = broker.serve(reactor, endpoints.server, make_root(reactor))
        d.add_callback(lambda port: box.update(spec=endpoints.client(port)))
        d.add_errback(lambda failure: box.update(failure=failure))
        d.add_both(lambda _: ready.set())

    reactor.call_when_running(start)
    thread = threading.Thread(target=reactor.run, daemon=True)
    thread.start()
    try:
        assert ready.wait(30) and "failure" not in box, box
        yield box["spec"]
    finally:
        reactor.call_from_thread(reactor.stop)
        thread.join(30)
        reactor.close()


def check_blocking_client(endpoints: BrokerEndpoints) -> None:
    """broker.blocking against a broker whose reactor runs in another thread: calls, a reference,
    a remote error, and eight threads calling through one connection at once."""
    from broker import blocking

    with served_in_a_thread(endpoints, Service) as spec:
        with blocking.connect(spec, timeout=30) as root:
            assert root.call_remote("add", 1, 2) == 3
            counter = root.call_remote("counter")
            assert counter.call_remote("add", 5) == 5
            with pytest.raises(RemoteError, match="boom"):
                root.call_remote("fail", "boom")
            results: list[int] = []
            workers = [threading.Thread(target=lambda i=i: results.append(root.call_remote("add", i, i)))
                       for i in range(8)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            assert sorted(results) == [2 * i for i in range(8)]


def check_asyncio_client_and_server(endpoints: BrokerEndpoints) -> None:
    """broker.aio, server and client in one asyncio loop: ten calls at once, and a reference."""
    import asyncio

    from broker import aio

    async def main() -> None:
        reactor = await aio.get_reactor()
        port = await aio.serve(endpoints.server, Service(reactor))
        async with aio.connect(endpoints.client(port)) as root:
            assert await root.call_remote("add", 1, 2) == 3
            results = await asyncio.gather(*(asyncio.ensure_future(_call(root, i)) for i in range(10)))
            assert results == [2 * i for i in range(10)]
            counter = await root.call_remote("counter")
            assert await counter.call_remote("add", 4) == 4
        await port.stop_listening()
        await reactor.shutdown()

    async def _call(root: RemoteReference, i: int) -> int:
        return await root.call_remote("add", i, i)  # type: ignore[no-any-return]

    asyncio.run(main())
