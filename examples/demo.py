"""What ``make demo`` runs: one section per piece of pbroker, each working end to end.

A section is a function in :data:`DEMOS` (its docstring's first line is the heading); later demos
(calculator, login) append theirs. Servers run in their own process, as they would in real life,
and the client runs here, on a reactor from ``net.react`` (so ``PBROKER_REACTOR`` applies).
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import echo
from net.endpoints import client
from net.protocol import ClientFactory
from net.react import react

__all__ = ["DEMOS", "start_server", "run_here", "echo_demo", "main"]

HERE = Path(__file__).resolve().parent


def start_server(script: str, *args: str) -> tuple[subprocess.Popen[str], str]:
    """Start ``examples/<script> args...``; wait for its "listening on HOST:PORT" line.

    Returns the process (its stdout is still ours to read) and the client endpoint to reach it.
    """
    process = subprocess.Popen(
        [sys.executable, str(HERE / script), *args], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("listening on "):
        process.kill()
        raise SystemExit(f"{script} server did not start (said {line!r})")
    print(f"server process {process.pid}: {line.strip()}", flush=True)
    host, port = line.split()[-1].rsplit(":", 1)
    return process, f"tcp:{host}:{port}"


def run_here(main: Callable[..., Any], *args: Any) -> None:
    """``net.react(main, args)`` in this process: return if it succeeded, else exit with its code."""
    try:
        react(main, args)
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise


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
    server, endpoint = start_server("echo.py", "server", "tcp:0:interface=127.0.0.1")
    try:
        assert server.stdout is not None
        run_here(_echo_client, endpoint, ["hello", "pbroker"], server.stdout)
    finally:
        server.terminate()  # SIGTERM stops its reactor cleanly
        server.wait()


def calculator_demo() -> None:
    """calculator: remote calls returning values, Deferreds, coroutines, references and copies."""
    server, endpoint = start_server("calculator/server.py", "tcp:0:interface=127.0.0.1")
    try:
        for style in ("deferred", "asyncio", "blocking"):
            print(f"-- client_{style}.py", flush=True)
            script = HERE / "calculator" / f"client_{style}.py"
            subprocess.run([sys.executable, str(script), endpoint], check=True, timeout=60)
    finally:
        server.terminate()
        server.wait()


def auth_demo() -> None:
    """authservice: SCRAM login over TLS; each user sees only their own notes, and a Viewable differs."""
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        certs, users = os.path.join(tmp, "certs"), os.path.join(tmp, "users.db")
        passwords = {"alice": "alice-secret", "bob": "bob-secret"}
        subprocess.run([sys.executable, "-m", "net.tls", "make-dev-certs", certs], check=True, stdout=subprocess.DEVNULL)
        for user, password in passwords.items():
            print(f"$ python -m cred.userfile users.db add {user} --password-stdin", flush=True)
            subprocess.run([sys.executable, "-m", "cred.userfile", users, "add", user, "--password-stdin"],
                           input=password + "\n", text=True, check=True)
        server, endpoint = start_server(
            "authservice/server.py", "--users", users, "--certs", certs, "--port", "0")
        port = endpoint.rsplit(":", 1)[1]
        try:
            for user, args in (("alice", ["--note", "buy milk", "--post", "hello board"]),
                               ("bob", ["--note", "call mum", "--post", "hi alice"]),
                               ("alice", [])):
                print(f"-- client.py {' '.join([user, *args])}", flush=True)
                subprocess.run(
                    [sys.executable, str(HERE / "authservice" / "client.py"), user, "--certs", certs,
                     "--host", "127.0.0.1", "--port", port, *args],
                    env={**os.environ, "PBROKER_PASSWORD": passwords[user]}, check=True, timeout=60)
            print("-- client.py bob, wrong password", flush=True)
            wrong = subprocess.run(
                [sys.executable, str(HERE / "authservice" / "client.py"), "bob", "--certs", certs,
                 "--host", "127.0.0.1", "--port", port],
                env={**os.environ, "PBROKER_PASSWORD": "guess"}, timeout=60)
            assert wrong.returncode == 1
        finally:
            server.terminate()
            server.wait()


DEMOS: list[Callable[[], None]] = [echo_demo, calculator_demo, auth_demo]


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for demo in DEMOS:
        print(f"== {(demo.__doc__ or demo.__name__).splitlines()[0]}", flush=True)
        demo()
        print(flush=True)


if __name__ == "__main__":
    main()
