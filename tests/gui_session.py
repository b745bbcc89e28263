"""Drive a GUI test window (gui_qt_client.py / gui_tk_client.py) against gui_server.py under Xvfb.

:class:`Reported` reads the lines a process prints, waiting for an expected one with a deadline
(no sleeps: ``selectors`` on the pipe). :func:`click_through` is the scenario both toolkits' tests
run: click Echo, see the answer; click Slow, see the timer keep ticking while it is unanswered,
click Echo meanwhile and see that answer too; release the slow answer and see it; click Boom and
see both errors logged; close the window (WM_DELETE_WINDOW) and see the goodbye reach the server.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from gui_common import TICKS_WHILE_PENDING
from xvfb import close_window, screenshot, xdotool

TESTS = Path(__file__).resolve().parent


class Reported:
    """The stdout lines of ``proc``, read as they come; :meth:`expect` waits for one."""

    def __init__(self, name: str, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self.name = name
        self.proc = proc
        self.lines: list[str] = []
        self._seen = 0
        self._partial = b""
        self._selector = selectors.DefaultSelector()
        self._selector.register(proc.stdout, selectors.EVENT_READ)
        os.set_blocking(proc.stdout.fileno(), False)

    def close(self) -> None:
        self._selector.close()

    def _read(self, timeout: float) -> bool:
        """Read what is there (waiting up to ``timeout``); False at EOF."""
        assert self.proc.stdout is not None
        if not self._selector.select(timeout):
            return True
        data = self.proc.stdout.read()
        if not data:
            return False
        *complete, self._partial = (self._partial + data).split(b"\n")
        self.lines.extend(line.decode(errors="replace") for line in complete)
        return True

    def expect(self, prefix: str, timeout: float = 30.0) -> str:
        """The next line (after those already returned) that starts with ``prefix``."""
        deadline = time.monotonic() + timeout
        while True:
            while self._seen < len(self.lines):
                line = self.lines[self._seen]
                self._seen += 1
                if line.startswith(prefix):
                    return line
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(left):
                tail = "\n  ".join(self.lines[-30:])
                raise AssertionError(f"{self.name} did not print a line starting with {prefix!r} "
                                     f"({'timed out' if left <= 0 else 'it exited'}); it printed:\n  {tail}")

    def drain(self, timeout: float = 30.0) -> list[str]:
        """Every line until EOF."""
        deadline = time.monotonic() + timeout
        while self._read(max(0.0, deadline - time.monotonic())):
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} did not exit; it printed:\n  " + "\n  ".join(self.lines[-30:]))
        return self.lines


@contextmanager
def started(name: str, args: list[str], env: dict[str, str] | None = None) -> Iterator[Reported]:
    """A Python process running ``args`` with stdin and stdout piped; killed and reaped after."""
    proc = subprocess.Popen([sys.executable, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            env=env, cwd=TESTS.parent)
    reported = Reported(name, proc)
    try:
        yield reported
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        reported.close()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()


@dataclass
class Outcome:
    """What the scenario saw, for the test to assert on."""

    window_lines: list[str] = field(default_factory=list)
    server_lines: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    ticks_while_pending: int = 0
    ticks_during_slow_call: int = 0
    exit_status: int | None = None
    screenshots: list[Path] = field(default_factory=list)

    def check_the_window_kept_working(self) -> None:
        """What every toolkit's click-through must show (the tests' shared assertions)."""
        # The answers appeared in the window's label (the text read back from the widget).
        assert self.labels == ["echo: click 1", "echo: click 2", "slow done"]
        # While the slow call was unanswered the window's timer kept ticking, and a second
        # click made a second call, answered before the slow one (labels above, in that order).
        assert self.ticks_while_pending >= TICKS_WHILE_PENDING
        assert self.ticks_during_slow_call >= self.ticks_while_pending
        # Closing the window ran the shutdown trigger, whose goodbye the server received.
        lines = self.window_lines
        assert lines.index("goodbye-sent") < lines.index("exited"), lines
        assert self.exit_status == 0, lines
        endings = [line for line in self.server_lines if line.startswith("log INFO broker.session")]
        assert len(endings) == 1 and "peer said goodbye (normal)" in endings[0], self.server_lines
        assert not [line for line in self.server_lines if "without a goodbye" in line or "reset" in line]
        assert all(shot.stat().st_size > 1000 for shot in self.screenshots)


def click_through(toolkit: str, client_script: str, title: str, display: str, shots: Path,
                  extra_args: tuple[str, ...] = (), extra_env: dict[str, str] | None = None) -> Outcome:
    """Run the scenario of the module docstring; return what was seen."""
    outcome = Outcome()
    env = {**os.environ, "DISPLAY": display, **(extra_env or {})}
    with started("the server", [str(TESTS / "gui_server.py")]) as server:
        port = server.expect("port ").split()[1]
        with started("the window", [str(TESTS / client_script), port, *extra_args], env=env) as window:
            words = window.expect("ready ").split()[1:]
            echo, slow, boom = (words[i:i + 2] for i in (0, 2, 4))
            wid = xdotool(display, "search", "--sync", "--onlyvisible", "--name", f"^{title}$").split()[0]

            def click(at: list[str]) -> None:
                xdotool(display, "mousemove", "--window", wid, at[0], at[1], "click", "1")

            click(echo)
            outcome.labels.append(window.expect("label echo:").partition(" ")[2])
            outcome.screenshots.append(screenshot(display, shots / "echo-answered.png"))

            click(slow)
            server.expect("slow-call")
            outcome.ticks_while_pending = int(window.expect("slow-pending ").split()[1])
            click(echo)  # the window takes clicks, and calls, while the slow call is in flight
            outcome.labels.append(window.expect("label echo:").partition(" ")[2])
            outcome.screenshots.append(screenshot(display, shots / "slow-pending.png"))
            assert server.proc.stdin is not None
            server.proc.stdin.write(b"release\n")
            server.proc.stdin.flush()
            outcome.labels.append(window.expect("label slow").partition(" ")[2])
            outcome.ticks_during_slow_call = int(window.expect("slow-answer ").split()[1])

            click(boom)
            # The button's handler raises first, then the timed call it scheduled does.
            window.expect(f"log ERROR net.reactor Error in {toolkit} callback | ValueError: boom from the button")
            window.expect("log ERROR net.reactor Error in timed call")
            close_window(display, wid)
            outcome.window_lines = window.drain()
            outcome.exit_status = window.proc.wait()
        server.expect("log INFO broker.session")  # how the connection ended, as the server saw it
        assert server.proc.stdin is not None
        server.proc.stdin.close()
        outcome.server_lines = server.drain()
        server.proc.wait()
    return outcome
