"""A terminal chat client over the broker: rooms, members and messages as they arrive.

    PYTHONPATH=. .venv/bin/python -m examples.chat.client tcp:127.0.0.1:8800 --user alice [--join lobby]

The password comes from ``PBROKER_PASSWORD``, else it is asked on the terminal (or read as the
first line of stdin when stdin is not a terminal); it never crosses the wire (SCRAM). Then each
line typed is a command or, if it is not one, a message to the current room:

    /join ROOM        join (and switch to) ROOM       /rooms           every room, like IRC's LIST
    /part [REASON]    leave the current room          /who             the current room's members
    /msg NICK TEXT    a private message               /switch ROOM     talk in another joined room
    /topic [TEXT]     show or set the topic           /quit            leave
    /away [TEXT]      away (no text: back)            /help            this list

Everything heard is printed as it arrives (``[#room] <nick> text``, ``*nick* text`` for a private
message). One reactor runs the broker connection and stdin (``net.stdio``), so nothing blocks.
End of input (Ctrl-D) or ``/quit`` disconnects; the exit status is 0, or 1 if the login failed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

import broker
from cred.credentials import UsernamePassword
from cred.error import LoginFailed
from cred.prompt import read_password
from net.basic import LineOnlyReceiver
from net.defer import Deferred, Failure, ensure_deferred
from net.react import react
from net.stdio import StandardIO

from .pb import ChatEvent, ClientMind, ClientRoom, MemberList

__all__ = ["ChatConsole", "format_event", "main"]

HELP = __doc__.split("\n\n")[3] if __doc__ else ""


def format_event(event: ChatEvent) -> str:
    """One line for the terminal."""
    kind, room, args = event
    if kind == "message":
        sender, text, notice = args
        return f"[{room}] -{sender}- {text}" if notice else f"[{room}] <{sender}> {text}"
    if kind == "private":
        sender, text, _notice = args
        return f"*{sender}* {text}"
    if kind == "joined":
        return f"[{room}] {args[0]} joined"
    if kind == "parted":
        nick, reason = args
        return f"[{room}] {nick} left" + (f" ({reason})" if reason else "")
    if kind == "quit":
        nick, reason = args
        return f"[{room}] {nick} quit" + (f" ({reason})" if reason else "")
    if kind == "topic":
        nick, topic = args
        return f"[{room}] {nick} set the topic: {topic}"
    return f"[{room}] {kind} {args}"


class ChatConsole(LineOnlyReceiver):
    """stdin lines in, what the server says out; one command runs at a time, in order."""

    delimiter = b"\n"
    max_length = 4096

    def __init__(self, avatar: Any, done: Deferred[None]) -> None:
        self.avatar = avatar
        self.done = done
        self.rooms: dict[str, Any] = {}  # room name -> RoomHandle reference
        self.members: dict[str, MemberList] = {}
        self.current: str | None = None
        self._queue: Deferred[None] | None = None

    def say(self, line: str) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(line.encode("utf-8", "replace") + b"\n")

    def heard(self, event: ChatEvent) -> None:
        self.say(format_event(event))

    def line_received(self, raw: bytes) -> None:
        line = raw.decode("utf-8", "replace").rstrip("\r")
        if not line.strip():
            return
        # Commands run one after another: each waits for the previous one's answer.
        previous = self._queue

        async def step() -> None:
            if previous is not None:
                await previous
            try:
                await self.command(line)
            except broker.RemoteError as exc:
                self.say(f"! {exc.message if hasattr(exc, 'message') else exc}")
            except broker.ConnectionLost:
                self.say("! the connection to the server is gone")
                self.finish()

        self._queue = ensure_deferred(step())

    async def command(self, line: str) -> None:
        if not line.startswith("/"):
            await self._say_in_room(line)
            return
        name, _, rest = line[1:].partition(" ")
        name, rest = name.lower(), rest.strip()
        if name == "join" and rest:
            await self.join(rest)
        elif name == "part" and self.current is not None:
            room = self.current
            await self.rooms[room].call_remote("part", rest)
            del self.rooms[room]
            self.members.pop(room, None)
            self.current = next(iter(self.rooms), None)
        elif name == "msg" and " " in rest:
            nick, text = rest.split(" ", 1)
            await self.avatar.call_remote("private_message", nick, text)
            self.say(f"-> *{nick}* {text}")
        elif name == "topic" and self.current is not None:
            if rest:
                await self.rooms[self.current].call_remote("set_topic", rest)
            else:
                topic = await self.rooms[self.current].call_remote("topic")
                self.say(f"[{self.current}] topic: {topic['topic'] or '(none)'}")
        elif name == "who" and self.current is not None:
            members = self.members.get(self.current)
            self.say(f"[{self.current}] members: {' '.join(members.members) if members else '?'}")
        elif name == "rooms":
            for room in await self.avatar.call_remote("rooms"):
                self.say(f"{room['name']} ({room['members']}) {room['topic']}")
        elif name == "switch" and rest in self.rooms:
            self.current = rest
        elif name == "away":
            await self.avatar.call_remote("set_away", rest or None)
            self.say("you are away" if rest else "you are back")
        elif name == "quit":
            self.finish()
        else:
            self.say(HELP)

    async def join(self, name: str) -> None:
        room = name if name.startswith("#") else "#" + name
        handle = await self.avatar.call_remote("join", room, ClientRoom(room, self.heard))
        self.rooms[room] = handle
        self.current = room
        members: MemberList = await handle.call_remote("members")
        self.members[room] = members
        for when, sender, text in await handle.call_remote("history"):
            self.say(f"[{room}] (earlier) <{sender}> {text}")
        self.say(f"[{room}] members: {' '.join(members.members)}" + (f"; topic: {members.topic}" if members.topic else ""))

    async def _say_in_room(self, text: str) -> None:
        if self.current is None:
            self.say("! join a room first: /join ROOM")
            return
        await self.rooms[self.current].call_remote("say", text)

    def eof_received(self) -> bool | None:
        self.finish()
        return None

    def connection_lost(self, reason: Failure) -> None:
        self.finish()

    def finish(self) -> None:
        if not self.done.called:
            self.done.callback(None)


async def run(reactor: Any, endpoint: str, user: str, password: str, join: list[str]) -> int:
    done: Deferred[None] = Deferred()
    console: ChatConsole | None = None

    def heard(event: ChatEvent) -> None:
        if console is not None:
            console.heard(event)

    try:
        avatar = await broker.login(reactor, endpoint, UsernamePassword(user, password), ClientMind(heard))
    except LoginFailed as exc:
        print(f"{user}: login failed: {exc}", file=sys.stderr)
        return 1
    console = ChatConsole(avatar, done)
    avatar.session.on_close(console.finish)
    stdio = StandardIO(console, reactor=reactor)
    console.say(f"logged in as {user}; /help lists the commands")
    for room in join:
        await console.join(room)
    await done
    if console._queue is not None:
        await console._queue
    avatar.session.disconnect()
    stdio.lose_connection()
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("endpoint", help="the server's broker endpoint, e.g. tcp:127.0.0.1:8800")
    parser.add_argument("--user", required=True)
    parser.add_argument("--join", action="append", default=[], metavar="ROOM", help="join ROOM at once (repeatable)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    password = read_password(args.user)

    async def program(reactor: Any) -> None:
        code = await run(reactor, args.endpoint, args.user, password, args.join)
        if code:
            raise SystemExit(code)

    react(program, argv=())


if __name__ == "__main__":
    main()
