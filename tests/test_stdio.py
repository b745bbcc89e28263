"""Our own stdin/stdout as a transport (net.stdio.StandardIO), on every reactor backend.

A child Python runs ``StandardIO(Echo())`` on a reactor of the backend under test and is driven
through ``spawn_process`` (pipes, and a pty), through ``subprocess.Popen`` pipes, and with stdin
a regular file or /dev/null (which epoll cannot watch). The child reports how its connection ended
and whether its fds are back in blocking mode on stderr. In-process tests put StandardIO on pipes
of our own, for flow control and the peer going away. fds and children are checked as in
test_process (``no_leaks``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from zope.interface.verify import verifyObject

from conftest import BACKENDS, run_until
from helpers_net import SpyProducer
from net.defer import Deferred, Failure
from net.error import ConnectionDone, ConnectionLost, ProcessDone
from net.interfaces import ITransport
from net.process import ProcessTransport
from net.protocol import Protocol
from net.stdio import PipeAddress, StandardIO
from test_process import Recorder, finish, no_leaks, spawn  # noqa: F401  (no_leaks: the autouse fixture)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

PY = sys.executable

#: The child: argv[1] the backend, argv[2] the mode ("echo": close at end of file; "half": on end
#: of file say "bye" and then close; "eof-first": write_eof() once it has read "last\n").
ECHO_CHILD = textwrap.dedent(r"""
    import os, sys
    from net.protocol import Protocol
    from net.reactor import make_reactor
    from net.stdio import StandardIO

    backend, mode = sys.argv[1], sys.argv[2]
    reactor = make_reactor(backend)
    before = os.get_blocking(0), os.get_blocking(1)

    class Echo(Protocol):
        def data_received(self, data):
            self.transport.write(data)
            if mode == "eof-first" and data.endswith(b"last\n"):
                self.transport.write_eof()

        def eof_received(self):
            if mode == "half":
                self.transport.write(b"bye\n")
                self.transport.lose_connection()
                return True
            return False

        def connection_lost(self, reason):
            after = os.get_blocking(0), os.get_blocking(1)
            os.write(2, f"lost {type(reason.value).__name__} by_peer={reason.value.by_peer} "
                        f"blocking restored={after == before}\n".encode())
            reactor.stop()

    StandardIO(Echo(), reactor=reactor)
    reactor.run()
""")


def echo_argv(backend: str, mode: str = "echo") -> list[str]:
    return [PY, "-c", ECHO_CHILD, backend, mode]


def backend_of(reactor: Any) -> str:
    return "asyncio" if "Asyncio" in type(reactor).__name__ else reactor.kind


def spawn_echo_child(reactor: Any, mode: str = "echo", **kwargs: Any) -> tuple[Recorder, ProcessTransport]:
    """The echo child in ``mode`` on ``reactor``'s backend, spawned with ``spawn_process(**kwargs)``."""
    return spawn(reactor, echo_argv(backend_of(reactor), mode), **kwargs)


def echo_child_to_the_end(reactor: Any, mode: str, data: bytes, end_stdin: str) -> tuple[Recorder, ProcessTransport]:
    """Write ``data`` to the echo child in ``mode``, end its stdin (``end_stdin``: "close_stdin"
    or "write_eof"), and run until it has ended, cleanly."""
    protocol, transport = spawn_echo_child(reactor, mode)
    transport.write(data)
    getattr(transport, end_stdin)()
    assert type(finish(reactor, protocol)) is ProcessDone, protocol.err
    return protocol, transport


# -- a child on StandardIO, driven by spawn_process --------------------------------------------


def test_echo_child_over_spawn_process_pipes(reactor: Any) -> None:
    protocol, transport = spawn_echo_child(reactor)
    transport.write(b"hello\n")

    def on_data(fd: int, data: bytes) -> None:
        if protocol.out == b"hello\n":
            transport.write(b"world\n")
        elif protocol.out == b"hello\nworld\n":
            transport.close_stdin()

    protocol.on_data = on_data
    assert type(finish(reactor, protocol)) is ProcessDone, protocol.err
    assert protocol.out == b"hello\nworld\n"
    assert protocol.err == b"lost ConnectionDone by_peer=True blocking restored=True\n"


def test_echo_child_keeps_writing_after_end_of_file(reactor: Any) -> None:
    protocol, _ = echo_child_to_the_end(reactor, "half", b"one\n", "close_stdin")
    assert protocol.out == b"one\nbye\n"
    assert protocol.err == b"lost ConnectionDone by_peer=False blocking restored=True\n"


def test_echo_child_half_closes_its_stdout(reactor: Any) -> None:
    """write_eof() in the child: we read the end of its stdout while it still reads its stdin."""
    # our write_eof() ends the child's stdin too: ... after it has shut its stdout
    protocol, transport = echo_child_to_the_end(reactor, "eof-first", b"first\nlast\n", "write_eof")
    assert protocol.out == b"first\nlast\n"
    assert protocol.err.startswith(b"lost ConnectionDone by_peer=True")
    names = [e if isinstance(e, str) else e[0] for e in protocol.events]
    assert names.index("out_connection_lost") < names.index("process_exited")
    with pytest.raises(RuntimeError, match="after write_eof"):
        transport.write(b"too late")


def test_echo_child_on_a_terminal(reactor: Any) -> None:
    protocol, transport = spawn_echo_child(reactor, use_pty=True)
    transport.write(b"ping\n")
    protocol.on_data = lambda fd, data: transport.close_stdin() if protocol.out.count(b"ping") >= 2 else None
    assert type(finish(reactor, protocol)) is ProcessDone
    out = protocol.out.replace(b"\r\n", b"\n")
    assert out.startswith(b"ping\nping\n")  # the terminal's echo, then ours
    assert b"lost ConnectionDone by_peer=True blocking restored=True" in out  # stderr: the pty too


# -- a child on StandardIO, driven by subprocess ------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_echo_child_over_popen_pipes(backend: str) -> None:
    data = b"".join(b"line %d\n" % n for n in range(20000))  # bigger than a pipe's buffer
    run = subprocess.run(echo_argv(backend), input=data, capture_output=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout == data
    assert run.stderr == b"lost ConnectionDone by_peer=True blocking restored=True\n"


@pytest.mark.parametrize("backend", BACKENDS)
def test_stdin_a_regular_file_and_stdout_a_regular_file(backend: str, tmp_path: Path) -> None:
    """epoll refuses regular files: they are read (and written) without it, on every backend."""
    data = os.urandom(300 * 1024)
    (tmp_path / "in").write_bytes(data)
    with (tmp_path / "in").open("rb") as stdin, (tmp_path / "out").open("wb") as stdout:
        run = subprocess.run(echo_argv(backend), stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, timeout=60)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "out").read_bytes() == data
    assert run.stderr == b"lost ConnectionDone by_peer=True blocking restored=True\n"


@pytest.mark.parametrize("backend", BACKENDS)
def test_stdin_dev_null_is_an_immediate_end_of_file(backend: str) -> None:
    run = subprocess.run(echo_argv(backend), stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout == b"" and run.stderr.startswith(b"lost ConnectionDone by_peer=True")


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_reader_of_our_stdout_going_away_is_a_lost_connection(backend: str) -> None:
    child = subprocess.Popen(echo_argv(backend), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    assert child.stdin is not None and child.stdout is not None and child.stderr is not None
    child.stdin.write(b"x\n")
    child.stdin.flush()
    assert child.stdout.readline() == b"x\n"
    child.stdout.close()  # nobody reads the child's stdout any more
    err = child.stderr.read()
    child.stderr.close()
    child.stdin.close()
    assert child.wait(60) == 0
    assert err.startswith(b"lost ConnectionLost by_peer=True")


# -- StandardIO in this process, on pipes of ours -----------------------------------------------


def loop_rounds(reactor: Any, n: int) -> Deferred[None]:
    """Fires after ``n`` turns of the loop (each one waits on the fds, with a zero timeout)."""
    done: Deferred[None] = Deferred()

    def turn(left: int) -> None:
        if left:
            reactor.call_soon(turn, left - 1)
        else:
            done.callback(None)

    reactor.call_soon(turn, n)
    return done


class Collect(Protocol):
    def __init__(self) -> None:
        self.received = bytearray()
        self.eof = 0
        self.lost: Deferred[BaseException] = Deferred()

    def data_received(self, data: bytes) -> None:
        self.received += data

    def eof_received(self) -> bool:
        self.eof += 1
        return False

    def connection_lost(self, reason: Failure) -> None:
        self.lost.callback(reason.value)


class Pipes:
    """Two pipes: we write ``feed`` to the transport's stdin and read its stdout from ``drain``."""

    def __init__(self) -> None:
        self.stdin, self.feed = os.pipe()
        self.drain, self.stdout = os.pipe()

    def close(self) -> None:
        for fd in (self.stdin, self.feed, self.drain, self.stdout):
            try:
                os.close(fd)
            except OSError:
                pass


@pytest.fixture
def pipes() -> Any:
    p = Pipes()
    yield p
    p.close()


def test_in_process_end_of_file_and_blocking_mode_restored(reactor: Any, pipes: Pipes) -> None:
    protocol = Collect()
    transport = StandardIO(protocol, stdin=pipes.stdin, stdout=pipes.stdout, reactor=reactor)
    assert verifyObject(ITransport, transport)
    assert transport.get_host() == PipeAddress(pipes.stdin) and transport.get_peer() == PipeAddress(pipes.stdout)
    assert not os.get_blocking(pipes.stdin) and not os.get_blocking(pipes.stdout)
    os.write(pipes.feed, b"some input")
    os.close(pipes.feed)
    transport.write(b"some output")
    reason = run_until(reactor, protocol.lost)
    assert isinstance(reason, ConnectionDone) and reason.by_peer
    assert protocol.received == b"some input" and protocol.eof == 1
    assert os.get_blocking(pipes.stdin) and os.get_blocking(pipes.stdout)
    assert os.read(pipes.drain, 100) == b"some output"
    assert transport.is_closing()


def test_in_process_flow_control_on_stdout(reactor: Any, pipes: Pipes) -> None:
    protocol = Collect()
    transport = StandardIO(protocol, stdin=pipes.stdin, stdout=pipes.stdout, reactor=reactor)
    producer = SpyProducer()
    transport.register_producer(producer, True)
    block = b"b" * 65536
    written = 0
    while not producer.paused:  # nobody reads the pipe: it fills, then our buffer does
        transport.write(block)
        written += len(block)
    assert producer.pauses == 1 and transport.get_write_buffer_size() > 64 * 1024
    drained = bytearray()
    resumed: Deferred[None] = Deferred()

    def drain() -> None:
        drained.extend(os.read(pipes.drain, 1 << 20))
        if producer.resumes and not resumed.called:
            resumed.callback(None)

    reactor.add_reader(pipes.drain, drain)
    try:
        run_until(reactor, resumed)
        transport.unregister_producer()
        transport.lose_connection()
        done = run_until(reactor, protocol.lost)
        while len(drained) < written:
            drained.extend(os.read(pipes.drain, 1 << 20))
    finally:
        reactor.remove_reader(pipes.drain)
    assert isinstance(done, ConnectionDone) and not done.by_peer
    assert drained == block * (written // len(block))


def test_in_process_reader_of_stdout_gone(reactor: Any, pipes: Pipes) -> None:
    protocol = Collect()
    StandardIO(protocol, stdin=pipes.stdin, stdout=pipes.stdout, reactor=reactor)
    os.close(pipes.drain)
    reason = run_until(reactor, protocol.lost)
    assert isinstance(reason, ConnectionLost) and reason.by_peer
    assert os.get_blocking(pipes.stdout)


def test_in_process_pause_reading(reactor: Any, pipes: Pipes) -> None:
    protocol = Collect()
    transport = StandardIO(protocol, stdin=pipes.stdin, stdout=pipes.stdout, reactor=reactor)
    transport.pause_reading()
    os.write(pipes.feed, b"held")
    os.close(pipes.feed)
    run_until(reactor, loop_rounds(reactor, 5))  # each round polls the fds: nothing may be read
    assert protocol.received == b"" and protocol.eof == 0
    transport.resume_reading()
    run_until(reactor, protocol.lost)
    assert protocol.received == b"held" and protocol.eof == 1


def test_abort_connection_and_bad_arguments(reactor: Any, pipes: Pipes) -> None:
    protocol = Collect()
    transport = StandardIO(protocol, stdin=pipes.stdin, stdout=pipes.stdout, reactor=reactor)
    transport.abort_connection()
    transport.write(b"ignored")
    reason = run_until(reactor, protocol.lost)
    assert isinstance(reason, ConnectionLost) and "aborted" in str(reason)
    with pytest.raises(TypeError, match="needs the reactor"):
        StandardIO(Collect(), stdin=pipes.stdin, stdout=pipes.stdout)
    with pytest.raises(ValueError, match="fd 999 is not open"):
        StandardIO(Collect(), stdin=999, stdout=pipes.stdout, reactor=reactor)
