"""A real IRC client, irssi, talks to the chat server while a broker client shares its room.

irssi runs in a detached tmux session (its own tmux server socket, its own temporary --home, so
no configuration is shared) and connects with ``-c 127.0.0.1 -p PORT -n NICK -w PASSWORD``; the
test types into it with ``tmux send-keys`` and reads its screen with ``tmux capture-pane``. The
server is the real deployment, ``pbroker serve chat.app:service`` in a subprocess (accounts
written into its database first); a broker client runs on the test's reactor. What irssi does
is awaited through the broker client's events (no polling); what irssi shows is read from its
screen until the text appears, within a deadline.

Registration, /join, a message each way, /topic, and /quit seen by the broker client.
Skipped, with the reason, when irssi or tmux is not installed.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from examples.chat.testing import BrokerChatClient, ServedChat, add_accounts, served_chat
from net.defer import Deferred
from net.reactor import make_reactor

pytestmark = [
    pytest.mark.skipif(shutil.which("irssi") is None, reason="irssi is not installed (Debian package irssi)"),
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (Debian package tmux)"),
]

DEADLINE = 20.0


class Tmux:
    """One private tmux server (``-L``), so nothing of the user's tmux is touched."""

    def __init__(self) -> None:
        self.socket = f"pbroker-chat-{uuid.uuid4().hex[:10]}"

    def __call__(self, *args: str) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, "-f", "/dev/null", *args],
                              capture_output=True, text=True, timeout=10)
        return done.stdout

    def type(self, text: str) -> None:
        self("send-keys", "-t", "irc", "-l", text)
        self("send-keys", "-t", "irc", "Enter")

    def screen(self) -> str:
        return self("capture-pane", "-p", "-J", "-t", "irc")

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=10)


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    t = Tmux()
    try:
        yield t
    finally:
        t.kill()


async def until(reactor: Any, what: str, check: Callable[[], bool], screen: Callable[[], str]) -> None:
    """Re-check ``check`` every 50 ms until it holds; fail after DEADLINE showing the screen."""
    waited = 0.0
    while not check():
        if waited > DEADLINE:
            raise AssertionError(f"irssi never showed {what!r}; its screen:\n{screen()}")
        tick: Deferred[None] = Deferred()
        reactor.call_later(0.05, tick.callback, None)
        await tick
        waited += 0.05


def test_irssi_and_a_broker_client_in_one_room(tmux: Tmux, tmp_path: Path, run: Any) -> None:
    reactor = make_reactor()
    home = tmp_path / "irssi-home"
    home.mkdir()
    # irssi paces its commands (2.2 s apart after a burst of 5): a test need not wait for that.
    (home / "config").write_text('settings = { "irc/core" = { cmd_queue_speed = "0msec"; cmds_max_at_once = "50"; }; };\n')
    state = tmp_path / "server"
    state.mkdir()

    async def scenario(chat: ServedChat) -> None:
        bob = await BrokerChatClient().login(reactor, chat.broker_endpoint, "bob", "bob-pw")
        room = await bob.join("#pbroker")
        try:
            tmux("new-session", "-d", "-s", "irc", "-x", "150", "-y", "40",
                 "irssi", f"--home={home}", "-c", "127.0.0.1", "-p", str(chat.irc_port),
                 "-n", "irssiuser", "-w", "irssi-pw")
            await until(reactor, "the welcome", lambda: "Welcome to the pbroker chat" in tmux.screen(), tmux.screen)

            tmux.type("/join #pbroker")
            await bob.wait_for("joined", lambda e: e[2] == ("irssiuser",))
            whois = await bob.avatar.call_remote("whois", "irssiuser")
            assert whois["via"] == "irc" and whois["rooms"] == ["#pbroker"]
            tmux.type("hello from irssi")
            await bob.wait_for("message", lambda e: e[2][:2] == ("irssiuser", "hello from irssi"))

            await room.call_remote("say", "hello irssi, this is bob")
            await until(reactor, "bob's message", lambda: "hello irssi, this is bob" in tmux.screen(), tmux.screen)

            tmux.type("/topic the topic from irssi")
            await bob.wait_for("topic", lambda e: e[2] == ("irssiuser", "the topic from irssi"))
            await room.call_remote("set_topic", "and back from bob")
            await until(reactor, "bob's topic", lambda: "and back from bob" in tmux.screen(), tmux.screen)

            tmux.type("/quit see you")
            quit_event = await bob.wait_for("quit", lambda e: e[2][0] == "irssiuser")
            assert "see you" in quit_event[2][1]
            members = await bob.members("#pbroker")
            assert members.members == ["bob"]
        finally:
            bob.disconnect()

    try:
        run(reactor, add_accounts(reactor, state / "chat.sqlite", {"irssiuser": "irssi-pw", "bob": "bob-pw"}))
        with served_chat(state) as chat:
            run(reactor, scenario(chat), timeout=60)
    finally:
        reactor.close()
