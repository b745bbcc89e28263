"""The server the GUI tests' windows call: ``echo``, and ``slow``, whose answer waits for the test.

Run as ``python tests/gui_server.py``. It prints ``port N`` once it listens on loopback, ``slow-call``
when a slow call arrives, and ``log LEVEL NAME MESSAGE`` for each record of the ``broker`` loggers
(so a test sees "peer said goodbye" or its absence). A line ``release`` on stdin answers the
pending slow calls ("slow done"); EOF on stdin stops the server.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import broker  # noqa: E402
from net.defer import Deferred  # noqa: E402
from net.reactor import make_reactor  # noqa: E402


class Service(broker.Root):
    def __init__(self) -> None:
        self.pending: list[Deferred[str]] = []

    def remote_echo(self, text: str) -> str:
        return f"echo: {text}"

    def remote_slow(self) -> Deferred[str]:
        d: Deferred[str] = Deferred()
        self.pending.append(d)
        print("slow-call", flush=True)
        return d

    def release(self) -> None:
        pending, self.pending = self.pending, []
        for d in pending:
            d.callback("slow done")


class PrintRecords(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        print("log", record.levelname, record.name, record.getMessage().replace("\n", " | "), flush=True)


def main() -> None:
    handler = PrintRecords()
    logging.getLogger("broker").addHandler(handler)
    logging.getLogger("broker").setLevel(logging.INFO)
    reactor = make_reactor()
    service = Service()
    buffered = bytearray()

    def stdin_readable() -> None:
        data = os.read(0, 4096)
        if not data:
            reactor.remove_reader(0)
            reactor.stop()
            return
        buffered.extend(data)
        while b"\n" in buffered:
            line, _, rest = bytes(buffered).partition(b"\n")
            buffered[:] = rest
            if line.strip() == b"release":
                service.release()

    def listening(port: Any) -> None:
        print("port", port.get_host().port, flush=True)

    reactor.add_reader(0, stdin_readable)
    broker.serve(reactor, "tcp:0:interface=127.0.0.1", service).add_callback(listening)
    reactor.run()
    reactor.close()


if __name__ == "__main__":
    main()
