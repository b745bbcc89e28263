"""net.qtsupport: pbroker on Qt's event loop (PySide6 + qasync), with real windows under Xvfb.

The window tests run the Qt program in a subprocess (one QApplication per process, and a Qt
program whose X server goes away aborts): tests/gui_qt_client.py against tests/gui_server.py,
clicked with xdotool through the xcb platform plugin, as a user would (see tests/gui_session.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("PySide6.QtWidgets", reason="the Qt tests need PySide6-Essentials (pip install '.[gui]')")
pytest.importorskip("qasync", reason="the Qt tests need qasync (pip install '.[gui]')")

from gui_session import click_through  # noqa: E402
from xvfb import xvfb_display  # noqa: E402,F401  (a fixture)

ROOT = Path(__file__).resolve().parent.parent


def test_a_click_makes_a_remote_call_and_the_window_keeps_working(xvfb_display: str, tmp_path: Path) -> None:
    fds_before = sorted(os.listdir("/proc/self/fd"))
    seen = click_through("Qt", "gui_qt_client.py", "pbroker qt test", xvfb_display, tmp_path,
                         extra_env={"QT_QPA_PLATFORM": "xcb"})

    seen.check_the_window_kept_working()
    assert sorted(os.listdir("/proc/self/fd")) == fds_before


#: A Qt program without a window (offscreen platform): app.quit() runs the shutdown, a second quit
#: during it is swallowed, a before-shutdown Deferred is waited for, errors in slots are logged.
QUIT_PROGRAM = textwrap.dedent("""
    import logging, sys
    sys.path.insert(0, {root!r})
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication
    from net import qtsupport
    from net.defer import Deferred

    logging.basicConfig(level=logging.ERROR, stream=sys.stdout, format="log %(name)s %(message)s")
    app = QApplication([])
    reactor = qtsupport.qt_reactor(app)
    try:
        qtsupport.qt_reactor(QApplication)  # the class, not the instance: a slip worth a clear error
    except ValueError as exc:
        print("wrong app refused" if "QApplication instance" in str(exc) else exc, flush=True)

    def before_shutdown():
        print("before-shutdown", flush=True)
        app.quit()  # a second Quit while the shutdown runs: swallowed
        d = Deferred()
        reactor.call_later(0.01, lambda: (print("deferred fired", flush=True), d.callback(None)))
        return d

    def slot_raises():
        raise ValueError("raised in a slot")

    reactor.add_system_event_trigger("before", "shutdown", before_shutdown)
    reactor.add_system_event_trigger("after", "shutdown", lambda: print("after-shutdown", flush=True))
    reactor.call_when_running(lambda: print("running", flush=True))
    QTimer.singleShot(0, slot_raises)
    QTimer.singleShot(20, app.quit)
    qtsupport.run(app, reactor)
    print("run returned", reactor.running, flush=True)
    reactor.close()
    print("closed", flush=True)
""")


def test_app_quit_runs_the_shutdown_triggers_before_the_loop_ends() -> None:
    done = subprocess.run([sys.executable, "-c", QUIT_PROGRAM.format(root=str(ROOT))], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stdout + done.stderr
    assert lines[0] == "wrong app refused"
    errors = [line for line in lines if line.startswith("log ")]
    assert errors and errors[0].startswith("log net.reactor Error in Qt callback"), lines
    assert "ValueError: raised in a slot" in done.stdout
    order = [line for line in lines if not line.startswith(("log ", "Traceback", "  ", "ValueError"))]
    assert order == ["wrong app refused", "running", "before-shutdown", "deferred fired", "after-shutdown",
                     "run returned False", "closed"], lines
