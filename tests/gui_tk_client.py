"""A Tk window for tests/test_tk_support.py: ``python tests/gui_tk_client.py PORT [BACKEND]``
(see gui_common; BACKEND is epoll, poll or select)."""

from __future__ import annotations

import sys
import tkinter

from gui_common import Client, report_logs, say

from net import tksupport
from net.reactor import make_reactor

TITLE = "pbroker tk test"


def main() -> None:
    report_logs()
    root = tkinter.Tk()
    root.title(TITLE)
    root.geometry("360x220+0+0")
    reactor = make_reactor(sys.argv[2] if len(sys.argv) > 2 else "epoll")
    tksupport.install(root, reactor)
    label = tkinter.Label(root, text="not connected")
    ticks = tkinter.Label(root, text="ticks: 0")

    def set_label(text: str) -> str:
        label.configure(text=text)
        return str(label.cget("text"))

    client = Client(reactor, int(sys.argv[1]), set_label)
    buttons = [tkinter.Button(root, text=name, command=command) for name, command in
               (("Echo", client.echo_clicked), ("Slow", client.slow_clicked), ("Boom", client.boom_clicked))]
    for widget in (*buttons, label, ticks):
        widget.pack(fill="x")

    def tick() -> None:
        ticks.configure(text=f"ticks: {client.tick()}")
        root.after(10, tick)

    root.after(10, tick)

    def connected(_ref: object) -> None:
        client.show("connected")
        root.update_idletasks()
        say("ready", *(f"{b.winfo_x() + b.winfo_width() // 2} {b.winfo_y() + b.winfo_height() // 2}"
                       for b in buttons))

    reactor.call_when_running(lambda: client.connect().add_callback(connected))
    reactor.run()
    tksupport.uninstall()
    reactor.close()
    say("exited")


if __name__ == "__main__":
    main()
