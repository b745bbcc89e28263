"""The distribution as a user gets it: the wheel, installed into a fresh venv outside the checkout.

Once per module run (``installed``): the source tree is copied to a temporary directory (so the
build writes no ``build/`` or ``*.egg-info`` into the checkout), ``pip wheel`` builds the wheel
there with build isolation (``[build-system]`` as declared), and a new venv, far from the checkout,
gets that wheel with its dependencies, and mypy. Then, with the working directory
outside the checkout: the two command-line tools, a TLS + login server and a client of that venv,
and ``mypy --strict`` on a typed user program (which needs each package's ``py.typed``). Every
module of ``net``, ``broker`` and ``cred`` those processes import must come from the venv.

It needs pip to reach the package index (or its cache) and takes some seconds; it runs in
``make test`` unless skipped explicitly with ``PBROKER_SKIP_WHEEL=1``.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import broker
import cred
import net

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("net", "broker", "cred")

# Python's warnings print as "file:line: SomeWarning: ..." (setuptools' deprecations among them);
# pip's own notices as "DEPRECATION: ...". (distutils' lowercase "warning: build_py: ..." is chatter.)
WARNING_LINE = re.compile(r"\b\w+Warning: |(?i:deprecat)")


def clean_env() -> dict[str, str]:
    """The environment for the venv's processes: nothing that would point them at the checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP",
                                                            "VIRTUAL_ENV", "MYPYPATH", "PYTHONSAFEPATH")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def run(args: list[str | Path], cwd: Path, stdin: str | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], cwd=cwd, env=clean_env(), input=stdin, text=True,
                          capture_output=True, timeout=timeout)


@dataclass
class Installed:
    wheel: Path
    venv: Path
    python: Path
    site_packages: Path
    build_log: str
    install_log: str
    work: Path  # a scratch directory outside the checkout, the cwd of everything run in the venv


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    # The one switch that skips the wheel tests: nothing here skips them on its own.
    if os.environ.get("PBROKER_SKIP_WHEEL") == "1":
        pytest.skip("PBROKER_SKIP_WHEEL=1")
    base = tmp_path_factory.mktemp("wheel")
    assert not base.resolve().is_relative_to(ROOT)
    source = base / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "__pycache__", ".mypy_cache", ".pytest_cache", ".hypothesis", "*.egg-info",
        "build", "dist", "target", ".work"))
    dist = base / "dist"
    built = run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--wheel-dir", dist, source], cwd=base)
    assert built.returncode == 0, built.stdout + built.stderr
    wheels = list(dist.glob("pbroker-*.whl"))
    assert len(wheels) == 1, wheels

    venv = base / "venv"
    made = run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=base)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    # This interpreter's pip installs into the new venv (--python): no pip inside it to bootstrap.
    # Besides the wheel's own dependencies, mypy as the dev extra pins it (not all of that extra).
    with open(ROOT / "pyproject.toml", "rb") as f:
        dev = tomllib.load(f)["project"]["optional-dependencies"]["dev"]
    mypy = [requirement for requirement in dev if re.match(r"mypy\b", requirement)]
    added = run([sys.executable, "-m", "pip", "--python", python, "install", "-v", wheels[0], *mypy], cwd=base)
    assert added.returncode == 0, added.stdout + added.stderr
    where = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=base)
    work = base / "work"
    work.mkdir()
    yield Installed(wheels[0], venv, python, Path(where.stdout.strip()).resolve(),
                    built.stdout + built.stderr, added.stdout + added.stderr, work)


# -- the version: written once, in net/_version.py ------------------------------------------------


def test_versions_agree_with_the_installed_metadata() -> None:
    expected = importlib.metadata.version("pbroker")
    assert net.__version__ == broker.__version__ == cred.__version__ == expected
    for package in (net, broker, cred):
        assert "__version__" in package.__all__


def test_version_is_written_in_one_place() -> None:
    assert re.search(r'^__version__ = "[^"]+"$', (ROOT / "net" / "_version.py").read_text(), re.MULTILINE)
    with open(ROOT / "pyproject.toml", "rb") as f:
        pyproject = tomllib.load(f)
    assert "version" not in pyproject["project"] and "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "net._version.__version__"}


# -- the development install: a program outside the package directories type-checks ----------------


TYPED_PROGRAM = '''\
"""A user's typed program: it may use nothing mypy cannot see into."""

from __future__ import annotations

import broker
import broker.blocking
import cred
import net
from cred.credentials import UsernamePassword
from cred.portal import Portal, Realm
from cred.userfile import FileUserDatabase
from net.defer import Deferred
from net.reactor import make_reactor
from net.tls import DevCerts, make_dev_certs


class Calculator(broker.Root):
    def remote_add(self, a: int, b: int) -> int:
        return a + b


class User(broker.Avatar):
    def __init__(self, name: str) -> None:
        self.name = name

    def perspective_whoami(self) -> str:
        return self.name


def portal(users: str) -> Portal:
    return Portal(Realm(lambda avatar_id, mind: User(str(avatar_id))), [FileUserDatabase(users)])


def versions() -> list[str]:
    return [net.__version__, broker.__version__, cred.__version__]


def certs(directory: str) -> DevCerts:
    return make_dev_certs(directory)


def client(port: int, ca: str) -> Deferred[broker.RemoteReference]:
    reactor = make_reactor()
    limits = broker.Limits(call_timeout=30.0)
    return broker.login(reactor, f"tls:localhost:{port}:ca={ca}", UsernamePassword("alice", "pw"),
                        limits=limits)
'''

# Proof that mypy reads the packages' types instead of taking them as Any: these must be refused.
WRONG_PROGRAM = '''\
import broker
from net.reactor import make_reactor

version: int = broker.__version__
limits = broker.Limits(call_timeout="soon")
broker.connect(make_reactor())
'''


def mypy_strict(python: Path | str, directory: Path) -> tuple[subprocess.CompletedProcess[str],
                                                               subprocess.CompletedProcess[str]]:
    directory.mkdir(exist_ok=True)
    (directory / "program.py").write_text(TYPED_PROGRAM)
    (directory / "wrong.py").write_text(WRONG_PROGRAM)
    cache = ["--cache-dir", str(directory / ".mypy_cache")]
    good = run([python, "-m", "mypy", "--strict", *cache, "program.py"], cwd=directory)
    bad = run([python, "-m", "mypy", "--strict", *cache, "wrong.py"], cwd=directory)
    return good, bad


def assert_mypy_results(good: subprocess.CompletedProcess[str], bad: subprocess.CompletedProcess[str]) -> None:
    assert good.returncode == 0, good.stdout + good.stderr
    assert "Success: no issues found in 1 source file" in good.stdout
    assert bad.returncode == 1, bad.stdout + bad.stderr
    out = bad.stdout
    assert 'wrong.py:4: error: Incompatible types in assignment (expression has type "str", variable has type "int")' in out
    assert "wrong.py:5: error: Argument \"call_timeout\" to \"Limits\" has incompatible type" in out
    assert "wrong.py:6: error: Missing positional argument \"endpoint\"" in out
    assert "py.typed" not in out and "import-untyped" not in out


def test_dev_install_type_checks_a_program_outside_the_package_dirs(tmp_path: Path) -> None:
    # `make venv` installs editable_mode=compat: a path entry that mypy follows (not an import hook).
    assert not tmp_path.resolve().is_relative_to(ROOT)
    assert_mypy_results(*mypy_strict(sys.executable, tmp_path / "program"))


# -- the wheel ----------------------------------------------------------------------------------


def source_modules() -> set[str]:
    return {p.relative_to(ROOT).as_posix() for package in PACKAGES for p in (ROOT / package).rglob("*.py")
            if "__pycache__" not in p.parts}


@pytest.mark.wheel
def test_wheel_holds_every_subpackage_and_nothing_else(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
        dist_info = f"pbroker-{net.__version__}.dist-info"
        metadata = wheel.read(f"{dist_info}/METADATA").decode()
    assert installed.wheel.name == f"pbroker-{net.__version__}-py3-none-any.whl"
    assert source_modules() <= names  # net/tls/*.py among them
    assert "net/tls/__init__.py" in names and "net/tls/__main__.py" in names
    assert {f"{package}/py.typed" for package in PACKAGES} <= names
    assert f"{dist_info}/licenses/LICENSE" in names
    assert {name.split("/")[0] for name in names} == {*PACKAGES, dist_info}
    headers = metadata.split("\n\n", 1)[0].splitlines()
    assert f"Version: {net.__version__}" in headers
    assert "License-Expression: MIT" in headers
    assert "License-File: LICENSE" in headers
    assert "Classifier: Typing :: Typed" in headers
    assert "Classifier: Framework :: AsyncIO" in headers
    assert "Author: The pbroker authors" in headers
    assert any(h.startswith("Project-URL: Issues, https://") for h in headers)
    assert not any(h.startswith("Classifier: License ::") for h in headers)  # the SPDX expression says it


@pytest.mark.wheel
def test_build_and_install_print_no_warnings(installed: Installed) -> None:
    for log in (installed.build_log, installed.install_log):
        assert not [line for line in log.splitlines() if WARNING_LINE.search(line)]


ORIGINS = '''
import json, sys

def origins():
    return {name: getattr(module, "__file__", None) for name, module in sorted(sys.modules.items())
            if name.split(".")[0] in ("net", "broker", "cred")}
'''

SERVER = ORIGINS + '''
import broker
from cred.portal import Portal, Realm
from cred.userfile import FileUserDatabase
from net.reactor import make_reactor


class User(broker.Avatar):
    def __init__(self, name):
        self.name = name

    def perspective_whoami(self):
        return self.name

    def perspective_echo(self, value):
        return value


users, certs = sys.argv[1:3]
reactor = make_reactor()
portal = Portal(Realm(lambda avatar_id, mind: User(str(avatar_id))), [FileUserDatabase(users)])
d = broker.serve(reactor, f"tls:0:cert={certs}/server.pem:key={certs}/server.key:interface=127.0.0.1", portal)

def listening(port):
    print("modules " + json.dumps(origins()), flush=True)
    print(f"listening on {port.get_host().host}:{port.get_host().port}", flush=True)

def cannot_listen(failure):
    print(f"cannot listen: {failure.value}", flush=True)
    reactor.stop()

d.add_callbacks(listening, cannot_listen)
reactor.run()
'''

CLIENT = ORIGINS + '''
import importlib.metadata

import broker
import cred
import net
from cred.credentials import UsernamePassword
from net.reactor import make_reactor

host, port, ca, password = sys.argv[1:5]
reactor = make_reactor()
out = {}


def logged_in(avatar):
    d = avatar.call_remote("whoami")
    d.add_callback(lambda name: out.update(whoami=name))
    d.add_callback(lambda _: avatar.call_remote("echo", {"over": ["tls", 1]}))
    d.add_callback(lambda value: out.update(echo=value))
    d.add_both(disconnect, avatar)
    return d


def disconnect(result, avatar):
    avatar.session.disconnect()
    return result


def failed(failure):
    out["error"] = repr(failure.value)


d = broker.login(reactor, f"tls:{host}:{port}:ca={ca}", UsernamePassword("alice", password))
d.add_callback(logged_in)
d.add_errback(failed)
d.add_both(lambda _: reactor.stop())
reactor.call_later(60, reactor.stop)  # a hung login fails the test instead of hanging it
reactor.run()
out["versions"] = [net.__version__, broker.__version__, cred.__version__, importlib.metadata.version("pbroker")]
out["modules"] = origins()
print(json.dumps(out))
'''


def assert_from_venv(origins: dict[str, str | None], installed: Installed) -> None:
    assert origins
    for name, file in origins.items():
        assert file is not None, name
        path = Path(file).resolve()
        assert path.is_relative_to(installed.site_packages), (name, file)
        assert not path.is_relative_to(ROOT), (name, file)


@pytest.mark.wheel
def test_cli_tools_and_tls_login_from_the_installed_wheel(installed: Installed) -> None:
    work = installed.work / "service"
    work.mkdir()
    certs, users = work / "certs", work / "users.db"
    made = run([installed.python, "-m", "net.tls", "make-dev-certs", certs], cwd=work, timeout=60)
    assert made.returncode == 0, made.stderr
    assert {"ca.pem", "server.pem", "server.key"} <= {p.name for p in certs.iterdir()}
    added = run([installed.python, "-m", "cred.userfile", users, "add", "alice", "--password-stdin"],
                cwd=work, stdin="alice-pw\n", timeout=60)
    assert added.returncode == 0, added.stderr
    assert "alice" in users.read_text() and "alice-pw" not in users.read_text()

    (work / "server.py").write_text(SERVER)
    (work / "client.py").write_text(CLIENT)
    server = subprocess.Popen([str(installed.python), "server.py", str(users), str(certs)], cwd=work,
                              env=clean_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        modules_line = server.stdout.readline()
        assert modules_line.startswith("modules "), modules_line
        listening = server.stdout.readline()
        assert listening.startswith("listening on 127.0.0.1:"), listening
        port = listening.rsplit(":", 1)[1].strip()
        client = run([installed.python, "client.py", "localhost", port, certs / "ca.pem", "alice-pw"],
                     cwd=work, timeout=90)
        assert client.returncode == 0, client.stderr
        out = json.loads(client.stdout)
        assert "error" not in out, out["error"]
        assert out["whoami"] == "alice"
        assert out["echo"] == {"over": ["tls", 1]}
        assert out["versions"] == [net.__version__] * 4
        assert "net.tls" in out["modules"] and "cred.scram" in out["modules"]
        assert_from_venv(out["modules"], installed)
        server_modules = json.loads(modules_line.removeprefix("modules "))
        assert "cred.userfile" in server_modules and "net.tls" in server_modules
        assert_from_venv(server_modules, installed)
    finally:
        server.terminate()
        assert server.wait(30) == 0


@pytest.mark.wheel
def test_mypy_strict_on_a_user_program_against_the_installed_wheel(installed: Installed) -> None:
    assert_mypy_results(*mypy_strict(installed.python, installed.work / "typed"))
    where = run([installed.python, "-c", "import mypy, broker; print(mypy.__file__); print(broker.__file__)"],
                cwd=installed.work)
    for line in where.stdout.split():
        assert Path(line).resolve().is_relative_to(installed.site_packages), line
