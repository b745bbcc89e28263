"""``--test-hook``: the window tells what it shows on stdout, and takes a few commands on stdin.

What a test needs from a GUI it drives from outside: a way to read back what is on the screen, and
to ask for a screenshot. Every line is read from the widgets' own models (a message list's rows as
they are inserted, the member list after each update), so it is what the window displays, not what
the network delivered. One line per fact, words separated by tabs::

    READY     <X window id>                         the window is shown
    BUTTON    <name> <x> <y>                        where to click it, in window coordinates
    ACCOUNT   <account> <status>                    connecting, connected, failed, disconnected
    SHOWN     <account> <room> <line>               a line appeared in a room's message list
    MEMBERS   <account> <room> <nick,nick,...>      a room's member list as shown
    CALL      <started|done|failed: ...> <name>     a remote call began or ended
    TICK      <n>                                   the window's timer ticked (see window.py)
    SAVED     <path>                                a screenshot was written
    TAB       <account> <room>                      that tab is now the one shown

Commands on stdin, one a line: ``screenshot PATH`` (``QWidget.grab()`` of the window), ``tab ACCOUNT
ROOM`` (show that tab; ``ROOM`` empty for the account's console), ``close`` (close the window, as its
close button does), and, for the ``offscreen`` platform where no X server takes xdotool's keys and
clicks, ``type TEXT`` (``QTest.keyClicks`` into the input line, then Enter) and ``click list-rooms``.
End of input only stops the reading.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from .window import ChatWindow, RoomView

__all__ = ["TestHook"]


class TestHook:
    """A :class:`~.window.WindowObserver` that prints, and a reader of commands on fd 0."""

    __test__ = False  # not a pytest test class, whatever its name

    def __init__(self, window: ChatWindow, reactor: Any) -> None:
        self.window = window
        self.reactor = reactor
        self._partial = b""
        window.observers.append(self)
        reactor.add_reader(0, self._stdin_readable)
        reactor.add_system_event_trigger("after", "shutdown", self._stop_reading)

    @staticmethod
    def say(*words: object) -> None:
        print("\t".join(str(word).replace("\t", " ").replace("\n", " ") for word in words), flush=True)

    def shown(self) -> None:
        """READY, then where the List rooms button is (window coordinates), for a test to click."""
        self.say("READY", int(self.window.winId()))
        button = self.window.rooms_button
        centre = button.mapTo(self.window, button.rect().center())
        self.say("BUTTON", button.objectName(), centre.x(), centre.y())

    # -- WindowObserver ----------------------------------------------------------------------------

    def account_status(self, key: str, status: str) -> None:
        self.say("ACCOUNT", key, status)

    def room_opened(self, key: str, room: str, view: RoomView) -> None:
        model = view.messages.model()

        def inserted(_parent: object, first: int, last: int) -> None:
            for row in range(first, last + 1):
                self.say("SHOWN", key, room or "-", model.data(model.index(row, 0)))

        model.rowsInserted.connect(inserted)

    def members_shown(self, key: str, room: str, view: RoomView) -> None:
        self.say("MEMBERS", key, room, ",".join(view.member_names()))

    def call_started(self, name: str) -> None:
        self.say("CALL", "started", name)

    def call_finished(self, name: str, outcome: str) -> None:
        self.say("CALL", outcome, name)

    def tick(self, count: int) -> None:
        self.say("TICK", count)

    # -- stdin -------------------------------------------------------------------------------------

    def _stdin_readable(self) -> None:
        data = os.read(0, 4096)
        if not data:
            self._stop_reading()
            return
        *lines, self._partial = (self._partial + data).split(b"\n")
        if len(self._partial) > 65536:
            print("testhook: a command line over 64 KiB; dropped", file=sys.stderr)
            self._partial = b""
        for line in lines:
            self.command(line.decode("utf-8", "replace").strip())

    def _stop_reading(self) -> None:
        if self.reactor is not None:
            self.reactor.remove_reader(0)
            self.reactor = None

    def command(self, line: str) -> None:
        name, _, rest = line.partition(" ")
        if name == "screenshot" and rest:
            if not self.window.grab().save(rest):
                print(f"testhook: could not save a screenshot to {rest}", file=sys.stderr)
            self.say("SAVED", rest)
        elif name == "tab" and rest:
            key, _, room = rest.partition(" ")
            view = self.window.views.get((key, room.strip().lower()))
            if view is None:
                print(f"testhook: no tab for {rest!r}", file=sys.stderr)
                return
            self.window.tabs.setCurrentWidget(view)
            self.say("TAB", key, room.strip())
        elif name == "type":  # for a platform with no X server to type into (offscreen)
            QTest.keyClicks(self.window.input, rest)
            QTest.keyClick(self.window.input, Qt.Key.Key_Return)
        elif name == "click" and rest == self.window.rooms_button.objectName():
            QTest.mouseClick(self.window.rooms_button, Qt.MouseButton.LeftButton)
        elif name == "close":
            self.window.close()
        elif line:
            print(f"testhook: unknown command {line!r} (screenshot PATH, tab ACCOUNT ROOM, close, "
                  "type TEXT, click list-rooms)", file=sys.stderr)
