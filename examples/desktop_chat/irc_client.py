"""An IRC client protocol on our own line framing (``net.basic.LineOnlyReceiver``).

The desktop client's second account type. What it speaks is what the chat server's IRC side
(examples/chat/irc.py) needs of a client: ``PASS``/``NICK``/``USER`` registration, ``JOIN``,
``PART``, ``PRIVMSG``, ``TOPIC``, ``NAMES``, ``QUIT``, and ``PING`` answered with ``PONG``.

IRC has no request ids, so the calls that want an answer (:meth:`IRCClient.join`,
:meth:`IRCClient.names`, :meth:`IRCClient.list_rooms`) are Deferreds fired by the reply that ends
them (366, 323) or failed by the error numeric that refuses them; replies of one kind come back in
the order asked, so each kind keeps a FIFO of waiting calls. Everything else the server says
arrives as a :data:`IRCEvent` through ``on_event``, in the same ``(kind, room, args)`` shape as the
broker side's ``examples.chat.pb.ChatEvent``, so the window treats both accounts alike.

The client keeps each joined room's member list (353 while joining, then JOIN/PART/QUIT) and
reports it as a ``members`` event after every change.

A server that misbehaves is bounded: a line over :attr:`IRCClient.max_length` closes the
connection (the framer's rule), and a room's member list holds at most :data:`MAX_MEMBERS` names.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from net.basic import LineOnlyReceiver
from net.defer import Deferred, Failure

__all__ = [
    "IRCLine",
    "IRCEvent",
    "IRCError",
    "IRCClient",
    "parse_line",
    "format_line",
    "nick_of",
    "MAX_MEMBERS",
]

#: ``(kind, room, args)``: what an account reports to the window (see the module docstring).
IRCEvent = tuple[str, str, tuple[Any, ...]]

#: No room's member list grows past this, whatever the server sends.
MAX_MEMBERS = 10_000

#: Error numerics that refuse a JOIN (room full, banned, too many rooms, no such room...).
_JOIN_ERRORS = frozenset({"403", "405", "471", "473", "474", "475", "476", "479"})
#: Error numerics that end registration.
_REGISTRATION_ERRORS = frozenset({"431", "432", "433", "436", "451", "461", "462", "464", "465"})


class IRCError(Exception):
    """The IRC server refused something: ``numeric`` and its text say what."""

    def __init__(self, numeric: str, text: str) -> None:
        super().__init__(f"the IRC server answered {numeric}: {text}")
        self.numeric = numeric
        self.text = text


@dataclass(frozen=True)
class IRCLine:
    """One parsed line: ``:prefix COMMAND param param :trailing``."""

    prefix: str
    command: str
    params: tuple[str, ...]


def parse_line(line: str) -> IRCLine | None:
    """The line's parts, or None for an empty or prefix-only line (which a client ignores)."""
    prefix = ""
    rest = line.strip("\r\n")
    if rest.startswith(":"):
        prefix, _, rest = rest[1:].partition(" ")
    rest = rest.lstrip(" ")
    if not rest:
        return None
    params: list[str] = []
    while rest:
        if rest.startswith(":"):
            params.append(rest[1:])
            break
        word, _, rest = rest.partition(" ")
        if word:
            params.append(word)
        rest = rest.lstrip(" ")
    command, *args = params
    return IRCLine(prefix, command.upper(), tuple(args))


def format_line(command: str, *params: str) -> str:
    """``COMMAND a b :last text``; ValueError (the caller's mistake) for a parameter that cannot be sent."""
    for param in params:
        if "\r" in param or "\n" in param or "\0" in param:
            raise ValueError(f"IRC cannot carry a line break or NUL inside a parameter: {param!r}")
    middle, last = params[:-1], params[-1:] if params else ()
    for param in middle:
        if not param or " " in param or param.startswith(":"):
            raise ValueError(f"only the last IRC parameter may be empty, contain spaces or start with ':': {param!r}")
    parts = [command, *middle]
    if last:  # the colon only where the last parameter needs it, as clients usually send
        needs_colon = not last[0] or " " in last[0] or last[0].startswith(":")
        parts.append(":" + last[0] if needs_colon else last[0])
    return " ".join(parts)


def nick_of(prefix: str) -> str:
    """``nick!user@host`` -> ``nick``."""
    return prefix.split("!", 1)[0]


def _lower(name: str) -> str:
    """RFC 1459 case mapping, as the server compares names."""
    return name.lower().translate(str.maketrans("[]\\~", "{}|^"))


class IRCClient(LineOnlyReceiver):
    """One registered IRC connection; ``on_event`` hears what the server says."""

    delimiter = b"\r\n"
    #: RFC 1459 says 512 bytes; allow servers some slack, but bound what one line may make us buffer.
    max_length = 8192

    def __init__(self, nick: str, password: str | None, on_event: Callable[[IRCEvent], object],
                 realname: str = "pbroker desktop chat") -> None:
        self.nick = nick
        self.password = password
        self.realname = realname
        self.on_event = on_event
        #: Fires with the server's welcome text (001), or fails with :class:`IRCError`.
        self.registered: Deferred[str] = Deferred()
        #: Fires (with None) once the connection is gone, whoever closed it.
        self.closed: Deferred[None] = Deferred()
        self.members: dict[str, list[str]] = {}  # lower-cased room -> nicks, in arrival order
        self.room_names: dict[str, str] = {}  # lower-cased room -> the name as the server spells it
        self._names_pending: dict[str, list[str]] = {}
        self._joins: dict[str, Deferred[list[str]]] = {}
        self._names: dict[str, deque[Deferred[list[str]]]] = {}
        self._lists: deque[Deferred[list[dict[str, Any]]]] = deque()
        self._listing: list[dict[str, Any]] = []
        self._handlers: dict[str, Callable[[IRCLine], None]] = {
            "PING": self._on_ping,
            "001": self._on_welcome,
            "JOIN": self._on_join,
            "PART": self._on_part,
            "QUIT": self._on_quit,
            "PRIVMSG": self._on_message,
            "NOTICE": self._on_message,
            "TOPIC": self._on_topic,
            "332": self._on_topic_reply,
            "353": self._on_names_reply,
            "366": self._on_names_end,
            "322": self._on_list_entry,
            "323": self._on_list_end,
            "ERROR": self._on_error,
        }

    # -- what the account calls ----------------------------------------------------------------

    def send(self, command: str, *params: str) -> None:
        """One line to the server (nothing once the connection is closing)."""
        if self.transport is not None and not self.transport.is_closing():
            self.send_line(format_line(command, *params).encode("utf-8"))

    def join(self, room: str) -> Deferred[list[str]]:
        """``JOIN``: fires with the member list at 366, or fails with the refusing numeric.

        ValueError (the caller's mistake) for a name IRC would read as several rooms."""
        if not room or any(c in room for c in " ,\x07"):
            raise ValueError(f"not one IRC room name (no spaces, commas or ^G): {room!r}")
        key = _lower(room)
        d = self._joins.get(key)
        if d is None:
            d = self._joins[key] = Deferred()
            self.send("JOIN", room)
        return d

    def part(self, room: str, reason: str = "") -> None:
        self.send("PART", room, *([reason] if reason else []))

    def say(self, room: str, text: str) -> None:
        self.send("PRIVMSG", room, text)

    def set_topic(self, room: str, topic: str) -> None:
        self.send("TOPIC", room, topic)

    def names(self, room: str) -> Deferred[list[str]]:
        """``NAMES room``: fires with the room's members at 366."""
        d: Deferred[list[str]] = Deferred()
        self._names.setdefault(_lower(room), deque()).append(d)
        self.send("NAMES", room)
        return d

    def list_rooms(self) -> Deferred[list[dict[str, Any]]]:
        """``LIST``: ``[{"name", "members", "topic"}]`` at 323, as the broker's ``rooms()``."""
        d: Deferred[list[dict[str, Any]]] = Deferred()
        self._lists.append(d)
        self.send("LIST")
        return d

    def quit(self, reason: str = "") -> Deferred[None]:
        """``QUIT``; fires once the server has closed the connection."""
        self.send("QUIT", *([reason] if reason else []))
        return self.closed

    # -- the connection --------------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        if self.password is not None:
            self.send("PASS", self.password)
        self.send("NICK", self.nick)
        self.send("USER", self.nick, "0", "*", self.realname)

    def line_received(self, raw: bytes) -> None:
        line = parse_line(raw.decode("utf-8", "replace"))
        if line is None:
            return
        handler = self._handlers.get(line.command)
        if handler is not None:
            handler(line)
        elif line.command.isdigit() and line.command[0] in "45":
            self._on_error_numeric(line)

    def connection_lost(self, reason: Failure) -> None:
        error = IRCError("(closed)", f"the connection to the IRC server was lost: {reason.value}")
        self._fail_all(error)
        if not self.closed.called:
            self.closed.callback(None)

    def _fail_all(self, error: IRCError) -> None:
        waiting: list[Deferred[Any]] = []
        if not self.registered.called:
            waiting.append(self.registered)
        waiting += self._joins.values()
        for queue in self._names.values():
            waiting += queue
        waiting += self._lists
        self._joins, self._names, self._lists = {}, {}, deque()
        for d in waiting:
            d.errback(Failure(error))

    # -- what the server says ------------------------------------------------------------------

    def _emit(self, kind: str, room: str, *args: Any) -> None:
        self.on_event((kind, room, args))

    def _room(self, name: str) -> str:
        return self.room_names.get(_lower(name), name)

    def _members_changed(self, key: str) -> None:
        self._emit("members", self.room_names[key], list(self.members[key]))

    def _on_ping(self, line: IRCLine) -> None:
        self.send("PONG", *line.params[:1])

    def _on_welcome(self, line: IRCLine) -> None:
        if line.params:
            self.nick = line.params[0]  # the server's spelling of our nick
        if not self.registered.called:
            self.registered.callback(line.params[-1] if line.params else "")

    def _on_join(self, line: IRCLine) -> None:
        if not line.params:
            return
        nick, room = nick_of(line.prefix), line.params[0]
        key = _lower(room)
        if _lower(nick) == _lower(self.nick):
            self.room_names[key] = room
            self.members[key] = []
            self._names_pending[key] = []
            return  # the NAMES reply that follows fills the list and fires join()
        members = self.members.get(key)
        if members is not None:
            if nick not in members and len(members) < MAX_MEMBERS:
                members.append(nick)
            self._emit("joined", self._room(room), nick)
            self._members_changed(key)

    def _on_part(self, line: IRCLine) -> None:
        if not line.params:
            return
        nick, room = nick_of(line.prefix), line.params[0]
        reason = line.params[1] if len(line.params) > 1 else ""
        key = _lower(room)
        if key not in self.members:
            return
        name = self._room(room)
        if _lower(nick) == _lower(self.nick):
            del self.members[key]
            self.room_names.pop(key, None)
            self._emit("parted", name, nick, reason)
            return
        if nick in self.members[key]:
            self.members[key].remove(nick)
        self._emit("parted", name, nick, reason)
        self._members_changed(key)

    def _on_quit(self, line: IRCLine) -> None:
        nick = nick_of(line.prefix)
        reason = line.params[0] if line.params else ""
        for key, members in self.members.items():
            if nick in members:
                members.remove(nick)
                self._emit("quit", self.room_names[key], nick, reason)
                self._members_changed(key)

    def _on_message(self, line: IRCLine) -> None:
        if len(line.params) < 2:
            return
        target, text = line.params[0], line.params[1]
        sender = nick_of(line.prefix) if line.prefix else ""
        notice = line.command == "NOTICE"
        if _lower(target) in self.members:
            self._emit("message", self._room(target), sender, text, notice)
        elif target.startswith("#"):
            return  # a room we are not (yet) in: nothing to show it in
        elif "!" in line.prefix:
            self._emit("private", "", sender, text, notice)
        else:
            self._emit("server", "", sender, text, notice)  # server notices (the MOTD, AUTH)

    def _on_topic(self, line: IRCLine) -> None:
        if len(line.params) >= 2:
            self._emit("topic", self._room(line.params[0]), nick_of(line.prefix), line.params[1])

    def _on_topic_reply(self, line: IRCLine) -> None:  # 332 me #room :topic
        if len(line.params) >= 3:
            self._emit("topic", self._room(line.params[1]), "", line.params[2])

    def _on_names_reply(self, line: IRCLine) -> None:  # 353 me = #room :a b @c
        if len(line.params) < 4:
            return
        pending = self._names_pending.setdefault(_lower(line.params[2]), [])
        for name in line.params[3].split():
            name = name.lstrip("@+%&~")
            if name and name not in pending and len(pending) < MAX_MEMBERS:
                pending.append(name)

    def _on_names_end(self, line: IRCLine) -> None:  # 366 me #room :End of /NAMES list
        if len(line.params) < 2:
            return
        key = _lower(line.params[1])
        names = self._names_pending.pop(key, [])
        if key in self.members:
            self.members[key] = list(names)
            self._members_changed(key)
        join = self._joins.pop(key, None)
        if join is not None:
            join.callback(list(names))
        queue = self._names.get(key)
        if queue:
            queue.popleft().callback(list(names))
            if not queue:
                del self._names[key]

    def _on_list_entry(self, line: IRCLine) -> None:  # 322 me #room count :topic
        if len(line.params) >= 3 and len(self._listing) < MAX_MEMBERS:
            count = int(line.params[2]) if line.params[2].isdigit() else 0
            topic = line.params[3] if len(line.params) > 3 else ""
            self._listing.append({"name": line.params[1], "members": count, "topic": topic})

    def _on_list_end(self, line: IRCLine) -> None:
        listing, self._listing = self._listing, []
        if self._lists:
            self._lists.popleft().callback(listing)

    def _on_error(self, line: IRCLine) -> None:
        text = line.params[0] if line.params else "closed"
        self._emit("server", "", "", f"ERROR {text}", True)
        self._fail_all(IRCError("ERROR", text))

    def _on_error_numeric(self, line: IRCLine) -> None:
        numeric, text = line.command, line.params[-1] if line.params else ""
        subject = line.params[1] if len(line.params) > 2 else ""
        if numeric in _REGISTRATION_ERRORS and not self.registered.called:
            self.registered.errback(Failure(IRCError(numeric, text)))
            return
        if numeric in _JOIN_ERRORS:
            join = self._joins.pop(_lower(subject), None)
            if join is not None:
                self.members.pop(_lower(subject), None)
                join.errback(Failure(IRCError(numeric, f"{subject}: {text}")))
                return
        self._emit("error", self._room(subject) if subject.startswith("#") else "", numeric,
                   f"{subject}: {text}" if subject else text)
