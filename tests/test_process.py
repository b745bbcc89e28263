"""Child processes as transports (net.process), on every reactor backend, with real children.

Every child is ``sys.executable -c ...`` (or a coreutils program). Each wait is on an event the
child causes (its output, a pipe's end, its exit); the one condition that has no event of its
own, "the child is blocked on a full pipe", is read from the kernel (FIONREAD on our end of the
pipe). After every test, the fds of this process are back to what they were and no child of ours
is left, zombie or alive (``no_leaks``, from /proc).
"""

from __future__ import annotations

import array
import fcntl
import hashlib
import logging
import os
import pwd
import signal
import subprocess
import sys
import tempfile
import termios
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from zope.interface.verify import verifyObject

from conftest import BACKENDS, run_until
from helpers_net import SpyProducer
from net.basic import FileSender
from net.defer import CancelledError, Deferred, Failure
from net.error import ProcessDone, ProcessTerminated
from net.interfaces import ITransport
from net.process import (
    ProcessExitedAlready,
    ProcessOutputTooLarge,
    ProcessStderrError,
    ProcessTransport,
    get_process_output,
    get_process_output_and_value,
    get_process_value,
    spawn_process,
)
from net.protocol import ProcessProtocol
from net.reactor import make_reactor

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

PY = sys.executable
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def child(code: str, *args: str) -> list[str]:
    """argv running ``code`` in a fresh Python (unbuffered, so output order is the write order)."""
    return [PY, "-u", "-c", textwrap.dedent(code), *args]


# -- leaks -------------------------------------------------------------------------------------


def our_children() -> dict[int, str]:
    """pid → state (R, S, Z, ...) of every child of this process, from /proc/*/stat."""
    me = os.getpid()
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        if int(fields[1]) == me:
            found[int(name)] = fields[0]
    return found


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """After the test (and the reactor's close): the same fds, and no child left, zombie or not."""
    fds, children = open_fds(), our_children()
    yield
    assert open_fds() == fds, "file descriptors leaked"
    left = {pid: state for pid, state in our_children().items() if pid not in children}
    assert not left, f"children left behind (state Z is a zombie): {left}"


# -- a recording protocol ----------------------------------------------------------------------


class Recorder(ProcessProtocol):
    """Records every callback in order; ``ended`` fires with process_ended's reason."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.data: dict[int, bytearray] = {}
        self.ended: Deferred[BaseException] = Deferred()  # process_ended's reason.value
        self.exited: Deferred[BaseException] = Deferred()
        self.on_data: Callable[[int, bytes], None] | None = None

    @property
    def out(self) -> bytes:
        return bytes(self.data.get(1, b""))

    @property
    def err(self) -> bytes:
        return bytes(self.data.get(2, b""))

    def calls(self) -> Counter[str]:
        return Counter(e if isinstance(e, str) else e[0] for e in self.events if e != "data")

    def connection_made(self, transport: Any) -> None:
        self.events.append("connection_made")

    def child_data_received(self, child_fd: int, data: bytes) -> None:
        self.data.setdefault(child_fd, bytearray()).extend(data)
        if not self.events or self.events[-1] != "data":
            self.events.append("data")
        if self.on_data is not None:
            self.on_data(child_fd, data)

    def child_connection_lost(self, child_fd: int) -> None:
        self.events.append(("lost", child_fd))
        super().child_connection_lost(child_fd)

    def in_connection_lost(self) -> None:
        self.events.append("in_connection_lost")

    def out_connection_lost(self) -> None:
        self.events.append("out_connection_lost")

    def err_connection_lost(self) -> None:
        self.events.append("err_connection_lost")

    def process_exited(self, reason: Failure) -> None:
        self.events.append(("process_exited", reason.value))
        self.exited.callback(reason.value)

    def process_ended(self, reason: Failure) -> None:
        self.events.append(("process_ended", reason.value))
        self.ended.callback(reason.value)


def spawn(reactor: Any, argv: list[str], protocol: Recorder | None = None, **kwargs: Any) -> tuple[Recorder, ProcessTransport]:
    protocol = protocol or Recorder()
    transport = reactor.spawn_process(protocol, argv[0], argv, **kwargs)
    return protocol, transport


def finish(reactor: Any, protocol: Recorder) -> BaseException:
    """Run until process_ended; its reason's exception."""
    reason: BaseException = run_until(reactor, protocol.ended)
    return reason


def wait_for(reactor: Any, condition: Callable[[], bool], timeout: float = 20.0) -> None:
    """Run the reactor until ``condition()`` holds (checked each few ms): for a kernel state
    with no event of its own. Fails after ``timeout`` (a safety net, not a measurement)."""
    done: Deferred[None] = Deferred()

    def check() -> None:
        if condition():
            done.callback(None)
        else:
            reactor.call_later(0.005, check)

    reactor.call_later(0, check)
    run_until(reactor, done, timeout=timeout)


# -- output, exit, ordering --------------------------------------------------------------------


def test_output_per_pipe_in_order_exit_code_and_every_callback_once(reactor: Any) -> None:
    protocol, transport = spawn(reactor, child("""
        import os, sys
        for n in range(200):
            os.write(1, b"out%d;" % n)
            os.write(2, b"err%d;" % n)
        sys.exit(3)
    """))
    assert transport.pid > 0 and protocol.events == ["connection_made"]
    reason = finish(reactor, protocol)
    assert protocol.out == b"".join(b"out%d;" % n for n in range(200))
    assert protocol.err == b"".join(b"err%d;" % n for n in range(200))
    assert isinstance(reason, ProcessTerminated)
    assert (reason.exit_code, reason.signal) == (3, None)
    assert os.waitstatus_to_exitcode(reason.status) == 3 and transport.status == reason.status
    assert protocol.calls() == {
        "connection_made": 1, "in_connection_lost": 1, "out_connection_lost": 1, "err_connection_lost": 1,
        "lost": 3, "process_exited": 1, "process_ended": 1,
    }
    names = [e if isinstance(e, str) else e[0] for e in protocol.events]
    assert names.index("process_exited") < names.index("process_ended") == len(names) - 1
    for lost in ("out_connection_lost", "err_connection_lost", "in_connection_lost"):
        assert names.index(lost) < names.index("process_ended")


def test_exit_zero_is_process_done(reactor: Any) -> None:
    protocol, transport = spawn(reactor, child("print('fine')"))
    reason = finish(reactor, protocol)
    assert type(reason) is ProcessDone and reason.exit_code == 0 and reason.signal is None
    assert protocol.out == b"fine\n" and protocol.err == b""
    assert verifyObject(ITransport, transport)
    assert "exited with code 0" in repr(transport)


@pytest.mark.parametrize("sig, number", [("TERM", signal.SIGTERM), ("KILL", signal.SIGKILL),
                                         ("INT", signal.SIGINT), ("SIGHUP", signal.SIGHUP),
                                         (int(signal.SIGUSR1), signal.SIGUSR1)])
def test_signals(reactor: Any, sig: str | int, number: int) -> None:
    protocol, transport = spawn(reactor, child("""
        import signal, sys
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # Python's own handler would exit with 1
        print("ready")
        sys.stdin.read()
    """))
    protocol.on_data = lambda fd, data: transport.signal_process(sig) if b"ready" in protocol.out else None
    reason = finish(reactor, protocol)
    assert isinstance(reason, ProcessTerminated)
    assert (reason.signal, reason.exit_code) == (number, None)
    assert signal.Signals(number).name in str(reason)
    with pytest.raises(ProcessExitedAlready, match="has exited already"):
        transport.signal_process("KILL")


def test_signal_names_are_checked(reactor: Any) -> None:
    protocol, transport = spawn(reactor, child("import sys; sys.stdin.read()"))
    with pytest.raises(ValueError, match="unknown signal 'NOPE'"):
        transport.signal_process("NOPE")
    with pytest.raises(TypeError):
        transport.signal_process(True)
    transport.close_stdin()
    assert type(finish(reactor, protocol)) is ProcessDone


def test_close_stdin_gives_the_child_end_of_file(reactor: Any) -> None:
    protocol, transport = spawn(reactor, child("""
        import sys
        data = sys.stdin.buffer.read()
        print(len(data), data[:5].decode(), "eof")
    """))
    transport.write(b"hello ")
    transport.writelines([b"wor", b"ld"])
    transport.close_stdin()
    transport.write(b"ignored: stdin is closing")
    finish(reactor, protocol)
    assert protocol.out == b"11 hello eof\n"
    assert protocol.calls()["in_connection_lost"] == 1


def test_child_closing_its_stdin_is_noticed_without_a_write(reactor: Any) -> None:
    protocol, transport = spawn(reactor, child("""
        import os, sys
        os.close(0)
        print("closed")
        sys.stdout.flush()
        os.read(3, 1)  # wait for fd 3 to end: our signal to exit
    """), child_fds={0: "w", 1: "r", 2: "r", 3: "w"})
    names: list[str] = []
    protocol.in_connection_lost = lambda: (names.append("in"), transport.close_child_fd(3))  # type: ignore[method-assign]
    finish(reactor, protocol)
    assert names == ["in"] and protocol.out == b"closed\n"


def test_big_stdin_with_a_streaming_producer_paused_and_resumed(reactor: Any) -> None:
    total, chunk = 8 * 1024 * 1024, b"x" * 65536 + b"y" * 1000

    class Producer(SpyProducer):
        def __init__(self) -> None:
            super().__init__()
            self.sent = 0
            self.digest = hashlib.sha256()

        def pump(self) -> None:
            while not self.paused and self.sent < total:
                data = chunk[: total - self.sent]
                self.sent += len(data)
                self.digest.update(data)
                transport.write(data)
            if self.sent >= total:
                transport.unregister_producer()
                transport.close_stdin()

        def resume_producing(self) -> None:
            super().resume_producing()
            self.pump()

    protocol, transport = spawn(reactor, child("""
        import hashlib, sys
        digest, n = hashlib.sha256(), 0
        while block := sys.stdin.buffer.read1(65536):
            digest.update(block)
            n += len(block)
        print(n, digest.hexdigest())
    """))
    producer = Producer()
    transport.set_write_buffer_limits(high=256 * 1024)
    transport.register_producer(producer, True)
    producer.pump()
    assert producer.pauses == 1 and transport.get_write_buffer_size() > 256 * 1024  # paused at once
    assert type(finish(reactor, protocol)) is ProcessDone
    assert protocol.out.decode().split() == [str(total), producer.digest.hexdigest()]
    assert producer.pauses >= 2 and producer.resumes >= 1


def test_big_stdin_from_a_pull_producer(reactor: Any, tmp_path: Path) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 17)
    source = tmp_path / "payload"
    source.write_bytes(payload)
    protocol, transport = spawn(reactor, child("""
        import hashlib, sys
        print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())
    """))
    with source.open("rb") as f:
        sent = run_until(reactor, FileSender().begin_file_transfer(f, transport))
    assert sent == len(payload)
    transport.close_stdin()
    finish(reactor, protocol)
    assert protocol.out.strip().decode() == hashlib.sha256(payload).hexdigest()


def test_child_closes_stdout_early(reactor: Any) -> None:
    protocol, transport = spawn(reactor, child("""
        import os, sys
        os.write(1, b"last words")
        os.close(1)
        sys.stdin.read()  # until we close stdin
        os.write(2, b"still here")
    """))
    protocol.out_connection_lost = lambda: (protocol.events.append("out_connection_lost"),  # type: ignore[method-assign]
                                            transport.close_stdin())
    assert type(finish(reactor, protocol)) is ProcessDone
    assert protocol.out == b"last words" and protocol.err == b"still here"
    names = [e if isinstance(e, str) else e[0] for e in protocol.events]
    assert names.index("out_connection_lost") < names.index("process_exited")


def test_child_exits_before_we_read_everything(reactor: Any) -> None:
    """Reading paused until the exit is known: every byte still arrives before process_ended."""
    protocol, transport = spawn(reactor, child("""
        import os
        os.write(1, b"o" * 60000)
        os.write(2, b"e" * 30000)
    """))
    transport.pause_reading()
    run_until(reactor, protocol.exited)
    assert protocol.out == b"" and protocol.err == b""
    transport.resume_reading()
    assert type(finish(reactor, protocol)) is ProcessDone
    assert protocol.out == b"o" * 60000 and protocol.err == b"e" * 30000


def test_paused_reading_bounds_what_we_buffer(reactor: Any) -> None:
    """While paused, the child blocks on its full pipe and we hold none of its output."""
    protocol, transport = spawn(reactor, child("""
        import os
        os.write(1, b"z" * (4 * 1024 * 1024))
    """), child_fds={1: "r"})
    transport.pause_reading()
    ours = transport._readers[1].fd
    capacity = fcntl.fcntl(ours, 1032)  # F_GETPIPE_SZ

    def pipe_full() -> bool:
        queued = array.array("i", [0])
        fcntl.ioctl(ours, termios.FIONREAD, queued)
        return queued[0] >= capacity

    wait_for(reactor, pipe_full)
    assert protocol.out == b"" and not protocol.exited.called
    transport.resume_reading()
    finish(reactor, protocol)
    assert len(protocol.out) == 4 * 1024 * 1024


def test_callbacks_that_raise_are_logged_and_change_nothing(reactor: Any, caplog: pytest.LogCaptureFixture) -> None:
    class Broken(Recorder):
        def connection_made(self, transport: Any) -> None:
            raise RuntimeError("broken connection_made")

        def child_data_received(self, child_fd: int, data: bytes) -> None:
            super().child_data_received(child_fd, data)
            raise RuntimeError("broken child_data_received")

        def process_exited(self, reason: Failure) -> None:
            super().process_exited(reason)
            raise RuntimeError("broken process_exited")

    protocol = Broken()
    with caplog.at_level(logging.ERROR, logger="net.process"):
        spawn(reactor, child("print('a'); print('b')"), protocol)
        assert type(finish(reactor, protocol)) is ProcessDone
    assert protocol.out == b"a\nb\n"
    assert "connection_made failed" in caplog.text and "process_exited failed" in caplog.text
    assert "child_data_received failed" in caplog.text


def test_lose_connection_closes_stdin_and_leaves_the_child_running(reactor: Any) -> None:
    protocol, transport = spawn(reactor, child("""
        import sys
        sys.stdin.read()
        print("after eof")
    """))
    transport.write(b"data")
    assert not transport.is_closing()
    transport.lose_connection()
    assert transport.is_closing()
    assert type(finish(reactor, protocol)) is ProcessDone
    assert protocol.out == b"after eof\n"


def test_abort_connection_drops_the_pipes_and_the_child_gets_sigpipe(reactor: Any) -> None:
    """SIGPIPE, which Python ignores, is back to its default in the child."""
    protocol, transport = spawn(reactor, [
        "sh", "-c", "echo started; while :; do echo more; done"])
    protocol.on_data = lambda fd, data: transport.abort_connection()
    reason = finish(reactor, protocol)
    assert isinstance(reason, ProcessTerminated) and reason.signal == signal.SIGPIPE


# -- exit seen whatever the reactor does -------------------------------------------------------


def test_a_child_is_reaped_while_the_reactor_is_stopped(reactor: Any) -> None:
    protocol, transport = spawn(reactor, child("pass"))
    assert transport._waiter is not None
    transport._waiter.join(20)  # the reactor never ran: the reaping does not need it
    assert transport.pid not in our_children()
    with pytest.raises(ProcessExitedAlready):
        transport.signal_process("TERM")
    assert protocol.events == ["connection_made"]  # callbacks wait for the reactor
    assert type(finish(reactor, protocol)) is ProcessDone


def test_a_child_outliving_a_closed_reactor_keeps_running_and_is_reaped(reactor: Any) -> None:
    protocol, transport = spawn(reactor, child("""
        import sys
        print("up")
        sys.stdin.read()
    """))
    got_up: Deferred[None] = Deferred()
    protocol.on_data = lambda fd, data: got_up.callback(None) if not got_up.called else None
    run_until(reactor, got_up)
    reactor.close()
    assert our_children().get(transport.pid) in ("S", "R")  # still running: we never kill it
    transport.signal_process("TERM")
    assert transport._waiter is not None
    transport._waiter.join(20)
    assert transport.pid not in our_children()  # reaped: no zombie
    assert "process_exited" not in protocol.calls()  # its reactor is gone: no callbacks
    transport.abort_connection()  # our pipes are released all the same


# -- ptys, fds, environment, users -------------------------------------------------------------


def test_use_pty_gives_a_controlling_terminal(reactor: Any) -> None:
    protocol, transport = spawn(reactor, child("""
        import os, sys
        print("ttys", os.isatty(0), os.isatty(1), os.isatty(2))
        print("leader", os.getsid(0) == os.getpid())
        os.close(os.open("/dev/tty", os.O_RDWR))  # fails without a controlling terminal
        print("ctty ok")
        sys.stderr.write("to stderr\\n")
        line = sys.stdin.readline()
        rest = sys.stdin.read()  # until the ^D of close_stdin
        print("got", repr(line), repr(rest))
    """), use_pty=True)
    protocol.on_data = lambda fd, data: (transport.write(b"hello\n"), transport.close_stdin()) \
        if b"to stderr" in protocol.out and not transport._stdin_closed else None
    assert type(finish(reactor, protocol)) is ProcessDone
    out = protocol.out.replace(b"\r\n", b"\n")
    assert b"ttys True True True\nleader True\nctty ok\nto stderr\n" in out
    assert b"got 'hello\\n' ''" in out
    assert 2 not in protocol.data  # stderr is the pty too
    assert not transport.can_write_eof()
    with pytest.raises(NotImplementedError, match="cannot be half-closed"):
        transport.write_eof()
    assert protocol.calls()["lost"] == 3 and protocol.calls()["in_connection_lost"] == 1


def test_child_fds_extra_pipes_our_own_fds_and_nothing_else(reactor: Any) -> None:
    theirs_r, theirs_w = os.pipe()  # an fd of ours handed to the child as its fd 5
    stray_r, stray_w = os.pipe()
    os.set_inheritable(stray_w, True)  # inheritable, but not in child_fds: must not reach it
    try:
        protocol, transport = spawn(reactor, child(f"""
            import os
            os.write(3, b"on three")
            os.write(5, b"on five")
            got = os.read(4, 100)
            def is_open(fd):
                try:
                    os.fstat(fd)
                except OSError:
                    return False
                return True
            os.write(1, b"fd4:" + got + b" fds:" + repr([fd for fd in range(64) if is_open(fd)]).encode())
        """), child_fds={1: "r", 3: "r", 4: "w", 5: theirs_w})
        transport.write_to_child(4, b"to four")
        transport.close_child_fd(4)
        with pytest.raises(ValueError, match="not one we write to"):
            transport.write_to_child(3, b"x")
        with pytest.raises(ValueError, match="child fd 0 is not one we write to"):
            transport.write(b"no stdin pipe")
        assert type(finish(reactor, protocol)) is ProcessDone
        os.close(theirs_w)
        theirs_w = -1
        assert os.read(theirs_r, 100) == b"on five"
    finally:
        for fd in (theirs_r, theirs_w, stray_r, stray_w):
            if fd >= 0:
                os.close(fd)
    assert protocol.data[3] == b"on three"
    fd4, _, fds = protocol.out.partition(b" fds:")
    assert fd4 == b"fd4:to four"
    assert eval(fds) == [1, 3, 4, 5]  # exactly what child_fds gave it (Python opens nothing)
    assert protocol.calls()["lost"] == 3  # 1, 3 and 4


def test_child_fds_swapped_sources_land_right(reactor: Any) -> None:
    protocol, transport = spawn(reactor, child("""
        import os
        os.write(1, b"to one")
        os.write(2, b"to two")
    """), child_fds={1: "r", 2: "r"})
    finish(reactor, protocol)
    assert (protocol.out, protocol.err) == (b"to one", b"to two")


def test_child_fds_are_validated(reactor: Any) -> None:
    with pytest.raises(ValueError, match="must be 'r'"):
        spawn(reactor, child("pass"), child_fds={0: "x"})
    with pytest.raises(ValueError, match="not open in this process"):
        spawn(reactor, child("pass"), child_fds={3: 999})
    with pytest.raises(ValueError, match="use_pty=True puts"):
        spawn(reactor, child("pass"), use_pty=True, child_fds={1: "r"})
    with pytest.raises(TypeError, match="sequence of arguments"):
        reactor.spawn_process(Recorder(), PY, "-c pass")


def test_env_default_inherits_and_a_mapping_replaces(reactor: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NET_PROCESS_MARK", "inherited")
    code = "import os; print(os.environ.get('NET_PROCESS_MARK'), os.environ.get('ONLY'))"
    protocol, _ = spawn(reactor, child(code))
    finish(reactor, protocol)
    assert protocol.out == b"inherited None\n"
    protocol, _ = spawn(reactor, child(code), env={"ONLY": "this"})
    finish(reactor, protocol)
    assert protocol.out == b"None this\n"


def test_path_is_the_working_directory(reactor: Any, tmp_path: Path) -> None:
    protocol, _ = spawn(reactor, child("import os; print(os.getcwd())"), path=str(tmp_path))
    finish(reactor, protocol)
    assert protocol.out.decode().strip() == str(tmp_path)


def test_a_bare_name_is_found_on_the_childs_path(reactor: Any) -> None:
    protocol, transport = spawn(reactor, ["echo", "found"], env={"PATH": "/nonexistent:/usr/bin:/bin"})
    finish(reactor, protocol)
    assert protocol.out == b"found\n" and transport.executable.endswith("/echo")


def test_programs_that_cannot_start_raise_and_leave_nothing(reactor: Any, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found on the child's PATH"):
        spawn(reactor, ["no-such-program-here", "x"])
    with pytest.raises(FileNotFoundError, match=r"Cannot run '/no/such/program': No such file"):
        spawn(reactor, ["/no/such/program"])
    not_executable = tmp_path / "script"
    not_executable.write_text("#!/bin/sh\n")
    with pytest.raises(PermissionError, match="Permission denied"):
        spawn(reactor, [str(not_executable)])
    with pytest.raises(FileNotFoundError, match="in directory '/no/such/dir'"):
        spawn(reactor, child("pass"), path="/no/such/dir")
    with pytest.raises(FileNotFoundError, match=r"Cannot run '/no/such/program' \(in directory '.*'\): No such file"):
        spawn(reactor, ["/no/such/program"], path=str(tmp_path))


needs_root_and_nobody = pytest.mark.skipif(
    os.geteuid() != 0 or not any(p.pw_name == "nobody" for p in pwd.getpwall()),
    reason="switching users needs root and a 'nobody' user")


@needs_root_and_nobody
def test_uid_switches_to_nobody_with_its_groups(reactor: Any) -> None:
    nobody = pwd.getpwnam("nobody")
    protocol, _ = spawn(reactor, ["/usr/bin/id"], uid=nobody.pw_uid)
    assert type(finish(reactor, protocol)) is ProcessDone
    out = protocol.out.decode()
    assert f"uid={nobody.pw_uid}(" in out and f"gid={nobody.pw_gid}(" in out
    assert "(root)" not in out  # no supplementary group of ours came along


@needs_root_and_nobody
def test_uid_switch_errors_come_back_to_us(reactor: Any, tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    nobody = pwd.getpwnam("nobody").pw_uid
    with pytest.raises(PermissionError, match=f"in directory '{private}' as uid {nobody}"):
        spawn(reactor, ["/usr/bin/id"], uid=nobody, path=str(private))
    with pytest.raises(ValueError, match="has no passwd entry"):
        spawn(reactor, ["/usr/bin/id"], uid=54321)


# -- the Deferred conveniences -----------------------------------------------------------------


def test_get_process_output(reactor: Any) -> None:
    out = run_until(reactor, get_process_output(reactor, PY, ["-c", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(4)"]))
    assert out == b"out\n"  # whatever the exit code, stderr ignored


def test_get_process_output_error_on_stderr(reactor: Any) -> None:
    d = get_process_output(reactor, PY, ["-c", "import sys; print('out'); print('oops', file=sys.stderr)"],
                           error_on_stderr=True)
    with pytest.raises(ProcessStderrError, match="wrote to stderr") as info:
        run_until(reactor, d)
    assert (info.value.output, info.value.errors, info.value.exit_code) == (b"out\n", b"oops\n", 0)


def test_get_process_value_and_output_and_value(reactor: Any) -> None:
    assert run_until(reactor, get_process_value(reactor, PY, ["-c", "print('x' * 100000); raise SystemExit(7)"])) == 7
    killed = get_process_value(reactor, "sh", ["-c", "kill -KILL $$"])
    assert run_until(reactor, killed) == -signal.SIGKILL
    both = get_process_output_and_value(reactor, PY, ["-c", "import os; os.write(1, b'o'); os.write(2, b'e')"])
    assert run_until(reactor, both) == (b"o", b"e", 0)


def test_output_beyond_max_output_kills_the_child(reactor: Any) -> None:
    d = get_process_output(reactor, PY, ["-c", "import os\nwhile True: os.write(1, b'x' * 65536)"],
                           max_output=1_000_000)
    with pytest.raises(ProcessOutputTooLarge, match="more than max_output=1000000 bytes") as info:
        run_until(reactor, d)
    assert len(info.value.output) <= 1_000_000 and info.value.exit_code == -signal.SIGKILL


def test_cancelling_the_deferred_kills_the_child(reactor: Any) -> None:
    before = set(our_children())
    d = get_process_value(reactor, PY, ["-c", "import time; time.sleep(600)"])
    reactor.call_later(0, d.cancel)
    with pytest.raises(CancelledError):
        run_until(reactor, d)
    # The kill has been sent; the child is reaped as soon as it dies: run until then.
    wait_for(reactor, lambda: set(our_children()) <= before)


def test_a_missing_program_fails_the_deferred(reactor: Any) -> None:
    with pytest.raises(FileNotFoundError):
        run_until(reactor, get_process_output(reactor, "no-such-program-here"))


def test_spawn_process_is_the_reactor_method(reactor: Any) -> None:
    protocol = Recorder()
    transport = spawn_process(reactor, protocol, PY, [PY, "-c", "pass"])
    assert isinstance(transport, ProcessTransport) and transport.get_peer().pid == transport.pid
    assert type(finish(reactor, protocol)) is ProcessDone


# -- the example -------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_example_process_stream(backend: str) -> None:
    run = subprocess.run([PY, str(EXAMPLES / "process_stream.py")], capture_output=True, text=True,
                         timeout=60, env={**os.environ, "PBROKER_REACTOR": backend})
    assert run.returncode == 3, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("started pid ") and lines[-1] == "exited with code 3"
    assert [line for line in lines if line.startswith("out")] == [
        "out   1 | line 1 of 3", "out   2 | line 2 of 3", "out   3 | line 3 of 3"]
    assert "err   1 | something to complain about" in lines


def test_example_process_stream_reports_a_missing_command() -> None:
    run = subprocess.run([PY, str(EXAMPLES / "process_stream.py"), "no-such-program-here"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and "not found on the child's PATH" in run.stderr
    assert "Traceback" not in run.stderr
