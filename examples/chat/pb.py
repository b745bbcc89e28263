"""The broker interface: a cred realm whose avatars are chat users, and the client's side of it.

After login a client holds only its :class:`ChatAvatar` (``perspective_`` methods):

    join(room_name, client_room_ref) -> room      a :class:`RoomHandle` (say, part, set_topic,
                                                  members, history, topic)
    private_message(nick, text)                   to anyone connected, IRC or broker
    rooms() -> [{"name", "members", "topic"}]     every room, like IRC's LIST
    whois(nick) -> {"nick", "via", "rooms", "away"}
    set_away(text_or_None)

The server calls the client back (one-way, ``call_remote_no_answer``): on ``client_room_ref``
``message(sender, text, notice)``, ``joined(nick)``, ``parted(nick, reason)``, ``topic(nick,
topic)``, ``quit(nick, reason)``; on the login ``mind`` ``private_message(sender, text, notice)``.

A room's member list is a ``broker.Cacheable`` (:class:`RoomMembers`, docs/PROTOCOL.md §16): the
client's :class:`MemberList` copy follows joins, parts and topic changes live, whoever made them
(IRC users too), because :class:`BrokerRooms` observes the model itself.

The nick is the account name: a second login of a connected user is refused (LoginDenied).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from zope.interface import implementer
from zope.interface.interface import InterfaceClass

import broker
from broker.login import Avatar, IPerspective
from cred.checkers import AvatarId
from cred.error import LoginDenied
from cred.portal import IRealm, LoginResult

from .limits import TokenBucket
from .model import ChatError, ChatModel, Room, irc_lower, room_name

__all__ = [
    "ChatRealm",
    "ChatAvatar",
    "RoomHandle",
    "RoomMembers",
    "BrokerRooms",
    "MemberList",
    "ClientRoom",
    "ClientMind",
    "SendingTooFast",
]

log = logging.getLogger(__name__)

MEMBERS_CACHE_TYPE = "examples.chat.RoomMembers"


def _push(ref: Any, method: str, *args: Any) -> None:
    """A one-way call to a client; a client already gone is not an error here (its logout runs)."""
    if ref is None:
        return
    try:
        ref.call_remote_no_answer(method, *args)
    except broker.ConnectionLost:
        pass


# -- server side --------------------------------------------------------------------------


class RoomMembers(broker.Cacheable):
    """One room's member list and topic, copied to every broker connection that asks for it."""

    cache_type = MEMBERS_CACHE_TYPE

    def __init__(self, room: Room) -> None:
        self.room = room
        self.observers: list[broker.CacheObserver] = []

    def get_state_to_cache_and_observe_for(self, perspective: Any, observer: broker.CacheObserver) -> Any:
        self.observers.append(observer)
        return {"room": self.room.name, "members": self.room.nicks(), "topic": self.room.topic}

    def stopped_observing(self, perspective: Any, observer: broker.CacheObserver) -> None:
        if observer in self.observers:
            self.observers.remove(observer)

    def push(self, method: str, *args: Any) -> None:
        for observer in list(self.observers):
            observer.call_remote(method, *args)


class BrokerRooms:
    """The model observer that keeps every room's :class:`RoomMembers` up to date."""

    def __init__(self) -> None:
        self._members: dict[str, RoomMembers] = {}

    def members(self, room: Room) -> RoomMembers:
        found = self._members.get(room.key)
        if found is None:
            found = self._members[room.key] = RoomMembers(room)
        return found

    def member_joined(self, room: Room, nick: str) -> None:
        if room.key in self._members:
            self._members[room.key].push("joined", nick)

    def member_left(self, room: Room, nick: str) -> None:
        found = self._members.get(room.key)
        if found is not None:
            found.push("parted", nick)
            if not found.observers and not room.members:
                del self._members[room.key]  # nobody watches an empty room: do not keep it

    def topic_changed(self, room: Room) -> None:
        if room.key in self._members:
            self._members[room.key].push("topic", room.topic_by, room.topic)


class SendingTooFast(ChatError):
    def __init__(self, nick: str) -> None:
        super().__init__(nick, "sending too fast: wait a moment (IRC users are held to the same pace)")


class RoomHandle(broker.Referenceable):
    """One user's membership of one room: what ``join`` answers."""

    expected_errors = (ChatError,)

    def __init__(self, avatar: ChatAvatar, room: Room) -> None:
        self.avatar = avatar
        self.room = room

    def _model(self) -> ChatModel:
        return self.avatar.server.model

    def remote_name(self) -> str:
        return self.room.name

    def remote_say(self, text: str) -> None:
        self.avatar.pace()
        self._model().say(self.avatar.nick, self.room.name, text)

    def remote_notice(self, text: str) -> None:
        self.avatar.pace()
        self._model().say(self.avatar.nick, self.room.name, text, notice=True)

    def remote_part(self, reason: str = "") -> None:
        self._model().part(self.avatar.nick, self.room.name, str(reason))

    def remote_set_topic(self, topic: str) -> None:
        self.avatar.pace()
        self._model().set_topic(self.avatar.nick, self.room.name, topic)

    def remote_topic(self) -> dict[str, Any]:
        room = self.room
        return {"topic": room.topic, "by": room.topic_by, "at": room.topic_at}

    def remote_members(self) -> RoomMembers:
        return self.avatar.server.rooms.members(self.room)

    def remote_history(self) -> list[list[Any]]:
        return [[line.when, line.sender, line.text] for line in self.room.history]


class ChatAvatar(Avatar):
    """A logged-in broker user, and that user's :class:`~examples.chat.model.Participant`."""

    expected_errors = (ChatError,)

    def __init__(self, server: ChatRealm, nick: str, mind: Any) -> None:
        self.server = server
        self.nick = nick
        self.mind = mind
        self.room_refs: dict[str, Any] = {}  # room key -> the client's room object
        self._bucket = TokenBucket(server.burst, server.rate, time.monotonic)

    def pace(self) -> None:
        """What IRC's flood limit is to a line, this is to a broker message: refused past it
        (the call fails; the connection stays, since a broker client can wait and retry)."""
        if not self._bucket.take():
            raise SendingTooFast(self.nick)

    def __repr__(self) -> str:
        return f"<ChatAvatar {self.nick}>"

    # -- what the client may call ----------------------------------------------------------

    def perspective_nick(self) -> str:
        return self.nick

    def perspective_join(self, name: str, client_room_ref: Any) -> RoomHandle:
        self.pace()
        if not isinstance(client_room_ref, broker.RemoteReference):
            raise ChatError("join", "the second argument must be your room object (a broker.Referenceable "
                                    "with remote_message, remote_joined, ...; see examples.chat.pb.ClientRoom)")
        key = irc_lower(room_name(name))
        previous = self.room_refs.get(key)
        self.room_refs[key] = client_room_ref
        try:
            room, _new = self.server.model.join(self.nick, name)
        except Exception:
            if previous is None:
                self.room_refs.pop(key, None)
            else:
                self.room_refs[key] = previous
            raise
        return RoomHandle(self, room)

    def perspective_private_message(self, nick: str, text: str) -> None:
        self.pace()
        self.server.model.private(self.nick, nick, text)

    #: rooms() answers at most this many (the busiest), as IRC's LIST.
    max_rooms_listed = 500

    def perspective_rooms(self) -> list[dict[str, Any]]:
        rooms = sorted(self.server.model.rooms.values(), key=lambda room: -len(room.members))
        return [{"name": room.name, "members": len(room.members), "topic": room.topic}
                for room in rooms[: self.max_rooms_listed]]

    def perspective_whois(self, nick: str) -> dict[str, Any]:
        user = self.server.model.user(nick)
        return {"nick": user.nick, "via": user.via, "rooms": [r.name for r in user.rooms.values()],
                "away": user.away}

    def perspective_set_away(self, message: str | None = None) -> None:
        self.server.model.set_away(self.nick, message)

    # -- model events ----------------------------------------------------------------------

    def room_joined(self, room: Room, nick: str) -> None:
        _push(self.room_refs.get(room.key), "joined", nick)

    def room_parted(self, room: Room, nick: str, reason: str) -> None:
        ref = self.room_refs.get(room.key)
        _push(ref, "parted", nick, reason)
        if irc_lower(nick) == irc_lower(self.nick):
            self.room_refs.pop(room.key, None)

    def room_message(self, room: Room, sender: str, text: str, notice: bool) -> None:
        _push(self.room_refs.get(room.key), "message", sender, text, notice)

    def private_message(self, sender: str, text: str, notice: bool) -> None:
        _push(self.mind, "private_message", sender, text, notice)

    def topic_changed(self, room: Room, nick: str, topic: str) -> None:
        _push(self.room_refs.get(room.key), "topic", nick, topic)

    def user_quit(self, nick: str, reason: str, rooms: list[str]) -> None:
        for name in rooms:
            _push(self.room_refs.get(irc_lower(name)), "quit", nick, reason)


@implementer(IRealm)
class ChatRealm:
    """Makes a :class:`ChatAvatar` per login and connects it to the model; logout disconnects."""

    def __init__(self, model: ChatModel, rooms: BrokerRooms | None = None, *,
                 burst: float = 20.0, rate: float = 2.0) -> None:
        self.model = model
        #: Each user's allowance of messages (a token bucket, as IRC's flood limit).
        self.burst, self.rate = burst, rate
        self.rooms = rooms if rooms is not None else BrokerRooms()
        if self.rooms not in model.observers:
            model.observers.append(self.rooms)

    def request_avatar(self, avatar_id: AvatarId, mind: Any, *interfaces: InterfaceClass) -> LoginResult:
        if IPerspective not in interfaces or not isinstance(avatar_id, str):
            raise LoginDenied("the chat realm serves logged-in broker users only")
        avatar = ChatAvatar(self, avatar_id, mind)
        try:
            self.model.connect(avatar_id, avatar, via="broker", username=avatar_id, host="broker",
                               realname="broker client")
        except ChatError as exc:
            raise LoginDenied(str(exc)) from None
        log.info("broker user %s connected", avatar_id)

        def logout() -> None:
            log.info("broker user %s disconnected", avatar_id)
            self.model.disconnect(avatar_id, "Connection closed")

        return IPerspective, avatar, logout


# -- client side --------------------------------------------------------------------------


class MemberList(broker.RemoteCache):
    """A client's live copy of a room's members and topic; ``on_change(self)`` after each update."""

    room: str = ""
    members: list[str]
    topic: str = ""
    on_change: Callable[[MemberList], object] | None = None

    def set_copyable_state(self, state: Any) -> None:
        self.room = str(state.get("room", ""))
        self.members = list(state.get("members", []))
        self.topic = str(state.get("topic", ""))

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self)

    def observe_joined(self, nick: str) -> None:
        if nick not in self.members:
            self.members.append(nick)
        self._changed()

    def observe_parted(self, nick: str) -> None:
        if nick in self.members:
            self.members.remove(nick)
        self._changed()

    def observe_topic(self, nick: str, topic: str) -> None:
        self.topic = topic
        self._changed()


broker.register_remote_cache(MEMBERS_CACHE_TYPE, MemberList)

#: (kind, room name, args): what a :class:`ClientRoom` or :class:`ClientMind` heard.
ChatEvent = tuple[str, str, tuple[Any, ...]]


class ClientRoom(broker.Referenceable):
    """The client's object for one room: the server calls it for everything said and done there."""

    def __init__(self, name: str, on_event: Callable[[ChatEvent], object]) -> None:
        self.name = name
        self.on_event = on_event

    def remote_message(self, sender: str, text: str, notice: bool = False) -> None:
        self.on_event(("message", self.name, (sender, text, notice)))

    def remote_joined(self, nick: str) -> None:
        self.on_event(("joined", self.name, (nick,)))

    def remote_parted(self, nick: str, reason: str = "") -> None:
        self.on_event(("parted", self.name, (nick, reason)))

    def remote_topic(self, nick: str, topic: str) -> None:
        self.on_event(("topic", self.name, (nick, topic)))

    def remote_quit(self, nick: str, reason: str = "") -> None:
        self.on_event(("quit", self.name, (nick, reason)))


class ClientMind(broker.Referenceable):
    """What a client passes as the login ``mind``: private messages arrive here."""

    def __init__(self, on_event: Callable[[ChatEvent], object]) -> None:
        self.on_event = on_event

    def remote_private_message(self, sender: str, text: str, notice: bool = False) -> None:
        self.on_event(("private", "", (sender, text, notice)))
