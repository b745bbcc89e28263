"""The whole chat server in-process (SQLite, IRC and broker listeners on loopback): broker users
and IRC users in one room see each other live.

Two broker clients and one IRC client share a room: each sees the others' messages; the member
list (a broker Cacheable) follows joins and parts live, an IRC user's too; private messages go
IRC -> broker and broker -> IRC; a topic set over the broker reaches IRC; a broker user's quit
reaches IRC. Also: accounts, rooms, topics and history live in the SQLite file and survive a
restart; a second login of a connected user is refused; bad input over the broker is an error
for that call only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import broker
from broker.errors import RemoteError
from cred.credentials import UsernamePassword
from cred.error import LoginFailed
from cred.scram import MIN_ITERATIONS
from examples.chat.app import ChatOptions, ChatServer, build
from examples.chat.testing import BrokerChatClient, IRCTestClient, irc_connect

LOOPBACK = "tcp:0:interface=127.0.0.1"
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}


async def start_server(reactor: Any, db: Path, *, accounts: bool = True) -> tuple[ChatServer, int, str]:
    server = build(reactor, ChatOptions(irc=[LOOPBACK], db=str(db), history=10), [LOOPBACK],
                   iterations=MIN_ITERATIONS)
    await server.service.start_service()
    if accounts:
        for name, password in PASSWORDS.items():
            await server.users.add_user(name, password)
    irc_port = server.irc_services[0].port.get_host().port  # type: ignore[union-attr]
    pb_port = server.broker_services[0].port.get_host().port  # type: ignore[union-attr]
    return server, irc_port, f"tcp:127.0.0.1:{pb_port}"


async def stop(server: ChatServer, *irc: IRCTestClient) -> None:
    await server.service.stop_service()
    for c in irc:
        await c.lost  # the IRC listener said goodbye to everyone


def test_broker_and_irc_users_share_a_room(reactor: Any, run: Any, tmp_path: Path) -> None:
    async def scenario() -> None:
        server, irc_port, endpoint = await start_server(reactor, tmp_path / "chat.sqlite")
        alice = await BrokerChatClient().login(reactor, endpoint, "alice", "alice-pw")
        bob = await BrokerChatClient().login(reactor, endpoint, "bob", "bob-pw")
        room = await alice.join("lobby")
        members = await alice.members("#lobby")
        assert members.room == "#lobby" and members.members == ["alice"]
        await bob.join("#lobby")
        await alice.wait_for("joined", lambda e: e[2] == ("bob",))
        assert members.members == ["alice", "bob"]  # the cache followed bob's join

        carol = await irc_connect(reactor, irc_port)
        await carol.register("carol", "carol-pw")
        carol.send("JOIN #lobby")
        names = await carol.wait_for(r" 353 carol = #lobby :")
        assert set(names.rsplit(":", 1)[1].split()) == {"alice", "bob", "carol"}
        await alice.wait_for("joined", lambda e: e[2] == ("carol",))
        await bob.wait_for("joined", lambda e: e[2] == ("carol",))
        assert members.members == ["alice", "bob", "carol"]

        # Everyone hears everyone else.
        await room.call_remote("say", "hello from alice")
        await bob.wait_for("message", lambda e: e[2] == ("alice", "hello from alice", False))
        await carol.wait_for(r"^:alice!alice@broker PRIVMSG #lobby :hello from alice$")
        carol.send("PRIVMSG #lobby :hello from irc")
        await alice.wait_for("message", lambda e: e[2][:2] == ("carol", "hello from irc"))
        await bob.wait_for("message", lambda e: e[2][:2] == ("carol", "hello from irc"))
        await bob.rooms["#lobby"].call_remote("say", "and bob")
        await carol.wait_for(r"^:bob!bob@broker PRIVMSG #lobby :and bob$")
        assert not any(e[0] == "message" and e[2][0] == "alice" for e in alice.events.items)  # no echo

        # Private messages, both ways.
        carol.send("PRIVMSG alice :just for you")
        await alice.wait_for("private", lambda e: e[2] == ("carol", "just for you", False))
        await bob.avatar.call_remote("private_message", "carol", "psst carol")
        await carol.wait_for(r"^:bob!bob@broker PRIVMSG carol :psst carol$")

        # The topic, set over the broker, reaches IRC and the cache.
        await room.call_remote("set_topic", "ship it")
        await carol.wait_for(r"^:alice!alice@broker TOPIC #lobby :ship it$")
        await bob.wait_for("topic", lambda e: e[2] == ("alice", "ship it"))
        assert members.topic == "ship it"
        assert {"name": "#lobby", "members": 3, "topic": "ship it"} in await bob.avatar.call_remote("rooms")
        whois = await alice.avatar.call_remote("whois", "carol")
        assert whois["via"] == "irc" and whois["rooms"] == ["#lobby"]

        # Parts and quits: the cache and the other interface follow.
        carol.send("PART #lobby :brb")
        await alice.wait_for("parted", lambda e: e[2] == ("carol", "brb"))
        assert members.members == ["alice", "bob"]
        carol.send("JOIN #lobby")
        await alice.wait_for("joined", lambda e: e[2] == ("carol",), alice.mark() - 1)
        mark = carol.mark()
        bob.disconnect()
        await carol.wait_for(r"^:bob!bob@broker QUIT :Connection closed$", mark)
        await alice.wait_for("quit", lambda e: e[2][0] == "bob")
        assert members.members == ["alice", "carol"]
        await room.call_remote("part")
        await carol.wait_for(r"^:alice!alice@broker PART #lobby$")
        with pytest.raises(RemoteError, match="not in that channel"):
            await room.call_remote("say", "after leaving")
        alice.disconnect()
        await stop(server, carol)

    run(reactor, scenario(), timeout=20)


def test_bad_calls_over_the_broker_are_errors_for_that_call_only(reactor: Any, run: Any, tmp_path: Path) -> None:
    async def scenario() -> None:
        server, irc_port, endpoint = await start_server(reactor, tmp_path / "chat.sqlite")
        alice = await BrokerChatClient().login(reactor, endpoint, "alice", "alice-pw")
        room = await alice.join("#ok")
        for call, args, message in [
            ("say", ("line one\r\nQUIT :injected",), "line breaks"),
            ("say", ("x" * 600,), "longer than 500"),
            ("set_topic", ("t\x00",), "line breaks"),
        ]:
            with pytest.raises(RemoteError, match=message):
                await room.call_remote(call, *args)
        for bad in ("has space", "#", "", "a,b"):
            with pytest.raises(RemoteError, match="not a valid room name"):
                await alice.join(bad)
        with pytest.raises(RemoteError, match="no such nick"):
            await alice.avatar.call_remote("private_message", "nobody", "hi")
        for nick in (5, None, ["alice"]):
            with pytest.raises(RemoteError, match="no such nick"):
                await alice.avatar.call_remote("whois", nick)
        with pytest.raises(RemoteError, match="must be your room object"):
            await alice.avatar.call_remote("join", "#ok2", "not a reference")
        with pytest.raises(RemoteError, match="must be text"):
            await room.call_remote("set_topic", None)
        with pytest.raises(LoginFailed):  # alice is connected: a second session is refused
            await broker.login(reactor, endpoint, UsernamePassword("alice", "alice-pw"))
        with pytest.raises(LoginFailed):
            await broker.login(reactor, endpoint, UsernamePassword("bob", "wrong"))
        await room.call_remote("say", "still here")  # the connection survived every refusal
        assert [line.text for line in server.model.room("#ok").history] == ["still here"]
        alice.disconnect()

        server.realm.burst, server.realm.rate = 5, 0.0  # a pace that never refills, for the test
        carol = await BrokerChatClient().login(reactor, endpoint, "carol", "carol-pw")
        fast = await carol.join("#ok")  # one of the five
        outcomes = []
        for i in range(8):
            try:
                await fast.call_remote("say", f"quick {i}")
                outcomes.append("ok")
            except RemoteError as exc:
                assert "sending too fast" in str(exc)
                outcomes.append("refused")
        assert outcomes == ["ok"] * 4 + ["refused"] * 4
        assert await carol.avatar.call_remote("nick") == "carol"  # refused calls, not a closed connection
        carol.disconnect()
        await stop(server)

    run(reactor, scenario(), timeout=20)


def test_rooms_topics_history_and_accounts_survive_a_restart(reactor: Any, run: Any, tmp_path: Path) -> None:
    db = tmp_path / "chat.sqlite"
    before = set(os.listdir("/proc/self/fd"))

    async def first() -> None:
        server, irc_port, endpoint = await start_server(reactor, db)
        alice = await BrokerChatClient().login(reactor, endpoint, "alice", "alice-pw")
        room = await alice.join("#keep")
        await room.call_remote("set_topic", "remember me")
        for i in range(15):
            await room.call_remote("say", f"message {i}")
        alice.disconnect()
        await stop(server)

    async def second() -> None:
        server, irc_port, endpoint = await start_server(reactor, db, accounts=False)
        room = server.model.room("#keep")
        assert (room.topic, room.topic_by) == ("remember me", "alice")
        assert [line.text for line in room.history] == [f"message {i}" for i in range(5, 15)]  # the last 10
        carol = await irc_connect(reactor, irc_port)
        line = await carol.register("carol", "carol-pw")  # the account is in the database
        assert " 376 " in line
        carol.send("JOIN #keep")
        await carol.wait_for(r" 332 carol #keep :remember me$")
        await carol.wait_for(r"NOTICE #keep :\[\d\d:\d\d\] <alice> message 14$")
        bob = await BrokerChatClient().login(reactor, endpoint, "bob", "bob-pw")
        handle = await bob.join("#keep")
        history = await handle.call_remote("history")
        assert [text for _when, _sender, text in history][-1] == "message 14"
        bob.disconnect()
        await stop(server, carol)

    run(reactor, first(), timeout=20)
    run(reactor, second(), timeout=20)
    assert set(os.listdir("/proc/self/fd")) - before == set()  # sockets and the database file closed


def _esc(path: Path) -> str:
    return str(path).replace("\\", "\\\\").replace(":", "\\:")


def test_irc_over_tls_with_sasl_plain_shares_rooms_with_plain_irc(reactor: Any, run: Any, tmp_path: Path) -> None:
    import base64

    from net.endpoints import client
    from net.protocol import Factory
    from net.tls import make_dev_certs

    certs = make_dev_certs(tmp_path / "certs")
    tls = f"tls:0:cert={_esc(certs.server_cert)}:key={_esc(certs.server_key)}:interface=127.0.0.1"

    async def scenario() -> None:
        server = build(reactor, ChatOptions(irc=[LOOPBACK, tls], db=str(tmp_path / "chat.sqlite")), [],
                       iterations=MIN_ITERATIONS)
        await server.service.start_service()
        for name, password in PASSWORDS.items():
            await server.users.add_user(name, password)
        plain_port = server.irc_services[0].port.get_host().port  # type: ignore[union-attr]
        tls_port = server.irc_services[1].port.get_host().port  # type: ignore[union-attr]
        secure: IRCTestClient = await client(
            reactor, f"tls:localhost:{tls_port}:ca={_esc(certs.ca)}:timeout=10").connect(Factory.for_protocol(IRCTestClient))
        for line in ("CAP LS 302", "NICK alice", "USER alice 0 * :Alice", "CAP REQ :sasl", "AUTHENTICATE PLAIN"):
            secure.send(line)
        await secure.wait_for(r"^AUTHENTICATE \+$")
        secure.send("AUTHENTICATE " + base64.b64encode(b"alice\x00alice\x00alice-pw").decode())
        await secure.wait_for(r" 903 alice :SASL authentication successful$")
        secure.send("CAP END")
        await secure.wait_for(r" 001 alice ")
        secure.send("JOIN #secure")
        await secure.wait_for(r" 366 alice #secure ")
        plain = await irc_connect(reactor, plain_port)
        await plain.register("bob", "bob-pw")
        plain.send("JOIN #secure")
        await secure.wait_for(r"^:bob!bob@127\.0\.0\.1 JOIN #secure$")
        plain.send("PRIVMSG #secure :over plain TCP")
        await secure.wait_for(r"PRIVMSG #secure :over plain TCP$")
        secure.send("PRIVMSG #secure :over TLS")
        await plain.wait_for(r"^:alice!alice@127\.0\.0\.1 PRIVMSG #secure :over TLS$")
        await stop(server, secure, plain)

    run(reactor, scenario(), timeout=20)
