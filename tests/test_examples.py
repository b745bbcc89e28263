"""The examples are documentation: run them as a user would, as real processes."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from proxies import Proxy, microsocks  # noqa: F401  (a fixture, used by name)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def calculator_endpoint():  # type: ignore[no-untyped-def]
    server = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "calculator" / "server.py"), "tcp:0:interface=127.0.0.1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    line = server.stdout.readline()
    assert line.startswith("listening on "), line
    yield "tcp:" + line.split()[-1]
    server.terminate()
    assert server.wait(30) == 0  # SIGTERM stops the reactor cleanly


@pytest.mark.parametrize(
    "style, expected",
    [
        ("deferred", ["add(1, 2) = 3", "scale(Vector(1, 2), 3) = Vector(x=3, y=6)", "ZeroDivisionError"]),
        ("asyncio", ["add(1, 2) = 3", "sum of squares of [1, 2, 3] = 14.0", "[0, 1, 4, 9]", "= 5.0"]),
        ("blocking", ["add(1, 2) = 3", "memory recalls 42", "ZeroDivisionError"]),
    ],
)
def test_calculator_clients(calculator_endpoint: str, style: str, expected: list[str]) -> None:
    script = EXAMPLES / "calculator" / f"client_{style}.py"
    out = subprocess.run([sys.executable, str(script), calculator_endpoint], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    for text in expected:
        assert text in out.stdout


def test_echo_demo() -> None:
    out = subprocess.run([sys.executable, str(EXAMPLES / "echo.py"), "demo"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "client <- 'hello'" in out.stdout


def _start(*args: str) -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    line = server.stdout.readline()
    assert line.startswith("listening on 127.0.0.1:"), line
    return server, line.split()[-1]


def test_echo_server_and_client() -> None:
    """``echo.py server`` under net.react: serves until SIGTERM, then exits 0."""
    server, address = _start(str(EXAMPLES / "echo.py"), "server", "tcp:0:interface=127.0.0.1")
    try:
        out = subprocess.run(
            [sys.executable, str(EXAMPLES / "echo.py"), "client", f"tcp:{address}", "hi", "there"],
            capture_output=True, text=True, timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines() == ["client -> 'hi'", "client <- 'hi'", "client -> 'there'", "client <- 'there'"]
    finally:
        server.terminate()
        stdout, _ = server.communicate(timeout=30)
    assert server.returncode == 0
    assert "server <- 'hi'" in stdout.splitlines()


def test_echo_over_a_unix_socket(tmp_path: Path) -> None:
    """``--listen``/``--connect`` take any endpoint: server and client over ``unix:``; the server
    removes its socket file when SIGTERM stops it."""
    path = tmp_path / "echo.sock"
    server = subprocess.Popen([sys.executable, str(EXAMPLES / "echo.py"), "server", "--listen", f"unix:{path}"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        assert server.stdout.readline() == f"listening on {path}\n"
        out = subprocess.run(
            [sys.executable, str(EXAMPLES / "echo.py"), "client", "--connect", f"unix:{path}", "over unix"],
            capture_output=True, text=True, timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines() == ["client -> 'over unix'", "client <- 'over unix'"]
    finally:
        server.terminate()
        stdout, _ = server.communicate(timeout=30)
    assert server.returncode == 0
    assert "server <- 'over unix'" in stdout.splitlines()
    assert list(tmp_path.iterdir()) == []


def test_echo_demo_over_unix_and_through_a_socks5_proxy(tmp_path: Path, microsocks: Proxy) -> None:  # noqa: F811
    """``demo --listen unix:...`` connects where it listens; ``--connect`` with ``{server}`` goes
    through a real SOCKS5 proxy (microsocks), whose log shows it connected to the echo server."""
    over_unix = subprocess.run(
        [sys.executable, str(EXAMPLES / "echo.py"), "demo", "--listen", f"unix:{tmp_path / 'demo.sock'}", "u"],
        capture_output=True, text=True, timeout=60,
    )
    assert over_unix.returncode == 0, over_unix.stderr
    assert "client <- 'u'" in over_unix.stdout.splitlines()
    proxied = subprocess.run(
        [sys.executable, str(EXAMPLES / "echo.py"), "demo", f"--connect={microsocks.spec('{server}')}", "via socks"],
        capture_output=True, text=True, timeout=60,
    )
    assert proxied.returncode == 0, proxied.stderr + microsocks.log()
    assert "client <- 'via socks'" in proxied.stdout.splitlines()
    listening = proxied.stdout.splitlines()[0]
    assert listening.startswith("listening on 127.0.0.1:"), proxied.stdout
    assert f"connected to {listening.split()[-1]}" in microsocks.log()  # the proxy made the connection


def test_echo_rejects_an_unknown_option() -> None:
    out = subprocess.run([sys.executable, str(EXAMPLES / "echo.py"), "demo", "--listne", "unix:/tmp/x"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "unknown option '--listne'; this mode takes --listen or --connect" in out.stderr


def test_servers_report_a_port_in_use_and_exit_1() -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        port = taken.getsockname()[1]
        out = subprocess.run(
            [sys.executable, str(EXAMPLES / "calculator" / "server.py"), f"tcp:{port}:interface=127.0.0.1"],
            capture_output=True, text=True, timeout=60,
        )
        echo = subprocess.run(
            [sys.executable, str(EXAMPLES / "echo.py"), "server", f"tcp:{port}:interface=127.0.0.1"],
            capture_output=True, text=True, timeout=60,
        )
    finally:
        taken.close()
    assert out.returncode == 1 and "cannot listen on" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert echo.returncode == 1 and "echo.py server:" in echo.stderr, echo.stderr


def test_a_client_that_cannot_connect_exits_1() -> None:
    """client_deferred.py runs under net.react: a failed connection is exit status 1, with why."""
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()  # nothing listens there now
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "calculator" / "client_deferred.py"), f"tcp:127.0.0.1:{port}"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 1
    assert "Traceback" in out.stderr and "Connection refused" in out.stderr, out.stderr
