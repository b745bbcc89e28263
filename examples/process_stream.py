"""Run a command and stream its output line by line, as it comes: a subprocess as a transport.

    .venv/bin/python examples/process_stream.py [COMMAND ARGS...]

Without a command it runs a small Python child that prints a few lines, some to stderr, and exits
with code 3. Each line is shown as it arrives, numbered per stream (``out`` or ``err``); then the
child's exit. The exit status is the child's. The framing is ``net.basic.LineOnlyReceiver``'s,
the same class a line-based TCP protocol uses: a process's pipes are just another transport.
Listens on nothing; runs with ``net.react`` (``PBROKER_REACTOR`` picks the backend).
"""

from __future__ import annotations

import sys
from typing import Any

from net.basic import LineOnlyReceiver
from net.defer import Deferred, Failure
from net.error import ProcessDone, ProcessTerminated
from net.protocol import ProcessProtocol
from net.react import react

__all__ = ["Lines", "StreamLines", "main", "DEMO_CHILD"]

DEMO_CHILD = [sys.executable, "-u", "-c", """
import sys
for n in range(1, 4):
    print(f"line {n} of 3")
    if n == 2:
        print("something to complain about", file=sys.stderr)
sys.exit(3)
"""]


class Lines(LineOnlyReceiver):
    """One of the child's streams, cut into lines and printed with a prefix."""

    delimiter = b"\n"

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0

    def line_received(self, line: bytes) -> None:
        self.count += 1
        print(f"{self.name} {self.count:>3} | {line.decode(errors='replace').rstrip()}", flush=True)


class StreamLines(ProcessProtocol):
    """Feeds stdout and stderr to a :class:`Lines` each; ``ended`` fires with the exit reason."""

    def __init__(self) -> None:
        self.out = Lines("out")
        self.err = Lines("err")
        self.ended: Deferred[BaseException] = Deferred()

    def connection_made(self, transport: Any) -> None:
        self.out.make_connection(transport)  # the framers ask the transport whether it is closing
        self.err.make_connection(transport)
        transport.close_stdin()  # nothing to tell the child: it reads end of file

    def out_received(self, data: bytes) -> None:
        self.out.data_received(data)

    def err_received(self, data: bytes) -> None:
        self.err.data_received(data)

    def process_ended(self, reason: Failure) -> None:
        self.ended.callback(reason.value)


async def main(reactor: Any, *command: str) -> None:
    argv = list(command) or DEMO_CHILD
    protocol = StreamLines()
    try:
        transport = reactor.spawn_process(protocol, argv[0], argv)
    except OSError as exc:  # no such program, say: tell the user, no traceback
        sys.exit(f"process_stream.py: {exc}")
    print(f"started pid {transport.pid}: {argv[0]}", flush=True)
    reason = await protocol.ended
    if isinstance(reason, ProcessDone):
        print("exited with code 0", flush=True)
        return
    assert isinstance(reason, ProcessTerminated)
    if reason.signal is not None:
        print(f"killed by signal {reason.signal}", flush=True)
        sys.exit(128 + reason.signal)
    print(f"exited with code {reason.exit_code}", flush=True)
    sys.exit(reason.exit_code)


if __name__ == "__main__":
    react(main)
