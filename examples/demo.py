"""What ``make demo`` runs: one section per piece of pbroker, each working end to end.

A section is a function in :data:`DEMOS` (its docstring's first line is the heading); later demos
(calculator, login) append theirs. Servers run in their own process, as they would in real life,
and the client runs here. The reactor is ``make_reactor()``'s, so ``PBROKER_REACTOR`` applies.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import echo
from net.endpoints import client
from net.protocol import ClientFactory

__all__ = ["DEMOS", "start_server", "echo_demo", "main"]

HERE = Path(__file__).resolve().parent


def start_server(script: str, *args: str) -> tuple[subprocess.Popen[str], str]:
    """Start ``examples/<script> server ...``; wait for its "listening on HOST:PORT" line.

    Returns the process (its stdout is still ours to read) and the client endpoint to reach it.
    """
    process = subprocess.Popen(
        [sys.executable, str(HERE / script), "server", *args], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("listening on "):
        process.kill()
        raise SystemExit(f"{script} server did not start (said {line!r})")
    print(f"server process {process.pid}: {line.strip()}", flush=True)
    host, port = line.split()[-1].rsplit(":", 1)
    return process, f"tcp:{host}:{port}"


async def _echo_client(
    reactor: Any, endpoint: str, messages: list[str], server_says: IO[str]
) -> None:
    protocol = await client(reactor, endpoint).connect(ClientFactory.for_protocol(echo.EchoClient))
    for message in messages:
        reply = await protocol.echo(message)
        # The server printed what it heard before echoing it, so the line is already in the pipe.
        print(server_says.readline(), end="", flush=True)
        print(f"client <- {reply!r}", flush=True)
    protocol.transport.lose_connection()
    await protocol.closed


def echo_demo() -> None:
    """echo: the classic echo server, in its own process; this process is the client."""
    server, endpoint = start_server("echo.py", "tcp:0:interface=127.0.0.1")
    try:
        assert server.stdout is not None
        echo.run(_echo_client, endpoint, ["hello", "pbroker"], server.stdout)
    finally:
        server.terminate()  # SIGTERM stops its reactor cleanly
        server.wait()


DEMOS: list[Callable[[], None]] = [echo_demo]


def main() -> None:
    for demo in DEMOS:
        print(f"== {(demo.__doc__ or demo.__name__).splitlines()[0]}", flush=True)
        demo()
        print(flush=True)


if __name__ == "__main__":
    main()
