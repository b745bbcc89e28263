"""The broker over ``unix:`` endpoints, on every reactor backend.

The checks of ``tests/broker_sockets.py`` that ``tests/test_broker_tcp.py`` runs over TCP, here
over a socket file and an abstract name: calls, references both ways, remote errors, big
payloads, a disconnect (and a server process killed) failing the pending calls, and the blocking
and asyncio clients. And what is Unix's own: the peer addresses, the socket file removed (or,
by a killed server, left behind), login with cred (SCRAM) on a socket of mode 0600, TLS over a
Unix socket. Nothing in the broker knows which transport it is on.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from broker_sockets import (
    BROKER_CHECKS,
    check_asyncio_client_and_server,
    check_blocking_client,
    check_peer_killed_mid_call,
    serve_and_connect,
    unix_endpoints,
)
from helpers_net import esc
from test_login import Mind, UnauthorizedGuess, alice, make_portal

import broker
from broker import HandshakeError
from conftest import calculator_process
from cred.error import UnauthorizedLogin
from cred.throttle import LoginThrottle
from net.address import UNIXAddress
from net.error import ConnectionRefusedError


@pytest.fixture
def sock_path() -> Iterator[str]:
    """A socket path in a short fresh directory (a socket path has at most 107 bytes)."""
    directory = tempfile.mkdtemp(prefix="pbb-", dir="/tmp")
    try:
        yield os.path.join(directory, "broker.sock")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def abstract_name() -> str:
    return f"@pbroker-broker-{os.getpid()}-{uuid.uuid4().hex[:12]}"


# -- what every socket kind must do (tests/broker_sockets.py) ---------------------------------------


@pytest.mark.parametrize("check", BROKER_CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("where", ["file", "abstract"])
def test_broker_checks(reactor: Any, run: Any, sock_path: str, where: str, check: Any) -> None:
    run(reactor, check(reactor, unix_endpoints(sock_path if where == "file" else abstract_name())))


def test_server_process_killed_mid_call(reactor: Any, run: Any, sock_path: str) -> None:
    with calculator_process(f"unix:{esc(sock_path)}") as (proc, said):
        assert said == "ready"
        run(reactor, check_peer_killed_mid_call(reactor, proc, f"unix:{esc(sock_path)}"))
    # Killed, it left its socket file; nothing listens there now.
    with pytest.raises(ConnectionRefusedError, match=f"by the unix socket {sock_path}: nobody listens there"):
        run(reactor, broker.connect(reactor, f"unix:{esc(sock_path)}:timeout=5"))


def test_blocking_client(sock_path: str) -> None:
    check_blocking_client(unix_endpoints(sock_path))


def test_asyncio_client_and_server(sock_path: str) -> None:
    check_asyncio_client_and_server(unix_endpoints(sock_path))


# -- what is Unix's own ----------------------------------------------------------------------------


def test_peer_addresses_and_the_socket_file(reactor: Any, run: Any, sock_path: str) -> None:
    async def scenario() -> None:
        service, port, root = await serve_and_connect(reactor, unix_endpoints(sock_path))
        assert os.path.exists(sock_path)
        assert service.sessions[0].peer == UNIXAddress(None)  # an unbound client
        assert root.session.peer == UNIXAddress(sock_path)
        assert await root.call_remote("add", 1, 2) == 3
        root.session.disconnect()
        await port.stop_listening()
        assert not os.path.exists(sock_path)

    run(reactor, scenario())


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


def test_failed_logins_count_per_uid_not_per_socket(reactor: Any, run: Any, sock_path: str) -> None:
    # Every client of a Unix socket has the same address: throttling by it would let one local
    # user lock every other out. The throttle counts a Unix peer's failures by its uid.
    async def scenario() -> None:
        portal, _logouts = make_portal()
        throttle = LoginThrottle(max_failures=3, delay=0.0)
        port = await broker.serve(reactor, f"unix:{esc(sock_path)}:mode=0600", portal, throttle=throttle)
        with pytest.raises(UnauthorizedLogin):
            await broker.login(reactor, f"unix:{esc(sock_path)}", UnauthorizedGuess)
        peers = {key for kind, key in throttle._records if kind == "peer"}
        assert peers == {f"uid:{os.getuid()}"}
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


def test_connect_to_nothing(reactor: Any, run: Any, sock_path: str) -> None:
    with pytest.raises(ConnectionRefusedError, match=f"No unix socket at {sock_path}"):
        run(reactor, broker.connect(reactor, f"unix:{esc(sock_path)}"))
