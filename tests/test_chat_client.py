"""The terminal client (``python -m examples.chat.client``) as a user runs it, in a subprocess.

Its stdin and stdout are pipes this test's reactor holds (``spawn_process``); the server runs
in-process with an IRC user in the same room. Typed lines reach IRC (a message, ``/msg``); what
IRC says is printed as it arrives; ``/who`` and ``/topic`` answer from the live member list; end of
input disconnects and exits 0 (the IRC user sees the quit). A wrong password exits 1.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from cred.scram import MIN_ITERATIONS
from examples.chat.app import ChatOptions, build
from examples.chat.testing import LineProcess, irc_connect
from net.defer import Deferred
from net.reactor import make_reactor

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "tcp:0:interface=127.0.0.1"


class Terminal(LineProcess):
    """The terminal client, waited on by what its output lines contain."""

    def wait_for(self, text: str) -> Deferred[str]:
        return self.lines.wait_for(lambda line: text in line)


def spawn_client(reactor: Any, endpoint: str, user: str, password: str) -> Terminal:
    terminal = Terminal()
    env = dict(os.environ, PBROKER_PASSWORD=password, PYTHONPATH=str(ROOT))
    reactor.spawn_process(terminal, sys.executable,
                          [sys.executable, "-m", "examples.chat.client", endpoint, "--user", user],
                          env=env, path=str(ROOT))
    return terminal


def test_the_terminal_client_talks_with_an_irc_user(run: Any, tmp_path: Path) -> None:
    reactor = make_reactor()

    async def scenario() -> None:
        server = build(reactor, ChatOptions(irc=[LOOPBACK], db=str(tmp_path / "chat.sqlite")), [LOOPBACK],
                       iterations=MIN_ITERATIONS)
        await server.service.start_service()
        await server.users.add_user("alice", "alice-pw")
        await server.users.add_user("carol", "carol-pw")
        irc_port = server.irc_services[0].port.get_host().port  # type: ignore[union-attr]
        endpoint = f"tcp:127.0.0.1:{server.broker_services[0].port.get_host().port}"  # type: ignore[union-attr]
        carol = await irc_connect(reactor, irc_port)
        await carol.register("carol", "carol-pw")
        carol.send("JOIN #cli")
        carol.send("TOPIC #cli :terminal test")
        await carol.wait_for(r"TOPIC #cli :terminal test")

        wrong = spawn_client(reactor, endpoint, "alice", "nope")
        assert await wrong.ended == 1
        assert b"login failed" in wrong.stderr

        alice = spawn_client(reactor, endpoint, "alice", "alice-pw")
        await alice.wait_for("logged in as alice")
        alice.write_line("/join cli")
        await carol.wait_for(r"^:alice!alice@broker JOIN #cli$")
        await alice.wait_for("[#cli] members: carol alice; topic: terminal test")
        carol.send("PRIVMSG #cli :hi from irc")
        await alice.wait_for("[#cli] <carol> hi from irc")
        alice.write_line("hello irc")
        await carol.wait_for(r"^:alice!alice@broker PRIVMSG #cli :hello irc$")
        alice.write_line("/msg carol just us")
        await carol.wait_for(r"^:alice!alice@broker PRIVMSG carol :just us$")
        carol.send("PRIVMSG alice :back at you")
        await alice.wait_for("*carol* back at you")
        alice.write_line("/who")
        await alice.wait_for("[#cli] members: carol alice")
        alice.write_line("/nonsense")
        await alice.wait_for("/join ROOM")  # the help
        alice.transport.close_stdin()
        assert await alice.ended == 0
        await carol.wait_for(r"^:alice!alice@broker QUIT ")
        carol.send("QUIT")
        await carol.lost
        await server.service.stop_service()

    try:
        run(reactor, scenario(), timeout=60)
    finally:
        reactor.close()
