"""The chat server's IRC interface, driven by a scripted IRC client over real loopback sockets.

Registration (good, bad and missing password), rooms between two IRC users (JOIN, NAMES, TOPIC,
PRIVMSG, WHO, WHOIS, LIST, MODE), errors a client can cause (421, 451, 433), and the bounds a
peer cannot break: a line over 512 bytes, a flood, a slow reader -- each closes only the
offending connection while another client keeps working. The keepalive runs on net.testing's
Clock and memory transports (no waiting). Line parsing is checked with hypothesis.
"""

from __future__ import annotations

import os
import socket
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from examples.chat.irc import IRCConnection, IRCFactory, IRCLimits, format_message, parse_line
from examples.chat.model import ChatModel
from examples.chat.testing import IRCTestClient, MemoryUsers, irc_connect
from net.defer import Deferred
from net.endpoints import server
from net.testing import Clock, connect_protocols

PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}


async def start_irc(reactor: Any, limits: IRCLimits | None = None) -> tuple[IRCFactory, Any, int]:
    model = ChatModel(history=5)
    factory = IRCFactory(reactor, model, MemoryUsers(PASSWORDS), server_name="test.chat", limits=limits)
    port = await server(reactor, "tcp:0:interface=127.0.0.1").listen(factory)
    return factory, port, port.get_host().port  # type: ignore[union-attr]


async def close_all(port: Any, *clients: IRCTestClient) -> None:
    for c in clients:
        if c.transport is not None and not c.lost.called:
            c.transport.lose_connection()
    for c in clients:
        await c.lost
    await port.stop_listening()


async def registered(reactor: Any, port: int, nick: str) -> IRCTestClient:
    c = await irc_connect(reactor, port)
    line = await c.register(nick, PASSWORDS[nick])
    assert " 376 " in line, line
    return c


# -- parsing ------------------------------------------------------------------------------

_word = st.text(st.characters(blacklist_characters=" \r\n\x00:", blacklist_categories=["Cs"]), min_size=1, max_size=12)
_trailing = st.text(st.characters(blacklist_characters="\r\n\x00", blacklist_categories=["Cs"]), max_size=40)


@given(st.from_regex(r"[A-Z]{1,10}|[0-9]{3}", fullmatch=True), st.lists(_word, max_size=5), _trailing)
def test_format_then_parse_is_the_identity(command: str, middle: list[str], trailing: str) -> None:
    params = (*middle, trailing)
    message = parse_line(format_message("server.example", command, *params))
    assert message is not None
    assert message.command == command
    assert message.params == params
    assert message.prefix == "server.example"


@given(st.text(max_size=80))
def test_parse_never_crashes(line: str) -> None:
    message = parse_line(line)
    assert message is None or (message.command and " " not in message.command)


def test_parse_examples() -> None:
    assert parse_line("PRIVMSG #room :hello there") == parse_line("privmsg #room :hello there")
    assert parse_line("@time=x :nick!u@h PRIVMSG #a :hi").params == ("#a", "hi")  # type: ignore[union-attr]
    assert parse_line("JOIN #a,#b key").params == ("#a,#b", "key")  # type: ignore[union-attr]
    assert parse_line("   ") is None
    assert parse_line("TOPIC #a :").params == ("#a", "")  # type: ignore[union-attr]


# -- registration -------------------------------------------------------------------------


def test_registration_with_the_right_password(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        _factory, port, number = await start_irc(reactor)
        c = await irc_connect(reactor, number)
        await c.register("alice", "alice-pw")
        numerics = [line.split()[1] for line in c.lines]
        for expected in ("001", "002", "003", "004", "005", "375", "376"):
            assert expected in numerics
        assert any("CASEMAPPING=rfc1459" in line for line in c.lines)
        await close_all(port, c)

    run(reactor, scenario(), timeout=10)


def test_bad_password_gets_464_and_is_closed(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        factory, port, number = await start_irc(reactor)
        c = await irc_connect(reactor, number)
        line = await c.register("alice", "wrong")
        assert " 464 alice " in line
        await c.wait_for(r"^ERROR :Closing Link: .*Bad password")
        await c.lost
        assert factory.model.find_user("alice") is None
        nobody = await irc_connect(reactor, number)  # no PASS at all
        line = await nobody.register("bob", None)
        assert " 464 " in line and "Password required" in line
        await nobody.lost
        await close_all(port)

    run(reactor, scenario(), timeout=10)


def test_commands_before_registration_get_451_and_nick_in_use_433(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        _factory, port, number = await start_irc(reactor)
        c = await irc_connect(reactor, number)
        c.send("JOIN #early")
        await c.wait_for(r" 451 \* :You have not registered")
        c.send("NICK 9bad")
        await c.wait_for(r" 432 ")
        alice = await registered(reactor, number, "alice")
        line = await c.register("alice", "alice-pw")
        assert " 433 " in line  # alice is connected already: one connection per account
        await close_all(port, c, alice)

    run(reactor, scenario(), timeout=10)


# -- two users in a room --------------------------------------------------------------------


def test_two_irc_users_join_talk_and_set_the_topic(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        factory, port, number = await start_irc(reactor)
        alice = await registered(reactor, number, "alice")
        bob = await registered(reactor, number, "bob")
        alice.send("JOIN #team")
        await alice.wait_for(r"^:alice!alice@127\.0\.0\.1 JOIN #team$")
        await alice.wait_for(r" 366 alice #team ")
        bob.send("JOIN #team")
        await alice.wait_for(r"^:bob!bob@\S+ JOIN #team$")
        names = await bob.wait_for(r" 353 bob = #team :")
        assert set(names.split(":", 2)[2].split()) == {"alice", "bob"}

        mark = bob.mark()
        alice.send("TOPIC #team :release on friday")
        await bob.wait_for(r"^:alice!\S+ TOPIC #team :release on friday$", mark)
        bob.send("TOPIC #team")
        await bob.wait_for(r" 332 bob #team :release on friday$", mark)
        await bob.wait_for(r" 333 bob #team alice :\d+$", mark)

        alice.send("PRIVMSG #team :hello bob")
        await bob.wait_for(r"^:alice!alice@\S+ PRIVMSG #team :hello bob$")
        bob.send("PRIVMSG alice :psst, alice")
        await alice.wait_for(r"^:bob!bob@\S+ PRIVMSG alice :psst, alice$")
        assert not any("hello bob" in line for line in alice.lines)  # no echo to the sender

        bob.send("WHO #team")
        await bob.wait_for(r" 352 bob #team alice \S+ test\.chat alice H :0 ")
        await bob.wait_for(r" 315 bob #team ")
        bob.send("WHOIS alice")
        await bob.wait_for(r" 311 bob alice alice \S+ \* :")
        await bob.wait_for(r" 319 bob alice :#team")
        await bob.wait_for(r" 318 bob alice ")
        bob.send("LIST")
        await bob.wait_for(r" 322 bob #team 2 :release on friday$")
        await bob.wait_for(r" 323 bob ")
        bob.send("MODE #team")
        await bob.wait_for(r" 324 bob #team :\+nt")
        await bob.wait_for(r" 329 bob #team :\d+")
        bob.send("MODE bob +i")
        await bob.wait_for(r" 221 bob :\+i")
        bob.send("PRIVMSG nobody :hi")
        await bob.wait_for(r" 401 bob nobody ")
        bob.send("PRIVMSG #elsewhere :hi")
        await bob.wait_for(r" 403 bob #elsewhere ")

        mark = alice.mark()
        bob.send("PART #team :lunch")
        await alice.wait_for(r"^:bob!\S+ PART #team :lunch$", mark)
        bob.send("QUIT :bye now")
        await bob.wait_for(r"^ERROR :Closing Link")
        await bob.lost
        assert factory.model.find_user("bob") is None
        assert factory.model.room("#team").nicks() == ["alice"]
        await close_all(port, alice)

    run(reactor, scenario(), timeout=10)


def test_quit_is_seen_by_room_members_and_history_is_shown_on_join(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        _factory, port, number = await start_irc(reactor)
        alice = await registered(reactor, number, "alice")
        bob = await registered(reactor, number, "bob")
        for c in (alice, bob):
            c.send("JOIN #q")
            await c.wait_for(r" 366 \S+ #q ")
        alice.send("PRIVMSG #q :first words")
        await bob.wait_for("first words")
        bob.send("QUIT :gone fishing")
        await alice.wait_for(r"^:bob!bob@\S+ QUIT :Quit: gone fishing$")
        await bob.lost
        carol = await registered(reactor, number, "carol")
        carol.send("JOIN #q")
        await carol.wait_for(r"^:test\.chat NOTICE #q :\[\d\d:\d\d\] <alice> first words$")
        await close_all(port, alice, carol)

    run(reactor, scenario(), timeout=10)


def test_unknown_command_gets_421(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        _factory, port, number = await start_irc(reactor)
        alice = await registered(reactor, number, "alice")
        alice.send("FROBNICATE now")
        await alice.wait_for(r" 421 alice FROBNICATE :Unknown command$")
        alice.send("PING :still-here")
        await alice.wait_for(r"^:test\.chat PONG test\.chat :?still-here$")
        await close_all(port, alice)

    run(reactor, scenario(), timeout=10)


# -- a peer that misbehaves ------------------------------------------------------------------


def test_a_line_over_512_bytes_closes_only_that_connection(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        factory, port, number = await start_irc(reactor)
        alice = await registered(reactor, number, "alice")
        bob = await registered(reactor, number, "bob")
        alice.send("PRIVMSG bob :" + "x" * 520)
        await alice.wait_for(r" 417 alice :Input line was too long")
        await alice.wait_for(r"^ERROR :Closing Link: \S+ \(Line too long\)")
        await alice.lost
        assert factory.model.find_user("alice") is None
        assert not any("xxxx" in line for line in bob.lines)  # nothing of the long line was acted on
        bob.send("PING :ok")
        await bob.wait_for(r"PONG test\.chat :?ok")
        ok = "PRIVMSG bob :" + "y" * (510 - len("PRIVMSG bob :"))  # exactly 512 with CR LF: fine
        assert len(ok) + 2 == 512
        carol = await registered(reactor, number, "carol")
        carol.send(ok)
        await bob.wait_for("yyyy")
        await close_all(port, bob, carol)

    run(reactor, scenario(), timeout=10)


def test_a_flood_is_cut_off_while_another_client_keeps_working(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        factory, port, number = await start_irc(reactor, IRCLimits(flood_burst=10, flood_rate=0.5))
        alice = await registered(reactor, number, "alice")
        bob = await registered(reactor, number, "bob")
        for c in (alice, bob):
            c.send("JOIN #f")
            await c.wait_for(r" 366 \S+ #f ")
        mark = bob.mark()
        alice.transport.write(b"".join(b"PRIVMSG #f :spam %d\r\n" % i for i in range(200)))
        await alice.wait_for(r"^ERROR :Closing Link: \S+ \(Excess Flood\)")
        await alice.lost
        await bob.wait_for(r"^:alice!\S+ QUIT :Excess Flood$", mark)
        heard = [line for line in bob.lines[mark:] if "spam" in line]
        assert 0 < len(heard) < 20  # what the bucket allowed, and not the rest
        bob.send("PRIVMSG #f :still fine")
        bob.send("PING :alive")
        await bob.wait_for(r"PONG test\.chat :?alive")
        await close_all(port, bob)

    run(reactor, scenario(), timeout=10)


def test_a_slow_reader_is_disconnected_and_the_others_are_not(reactor: Any, run: Any) -> None:
    limits = IRCLimits(flood_burst=10_000, flood_rate=10_000, max_output=64 * 1024)

    async def scenario() -> None:
        factory, port, number = await start_irc(reactor, limits)
        bob = await registered(reactor, number, "bob")
        bob.send("JOIN #slow")
        await bob.wait_for(r" 366 bob #slow ")
        # A client that registers and joins, then never reads: a raw socket with a tiny buffer.
        sleepy = socket.create_connection(("127.0.0.1", number))
        try:
            sleepy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sleepy.sendall(b"PASS carol-pw\r\nNICK carol\r\nUSER carol 0 * :Carol\r\nJOIN #slow\r\n")
            await bob.wait_for(r"^:carol!\S+ JOIN #slow$")
            mark = bob.mark()
            quit_seen = bob.wait_for(r"^:carol!\S+ QUIT :SendQ exceeded$", mark)
            text = "z" * 380
            sent = 0
            while not quit_seen.called and sent < 20_000:  # ~8 MB at most; the limit is 64 KiB
                for _ in range(50):
                    bob.send(f"PRIVMSG #slow :{text}")
                sent += 50
                bob.send(f"PING :batch{sent}")
                await bob.wait_for(rf"PONG test\.chat :?batch{sent}$")
            await quit_seen
            assert factory.model.find_user("carol") is None
            assert factory.model.find_user("bob") is not None
            bob.send("PING :after")
            await bob.wait_for(r"PONG test\.chat :?after$")
        finally:
            sleepy.close()
        await close_all(port, bob)

    run(reactor, scenario(), timeout=30)


# -- keepalive, on a fake clock -----------------------------------------------------------------


class _Recorder(IRCTestClient):
    """Records without answering PINGs: a client that went silent."""

    def line_received(self, line: bytes) -> None:
        self.received.add(line.decode())


def test_keepalive_pings_an_idle_client_and_drops_a_dead_one() -> None:
    clock = Clock()
    limits = IRCLimits(ping_interval=30, ping_timeout=20)
    factory = IRCFactory(clock, ChatModel(), MemoryUsers(PASSWORDS), server_name="test.chat", limits=limits)
    server_side = factory.build_protocol(None)
    client_side = _Recorder()
    pump = connect_protocols(server_side, client_side)
    client_side.send("PASS alice-pw")
    client_side.send("NICK alice")
    client_side.send("USER alice 0 * :A")
    pump.flush()
    assert any(" 001 alice " in line for line in client_side.lines)
    clock.advance(30)  # heard from it in the first interval: no ping yet
    pump.flush()
    assert not any(line.startswith("PING") for line in client_side.lines)
    clock.advance(30)  # silent for a whole interval: pinged
    pump.flush()
    assert client_side.lines[-1] == "PING :test.chat"
    client_side.send("PONG :test.chat")
    pump.flush()
    clock.advance(20)  # answered: alive
    pump.flush()
    assert not client_side.lost.called
    clock.advance(30)
    clock.advance(20)  # pinged again, no answer this time
    pump.flush()
    assert client_side.lines[-1] == "ERROR :Closing Link: 127.0.0.1 (Ping timeout: 50 seconds)"
    assert client_side.lost.called
    assert factory.model.find_user("alice") is None
    assert not clock.get_delayed_calls()


def test_an_unregistered_connection_times_out() -> None:
    clock = Clock()
    factory = IRCFactory(clock, ChatModel(), MemoryUsers(PASSWORDS), limits=IRCLimits(registration_timeout=10))
    client_side = _Recorder()
    pump = connect_protocols(factory.build_protocol(None), client_side)
    client_side.send("NICK alice")
    pump.flush()
    clock.advance(10)
    pump.flush()
    assert client_side.lines[-1].endswith("(Registration timed out)")
    assert client_side.lost.called


def test_sasl_plain_registration() -> None:
    import base64

    factory = IRCFactory(Clock(), ChatModel(), MemoryUsers(PASSWORDS), server_name="test.chat")
    client_side = _Recorder()
    pump = connect_protocols(factory.build_protocol(None), client_side)
    for line in ("CAP LS 302", "NICK bob", "USER bob 0 * :Bob", "CAP REQ :sasl", "AUTHENTICATE PLAIN"):
        client_side.send(line)
    pump.flush()
    assert "AUTHENTICATE +" in client_side.lines
    assert not any(" 001 " in line for line in client_side.lines)  # CAP negotiation holds registration
    client_side.send("AUTHENTICATE " + base64.b64encode(b"\x00bob\x00wrong").decode())
    pump.flush()
    assert any(" 904 " in line for line in client_side.lines)
    client_side.send("AUTHENTICATE PLAIN")
    pump.flush()
    client_side.send("AUTHENTICATE " + base64.b64encode(b"bob\x00bob\x00bob-pw").decode())
    client_side.send("CAP END")
    pump.flush()
    assert any(" 903 bob :SASL authentication successful" in line for line in client_side.lines)
    assert any(" 001 bob " in line for line in client_side.lines)


def test_fds_return_to_baseline(reactor: Any, run: Any) -> None:
    before = set(os.listdir("/proc/self/fd"))

    async def scenario() -> None:
        _factory, port, number = await start_irc(reactor)
        alice = await registered(reactor, number, "alice")
        alice.send("QUIT")
        await alice.lost
        await close_all(port)

    run(reactor, scenario(), timeout=10)
    done: Deferred[None] = Deferred()
    reactor.call_later(0, done.callback, None)
    run(reactor, done)
    assert set(os.listdir("/proc/self/fd")) - before == set()


SCRIPT = (b"CAP LS 302\r\nPASS alice-pw\r\nNICK alice\nUSER alice 0 * :Alice A\r\nCAP END\r\n"
          b"JOIN #a,#b\r\nTOPIC #a :caf\xc3\xa9 time\r\nPRIVMSG #a :hi\r\nNAMES #a\r\nLIST\r\n"
          b"MODE #a\r\nWHO #a\r\nWHOIS alice\r\nFOO\r\nPART #b :bye\r\nPING :x\r\n")


def _replies(chunks: list[bytes]) -> list[str]:
    """What the server answers ``chunks`` with, fed one chunk at a time (no reactor)."""
    factory = IRCFactory(Clock(), ChatModel(now=lambda: 1e9), MemoryUsers({"alice": "alice-pw"}), server_name="s",
                         limits=IRCLimits(flood_burst=100))
    client_side = _Recorder()
    pump = connect_protocols(factory.build_protocol(None), client_side)
    for chunk in chunks:
        client_side.transport.write(chunk)
        pump.flush()
    return [line for line in client_side.lines if " 003 " not in line]  # 003 has the start time


@given(st.lists(st.integers(0, len(SCRIPT)), max_size=12))
def test_input_split_anywhere_gets_the_same_replies(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    chunks = [SCRIPT[a:b] for a, b in zip([0, *points], [*points, len(SCRIPT)]) if b > a]
    assert _replies(chunks) == WHOLE


WHOLE = _replies([SCRIPT])


def test_the_whole_script_is_answered() -> None:
    text = "\n".join(WHOLE)
    for expected in (" 001 alice ", ":alice!alice@127.0.0.1 TOPIC #a :café time", " 353 alice = #a :alice",
                     " 322 alice #a 1 :café time", " 324 alice #a :+nt", " 352 alice #a alice ",
                     " 311 alice alice ", " 421 alice FOO ", "PART #b :bye", "PONG s :x"):
        assert expected in text, expected


def test_list_is_bounded() -> None:
    model = ChatModel(max_rooms_per_user=1000)
    factory = IRCFactory(Clock(), model, MemoryUsers({"alice": "alice-pw"}), server_name="s")
    connection = factory.build_protocol(None)
    client_side = _Recorder()
    pump = connect_protocols(connection, client_side)
    model.connect("bob", factory.build_protocol(None))  # a participant that is never connected: hears nothing
    for i in range(connection.max_list + 10):
        model.join("bob", f"#room{i}")
    for line in ("PASS alice-pw", "NICK alice", "USER alice 0 * :A", "LIST"):
        client_side.send(line)
    pump.flush()
    assert sum(1 for line in client_side.lines if " 322 " in line) == connection.max_list
    assert any("10 quieter rooms not listed" in line for line in client_side.lines)


_PARAM = st.one_of(st.sampled_from(["#a", "#b", "alice", "bob", "*", "0", "+i", "-i", "b", "+o", ":", "", "#"]),
                   st.text(st.characters(blacklist_characters="\r\n\x00", blacklist_categories=["Cs"]), max_size=12))


@pytest.mark.parametrize("command", sorted(set(IRCConnection.COMMANDS) - {"QUIT"}))
@settings(max_examples=30)
@given(calls=st.lists(st.lists(_PARAM, max_size=4), min_size=1, max_size=3))
def test_any_command_with_any_parameters_gets_an_answer_not_a_crash(command: str, calls: list[list[str]]) -> None:
    """Whatever a registered client sends (QUIT aside), the connection stays up and no handler
    fails with a server error: every bad parameter is the client's error, answered as such.
    Every command is tried (parametrized), each with random parameter lists."""
    model = ChatModel()
    factory = IRCFactory(Clock(), model, MemoryUsers({"alice": "alice-pw", "bob": "bob-pw"}), server_name="s",
                         limits=IRCLimits(flood_burst=1000))
    alice, bob = _Recorder(), _Recorder()
    pumps = [connect_protocols(factory.build_protocol(None), c) for c in (alice, bob)]
    for c, nick in ((alice, "alice"), (bob, "bob")):
        for line in (f"PASS {nick}-pw", f"NICK {nick}", f"USER {nick} 0 * :{nick}", "JOIN #a"):
            c.send(line)
    for pump in pumps:
        pump.flush()
    for params in calls:
        alice.send(format_message("", command, *params) if params else command)
        for pump in pumps:
            pump.flush()
    assert not alice.lost.called and not bob.lost.called
    assert not any("server error" in line for line in alice.lines + bob.lines)
    assert model.find_user("bob") is not None
