"""The chat model as a hypothesis state machine: connects, joins, parts, messages, topics, quits.

Checked after every step, against a plain reference (room -> set of members):

* the model's members of each room are the reference's, and each user's rooms agree with them;
* every participant's own picture of a room, built only from the events it heard (the member
  list it was given on joining, then joins, parts and quits), equals the room's members: nobody
  misses or duplicates an event, and nobody hears about a room they are not in;
* a message reaches every other member exactly once and nobody else; a private message reaches
  only its recipient; the history keeps the last N messages;
* refused operations (not in the room, nick in use, no such nick) change nothing.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from examples.chat.model import (
    ChatModel,
    InvalidText,
    NickInUse,
    NoSuchNick,
    NotInRoom,
    Room,
    irc_lower,
)

NICKS = ["ann", "Bob", "cy", "DAN"]
ROOMS = ["#a", "#B"]
HISTORY = 3


class Recorder:
    """A participant that keeps its own view of every room it is in, from the events alone.

    The model logs and swallows what a participant raises (so one broken adapter cannot stop
    the others), so a broken rule is noted in :attr:`problems`, which the invariant checks.
    """

    def __init__(self, nick: str) -> None:
        self.nick = nick
        self.events: list[tuple[Any, ...]] = []
        self.view: dict[str, set[str]] = {}  # room key -> irc_lower(nick) of members
        self.problems: list[str] = []

    def __getattribute__(self, name: str) -> Any:
        method = object.__getattribute__(self, name)
        if name in EVENTS:
            def checked(*args: Any) -> None:
                try:
                    method(*args)
                except Exception as exc:  # noted, since the model would only log it
                    self.problems.append(f"{self.nick}.{name}{args[1:]}: {exc!r}")
            return checked
        return method

    def room_joined(self, room: Room, nick: str) -> None:
        self.events.append(("joined", room.key, nick))
        if irc_lower(nick) == irc_lower(self.nick):
            assert room.key not in self.view, "told of its own join twice"
            self.view[room.key] = {irc_lower(n) for n in room.nicks()}
        else:
            assert room.key in self.view, f"{self.nick} heard of a join in {room.name}, which it is not in"
            assert irc_lower(nick) not in self.view[room.key]
            self.view[room.key].add(irc_lower(nick))

    def room_parted(self, room: Room, nick: str, reason: str) -> None:
        self.events.append(("parted", room.key, nick))
        assert room.key in self.view
        self.view[room.key].remove(irc_lower(nick))
        if irc_lower(nick) == irc_lower(self.nick):
            del self.view[room.key]

    def room_message(self, room: Room, sender: str, text: str, notice: bool) -> None:
        self.events.append(("message", room.key, sender, text))
        assert room.key in self.view and irc_lower(sender) != irc_lower(self.nick)

    def private_message(self, sender: str, text: str, notice: bool) -> None:
        self.events.append(("private", sender, text))

    def topic_changed(self, room: Room, nick: str, topic: str) -> None:
        assert room.key in self.view
        self.events.append(("topic", room.key, topic))

    def user_quit(self, nick: str, reason: str, rooms: list[str]) -> None:
        self.events.append(("quit", nick))
        assert rooms, "told of a quit by someone sharing no room"
        for name in rooms:
            self.view[irc_lower(name)].remove(irc_lower(nick))


EVENTS = {"room_joined", "room_parted", "room_message", "private_message", "topic_changed", "user_quit"}


class ChatMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = 0.0
        self.model = ChatModel(history=HISTORY, now=self.tick)
        self.recorders: dict[str, Recorder] = {}  # irc_lower(nick) -> connected participant
        self.members: dict[str, set[str]] = {}  # room key -> member keys (the reference)
        self.said: dict[str, list[str]] = {}

    def tick(self) -> float:
        self.clock += 1.0
        return self.clock

    @initialize(count=st.integers(2, len(NICKS)))
    def some_users_are_connected(self, count: int) -> None:
        for nick in NICKS[:count]:
            self.connect(nick, False)

    @rule(nick=st.sampled_from(NICKS), upper=st.booleans())
    def connect(self, nick: str, upper: bool) -> None:
        spelled = nick.upper() if upper else nick
        recorder = Recorder(spelled)
        if irc_lower(nick) in self.recorders:
            try:
                self.model.connect(spelled, recorder)
            except NickInUse:
                return
            raise AssertionError("a second connection of a connected nick was accepted")
        self.model.connect(spelled, recorder)
        self.recorders[irc_lower(nick)] = recorder

    @precondition(lambda self: len(self.recorders) >= 3)
    @rule(data=st.data())
    def disconnect(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.recorders)))
        recorder = self.recorders.pop(key)
        sharing = {k for members in self.members.values() if key in members for k in members} - {key}
        counts = {k: self._count(k, "quit") for k in self.recorders}
        self.model.disconnect(recorder.nick, "bye")
        for members in self.members.values():
            members.discard(key)
        for k in self.recorders:
            assert self._count(k, "quit") - counts[k] == (1 if k in sharing else 0)

    @precondition(lambda self: self.recorders)
    @rule(data=st.data(), room=st.sampled_from(ROOMS))
    def join(self, data: st.DataObject, room: str) -> None:
        """Some of the connected users join (several at once, so rooms fill up quickly)."""
        keys = data.draw(st.sets(st.sampled_from(sorted(self.recorders)), min_size=1))
        for key in sorted(keys):
            self.model.join(self.recorders[key].nick, room.lower() if data.draw(st.booleans()) else room)
            self.members.setdefault(irc_lower(room), set()).add(key)

    @precondition(lambda self: self.recorders)
    @rule(data=st.data(), room=st.sampled_from(ROOMS))
    def part(self, data: st.DataObject, room: str) -> None:
        key = data.draw(st.sampled_from(sorted(self.recorders)))
        if key in self.members.get(irc_lower(room), set()):
            self.model.part(self.recorders[key].nick, room, "later")
            self.members[irc_lower(room)].remove(key)
        elif irc_lower(room) in self.members:
            try:
                self.model.part(self.recorders[key].nick, room)
            except NotInRoom:
                return
            raise AssertionError("a non-member parted")

    @precondition(lambda self: self.recorders)
    @rule(data=st.data(), room=st.sampled_from(ROOMS), text=st.text(max_size=8))
    def say(self, data: st.DataObject, room: str, text: str) -> None:
        key = data.draw(st.sampled_from(sorted(self.recorders)))
        members = self.members.get(irc_lower(room), set())
        before = {k: self._count(k, "message") for k in self.recorders}
        try:
            self.model.say(self.recorders[key].nick, room, text)
        except InvalidText:
            assert any(c in text for c in "\r\n\x00")
            return
        except (NotInRoom, Exception) as exc:
            assert key not in members, f"a member could not speak: {exc!r}"
            return
        assert key in members, "a non-member spoke"
        self.said.setdefault(irc_lower(room), []).append(text)
        for k in self.recorders:
            heard = self._count(k, "message") - before[k]
            assert heard == (1 if k in members and k != key else 0), (k, heard)

    @precondition(lambda self: self.recorders)
    @rule(data=st.data(), recipient=st.sampled_from(NICKS))
    def private(self, data: st.DataObject, recipient: str) -> None:
        key = data.draw(st.sampled_from(sorted(self.recorders)))
        before = {k: self._count(k, "private") for k in self.recorders}
        try:
            self.model.private(self.recorders[key].nick, recipient, "psst")
        except NoSuchNick:
            assert irc_lower(recipient) not in self.recorders
            return
        for k in self.recorders:
            assert self._count(k, "private") - before[k] == (1 if k == irc_lower(recipient) else 0)

    @precondition(lambda self: self.recorders)
    @rule(data=st.data(), room=st.sampled_from(ROOMS))
    def set_topic(self, data: st.DataObject, room: str) -> None:
        key = data.draw(st.sampled_from(sorted(self.recorders)))
        members = self.members.get(irc_lower(room), set())
        if key in members:
            self.model.set_topic(self.recorders[key].nick, room, f"topic by {key}")
            assert self.model.room(room).topic_by == self.recorders[key].nick

    def _count(self, key: str, kind: str) -> int:
        return sum(1 for event in self.recorders[key].events if event[0] == kind)

    @invariant()
    def every_event_made_sense_to_its_recipient(self) -> None:
        for recorder in self.recorders.values():
            assert not recorder.problems, recorder.problems

    @invariant()
    def members_agree(self) -> None:
        for key, members in self.members.items():
            room = self.model.rooms[key]
            assert set(room.members) == members
            for member in members:
                assert self.recorders[member].view[key] == members, (member, key)
        for key, recorder in self.recorders.items():
            user = self.model.user(recorder.nick)
            assert set(user.rooms) == {room for room, members in self.members.items() if key in members}
            assert set(recorder.view) == set(user.rooms)
        assert set(self.model.users) == set(self.recorders)

    @invariant()
    def history_is_the_last_messages(self) -> None:
        for key, said in self.said.items():
            assert [line.text for line in self.model.rooms[key].history] == said[-HISTORY:]


TestChatModel = ChatMachine.TestCase
TestChatModel.settings = __import__("hypothesis").settings(max_examples=200, stateful_step_count=40)


def test_a_participant_that_raises_does_not_stop_the_others() -> None:
    class Broken(Recorder):
        def room_message(self, room: Room, sender: str, text: str, notice: bool) -> None:
            raise RuntimeError("this adapter is broken")

    model = ChatModel()
    good, bad = Recorder("good"), Broken("bad")
    model.connect("good", good)
    model.connect("bad", bad)
    model.connect("talker", Recorder("talker"))
    for nick in ("bad", "good", "talker"):
        model.join(nick, "#r")
    model.say("talker", "#r", "hi")
    assert ("message", "#r", "talker", "hi") in good.events


def test_room_names_and_nicks() -> None:
    model = ChatModel()
    model.connect("Ann", Recorder("Ann"))
    room, new = model.join("ann", "Lobby")
    assert (room.name, new) == ("#Lobby", True)
    assert model.join("ANN", "#lobby") == (room, False)  # the same room, already a member
    for bad in ("", "#", "a b", "#a,b", "#" + "x" * 60):
        try:
            model.join("ann", bad)
        except Exception as exc:
            assert "not a valid room name" in str(exc)
        else:
            raise AssertionError(bad)


def test_rooms_a_user_can_make_the_server_keep_are_bounded() -> None:
    from examples.chat.model import TooManyRooms

    model = ChatModel(max_rooms=3, max_rooms_per_user=2)
    for nick in ("ann", "bob"):
        model.connect(nick, Recorder(nick))
    model.join("ann", "#one")
    model.join("ann", "#two")
    try:
        model.join("ann", "#three")
    except TooManyRooms as exc:
        assert exc.whose == "your"
    else:
        raise AssertionError("a third room for ann")
    assert model.join("ann", "#one")[1] is False  # rejoining a room already joined is no new room
    model.join("bob", "#three")
    try:
        model.join("bob", "#four")
    except TooManyRooms as exc:
        assert exc.whose == "server"
    else:
        raise AssertionError("a fourth room on the server")
    assert sorted(model.rooms) == ["#one", "#three", "#two"]
