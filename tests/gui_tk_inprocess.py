"""The in-process half of tests/test_tk_support.py: Tk in the test's own process, so caplog sees
what is logged. Each test here runs in a pytest process of its own (test_tk_support.py starts it):
Tk keeps a display's X connection open until the process exits, and a later Tk in the same process
would then trip over the connection of an Xvfb already gone ("X connection broken" ends the process).
"""

from __future__ import annotations

import logging
import threading
import tkinter
from collections.abc import Iterator

import pytest

from net import tksupport
from net.defer import Deferred
from net.reactor import make_reactor
from net.selectreactor import SelectorsReactor
from xvfb import close_window, xvfb_display  # noqa: F401  (xvfb_display: a fixture)


@pytest.fixture
def root(xvfb_display: str) -> Iterator[tkinter.Tk]:
    """A Tk root window on a private Xvfb, in this process; tksupport uninstalled afterwards."""
    tk_root = tkinter.Tk(screenName=xvfb_display)
    tk_root.title("pbroker tk in-process")
    try:
        yield tk_root
    finally:
        tksupport.uninstall()
        try:
            tk_root.destroy()
        except tkinter.TclError:  # the test destroyed it
            pass


@pytest.fixture
def epoll_reactor() -> Iterator[SelectorsReactor]:
    reactor = make_reactor("epoll")
    assert isinstance(reactor, SelectorsReactor)
    try:
        yield reactor
    finally:
        reactor.close()


def test_errors_in_tk_and_reactor_callbacks_are_logged(
        root: tkinter.Tk, epoll_reactor: SelectorsReactor, caplog: pytest.LogCaptureFixture) -> None:
    tksupport.install(root, epoll_reactor)

    def command() -> None:
        epoll_reactor.call_later(0, timed)
        raise ValueError("raised by a button's command")

    def timed() -> None:
        epoll_reactor.call_soon(epoll_reactor.stop)
        raise RuntimeError("raised by a timed call")

    button = tkinter.Button(root, text="Boom", command=command)
    button.pack()
    epoll_reactor.call_when_running(button.invoke)  # Tk runs the command, as for a click
    with caplog.at_level(logging.ERROR, logger="net.reactor"):
        epoll_reactor.run()
    errors = [(r.getMessage(), r.exc_info[1] if r.exc_info else None) for r in caplog.records]
    assert [message for message, _ in errors] == ["Error in Tk callback", errors[1][0]]
    assert isinstance(errors[0][1], ValueError) and str(errors[0][1]) == "raised by a button's command"
    assert errors[1][0].startswith("Error in timed call") and isinstance(errors[1][1], RuntimeError)
    assert root.winfo_exists()  # reactor.stop() from the program keeps the window


def test_the_close_button_runs_the_shutdown_and_destroys_the_window(
        root: tkinter.Tk, epoll_reactor: SelectorsReactor, xvfb_display: str) -> None:
    tksupport.install(root, epoll_reactor)
    events: list[str] = []

    def before_shutdown() -> Deferred[None]:
        events.append("before-shutdown")
        d: Deferred[None] = Deferred()

        def fire() -> None:
            events.append("waited")
            d.callback(None)

        epoll_reactor.call_later(0.01, fire)  # a round of the loop later
        return d

    def mapped(_event: object) -> None:
        if not events:
            events.append("mapped")
            close_window(xvfb_display, root.wm_frame())  # as a window manager's close button

    epoll_reactor.add_system_event_trigger("before", "shutdown", before_shutdown)
    epoll_reactor.add_system_event_trigger("after", "shutdown", lambda: events.append("after-shutdown"))
    root.bind("<Map>", mapped)
    epoll_reactor.run()
    assert events == ["mapped", "before-shutdown", "waited", "after-shutdown"]
    with pytest.raises(tkinter.TclError):
        root.winfo_exists()  # destroyed: the user asked to close it


def test_destroying_the_root_still_runs_the_shutdown(root: tkinter.Tk, epoll_reactor: SelectorsReactor) -> None:
    tksupport.install(root, epoll_reactor)
    events: list[str] = []

    def before_shutdown() -> Deferred[None]:
        events.append("before-shutdown")  # Tk's mainloop has returned: the reactor's own rounds wait
        d: Deferred[None] = Deferred()

        def fire() -> None:
            events.append("waited")
            d.callback(None)

        epoll_reactor.call_later(0.01, fire)  # a round of the loop later
        return d

    epoll_reactor.add_system_event_trigger("before", "shutdown", before_shutdown)
    epoll_reactor.call_when_running(root.destroy)  # a program's own Quit button, say
    epoll_reactor.run()
    assert events == ["before-shutdown", "waited"]


def test_a_call_from_a_thread_wakes_tk_through_the_file_handler(
        root: tkinter.Tk, epoll_reactor: SelectorsReactor) -> None:
    # An interval of an hour: only the epoll fd given to createfilehandler can make the round
    # that delivers the thread's result; without it the test would hit pytest's timeout.
    tksupport.install(root, epoll_reactor, interval_ms=3_600_000)
    results: list[object] = []
    release = threading.Event()

    def in_thread() -> str:
        # Wait until Tk is idle: the reactor has had its first round and the next is an hour away.
        if not release.wait(timeout=30):
            raise TimeoutError("Tk never went idle")
        return threading.current_thread().name

    def start() -> None:
        d = epoll_reactor.defer_to_thread(in_thread)
        d.add_callback(results.append).add_callback(lambda _: epoll_reactor.stop())
        root.after_idle(release.set)

    epoll_reactor.call_when_running(start)
    epoll_reactor.run()
    assert release.is_set() and results and results[0] != threading.current_thread().name


def test_uninstall_gives_the_reactor_its_own_loop_back(root: tkinter.Tk, epoll_reactor: SelectorsReactor) -> None:
    before = root.protocol("WM_DELETE_WINDOW")
    tksupport.install(root, epoll_reactor)
    with pytest.raises(RuntimeError, match="already installed"):
        tksupport.install(root, epoll_reactor)
    epoll_reactor.call_when_running(epoll_reactor.stop)
    epoll_reactor.run()
    tksupport.uninstall()
    assert root.protocol("WM_DELETE_WINDOW") == before
    assert "report_callback_exception" not in vars(root)
    ran: list[str] = []

    def own_loop() -> None:
        ran.append("own loop")
        epoll_reactor.stop()

    epoll_reactor.call_when_running(own_loop)
    epoll_reactor.run()  # no Tk involved now: the selectors loop
    assert ran == ["own loop"]


def test_install_refuses_what_it_cannot_drive(root: tkinter.Tk) -> None:
    asyncio_reactor = make_reactor("asyncio")
    try:
        with pytest.raises(TypeError, match="make_reactor\\('epoll'\\)"):
            tksupport.install(root, asyncio_reactor)
    finally:
        asyncio_reactor.close()
    reactor = make_reactor("poll")
    try:
        with pytest.raises(ValueError, match="interval_ms"):
            tksupport.install(root, reactor, interval_ms=0)
    finally:
        reactor.close()
