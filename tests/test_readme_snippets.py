"""Every code block in README.md and examples/*/README.md runs as printed, against real servers.

Each fenced block is preceded (blank lines aside) by an annotation saying what to do with it::

    <!-- snippet: server -->                     start it in the background; it must print
                                                 "listening on 127.0.0.1:PORT" (stdout)
    <!-- snippet: server file="calc_server.py" -->   ... saved under that name first
    <!-- snippet: run expect="3" -->             run it; "3" must be a whole line of its stdout
    <!-- snippet: run exit="1" stderr="..." -->  expect exit status 1 and that line on stderr
    <!-- snippet: output -->                     its lines are printed by the previous run block
    <!-- snippet: skip reason="..." -->          not run (the reason is required)

``expect`` and ``stderr`` may be repeated. ``requires="java"`` (a command) or
``requires="some/path"`` (relative to the repository, or absolute) skips the block when missing.
A block without an annotation fails :func:`test_every_block_is_annotated`, so no unrun block
can be added. ``python`` blocks are run with this interpreter; ``sh`` blocks with ``bash -e``;
other languages may only be ``skip`` or ``output``.

The blocks of one README run in order, in a temporary directory that holds ``examples/`` and
``clients/`` (symlinks to the repository's) and a ``.venv/bin/python`` that runs this interpreter,
so commands work exactly as printed from the repository root without writing into it. The
well-known ports (:data:`PORTS`) are rewritten, in every block of a README alike, to free ports
chosen at run time, so a README may say ``8800`` and two runs never collide. A server block's
``listening on`` line must name 127.0.0.1 and its rewritten port. Servers get SIGTERM at the end
and must exit 0 (``net.react``'s clean stop). No sleeps: every wait is on a line of output.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest

ROOT = Path(__file__).resolve().parent.parent
READMES = [ROOT / "README.md", *sorted(ROOT.glob("examples/*/README.md"))]

#: Ports the READMEs may print; each is replaced by a free port at run time.
PORTS = ("8000", "8800", "8801")
KINDS = {"server", "run", "output", "skip"}
KEYS = {"expect", "stderr", "exit", "requires", "reason", "file"}
RUNNABLE = {"python": "python", "sh": "sh", "bash": "sh", "shell": "sh"}
TIMEOUT = 120

_FENCE = re.compile(r"^(?P<fence>```+|~~~+)\s*(?P<lang>[\w+-]*)\s*$")
_ANNOTATION = re.compile(r"^<!--\s*snippet:\s*(?P<kind>\w+)(?P<attrs>(?:\s+[\w-]+=\"[^\"]*\")*)\s*-->$")
_ATTR = re.compile(r"([\w-]+)=\"([^\"]*)\"")
_BARE_PYTHON = re.compile(r"(?<![\w/.-])python3?(?![\w.-])")


@dataclass
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    kind: str | None = None  # None: no annotation
    attrs: list[tuple[str, str]] = field(default_factory=list)
    problem: str | None = None  # a malformed annotation

    def where(self) -> str:
        path = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path
        return f"{path}:{self.line}"

    def values(self, key: str) -> list[str]:
        return [v for k, v in self.attrs if k == key]

    def value(self, key: str, default: str | None = None) -> str | None:
        found = self.values(key)
        return found[-1] if found else default


def parse(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file, with their annotations."""
    lines = path.read_text().splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, start = m.group("fence"), i
        i += 1
        body: list[str] = []
        while i < len(lines) and not (lines[i].startswith(fence) and lines[i].strip().strip(fence[0]) == ""):
            body.append(lines[i])
            i += 1
        i += 1  # the closing fence
        block = Block(path, start + 1, m.group("lang").lower(), "\n".join(body) + "\n")
        j = start - 1
        while j >= 0 and not lines[j].strip():
            j -= 1
        if j >= 0 and lines[j].lstrip().startswith("<!--") and "snippet" in lines[j]:
            a = _ANNOTATION.match(lines[j].strip())
            if a is None:
                block.problem = f"malformed annotation {lines[j].strip()!r}"
            else:
                block.kind = a.group("kind")
                block.attrs = _ATTR.findall(a.group("attrs"))
        blocks.append(block)
    return blocks


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(ROOT)) for p in paths]


# ---------------------------------------------------------------------------------- the rules


def check(block: Block) -> list[str]:
    """What is wrong with a block's annotation (empty: nothing)."""
    if block.problem:
        return [block.problem]
    if block.kind is None:
        return ["no <!-- snippet: ... --> annotation before it (every block must run, or say why not)"]
    problems = []
    if block.kind not in KINDS:
        problems.append(f"unknown kind {block.kind!r} (one of {sorted(KINDS)})")
    for key, _ in block.attrs:
        if key not in KEYS:
            problems.append(f"unknown key {key!r} (one of {sorted(KEYS)})")
    if block.kind == "skip" and not block.value("reason"):
        problems.append('skip needs reason="..."')
    if block.kind in ("server", "run") and block.lang not in RUNNABLE:
        problems.append(f"a {block.lang or 'plain'} block cannot be run; make it skip or output")
    if block.kind in ("server", "run") and RUNNABLE.get(block.lang) == "sh":
        if _BARE_PYTHON.search(block.text):
            problems.append("commands must use .venv/bin/python, not a bare python")
    if block.kind == "server" and RUNNABLE.get(block.lang) == "sh" and len(_commands(block.text)) != 1:
        problems.append("a server sh block is one command (with an optional trailing &)")
    if block.kind == "output" and (block.values("expect") or block.values("stderr")):
        problems.append("an output block is its own expectation")
    exit_code = block.value("exit", "0")
    if exit_code is not None and not exit_code.isdigit():
        problems.append(f"exit must be a number, not {exit_code!r}")
    return problems


def _commands(text: str) -> list[str]:
    """The command lines of a shell block (continuations joined, comments and blanks dropped)."""
    joined = re.sub(r"\\\n", " ", text)
    return [line for line in (ln.split(" #")[0].strip() for ln in joined.splitlines()) if line and not line.startswith("#")]


def test_the_readmes_have_runnable_blocks() -> None:
    assert (ROOT / "README.md") in READMES
    runnable = [b for path in READMES for b in parse(path) if b.kind in ("server", "run")]
    assert len(runnable) >= 8, [b.where() for b in runnable]


@pytest.mark.parametrize("path", READMES, ids=_ids(READMES))
def test_every_block_is_annotated(path: Path) -> None:
    problems = [f"{b.where()}: {p}" for b in parse(path) for p in check(b)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", READMES, ids=_ids(READMES))
def test_no_unfenced_commands(path: Path) -> None:
    """Indented (unfenced) code cannot be annotated: commands must be in fenced blocks."""
    inside = False
    bad = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if _FENCE.match(line):
            inside = not inside
        elif not inside and re.match(r"^( {4,}|\t)\S*(python|\.venv/|make |bash )", line):
            bad.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not bad, "\n".join(bad)


def test_the_parser_and_rules(tmp_path: Path) -> None:
    """The runner's own conventions, on a made-up README."""
    text = (
        "<!-- snippet: run expect=\"a b\" expect=\"c\" -->\n```python\nprint(1)\n```\n\n"
        "```sh\nls\n```\n"
        "<!-- snippet: skip -->\n```sh\nmake test\n```\n"
        "<!-- snippet: run -->\n\n```sh\npython -m x\n```\n"
        "<!-- snippet: server -->\n```sh\n.venv/bin/python a.py &\n.venv/bin/python b.py\n```\n"
        "<!-- snippet:run expect=3 -->\n```python\n```\n"
    )
    path = tmp_path / "README.md"
    path.write_text(text)
    blocks = parse(path)
    problems = [check(b) for b in blocks]
    assert [b.kind for b in blocks] == ["run", None, "skip", "run", "server", None]
    assert blocks[0].values("expect") == ["a b", "c"] and blocks[0].text == "print(1)\n"
    assert problems[0] == []
    assert "no <!-- snippet" in problems[1][0]
    assert problems[2] == ['skip needs reason="..."']
    assert problems[3] == ["commands must use .venv/bin/python, not a bare python"]
    assert problems[4] == ["a server sh block is one command (with an optional trailing &)"]
    assert "malformed" in problems[5][0]


# ---------------------------------------------------------------------------------- running


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):  # all open at once, so they differ
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _substitute(text: str, ports: dict[str, str]) -> str:
    return re.sub(r"(?<!\d)(" + "|".join(ports) + r")(?!\d)", lambda m: ports[m.group(1)], text)


def _workdir(tmp: Path) -> Path:
    """A stand-in for the repository root that writes nowhere in the repository."""
    for name in ("examples", "clients"):
        (tmp / name).symlink_to(ROOT / name, target_is_directory=True)
    python = tmp / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    return tmp


def _missing(block: Block) -> list[str]:
    missing = []
    for need in block.values("requires"):
        if "/" in need:
            if not (ROOT / need).exists():
                missing.append(need)
            elif need.startswith("clients/java/target/") and _stale(ROOT / need):
                missing.append(f"{need} newer than the Java sources (clients/java/build.sh compile)")
        elif shutil.which(need) is None:
            missing.append(need)
    return missing


def _stale(built: Path) -> bool:
    """A Java build output older than some Java source (run.sh would rebuild; we don't)."""
    try:
        when = built.stat().st_mtime
        return any(src.stat().st_mtime > when for src in (ROOT / "clients/java/src/main").rglob("*.java"))
    except OSError:  # a build is replacing files right now
        return True


def _argv(block: Block, text: str, workdir: Path, name: str) -> list[str]:
    if RUNNABLE[block.lang] == "python":
        script = workdir / (block.value("file") or f"{name}.py")
        script.write_text(text)
        return [sys.executable, script.name]
    script = workdir / f"{name}.sh"
    script.write_text(text)
    return ["bash", "-e", "-o", "pipefail", script.name]


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines()]


def _report(block: Block, text: str, stdout: str, stderr: str) -> str:
    return f"{block.where()}:\n{text}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"


class Server:
    """A server block, running: its stdout is read by a thread into a queue (lines, then None)."""

    def __init__(self, block: Block, argv: list[str], workdir: Path, env: dict[str, str], name: str) -> None:
        self.block = block
        self.stderr_path = workdir / f"{name}.stderr"
        with open(self.stderr_path, "w") as stderr:
            self.process = subprocess.Popen(
                argv, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True,
                start_new_session=True,  # a Ctrl-C in the terminal running pytest is not for it
            )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stdout: list[str] = []
        assert self.process.stdout is not None
        self.reader = threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True)
        self.reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.stdout.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def wait_listening(self) -> str:
        """The address of its ``listening on HOST:PORT`` line (fails if it exits first)."""
        while True:
            try:
                line = self.lines.get(timeout=TIMEOUT)
            except queue.Empty:
                pytest.fail(f"{self.block.where()}: no 'listening on' line within {TIMEOUT}s")
            if line is None:
                self.process.wait(TIMEOUT)
                pytest.fail(
                    f"{self.block.where()}: the server exited ({self.process.returncode}) before "
                    f"listening\n{''.join(self.stdout)}\n{self.stderr()}"
                )
            if line.startswith("listening on "):
                return line.split()[-1]

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(TIMEOUT)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self.reader.join(TIMEOUT)


def _commandline(block: Block, text: str) -> str:
    """A server sh block's one command, without its trailing ``&``, to ``exec``."""
    (command,) = _commands(text)
    return "exec " + re.sub(r"\s*&\s*$", "", command) + "\n"


@pytest.mark.parametrize("path", READMES, ids=_ids(READMES))
def test_readme_runs_as_printed(path: Path, tmp_path: Path) -> None:
    blocks = parse(path)
    bad = [b.where() for b in blocks if check(b)]
    if bad:
        pytest.fail(f"fix the annotations first (test_every_block_is_annotated): {bad}")
    workdir = _workdir(tmp_path)
    ports = dict(zip(PORTS, map(str, _free_ports(len(PORTS)))))
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("PBROKER_PASSWORD", None)
    servers: list[Server] = []
    skipped: list[str] = []
    ran = 0
    last_stdout: list[str] | None = None  # of the last run block; None: it was skipped
    try:
        for number, block in enumerate(blocks):
            name = f"snippet{number:02d}"
            text = _substitute(block.text, ports)
            if block.kind == "skip":
                continue
            if block.kind == "output":
                if last_stdout is None:  # its run block was skipped for a missing requirement
                    continue
                missing = [line for line in _lines(text) if line and line not in last_stdout]
                assert not missing, f"{block.where()}: not printed: {missing}\n" + "\n".join(last_stdout)
                continue
            missing_tools = _missing(block)
            if missing_tools:
                skipped.append(f"{block.where()} (needs {', '.join(missing_tools)})")
                last_stdout = None
                continue
            if block.kind == "server":
                last_stdout = None
                if RUNNABLE[block.lang] == "sh":
                    text = _commandline(block, text)
                server = Server(block, _argv(block, text, workdir, name), workdir, env, name)
                servers.append(server)
                address = server.wait_listening()
                host, port = address.rsplit(":", 1)
                assert host == "127.0.0.1", f"{block.where()}: listens on {address}, not loopback"
                assert port in ports.values(), f"{block.where()}: port {port} is not one the README printed"
                ran += 1
                continue
            out = subprocess.run(
                _argv(block, text, workdir, name), cwd=workdir, env=env,
                capture_output=True, text=True, timeout=TIMEOUT,
            )
            report = _report(block, text, out.stdout, out.stderr)
            assert out.returncode == int(block.value("exit", "0") or 0), report
            stdout, stderr = _lines(out.stdout), _lines(out.stderr)
            for line in block.values("expect"):
                assert line in stdout, f"expected the line {line!r}\n{report}"
            for line in block.values("stderr"):
                assert line in stderr, f"expected on stderr the line {line!r}\n{report}"
            last_stdout = stdout
            ran += 1
    finally:
        codes = [(server, server.stop()) for server in servers]
    for server, code in codes:
        report = _report(server.block, server.block.text, "".join(server.stdout), server.stderr())
        assert code == 0, f"server exited {code} on SIGTERM\n{report}"
        server_out = _lines("".join(server.stdout))
        for line in server.block.values("expect"):
            assert line in server_out, f"expected the server line {line!r}\n{report}"
    if not ran:
        pytest.skip("nothing to run here: " + ("; ".join(skipped) or "every block is skip/output"))
