"""examples/authservice run as its README says: real processes, a user file, dev certs, TLS."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "authservice"


def run(*args: str, password: str | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **({"PBROKER_PASSWORD": password} if password is not None else {})}
    return subprocess.run([sys.executable, *args], input=stdin, env=env, text=True, capture_output=True, timeout=60)


def test_authservice_example(tmp_path: Path) -> None:
    certs, users = str(tmp_path / "certs"), str(tmp_path / "users.db")
    assert run("-m", "net.tls", "make-dev-certs", certs).returncode == 0
    for user in ("alice", "bob"):
        added = run("-m", "cred.userfile", users, "add", user, "--password-stdin", stdin=f"{user}-pw\n")
        assert added.returncode == 0, added.stderr
    assert "alice-pw" not in Path(users).read_text()
    server = subprocess.Popen(
        [sys.executable, str(EXAMPLE / "server.py"), "--users", users, "--certs", certs, "--port", "0"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line.startswith("listening on "), line
        port = line.rsplit(":", 1)[1].strip()
        client = [str(EXAMPLE / "client.py"), "--certs", certs, "--host", "127.0.0.1", "--port", port]
        alice = run(*client, "alice", "--note", "buy milk", "--post", "hello", password="alice-pw")
        assert alice.returncode == 0, alice.stderr
        bob = run(*client, "bob", "--note", "call mum", "--post", "hi", stdin="bob-pw\n")  # password on stdin
        assert bob.returncode == 0, bob.stderr
        assert "bob's notes: ['call mum']" in bob.stdout
        assert "board as bob sees it: ['alice: hello', '(you): hi']" in bob.stdout
        again = run(*client, "alice", password="alice-pw")
        assert "alice's notes: ['buy milk']" in again.stdout
        assert "board as alice sees it: ['(you): hello', 'bob: hi']" in again.stdout
        wrong = run(*client, "alice", password="bob-pw")
        assert wrong.returncode == 1 and "login failed: invalid credentials" in wrong.stderr
    finally:
        server.terminate()
        assert server.wait(30) == 0
