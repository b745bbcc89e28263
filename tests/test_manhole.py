"""The manhole (net.manhole): a Python console inside a running server, and its terminal client.

The console tests are end to end: a server process (tests/manhole_server.py) with a
ManholeService, and the real client (``run_client``, as ``pbroker manhole`` runs it) on a
pseudo-terminal, typed at and read back until the expected text appears (with a deadline, never
a sleep). The limit and flow-control tests speak the wire protocol directly (a blocking socket
to the server process, or our own client transport in-process). Certificates are made at run
time with ``make_dev_certs``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from helpers_net import esc

from net.defer import Deferred, gather
from net.endpoints import client
from net.manhole import ManholeEndpointError, ManholeService, run_client
from net.protocol import Factory, Protocol
from net.basic import NetstringReceiver
from net.service import IService
from net.tls import DevCerts, make_dev_certs

ROOT = Path(__file__).resolve().parent.parent
SERVER = ROOT / "tests" / "manhole_server.py"
DEADLINE = 20.0


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


# -- a server process ------------------------------------------------------------------------------


class ServerProcess:
    def __init__(self, proc: subprocess.Popen[str], logfile: Path, port: int | None) -> None:
        self.proc = proc
        self.logfile = logfile
        self.port = port

    def stop(self) -> str:
        """SIGTERM it, wait for it to exit, and return its whole log."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(DEADLINE)
        return self.logfile.read_text()


@contextmanager
def manhole_server(tmp_path: Path, endpoint: str, limits: dict[str, int] | None = None) -> Iterator[ServerProcess]:
    logfile = tmp_path / "server.log"
    # Leaving the with statement closes the server's stdout and reaps it.
    with subprocess.Popen([sys.executable, str(SERVER), endpoint, str(logfile), json.dumps(limits or {})],
                          stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            assert line.startswith("listening"), f"the manhole server did not start: {line!r}"
            words = line.split()
            yield ServerProcess(proc, logfile, int(words[1]) if len(words) > 1 else None)
        finally:
            if proc.poll() is None:
                proc.kill()


# -- the client on a pseudo-terminal ---------------------------------------------------------------

CLIENT = textwrap.dedent("""
    import fcntl, sys, termios
    sys.path.insert(0, {root!r})
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)  # the pty is our terminal: ^C is SIGINT, as for a user
    from net.manhole import run_client
    sys.exit(run_client(*sys.argv[1:2], **dict(a.split("=", 1) for a in sys.argv[2:])))
""")


class Terminal:
    """``run_client`` in a child process whose terminal is a pty we type into and read."""

    def __init__(self, tmp_path: Path, endpoint: str, **options: str) -> None:
        master, slave = os.openpty()
        env = dict(os.environ, TERM="xterm", PBROKER_MANHOLE_HISTORY=str(tmp_path / "history"))
        args = [f"{k}={v}" for k, v in options.items()]
        self.proc = subprocess.Popen([sys.executable, "-c", CLIENT.format(root=str(ROOT)), endpoint, *args],
                                     stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
        os.close(slave)
        self.master = master
        self.seen = ""  # everything read so far
        self.pos = 0  # where the next expect() starts looking

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def line(self, text: str) -> None:
        self.send(text + "\r")

    def interrupt(self) -> None:
        """Type Ctrl-C until the client shows KeyboardInterrupt.

        Repeated because CPython's readline waits in select() and notices a signal only by the
        EINTR it causes: a SIGINT that lands just before the select() starts is seen at the next
        one (a person cannot type that fast; a test can).
        """
        for _ in range(10):
            self.send("\x03")
            try:
                self.expect(r"KeyboardInterrupt", timeout=2.0)
                return
            except AssertionError:
                continue
        raise AssertionError(f"Ctrl-C had no effect; the terminal shows:\n{self.seen[self.pos:]!r}")

    def expect(self, pattern: str, timeout: float = DEADLINE) -> re.Match[str]:
        """Read until ``pattern`` (a regex) appears after the previous match; fail at the deadline."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            found = regex.search(self.seen, self.pos)
            if found:
                self.pos = found.end()
                return found
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(left):
                raise AssertionError(f"{pattern!r} did not appear; the terminal shows:\n{self.seen[self.pos:]!r}")

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: the child closed the terminal
            return False
        self.seen += data.decode("utf-8", "replace")
        return bool(data)

    def wait(self) -> int:
        code = self.proc.wait(DEADLINE)
        while self._read(0):  # what it wrote before exiting
            pass
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        os.close(self.master)


@contextmanager
def terminal(tmp_path: Path, endpoint: str, **options: str) -> Iterator[Terminal]:
    term = Terminal(tmp_path, endpoint, **options)
    try:
        yield term
    finally:
        term.close()


PROMPT = r">>> "
MORE = r"\.\.\. "


def result(text: str) -> str:
    """The regex of ``text`` shown on a line of its own."""
    return r"\n" + re.escape(text) + r"\r?\n"


# -- the console, end to end -----------------------------------------------------------------------


def test_console_over_a_unix_socket(tmp_path: Path) -> None:
    path = tmp_path / "manhole.sock"
    with manhole_server(tmp_path, f"unix:{esc(path)}") as server, terminal(tmp_path, f"unix:{esc(path)}") as term:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        term.expect(r"pbroker manhole: Python [\d.]+ in pid %d" % server.proc.pid)
        term.expect(PROMPT)
        term.line("app.value * 2")
        term.expect(result("42"))
        term.expect(PROMPT)

        term.line('print("hel" + "lo", end="!\\n")')
        term.expect(result("hello!"))
        term.expect(PROMPT)

        term.line("1 / 0")
        term.expect(r"Traceback \(most recent call last\):")
        term.expect(r'File "<manhole>", line 1, in <module>')
        term.expect(r"ZeroDivisionError: division by zero")
        term.expect(PROMPT)

        term.line("def twice(x):")
        term.expect(MORE)
        term.line("    return 2 * x")
        term.expect(MORE)
        term.line("")
        term.expect(PROMPT)
        term.line("twice(50)")
        term.expect(result("100"))
        term.expect(PROMPT)

        # A Deferred is shown as such; its result arrives later, while the client waits at the
        # prompt (the reactor fires it), and becomes _.
        term.line("d = app.later(); d")
        term.expect(re.escape("<Deferred #1>"))
        term.expect(PROMPT)
        term.line("reactor.call_later(0, app.fire) and None")
        term.expect(re.escape("Deferred #1 called back: 'done'"))
        term.line("_ * 2")
        term.expect(result("'donedone'"))
        term.expect(PROMPT)

        term.send("\x04")  # Ctrl-D
        assert term.wait() == 0
        client_pid = term.proc.pid
        log = server.stop()
    assert "app.value * 2" in (tmp_path / "history").read_text()  # readline kept the history
    assert f"manhole session #1 opened on unix:{esc(path)} by uid {os.getuid()} pid {client_pid}" in log
    assert re.search(r"manhole session #1 closed after [\d.]+ s and \d+ inputs \(uid %d" % os.getuid(), log)
    assert not path.exists()  # the socket file went with the server


def test_ctrl_c_discards_an_incomplete_statement_and_exit_ends_only_the_session(tmp_path: Path) -> None:
    path = tmp_path / "m.sock"
    with manhole_server(tmp_path, f"unix:{esc(path)}") as server:
        with terminal(tmp_path, f"unix:{esc(path)}") as term:
            term.expect(PROMPT)
            term.line("for i in range(3):")
            term.expect(MORE)
            term.interrupt()  # Ctrl-C at the continuation prompt
            term.expect(PROMPT)
            term.line("app.value + 1")  # parsed on its own: the for loop was discarded
            term.expect(result("22"))
            term.expect(PROMPT)
            term.line("exit()")
            term.expect(r"session ended by exit\(\); the server keeps running")
            assert term.wait() == 0
        with terminal(tmp_path, f"unix:{esc(path)}") as term:  # the server is still there
            term.expect(PROMPT)
            term.line("app.value")
            term.expect(result("21"))
            term.expect(PROMPT)  # readline reads the terminal raw from here: ^D is its EOF
            term.send("\x04")
            assert term.wait() == 0
        log = server.stop()
    assert "manhole session #1 closed" in log and "exit() called" in log
    assert "manhole session #2 opened" in log


def test_client_reports_a_server_that_is_not_there(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_client(f"unix:{esc(tmp_path / 'nobody.sock')}") == 1
    err = capsys.readouterr().err
    assert "manhole: cannot connect to unix:" in err and "does not exist" in err


def test_client_refuses_tcp(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_client("tcp:127.0.0.1:1") == 2
    err = capsys.readouterr().err
    assert "refuses to connect to 'tcp:127.0.0.1:1'" in err and "unix:" in err


def test_server_ends_the_session_of_a_client_that_exits(tmp_path: Path) -> None:
    """The session closes when the server stops: the client says why and exits 1."""
    path = tmp_path / "m.sock"
    with manhole_server(tmp_path, f"unix:{esc(path)}") as server, terminal(tmp_path, f"unix:{esc(path)}") as term:
        term.expect(PROMPT)
        term.line("app.value")
        term.expect(result("21"))
        term.expect(PROMPT)  # now waiting in input()
        log = server.stop()
        term.expect(r"manhole: the server is stopping")
        assert term.wait() == 1
    assert "the server is stopping" in log


# -- TLS -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> DevCerts:
    return make_dev_certs(tmp_path_factory.mktemp("certs"), client_name="ops-alice")


def tls_server_endpoint(certs: DevCerts, ca: bool = True) -> str:
    spec = f"tls:0:interface=127.0.0.1:cert={esc(certs.server_cert)}:key={esc(certs.server_key)}"
    return spec + (f":ca={esc(certs.ca)}" if ca else "")


def test_console_over_tls_with_a_client_certificate(tmp_path: Path, certs: DevCerts) -> None:
    with manhole_server(tmp_path, tls_server_endpoint(certs)) as server:
        assert server.port
        endpoint = f"tls:127.0.0.1:{server.port}:ca={esc(certs.ca)}"
        with terminal(tmp_path, endpoint, cert=str(certs.client_cert), key=str(certs.client_key)) as term:
            term.expect(PROMPT)
            term.line("app.value * 2")
            term.expect(result("42"))
            term.expect(PROMPT)
            term.send("\x04")
            assert term.wait() == 0
        # Without a certificate the server refuses the handshake: a clear message, exit 1.
        proc = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
                               "from net.manhole import run_client; sys.exit(run_client(sys.argv[1]))", endpoint],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=DEADLINE)
        log = server.stop()
    assert proc.returncode == 1, proc
    assert "refused the session before it began" in proc.stderr and "certificate required" in proc.stderr
    assert "give cert= and key=" in proc.stderr
    assert re.search(r"manhole session #1 opened on tls:\S+ by certificate 'CN=ops-alice", log), log
    assert "manhole session #1 closed" in log
    assert re.search(r"refused a TLS client from 127\.0\.0\.1:\d+: .*did not return a certificate", log), log


# -- refused endpoints and the socket file ---------------------------------------------------------


@pytest.mark.parametrize("spec", ["tcp:0:interface=127.0.0.1", "tcp:8123", "udp:9000", "stdio:"])
def test_refuses_endpoints_other_than_unix_and_tls(reactor: Any, spec: str) -> None:
    with pytest.raises(ManholeEndpointError) as info:
        ManholeService(reactor, spec, {})
    message = str(info.value)
    assert f"refuses to listen on {spec!r}" in message
    assert "'unix:/path/to/manhole.sock'" in message and "ca=" in message
    if spec.startswith("tcp:"):
        assert "neither authentication nor encryption" in message


def test_refuses_tls_without_client_certificates(reactor: Any, certs: DevCerts) -> None:
    with pytest.raises(ManholeEndpointError, match="must require client certificates.*add ca=CA.pem"):
        ManholeService(reactor, tls_server_endpoint(certs, ca=False), {})
    ManholeService(reactor, tls_server_endpoint(certs), {})


def test_refuses_an_abstract_unix_socket(reactor: Any) -> None:
    with pytest.raises(ManholeEndpointError, match="abstract unix socket .* no file permissions"):
        ManholeService(reactor, "unix:@pbroker-manhole", {})


def test_unix_socket_file_is_0600_whatever_the_mode_and_umask(reactor: Any, run: Any, tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "m.sock"
    fds = open_fds()
    # at_level: the warning is seen even if something in this process raised the logger's level or
    # called logging.disable (pytest lifts that for the block).
    with caplog.at_level(logging.WARNING, logger="net.manhole"):
        service = ManholeService(reactor, f"unix:{esc(path)}:mode=666", {})
    assert isinstance(service, IService)
    assert "mode=666 ignored" in caplog.text
    old = os.umask(0)
    try:
        run(reactor, service.start_service())
    finally:
        os.umask(old)
    assert service.running
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    run(reactor, service.stop_service())
    assert not service.running and not path.exists()
    assert open_fds() == fds


# -- the wire protocol and its limits --------------------------------------------------------------


class RawSession:
    """A blocking socket speaking the wire protocol: lines out, netstring frames in."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(DEADLINE)
        self.sock.connect(str(path))
        self.buffer = b""

    def frame(self) -> tuple[str, str] | None:
        """The next (tag, text), or None at EOF."""
        while True:
            head, colon, rest = self.buffer.partition(b":")
            if colon and len(rest) > int(head):
                size = int(head)
                assert rest[size:size + 1] == b","
                self.buffer = rest[size + 1:]
                return rest[:1].decode(), rest[1:size].decode()
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buffer += data

    def until_prompt(self) -> str:
        """The output up to the next prompt."""
        out: list[str] = []
        while (frame := self.frame()) is not None:
            tag, text = frame
            if tag == "p":
                return "".join(out)
            out.append(text)
        raise AssertionError(f"the session ended before a prompt; output: {''.join(out)!r}")

    def until_end(self) -> list[tuple[str, str]]:
        frames = []
        while (frame := self.frame()) is not None:
            frames.append(frame)
        return frames

    def close(self) -> None:
        self.sock.close()


def test_limits_close_the_session_or_cut_the_output(tmp_path: Path) -> None:
    path = tmp_path / "m.sock"
    limits = {"max_line_length": 1000, "max_source_length": 3000, "max_output": 5000}
    with manhole_server(tmp_path, f"unix:{esc(path)}", limits) as server:
        raw = RawSession(path)
        raw.until_prompt()
        raw.sock.sendall(b"print('x' * 100000)\n")
        out = raw.until_prompt()
        assert out.startswith("x" * 5000)
        assert "[95001 more characters of output dropped: over the manhole's limit of 5000]" in out
        assert len(out) < 5200
        raw.sock.sendall(b"raise KeyboardInterrupt('typed')\n")  # shown, like any exception
        assert raw.until_prompt().endswith("KeyboardInterrupt: typed\n")
        raw.sock.sendall(b"'" + b"y" * 2000 + b"'\n")  # one line over the limit
        frames = raw.until_end()
        assert ("e", "manhole: input line longer than 1000 bytes; closing the session\n") in frames
        raw.close()

        raw = RawSession(path)
        raw.until_prompt()
        raw.sock.sendall(b"if True:\n")
        assert raw.until_prompt() == ""
        for _ in range(5):  # an incomplete statement that keeps growing
            raw.sock.sendall(b"    x = '" + b"z" * 900 + b"'\n")
        frames = raw.until_end()
        assert ("e", "manhole: the statement is longer than 3000 characters; closing the session\n") in frames
        raw.close()

        raw = RawSession(path)  # the server still serves
        raw.until_prompt()
        raw.sock.sendall(b"app.value\n")
        assert raw.until_prompt() == "21\n"
        raw.close()
        log = server.stop()
    assert "closed after" in log and "input line longer than 1000 bytes" in log
    assert "statement longer than 3000 characters" in log


class OneProtocol(Factory):
    def __init__(self, protocol: Protocol) -> None:
        self.protocol_instance = protocol

    def build_protocol(self, addr: Any) -> Protocol:
        return self.protocol_instance


class FrameCollector(NetstringReceiver):
    max_length = 1 << 20

    def __init__(self) -> None:
        self.frames: list[tuple[bytes, bytes]] = []
        self.prompts = 0
        self.waiting: tuple[int, Deferred[None]] | None = None
        self.lost: Deferred[None] = Deferred()

    def connection_lost(self, reason: Any) -> None:
        self.lost.callback(None)

    def string_received(self, data: bytes) -> None:
        self.frames.append((data[:1], data[1:]))
        if data[:1] == b"p":
            self.prompts += 1
            if self.waiting is not None and self.prompts >= self.waiting[0]:
                d, self.waiting = self.waiting[1], None
                d.callback(None)

    def prompt_number(self, n: int) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        self.waiting = (n, d)
        if self.prompts >= n:
            self.waiting = None
            d.callback(None)
        return d


def test_a_client_that_does_not_read_stops_its_input_being_run(reactor: Any, run: Any, tmp_path: Path) -> None:
    """The session is its transport's producer: while the client does not read, the server reads
    (and runs) nothing more, so the output it holds stays bounded; reading again lets it go on."""
    path = tmp_path / "m.sock"
    fds = open_fds()
    namespace: dict[str, object] = {"runs": [0]}
    service = ManholeService(reactor, f"unix:{esc(path)}", namespace, max_output=200_000)
    run(reactor, service.start_service())
    collector = FrameCollector()
    run(reactor, client(reactor, f"unix:{esc(path)}").connect(OneProtocol(collector)))
    run(reactor, collector.prompt_number(1))
    collector.transport.pause_reading()
    lines = 200  # 200 x 100 kB of output: far more than the socket buffers and the high-water mark
    collector.transport.write(b"runs[0] += 1; print('o' * 100_000)\n" * lines)
    [session] = service.factory.sessions
    high = 64 * 1024
    session.transport.set_write_buffer_limits(high=high)
    paused: Deferred[None] = Deferred()
    pause = session.pause_producing

    def observed_pause() -> None:  # the transport calls its producer's method: we watch it do so
        pause()
        if not paused.called:
            paused.callback(None)

    session.pause_producing = observed_pause  # type: ignore[method-assign]
    run(reactor, paused)
    assert session.paused
    held = session.transport.get_write_buffer_size()
    ran = namespace["runs"][0]  # type: ignore[index]
    assert ran < lines
    assert high < held <= high + 200_000  # over the mark by at most what one input printed
    collector.transport.resume_reading()
    run(reactor, collector.prompt_number(1 + lines))
    assert namespace["runs"] == [lines]
    output = b"".join(text for tag, text in collector.frames if tag == b"o")
    assert output.count(b"o" * 1000) >= lines * 100
    collector.transport.lose_connection()
    run(reactor, service.stop_service())
    run(reactor, collector.lost)
    assert open_fds() == fds


def test_sessions_share_the_namespace_but_not_their_output(reactor: Any, run: Any, tmp_path: Path) -> None:
    path = tmp_path / "m.sock"
    namespace: dict[str, object] = {"fail_later": Deferred}
    service = ManholeService(reactor, f"unix:{esc(path)}", namespace)
    run(reactor, service.start_service())
    a, b = FrameCollector(), FrameCollector()
    # Both in one run: a unix port stops when the reactor stops (and run() stops it).
    run(reactor, gather(*(client(reactor, f"unix:{esc(path)}").connect(OneProtocol(c)) for c in (a, b))))
    run(reactor, gather(a.prompt_number(1), b.prompt_number(1)))

    def say(collector: FrameCollector, line: str) -> str:
        """Send ``line``; the output up to the next prompt."""
        start = len(collector.frames)
        collector.transport.write(line.encode() + b"\n")
        run(reactor, collector.prompt_number(collector.prompts + 1))
        return b"".join(text for tag, text in collector.frames[start:] if tag == b"o").decode()

    stdout, stderr = sys.stdout, sys.stderr
    assert say(a, "import sys; print('only A'); print('A err', file=sys.stderr); shared = 5") == "only A\nA err\n"
    assert sys.stdout is stdout and sys.stderr is stderr  # redirected only while A's code ran
    assert say(b, "shared * 2") == "10\n"  # one namespace for every session
    assert not any(b"only A" in text for _, text in b.frames)
    assert say(b, "d = fail_later(); d") == "<Deferred #1>\n"
    a_before = len(a.frames)
    assert say(a, "d.errback(ValueError('it broke'))") == ""
    b_frames = b"".join(text for _, text in b.frames)
    assert b"Deferred #1 failed: ValueError: it broke\n" in b_frames  # to B, who showed it
    assert not any(b"it broke" in text for _, text in a.frames[a_before:])
    assert namespace["shared"] == 5 and namespace["_"] is namespace["d"]  # _: the last value shown
    assert say(b, "d.add_errback(lambda failure: None) and None") == ""  # the failure passed through
    for collector in (a, b):
        collector.transport.lose_connection()
        run(reactor, collector.lost)
    run(reactor, service.stop_service())


#: Run as another user by the system's python3 (the venv's may not be readable by it): connect to
#: the socket in argv[1]; print "denied" if the file's permissions stop us, else every frame
#: received until EOF.
OTHER_USER_CLIENT = textwrap.dedent("""
    import socket, sys
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(20)
    try:
        sock.connect(sys.argv[1])
    except PermissionError:
        print("denied")
        sys.exit(0)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    print(data.decode())
""")


@pytest.mark.skipif(os.geteuid() != 0 or not os.access("/usr/bin/python3", os.X_OK),
                    reason="needs root, to connect as another user, and a system python3 for that user")
def test_another_user_is_kept_out(tmp_path: Path) -> None:
    """The 0600 socket file stops another user; if its permissions are opened up, the peer
    credentials check still refuses the session."""
    public = Path(tempfile.mkdtemp(prefix="manhole-", dir="/tmp"))  # a directory the other user may enter
    try:
        public.chmod(0o755)
        path = public / "m.sock"
        with manhole_server(tmp_path, f"unix:{esc(path)}") as server:
            def as_nobody() -> str:
                proc = subprocess.run(["/usr/bin/python3", "-c", OTHER_USER_CLIENT, str(path)], user=65534,
                                      group=65534, extra_groups=[], capture_output=True, text=True, timeout=DEADLINE)
                assert proc.returncode == 0, proc.stderr
                return proc.stdout

            assert as_nobody().strip() == "denied"
            path.chmod(0o666)  # someone opened it up
            answer = as_nobody()
            assert "manhole: refused: uid 65534 is neither the server's user" in answer
            assert ">>>" not in answer  # no prompt: not one line of it was run
            log = server.stop()
        assert "manhole session #1 refused on" in log and "uid 65534" in log
        assert "opened" not in log.split("refused on", 1)[1]
    finally:
        shutil.rmtree(public)
