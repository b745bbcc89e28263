"""What the GUI test windows (gui_qt_client.py, gui_tk_client.py) share: the report they print, and
the client logic behind their buttons, written once against the broker so only widgets differ.

A window tells the test what happens as lines on stdout: ``ready ECHO_X ECHO_Y SLOW_X SLOW_Y BOOM_X
BOOM_Y`` (button centres, relative to the window), ``label TEXT`` whenever the answer label changes
(read back from the widget), ``slow-pending TICKS`` once the tick timer has ticked TICKS times while
the slow call is unanswered, ``slow-answer TICKS`` with the ticks counted during the whole call,
``log LEVEL NAME MESSAGE`` for every log record (so errors in callbacks are seen), ``goodbye-sent``
from the shutdown trigger, and ``exited`` after the reactor's run() returned.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import broker  # noqa: E402
from net.defer import Deferred  # noqa: E402

#: Ticks that must pass while the slow call is in flight before the window says so.
TICKS_WHILE_PENDING = 20


def say(*words: object) -> None:
    print(*words, flush=True)


class SayRecords(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += f" | {type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        say("log", record.levelname, record.name, text.replace("\n", " | "))


def report_logs() -> None:
    logging.getLogger().addHandler(SayRecords())
    logging.getLogger().setLevel(logging.INFO)


class Client:
    """The buttons' logic: a connection, the echo and slow calls, the tick count, the goodbye."""

    def __init__(self, reactor: Any, port: int, set_label: Callable[[str], str]) -> None:
        self.reactor = reactor
        self.port = port
        self.set_label = set_label  # sets the label, returns the text the widget now shows
        self.ref: Any = None
        self.clicks = 0
        self.ticks = 0
        self.slow_sent_at: int | None = None
        self.pending_said = False

    def connect(self) -> Deferred[Any]:
        def connected(ref: Any) -> Any:
            self.ref = ref
            self.reactor.add_system_event_trigger("before", "shutdown", self.goodbye)
            return ref

        return broker.connect(self.reactor, f"tcp:127.0.0.1:{self.port}").add_callback(connected)

    def show(self, text: str) -> None:
        say("label", self.set_label(text))

    def echo_clicked(self) -> None:
        self.clicks += 1
        d = self.ref.call_remote("echo", f"click {self.clicks}")
        d.add_callbacks(self.show, lambda failure: self.show(f"error: {failure.value}"))

    def slow_clicked(self) -> None:
        self.slow_sent_at = self.ticks
        self.pending_said = False

        def answered(answer: str) -> None:
            assert self.slow_sent_at is not None
            during, self.slow_sent_at = self.ticks - self.slow_sent_at, None
            self.show(answer)
            say("slow-answer", during)

        self.ref.call_remote("slow").add_callbacks(answered, lambda failure: self.show(f"error: {failure.value}"))

    def boom_clicked(self) -> None:
        def timed_boom() -> None:
            raise RuntimeError("boom from a timed call")

        self.reactor.call_later(0, timed_boom)
        raise ValueError("boom from the button")

    def tick(self) -> int:
        """One tick of the window's timer; the count."""
        self.ticks += 1
        if (self.slow_sent_at is not None and not self.pending_said
                and self.ticks - self.slow_sent_at >= TICKS_WHILE_PENDING):
            self.pending_said = True
            say("slow-pending", self.ticks - self.slow_sent_at)
        return self.ticks

    def goodbye(self) -> Deferred[None] | None:
        """Shutdown trigger: say goodbye to the server and wait until the connection has closed."""
        if self.ref is None:
            return None
        gone: Deferred[None] = Deferred()
        self.ref.notify_on_disconnect(lambda _ref: gone.callback(None))
        self.ref.session.disconnect()
        say("goodbye-sent")
        return gone
