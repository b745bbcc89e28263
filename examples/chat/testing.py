"""Helpers the chat tests share: a scripted IRC client, an in-memory user database, broker clients.

:class:`IRCTestClient` is a real IRC client over a real connection, just a dumb one: it sends
the lines a test scripts and records every line it receives; :meth:`IRCTestClient.wait_for`
returns a Deferred that fires with the first received line matching, so a test waits on what
the server says, never on time. :class:`MemoryUsers` is ``cred``'s in-memory verifier database
with the ``check_password`` the IRC side asks of ``cred.sqlstore.SQLUserDatabase``.
:class:`BrokerChatClient` logs in over the broker and records what its rooms and mind hear;
:class:`LineProcess` is a client program run as a subprocess, its output read line by line.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import broker
from cred.checkers import InMemoryUsernamePasswordDatabase
from cred.credentials import UsernamePassword
from cred.scram import MIN_ITERATIONS
from net.basic import LineOnlyReceiver
from net.defer import Deferred, Failure, succeed
from net.endpoints import client
from net.protocol import Factory, ProcessProtocol

from .pb import ChatEvent, ClientMind, ClientRoom, MemberList

__all__ = ["MemoryUsers", "IRCTestClient", "irc_connect", "BrokerChatClient", "Waiters", "LineProcess",
           "add_accounts", "served_chat", "ServedChat"]

ROOT = Path(__file__).resolve().parent.parent.parent


class MemoryUsers(InMemoryUsernamePasswordDatabase):
    """Verifiers in memory (cheap iterations, for tests), with ``check_password``."""

    def __init__(self, users: Mapping[str, str] | None = None, *, iterations: int = MIN_ITERATIONS) -> None:
        super().__init__(users, iterations=iterations)

    def check_password(self, username: str, password: str) -> Deferred[bool]:
        verifier = self.get_scram_verifier(username)
        return succeed(verifier is not None and verifier.check_password(password))


class Waiters:
    """Items recorded in order, and Deferreds waiting for the first one that matches."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._waiting: list[tuple[Callable[[Any], bool], int, Deferred[Any]]] = []

    def add(self, item: Any) -> None:
        self.items.append(item)
        for entry in list(self._waiting):
            match, start, d = entry
            if len(self.items) - 1 >= start and match(item):
                self._waiting.remove(entry)
                d.callback(item)

    def wait_for(self, match: Callable[[Any], bool], start: int = 0) -> Deferred[Any]:
        """The first item at index >= ``start`` that matches (perhaps one already recorded)."""
        for item in self.items[start:]:
            if match(item):
                return succeed(item)
        d: Deferred[Any] = Deferred()
        self._waiting.append((match, start, d))
        return d

    def fail_all(self, failure: Failure) -> None:
        waiting, self._waiting = self._waiting, []
        for _, _, d in waiting:
            d.errback(failure)



class LineProcess(ProcessProtocol):
    """A child process a test talks to line by line (a client's terminal, say).

    Each line of its stdout, decoded and passed through ``parse``, is recorded in ``lines`` (a
    :class:`Waiters`), so a test waits for what the process prints, never on time;
    :meth:`write_line` types a line on its stdin. ``stderr`` keeps what it wrote there (only the
    last ``stderr_limit`` bytes, if given: a chatty child cannot grow the test without bound),
    for the test's failure message; ``ended`` fires with its exit code.
    """

    def __init__(self, parse: Callable[[str], Any] | None = None, *, stderr_limit: int | None = None) -> None:
        self.lines = Waiters()
        self.ended: Deferred[int] = Deferred()
        self.stderr = b""
        self._parse = parse
        self._stderr_limit = stderr_limit
        self._partial = b""

    def out_received(self, data: bytes) -> None:
        *complete, self._partial = (self._partial + data).split(b"\n")
        for raw in complete:
            line = raw.decode()
            self.lines.add(line if self._parse is None else self._parse(line))

    def err_received(self, data: bytes) -> None:
        self.stderr += data
        if self._stderr_limit is not None:
            self.stderr = self.stderr[-self._stderr_limit:]

    def write_line(self, line: str) -> None:
        self.transport.write(line.encode() + b"\n")

    def mark(self) -> int:
        """The index the next line will have: a ``start`` for ``lines.wait_for``."""
        return len(self.lines.items)

    def process_ended(self, reason: Failure) -> None:
        self.ended.callback(getattr(reason.value, "exit_code", 0) or 0)

class IRCTestClient(LineOnlyReceiver):
    """A line-recording IRC client; lines are decoded text without CR LF."""

    delimiter = b"\r\n"
    max_length = 1 << 20

    def __init__(self) -> None:
        self.received = Waiters()
        #: Fires with the reason (an exception, as a value) once the connection is gone.
        self.lost: Deferred[BaseException] = Deferred()

    @property
    def lines(self) -> list[str]:
        return self.received.items

    def line_received(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace")
        if text.startswith("PING "):
            self.send("PONG " + text[5:])
        self.received.add(text)

    def send(self, line: str) -> None:
        self.transport.write(line.encode("utf-8") + b"\r\n")

    def wait_for(self, pattern: str, start: int = 0) -> Deferred[str]:
        """The first received line (from index ``start``) that ``pattern`` (a regex) searches."""
        regex = re.compile(pattern)
        return self.received.wait_for(lambda line: regex.search(line) is not None, start)

    def mark(self) -> int:
        """The index of the next line: ``wait_for(..., start=client.mark())`` ignores older ones."""
        return len(self.lines)

    async def register(self, nick: str, password: str | None) -> str:
        """PASS/NICK/USER; the line that ended registration (001 or an error numeric)."""
        mark = self.mark()
        if password is not None:
            self.send(f"PASS {password}")
        self.send(f"NICK {nick}")
        self.send(f"USER {nick} 0 * :Test {nick}")
        line: str = await self.wait_for(r"^:\S+ (001|376|4\d\d) ", mark)
        if " 001 " in line:
            line = await self.wait_for(r"^:\S+ (376|422) ", mark)
        return line

    def connection_lost(self, reason: Failure) -> None:
        self.received.fail_all(reason)
        self.lost.callback(reason.value)


async def irc_connect(reactor: Any, port: int) -> IRCTestClient:
    proto: IRCTestClient = await client(reactor, f"tcp:127.0.0.1:{port}").connect(Factory.for_protocol(IRCTestClient))
    return proto


class BrokerChatClient:
    """A broker chat user: its avatar, its rooms' handles and every event it heard, in order."""

    def __init__(self) -> None:
        self.events = Waiters()
        self.avatar: Any = None
        self.rooms: dict[str, Any] = {}
        self._room_objects: dict[str, ClientRoom] = {}
        self.mind = ClientMind(self.events.add)

    async def login(self, reactor: Any, endpoint: str, name: str, password: str) -> BrokerChatClient:
        self.avatar = await broker.login(reactor, endpoint, UsernamePassword(name, password), self.mind)
        return self

    async def join(self, room: str) -> Any:
        obj = ClientRoom(room if room.startswith("#") else "#" + room, self.events.add)
        self._room_objects[obj.name] = obj
        handle = await self.avatar.call_remote("join", room, obj)
        self.rooms[obj.name] = handle
        return handle

    async def members(self, room: str) -> MemberList:
        members: MemberList = await self.rooms[room].call_remote("members")
        return members

    def wait_for(self, kind: str, match: Callable[[ChatEvent], bool] = lambda e: True,
                 start: int = 0) -> Deferred[ChatEvent]:
        return self.events.wait_for(lambda event: event[0] == kind and match(event), start)

    def mark(self) -> int:
        return len(self.events.items)

    def disconnect(self) -> None:
        if self.avatar is not None:
            self.avatar.session.disconnect()


async def add_accounts(reactor: Any, db: Path, accounts: Mapping[str, str]) -> None:
    """Write accounts into the chat database at ``db`` (as the web signup would), on a pool of
    this process's own, closed again before returning."""
    from cred.scram import MIN_ITERATIONS
    from cred.sqlstore import SQLUserDatabase
    from net.adbapi import ConnectionPool

    pool = ConnectionPool("sqlite3", str(db), reactor=reactor)
    try:
        users = SQLUserDatabase(pool, iterations=MIN_ITERATIONS)
        await users.create_table()
        for name, password in accounts.items():
            await users.add_user(name, password)
    finally:
        await pool.close()


class ServedChat:
    """``pbroker serve chat.app:service`` running: the process, its IRC and broker ports."""

    def __init__(self, proc: subprocess.Popen[str], irc_port: int, broker_port: int) -> None:
        self.proc, self.irc_port, self.broker_port = proc, irc_port, broker_port

    @property
    def broker_endpoint(self) -> str:
        return f"tcp:127.0.0.1:{self.broker_port}"


@contextmanager
def served_chat(state_dir: Path, extra: Sequence[str] = ()) -> Iterator[ServedChat]:
    """The runner serving the chat app from ``state_dir`` (database ``chat.sqlite`` there) on
    loopback ports it picks; the ports are read from the "listening on" lines it prints (IRC
    first, then the broker: the order of the service tree). Killed and reaped afterwards if
    the test did not stop it."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "examples"), str(ROOT)]))
    log_path = state_dir / "server.log"  # a file, not a pipe: nobody has to drain it
    # Leaving the with statement closes the runner's stdout, reaps it, and closes its log.
    with open(log_path, "a") as log_file, subprocess.Popen(
        [sys.executable, "-m", "broker", "serve", "chat.app:service", "--listen", "tcp:0:interface=127.0.0.1",
         "--state-dir", str(state_dir), "--log-level", "WARNING", "--",
         "--irc", "tcp:0:interface=127.0.0.1", "--db", "chat.sqlite", *extra],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log_file, text=True, env=env, cwd=state_dir,
    ) as proc:
        try:
            assert proc.stdout is not None
            ports = []
            for line in proc.stdout:
                found = re.search(r"listening on tcp:127\.0\.0\.1:(\d+)", line)
                if found:
                    ports.append(int(found.group(1)))
                if "serving chat.app:service" in line:
                    break
            else:
                proc.wait()
                raise AssertionError(f"the runner exited {proc.returncode} before serving: {log_path.read_text()}")
            assert len(ports) == 2, f"expected an IRC and a broker listener, got ports {ports}"
            yield ServedChat(proc, ports[0], ports[1])
        finally:
            if proc.poll() is None:
                proc.kill()
