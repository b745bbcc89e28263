"""The chat window: accounts on the left, one tab per room, its members, an input line.

Nothing here waits on the network. A user action starts a coroutine on the asyncio loop that Qt
runs (qasync; the reactor is on the same loop) through :meth:`ChatWindow.start_call`, and the
answer, or the error, is shown when it comes; until then Qt goes on painting and handling input.
The status bar's tick counter (a QTimer) is there to show that: it keeps counting while a call
is in flight.

What the window shows is told to :class:`WindowObserver`\\ s (the test hook is one), so a test
can read back what is on the screen from the widgets' own models.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, Protocol

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QPushButton,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from net.defer import Deferred

from .accounts import Account, AccountEvent, AccountSettings, make_account, room_name
from .login_dialog import LoginDialog

__all__ = ["ChatWindow", "RoomView", "WindowObserver", "format_event"]

log = logging.getLogger(__name__)

#: The status bar's timer: how often it ticks, in milliseconds.
TICK_INTERVAL_MS = 100


class WindowObserver(Protocol):
    """What the window tells about itself (the test hook prints it)."""

    def account_status(self, key: str, status: str) -> None: ...
    def room_opened(self, key: str, room: str, view: RoomView) -> None: ...
    def members_shown(self, key: str, room: str, view: RoomView) -> None: ...
    def call_started(self, name: str) -> None: ...
    def call_finished(self, name: str, outcome: str) -> None: ...
    def tick(self, count: int) -> None: ...


def format_event(event: AccountEvent) -> str | None:
    """One line of a room's (or the console's) message list; None for what is not a line."""
    kind, _room, args = event
    if kind == "message":
        sender, text, notice = args
        return f"-{sender}- {text}" if notice else f"<{sender}> {text}"
    if kind == "private":
        return f"*{args[0]}* {args[1]}"
    if kind == "server":
        return f"-{args[0] or 'server'}- {args[1]}"
    if kind == "joined":
        return f"{args[0]} joined"
    if kind == "parted":
        return f"{args[0]} left" + (f" ({args[1]})" if args[1] else "")
    if kind == "quit":
        return f"{args[0]} quit" + (f" ({args[1]})" if args[1] else "")
    if kind == "topic":
        return f"{args[0]} set the topic: {args[1]}" if args[0] else None
    if kind == "error":
        return f"! {args[0]} {args[1]}"
    if kind == "closed":
        return f"! {args[0]}"
    return None


class RoomView(QWidget):
    """One room of one account (or, with ``room == ""``, the account's console)."""

    def __init__(self, account_key: str, room: str) -> None:
        super().__init__()
        self.account_key = account_key
        self.room = room
        self.topic = QLabel("")
        self.topic.setObjectName("topic")
        self.messages = QListWidget()
        self.messages.setObjectName("messages")
        self.members = QListWidget()
        self.members.setObjectName("members")
        layout = QVBoxLayout(self)
        layout.addWidget(self.topic)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.messages)
        if room:
            split.addWidget(self.members)
            split.setSizes([460, 140])
        else:
            self.topic.setText(f"{account_key}: server messages and answers")
        layout.addWidget(split, 1)

    def add_line(self, text: str) -> None:
        self.messages.addItem(text)
        self.messages.scrollToBottom()

    def set_members(self, nicks: list[str]) -> None:
        self.members.clear()
        self.members.addItems(sorted(nicks, key=str.lower))

    def lines(self) -> list[str]:
        """What the message list shows, read back from its model."""
        model = self.messages.model()
        return [str(model.data(model.index(row, 0))) for row in range(model.rowCount())]

    def member_names(self) -> list[str]:
        model = self.members.model()
        return [str(model.data(model.index(row, 0))) for row in range(model.rowCount())]


class ChatWindow(QMainWindow):
    """One window, any number of accounts of either kind."""

    def __init__(self, reactor: Any, loop: asyncio.AbstractEventLoop, auto_join: list[str] | None = None) -> None:
        super().__init__()
        self.reactor = reactor
        self.loop = loop
        self.auto_join = [room_name(r) for r in auto_join or []]
        self.accounts: dict[str, Account] = {}
        self.views: dict[tuple[str, str], RoomView] = {}
        self.observers: list[WindowObserver] = []
        self.ticks = 0
        self.pending: set[asyncio.Task[None]] = set()
        self._dialogs: list[LoginDialog] = []
        self._build()

    # -- layout ----------------------------------------------------------------------------------

    def _build(self) -> None:
        self.setWindowTitle("pbroker chat")
        self.resize(900, 560)
        self.account_list = QListWidget()
        self.account_list.setObjectName("accounts")
        add = QPushButton("Add account…")
        add.clicked.connect(self.open_login_dialog)
        self.room_entry = QLineEdit()
        self.room_entry.setPlaceholderText("#room")
        join = QPushButton("Join")
        join.clicked.connect(self._join_clicked)
        self.rooms_button = QPushButton("List rooms")
        self.rooms_button.setObjectName("list-rooms")
        self.rooms_button.clicked.connect(self._rooms_clicked)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.addWidget(QLabel("Accounts"))
        left_layout.addWidget(self.account_list)
        left_layout.addWidget(add)
        join_row = QHBoxLayout()
        join_row.addWidget(self.room_entry)
        join_row.addWidget(join)
        left_layout.addLayout(join_row)
        left_layout.addWidget(self.rooms_button)

        self.tabs = QTabWidget()
        self.tabs.setObjectName("rooms")
        self.tabs.currentChanged.connect(self._tab_changed)
        self.input = QLineEdit()
        self.input.setObjectName("input")
        self.input.setPlaceholderText("a message, or /join ROOM, /part, /topic TEXT, /msg NICK TEXT, /rooms")
        self.input.returnPressed.connect(self._input_entered)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.addWidget(self.tabs)
        right_layout.addWidget(self.input)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setSizes([220, 680])
        self.setCentralWidget(split)

        self.tick_label = QLabel("ticks: 0")
        self.calls_label = QLabel("")
        self.statusBar().addWidget(self.tick_label)
        self.statusBar().addPermanentWidget(self.calls_label)
        self.timer = QTimer(self)
        self.timer.setInterval(TICK_INTERVAL_MS)
        self.timer.timeout.connect(self._tick)
        self.timer.start()

        quit_action = QAction("Quit", self)
        quit_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Quit))
        quit_action.triggered.connect(self.close)
        self.addAction(quit_action)
        self.input.setFocus()

    def _tick(self) -> None:
        self.ticks += 1
        self.tick_label.setText(f"ticks: {self.ticks}")
        for observer in self.observers:
            observer.tick(self.ticks)

    # -- calls -------------------------------------------------------------------------------------

    def start_call(self, name: str, call: Coroutine[Any, Any, None], console: str | None = None) -> None:
        """Run ``call`` on the loop; its failure is shown (in ``console``'s tab) and logged."""
        task = self.loop.create_task(call)
        self.pending.add(task)
        self._show_pending()
        for observer in self.observers:
            observer.call_started(name)

        def done(finished: asyncio.Task[None]) -> None:
            self.pending.discard(finished)
            self._show_pending()
            if finished.cancelled():
                outcome = "cancelled"
            elif finished.exception() is not None:
                error = finished.exception()
                outcome = f"failed: {error}"
                log.warning("%s failed: %s", name, error)
                if console is not None:
                    self.view(console, "").add_line(f"! {name} failed: {error}")
            else:
                outcome = "done"
            for observer in self.observers:
                observer.call_finished(name, outcome)

        task.add_done_callback(done)

    def _show_pending(self) -> None:
        self.calls_label.setText(f"{len(self.pending)} call(s) in flight" if self.pending else "")

    # -- accounts ------------------------------------------------------------------------------

    def open_login_dialog(self, prefill: AccountSettings | None = None) -> None:
        """The login dialog, not modal: the window (and every connection) goes on meanwhile."""
        dialog = LoginDialog(self, prefill if isinstance(prefill, AccountSettings) else None)
        self._dialogs.append(dialog)
        dialog.accepted.connect(lambda: self.add_account(dialog.settings()))
        dialog.finished.connect(lambda _code: self._dialogs.remove(dialog))
        dialog.open()

    def add_account(self, settings: AccountSettings) -> None:
        key = settings.key
        if key in self.accounts:
            self.view(key, "").add_line(f"! {key} is already logged in")
            return
        for row in range(self.account_list.count()):  # a disconnected account logging in again
            if self.account_list.item(row).data(Qt.ItemDataRole.UserRole) == key:
                self.account_list.takeItem(row)
                break
        account = make_account(self.reactor, settings, lambda event: self.account_event(key, event))
        self.accounts[key] = account
        item = QListWidgetItem(f"{key} — connecting")
        item.setData(Qt.ItemDataRole.UserRole, key)
        self.account_list.addItem(item)
        self.account_list.setCurrentItem(item)
        self.view(key, "")
        self._status(key, "connecting")
        self.start_call(f"connect {key}", self._connect(account), console=key)

    async def _connect(self, account: Account) -> None:
        try:
            await account.connect()
        except Exception:
            self._status(account.key, "failed")
            self.accounts.pop(account.key, None)
            raise
        self._status(account.key, "connected")
        for room in self.auto_join:
            await self._join(account, room)

    def _status(self, key: str, status: str) -> None:
        for row in range(self.account_list.count()):
            item = self.account_list.item(row)
            if item.data(Qt.ItemDataRole.UserRole) == key:
                item.setText(f"{key} — {status}")
        for observer in self.observers:
            observer.account_status(key, status)

    def _tab_changed(self, _index: int) -> None:
        """The account list follows the tab shown: Join and List rooms act on that account."""
        view = self.tabs.currentWidget()
        if isinstance(view, RoomView):
            for row in range(self.account_list.count()):
                if self.account_list.item(row).data(Qt.ItemDataRole.UserRole) == view.account_key:
                    self.account_list.setCurrentRow(row)
        self.input.setFocus()

    def selected_account(self) -> Account | None:
        item = self.account_list.currentItem()
        if item is not None:
            return self.accounts.get(str(item.data(Qt.ItemDataRole.UserRole)))
        view = self.tabs.currentWidget()
        return self.accounts.get(view.account_key) if isinstance(view, RoomView) else None

    # -- rooms ---------------------------------------------------------------------------------

    def view(self, key: str, room: str) -> RoomView:
        """The tab of ``room`` on account ``key`` (``""``: its console), made when first needed."""
        found = self.views.get((key, room.lower()))
        if found is None:
            found = self.views[(key, room.lower())] = RoomView(key, room)
            self.tabs.addTab(found, f"{room} ({key})" if room else key)
            for observer in self.observers:
                observer.room_opened(key, room, found)
        return found

    async def _join(self, account: Account, room: str) -> None:
        room = room_name(room)
        view = self.view(account.key, room)
        self.tabs.setCurrentWidget(view)
        members = await account.join(room)
        self._show_members(account.key, room, members)
        view.add_line(f"you joined {room}")

    def _show_members(self, key: str, room: str, nicks: list[str]) -> None:
        view = self.view(key, room)
        view.set_members(nicks)
        for observer in self.observers:
            observer.members_shown(key, room, view)

    def account_event(self, key: str, event: AccountEvent) -> None:
        """What an account heard, into the right tab."""
        kind, room, args = event
        if kind == "members":
            self._show_members(key, room, list(args[0]))
            return
        if kind == "topic" and room:
            self.view(key, room).topic.setText(f"topic: {args[1]}" if args[1] else "(no topic)")
        account = self.accounts.get(key)
        if kind == "closed":
            self._status(key, "disconnected")
            self.accounts.pop(key, None)  # "Add account…" may log it in again
        if kind == "joined" and account is not None and args[0] == account.settings.user:
            return  # our own join: "you joined" says it once the join call has answered
        line = format_event(event)
        if line is not None:
            self.view(key, room if (key, room.lower()) in self.views else "").add_line(line)

    # -- input -------------------------------------------------------------------------------------

    def _join_clicked(self) -> None:
        account = self.selected_account()
        if account is not None and self.room_entry.text().strip():
            self.start_call(f"join {account.key}", self._join(account, self.room_entry.text()), console=account.key)
            self.room_entry.clear()

    def _rooms_clicked(self) -> None:
        account = self.selected_account()
        if account is not None:
            self.start_call(f"rooms {account.key}", self._list_rooms(account), console=account.key)

    async def _list_rooms(self, account: Account) -> None:
        rooms = await account.list_rooms()
        console = self.view(account.key, "")
        console.add_line(f"{len(rooms)} room(s):")
        for room in rooms:
            topic = f": {room['topic']}" if room["topic"] else ""
            console.add_line(f"  {room['name']} ({room['members']}){topic}")

    def _input_entered(self) -> None:
        text = self.input.text()
        self.input.clear()
        view = self.tabs.currentWidget()
        if not text.strip() or not isinstance(view, RoomView):
            return
        account = self.accounts.get(view.account_key)
        if account is None:
            return
        self.start_call(f"input {account.key}", self.command(account, view.room, text), console=account.key)

    async def command(self, account: Account, room: str, text: str) -> None:
        """A line typed in ``room``'s tab: a command, or a message to the room."""
        if not text.startswith("/"):
            if not room:
                self.view(account.key, "").add_line("! join a room first: /join ROOM")
                return
            await account.say(room, text)
            return
        name, _, rest = text[1:].partition(" ")
        name, rest = name.lower(), rest.strip()
        if name == "join" and rest:
            await self._join(account, rest)
        elif name == "part" and room:
            await account.part(room)
        elif name == "topic" and room and rest:
            await account.set_topic(room, rest)
        elif name == "msg" and " " in rest:
            nick, message = rest.split(" ", 1)
            await account.private_message(nick, message)
            self.view(account.key, "").add_line(f"-> *{nick}* {message}")
        elif name == "rooms":
            await self._list_rooms(account)
        else:
            self.view(account.key, room).add_line(
                "! commands: /join ROOM, /part, /topic TEXT, /msg NICK TEXT, /rooms")

    # -- closing -----------------------------------------------------------------------------------

    def goodbye(self) -> Deferred[None]:
        """Every account says goodbye (the broker's, IRC's QUIT); a reactor ``before shutdown``
        trigger, so closing the window waits for it before the loop ends."""
        self.timer.stop()
        return Deferred.from_future(self.loop.create_task(self._goodbye()))

    async def _goodbye(self) -> None:
        for task in list(self.pending):
            task.cancel()
        accounts = list(self.accounts.values())
        results = await asyncio.gather(*(account.disconnect() for account in accounts), return_exceptions=True)
        for account, result in zip(accounts, results):
            if isinstance(result, BaseException):
                log.warning("%s: error while disconnecting: %s", account.key, result)
