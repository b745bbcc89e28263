"""The glib reactor (:mod:`net.glibreactor`): every backend's tests on it, and a real GTK 3 window.

The conftest ``reactor`` fixture leaves glib out (it would add a backend to the whole suite); this
module's own ``reactor`` fixture is a :class:`GlibReactor`, and the reactor-using tests of the
modules in :data:`ADOPTED` are imported into this module, so pytest runs the very same functions
on glib: the transport conformance kit over every pair it knows (TCP, TLS, memory, Unix,
TLS over Unix), the scheduling rules (time order, FIFO at equal times, cancel, reset/delay,
``call_soon`` rounds), lifecycle and triggers, threads, fd callbacks, TCP/TLS/Unix/UDP transports,
processes, endpoints, flow control and the broker over real sockets. Their ids say where each
came from (``test_tcp__...``). Then what is glib's own: the registry, the program-runs-the-loop
mode, a loop quit behind the reactor's back, ``close()`` leaving nothing on the default context,
signals, and a GTK window under Xvfb whose button makes a remote call.
"""

from __future__ import annotations

import gc
import importlib
import inspect
import os
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import net.glibreactor as glibreactor

try:
    glibreactor.require_glib()
except ImportError as missing:
    pytest.skip(str(missing), allow_module_level=True)

import broker
from net.defer import Deferred
from net.reactor import available_reactors, default_reactor_name, make_reactor

GlibReactor = glibreactor.GlibReactor
GLib = glibreactor.GLib
ROOT = Path(__file__).resolve().parent.parent
# The default main context (and its wake-up eventfd) is created once per process, on first use:
# create it now, so the adopted tests' descriptor baselines already hold it.
GLib.MainContext.default().iteration(False)


@pytest.fixture
def reactor() -> Iterator[Any]:
    """This module's ``reactor``: a fresh glib reactor (conftest's runs the other backends)."""
    r = make_reactor("glib")
    try:
        yield r
    finally:
        r.close()


# -- every backend's tests, on glib --------------------------------------------------------------

#: The modules whose reactor-using tests run here as well.
ADOPTED = ("test_conformance", "test_reactor_core", "test_reactor_threads", "test_call_soon_write_through",
           "test_tcp", "test_tls", "test_unix", "test_udp", "test_endpoints", "test_flow_control",
           "test_process", "test_broker_tcp", "test_broker_unix")
#: Fixtures defined alike in several adopted modules (the first one found is used).
_EQUIVALENT_FIXTURES = {"certs", "sock_path"}
#: The adopted modules with autouse fixtures (their descriptor and child-process checks). Those are
#: not imported, since here they would apply to every test of every module; instead
#: :func:`no_leaks_where_the_home_module_checks` checks the same for the tests from those modules.
_CHECKED_HOMES: set[str] = set()


def _is_fixture(obj: Any) -> bool:
    return hasattr(obj, "_fixture_function_marker") or hasattr(obj, "_pytestfixturefunction")


def _is_autouse(obj: Any) -> bool:
    marker = getattr(obj, "_fixture_function_marker", None) or getattr(obj, "_pytestfixturefunction", None)
    return bool(getattr(marker, "autouse", False))


def _parameters(obj: Any) -> set[str]:
    function = obj._get_wrapped_function() if hasattr(obj, "_get_wrapped_function") else obj
    return set(inspect.signature(function).parameters)


def _adopt(module_names: tuple[str, ...]) -> dict[str, Any]:
    """The tests of ``module_names`` that use the ``reactor`` fixture (directly, or through a fixture
    of their module), renamed ``test_<module>__<name>``, and the fixtures of those modules."""
    adopted: dict[str, Any] = {}
    fixtures: dict[str, str] = {}
    for module_name in module_names:
        module = importlib.import_module(module_name)
        own = {name: obj for name, obj in vars(module).items() if getattr(obj, "__module__", None) == module_name}
        uses_reactor = {"reactor"}
        for name, obj in own.items():
            if _is_fixture(obj) and _is_autouse(obj):
                _CHECKED_HOMES.add(module_name)
            elif _is_fixture(obj):
                if name in fixtures and name not in _EQUIVALENT_FIXTURES:
                    raise AssertionError(f"fixture {name!r} is defined in both {fixtures[name]} and {module_name}")
                fixtures.setdefault(name, module_name)
                if fixtures[name] == module_name:
                    adopted[name] = obj
                if "reactor" in _parameters(obj):
                    uses_reactor.add(name)
        short = module_name.removeprefix("test_")
        for name, obj in own.items():
            if name.startswith("test_") and inspect.isfunction(obj) and _parameters(obj) & uses_reactor:
                adopted[f"test_{short}__{name.removeprefix('test_')}"] = obj
    return adopted


globals().update(_adopt(ADOPTED))


def _open_fds() -> dict[str, str]:
    found = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            found[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the listing's own descriptor, closed meanwhile
            pass
    return found


@pytest.fixture(autouse=True)
def no_leaks_where_the_home_module_checks(request: pytest.FixtureRequest) -> Iterator[None]:
    """For tests from modules that check it (:data:`_CHECKED_HOMES`): the same descriptors after the
    test (and the reactor's close: autouse fixtures are set up first), and no child left behind."""
    from conftest import _children_of

    if getattr(request.function, "__module__", None) not in _CHECKED_HOMES:
        yield
        return
    fds, children = _open_fds(), set(_children_of(os.getpid()))
    yield
    gc.collect()
    leaked = {fd: target for fd, target in _open_fds().items() if fd not in fds}
    assert not leaked, f"descriptors left open: {leaked}"
    left = [child for child in _children_of(os.getpid()) if child not in children]
    assert not left, f"children left behind (state Z is a zombie): {left}"


def test_the_adopted_tests_are_many_and_include_the_whole_conformance_kit() -> None:
    """A guard against adopting nothing (a rename upstream would silently drop tests here)."""
    from net.testing import STREAM_PAIRS, TRANSPORT_CHECKS

    names = [name for name in globals() if "__" in name and name.startswith("test_")]
    assert len(names) > 200
    # The kit over tcp, tls and memory (STREAM_PAIRS), over Unix sockets, and TLS over Unix sockets.
    assert {"tcp", "tls", "memory"} <= set(STREAM_PAIRS) and len(TRANSPORT_CHECKS) >= 10
    for must in ("test_conformance__conformance", "test_unix__conformance", "test_unix__conformance_tls_over_unix"):
        assert must in names
    for must in ("test_reactor_core__delayed_calls_run_in_time_order_each_at_its_time",
                 "test_reactor_core__cancelled_calls_never_run", "test_reactor_core__call_soon_runs_in_next_round",
                 "test_reactor_core__call_from_thread_many_threads", "test_reactor_threads__defer_to_thread_result",
                 "test_reactor_core__before_shutdown_deferreds_delay_shutdown", "test_broker_tcp__broker_checks",
                 "test_reactor_core__callback_errors_are_logged_and_the_loop_continues"):
        assert must in names


@pytest.mark.parametrize("signum_name", ["SIGTERM", "SIGINT"])
def test_a_signal_stops_a_glib_reactor_cleanly(signum_name: str) -> None:
    """test_reactor_threads' child-process signal test, on glib (it is parametrised by backend name)."""
    import signal

    from test_reactor_threads import test_signal_stops_child_reactor_cleanly

    test_signal_stops_child_reactor_cleanly("glib", getattr(signal, signum_name))


# -- the registry ----------------------------------------------------------------------------------


def test_make_reactor_glib_and_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "glib" not in available_reactors()  # the whole suite's backends stay as they were
    assert available_reactors(gui=True)[-1] == "glib"
    monkeypatch.setenv("PBROKER_REACTOR", "glib")
    assert default_reactor_name() == "glib"
    reactor = make_reactor()
    try:
        assert isinstance(reactor, GlibReactor)
    finally:
        reactor.close()
    with pytest.raises(ValueError, match="glib"):
        make_reactor("gtk")  # the unknown-name message lists glib among the choices


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)))


def test_net_does_not_import_gi_and_works_without_it() -> None:
    """Importing net (and using another backend) never imports gi; without PyGObject, asking for
    glib says what to install, and ``available_reactors(gui=True)`` leaves it out."""
    done = run_python("""
        import sys
        import net, net.reactor, net.tcp, net.unix, net.tls, net.endpoints, net.process, broker
        from net.reactor import available_reactors, make_reactor
        make_reactor("epoll").close()
        assert available_reactors() == ["select", "poll", "epoll", "asyncio"], available_reactors()
        assert "gi" not in sys.modules, "net imported gi"
        sys.modules["gi"] = None  # PyGObject missing from here on
        assert "glib" not in available_reactors(gui=True)
        import net.glibreactor  # importable all the same (the API docs document it)
        try:
            make_reactor("glib")
        except ImportError as exc:
            print(exc)
        else:
            raise SystemExit("make_reactor('glib') worked without gi")
    """)
    assert done.returncode == 0, done.stderr
    assert "pip install 'pbroker[gui]'" in done.stdout


# -- glib's own behaviour --------------------------------------------------------------------------


def test_the_program_runs_the_loop(run: Any) -> None:
    """start()/shutdown() while someone else's GLib.MainLoop runs the default context (as Gtk.main()
    would): startup triggers, a TCP round trip, then the shutdown triggers with a before-shutdown
    Deferred, and the program's loop quit from shutdown()'s Deferred."""
    from net.endpoints import client, server
    from net.testing import CollectingFactory, Echo

    reactor = GlibReactor()
    program_loop = GLib.MainLoop.new(None, False)
    order: list[str] = []
    try:
        reactor.add_system_event_trigger("after", "startup", order.append, "startup")
        finishing: Deferred[None] = Deferred()
        reactor.add_system_event_trigger("before", "shutdown", lambda: finishing)
        reactor.add_system_event_trigger("during", "shutdown", order.append, "shutdown")

        async def program() -> None:
            port = await server(reactor, "tcp:0:interface=127.0.0.1").listen(CollectingFactory(Echo))
            answer: Deferred[bytes] = Deferred()

            class Client(Echo):
                def connection_made(self, transport: Any) -> None:
                    transport.write(b"ping")

                def data_received(self, data: bytes) -> None:
                    answer.callback(data)
                    self.transport.lose_connection()

            await client(reactor, f"tcp:127.0.0.1:{port.get_host().port}").connect(CollectingFactory(Client))
            order.append((await answer).decode())
            await port.stop_listening()
            reactor.call_later(0, finishing.callback, None)  # a trigger that needs the loop
            await reactor.shutdown()
            order.append("shut down")
            program_loop.quit()

        from net.defer import ensure_deferred

        started = reactor.start()
        assert started.called and reactor.running
        outcome: list[Any] = []
        ensure_deferred(program()).add_both(outcome.append)
        GLib.timeout_add(30_000, program_loop.quit)  # a broken test fails, it doesn't hang
        program_loop.run()
        assert outcome == [None], outcome
        assert order == ["startup", "ping", "shutdown", "shut down"]
        assert not reactor.running
        reactor.shutdown().add_callback(order.append)  # not running: fires at once
        assert order[-1] is None
    finally:
        reactor.close()


def test_an_application_runs_the_loop(run: Any) -> None:
    """docs/GUI.md's GTK 4 pattern on a plain Gio.Application (GApplication is what Gtk.Application
    runs on; no display needed): start() from ``startup``, the application held while the reactor
    works (a thread's result comes back through the loop), released from shutdown()'s Deferred; then
    app.run() returns 0 with every trigger run."""
    gi = pytest.importorskip("gi")
    gi.require_version("Gio", "2.0")
    from gi.repository import Gio

    reactor = GlibReactor()
    order: list[Any] = []
    reactor.add_system_event_trigger("during", "shutdown", order.append, "shutdown")
    app = Gio.Application(application_id="org.pbroker.GlibReactorTest", flags=Gio.ApplicationFlags.NON_UNIQUE)

    def startup(application: Any) -> None:
        application.hold()
        reactor.start()
        order.append(reactor.running)
        reactor.defer_to_thread(sum, [1, 2, 3]).add_callback(order.append).add_callback(
            lambda _: reactor.shutdown()).add_both(lambda _: application.release())

    app.connect("startup", startup)
    app.connect("activate", lambda _app: order.append("activate"))
    try:
        assert app.run([]) == 0
    finally:
        reactor.close()
    assert order == [True, "activate", 6, "shutdown"]
    assert not reactor.running


def test_a_loop_quit_behind_the_reactors_back_still_shuts_down(reactor: Any, caplog: pytest.LogCaptureFixture) -> None:
    """reactor.loop.quit() instead of stop(): run() warns, then runs the whole shutdown event (here
    a before-trigger waits two loop rounds) before it returns."""
    fired: list[str] = []

    def before() -> Deferred[None]:
        d: Deferred[None] = Deferred()
        reactor.call_soon(reactor.call_soon, d.callback, None)
        return d

    reactor.add_system_event_trigger("before", "shutdown", before)
    reactor.add_system_event_trigger("after", "shutdown", fired.append, "after shutdown")
    reactor.call_when_running(lambda: reactor.loop.quit())
    reactor.run()
    assert fired == ["after shutdown"]
    assert not reactor.running and reactor.loop is None
    assert any("quit without reactor.stop()" in r.getMessage() for r in caplog.records)


def test_close_leaves_nothing_on_the_default_context(caplog: pytest.LogCaptureFixture) -> None:
    """Whatever a closed reactor had pending (timed, call_soon, thread calls, fd watches) never runs,
    though the default context outlives it and goes on being iterated (by GTK, by the next reactor)."""
    reactor = GlibReactor()
    a, b = socket.socketpair()
    ran: list[str] = []
    try:
        reactor.call_later(0, ran.append, "timed")
        reactor.call_soon(ran.append, "soon")
        reactor.add_reader(a.fileno(), lambda: ran.append("reader"))
        reactor.add_writer(a.fileno(), lambda: ran.append("writer"))
        thread = threading.Thread(target=reactor.call_from_thread, args=(ran.append, "thread"))
        thread.start()
        thread.join()
        b.send(b"x")
        reactor.close()
        context = GLib.MainContext.default()
        for _ in range(20):
            context.iteration(False)
        assert ran == []
        assert reactor.get_readers() == reactor.get_writers() == []
    finally:
        a.close()
        b.close()
    assert not [r for r in caplog.records if r.levelname == "CRITICAL"]


def test_a_closed_fd_left_registered_is_dropped_loudly(reactor: Any, run: Any, caplog: pytest.LogCaptureFixture) -> None:
    """poll() reports NVAL for an fd closed while watched: the reactor logs it and forgets it rather
    than spinning; the loop goes on (the Deferred below fires from a later timed call)."""
    import fcntl

    a, b = socket.socketpair()
    fd = fcntl.fcntl(a.fileno(), fcntl.F_DUPFD, 900)  # a high number, which no new fd takes meanwhile
    a.close()
    b.close()
    reactor.add_reader(fd, lambda: None)
    os.close(fd)  # behind the reactor's back
    done: Deferred[None] = Deferred()
    reactor.call_later(0.01, done.callback, None)
    run(reactor, done)
    assert fd not in reactor.get_readers()
    assert any(f"fd {fd} was closed while registered" in r.getMessage() for r in caplog.records)


# -- a GTK 3 window under Xvfb ---------------------------------------------------------------------

#: A GTK 3 program: a window with a button that makes a (slow) remote call and a label for the
#: answer, on a glib reactor. argv: the server's endpoint, and how the loop runs: "reactor-run"
#: (reactor.run() instead of Gtk.main()) or "gtk-main" (Gtk.main(), reactor.start()/shutdown()).
#: While the call is in flight each tick of a 10 ms GLib timer is sent to the server (one-way),
#: which answers once it has counted enough: the answer can only come if the window's loop kept
#: running timers and I/O. The window reports what it shows (the label's text) to the server.
WINDOW_APP = textwrap.dedent("""
    import logging, sys
    sys.path.insert(0, {root!r})
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    import gi
    gi.require_version("Gtk", "3.0")
    gi.require_version("GdkX11", "3.0")
    from gi.repository import GdkX11, GLib, Gtk
    from broker.protocol import BrokerClientFactory, BrokerProtocol
    from net.defer import Deferred
    from net.endpoints import client
    from net.reactor import make_reactor

    class Client(BrokerClientFactory):
        # broker.connect's factory, plus `closed`: fires once the connection is gone (the goodbye
        # written and the socket closed), which the shutdown trigger waits for.

        def __init__(self, reactor):
            super().__init__(reactor)
            self.closed = Deferred()

        def build_protocol(self, addr):
            proto = Closing(self.reactor, self.local_root, **self.options)
            proto.factory, proto.on_ready = self, self.root
            return proto

    class Closing(BrokerProtocol):
        def connection_lost(self, reason):
            super().connection_lost(reason)
            if not self.factory.closed.called:
                self.factory.closed.callback(None)

    endpoint, mode = sys.argv[1], sys.argv[2]
    reactor = make_reactor("glib")
    factory = Client(reactor)
    state = {{"in_flight": False, "ticks": 0, "ticks_in_flight": 0}}
    window = Gtk.Window(title="pbroker glib window")
    box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=4)
    button = Gtk.Button(label="Ask")
    button.set_size_request(200, 80)
    label = Gtk.Label(label="no answer yet")
    box.pack_start(button, False, False, 0)
    box.pack_start(label, False, False, 0)
    window.add(box)

    def tick():
        state["ticks"] += 1
        if state["in_flight"]:
            state["ticks_in_flight"] += 1
            root.call_remote_no_answer("tick")
        return True

    def deliberate_failure():
        raise RuntimeError("deliberate failure in a timed call")

    def answered(result):
        state["in_flight"] = False
        label.set_text("answer: %s" % (result,))
        # Report once the label has been drawn (and the frame sent to the X server), so a
        # screenshot taken on the report shows the answer.
        drawn_handler = []

        def drawn(_widget, _cr):
            label.disconnect(drawn_handler[0])
            GLib.idle_add(report)
            return False

        drawn_handler.append(label.connect_after("draw", drawn))

    def report():
        root.call_remote_no_answer("shown", label.get_text(), state["ticks_in_flight"])
        return False

    def clicked(_button):
        state["in_flight"] = True
        label.set_text("waiting")
        reactor.call_later(0, deliberate_failure)  # logged by the reactor; the window carries on
        root.call_remote("slow", 6, 7).add_callbacks(answered, lambda f: print("call failed", f, flush=True))

    def mapped(_widget, _event):
        alloc = button.get_allocation()
        xid = window.get_window().get_xid()
        root.call_remote_no_answer("ready", xid, alloc.x + alloc.width // 2, alloc.y + alloc.height // 2)
        return False

    def goodbye():
        root.session.disconnect()  # the server hears a goodbye, not a dropped socket
        return factory.closed  # shutdown waits until it has been written and the socket closed

    def connect():
        client(reactor, endpoint).connect(factory)
        factory.root.add_callback(connected)

    def connected(remote):
        global root
        root = remote
        button.connect("clicked", clicked)
        window.connect("map-event", mapped)
        window.show_all()

    reactor.add_system_event_trigger("before", "shutdown", goodbye)
    reactor.add_system_event_trigger("during", "shutdown", print, "shutdown triggers ran", flush=True)
    GLib.timeout_add(10, tick)
    if mode == "reactor-run":
        window.connect("destroy", lambda _w: reactor.stop())
        reactor.call_when_running(connect)
        reactor.run()
    else:
        window.connect("destroy", lambda _w: reactor.shutdown().add_both(lambda _: Gtk.main_quit()))
        reactor.start()
        connect()
        Gtk.main()
    reactor.close()
    print("clean exit", flush=True)
""")


class WindowService(broker.Root):
    """The server the window talks to: a slow call answered after ``ticks_needed`` ticks."""

    def __init__(self, ticks_needed: int) -> None:
        self.ticks_needed = ticks_needed
        self.ticks = 0
        self.sessions: list[Any] = []
        self.pending: Deferred[int] | None = None
        self.answer = 0
        self.ready: Deferred[tuple[int, int, int]] = Deferred()
        self.shown: Deferred[tuple[str, int]] = Deferred()
        self.closed: Deferred[None] = Deferred()

    def root_object(self, caller: Any) -> Any:
        self.sessions.append(caller)
        caller.on_close(lambda: self.closed.called or self.closed.callback(None))
        return self

    def remote_ready(self, xid: int, x: int, y: int) -> None:
        if not self.ready.called:
            self.ready.callback((xid, x, y))

    def remote_slow(self, a: int, b: int) -> Deferred[int]:
        self.ticks, self.answer = 0, a * b
        self.pending = Deferred()
        return self.pending

    def remote_tick(self) -> None:
        self.ticks += 1
        if self.ticks == self.ticks_needed and self.pending is not None:
            self.pending.callback(self.answer)

    def remote_shown(self, text: str, ticks_in_flight: int) -> None:
        self.shown.callback((text, ticks_in_flight))


def _require_gtk3() -> None:
    done = subprocess.run([sys.executable, "-c", "import gi; gi.require_version('Gtk', '3.0'); "
                           "gi.require_version('GdkX11', '3.0')"], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        pytest.skip("GTK 3's introspection data is missing (Debian package gir1.2-gtk-3.0; "
                    f"scripts/system-deps.sh installs it): {done.stderr.strip()[-300:]}")


@pytest.mark.parametrize("mode", ["reactor-run", "gtk-main"])
def test_a_gtk_window_calls_a_remote_object_and_keeps_ticking(
    reactor: Any, run: Any, tmp_path: Path, mode: str
) -> None:
    """A real GTK 3 program under Xvfb: xdotool clicks its button, the remote call's answer appears in
    its label while its GLib timer went on ticking (counted: the server answers only after 20 ticks
    came in during the call), an exception in a reactor callback is logged in the window's process
    and the window carries on; closing the window (WM_DELETE_WINDOW) runs the shutdown triggers, the
    server hears a goodbye, and the program exits 0. Once with reactor.run(), once with Gtk.main()."""
    from xvfb import close_window, screenshot, xdotool, xvfb_server

    _require_gtk3()
    ticks_needed = 20
    service = WindowService(ticks_needed)
    app = tmp_path / "window_app.py"
    app.write_text(WINDOW_APP.format(root=str(ROOT)))
    with xvfb_server() as display:
        port = run(reactor, broker.serve(reactor, "tcp:0:interface=127.0.0.1", service))
        proc = subprocess.Popen([sys.executable, str(app), f"tcp:127.0.0.1:{port.get_host().port}", mode],
                                env=dict(os.environ, DISPLAY=display), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            async def scenario() -> tuple[str, int]:
                xid, x, y = await service.ready
                await reactor.defer_to_thread(xdotool, display, "mousemove", "--window", str(xid), str(x), str(y),
                                              "click", "1")
                shown = await service.shown
                await reactor.defer_to_thread(screenshot, display, tmp_path / "window.png")
                await reactor.defer_to_thread(close_window, display, xid)
                await service.closed
                return shown

            text, ticks_in_flight = run(reactor, scenario(), timeout=60)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
            run(reactor, port.stop_listening())
    assert proc.returncode == 0, err
    assert text == "answer: 42"
    assert service.ticks == ticks_needed and ticks_in_flight >= ticks_needed
    assert out.splitlines() == ["shutdown triggers ran", "clean exit"], (out, err)
    assert [session.lost.cause for session in service.sessions] == ["goodbye"]  # not a dropped socket
    assert "ERROR net.reactor Error in timed call" in err and "deliberate failure in a timed call" in err
    assert (tmp_path / "window.png").read_bytes().startswith(b"\x89PNG")
