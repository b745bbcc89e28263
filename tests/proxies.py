"""Real proxy servers for the tunnel tests, started on free loopback ports with generated configs.

The programs are Debian's (``bash scripts/system-deps.sh`` installs them; ``make test`` runs it):

* ``danted`` (package dante-server): SOCKS4 and SOCKS5, without authentication, or with
  ``socksmethod: username``, which checks the user name and password against the system's
  accounts, so :func:`dante_account` creates one (``useradd``; this needs root) and removes it;
* ``tinyproxy``: HTTP CONNECT, with ``BasicAuth`` or without;
* ``microsocks``: a second, independent SOCKS5, with ``-u``/``-P`` or without.

Each fixture is module-scoped (the programs are independent of the per-test reactors), waits until
the port accepts connections, and at teardown kills the whole process group it started (dante
forks helpers) and reaps it. A missing program skips the tests that need it, naming the package.
:class:`Proxy` knows how to write the endpoint string through itself.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

__all__ = [
    "Proxy",
    "free_port",
    "dante_account",
    "dante",
    "dante_auth",
    "tinyproxy",
    "tinyproxy_auth",
    "microsocks",
    "microsocks_auth",
]

#: The system account dante's username method checks is this and our pid; its comment marks it
#: as the suite's own.
DANTE_USER_PREFIX = "pbt-socks-"
DANTE_USER_COMMENT = "pbroker test suite account (tests/proxies.py), removed after the run"
STARTUP_SECONDS = 15.0


@dataclass
class Proxy:
    """A running proxy: ``kinds`` are the tunnel prefixes it speaks (``socks5``, ``connect``, ...)."""

    name: str
    kinds: tuple[str, ...]
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    user: str | None = None
    password: str | None = None
    host: str = "127.0.0.1"
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def kind(self) -> str:
        """The kind tests use by default (the first)."""
        return self.kinds[0]

    def spec(self, inner: str, kind: str | None = None, *, credentials: bool = True, **options: Any) -> str:
        """``KIND:host:port[:user=..:password=..][:options]:INNER`` through this proxy.

        ``credentials=False`` leaves out the proxy's user and password; ``options`` override them.
        """
        values: dict[str, Any] = {}
        if credentials and self.user is not None:
            values["user"] = self.user
            if self.password is not None:
                values["password"] = self.password
        values.update(options)
        opts = "".join(f":{key}={value}" for key, value in values.items() if value is not None)
        return f"{kind or self.kind}:{self.host}:{self.port}{opts}:{inner}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now (for a program's config file)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _program(name: str, package: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/local/sbin")
    if path is None:
        pytest.skip(f"{name} is not installed (Debian package {package}; `bash scripts/system-deps.sh` "
                    "installs it)")
    return path


def _start(name: str, kinds: tuple[str, ...], argv: list[str], port: int, workdir: Path,
           user: str | None = None, password: str | None = None) -> Proxy:
    """Start ``argv`` in its own process group, its output in a log file; wait for ``port``."""
    log_path = workdir / f"{name}.log"
    log = open(log_path, "wb")
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                               cwd=workdir, start_new_session=True)
    proxy = Proxy(name, kinds, port, process, log_path, user, password, _log=log)
    try:
        _wait_for_port(proxy)
    except BaseException:
        _stop(proxy)
        raise
    return proxy


def _wait_for_port(proxy: Proxy) -> None:
    """Until the port accepts a connection, or the program exits (then fail with its log)."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        if proxy.process.poll() is not None:
            raise RuntimeError(f"{proxy.name} exited with code {proxy.process.returncode} before "
                               f"listening on port {proxy.port}; its log:\n{proxy.log()}")
        try:
            socket.create_connection((proxy.host, proxy.port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{proxy.name} did not listen on port {proxy.port} within "
                                   f"{STARTUP_SECONDS:g}s; its log:\n{proxy.log()}") from None
            time.sleep(0.02)  # polling a third-party program's startup: there is no event to wait on


def _living(pgid: int) -> list[int]:
    """The processes of process group ``pgid`` still running, from /proc (zombies are dead: not
    counted; a helper orphaned when its parent exited is its new parent's, init's, to reap)."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as stat:
                    fields = stat.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue  # gone meanwhile
            if int(fields[2]) == pgid and fields[0] != b"Z":
                members.append(int(entry))
    return members


def _stop(proxy: Proxy) -> None:
    """Stop the program, reap it, and wait until nothing of its process group runs; close the log.

    SIGTERM goes to the leader only: dante's mother process then stops its helpers itself. What of
    the group outlives the leader (helpers still on their way out) gets SIGKILL until none runs.
    """
    process = proxy.process
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    deadline = time.monotonic() + 10
    while (left := _living(process.pid)) and time.monotonic() < deadline:  # the group is ours
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.01)  # processes that are not our children: there is nothing to wait on
    if proxy._log is not None:
        proxy._log.close()
        proxy._log = None


def _running(proxy: Proxy) -> Iterator[Proxy]:
    try:
        yield proxy
    finally:
        _stop(proxy)
    assert proxy.process.returncode is not None  # reaped
    assert not _living(proxy.process.pid), f"{proxy.name} left processes running: {_living(proxy.process.pid)}"


def _running_in(tmp_path_factory: pytest.TempPathFactory,
                start: Callable[[Path, str | None, str | None], Proxy], user: str | None = None) -> Iterator[Proxy]:
    """A fixture's body: ``start(workdir, user, password)`` in a fresh directory (with ``user``, a
    fresh password for it), then :func:`_running`."""
    password = secrets.token_urlsafe(9) if user is not None else None
    yield from _running(start(tmp_path_factory.mktemp("proxy"), user, password))


# -- dante ---------------------------------------------------------------------------------------------


def _dante_config(port: int, method: str, privileged: bool) -> str:
    users = "user.privileged: root\nuser.unprivileged: nobody\n" if privileged else ""
    return f"""\
logoutput: stderr
internal: 127.0.0.1 port = {port}
external: 127.0.0.1
clientmethod: none
socksmethod: {method}
{users}client pass {{
    from: 127.0.0.0/8 to: 0.0.0.0/0
}}
socks pass {{
    from: 127.0.0.0/8 to: 0.0.0.0/0
    command: connect
    protocol: tcp
}}
"""


def _start_dante(workdir: Path, method: str, user: str | None = None, password: str | None = None) -> Proxy:
    danted = _program("danted", "dante-server")
    port = free_port()
    config = workdir / f"danted-{method}.conf"
    # Checking passwords reads /etc/shadow, so with the username method dante keeps root for it.
    config.write_text(_dante_config(port, method, privileged=method == "username"))
    argv = [danted, "-f", str(config), "-N", "1", "-p", str(workdir / f"danted-{method}.pid")]
    kinds = ("socks5",) if method == "username" else ("socks5", "socks4")
    return _start(f"danted-{method}", kinds, argv, port, workdir, user, password)


def _remove_stale_accounts() -> None:
    """Accounts of this suite left by runs that died before their teardown (their pid is gone)."""
    for entry in pwd.getpwall():
        if entry.pw_gecos == DANTE_USER_COMMENT and entry.pw_name.startswith(DANTE_USER_PREFIX):
            pid = entry.pw_name[len(DANTE_USER_PREFIX):]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                subprocess.run(["userdel", entry.pw_name], check=False, capture_output=True)


@pytest.fixture(scope="session")
def dante_account() -> Iterator[tuple[str, str]]:
    """A system account (name, password) for dante's username method; created and removed here.

    Skips unless root: dante checks system accounts, and only root can make one. The name carries
    our pid, so runs at the same time do not share (and remove) one account.
    """
    if os.geteuid() != 0:
        pytest.skip("dante's username method checks system accounts; creating one needs root")
    for tool in ("useradd", "userdel", "chpasswd"):
        if shutil.which(tool) is None and shutil.which(tool, path="/usr/sbin:/sbin") is None:
            pytest.skip(f"{tool} is not available to create a test account for dante")
    _remove_stale_accounts()
    name = f"{DANTE_USER_PREFIX}{os.getpid()}"
    created = subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                              "--comment", DANTE_USER_COMMENT, name], capture_output=True)
    if created.returncode != 0:
        pytest.skip(f"useradd {name} failed: {created.stderr.decode(errors='replace').strip()}")
    password = secrets.token_urlsafe(12)
    try:
        subprocess.run(["chpasswd"], input=f"{name}:{password}\n".encode(), check=True, capture_output=True)
        yield name, password
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True)


@pytest.fixture(scope="module")
def dante(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    """dante without authentication: SOCKS5 and SOCKS4."""
    yield from _running(_start_dante(tmp_path_factory.mktemp("dante"), "none"))


@pytest.fixture(scope="module")
def dante_auth(tmp_path_factory: pytest.TempPathFactory, dante_account: tuple[str, str]) -> Iterator[Proxy]:
    """dante requiring a user name and password (SOCKS5, RFC 1929) of a system account."""
    user, password = dante_account
    yield from _running(_start_dante(tmp_path_factory.mktemp("dante-auth"), "username", user, password))


# -- tinyproxy -------------------------------------------------------------------------------------------


def _start_tinyproxy(workdir: Path, user: str | None = None, password: str | None = None) -> Proxy:
    program = _program("tinyproxy", "tinyproxy")
    port = free_port()
    config = workdir / "tinyproxy.conf"
    auth = f"BasicAuth {user} {password}\n" if user is not None else ""
    # No ConnectPort line: CONNECT to any port (with one, only the listed ports).
    config.write_text(f"Port {port}\nListen 127.0.0.1\nTimeout 30\nLogLevel Info\nMaxClients 64\n"
                      f"Allow 127.0.0.1\nDisableViaHeader Yes\n{auth}")
    return _start("tinyproxy" + ("-auth" if user else ""), ("connect",), [program, "-d", "-c", str(config)],
                  port, workdir, user, password)


@pytest.fixture(scope="module")
def tinyproxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    """tinyproxy without authentication: HTTP CONNECT."""
    yield from _running_in(tmp_path_factory, _start_tinyproxy)


@pytest.fixture(scope="module")
def tinyproxy_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    """tinyproxy requiring Basic proxy authentication (tinyproxy >= 1.11)."""
    yield from _running_in(tmp_path_factory, _start_tinyproxy, user="alice")


# -- microsocks ------------------------------------------------------------------------------------------


def _start_microsocks(workdir: Path, user: str | None = None, password: str | None = None) -> Proxy:
    program = _program("microsocks", "microsocks")
    port = free_port()
    argv = [program, "-i", "127.0.0.1", "-p", str(port)]
    if user is not None and password is not None:
        argv += ["-u", user, "-P", password]
    return _start("microsocks" + ("-auth" if user else ""), ("socks5",), argv, port, workdir, user, password)


@pytest.fixture(scope="module")
def microsocks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    """microsocks without authentication: SOCKS5."""
    yield from _running_in(tmp_path_factory, _start_microsocks)


@pytest.fixture(scope="module")
def microsocks_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    """microsocks requiring a user name and password (it then offers no other method)."""
    yield from _running_in(tmp_path_factory, _start_microsocks, user="bob")
