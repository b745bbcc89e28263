"""broker.blocking's in-thread client (tcp:): many threads on one connection, the server's calls
to us, disconnects failing every waiting thread, timeouts, releases, the reactor-thread fallback.

The server runs in another process, as a script's server would. No test measures time: waits
are for events (a count the server reports, a callback having run), bounded by SAFETY.
"""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import broker
import broker.blocking
from broker import blocking

ROOT = Path(__file__).resolve().parent.parent
SAFETY = 60.0

SERVER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    import broker
    from net.defer import Deferred
    from net.reactor import make_reactor

    reactor = make_reactor()
    stats = {{"hanging": 0, "cancelled": 0}}
    sessions = []

    class Counter(broker.Referenceable):
        def remote_get(self):
            return 1

    class Service(broker.Root):
        def root_object(self, session):
            sessions.append(session)
            return PerConnection(session)

    class PerConnection(broker.Referenceable):
        def __init__(self, session):
            self.session = session

        def remote_add(self, a, b):
            return a + b

        def remote_echo(self, x):
            return x

        def remote_hang(self):
            stats["hanging"] += 1
            def cancelled(d):
                stats["hanging"] -= 1
                stats["cancelled"] += 1
            return Deferred(cancelled)

        def remote_stats(self):
            return dict(stats, exports=len(self.session.exports))

        def remote_counter(self):
            return Counter()

        async def remote_call_back(self, obj, x):
            return await obj.call_remote("twice", x)

        def remote_notify_later(self, obj, n):
            for i in range(n):
                reactor.call_later(0.01, obj.call_remote_no_answer, "note", i)

        def remote_drop_me(self):
            reactor.call_later(0.01, self.session.disconnect)
            return True

    limits = broker.Limits(dead_after=float(sys.argv[1])) if len(sys.argv) > 1 else broker.Limits()
    def listening(port):
        print(port.get_host().port, flush=True)
    broker.serve(reactor, "tcp:0:interface=127.0.0.1", Service(), limits=limits).add_callback(listening)
    reactor.run()
""")


class Server:
    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", SERVER.format(root=str(ROOT)), *args],
                                        stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())
        self.endpoint = f"tcp:127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    try:
        yield s
    finally:
        s.stop()


def wait_until(root: blocking.BlockingReference, key: str, value: int) -> dict[str, int]:
    for _ in range(100_000):
        stats: dict[str, int] = root.call_remote("stats")
        if stats[key] == value:
            return stats
    raise AssertionError(f"the server never got {key} == {value}: {stats}")


def run_threads(n: int, target: Any) -> list[BaseException]:
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            target(i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(SAFETY * 5)
        assert not t.is_alive(), "a thread never finished"
    return errors


class Twice(broker.Referenceable):
    def __init__(self) -> None:
        self.threads: set[int] = set()
        self.notes: list[int] = []
        self.all_notes = threading.Event()
        self.conn: blocking.BlockingConnection | None = None
        self.reentrant_error: BaseException | None = None

    def remote_twice(self, x: int) -> int:
        self.threads.add(threading.get_ident())
        if x == -1 and self.conn is not None:  # a blocking call from inside a callback
            try:
                self.conn.call_remote("add", 1, 1)
            except RuntimeError as exc:
                self.reentrant_error = exc
                raise
        return 2 * x

    def remote_note(self, i: int) -> None:
        self.notes.append(i)
        if len(self.notes) == 5:
            self.all_notes.set()


def test_the_tcp_client_does_its_io_in_the_calling_thread(server: Server) -> None:
    with broker.blocking.connect(server.endpoint, timeout=SAFETY) as root:
        assert isinstance(root._channel, blocking._SocketChannel)
        assert root.call_remote("add", 1, 2) == 3
        assert root.call_remote("echo", {"a": [1, b"x"]}) == {"a": [1, b"x"]}
        blob = os.urandom(3 * 1024 * 1024)  # a frame of many recvs, each way
        assert root.call_remote("echo", blob) == blob
        counter = root.call_remote("counter")
        assert isinstance(counter, blocking.BlockingReference)
        assert counter.call_remote("get") == 1
        with pytest.raises(broker.RemoteError, match="no_such"):
            root.call_remote("no_such")


def test_references_nested_in_arguments_and_results_cross_both_ways(server: Server) -> None:
    with broker.blocking.connect(server.endpoint, timeout=SAFETY) as root:
        counter = root.call_remote("counter")
        # A BlockingReference deep in the arguments is sent as the reference it stands for, and
        # comes back (an echo) as a BlockingReference again, at the same depth.
        echoed = root.call_remote("echo", {"deep": [[{"ref": counter}], 7]})
        inner = echoed["deep"][0][0]["ref"]
        assert isinstance(inner, blocking.BlockingReference) and inner.remote is counter.remote
        assert inner.call_remote("get") == 1
        # A result with no reference in it is returned as decoded (no wrapping walk).
        plain = [{"n": i} for i in range(100)]
        assert root.call_remote("echo", plain) == plain
        echoed = root.call_remote("echo", [counter])  # an existing proxy, not a new one
        assert isinstance(echoed[0], blocking.BlockingReference)
        root.call_remote_no_answer("echo", {"r": counter})  # one-way calls take views too
        assert root.call_remote("add", 1, 1) == 2


def test_sixteen_threads_a_thousand_calls_each_on_one_connection(server: Server) -> None:
    with broker.blocking.connect(server.endpoint, timeout=SAFETY) as root:
        def calls(i: int) -> None:
            for j in range(1000):
                assert root.call_remote("add", i, j) == i + j
                if j % 100 == 0:  # a bigger answer now and then: partial reads among the others
                    assert root.call_remote("echo", [i, j, "x" * (j * 50)]) == [i, j, "x" * (j * 50)]

        assert run_threads(16, calls) == []
        assert root.call_remote("add", 0, 0) == 0


def test_the_servers_calls_to_us_run_while_we_wait_for_our_answer(server: Server) -> None:
    mine = Twice()
    with broker.blocking.connect(server.endpoint, timeout=SAFETY) as root:
        assert root.call_remote("call_back", mine, 21) == 42
        assert mine.threads == {threading.get_ident()}  # run by the thread that was reading

        def calls(i: int) -> None:
            for j in range(200):
                assert root.call_remote("call_back", mine, i * 1000 + j) == 2 * (i * 1000 + j)

        assert run_threads(8, calls) == []


def test_the_servers_calls_to_us_run_while_nobody_calls(server: Server) -> None:
    mine = Twice()
    with broker.blocking.connect(server.endpoint, timeout=SAFETY) as root:
        root.call_remote("notify_later", mine, 5)  # they arrive after the answer, while we are idle
        assert mine.all_notes.wait(SAFETY), mine.notes
        assert sorted(mine.notes) == [0, 1, 2, 3, 4]
        assert threading.get_ident() not in mine.threads


def test_a_blocking_call_from_inside_a_callback_raises_instead_of_hanging(server: Server) -> None:
    mine = Twice()
    conn = broker.blocking.connect(server.endpoint, timeout=SAFETY)
    mine.conn = conn
    try:
        with pytest.raises(broker.RemoteError, match="RuntimeError|would wait for itself"):
            conn.call_remote("call_back", mine, -1)
        assert isinstance(mine.reentrant_error, RuntimeError)
        assert conn.call_remote("add", 2, 2) == 4  # the connection is fine
    finally:
        conn.close()


def test_a_timeout_fails_the_call_cancels_it_on_the_server_and_keeps_the_connection(server: Server) -> None:
    with broker.blocking.connect(server.endpoint, timeout=SAFETY) as root:
        short = blocking.BlockingReference(root.remote, root._channel, 0.2)
        with pytest.raises(TimeoutError, match="no result within 0.2 seconds"):
            short.call_remote("hang")
        assert wait_until(root, "cancelled", 1)["hanging"] == 0
        assert root.call_remote("add", 1, 1) == 2

        def hang_and_add(i: int) -> None:  # timeouts in followers while others are answered
            if i % 2:
                with pytest.raises(TimeoutError):
                    short.call_remote("hang")
            else:
                for j in range(300):
                    assert root.call_remote("add", i, j) == i + j

        assert run_threads(8, hang_and_add) == []
        assert wait_until(root, "cancelled", 5)["hanging"] == 0


def test_closing_fails_the_pending_calls_of_every_waiting_thread(server: Server) -> None:
    conn = broker.blocking.connect(server.endpoint, timeout=SAFETY)
    lost: list[BaseException] = []

    def hang(i: int) -> None:
        try:
            conn.call_remote("hang")
        except broker.ConnectionLost as exc:
            lost.append(exc)

    threads = [threading.Thread(target=hang, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    with broker.blocking.connect(server.endpoint, timeout=SAFETY) as other:
        wait_until(other, "hanging", 16)
        conn.close()
        for t in threads:
            t.join(SAFETY)
            assert not t.is_alive()
        assert len(lost) == 16
        assert conn.closed
        with pytest.raises(broker.ConnectionLost):
            conn.call_remote("add", 1, 1)
        conn.close()  # idempotent
        wait_until(other, "hanging", 0)


def test_a_server_that_dies_fails_the_pending_calls_of_every_waiting_thread() -> None:
    server = Server()
    try:
        conn = broker.blocking.connect(server.endpoint, timeout=SAFETY)
        disconnects: list[Any] = []
        conn.notify_on_disconnect(disconnects.append)
        lost: list[BaseException] = []

        def hang(i: int) -> None:
            try:
                conn.call_remote("hang")
            except broker.ConnectionLost as exc:
                lost.append(exc)

        threads = [threading.Thread(target=hang, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        wait_until(conn.root, "hanging", 16)
        server.process.send_signal(signal.SIGKILL)
        for t in threads:
            t.join(SAFETY)
            assert not t.is_alive()
        assert len(lost) == 16, lost
        assert disconnects == [conn.root.remote]
        with pytest.raises(broker.ConnectionLost):
            conn.call_remote("add", 1, 1)
        conn.close()
    finally:
        server.stop()


def test_a_goodbye_from_the_server_fails_later_calls(server: Server) -> None:
    conn = broker.blocking.connect(server.endpoint, timeout=SAFETY)
    done = threading.Event()
    conn.notify_on_disconnect(lambda ref: done.set())
    assert conn.call_remote("drop_me") is True
    assert done.wait(SAFETY)  # noticed by the idle reader: nobody was calling
    with pytest.raises(broker.ConnectionLost):
        conn.call_remote("add", 1, 1)
    conn.close()


def test_proxies_dropped_in_any_thread_are_released_on_the_next_call(server: Server) -> None:
    with broker.blocking.connect(server.endpoint, timeout=SAFETY) as root:
        box = [root.call_remote("counter") for _ in range(3)]
        assert root.call_remote("stats")["exports"] == 3

        def drop(i: int) -> None:
            box.pop()
            gc.collect()

        assert run_threads(3, drop) == []
        wait_until(root, "exports", 0)


def test_an_idle_connection_answers_the_servers_pings() -> None:
    server = Server("0.6")  # the server declares a silent client dead after 0.6 s
    try:
        with broker.blocking.connect(server.endpoint, timeout=SAFETY) as root:
            assert root.call_remote("add", 1, 2) == 3
            threading.Event().wait(2.0)  # idle for several of the server's dead_after
            assert root.call_remote("add", 2, 3) == 5
    finally:
        server.stop()


def test_other_endpoints_and_the_fallback_use_the_reactor_thread(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    assert blocking._tcp_target("tcp:127.0.0.1:8800", {}) == ("127.0.0.1", 8800, 30.0, None)
    assert blocking._tcp_target("tcp:h:1:timeout=5:bind_address=10.0.0.1", {"limits": broker.Limits()}) == (
        "h", 1, 5.0, ("10.0.0.1", 0))
    assert blocking._tcp_target("tls:127.0.0.1:8800:ca=ca.pem", {}) is None
    assert blocking._tcp_target("tcp:127.0.0.1:8800", {"something": 1}) is None
    monkeypatch.setattr(blocking, "_IN_THREAD", False)
    with broker.blocking.connect(server.endpoint, timeout=SAFETY) as root:
        assert isinstance(root._channel, blocking._ReactorChannel)
        assert root.call_remote("add", 1, 2) == 3
        assert run_threads(4, lambda i: [root.call_remote("add", i, j) for j in range(100)]) == []


def test_connecting_to_nobody_is_refused_clearly() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: nobody accepts there
        with pytest.raises(ConnectionRefusedError, match="Connection refused by 127.0.0.1"):
            broker.blocking.connect(f"tcp:127.0.0.1:{port}", timeout=SAFETY)


def test_limits_call_timeout_bounds_in_thread_calls_too() -> None:
    """Limits(call_timeout=...) applies as on the reactor path: the smaller of it and timeout=."""
    server = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("fault_server.py")), "epoll", "{}"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline().rsplit(":", 1)[1])
        with broker.blocking.connect(f"tcp:127.0.0.1:{port}", timeout=60,
                                     limits=broker.Limits(call_timeout=0.2)) as root:
            with pytest.raises(TimeoutError):
                root.call_remote("hang")
            assert root.call_remote("stats")["cancelled"] == 1  # cancelled on the server too
    finally:
        server.terminate()
        server.wait(30)
