"""The chat server as it is deployed: ``pbroker serve chat.app:service`` in a subprocess.

The accounts are written into the SQLite file first (``cred.sqlstore`` on this process's own
pool, as the web signup would), then the runner serves the app with ``examples/`` on
PYTHONPATH. An IRC client and a broker client exchange messages through it; SIGTERM stops it
gracefully: the IRC client is told ``ERROR :... (Server shutting down)`` and the process exits
0; started again, it still has the room and its history.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from examples.chat.testing import BrokerChatClient, add_accounts, irc_connect, served_chat
from net.reactor import make_reactor


def test_pbroker_serve_runs_the_chat_app(run: Any, tmp_path: Path) -> None:
    reactor = make_reactor()  # one backend is enough here: the server's is the runner's own
    try:
        _serve_twice(reactor, run, tmp_path)
    finally:
        reactor.close()


def _serve_twice(reactor: Any, run: Any, tmp_path: Path) -> None:
    run(reactor, add_accounts(reactor, tmp_path / "chat.sqlite", {"alice": "alice-pw", "bob": "bob-pw"}))
    with served_chat(tmp_path, ["--history", "5"]) as chat:
        async def talk() -> None:
            alice = await irc_connect(reactor, chat.irc_port)
            assert " 376 " in await alice.register("alice", "alice-pw")
            alice.send("JOIN #ops")
            await alice.wait_for(r" 366 alice #ops ")
            bob = await BrokerChatClient().login(reactor, chat.broker_endpoint, "bob", "bob-pw")
            room = await bob.join("#ops")
            await alice.wait_for(r"^:bob!bob@broker JOIN #ops$")
            alice.send("PRIVMSG #ops :deploy at noon")
            await bob.wait_for("message", lambda e: e[2][:2] == ("alice", "deploy at noon"))
            await room.call_remote("say", "ack")
            await alice.wait_for(r"^:bob!bob@broker PRIVMSG #ops :ack$")
            bob.disconnect()
            await alice.wait_for(r"^:bob!bob@broker QUIT ")
            chat.proc.send_signal(signal.SIGTERM)
            await alice.wait_for(r"^ERROR :Closing Link: \S+ \(Server shutting down\)$")
            await alice.lost

        run(reactor, talk(), timeout=30)
        assert chat.proc.wait(timeout=30) == 0

    with served_chat(tmp_path) as chat:  # the room and its history were kept
        async def rejoin() -> None:
            alice = await irc_connect(reactor, chat.irc_port)
            await alice.register("alice", "alice-pw")
            alice.send("JOIN #ops")
            await alice.wait_for(r"NOTICE #ops :\[\d\d:\d\d\] <alice> deploy at noon$")
            await alice.wait_for(r"NOTICE #ops :\[\d\d:\d\d\] <bob> ack$")
            alice.send("QUIT")
            await alice.lost

        run(reactor, rejoin(), timeout=30)
        chat.proc.send_signal(signal.SIGTERM)
        assert chat.proc.wait(timeout=30) == 0
