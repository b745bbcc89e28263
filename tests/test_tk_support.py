"""net.tksupport: Tk's mainloop drives the reactor, with real windows under Xvfb.

The click-through tests run tests/gui_tk_client.py in a subprocess against tests/gui_server.py
and click it with xdotool (see tests/gui_session.py), on epoll (socket readiness through Tk's
file handler) and on poll (no fd to watch: polled every interval). The others (tests/gui_tk_inprocess.py) run Tk in the test's own
process, so caplog sees what is logged: each in a pytest process of its own (see that module).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gui_session import click_through
from xvfb import require_x_tools, xvfb_display  # noqa: F401  (xvfb_display: a fixture)

TESTS = Path(__file__).resolve().parent


@pytest.mark.parametrize("backend", ["epoll", "poll"])
def test_a_click_makes_a_remote_call_and_the_window_keeps_working(
        backend: str, xvfb_display: str, tmp_path: Path) -> None:
    fds_before = sorted(os.listdir("/proc/self/fd"))
    seen = click_through("Tk", "gui_tk_client.py", "pbroker tk test", xvfb_display, tmp_path,
                         extra_args=(backend,))

    seen.check_the_window_kept_working()
    assert sorted(os.listdir("/proc/self/fd")) == fds_before


IN_PROCESS = ['test_errors_in_tk_and_reactor_callbacks_are_logged', 'test_the_close_button_runs_the_shutdown_and_destroys_the_window', 'test_destroying_the_root_still_runs_the_shutdown', 'test_a_call_from_a_thread_wakes_tk_through_the_file_handler', 'test_uninstall_gives_the_reactor_its_own_loop_back', 'test_install_refuses_what_it_cannot_drive']


@pytest.mark.parametrize("name", IN_PROCESS)
def test_in_a_process_of_its_own(name: str) -> None:
    require_x_tools()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout", "30",
                           f"{TESTS / 'gui_tk_inprocess.py'}::{name}"],
                          capture_output=True, text=True, timeout=60, cwd=TESTS.parent)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "1 passed" in done.stdout, done.stdout[-4000:]
