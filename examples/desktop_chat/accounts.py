"""Accounts: one interface for the window, two protocols under it (the broker and IRC).

The window knows only :class:`Account`: ``connect``, ``join``, ``say``, ``part``, ``set_topic``,
``list_rooms``, ``disconnect``, all coroutines awaited on the reactor's loop (so a slow server
never blocks the window), and ``on_event`` for what arrives unasked, as ``(kind, room, args)``:

    message  (sender, text, notice)     joined (nick,)         parted (nick, reason)
    quit     (nick, reason)             topic  (nick, topic)   members (nicks,)
    private  (sender, text, notice)     server (sender, text, notice)
    error    (code, text)               closed (reason,)

:class:`BrokerAccount` is a chat avatar (``broker.login`` with a ``cred`` UsernamePassword,
``examples.chat.pb.ClientMind`` / ``ClientRoom`` as the callback objects, the room's live
``MemberList`` Cacheable for members); :class:`IRCAccount` is :class:`~.irc_client.IRCClient`
over a TCP connection of our own stack.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import broker
from cred.credentials import UsernamePassword
from examples.chat.pb import ClientMind, ClientRoom, MemberList
from net.defer import Deferred
from net.endpoints import client
from net.protocol import Factory

from .irc_client import IRCClient, IRCEvent

__all__ = ["AccountEvent", "AccountSettings", "Account", "BrokerAccount", "IRCAccount", "make_account",
           "room_name"]

AccountEvent = IRCEvent
KINDS = ("broker", "irc")


def room_name(name: str) -> str:
    """Rooms are IRC channels: ``lobby`` is ``#lobby``."""
    name = name.strip()
    return name if name.startswith("#") else "#" + name


@dataclass(frozen=True)
class AccountSettings:
    """What the login dialog or the command line gives: which server, who, how."""

    kind: str  # "broker" or "irc"
    endpoint: str  # a client endpoint string: tcp:HOST:PORT
    user: str
    password: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"an account is one of {KINDS}, not {self.kind!r}")
        if not self.user:
            raise ValueError("an account needs a user name")

    @property
    def key(self) -> str:
        """``broker:alice``: how the window and its test hook name the account."""
        return f"{self.kind}:{self.user}"


class Account(ABC):
    """A connection to the chat server, as the window uses it."""

    def __init__(self, reactor: Any, settings: AccountSettings, on_event: Callable[[AccountEvent], object]) -> None:
        self.reactor = reactor
        self.settings = settings
        self.on_event = on_event

    @property
    def key(self) -> str:
        return self.settings.key

    @abstractmethod
    async def connect(self) -> None: ...

    @abstractmethod
    async def join(self, room: str) -> list[str]:
        """Join ``room``; its members. History and topic arrive as events."""

    @abstractmethod
    async def say(self, room: str, text: str) -> None: ...

    @abstractmethod
    async def part(self, room: str) -> None: ...

    @abstractmethod
    async def set_topic(self, room: str, topic: str) -> None: ...

    @abstractmethod
    async def list_rooms(self) -> list[dict[str, Any]]: ...

    @abstractmethod
    async def private_message(self, nick: str, text: str) -> None: ...

    @abstractmethod
    async def disconnect(self) -> None:
        """Say goodbye and close; returns once the connection is closed."""


class BrokerAccount(Account):
    """A chat avatar over the broker."""

    def __init__(self, reactor: Any, settings: AccountSettings, on_event: Callable[[AccountEvent], object]) -> None:
        super().__init__(reactor, settings, on_event)
        self.avatar: Any = None
        self.rooms: dict[str, Any] = {}  # room -> RoomHandle reference
        self.member_lists: dict[str, MemberList] = {}

    async def connect(self) -> None:
        credentials = UsernamePassword(self.settings.user, self.settings.password)
        self.avatar = await broker.login(self.reactor, self.settings.endpoint, credentials,
                                         ClientMind(self.on_event))
        self.avatar.session.on_close(lambda: self.on_event(("closed", "", ("the broker connection closed",))))

    async def join(self, room: str) -> list[str]:
        room = room_name(room)
        handle = await self.avatar.call_remote("join", room, ClientRoom(room, self.on_event))
        self.rooms[room] = handle
        for when, sender, text in await handle.call_remote("history"):
            self.on_event(("message", room, (sender, f"(earlier) {text}", True)))
        members: MemberList = await handle.call_remote("members")
        self.member_lists[room] = members

        def changed(copy: MemberList) -> None:
            self.on_event(("members", room, (list(copy.members),)))
            self.on_event(("topic", room, ("", copy.topic)))

        members.on_change = changed
        changed(members)
        return list(members.members)

    async def say(self, room: str, text: str) -> None:
        await self.rooms[room].call_remote("say", text)
        # The server tells everyone in the room but the sender: show it once it is accepted.
        self.on_event(("message", room, (self.settings.user, text, False)))

    async def part(self, room: str) -> None:
        handle = self.rooms.pop(room)
        self.member_lists.pop(room, None)
        await handle.call_remote("part", "")

    async def set_topic(self, room: str, topic: str) -> None:
        await self.rooms[room].call_remote("set_topic", topic)

    async def list_rooms(self) -> list[dict[str, Any]]:
        rooms: list[dict[str, Any]] = await self.avatar.call_remote("rooms")
        return rooms

    async def private_message(self, nick: str, text: str) -> None:
        await self.avatar.call_remote("private_message", nick, text)

    async def disconnect(self) -> None:
        if self.avatar is not None:
            session = self.avatar.session
            self.avatar = None
            closed: Deferred[None] = Deferred()
            session.on_close(lambda: None if closed.called else closed.callback(None))
            session.disconnect()
            await closed


class _IRCFactory(Factory):
    """Builds the one :class:`IRCClient` of a connection, with the account's nick and password."""

    def __init__(self, nick: str, password: str | None, on_event: Callable[[AccountEvent], object]) -> None:
        super().__init__()
        self.nick, self.password, self.on_event = nick, password, on_event

    def build_protocol(self, addr: Any) -> IRCClient:
        protocol = IRCClient(self.nick, self.password, self.on_event)
        protocol.factory = self
        return protocol


class IRCAccount(Account):
    """An IRC user, on :class:`~.irc_client.IRCClient`."""

    def __init__(self, reactor: Any, settings: AccountSettings, on_event: Callable[[AccountEvent], object]) -> None:
        super().__init__(reactor, settings, on_event)
        self.protocol: IRCClient | None = None

    def _client(self) -> IRCClient:
        if self.protocol is None:
            raise RuntimeError(f"{self.key} is not connected: connect() first")
        return self.protocol

    async def connect(self) -> None:
        settings = self.settings

        factory = _IRCFactory(settings.user, settings.password or None, self.on_event)
        protocol: IRCClient = await client(self.reactor, settings.endpoint).connect(factory)
        self.protocol = protocol
        protocol.closed.add_callback(lambda _: self.on_event(("closed", "", ("the IRC connection closed",))))
        try:
            await protocol.registered
        except Exception:
            protocol.transport.lose_connection()
            await protocol.closed
            raise

    async def join(self, room: str) -> list[str]:
        return await self._client().join(room_name(room))

    async def say(self, room: str, text: str) -> None:
        self._client().say(room, text)
        # IRC does not echo our own messages: show it as the broker's echo would.
        self.on_event(("message", room, (self._client().nick, text, False)))

    async def part(self, room: str) -> None:
        self._client().part(room)

    async def set_topic(self, room: str, topic: str) -> None:
        self._client().set_topic(room, topic)

    async def list_rooms(self) -> list[dict[str, Any]]:
        return await self._client().list_rooms()

    async def private_message(self, nick: str, text: str) -> None:
        self._client().say(nick, text)

    async def disconnect(self) -> None:
        protocol, self.protocol = self.protocol, None
        if protocol is not None and not protocol.closed.called:
            await protocol.quit("desktop client closed")


def make_account(reactor: Any, settings: AccountSettings, on_event: Callable[[AccountEvent], object]) -> Account:
    kinds: dict[str, type[Account]] = {"broker": BrokerAccount, "irc": IRCAccount}
    return kinds[settings.kind](reactor, settings, on_event)
