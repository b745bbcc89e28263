"""The IRC interface: an RFC 1459/2812 server, the subset real clients (irssi, weechat, HexChat) need.

Each connection is an :class:`IRCConnection` (a ``LineOnlyReceiver``) and a
:class:`~examples.chat.model.Participant` of the one chat model, so IRC users share rooms with
broker users. Registration is ``PASS``/``NICK``/``USER`` (or ``CAP``/``AUTHENTICATE`` SASL PLAIN)
checked against the user store: the nick *is* the account name.

What a peer cannot do to the server (each closes only its own connection, with ``ERROR`` and a
logged reason):

* send a line over 512 bytes (``417`` then ``ERROR :Closing Link: ... (Line too long)``);
* send faster than the token bucket allows (``ERROR :... (Excess Flood)``);
* stop reading while others talk: past :attr:`IRCLimits.max_output` buffered bytes the connection
  is aborted (``SendQ exceeded``), so a slow reader costs a bounded amount of memory;
* go silent: a ``PING`` after :attr:`IRCLimits.ping_interval` idle seconds, and closed if nothing
  arrives within :attr:`IRCLimits.ping_timeout` (``Ping timeout``); an unregistered connection
  has :attr:`IRCLimits.registration_timeout` seconds to log in.

Parsing and formatting (:func:`parse_line`, :func:`format_message`) are pure functions, tested
with hypothesis.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from cred.error import UnauthorizedLogin
from cred.throttle import LoginThrottle
from net.basic import LineOnlyReceiver
from net.defer import Deferred, Failure
from net.protocol import ServerFactory

from .limits import TokenBucket
from .model import (
    MAX_NICK_LENGTH,
    MAX_ROOM_LENGTH,
    MAX_TEXT_LENGTH,
    MAX_TOPIC_LENGTH,
    ChatError,
    ChatModel,
    InvalidNick,
    InvalidRoomName,
    NickInUse,
    NoSuchNick,
    NoSuchRoom,
    NotInRoom,
    Room,
    TextTooLong,
    TooManyRooms,
    irc_lower,
    valid_nick,
)

__all__ = [
    "IRCMessage",
    "IRCLimits",
    "IRCFactory",
    "IRCConnection",
    "PasswordChecker",
    "TokenBucket",
    "parse_line",
    "format_message",
    "MAX_LINE_BYTES",
]

log = logging.getLogger(__name__)

#: RFC 1459: a line is at most 512 bytes, CR LF included.
MAX_LINE_BYTES = 512


class PasswordChecker(Protocol):
    """What registration needs of the user store (``cred.sqlstore.SQLUserDatabase`` has it)."""

    def check_password(self, username: str, password: str) -> Deferred[bool]: ...


# -- messages -----------------------------------------------------------------------------


@dataclass(frozen=True)
class IRCMessage:
    """One parsed line. ``command`` is upper-cased; IRCv3 tags and a client's prefix are dropped."""

    command: str
    params: tuple[str, ...] = ()
    prefix: str = ""


def parse_line(line: str) -> IRCMessage | None:
    """``[@tags ][:prefix ]COMMAND params... [:trailing]``; None for a line with no command."""
    rest = line
    if rest.startswith("@"):
        _tags, _, rest = rest.partition(" ")
    rest = rest.lstrip(" ")
    prefix = ""
    if rest.startswith(":"):
        prefix, _, rest = rest[1:].partition(" ")
    trailing: str | None = None
    head, sep, tail = rest.partition(" :")
    if rest.startswith(":"):
        head, trailing = "", rest[1:]
    elif sep:
        trailing = tail
    words = [word for word in head.split(" ") if word]  # spaces only: IRC has no other separator
    if not words:
        return None
    params = words[1:]
    if trailing is not None:
        params.append(trailing)
    return IRCMessage(words[0].upper(), tuple(params[:15]), prefix)


def format_message(prefix: str, command: str, *params: str) -> str:
    """A line (without CR LF). The last of two or more parameters is always sent as trailing
    (``:text``), as servers do, since some clients look for the colon (353's names, 332's topic);
    a lone parameter only when it must be."""
    parts = [f":{prefix}"] if prefix else []
    parts.append(command)
    for i, param in enumerate(params):
        last = i == len(params) - 1
        if last and (i > 0 or not param or " " in param or param.startswith(":")):
            parts.append(":" + param)
        else:
            parts.append(param)
    return " ".join(parts)


# -- limits ------------------------------------------------------------------------------


@dataclass(frozen=True)
class IRCLimits:
    """The bounds one connection lives within; the defaults suit a small team's server."""

    #: Lines a client may send at once, and how fast the allowance refills (lines per second).
    flood_burst: float = 20.0
    flood_rate: float = 2.0
    #: Bytes buffered for a client that does not read, before it is cut off.
    max_output: int = 512 * 1024
    ping_interval: float = 90.0
    ping_timeout: float = 60.0
    registration_timeout: float = 60.0


# -- the factory ---------------------------------------------------------------------------


class IRCFactory(ServerFactory):
    """Shared by every IRC connection of one listener (or several: TCP and TLS alike)."""

    def __init__(self, reactor: Any, model: ChatModel, users: PasswordChecker, *,
                 server_name: str = "chat.pbroker", limits: IRCLimits | None = None,
                 throttle: LoginThrottle | None = None, motd: str = "Welcome to the pbroker chat server.") -> None:
        self.reactor = reactor
        self.model = model
        self.users = users
        self.server_name = server_name
        self.limits = limits or IRCLimits()
        self.throttle = throttle or LoginThrottle()
        self.motd = motd
        self.created = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        self.connections: set[IRCConnection] = set()

    def build_protocol(self, addr: Any) -> IRCConnection:
        proto = IRCConnection()
        proto.factory = self
        return proto


# -- one connection ------------------------------------------------------------------------

Handler = Callable[["IRCConnection", IRCMessage], None]


class IRCConnection(LineOnlyReceiver):
    """One IRC client. Commands are looked up in :attr:`COMMANDS` (registered or not)."""

    # Clients end lines with CR LF, some with LF alone: split at LF, drop the CR.
    delimiter = b"\n"
    max_length = MAX_LINE_BYTES - 1

    factory: IRCFactory

    nick: str | None = None
    registered = False
    closing = False

    def connection_made(self, transport: Any) -> None:
        f = self.factory
        f.connections.add(self)
        self.host = str(getattr(transport.get_peer(), "host", "unknown"))
        self.username = ""
        self.realname = ""
        self.password: str | None = None
        self.sasl_account: str | None = None
        self._sasl_buffer: str | None = None
        self._cap_negotiating = False
        self._caps: set[str] = set()
        self._checking = False
        self._quit_reason = "Connection closed"
        self._bucket = TokenBucket(f.limits.flood_burst, f.limits.flood_rate, f.reactor.seconds)
        self._heard = True
        self._ping_outstanding = False
        self._timer = f.reactor.call_later(f.limits.ping_interval, self._keepalive)
        self._registration_timer = f.reactor.call_later(f.limits.registration_timeout,
                                                        self._registration_expired)

    # -- input -----------------------------------------------------------------------------

    def line_received(self, raw: bytes) -> None:
        if self.closing:
            return
        if not self._bucket.take():
            self.close("Excess Flood", "sent lines faster than the flood limit")
            return
        self._heard = True
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            line = raw.decode("latin-1")  # old clients; never an error
        if "\x00" in line or "\r" in line:
            line = line.replace("\x00", "").replace("\r", "")
        message = parse_line(line)
        if message is None:
            return
        handler = self.COMMANDS.get(message.command)
        if handler is None:
            if self.registered:
                self.reply("421", message.command[:20], "Unknown command")
            else:
                self.reply("451", "You have not registered")
            return
        if not self.registered and message.command not in self.BEFORE_REGISTRATION:
            self.reply("451", "You have not registered")
            return
        try:
            handler(self, message)
        except ChatError as exc:
            self._chat_error(message, exc)
        except Exception:  # our bug, not the client's: say so, keep the connection
            log.exception("irc %s (%s): %s failed", self.nick or "*", self.host, message.command)
            self.send(format_message(self.factory.server_name, "NOTICE", self.nick or "*",
                                     f"{message.command} failed with a server error (logged); sorry"))

    def line_length_exceeded(self, line: bytes) -> None:
        self.reply("417", "Input line was too long")
        self.close("Line too long", f"sent a line over {MAX_LINE_BYTES} bytes")

    # -- output ----------------------------------------------------------------------------

    def send(self, line: str) -> None:
        if self.closing or self.transport is None:
            return
        data = line.encode("utf-8")
        if len(data) > MAX_LINE_BYTES - 2:  # cut at a character boundary, not inside one
            data = data[: MAX_LINE_BYTES - 2].decode("utf-8", "ignore").encode("utf-8")
        self.transport.write(data + b"\r\n")
        buffered = self.transport.get_write_buffer_size()
        if buffered > self.factory.limits.max_output:
            self.closing = True
            self._quit_reason = "SendQ exceeded"
            log.warning("irc %s (%s): closing: %d bytes buffered, over the limit of %d (a slow reader)",
                        self.nick or "*", self.host, buffered, self.factory.limits.max_output)
            self.transport.abort_connection()

    def reply(self, numeric: str, *params: str) -> None:
        self.send(format_message(self.factory.server_name, numeric, self.nick or "*", *params))

    def close(self, reason: str, why: str | None = None) -> None:
        """Say ``ERROR`` and hang up; ``why`` (for the log) says what the client did."""
        if self.closing:
            return
        self.send(f"ERROR :Closing Link: {self.host} ({reason})")
        self.closing = True
        self._quit_reason = reason
        if why is not None:
            log.warning("irc %s (%s): closing: %s", self.nick or "*", self.host, why)
        else:
            log.info("irc %s (%s): closing: %s", self.nick or "*", self.host, reason)
        self.transport.lose_connection()

    def connection_lost(self, reason: Failure) -> None:
        self.factory.connections.discard(self)
        for timer in (self._timer, self._registration_timer):
            if timer is not None and timer.active():
                timer.cancel()
        self._timer = self._registration_timer = None
        self.closing = True
        if self.registered and self.nick is not None:
            self.registered = False
            log.info("irc %s (%s) disconnected: %s", self.nick, self.host, self._quit_reason)
            self.factory.model.disconnect(self.nick, self._quit_reason)

    def mask(self, nick: str) -> str:
        user = self.factory.model.find_user(nick)
        if user is None:
            return f"{nick}!{nick}@unknown"
        return f"{user.nick}!{user.username}@{user.host}"

    # -- timers ----------------------------------------------------------------------------

    def _keepalive(self) -> None:
        limits = self.factory.limits
        if self._heard:
            self._heard, self._ping_outstanding = False, False
            self._timer = self.factory.reactor.call_later(limits.ping_interval, self._keepalive)
        elif not self._ping_outstanding:
            self._ping_outstanding = True
            self.send(f"PING :{self.factory.server_name}")
            self._timer = self.factory.reactor.call_later(limits.ping_timeout, self._keepalive)
        else:
            self._timer = None
            self.close(f"Ping timeout: {int(limits.ping_interval + limits.ping_timeout)} seconds")

    def _registration_expired(self) -> None:
        self._registration_timer = None
        if not self.registered:
            self.close("Registration timed out")

    # -- registration ----------------------------------------------------------------------

    def irc_PASS(self, msg: IRCMessage) -> None:
        if self.registered:
            self.reply("462", "You may not reregister")
        elif not msg.params:
            self.reply("461", "PASS", "Not enough parameters")
        else:
            self.password = msg.params[0]

    def irc_NICK(self, msg: IRCMessage) -> None:
        if not msg.params or not msg.params[0]:
            self.reply("431", "No nickname given")
            return
        nick = msg.params[0]
        if self.registered:
            if nick != self.nick:  # the nick is the account: changing it would change who you are
                self.reply("432", nick, "Nickname changes are not allowed here: your nick is your account name")
            return
        if not valid_nick(nick):
            self.reply("432", nick[:MAX_NICK_LENGTH + 10], "Erroneous nickname")
            return
        self.nick = nick
        self._try_register()

    def irc_USER(self, msg: IRCMessage) -> None:
        if self.registered:
            self.reply("462", "You may not reregister")
            return
        if len(msg.params) < 4:
            self.reply("461", "USER", "Not enough parameters")
            return
        self.username = "".join(c for c in msg.params[0] if c.isalnum() or c in "-_.")[:20] or "user"
        self.realname = msg.params[3][:100]
        self._try_register()

    def irc_CAP(self, msg: IRCMessage) -> None:
        sub = msg.params[0].upper() if msg.params else ""
        target = self.nick or "*"
        if sub == "LS":
            if not self.registered:
                self._cap_negotiating = True
            self.send(format_message(self.factory.server_name, "CAP", target, "LS", "sasl"))
        elif sub == "REQ":
            wanted = (msg.params[1] if len(msg.params) > 1 else "").split()
            if not self.registered:
                self._cap_negotiating = True
            if wanted and all(cap.lstrip("-") == "sasl" for cap in wanted):
                for cap in wanted:
                    (self._caps.discard if cap.startswith("-") else self._caps.add)("sasl")
                self.send(format_message(self.factory.server_name, "CAP", target, "ACK", " ".join(wanted)))
            else:
                self.send(format_message(self.factory.server_name, "CAP", target, "NAK", " ".join(wanted)))
        elif sub == "LIST":
            self.send(format_message(self.factory.server_name, "CAP", target, "LIST", " ".join(sorted(self._caps))))
        elif sub == "END":
            self._cap_negotiating = False
            self._try_register()
        else:
            self.reply("410", sub[:20] or "*", "Invalid CAP command")

    def irc_AUTHENTICATE(self, msg: IRCMessage) -> None:
        if self.registered or self.sasl_account is not None:
            self.reply("907", "You have already authenticated using SASL")
            return
        if "sasl" not in self._caps or not msg.params:
            self.reply("904", "SASL authentication failed")
            return
        arg = msg.params[0]
        if arg == "*":
            self._sasl_buffer = None
            self.reply("906", "SASL authentication aborted")
        elif self._sasl_buffer is None:
            if arg.upper() != "PLAIN":
                self.reply("908", "PLAIN", "are available SASL mechanisms")
                self.reply("904", "SASL authentication failed")
                return
            self._sasl_buffer = ""
            self.send("AUTHENTICATE +")
        else:
            if arg != "+":
                self._sasl_buffer += arg
            if len(self._sasl_buffer) > 800:
                self._sasl_buffer = None
                self.reply("905", "SASL message too long")
                return
            if len(arg) == 400:  # more chunks follow
                return
            payload, self._sasl_buffer = self._sasl_buffer, None
            self._sasl_plain(payload)

    def _sasl_plain(self, payload: str) -> None:
        try:
            _authzid, account, password = base64.b64decode(payload, validate=True).decode("utf-8").split("\x00")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            self.reply("904", "SASL authentication failed")
            return

        def accepted(_: object) -> None:
            self.sasl_account = account
            self.reply("900", f"{self.nick or '*'}!{self.username or '*'}@{self.host}", account,
                       f"You are now logged in as {account}")
            self.reply("903", "SASL authentication successful")

        def refused(failure: Failure) -> None:
            failure.trap(UnauthorizedLogin)
            self.reply("904", "SASL authentication failed")

        self._check(account, password).add_callbacks(accepted, refused).add_errback(self._check_crashed)

    def _check(self, account: str, password: str) -> Deferred[object]:
        """The password check, under the throttle shared with every IRC connection; while it
        runs nothing more is read from this client (so its next command waits for the answer)."""
        users = self.factory.users

        def attempt() -> Deferred[object]:
            def verdict(ok: bool) -> bool:
                if not ok:
                    raise UnauthorizedLogin()
                return True

            return users.check_password(account, password).add_callback(verdict)

        self._checking = True
        self.pause_producing()

        def resume(result: object) -> object:
            self._checking = False
            if not self.closing:
                self.resume_producing()
            return result

        return self.factory.throttle.guard(account, self.host, attempt).add_both(resume)

    def _check_crashed(self, failure: Failure) -> None:
        log.error("irc %s (%s): the password check failed: %s", self.nick or "*", self.host,
                  failure.get_traceback())
        self.close("Server error during login; try again later")

    def _try_register(self) -> None:
        if self.registered or self._checking or self.nick is None or not self.username or self._cap_negotiating:
            return
        nick = self.nick
        if self.sasl_account is not None:
            if irc_lower(self.sasl_account) != irc_lower(nick):
                self.reply("432", nick, f"Your nick must be your account name, {self.sasl_account}")
                return
            self._welcome()
            return
        if self.password is None:
            self.reply("464", "Password required: log in with PASS (your account's password) or SASL PLAIN")
            self.close("Password required", "registered without a password")
            return

        def accepted(_: object) -> None:
            if self.nick == nick and not self.closing:
                self._welcome()

        def refused(failure: Failure) -> None:
            failure.trap(UnauthorizedLogin)
            self.reply("464", "Password incorrect")
            self.close("Bad password", f"login refused for {nick!r}")

        self._check(nick, self.password).add_callbacks(accepted, refused).add_errback(self._check_crashed)

    def _welcome(self) -> None:
        f = self.factory
        assert self.nick is not None
        try:
            f.model.connect(self.nick, self, via="irc", username=self.username, host=self.host,
                            realname=self.realname)
        except NickInUse:
            self.reply("433", self.nick, "Nickname is already in use")
            return
        self.registered = True
        self.password = None
        if self._registration_timer is not None and self._registration_timer.active():
            self._registration_timer.cancel()
        self._registration_timer = None
        log.info("irc %s logged in from %s", self.nick, self.host)
        self.reply("001", f"Welcome to the pbroker chat, {self.mask(self.nick)}")
        self.reply("002", f"Your host is {f.server_name}, running pbroker-chat")
        self.reply("003", f"This server was created {f.created}")
        self.reply("004", f.server_name, "pbroker-chat", "i", "bnt")
        self.reply("005", "CHANTYPES=#", f"NICKLEN={MAX_NICK_LENGTH}", f"CHANNELLEN={MAX_ROOM_LENGTH}",
                   f"TOPICLEN={MAX_TOPIC_LENGTH}", f"AWAYLEN={MAX_TEXT_LENGTH}", "CASEMAPPING=rfc1459",
                   "PREFIX=(o)@", "CHANMODES=b,,,nt", "NETWORK=pbroker", "are supported by this server")
        self.reply("375", f"- {f.server_name} Message of the day -")
        for line in f.motd.splitlines():
            self.reply("372", f"- {line}")
        self.reply("376", "End of /MOTD command")

    # -- after registration ----------------------------------------------------------------

    def irc_PING(self, msg: IRCMessage) -> None:
        if not msg.params:
            self.reply("409", "No origin specified")
            return
        self.send(format_message(self.factory.server_name, "PONG", self.factory.server_name, msg.params[0]))

    def irc_PONG(self, msg: IRCMessage) -> None:
        pass  # any line counts as alive (line_received noted it)

    def irc_QUIT(self, msg: IRCMessage) -> None:
        reason = msg.params[0][:MAX_TEXT_LENGTH] if msg.params else "Client quit"
        self._quit_reason = f"Quit: {reason}"
        self.send(f"ERROR :Closing Link: {self.host} (Quit: {reason})")
        self.closing = True
        log.info("irc %s (%s): quit: %s", self.nick or "*", self.host, reason)
        self.transport.lose_connection()

    def irc_JOIN(self, msg: IRCMessage) -> None:
        if not msg.params:
            self.reply("461", "JOIN", "Not enough parameters")
            return
        assert self.nick is not None
        if msg.params[0] == "0":
            for room in list(self.factory.model.user(self.nick).rooms.values()):
                self.factory.model.part(self.nick, room.name, "Left all channels")
            return
        for name in msg.params[0].split(","):
            if not name.startswith("#"):
                self.reply("403", name[:MAX_ROOM_LENGTH], "No such channel")
                continue
            try:
                self.factory.model.join(self.nick, name)
            except InvalidRoomName:
                self.reply("479", name[:MAX_ROOM_LENGTH], "Illegal channel name")
            except TooManyRooms as exc:
                self.reply("405", name[:MAX_ROOM_LENGTH], exc.message)

    def irc_PART(self, msg: IRCMessage) -> None:
        if not msg.params:
            self.reply("461", "PART", "Not enough parameters")
            return
        assert self.nick is not None
        reason = msg.params[1] if len(msg.params) > 1 else ""
        for name in msg.params[0].split(","):
            try:
                self.factory.model.part(self.nick, name, reason)
            except ChatError as exc:
                self._chat_error(msg, exc)

    def _message(self, msg: IRCMessage, notice: bool) -> None:
        if not msg.params:
            if not notice:
                self.reply("411", f"No recipient given ({msg.command})")
            return
        if len(msg.params) < 2 or not msg.params[1]:
            if not notice:
                self.reply("412", "No text to send")
            return
        assert self.nick is not None
        model, text = self.factory.model, msg.params[1]
        for target in msg.params[0].split(",")[:4]:
            try:
                if target.startswith("#"):
                    model.say(self.nick, target, text, notice=notice)
                else:
                    recipient = model.private(self.nick, target, text, notice=notice)
                    if recipient.away is not None and not notice:
                        self.reply("301", recipient.nick, recipient.away)
            except ChatError as exc:
                if not notice:  # RFC 2812: never answer a NOTICE automatically
                    self._chat_error(msg, exc)

    def irc_PRIVMSG(self, msg: IRCMessage) -> None:
        self._message(msg, notice=False)

    def irc_NOTICE(self, msg: IRCMessage) -> None:
        self._message(msg, notice=True)

    def irc_TOPIC(self, msg: IRCMessage) -> None:
        if not msg.params:
            self.reply("461", "TOPIC", "Not enough parameters")
            return
        assert self.nick is not None
        model = self.factory.model
        if len(msg.params) > 1:
            model.set_topic(self.nick, msg.params[0], msg.params[1])
        else:
            self._send_topic(model.room(msg.params[0]), query=True)

    def _send_topic(self, room: Room, *, query: bool) -> None:
        if room.topic:
            self.reply("332", room.name, room.topic)
            self.reply("333", room.name, room.topic_by, str(int(room.topic_at)))
        elif query:
            self.reply("331", room.name, "No topic is set")

    def _send_names(self, room: Room) -> None:
        line: list[str] = []
        for nick in room.nicks():
            line.append(nick)
            if sum(len(n) + 1 for n in line) > 350:
                self.reply("353", "=", room.name, " ".join(line))
                line = []
        if line:
            self.reply("353", "=", room.name, " ".join(line))
        self.reply("366", room.name, "End of /NAMES list")

    def irc_NAMES(self, msg: IRCMessage) -> None:
        model = self.factory.model
        if not msg.params:  # the rooms you are in (every room's names could be a flood of output)
            assert self.nick is not None
            for room in list(model.user(self.nick).rooms.values()):
                self._send_names(room)
            self.reply("366", "*", "End of /NAMES list")
            return
        for name in msg.params[0].split(","):
            found = model.find_room(name)
            if found is not None:
                self._send_names(found)
            else:
                self.reply("366", name[:MAX_ROOM_LENGTH], "End of /NAMES list")

    def irc_WHO(self, msg: IRCMessage) -> None:
        model = self.factory.model
        mask = msg.params[0] if msg.params else "*"
        found: list[tuple[str, str]] = []  # (channel field, nick)
        channel = model.find_room(mask) if mask.startswith("#") else None
        if channel is not None:
            found = [(channel.name, nick) for nick in channel.nicks()]
        elif not mask.startswith("#"):
            user = model.find_user(mask)
            if user is not None:
                found = [(next(iter(user.rooms.values())).name if user.rooms else "*", user.nick)]
        for where, nick in found:
            user = model.find_user(nick)
            if user is None:
                continue
            flags = "G" if user.away else "H"
            self.reply("352", where, user.username, user.host, self.factory.server_name, user.nick, flags,
                       f"0 {user.realname or user.via}")
        self.reply("315", mask[:MAX_ROOM_LENGTH], "End of /WHO list")

    def irc_WHOIS(self, msg: IRCMessage) -> None:
        if not msg.params:
            self.reply("431", "No nickname given")
            return
        nick = msg.params[-1]
        user = self.factory.model.find_user(nick)
        if user is None:
            self.reply("401", nick[:MAX_NICK_LENGTH], "No such nick/channel")
        else:
            self.reply("311", user.nick, user.username, user.host, "*", user.realname or f"via {user.via}")
            if user.rooms:
                self.reply("319", user.nick, " ".join(room.name for room in user.rooms.values()))
            self.reply("312", user.nick, self.factory.server_name, f"connected via {user.via}")
            if user.away:
                self.reply("301", user.nick, user.away)
        self.reply("318", nick[:MAX_NICK_LENGTH], "End of /WHOIS list")

    #: LIST shows at most this many rooms (the busiest): the answer must fit the output bound.
    max_list = 500

    def irc_LIST(self, msg: IRCMessage) -> None:
        rooms = list(self.factory.model.rooms.values())
        if msg.params and msg.params[0].startswith("#"):
            wanted = {irc_lower(name) for name in msg.params[0].split(",")}
            rooms = [room for room in rooms if room.key in wanted]
        rooms.sort(key=lambda room: -len(room.members))
        self.reply("321", "Channel", "Users  Name")
        for room in rooms[: self.max_list]:
            self.reply("322", room.name, str(len(room.members)), room.topic)
        if len(rooms) > self.max_list:
            self.send(format_message(self.factory.server_name, "NOTICE", self.nick or "*",
                                     f"{len(rooms) - self.max_list} quieter rooms not listed; LIST #name asks for one"))
        self.reply("323", "End of /LIST")

    def irc_MODE(self, msg: IRCMessage) -> None:
        if not msg.params:
            self.reply("461", "MODE", "Not enough parameters")
            return
        target = msg.params[0]
        model = self.factory.model
        if target.startswith("#"):
            room = model.room(target)
            if len(msg.params) == 1:
                self.reply("324", room.name, "+nt")
                self.reply("329", room.name, str(int(room.created_at)))
            elif msg.params[1].lstrip("+") == "b":
                self.reply("368", room.name, "End of channel ban list")
            else:
                self.reply("482", room.name, "You're not channel operator (channel modes are fixed here)")
            return
        assert self.nick is not None
        if irc_lower(target) != irc_lower(self.nick):
            self.reply("502", "Can't change mode for other users")
        elif len(msg.params) > 1 and set(msg.params[1]) - set("+-i"):
            self.reply("501", "Unknown MODE flag")
        else:
            self.reply("221", "+i")

    def irc_AWAY(self, msg: IRCMessage) -> None:
        assert self.nick is not None
        text = msg.params[0] if msg.params else ""
        self.factory.model.set_away(self.nick, text or None)
        if text:
            self.reply("306", "You have been marked as being away")
        else:
            self.reply("305", "You are no longer marked as being away")

    def irc_ISON(self, msg: IRCMessage) -> None:
        model = self.factory.model
        names = " ".join(msg.params).split()
        self.reply("303", " ".join(u.nick for n in names[:20] if (u := model.find_user(n)) is not None))

    def irc_USERHOST(self, msg: IRCMessage) -> None:
        model = self.factory.model
        found = [u for n in msg.params[:5] if (u := model.find_user(n)) is not None]
        self.reply("302", " ".join(f"{u.nick}={'-' if u.away else '+'}{u.username}@{u.host}" for u in found))

    def _chat_error(self, msg: IRCMessage, exc: ChatError) -> None:
        subject = exc.subject[:MAX_ROOM_LENGTH]
        if isinstance(exc, NoSuchNick):
            self.reply("401", subject, "No such nick/channel")
        elif isinstance(exc, NoSuchRoom):
            self.reply("403", subject, "No such channel")
        elif isinstance(exc, NotInRoom):
            self.reply("442" if msg.command in ("PART", "TOPIC") else "404", subject,
                       "You're not on that channel" if msg.command in ("PART", "TOPIC") else "Cannot send to channel")
        elif isinstance(exc, InvalidRoomName):
            self.reply("479", subject, "Illegal channel name")
        elif isinstance(exc, InvalidNick):
            self.reply("432", subject, "Erroneous nickname")
        elif isinstance(exc, TextTooLong):
            self.reply("417", f"{exc.subject} too long")
        else:
            self.send(format_message(self.factory.server_name, "NOTICE", self.nick or "*", str(exc)))

    COMMANDS: ClassVar[dict[str, Handler]] = {}
    BEFORE_REGISTRATION: ClassVar[frozenset[str]] = frozenset(
        {"PASS", "NICK", "USER", "CAP", "AUTHENTICATE", "PING", "PONG", "QUIT"})

    # -- model events (Participant) ----------------------------------------------------------

    def room_joined(self, room: Room, nick: str) -> None:
        self.send(format_message(self.mask(nick), "JOIN", room.name))
        if self.nick is not None and irc_lower(nick) == irc_lower(self.nick):
            self._send_topic(room, query=False)
            self._send_names(room)
            server = self.factory.server_name
            for line in room.history:
                stamp = time.strftime("%H:%M", time.gmtime(line.when))
                self.send(format_message(server, "NOTICE", room.name, f"[{stamp}] <{line.sender}> {line.text}"))

    def room_parted(self, room: Room, nick: str, reason: str) -> None:
        if reason:
            self.send(format_message(self.mask(nick), "PART", room.name, reason))
        else:
            self.send(format_message(self.mask(nick), "PART", room.name))

    def room_message(self, room: Room, sender: str, text: str, notice: bool) -> None:
        self.send(format_message(self.mask(sender), "NOTICE" if notice else "PRIVMSG", room.name, text))

    def private_message(self, sender: str, text: str, notice: bool) -> None:
        self.send(format_message(self.mask(sender), "NOTICE" if notice else "PRIVMSG", self.nick or "*", text))

    def topic_changed(self, room: Room, nick: str, topic: str) -> None:
        self.send(format_message(self.mask(nick), "TOPIC", room.name, topic))

    def user_quit(self, nick: str, reason: str, rooms: list[str]) -> None:
        self.send(format_message(self.mask(nick), "QUIT", reason))


IRCConnection.COMMANDS.update({
    name[len("irc_"):]: getattr(IRCConnection, name) for name in dir(IRCConnection) if name.startswith("irc_")
})
