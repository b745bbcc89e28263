"""The broker's core through real proxies (dante SOCKS5, tinyproxy HTTP CONNECT), on every backend.

Nothing in the broker knows about tunnels: the endpoint string is the only change. Calls, a big
value, remote errors, references both ways, login with SCRAM and a mind, a TLS connection to the
broker inside the tunnel, and a host name the proxy resolves.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from proxies import Proxy, dante, tinyproxy  # noqa: F401  (fixtures, used by name)
from test_broker import Callback, Rejected, Service

import broker
from broker import Avatar, Referenceable, RemoteError, RemoteReference
from cred.checkers import InMemoryUsernamePasswordDatabase
from cred.credentials import UsernamePassword
from cred.error import UnauthorizedLogin
from cred.portal import Portal, Realm
from net.defer import Deferred
from net.tls import DevCerts, make_dev_certs

LOCAL = "tcp:0:interface=127.0.0.1"
PASSWORD = "through a tunnel ✓"
PROXIES = ["dante", "tinyproxy"]


@pytest.fixture(params=PROXIES)
def proxy(request: pytest.FixtureRequest) -> Proxy:
    """dante (SOCKS5) and tinyproxy (HTTP CONNECT), one after the other."""
    found: Proxy = request.getfixturevalue(request.param)
    return found


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> DevCerts:
    return make_dev_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def reactor(reactor: Any) -> Iterator[Any]:
    """conftest's reactor, with proxies caught in reference cycles collected before it closes."""
    yield reactor
    import gc

    gc.collect()


def esc(path: Path) -> str:
    return str(path).replace("\\", "\\\\").replace(":", "\\:")


async def disconnected(root: RemoteReference) -> None:
    """Disconnect and wait until the session says it is over."""
    d: Deferred[Any] = Deferred()
    root.notify_on_disconnect(d.callback)
    root.session.disconnect()
    await d


def test_calls_errors_and_references(reactor: Any, run: Any, proxy: Proxy) -> None:
    async def scenario() -> None:
        service = Service(reactor)
        port = await broker.serve(reactor, LOCAL, service)
        root = await broker.connect(reactor, proxy.spec(f"tcp:127.0.0.1:{port.get_host().port}"))
        assert await root.call_remote("add", 2, 3) == 5
        blob = bytes(range(256)) * 4096  # 1 MiB
        assert await root.call_remote("echo", blob) == blob
        with pytest.raises(RemoteError) as info:
            await root.call_remote("fail", "boom")
        assert (info.value.remote_type, info.value.message) == ("builtins.ValueError", "boom")
        with pytest.raises(Rejected, match="no way"):
            await root.call_remote("reject", "no way")
        counter = await root.call_remote("counter")  # server -> client reference
        assert isinstance(counter, RemoteReference)
        assert [await counter.call_remote("add", n) for n in (2, 3)] == [2, 5]
        callback = Callback()  # client -> server reference, called back through the tunnel
        assert await root.call_remote("call_back", callback, "hi") == "got hi"
        assert callback.received == ["hi"]
        assert await root.call_remote("give_back", counter) is counter
        assert len(service.sessions) == 1
        await disconnected(root)
        await port.stop_listening()

    run(reactor, scenario())


class User(Avatar):
    def __init__(self, name: str, mind: Any) -> None:
        self.name = name
        self.mind = mind

    def perspective_whoami(self) -> str:
        return self.name

    def perspective_ping(self, text: str) -> Deferred[Any]:
        answer: Deferred[Any] = self.mind.call_remote("notify", text)
        return answer


class Mind(Referenceable):
    def remote_notify(self, text: str) -> str:
        return f"mind heard {text}"


def test_login_through_the_tunnel(reactor: Any, run: Any, proxy: Proxy) -> None:
    """SCRAM login and a mind the server calls back; a wrong password is refused as without a proxy.
    The broker's host is a name here: the proxy resolves it."""

    async def scenario() -> None:
        users = InMemoryUsernamePasswordDatabase({"alice": PASSWORD}, iterations=4096)
        portal = Portal(Realm(lambda avatar_id, mind: User(str(avatar_id), mind)), [users])
        port = await broker.serve(reactor, LOCAL, portal)
        endpoint = proxy.spec(f"tcp:localhost:{port.get_host().port}")
        me = await broker.login(reactor, endpoint, UsernamePassword("alice", PASSWORD), Mind())
        assert await me.call_remote("whoami") == "alice"
        assert await me.call_remote("ping", "hello") == "mind heard hello"
        with pytest.raises(UnauthorizedLogin):
            await broker.login(reactor, endpoint, UsernamePassword("alice", "wrong"))
        await disconnected(me)
        await port.stop_listening()

    run(reactor, scenario())


def test_tls_to_the_broker_inside_the_tunnel(reactor: Any, run: Any, proxy: Proxy, certs: DevCerts) -> None:
    async def scenario() -> None:
        service = Service(reactor)
        port = await broker.serve(
            reactor, f"tls:0:cert={esc(certs.server_cert)}:key={esc(certs.server_key)}:interface=127.0.0.1",
            service)
        root = await broker.connect(
            reactor, proxy.spec(f"tls:localhost:{port.get_host().port}:ca={esc(certs.ca)}"))
        assert await root.call_remote("add", 40, 2) == 42
        cert = root.session.peer_certificate  # the broker's, checked against the CA, end to end
        assert cert == x509.load_pem_x509_certificate(Path(certs.server_cert).read_bytes())
        assert root.session.peer.port == proxy.port  # while the stream goes to the proxy
        await disconnected(root)
        await port.stop_listening()

    run(reactor, scenario())
