"""A Qt window for tests/test_qt_support.py: ``python tests/gui_qt_client.py PORT`` (see gui_common)."""

from __future__ import annotations

import sys

from gui_common import Client, report_logs, say
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QLabel, QPushButton, QVBoxLayout, QWidget

from net import qtsupport

TITLE = "pbroker qt test"


def main() -> None:
    report_logs()
    app = QApplication(sys.argv[:1])
    reactor = qtsupport.qt_reactor(app)

    window = QWidget()
    window.setWindowTitle(TITLE)
    window.setGeometry(0, 0, 360, 220)
    layout = QVBoxLayout(window)
    label = QLabel("not connected")
    ticks = QLabel("ticks: 0")
    buttons = [QPushButton(name) for name in ("Echo", "Slow", "Boom")]
    for widget in (*buttons, label, ticks):
        layout.addWidget(widget)

    def set_label(text: str) -> str:
        label.setText(text)
        return label.text()

    client = Client(reactor, int(sys.argv[1]), set_label)
    buttons[0].clicked.connect(client.echo_clicked)
    buttons[1].clicked.connect(client.slow_clicked)
    buttons[2].clicked.connect(client.boom_clicked)
    timer = QTimer(window)
    timer.timeout.connect(lambda: ticks.setText(f"ticks: {client.tick()}"))
    timer.start(10)

    def connected(_ref: object) -> None:
        client.show("connected")
        window.show()
        centres = [b.geometry().center() for b in buttons]
        say("ready", *(f"{c.x()} {c.y()}" for c in centres))

    reactor.call_when_running(lambda: client.connect().add_callback(connected))
    qtsupport.run(app, reactor)
    timer.stop()
    reactor.close()
    say("exited")


if __name__ == "__main__":
    main()
