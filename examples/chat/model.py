"""The chat model: users, rooms, topics, private messages and presence, with no I/O.

Every interface (IRC, the broker, anything later) is an adapter: each connected client is a
:class:`Participant` that the model pushes events to, and each client's commands are calls on
:class:`ChatModel`. So an IRC user and a broker user in one room see each other because they are
both members of one :class:`Room`, not because the interfaces know about each other.

Rules the model keeps (the state machine test checks them):

* a nickname is connected at most once (compared IRC-style, case-insensitively); a user's nick
  is their account name, so two connections of one account are refused (:class:`NickInUse`);
* a room's members are exactly the connected users who joined and did not part or quit;
* every event about a room goes to exactly the members at that moment, the actor included
  (IRC echoes your own JOIN/PART/TOPIC; PRIVMSG is not echoed to its sender, as in IRC);
* a user who quits is removed from every room, and every user sharing a room with them hears
  one ``user_quit``;
* rooms persist when empty (their topic too), and keep the last ``history`` messages.

A participant that raises is logged and does not stop the others from hearing the event.
Errors are :class:`ChatError` subclasses naming what the *client* asked wrongly.
"""

from __future__ import annotations

import logging
import re
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "ChatError",
    "NickInUse",
    "InvalidNick",
    "NoSuchNick",
    "NoSuchRoom",
    "InvalidRoomName",
    "NotInRoom",
    "TextTooLong",
    "TooManyRooms",
    "InvalidText",
    "check_text",
    "Participant",
    "ModelObserver",
    "HistoryLine",
    "Room",
    "User",
    "ChatModel",
    "irc_lower",
    "room_name",
    "valid_nick",
    "MAX_NICK_LENGTH",
    "MAX_ROOM_LENGTH",
    "MAX_TOPIC_LENGTH",
    "MAX_TEXT_LENGTH",
]

log = logging.getLogger(__name__)

MAX_NICK_LENGTH = 30
MAX_ROOM_LENGTH = 50
MAX_TOPIC_LENGTH = 390
#: What an IRC client can put in one line (512 bytes less the command); the broker is held to
#: the same bound. (Relayed with a long prefix, IRC's end of such a line is cut: as every server does.)
MAX_TEXT_LENGTH = 500

_NICK = re.compile(r"[A-Za-z\[\]\\`_^{|}][A-Za-z0-9\[\]\\`_^{|}-]*\Z")
_ROOM = re.compile(r"#[^\x00\x07\r\n ,:]+\Z")
_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ[]\\~", "abcdefghijklmnopqrstuvwxyz{}|^")


def irc_lower(name: str) -> str:
    """The rfc1459 case mapping (``[]\\~`` are the capitals of ``{}|^``): the key of a nick or room."""
    return name.translate(_LOWER)


def valid_nick(nick: str) -> bool:
    return 0 < len(nick) <= MAX_NICK_LENGTH and _NICK.match(nick) is not None


def room_name(name: str) -> str:
    """``lobby`` and ``#lobby`` are the same room (the broker need not spell IRC's ``#``);
    raises :class:`InvalidRoomName` for anything IRC could not name."""
    if not isinstance(name, str):
        raise InvalidRoomName(repr(name))
    if not name.startswith("#"):
        name = "#" + name
    if len(name) > MAX_ROOM_LENGTH or _ROOM.match(name) is None:
        raise InvalidRoomName(name)
    return name


class ChatError(Exception):
    """A client asked for something the model refuses; the text is for that client."""

    def __init__(self, subject: str, message: str) -> None:
        super().__init__(f"{subject}: {message}")
        self.subject = subject
        self.message = message


class NickInUse(ChatError):
    def __init__(self, nick: str) -> None:
        super().__init__(nick, "nickname is already in use (that user is connected already)")


class InvalidNick(ChatError):
    def __init__(self, nick: str) -> None:
        super().__init__(nick, f"erroneous nickname: letters, digits and []\\`_^{{|}}- only, "
                               f"not starting with a digit or '-', at most {MAX_NICK_LENGTH}")


class NoSuchNick(ChatError):
    def __init__(self, nick: str) -> None:
        super().__init__(nick, "no such nick (not connected)")


class NoSuchRoom(ChatError):
    def __init__(self, room: str) -> None:
        super().__init__(room, "no such channel")


class InvalidRoomName(ChatError):
    def __init__(self, room: str) -> None:
        super().__init__(room, f"not a valid room name: '#' then up to {MAX_ROOM_LENGTH - 1} characters, "
                               "no spaces, commas, colons or control characters")


class NotInRoom(ChatError):
    def __init__(self, room: str) -> None:
        super().__init__(room, "you are not in that channel (join it first)")


class TextTooLong(ChatError):
    def __init__(self, what: str, limit: int) -> None:
        super().__init__(what, f"longer than {limit} characters")


class TooManyRooms(ChatError):
    def __init__(self, room: str, limit: int, whose: str) -> None:
        super().__init__(room, f"{whose} limit of {limit} rooms reached (part one first)" if whose == "your"
                         else f"the server's limit of {limit} rooms is reached (join an existing room)")
        self.whose = whose


class InvalidText(ChatError):
    def __init__(self, what: str, why: str = "must not contain line breaks or NUL (send one message per line)") -> None:
        super().__init__(what, why)


_FORBIDDEN = re.compile(r"[\r\n\x00]")


def check_text(what: str, text: str, limit: int) -> str:
    """Refuse what no interface could carry: IRC would read a line break as a new command."""
    if not isinstance(text, str):
        raise InvalidText(what, f"must be text (a str), not {type(text).__name__}")
    if len(text) > limit:
        raise TextTooLong(what, limit)
    if _FORBIDDEN.search(text):
        raise InvalidText(what)
    return text


class Participant(Protocol):
    """One connected client, as the model sees it: where its events go.

    Methods must not block; an adapter that queues them for a slow client must bound the queue
    (and disconnect the client past it), because the model does not wait.
    """

    def room_joined(self, room: Room, nick: str) -> None:
        """``nick`` joined ``room`` (perhaps this participant itself)."""

    def room_parted(self, room: Room, nick: str, reason: str) -> None:
        """``nick`` left ``room`` (perhaps this participant itself)."""

    def room_message(self, room: Room, sender: str, text: str, notice: bool) -> None:
        """``sender`` said ``text`` in ``room`` (never this participant's own message)."""

    def private_message(self, sender: str, text: str, notice: bool) -> None:
        """``sender`` said ``text`` to this participant alone."""

    def topic_changed(self, room: Room, nick: str, topic: str) -> None:
        """``nick`` set ``room``'s topic (perhaps this participant itself)."""

    def user_quit(self, nick: str, reason: str, rooms: list[str]) -> None:
        """``nick``, who shared ``rooms`` with this participant, disconnected."""


class ModelObserver(Protocol):
    """What persistence (the store) and shared views (the broker's member lists) hear, whoever
    caused it: fire-and-forget, the model does not wait. An observer defines the methods it
    wants of ``room_created(room)``, ``topic_changed(room)``, ``message_said(room, line)``,
    ``member_joined(room, nick)`` and ``member_left(room, nick)``; the others are not called."""


@dataclass(frozen=True)
class HistoryLine:
    """One message kept for the room's short history (shown to whoever joins)."""

    when: float
    sender: str
    text: str


@dataclass
class Room:
    name: str
    created_at: float
    topic: str = ""
    topic_by: str = ""
    topic_at: float = 0.0
    #: irc_lower(nick) -> nick as the user spells it, in joining order.
    members: dict[str, str] = field(default_factory=dict)
    history: deque[HistoryLine] = field(default_factory=deque)

    @property
    def key(self) -> str:
        return irc_lower(self.name)

    def nicks(self) -> list[str]:
        return list(self.members.values())


@dataclass
class User:
    nick: str
    participant: Participant
    #: What the interface knows of the client, for WHO/WHOIS ("irc", "broker"; user; host).
    via: str = "?"
    username: str = ""
    host: str = ""
    realname: str = ""
    connected_at: float = 0.0
    away: str | None = None
    rooms: dict[str, Room] = field(default_factory=dict)  # irc_lower(room name) -> Room

    @property
    def key(self) -> str:
        return irc_lower(self.nick)


class ChatModel:
    """All rooms and connected users of one server."""

    def __init__(self, *, history: int = 20, now: Callable[[], float] = time.time,
                 observers: Iterable[ModelObserver] = (), max_rooms: int = 10_000,
                 max_rooms_per_user: int = 50) -> None:
        if history < 0:
            raise ValueError(f"history must be >= 0 messages, not {history}")
        self.history_length = history
        #: Bounds on what users can make the server keep: rooms persist, so they are counted.
        self.max_rooms = max_rooms
        self.max_rooms_per_user = max_rooms_per_user
        self.now = now
        self.observers: list[ModelObserver] = list(observers)
        self.rooms: dict[str, Room] = {}
        self.users: dict[str, User] = {}

    # -- restoring what the store kept ---------------------------------------------------

    def restore_room(self, name: str, created_at: float, topic: str = "", topic_by: str = "",
                     topic_at: float = 0.0, history: Iterable[HistoryLine] = ()) -> Room:
        """Put back a room loaded from the store (no observer call: it is stored already)."""
        room = Room(room_name(name), created_at, topic, topic_by, topic_at,
                    history=deque(history, maxlen=self.history_length))
        self.rooms[room.key] = room
        return room

    # -- users ------------------------------------------------------------------------------

    def connect(self, nick: str, participant: Participant, *, via: str = "?", username: str = "",
                host: str = "", realname: str = "") -> User:
        if not valid_nick(nick):
            raise InvalidNick(nick)
        key = irc_lower(nick)
        if key in self.users:
            raise NickInUse(nick)
        user = User(nick, participant, via, username or nick, host, realname, self.now())
        self.users[key] = user
        return user

    def disconnect(self, nick: str, reason: str = "Client quit") -> None:
        """The user is gone: out of every room, and each user sharing one hears it once."""
        user = self.users.get(irc_lower(nick))
        if user is None:
            return
        if _FORBIDDEN.search(reason):
            reason = "Client quit"
        shared: dict[str, list[str]] = {}
        left = list(user.rooms.values())
        for room in left:
            del room.members[user.key]
            for key in room.members:
                shared.setdefault(key, []).append(room.name)
        user.rooms.clear()
        for room in left:
            self._observe("member_left", room, user.nick)
        # Told while still listed, so an adapter can still find the quitter's user@host.
        for key, rooms in shared.items():
            other = self.users.get(key)
            if other is not None and other is not user:
                self._tell(other, "user_quit", user.nick, reason, rooms)
        self.users.pop(user.key, None)

    def user(self, nick: str) -> User:
        if not isinstance(nick, str):  # a broker client can send anything
            raise NoSuchNick(repr(nick)[:MAX_NICK_LENGTH])
        try:
            return self.users[irc_lower(nick)]
        except KeyError:
            raise NoSuchNick(nick) from None

    def find_user(self, nick: str) -> User | None:
        return self.users.get(irc_lower(nick)) if isinstance(nick, str) else None

    def set_away(self, nick: str, message: str | None) -> None:
        """Presence: ``None`` is here, a text is away with that reason."""
        if message is not None:
            check_text("away message", message, MAX_TEXT_LENGTH)
        self.user(nick).away = message or None

    # -- rooms ------------------------------------------------------------------------------

    def room(self, name: str) -> Room:
        try:
            return self.rooms[irc_lower(room_name(name))]
        except KeyError:
            raise NoSuchRoom(name) from None

    def find_room(self, name: str) -> Room | None:
        try:
            return self.rooms.get(irc_lower(room_name(name)))
        except InvalidRoomName:
            return None

    def join(self, nick: str, name: str) -> tuple[Room, bool]:
        """Join (creating the room if new); ``(room, False)`` if already a member (no event)."""
        user = self.user(nick)
        canonical = room_name(name)
        room = self.rooms.get(irc_lower(canonical))
        if room is not None and user.key in room.members:
            return room, False
        if len(user.rooms) >= self.max_rooms_per_user:
            raise TooManyRooms(canonical, self.max_rooms_per_user, "your")
        if room is None:
            if len(self.rooms) >= self.max_rooms:
                raise TooManyRooms(canonical, self.max_rooms, "server")
            room = Room(canonical, self.now(), history=deque(maxlen=self.history_length))
            self.rooms[room.key] = room
            self._observe("room_created", room)
        if user.key in room.members:
            return room, False
        room.members[user.key] = user.nick
        user.rooms[room.key] = room
        # Observers first: a client's shared member list is current when its event arrives.
        self._observe("member_joined", room, user.nick)
        self._tell_room(room, "room_joined", room, user.nick)
        return room, True

    def part(self, nick: str, name: str, reason: str = "") -> Room:
        user = self.user(nick)
        room = self._member_room(user, name)
        reason = reason[:MAX_TEXT_LENGTH] if not _FORBIDDEN.search(reason) else ""
        recipients = list(room.members)
        del room.members[user.key]
        del user.rooms[room.key]
        self._observe("member_left", room, user.nick)
        for key in recipients:  # the members before the part: the parting user hears it too
            other = self.users.get(key)
            if other is not None:
                self._tell(other, "room_parted", room, user.nick, reason)
        return room

    def say(self, nick: str, name: str, text: str, *, notice: bool = False) -> Room:
        user = self.user(nick)
        room = self._member_room(user, name)
        check_text("message", text, MAX_TEXT_LENGTH)
        if not notice and self.history_length:
            line = HistoryLine(self.now(), user.nick, text)
            room.history.append(line)
            self._observe("message_said", room, line)
        self._tell_room(room, "room_message", room, user.nick, text, notice, skip=user.key)
        return room

    def private(self, nick: str, target: str, text: str, *, notice: bool = False) -> User:
        """A private message; returns the recipient (an IRC server answers 301 if away)."""
        sender = self.user(nick)
        recipient = self.user(target)
        check_text("message", text, MAX_TEXT_LENGTH)
        self._tell(recipient, "private_message", sender.nick, text, notice)
        return recipient

    def set_topic(self, nick: str, name: str, topic: str) -> Room:
        user = self.user(nick)
        room = self._member_room(user, name)
        check_text("topic", topic, MAX_TOPIC_LENGTH)
        room.topic, room.topic_by, room.topic_at = topic, user.nick, self.now()
        self._observe("topic_changed", room)
        self._tell_room(room, "topic_changed", room, user.nick, topic)
        return room

    def _member_room(self, user: User, name: str) -> Room:
        room = self.room(name)
        if user.key not in room.members:
            raise NotInRoom(room.name)
        return room

    # -- delivery ---------------------------------------------------------------------------

    def _tell_room(self, room: Room, event: str, *args: object, skip: str | None = None) -> None:
        for key in list(room.members):
            if key != skip:
                user = self.users.get(key)
                if user is not None:
                    self._tell(user, event, *args)

    def _tell(self, user: User, event: str, *args: object) -> None:
        try:
            getattr(user.participant, event)(*args)
        except Exception:
            log.exception("participant %s (%s) failed on %s; the others still hear it", user.nick, user.via, event)

    def _observe(self, event: str, *args: object) -> None:
        for observer in self.observers:
            method = getattr(observer, event, None)
            if method is None:
                continue
            try:
                method(*args)
            except Exception:
                log.exception("model observer %r failed on %s", observer, event)
