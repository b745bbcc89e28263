"""``pbroker serve`` end to end, in subprocesses: the example app served and called, usage errors
and exit codes, log rotation under load with no line lost, SIGHUP reopening the log, SIGTERM with
calls in flight, sd_notify, and privileges dropped.

Every wait is on an event: a line the server prints ("listening on", "serving"), an answer, a
process exit, a datagram; the one poll (with a deadline) waits for a file to appear.
(Daemon and pidfile: test_runner_daemon.py; workers: test_runner_workers.py.)
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from runner_helpers import TIMEOUT, Server, run_pbroker

import broker
import broker.blocking
from net.reactor import available_reactors

APP = "examples.served_app:make_app"
LOCAL = "tcp:0:interface=127.0.0.1"


def call(endpoint: str, method: str, *args: Any) -> Any:
    with broker.blocking.connect(endpoint, timeout=TIMEOUT) as root:
        return root.call_remote(method, *args)


# -- the command ------------------------------------------------------------------------------------


def test_python_m_broker_prints_usage() -> None:
    bare = run_pbroker([])
    assert bare.returncode == 2
    assert "usage: pbroker" in bare.stderr and "serve" in bare.stderr and "manhole" in bare.stderr
    helped = run_pbroker(["serve", "--help"])
    assert helped.returncode == 0
    for option in ("--listen", "--reactor", "--rotate-size", "--daemon", "--workers", "--grace", "--manhole"):
        assert option in helped.stdout


def test_the_console_script_is_the_runner() -> None:
    import importlib
    import tomllib

    from broker.runner import main

    with open(Path(__file__).resolve().parent.parent / "pyproject.toml", "rb") as f:
        scripts = tomllib.load(f)["project"]["scripts"]
    module, _, name = scripts["pbroker"].partition(":")
    assert getattr(importlib.import_module(module), name) is main


@pytest.mark.parametrize(("args", "says"), [
    (["serve", "no_such_module_here:app", "--listen", LOCAL], "no such module"),
    (["serve", "examples.served_app:nothing", "--listen", LOCAL], "has no 'nothing'"),
    (["serve", "examples.served_app", "--listen", LOCAL], "expected MODULE:OBJECT"),
    (["serve", "examples.served_app:root", "--listen", "tpc:0"], "unknown server endpoint type 'tpc'"),
    (["serve", APP, "--listen", LOCAL, "--daemon"], "give --logfile PATH"),
    (["serve", APP, "--listen", "unix:/tmp/x.sock", "--workers", "2"], "tcp: ports only"),
    (["serve", APP, "--listen", LOCAL, "--reactor", "kqueue"], "invalid choice"),
    (["serve", APP, "--listen", LOCAL, "--rotate-size", "lots"], "not a size"),
    (["serve", APP, "--listen", LOCAL, "--log-level", "CHATTY"], "unknown --log-level"),
    (["serve", APP, "--listen", LOCAL, "--umask", "999"], "umask must be octal"),
])
def test_usage_errors_exit_2_and_say_what_to_write(args: list[str], says: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Found before anything starts (no reactor, no logging set up), so run in this process."""
    from broker.runner import main

    assert main(args) == 2
    assert says in capsys.readouterr().err


@pytest.mark.parametrize(("args", "says"), [
    (["serve", "examples.served_app:root"], "at least one"),
    (["serve", "examples.served_app:__all__", "--listen", LOCAL], "list ['Served'"),
    (["serve", "examples.served_app:Served.remote_pid", "--listen", LOCAL], "is not something to serve"),
])
def test_an_object_that_cannot_be_served_is_a_usage_error(args: list[str], says: str) -> None:
    result = run_pbroker(args)
    assert result.returncode == 2, result.stderr
    assert says in result.stderr


def test_an_app_that_raises_while_starting_exits_1() -> None:
    result = run_pbroker(["serve", "examples.served_app:Served.tick", "--listen", LOCAL])
    assert result.returncode == 1
    assert "the application failed to start" in result.stderr and "AttributeError" in result.stderr


def test_an_unknown_pbroker_reactor_is_a_usage_error() -> None:
    result = run_pbroker(["serve", "examples.served_app:root", "--listen", LOCAL], env={"PBROKER_REACTOR": "kqueue"})
    assert result.returncode == 2 and "kqueue" in result.stderr


def test_an_address_in_use_is_a_temporary_failure(tmp_path: Path) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    try:
        port = holder.getsockname()[1]
        result = run_pbroker(["serve", "examples.served_app:root", "--listen", f"tcp:{port}:interface=127.0.0.1"])
    finally:
        holder.close()
    assert result.returncode == 75
    assert "could not start" in result.stderr and str(port) in result.stderr


def test_manhole_client_reports_a_refused_endpoint() -> None:
    result = run_pbroker(["manhole", "tcp:127.0.0.1:1"])
    assert result.returncode == 2 and "tcp" in result.stderr


# -- serving ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", available_reactors())
def test_serves_the_example_app_on_tcp_and_unix_with_the_chosen_reactor(backend: str, tmp_path: Path) -> None:
    sock = tmp_path / "app.sock"
    logfile = tmp_path / "app.log"
    with Server([APP, "--listen", LOCAL, "--listen", f"unix:{sock}", "--reactor", backend,
                 "--logfile", str(logfile), "--log-format", "json", "--", "--tick", "0.05"], tmp_path) as server:
        served = server.wait_serving()
        assert f"reactor {backend}" in served.string
        assert sorted(e.split(":")[0] for e in server.endpoints) == ["tcp", "unix"]
        for endpoint in server.endpoints:
            assert call(endpoint, "add", 2, 3) == 5
            assert call(endpoint, "pid") == server.pid
        assert call(server.tcp, "ticks") >= 1  # the TimerService ticked at start
        assert server.stop() == 0
    entries = [json.loads(line) for line in logfile.read_text().splitlines()]
    messages = [e["message"] for e in entries]
    assert any(m.startswith("listening on tcp:127.0.0.1:") for m in messages)
    assert any(e["logger"] == "examples.served_app" for e in entries)  # AppContext.log
    assert messages[-1] == "stopped" and {e["pid"] for e in entries} == {server.pid}


def test_serves_a_root_object_and_sigint_stops_cleanly(tmp_path: Path) -> None:
    with Server(["examples.served_app:root", "--listen", LOCAL], tmp_path) as server:
        server.wait_serving()
        assert call(server.tcp, "add", 40, 2) == 42
        assert server.stop(signal.SIGINT) == 0
        assert "stopped" in server.stderr_text()  # --logfile - : stderr


def test_app_arguments_after_the_double_dash_reach_the_app(tmp_path: Path) -> None:
    result = run_pbroker(["serve", APP, "--listen", LOCAL, "--", "--tick", "soon"])
    assert result.returncode == 2 and "served_app: error: argument --tick" in result.stderr


# -- logs --------------------------------------------------------------------------------------------


def test_log_rotation_under_load_loses_no_line(tmp_path: Path) -> None:
    logfile = tmp_path / "app.log"
    threads, per_call, calls = 4, 500, 4
    with Server(["examples.served_app:root", "--listen", LOCAL, "--logfile", str(logfile),
                 "--rotate-size", "16K", "--rotate-keep", "200"], tmp_path) as server:
        server.wait_serving()
        errors: list[BaseException] = []

        def load(worker: int) -> None:
            try:
                with broker.blocking.connect(server.tcp, timeout=TIMEOUT) as root:
                    for c in range(calls):
                        assert root.call_remote("log", per_call, f"load-{worker}-{c}") == per_call
            except BaseException as exc:  # reported below
                errors.append(exc)

        workers = [threading.Thread(target=load, args=(w,)) for w in range(threads)]
        for t in workers:
            t.start()
        for t in workers:
            t.join(TIMEOUT * 2)
        assert not errors and not any(t.is_alive() for t in workers)
        assert server.stop() == 0
    files = sorted(tmp_path.glob("app.log*"))
    assert len(files) > 10  # it did rotate, many times
    seen: dict[str, int] = {}
    for f in files:
        for line in f.read_text().splitlines():
            if " load-" in line:
                key = line.split(": ", 1)[1]
                seen[key] = seen.get(key, 0) + 1
    expected = {f"load-{w}-{c} {i}" for w in range(threads) for c in range(calls) for i in range(per_call)}
    assert set(seen) == expected, f"{len(expected - set(seen))} lines lost"
    assert set(seen.values()) == {1}  # none twice either
    assert all(f.stat().st_size <= 16 * 1024 + 200 for f in files)


def wait_for_file(path: Path, containing: str, timeout: float = TIMEOUT) -> str:
    """Poll, with a deadline, for a file to appear with ``containing`` in it (files only: see module doc)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            text = path.read_text()
            if containing in text:
                return text
        time.sleep(0.01)
    raise TimeoutError(f"{path} did not appear with {containing!r} within {timeout} s")


def test_sighup_reopens_the_log_file_after_a_rename(tmp_path: Path) -> None:
    logfile = tmp_path / "app.log"
    with Server(["examples.served_app:root", "--listen", LOCAL, "--logfile", str(logfile)], tmp_path) as server:
        server.wait_serving()
        call(server.tcp, "log", 1, "before-rotation")
        logfile.rename(tmp_path / "app.log.old")  # what logrotate does, then it sends SIGHUP
        call(server.tcp, "log", 1, "after-rename")  # still the renamed file: not lost
        server.send(signal.SIGHUP)
        wait_for_file(logfile, "reopened the log file")
        call(server.tcp, "log", 1, "after-reopen")
        assert server.stop() == 0
    old = (tmp_path / "app.log.old").read_text()
    new = logfile.read_text()
    assert "before-rotation 0" in old and "after-rename 0" in old and "after-reopen" not in old
    assert "after-reopen 0" in new and "stopped" in new


# -- graceful stop -----------------------------------------------------------------------------------


@pytest.mark.parametrize("served", ["factory", "root"])
def test_sigterm_with_calls_in_flight_they_finish_or_get_a_clean_goodbye(served: str, tmp_path: Path) -> None:
    if served == "factory":
        args = [APP, "--listen", LOCAL, "--", "--grace", "0.5"]
    else:
        args = ["examples.served_app:root", "--listen", LOCAL, "--grace", "0.5"]
    with Server(args, tmp_path) as server:
        server.wait_serving()
        outcomes: dict[str, Any] = {}
        finishing = broker.blocking.connect(server.tcp, timeout=TIMEOUT)
        hanging = broker.blocking.connect(server.tcp, timeout=TIMEOUT)

        def run(name: str, conn: Any) -> None:
            try:
                outcomes[name] = conn.call_remote("until_shutdown" if name == "finishing" else "hang")
            except BaseException as exc:
                outcomes[name] = exc

        threads = [threading.Thread(target=run, args=("finishing", finishing)),
                   threading.Thread(target=run, args=("hanging", hanging))]
        for t in threads:
            t.start()
        assert call(server.tcp, "waiting", 2) == 2  # both calls are running in the server
        started = time.monotonic()
        server.send(signal.SIGTERM)
        for t in threads:
            t.join(TIMEOUT)
        assert not any(t.is_alive() for t in threads)  # none hangs
        if served == "factory":  # its Shutdown service answers them first, within the grace period
            assert outcomes["finishing"] == "finished during the grace period"
        else:
            assert isinstance(outcomes["finishing"], broker.ConnectionLost)
        assert isinstance(outcomes["hanging"], broker.ConnectionLost)
        assert "shutting down" in str(outcomes["hanging"])
        # After the goodbye a call fails at once, cleanly; and nobody listens any more.
        with pytest.raises(broker.ConnectionLost):
            finishing.call_remote("add", 1, 1)
        assert server.proc.wait(TIMEOUT) == 0
        assert time.monotonic() - started < TIMEOUT
        with pytest.raises(OSError):
            call(server.tcp, "add", 1, 1)
        finishing.close()
        hanging.close()


# -- systemd -------------------------------------------------------------------------------------------


def test_sd_notify_ready_and_stopping_to_a_real_notify_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(path)
    listener.settimeout(TIMEOUT)
    try:
        with Server(["examples.served_app:root", "--listen", LOCAL], tmp_path, env={"NOTIFY_SOCKET": path}) as server:
            ready = listener.recv(4096).decode()
            assert "READY=1" in ready.splitlines() and f"MAINPID={server.pid}" in ready.splitlines()
            server.wait_serving()
            assert call(server.tcp, "add", 1, 2) == 3  # READY came once it was serving
            server.send(signal.SIGTERM)
            assert listener.recv(4096).decode() == "STOPPING=1"
            assert server.proc.wait(TIMEOUT) == 0
    finally:
        listener.close()


# -- privileges ------------------------------------------------------------------------------------------


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
def test_uid_and_gid_are_dropped_once_listening(tmp_path: Path) -> None:
    with Server(["examples.served_app:root", "--listen", LOCAL, "--uid", "65534", "--gid", "65534"], tmp_path) as server:
        server.wait_serving()
        assert call(server.tcp, "uid") == [65534, 65534] or call(server.tcp, "uid") == (65534, 65534)
        assert server.stop() == 0
