"""The examples are documentation: run them as a user would, as real processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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
