"""The broker's core behaviours over ``unix:`` endpoints, on every reactor backend.

The same calls as ``tests/test_broker_tcp.py`` makes over TCP, through Unix sockets: a socket
file and an abstract name, big payloads, references both ways, remote errors, a disconnect (and
a server process killed) failing the pending calls, login with cred (SCRAM), TLS over a Unix
socket, and the blocking and asyncio clients. Nothing in the broker knows which transport it is on.
"""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_broker import Callback, Point, Rejected, Service
from test_login import Mind, UnauthorizedGuess, alice, make_portal

import broker
from broker import ConnectionLost, HandshakeError, RemoteError, RemoteReference
from cred.error import UnauthorizedLogin
from net.address import UNIXAddress
from net.defer import Deferred
from net.error import ConnectionRefusedError

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def sock_path() -> Iterator[str]:
    """A socket path in a short fresh directory (a socket path has at most 107 bytes)."""
    directory = tempfile.mkdtemp(prefix="pbb-", dir="/tmp")
    try:
        yield os.path.join(directory, "broker.sock")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def esc(path: Any) -> str:
    return str(path).replace("\\", "\\\\").replace(":", "\\:")


async def turn(reactor: Any) -> None:
    """Wait until work queued with call_from_thread so far (scheduled releases) has run: FIFO."""
    d: Deferred[None] = Deferred()
    reactor.call_from_thread(d.callback, None)
    await d


async def open_pair(reactor: Any, address: str, **server_options: Any) -> tuple[Service, Any, RemoteReference]:
    service = Service(reactor)
    port = await broker.serve(reactor, f"unix:{esc(address)}", service, **server_options)
    root = await broker.connect(reactor, f"unix:{esc(address)}")
    return service, port, root


def test_calls_references_and_errors(reactor: Any, run: Any, sock_path: str) -> None:
    async def scenario() -> None:
        service, port, root = await open_pair(reactor, sock_path)
        assert service.sessions[0].peer == UNIXAddress(None)  # an unbound client
        assert root.session.peer == UNIXAddress(sock_path)
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
        assert not os.path.exists(sock_path)

    run(reactor, scenario())


def test_abstract_name_and_big_payloads(reactor: Any, run: Any) -> None:
    name = f"@pbroker-broker-{os.getpid()}-{uuid.uuid4().hex[:12]}"

    async def scenario() -> None:
        _, port, root = await open_pair(reactor, name)
        text = "x" * (5 * 1024 * 1024)
        assert await root.call_remote("echo", text) == text
        blob = bytes(range(256)) * (12 * 1024 * 4)  # 12 MiB, under the 16 MiB frame limit
        assert await root.call_remote("echo", blob) == blob
        many = [{"i": i, "s": "y" * 100} for i in range(20_000)]
        assert await root.call_remote("echo", many) == many
        root.session.disconnect()
        await port.stop_listening()

    run(reactor, scenario())


def test_server_disconnect_fails_pending_calls(reactor: Any, run: Any, sock_path: str) -> None:
    async def scenario() -> None:
        service, port, root = await open_pair(reactor, sock_path)
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

    run(reactor, scenario())


SERVER = """
import sys
sys.path.insert(0, {root!r})
import broker
from net.defer import Deferred
from net.reactor import make_reactor

class Calculator(broker.Root):
    def remote_add(self, a, b):
        return a + b

    def remote_hang(self):
        print("hanging", flush=True)
        return Deferred()

reactor = make_reactor()
broker.serve(reactor, sys.argv[1], Calculator()).add_callback(lambda port: print("ready", flush=True))
reactor.run()
"""


def test_server_process_killed_mid_call(reactor: Any, run: Any, sock_path: str) -> None:
    proc = subprocess.Popen([sys.executable, "-c", SERVER.format(root=str(ROOT)), f"unix:{esc(sock_path)}"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"

        async def scenario() -> None:
            root = await broker.connect(reactor, f"unix:{esc(sock_path)}")
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
            assert root.session.questions == {} and len(root.session.imports) == 0

        run(reactor, scenario())
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    # Killed, it left its socket file; nothing listens there now.
    with pytest.raises(ConnectionRefusedError, match=f"by the unix socket {sock_path}: nobody listens there"):
        run(reactor, broker.connect(reactor, f"unix:{esc(sock_path)}:timeout=5"))


def test_login_with_cred(reactor: Any, run: Any, sock_path: str) -> None:
    async def scenario() -> None:
        portal, logouts = make_portal()
        port = await broker.serve(reactor, f"unix:{esc(sock_path)}:mode=0600", portal)
        endpoint = f"unix:{esc(sock_path)}"
        mind = Mind()
        me = await broker.login(reactor, endpoint, alice(), mind)
        assert await me.call_remote("whoami") == "alice"
        assert await me.call_remote("ping", "over unix") == "mind heard over unix"  # the server calls our mind
        assert mind.heard == ["over unix"]
        board = await me.call_remote("board")
        assert await board.call_remote("whoami") == "alice"
        with pytest.raises(UnauthorizedLogin) as info:
            await broker.login(reactor, endpoint, UnauthorizedGuess)
        assert str(info.value) == UnauthorizedLogin.MESSAGE
        me.session.disconnect()
        await logouts.wait(1)
        assert logouts.names == ["alice"]
        await port.stop_listening()

    run(reactor, scenario())


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from net.tls import make_dev_certs

    return make_dev_certs(tmp_path_factory.mktemp("certs"))


def test_tls_over_unix_with_login(reactor: Any, run: Any, sock_path: str, certs: Any) -> None:
    async def scenario() -> None:
        portal, _ = make_portal()
        server_spec = f"unix:{esc(sock_path)}:cert={esc(certs.server_cert)}:key={esc(certs.server_key)}"
        client_spec = f"unix:{esc(sock_path)}:ca={esc(certs.ca)}:hostname=localhost"
        port = await broker.serve(reactor, server_spec, portal)
        me = await broker.login(reactor, client_spec, alice())
        assert await me.call_remote("whoami") == "alice"
        assert me.session.peer == UNIXAddress(sock_path)
        me.session.disconnect()
        with pytest.raises(HandshakeError, match="the peer seems to expect TLS"):  # a plain client is told
            await broker.connect(reactor, f"unix:{esc(sock_path)}:timeout=5", handshake_timeout=5)
        await port.stop_listening()

    run(reactor, scenario())


def test_blocking_client() -> None:
    from broker import blocking
    from net.reactor import make_reactor

    directory = tempfile.mkdtemp(prefix="pbb-", dir="/tmp")
    path = os.path.join(directory, "b.sock")
    reactor = make_reactor()
    ready = threading.Event()
    failures: list[Any] = []

    def start() -> None:
        d = broker.serve(reactor, f"unix:{esc(path)}", Service(reactor))
        d.add_errback(failures.append)
        d.add_both(lambda _: ready.set())

    reactor.call_when_running(start)
    thread = threading.Thread(target=reactor.run, daemon=True)
    thread.start()
    try:
        assert ready.wait(30) and not failures
        with blocking.connect(f"unix:{esc(path)}", timeout=30) as root:
            assert root.call_remote("add", 1, 2) == 3
            counter = root.call_remote("counter")
            assert counter.call_remote("add", 5) == 5
            with pytest.raises(RemoteError, match="boom"):
                root.call_remote("fail", "boom")
    finally:
        reactor.call_from_thread(reactor.stop)
        thread.join(30)
        reactor.close()
        shutil.rmtree(directory, ignore_errors=True)


def test_asyncio_client_and_server(sock_path: str) -> None:
    import asyncio

    from broker import aio

    async def main() -> None:
        reactor = await aio.get_reactor()
        port = await aio.serve(f"unix:{esc(sock_path)}", Service(reactor))
        async with aio.connect(f"unix:{esc(sock_path)}") as root:
            results = await asyncio.gather(*(asyncio.ensure_future(_call(root, i)) for i in range(10)))
            assert results == [2 * i for i in range(10)]
            counter = await root.call_remote("counter")
            assert await counter.call_remote("add", 4) == 4
        await port.stop_listening()
        await reactor.shutdown()

    async def _call(root: RemoteReference, i: int) -> int:
        return await root.call_remote("add", i, i)  # type: ignore[no-any-return]

    asyncio.run(main())


def test_connect_to_nothing(reactor: Any, run: Any, sock_path: str) -> None:
    with pytest.raises(ConnectionRefusedError, match=f"No unix socket at {sock_path}"):
        run(reactor, broker.connect(reactor, f"unix:{esc(sock_path)}"))
