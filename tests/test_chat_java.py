"""The Java chat client (examples/java/ChatClient.java), an IRC user and a Python broker client in one room.

The server is the real deployment, ``pbroker serve chat.app:service`` in a subprocess, its accounts
written into its SQLite file first. The Java client runs as a user runs it, in a JVM whose stdin
and stdout are pipes this test's reactor holds (``spawn_process``); the IRC user (a raw socket:
PASS/NICK/USER, JOIN) and the Python broker client run on the same reactor. Every wait is for a
line or an event, within the run's deadline.

Shown: a wrong password is refused (exit 1); the Java client's join, room message, private
message, topic, part and join again reach the IRC user and the Python client; what those two say
is printed by the Java client as it arrives (an IRC private message too); /who answers from the
live member list after an IRC part; a refused command (/msg to nobody) is an error line and the
client goes on; joining again shows the room's history; /quit exits 0 and the others see the
quit. The JVM and the server are reaped, and this process's fds are back to where they were.
On a timeout the failure shows what each client had seen. Skipped, with the reason, without a
JDK or Debian's msgpack-core jar.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from examples.chat.testing import (BrokerChatClient, LineProcess, ServedChat, add_accounts, irc_connect,
                                   served_chat)
from net.defer import Deferred
from net.reactor import make_reactor

ROOT = Path(__file__).resolve().parent.parent
JAVA_CLIENT = ROOT / "clients" / "java"
BUILT = JAVA_CLIENT / "target" / "classes"
MSGPACK_JARS = [Path("/usr/share/java/msgpack-core.jar"),
                Path("/usr/share/maven-repo/org/msgpack/msgpack-core/debian/msgpack-core-debian.jar")]
ACCOUNTS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}

pytestmark = [
    pytest.mark.skipif(shutil.which("java") is None or shutil.which("javac") is None,
                       reason="no JDK: java and javac are needed (Debian package default-jdk-headless)"),
    pytest.mark.skipif(not any(jar.is_file() for jar in MSGPACK_JARS),
                       reason="no msgpack-core jar (Debian package libmsgpack-java)"),
]


def _javac(out: Path, classpath: str, sources: list[Path]) -> None:
    result = subprocess.run(["javac", "-encoding", "UTF-8", "-d", str(out), "-cp", classpath, *map(str, sources)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"javac failed on {sources[0].name}...:\n{result.stdout}{result.stderr}"


def java_classpath(work: Path) -> str:
    """The Java client's classes (clients/java/target/classes when built from the current sources,
    else compiled here from clients/java/src/main), the msgpack jar, and ChatClient compiled once."""
    msgpack = str(next(jar for jar in MSGPACK_JARS if jar.is_file()))
    sources = sorted((JAVA_CLIENT / "src" / "main" / "java").rglob("*.java"))
    marker = BUILT / "org" / "pbroker" / "PBClient.class"
    if marker.is_file() and all(source.stat().st_mtime <= marker.stat().st_mtime for source in sources):
        client_classes = str(BUILT)
    else:  # not built, or older than its sources (what `clients/java/build.sh compile` would fix)
        client_classes = str(work / "client-classes")
        _javac(Path(client_classes), msgpack, sources)
    example = work / "example-classes"
    _javac(example, os.pathsep.join([client_classes, msgpack]), [ROOT / "examples" / "java" / "ChatClient.java"])
    return os.pathsep.join([str(example), client_classes, msgpack])


class JavaConsole(LineProcess):
    """The Java client's stdout, line by line (a CR before the newline dropped); stdin for
    typing; ``ended`` fires with the exit code."""

    def __init__(self) -> None:
        super().__init__(parse=lambda line: line.rstrip("\r"))

    def wait_for(self, line: str | Callable[[str], bool], start: int = 0) -> Deferred[str]:
        """The first output line (from index ``start``) equal to ``line`` (or matching it)."""
        match = line if callable(line) else (lambda text: text == line)
        return self.lines.wait_for(match, start)


def spawn_java(reactor: Any, classpath: str, endpoint: str, user: str, password: str,
               started: list[JavaConsole]) -> JavaConsole:
    console = JavaConsole()
    env = dict(os.environ, PBROKER_PASSWORD=password)
    java = shutil.which("java")
    assert java is not None
    reactor.spawn_process(console, java, [java, "-cp", classpath, "ChatClient", endpoint, user],
                          env=env, path=str(ROOT))
    started.append(console)
    return console


def test_java_client_irc_user_and_python_client_share_a_room(run: Any, tmp_path: Path) -> None:
    classpath = java_classpath(tmp_path)
    state = tmp_path / "state"
    state.mkdir()
    fds_before = sorted(os.listdir("/proc/self/fd"))
    reactor = make_reactor()  # one backend: the JVM and the server are the parts under test
    started: list[JavaConsole] = []
    seen: dict[str, list[Any]] = {}
    try:
        run(reactor, add_accounts(reactor, state / "chat.sqlite", ACCOUNTS))
        with served_chat(state) as chat:
            try:
                run(reactor, _three_clients(reactor, chat, classpath, started, seen), timeout=60)
            except TimeoutError as exc:
                stderr = started[-1].stderr.decode("utf-8", "replace") if started else ""
                raise AssertionError("\n".join(
                    [f"{exc}; what each client saw:"]
                    + [f"--- {who}:\n" + "\n".join(map(str, lines)) for who, lines in seen.items()]
                    + [f"--- java stderr:\n{stderr}"])) from exc
            finally:
                for console in started:  # a failed run leaves no JVM behind
                    if not console.ended.called:
                        console.transport.signal_process("KILL")
                        run(reactor, console.ended, timeout=10)
            chat.proc.send_signal(signal.SIGTERM)
            assert chat.proc.wait(timeout=30) == 0
    finally:
        reactor.close()
    for console in started:  # reaped: no zombie left
        with pytest.raises(ChildProcessError):
            os.waitpid(console.transport.pid, os.WNOHANG)
    assert sorted(os.listdir("/proc/self/fd")) == fds_before


async def _three_clients(reactor: Any, chat: ServedChat, classpath: str, started: list[JavaConsole],
                         seen: dict[str, list[Any]]) -> None:
    endpoint = chat.broker_endpoint

    # A wrong password: refused, exit status 1, the reason on stderr.
    wrong = spawn_java(reactor, classpath, endpoint, "alice", "not-her-password", started)
    assert await wrong.ended == 1, wrong.stderr
    assert b"alice: login failed: " in wrong.stderr, wrong.stderr

    carol = await irc_connect(reactor, chat.irc_port)  # the IRC user
    seen["irc user carol"] = carol.lines
    assert " 376 " in await carol.register("carol", "carol-pw")
    carol.send("JOIN #mixed")
    await carol.wait_for(r" 366 carol #mixed ")
    bob = await BrokerChatClient().login(reactor, endpoint, "bob", "bob-pw")  # the Python broker client
    seen["python client bob"] = bob.events.items
    bob_room = await bob.join("#mixed")
    await carol.wait_for(r"^:bob!bob@broker JOIN #mixed$")

    alice = spawn_java(reactor, classpath, endpoint, "alice", "alice-pw", started)  # the Java client
    seen["java client alice"] = alice.lines.items
    await alice.wait_for("logged in as alice; /help lists the commands")
    alice.write_line("/join mixed")
    members = await alice.wait_for(lambda line: line.startswith("[#mixed] members: "))
    assert set(members.split(": ", 1)[1].split()) == {"carol", "bob", "alice"}, members
    await alice.wait_for("[#mixed] alice joined")
    await carol.wait_for(r"^:alice!alice@broker JOIN #mixed$")
    await bob.wait_for("joined", lambda e: e[2] == ("alice",))

    # Java -> IRC and Python.
    alice.write_line("hello from java")
    await carol.wait_for(r"^:alice!alice@broker PRIVMSG #mixed :hello from java$")
    await bob.wait_for("message", lambda e: e[2] == ("alice", "hello from java", False))

    # IRC and Python -> Java, as they arrive.
    carol.send("PRIVMSG #mixed :hi java, irc here")
    await alice.wait_for("[#mixed] <carol> hi java, irc here")
    await bob_room.call_remote("say", "and python here")
    await alice.wait_for("[#mixed] <bob> and python here")
    await carol.wait_for(r"^:bob!bob@broker PRIVMSG #mixed :and python here$")

    # Private messages both ways between Java and IRC.
    alice.write_line("/msg carol just between us")
    await carol.wait_for(r"^:alice!alice@broker PRIVMSG carol :just between us$")
    await alice.wait_for("-> *carol* just between us")
    carol.send("PRIVMSG alice :noted")
    await alice.wait_for("*carol* noted")

    # A topic set from Java reaches both; /who reads the live member list.
    alice.write_line("/topic set from java")
    await carol.wait_for(r"^:alice!alice@broker TOPIC #mixed :set from java$")
    await bob.wait_for("topic", lambda e: e[2] == ("alice", "set from java"))
    await alice.wait_for("[#mixed] alice set the topic: set from java")
    carol.send("PART #mixed :back soon")
    await alice.wait_for("[#mixed] carol left (back soon)")
    mark = alice.mark()
    alice.write_line("/who")
    who = await alice.wait_for(lambda line: line.startswith("[#mixed] members: "), mark)
    assert sorted(who.split(": ", 1)[1].split()) == ["alice", "bob"], who
    carol.send("JOIN #mixed")
    await alice.wait_for("[#mixed] carol joined")

    # A command the server refuses is an error line; the client goes on.
    mark = alice.mark()
    alice.write_line("/msg nobody are you there")
    error = await alice.wait_for(lambda line: line.startswith("! "), mark)
    assert "nobody" in error, error
    alice.write_line("still here")
    await carol.wait_for(r"^:alice!alice@broker PRIVMSG #mixed :still here$")

    # /part, then /join again: the others see both; the room's history is shown on joining.
    alice.write_line("/part see you")
    await carol.wait_for(r"^:alice!alice@broker PART #mixed :see you$")
    await bob.wait_for("parted", lambda e: e[2] == ("alice", "see you"))
    await alice.wait_for("[#mixed] alice left (see you)")
    mark, irc_mark = alice.mark(), carol.mark()
    alice.write_line("/join #mixed")
    await alice.wait_for("[#mixed] (earlier) <carol> hi java, irc here", mark)
    await alice.wait_for("[#mixed] (earlier) <alice> still here", mark)
    members = await alice.wait_for(lambda line: line.startswith("[#mixed] members: "), mark)
    assert members.endswith("; topic: set from java"), members
    assert set(members.split(": ", 1)[1].split(";")[0].split()) == {"carol", "bob", "alice"}, members
    await carol.wait_for(r"^:alice!alice@broker JOIN #mixed$", irc_mark)

    # /quit: the JVM exits 0; the IRC user and the Python client see alice quit.
    mark = carol.mark()
    alice.write_line("/quit")
    assert await alice.ended == 0, alice.stderr
    assert alice.lines.items[-1] == "bye"
    await carol.wait_for(r"^:alice!alice@broker QUIT :Connection closed$", mark)
    await bob.wait_for("quit", lambda e: e[2][0] == "alice")

    carol.send("QUIT")
    await carol.lost
    bob.disconnect()
