"""Login with perspectives (broker/login.py) over real loopback sockets, on every reactor backend."""

from __future__ import annotations

import dataclasses
import gc
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import broker
from broker import (
    AlreadyLoggedIn,
    Avatar,
    CertificateLogin,
    InvalidReferenceError,
    Referenceable,
    RemoteError,
    RemoteReference,
    Session,
    UnimplementedError,
    Viewable,
)
from broker.login import PortalRoot, login_with
from cred.checkers import (
    ANONYMOUS,
    AllowAnonymousAccess,
    ClientCertificateChecker,
    InMemoryUsernamePasswordDatabase,
)
from cred.credentials import Anonymous, UsernamePassword
from cred.error import LoginFailed, ScramError, UnauthorizedLogin
from cred.portal import Portal, Realm
from cred.scram import ScramClient, ScramVerifier
from cred.throttle import LoginThrottle
from net.defer import Deferred, Failure
from net.protocol import ClientFactory, Factory, Protocol

PASSWORDS = {"alice": "correct horse ✓ battery", "bob": "hunter2-Ünïcode"}
ITERATIONS = 4096  # the minimum a client accepts: keeps the tests fast
LOCAL = "tcp:0:interface=127.0.0.1"


class Board(Viewable):
    """One object shared by every user; what it shows depends on who asks."""

    def view_whoami(self, perspective: Any) -> str:
        return str(perspective.name)


class User(Avatar):
    def __init__(self, name: str, mind: Any, board: Board) -> None:
        self.name = name
        self.mind = mind
        self.board = board

    def perspective_whoami(self) -> str:
        return self.name

    def perspective_board(self) -> Board:
        return self.board

    def perspective_ping(self, text: str) -> Deferred[Any]:
        return self.mind.call_remote("notify", text)

    def perspective_mind_is_reference(self) -> bool:
        return isinstance(self.mind, RemoteReference)

    def remote_secret(self) -> str:  # not a perspective_ method: not callable
        return "leaked"


class Mind(Referenceable):
    def __init__(self) -> None:
        self.heard: list[str] = []

    def remote_notify(self, text: str) -> str:
        self.heard.append(text)
        return f"mind heard {text}"


class Logouts:
    """Records the realm's logouts; ``wait(n)`` fires once there have been n."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self._waiting: list[tuple[int, Deferred[None]]] = []

    def __call__(self, avatar: User) -> None:
        self.names.append(avatar.name)
        ready = [w for w in self._waiting if len(self.names) >= w[0]]
        for waiter in ready:
            self._waiting.remove(waiter)
            waiter[1].callback(None)

    def wait(self, n: int) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        if len(self.names) >= n:
            d.callback(None)
        else:
            self._waiting.append((n, d))
        return d


@pytest.fixture
def reactor(reactor: Any) -> Iterator[Any]:
    """conftest's reactor; proxies caught in reference cycles (failed logins' tracebacks) are
    collected before it closes, so their release requests find it still there."""
    yield reactor
    gc.collect()


def make_users() -> InMemoryUsernamePasswordDatabase:
    return InMemoryUsernamePasswordDatabase(PASSWORDS, iterations=ITERATIONS)


def make_portal(*checkers: Any, users: Any = None) -> tuple[Portal, Logouts]:
    board = Board()
    logouts = Logouts()
    name = lambda avatar_id: "anonymous" if avatar_id is ANONYMOUS else str(avatar_id)  # noqa: E731
    realm = Realm(lambda avatar_id, mind: User(name(avatar_id), mind, board), on_logout=logouts)
    return Portal(realm, [users if users is not None else make_users(), *checkers]), logouts


async def serve_portal(reactor: Any, portal: Portal, endpoint: str = LOCAL, **options: Any) -> tuple[Any, str]:
    port = await broker.serve(reactor, endpoint, portal, **options)
    return port, f"tcp:127.0.0.1:{port.get_host().port}"


def alice() -> UsernamePassword:
    return UsernamePassword("alice", PASSWORDS["alice"])


UnauthorizedGuess = UsernamePassword("alice", "a wrong guess ✗")


def test_scram_login_right_and_wrong_passwords(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        portal, _ = make_portal()
        port, endpoint = await serve_portal(reactor, portal)
        me = await broker.login(reactor, endpoint, alice())
        assert await me.call_remote("whoami") == "alice"
        for wrong in (UsernamePassword("alice", "wrong"), UsernamePassword("mallory", "anything")):
            with pytest.raises(UnauthorizedLogin) as info:
                await broker.login(reactor, endpoint, wrong)
            assert str(info.value) == UnauthorizedLogin.MESSAGE
            cause = info.value.__cause__
            assert isinstance(cause, RemoteError) and cause.kind == "failed"
            assert (cause.remote_type, cause.message) == ("cred.error.UnauthorizedLogin", UnauthorizedLogin.MESSAGE)
        assert await me.call_remote("whoami") == "alice"  # others' failures do not touch us
        await port.stop_listening()

    run(reactor, scenario())


class _Pipe(Protocol):
    """Half of a recording TCP relay: records what it receives and forwards it to its partner."""

    def __init__(self, record: bytearray, partner: _Pipe | None = None) -> None:
        self.record = record
        self.partner = partner

    def data_received(self, data: bytes) -> None:
        self.record += data
        assert self.partner is not None
        self.partner.transport.write(data)

    def connection_lost(self, reason: Failure) -> None:
        if self.partner is not None and self.partner.transport is not None:
            self.partner.transport.lose_connection()


class _ToServer(_Pipe):
    def connection_made(self, transport: Any) -> None:
        assert self.partner is not None
        self.partner.partner = self
        self.partner.transport.resume_reading()


class _FromClient(_Pipe):
    """Holds the client's bytes back until the relay's connection to the server is up."""

    def __init__(self, relay: RecordingRelay) -> None:
        super().__init__(relay.to_server)
        self.relay = relay

    def connection_made(self, transport: Any) -> None:
        transport.pause_reading()
        factory = ClientFactory()
        to_server = _ToServer(self.relay.to_client, self)
        factory.build_protocol = lambda addr: to_server  # type: ignore[method-assign]
        self.relay.reactor.connect_tcp("127.0.0.1", self.relay.target_port, factory)


class RecordingRelay(Factory):
    """Listens; relays each connection to ``target_port`` and keeps every byte in both directions."""

    def __init__(self, reactor: Any, target_port: int) -> None:
        self.reactor = reactor
        self.target_port = target_port
        self.to_server = bytearray()
        self.to_client = bytearray()

    def build_protocol(self, addr: Any) -> Protocol:
        return _FromClient(self)


def test_wire_never_carries_the_password(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        portal, _ = make_portal()
        port, _ = await serve_portal(reactor, portal)
        relay = RecordingRelay(reactor, port.get_host().port)
        relay_port = reactor.listen_tcp(0, relay, interface="127.0.0.1")
        endpoint = f"tcp:127.0.0.1:{relay_port.get_host().port}"
        me = await broker.login(reactor, endpoint, alice())
        assert await me.call_remote("whoami") == "alice"
        with pytest.raises(UnauthorizedLogin):
            await broker.login(reactor, endpoint, UnauthorizedGuess)
        captured = bytes(relay.to_server) + bytes(relay.to_client)
        assert b"login_scram_start" in captured and b"login_scram_finish" in captured
        for password in (PASSWORDS["alice"], UnauthorizedGuess.password):
            for encoding in ("utf-8", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"):
                assert password.encode(encoding) not in captured, encoding
        me.session.disconnect()
        await relay_port.stop_listening()

    run(reactor, scenario())


def test_replayed_client_final_fails_and_sequence_errors(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        portal, _ = make_portal()
        _, endpoint = await serve_portal(reactor, portal)
        # An honest exchange, by hand, as an eavesdropper would see it.
        root = await broker.connect(reactor, endpoint)
        client = ScramClient("alice", PASSWORDS["alice"])
        client_first = client.client_first()
        client_final = client.client_final(await root.call_remote("login_scram_start", client_first))
        result = await root.call_remote("login_scram_finish", client_final, None)
        assert set(result) == {"server_final", "avatar"}
        client.verify_server_final(result["server_final"])
        assert await result["avatar"].call_remote("whoami") == "alice"
        # A second login on a logged-in connection is refused.
        with pytest.raises(RemoteError) as info:
            await root.call_remote("login_anonymous", None)
        assert info.value.remote_type == "broker.AlreadyLoggedIn"

        # Replaying the captured messages on a new connection: the server's nonce differs.
        replay = await broker.connect(reactor, endpoint)
        with pytest.raises(RemoteError) as info:
            await replay.call_remote("login_scram_finish", client_final, None)
        assert info.value.remote_type == "broker.LoginSequenceError"
        await replay.call_remote("login_scram_start", client_first)
        with pytest.raises(RemoteError) as info:
            await replay.call_remote("login_scram_finish", client_final, None)
        assert (info.value.remote_type, info.value.message) == ("cred.error.UnauthorizedLogin", UnauthorizedLogin.MESSAGE)
        # The failed exchange is over; the same connection may try again, properly.
        assert await (await login_with(replay, alice())).call_remote("whoami") == "alice"

    run(reactor, scenario())


def test_throttling_locks_user_and_peer(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        clock = [1000.0]
        throttle = LoginThrottle(max_failures=3, window=60.0, lockout=300.0, now=lambda: clock[0])
        portal, _ = make_portal()
        _, endpoint = await serve_portal(reactor, portal, throttle=throttle)
        for _ in range(3):
            with pytest.raises(UnauthorizedLogin):
                await broker.login(reactor, endpoint, UnauthorizedGuess)
        # Locked: the right password fails the same way, and so does another user from this host.
        for credentials in (alice(), UsernamePassword("bob", PASSWORDS["bob"])):
            with pytest.raises(UnauthorizedLogin) as info:
                await broker.login(reactor, endpoint, credentials)
            assert str(info.value) == UnauthorizedLogin.MESSAGE
        assert throttle.is_throttled("alice", "127.0.0.1")
        clock[0] += 301.0
        me = await broker.login(reactor, endpoint, alice())
        assert await me.call_remote("whoami") == "alice"

    run(reactor, scenario())


def test_logout_runs_exactly_once_on_disconnect(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        portal, logouts = make_portal()
        _, endpoint = await serve_portal(reactor, portal)
        me = await broker.login(reactor, endpoint, alice())
        assert await me.call_remote("whoami") == "alice"
        with pytest.raises(UnauthorizedLogin):  # a failed login makes no avatar, so no logout
            await broker.login(reactor, endpoint, UnauthorizedGuess)
        assert logouts.names == []
        me.session.disconnect()
        await logouts.wait(1)
        # A full login and call on another connection: any stray second logout would be in by now.
        bob = await broker.login(reactor, endpoint, UsernamePassword("bob", PASSWORDS["bob"]))
        assert await bob.call_remote("whoami") == "bob"
        assert logouts.names == ["alice"]
        bob.session.disconnect()
        await logouts.wait(2)
        assert logouts.names == ["alice", "bob"]

    run(reactor, scenario())


def test_nothing_but_login_before_login(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        portal, _ = make_portal(AllowAnonymousAccess())
        _, endpoint = await serve_portal(reactor, portal)
        root = await broker.connect(reactor, endpoint)
        for object_id in (1, 2, 42):
            with pytest.raises(InvalidReferenceError):
                await RemoteReference(root.session, object_id).call_remote("whoami")
        for method in ("whoami", "board", "root_object", "_logged_in_as"):
            with pytest.raises(UnimplementedError):
                await root.call_remote(method)
        me = await login_with(root, Anonymous())
        assert await me.call_remote("whoami") == "anonymous"
        with pytest.raises(UnimplementedError):  # an avatar answers perspective_ methods only
            await me.call_remote("secret")
        with pytest.raises(AlreadyLoggedIn):
            await login_with(root, alice())

    run(reactor, scenario())


def test_anonymous_login_only_with_an_anonymous_checker(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        closed, _ = make_portal()
        _, endpoint = await serve_portal(reactor, closed)
        with pytest.raises(UnauthorizedLogin):
            await broker.login(reactor, endpoint, Anonymous())
        open_, _ = make_portal(AllowAnonymousAccess())
        _, endpoint = await serve_portal(reactor, open_)
        guest = await broker.login(reactor, endpoint, Anonymous())
        assert await guest.call_remote("whoami") == "anonymous"

    run(reactor, scenario())


def test_viewable_and_mind_see_the_logged_in_user(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        portal, _ = make_portal()
        _, endpoint = await serve_portal(reactor, portal)
        alice_mind, bob_mind = Mind(), Mind()
        a = await broker.login(reactor, endpoint, alice(), alice_mind)
        b = await broker.login(reactor, endpoint, UsernamePassword("bob", PASSWORDS["bob"]), mind=bob_mind)
        # The same shared Board shows each caller its own name.
        assert await (await a.call_remote("board")).call_remote("whoami") == "alice"
        assert await (await b.call_remote("board")).call_remote("whoami") == "bob"
        # The server calls back into each client's own mind.
        assert await a.call_remote("mind_is_reference") is True
        assert await a.call_remote("ping", "hi alice") == "mind heard hi alice"
        assert await b.call_remote("ping", "hi bob") == "mind heard hi bob"
        assert (alice_mind.heard, bob_mind.heard) == (["hi alice"], ["hi bob"])

    run(reactor, scenario())


class ImpostorUsers(InMemoryUsernamePasswordDatabase):
    """Knows StoredKey (so the client's proof checks) but not ServerKey: a stolen-file impostor."""

    def get_scram_verifier(self, username: str) -> ScramVerifier | None:
        verifier = super().get_scram_verifier(username)
        return verifier and dataclasses.replace(verifier, server_key=os.urandom(32))


def test_client_refuses_a_server_that_cannot_sign(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        portal, logouts = make_portal(users=ImpostorUsers(PASSWORDS, iterations=ITERATIONS))
        _, endpoint = await serve_portal(reactor, portal)
        with pytest.raises(ScramError, match="server signature"):
            await broker.login(reactor, endpoint, alice())
        await logouts.wait(1)  # the client hung up at once: the server's avatar is logged out

    run(reactor, scenario())


def test_certificate_login_over_tls(reactor: Any, run: Any, tmp_path: Any) -> None:
    from net.tls import make_dev_certs

    certs = make_dev_certs(tmp_path)

    async def scenario() -> None:
        portal, _ = make_portal(ClientCertificateChecker(common_names=["pbroker-dev-client"]))
        server = f"tls:0:cert={certs.server_cert}:key={certs.server_key}:ca={certs.ca}:interface=127.0.0.1"
        port = await broker.serve(reactor, server, portal)
        endpoint = f"tls:127.0.0.1:{port.get_host().port}:ca={certs.ca}:cert={certs.client_cert}:key={certs.client_key}"
        me = await broker.login(reactor, endpoint, CertificateLogin())
        assert await me.call_remote("whoami") == "pbroker-dev-client"
        other = await broker.login(reactor, endpoint, alice())  # SCRAM inside TLS works too
        assert await other.call_remote("whoami") == "alice"
        # Without TLS there is no certificate to log in with.
        _, plain = await serve_portal(reactor, portal)
        with pytest.raises(UnauthorizedLogin):
            await broker.login(reactor, plain, CertificateLogin())

    run(reactor, scenario())


def test_asyncio_login() -> None:
    import asyncio

    from broker import aio

    async def main() -> None:
        reactor = await aio.get_reactor()
        portal, logouts = make_portal()
        port = await aio.serve(LOCAL, portal)
        endpoint = f"tcp:127.0.0.1:{port.get_host().port}"
        async with aio.login(endpoint, alice(), Mind()) as me:
            assert await me.call_remote("whoami") == "alice"
            assert await me.call_remote("ping", "x") == "mind heard x"
        await logouts.wait(1)
        with pytest.raises(UnauthorizedLogin):
            async with aio.login(endpoint, UnauthorizedGuess):
                pass
        await port.stop_listening()
        await reactor.shutdown()

    asyncio.run(main())


def test_blocking_login() -> None:
    import threading

    from broker import blocking
    from net.reactor import make_reactor

    reactor = make_reactor()
    ready = threading.Event()
    box: dict[str, Any] = {}
    portal, logouts = make_portal()
    logged_out = threading.Event()

    def start() -> None:
        d = broker.serve(reactor, LOCAL, portal)
        d.add_callback(lambda port: box.update(port=port.get_host().port))
        d.add_both(lambda _: ready.set())
        logouts.wait(1).add_callback(lambda _: logged_out.set())

    reactor.call_when_running(start)
    thread = threading.Thread(target=reactor.run, daemon=True)
    thread.start()
    assert ready.wait(30)
    endpoint = f"tcp:127.0.0.1:{box['port']}"
    try:
        with blocking.login(endpoint, alice(), timeout=30) as me:
            assert me.call_remote("whoami") == "alice"
            assert me.call_remote("board").call_remote("whoami") == "alice"
        assert logged_out.wait(30)
        with pytest.raises(UnauthorizedLogin):
            blocking.login(endpoint, UnauthorizedGuess, timeout=30)
    finally:
        reactor.call_from_thread(reactor.stop)
        thread.join(30)


# -- the login object without sockets -----------------------------------------------------------


def _login_object() -> tuple[Session, Any]:
    portal, _ = make_portal(AllowAnonymousAccess())
    session = Session(root=PortalRoot(portal))
    return session, session.exports.get(0)


def _outcome(d: Deferred[Any]) -> Any:
    box: list[Any] = []
    d.add_both(box.append)
    assert box, "the login object answered asynchronously with an in-memory user database"
    return box[0]


def _refused(outcome: Any) -> bool:
    return isinstance(outcome, Failure) and type(outcome.value) is UnauthorizedLogin


junk = st.one_of(st.text(max_size=200), st.integers(), st.none(), st.binary(max_size=50), st.lists(st.text(max_size=5)))
scram_ish = st.builds(
    lambda gs2, user, nonce, rest: f"{gs2},n={user},r={nonce}{rest}",
    st.sampled_from(["n,", "y,", "p=x,", "n,a=x", "", "x,"]),
    st.text(max_size=30),
    st.text(max_size=30),
    st.text(max_size=30),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=st.one_of(junk, scram_ish), final=st.one_of(junk, st.text(max_size=200)))
def test_login_object_decodes_anything_without_crashing(first: Any, final: Any) -> None:
    session, login = _login_object()
    call: Callable[..., Any] = lambda name, *args: login.remote_message_received(session, name, list(args), {})  # noqa: E731
    started = _outcome(call("login_scram_start", first))
    assert isinstance(started, str) or _refused(started)
    if isinstance(started, str):
        assert _refused(_outcome(call("login_scram_finish", final, None)))
    else:
        with pytest.raises(RemoteError) as info:  # no exchange is open after a refused start
            call("login_scram_finish", final, None)
        assert info.value.remote_type == "broker.LoginSequenceError"
    # Whatever happened, the connection can still log in.
    assert isinstance(_outcome(call("login_anonymous", None)), User)
    assert session.perspective.name == "anonymous"


def test_login_failure_type_is_unauthorized_for_every_cause() -> None:
    assert issubclass(UnauthorizedLogin, LoginFailed)
    session, login = _login_object()
    # Throttled, malformed and wrong-proof failures all read the same on the wire.
    failure = _outcome(login.remote_message_received(session, "login_scram_start", ["garbage"], {}))
    assert _refused(failure) and str(failure.value) == UnauthorizedLogin.MESSAGE
