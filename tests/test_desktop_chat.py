"""The desktop chat client (examples/desktop_chat) as a user runs it: a real Qt window under Xvfb.

The chat server runs as it is deployed (``pbroker serve chat.app:service``, a subprocess, fresh
SQLite accounts); the client runs in a subprocess too (one QApplication per process) with
``QT_QPA_PLATFORM=xcb`` on a private Xvfb (tests/xvfb.py), and its ``--test-hook`` reports on
stdout what its widgets' models show. It logs in one broker account (alice) and one IRC account
(bob), both joining ``#lobby``, where a scripted IRC user (carol, a plain line client on our TCP
stack) waits. Then, all through the window:

* text typed with xdotool into the input line (real X key events) and Enter reaches carol, from
  the broker account and from the IRC account;
* carol's message appears in both accounts' room tabs, and the member lists show carol;
* while the chat server is stopped (SIGSTOP), a click on "List rooms" starts a broker call that
  cannot be answered, and the window's timer keeps ticking (ticks counted while the call is
  pending); after SIGCONT the answer appears in the window;
* closing the window (WM_DELETE_WINDOW, as a close button) logs both accounts out (carol sees
  both quit) and the client exits 0.

Screenshots of the window are saved under tmp_path, and into examples/desktop_chat/screenshots/
when ``PBROKER_UPDATE_SCREENSHOTS=1``. Every child is reaped and this process's fds are back to
their number at the start.

A pure part checks the client's IRC line parser against the server's formatter (hypothesis).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cred.scram import MIN_ITERATIONS
from examples.chat.app import ChatOptions, build
from examples.chat.irc import format_message
from examples.chat.testing import Waiters, add_accounts, irc_connect, served_chat
from examples.desktop_chat.accounts import AccountSettings, IRCAccount
from examples.desktop_chat.irc_client import IRCClient, IRCError, format_line, parse_line
from net.basic import LineOnlyReceiver
from net.defer import Deferred, Failure
from net.protocol import Factory, ProcessProtocol
from net.reactor import make_reactor
from xvfb import close_window, xdotool, xvfb_server

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "examples" / "desktop_chat" / "screenshots"
ACCOUNTS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}
LOOPBACK = "tcp:0:interface=127.0.0.1"


# -- the IRC line parser ---------------------------------------------------------------------------

middle_params = st.text(st.characters(codec="utf-8", exclude_characters=" :\r\n\0"),
                        min_size=1, max_size=12)
last_param = st.text(st.characters(codec="utf-8", exclude_characters="\r\n\0"), max_size=40)


@given(st.sampled_from(["PRIVMSG", "JOIN", "353", "TOPIC", "PING"]), st.lists(middle_params, max_size=4),
       last_param, st.sampled_from(["", "carol!carol@host", "chat.pbroker"]))
def test_the_parser_reads_what_the_server_formats(command: str, middle: list[str], last: str, prefix: str) -> None:
    line = format_message(prefix, command, *middle, last)
    parsed = parse_line(line)
    assert parsed is not None
    assert (parsed.prefix, parsed.command, parsed.params) == (prefix, command, (*middle, last))


@given(st.lists(middle_params, max_size=4), last_param)
def test_format_line_round_trips(middle: list[str], last: str) -> None:
    parsed = parse_line(format_line("PRIVMSG", *middle, last))
    assert parsed is not None and parsed.params == (*middle, last)


def test_format_line_refuses_a_line_break() -> None:
    with pytest.raises(ValueError, match="line break"):
        format_line("PRIVMSG", "#lobby", "one\r\nQUIT")


# -- the IRC account, on every backend, against the chat server in this process ------------------


def test_the_irc_account_against_the_chat_server(reactor: Any, run: Any, tmp_path: Path) -> None:
    async def scenario() -> None:
        server = build(reactor, ChatOptions(irc=[LOOPBACK], db=str(tmp_path / "chat.sqlite")), [LOOPBACK],
                       iterations=MIN_ITERATIONS)
        await server.service.start_service()
        for name, password in ACCOUNTS.items():
            await server.users.add_user(name, password)
        irc_port = server.irc_services[0].port.get_host().port  # type: ignore[union-attr]
        endpoint = f"tcp:127.0.0.1:{irc_port}"
        events = Waiters()

        wrong = IRCAccount(reactor, AccountSettings("irc", endpoint, "bob", "not-the-password"), Waiters().add)
        with pytest.raises(IRCError, match="464"):
            await wrong.connect()

        carol = await irc_connect(reactor, irc_port)
        await carol.register("carol", ACCOUNTS["carol"])
        carol.send("JOIN #desk")
        carol.send("TOPIC #desk :a room for the desk")
        await carol.wait_for(r"TOPIC #desk :a room for the desk$")

        bob = IRCAccount(reactor, AccountSettings("irc", endpoint, "bob", ACCOUNTS["bob"]), events.add)
        await bob.connect()
        assert sorted(await bob.join("desk")) == ["bob", "carol"]
        await events.wait_for(lambda e: e == ("topic", "#desk", ("", "a room for the desk")))
        await carol.wait_for(r"^:bob!\S+ JOIN #desk$")
        await bob.say("#desk", "hi carol")
        await carol.wait_for(r"^:bob!\S+ PRIVMSG #desk :hi carol$")
        carol.send("PRIVMSG #desk :hi bob")
        await events.wait_for(lambda e: e == ("message", "#desk", ("carol", "hi bob", False)))
        carol.send("PRIVMSG bob :just us")
        await events.wait_for(lambda e: e == ("private", "", ("carol", "just us", False)))
        rooms = await bob.list_rooms()
        assert {"name": "#desk", "members": 2, "topic": "a room for the desk"} in rooms
        with pytest.raises(IRCError, match="479"):
            await bob.join("#bad:name")
        with pytest.raises(ValueError, match="not one IRC room name"):
            await bob.join("#two,rooms")
        carol.send("PART #desk :bye")
        await events.wait_for(lambda e: e == ("members", "#desk", (["bob"],)))
        mark = carol.mark()
        carol.send("JOIN #desk")
        await events.wait_for(lambda e: e == ("members", "#desk", (["bob", "carol"],)))
        await bob.disconnect()
        await carol.wait_for(r"^:bob!\S+ QUIT :Quit: desktop client closed$", mark)
        await events.wait_for(lambda e: e[0] == "closed")
        carol.send("QUIT")
        await carol.lost
        await server.service.stop_service()

    run(reactor, scenario(), timeout=30)


class ScriptedServer(LineOnlyReceiver):
    """An IRC "server" that welcomes, pings, then sends a line longer than a client may buffer."""

    delimiter = b"\r\n"
    max_length = 1 << 16

    def __init__(self) -> None:
        self.lines = Waiters()

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)

    def line_received(self, line: bytes) -> None:
        text = line.decode()
        self.lines.add(text)
        if text.startswith("USER "):
            self.send_line(b":scripted 001 bob :Welcome")
            self.send_line(b"PING :token-42")
        elif text == "PONG token-42":
            self.send_line(b":scripted NOTICE bob :" + b"x" * IRCClient.max_length)


def test_ping_is_answered_and_an_overlong_line_closes_the_connection(reactor: Any, run: Any) -> None:
    servers: list[ScriptedServer] = []

    def build_server() -> ScriptedServer:
        servers.append(ScriptedServer())
        return servers[-1]

    class ScriptedFactory(Factory):
        def build_protocol(self, addr: Any) -> ScriptedServer:
            return build_server()

    port = reactor.listen_tcp(0, ScriptedFactory(), interface="127.0.0.1")

    async def scenario() -> None:
        events = Waiters()
        account = IRCAccount(reactor, AccountSettings("irc", f"tcp:127.0.0.1:{port.get_host().port}", "bob", "pw"),
                             events.add)
        await account.connect()
        server = servers[0]
        assert server.lines.items[:3] == ["PASS pw", "NICK bob", "USER bob 0 * :pbroker desktop chat"]
        await server.lines.wait_for(lambda line: line == "PONG token-42")
        await events.wait_for(lambda e: e[0] == "closed")  # the overlong line: the client hung up
        assert not [e for e in events.items if e[0] == "server" and "xxxx" in e[2][1]]

    try:
        run(reactor, scenario(), timeout=30)
    finally:
        run(reactor, port.stop_listening())


# -- the window ------------------------------------------------------------------------------------


class DesktopClient(ProcessProtocol):
    """The client's stdout as tab-separated hook lines; ``ended`` fires with its exit code."""

    def __init__(self) -> None:
        self.lines = Waiters()
        self.ended: Deferred[int] = Deferred()
        self._partial = b""
        self.stderr = b""

    def out_received(self, data: bytes) -> None:
        *complete, self._partial = (self._partial + data).split(b"\n")
        for line in complete:
            self.lines.add(line.decode().split("\t"))

    def err_received(self, data: bytes) -> None:
        self.stderr = (self.stderr + data)[-20000:]

    def command(self, line: str) -> None:
        self.transport.write(line.encode() + b"\n")

    def mark(self) -> int:
        return len(self.lines.items)

    def wait_for(self, *words: str, start: int = 0, last_contains: str | None = None) -> Deferred[list[str]]:
        """The first hook line beginning with ``words`` (and whose last field contains
        ``last_contains``)."""
        n = len(words)

        def match(fields: list[str]) -> bool:
            return fields[:n] == list(words) and (last_contains is None or last_contains in fields[-1])

        return self.lines.wait_for(match, start)

    def process_ended(self, reason: Failure) -> None:
        self.ended.callback(getattr(reason.value, "exit_code", 0) or 0)


def _qt_can_use_xcb(display: str) -> str | None:
    """None if a QApplication starts on ``display`` with the xcb plugin, else Qt's complaint."""
    probe = subprocess.run([sys.executable, "-c", "from PySide6.QtWidgets import QApplication; QApplication([])"],
                           env={**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb"},
                           capture_output=True, text=True, timeout=60)
    return None if probe.returncode == 0 else probe.stderr.strip()[-600:]


def _open_fds() -> list[str]:
    return sorted(os.listdir("/proc/self/fd"))


class Screen:
    """How the test acts on the window: on ``xcb``, as a user through the X server (xdotool's key
    and mouse events, a WM_DELETE_WINDOW message); on ``offscreen``, where there is no X server, through the
    hook's ``type``/``click``/``close`` (Qt's own QTest events)."""

    def __init__(self, app: DesktopClient, display: str | None) -> None:
        self.app, self.display = app, display
        self.window = ""
        self.button = ("", "")

    def type_line(self, text: str) -> None:
        if self.display is None:
            self.app.command(f"type {text}")
            return
        xdotool(self.display, "windowfocus", "--sync", self.window)
        xdotool(self.display, "type", "--delay", "5", text)
        xdotool(self.display, "key", "Return")

    def click_list_rooms(self) -> None:
        if self.display is None:
            self.app.command("click list-rooms")
            return
        xdotool(self.display, "mousemove", "--window", self.window, *self.button, "click", "1")

    def close(self) -> None:
        if self.display is None:
            self.app.command("close")
        else:
            close_window(self.display, self.window)


@contextmanager
def _platform(name: str) -> Iterator[str | None]:
    """The DISPLAY for ``xcb`` (a private Xvfb; skip if Qt's xcb plugin cannot start), None for
    ``offscreen``."""
    pytest.importorskip("PySide6", reason="the desktop client needs PySide6 (pip install PySide6-Essentials)")
    pytest.importorskip("qasync", reason="the desktop client needs qasync (pip install qasync)")
    if name == "offscreen":
        yield None
        return
    with xvfb_server() as display:
        complaint = _qt_can_use_xcb(display)
        if complaint is not None:
            pytest.skip("Qt's xcb platform plugin cannot start (it needs Debian's libxcb-cursor0 libxcb-icccm4 "
                        f"libxcb-keysyms1 libxkbcommon-x11-0 ...); the offscreen run still runs: {complaint}")
        yield display


@pytest.mark.parametrize("platform", ["xcb", "offscreen"])
def test_the_desktop_client_talks_over_the_broker_and_irc(run: Any, tmp_path: Path, platform: str) -> None:
    fds_before = _open_fds()
    with _platform(platform) as display:
        reactor = make_reactor()
        try:
            run(reactor, add_accounts(reactor, tmp_path / "chat.sqlite", ACCOUNTS))
            with served_chat(tmp_path) as chat:
                run(reactor, _scenario(reactor, chat, platform, display, tmp_path), timeout=90)
                chat.proc.send_signal(signal.SIGTERM)
                assert chat.proc.wait(timeout=30) == 0
        finally:
            reactor.close()
    assert _open_fds() == fds_before


async def _scenario(reactor: Any, chat: Any, platform: str, display: str | None, tmp_path: Path) -> None:
    carol = await irc_connect(reactor, chat.irc_port)
    assert " 376 " in await carol.register("carol", ACCOUNTS["carol"])
    carol.send("JOIN #lobby")
    carol.send("TOPIC #lobby :the talk's sample client, on Qt")
    await carol.wait_for(r"^:carol!\S+ TOPIC #lobby :")

    app = DesktopClient()
    env = {**os.environ, "QT_QPA_PLATFORM": platform, "PYTHONPATH": str(ROOT),
           "PBROKER_PASSWORD": ACCOUNTS["alice"], "PBROKER_IRC_PASSWORD": ACCOUNTS["bob"]}
    if display is not None:
        env["DISPLAY"] = display
    reactor.spawn_process(app, sys.executable,
                          [sys.executable, "-m", "examples.desktop_chat", "--broker", chat.broker_endpoint,
                           "--user", "alice", "--irc", f"tcp:127.0.0.1:{chat.irc_port}", "--nick", "bob",
                           "--join", "lobby", "--test-hook"], env=env, path=str(ROOT))
    try:
        await _drive(Screen(app, display), carol, chat, tmp_path)
    except BaseException:
        print("desktop client stderr:\n" + app.stderr.decode(errors="replace"), file=sys.stderr)
        if not app.ended.called:
            app.transport.signal_process("KILL")
            await app.ended
        raise
    carol.send("QUIT")
    await carol.lost


async def _drive(screen: Screen, carol: Any, chat: Any, tmp_path: Path) -> None:
    app = screen.app
    screen.window = (await app.wait_for("READY"))[1]
    _, _, x, y = await app.wait_for("BUTTON", "list-rooms")
    screen.button = (x, y)

    # Both accounts in #lobby, each member list showing carol (and both our accounts).
    for account in ("broker:alice", "irc:bob"):
        members = await app.wait_for("MEMBERS", account, "#lobby", last_contains="carol")
        for nick in ("alice", "bob"):
            if nick not in members[-1].split(","):
                await app.wait_for("MEMBERS", account, "#lobby", last_contains=nick)
    await carol.wait_for(r"^:alice!alice@broker JOIN #lobby$")
    await carol.wait_for(r"^:bob!\S+ JOIN #lobby$")

    # Typed into the window's input line, sent by each account.
    for account, text, sender in (("broker:alice", "hello from the desktop", r"alice!alice@broker"),
                                  ("irc:bob", "and hello over IRC", r"bob!\S+")):
        mark = app.mark()
        app.command(f"tab {account} #lobby")
        await app.wait_for("TAB", account, "#lobby", start=mark)
        screen.type_line(text)
        await carol.wait_for(rf"^:{sender} PRIVMSG #lobby :{text}$")
        shown = await app.wait_for("SHOWN", account, "#lobby", start=mark, last_contains=text)
        assert shown[-1].startswith(f"<{account.split(':')[1]}> ")

    # What carol says appears in both tabs, as the message lists show it.
    mark = app.mark()
    carol.send("PRIVMSG #lobby :hi desktop, carol here")
    for account in ("broker:alice", "irc:bob"):
        shown = await app.wait_for("SHOWN", account, "#lobby", start=mark, last_contains="carol here")
        assert shown[-1] == "<carol> hi desktop, carol here"

    shots = [await _screenshot(app, tmp_path, "broker-room.png", "broker:alice #lobby"),
             await _screenshot(app, tmp_path, "irc-room.png", "irc:bob #lobby")]

    # A slow call: the server is stopped, the button clicked, the call pending; the timer ticks on.
    mark = app.mark()
    app.command("tab broker:alice #lobby")
    await app.wait_for("TAB", "broker:alice", "#lobby", start=mark)
    chat.proc.send_signal(signal.SIGSTOP)
    try:
        mark = app.mark()
        screen.click_list_rooms()
        await app.wait_for("CALL", "started", "rooms broker:alice", start=mark)
        pending_from = app.mark()
        first_tick = int((await app.wait_for("TICK", start=pending_from))[1])
        await app.wait_for("TICK", str(first_tick + 10), start=pending_from)
        finished = [fields for fields in app.lines.items[pending_from:]
                    if fields[0] == "CALL" and fields[-1] == "rooms broker:alice"]
        assert finished == [], "the server is stopped: the rooms call cannot have been answered"
        shots.append(await _screenshot(app, tmp_path, "slow-call.png", "broker:alice #lobby"))
    finally:
        chat.proc.send_signal(signal.SIGCONT)
    await app.wait_for("CALL", "done", "rooms broker:alice", start=mark)
    await app.wait_for("SHOWN", "broker:alice", "-", start=mark, last_contains="#lobby (3)")
    shots.append(await _screenshot(app, tmp_path, "rooms-answered.png", "broker:alice "))

    # Closing the window, as its close button does: both accounts log out, the client exits 0.
    mark = carol.mark()
    screen.close()
    assert await app.ended == 0, app.stderr.decode(errors="replace")
    await carol.wait_for(r"^:alice!alice@broker QUIT ", mark)
    await carol.wait_for(r"^:bob!\S+ QUIT :Quit: desktop client closed$", mark)

    if os.environ.get("PBROKER_UPDATE_SCREENSHOTS") == "1" and screen.display is not None:
        SCREENSHOTS.mkdir(exist_ok=True)
        for shot in shots:
            shutil.copyfile(shot, SCREENSHOTS / shot.name)


async def _screenshot(app: DesktopClient, tmp_path: Path, name: str, tab: str) -> Path:
    """The window with ``tab`` shown, grabbed by Qt into ``tmp_path / name`` (a PNG)."""
    mark = app.mark()
    app.command(f"tab {tab}")
    await app.wait_for("TAB", start=mark)
    path = tmp_path / name
    app.command(f"screenshot {path}")
    await app.wait_for("SAVED", str(path), start=mark)
    assert path.read_bytes().startswith(b"\x89PNG"), f"{path} is not a PNG"
    return path
