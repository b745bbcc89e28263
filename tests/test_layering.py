"""The dependency direction of docs/ARCHITECTURE.md, checked on the source (what import-linter does).

net imports nothing of broker or cred; cred may use net.defer only; of broker, only broker/login.py
imports cred, and the sans-I/O core (wire, messages, tables, errors, flavors) imports no net but net.error
(exception classes only).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                names.add(".".join([*base, node.module] if node.module else base))
            elif node.module:
                names.add(node.module)
    return names


def sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def top(name: str) -> str:
    return name.split(".")[0]


@pytest.mark.parametrize("path", sources("net"), ids=lambda p: str(p.relative_to(ROOT)))
def test_net_imports_neither_broker_nor_cred(path: Path) -> None:
    assert not {top(m) for m in imported_modules(path)} & {"broker", "cred"}


@pytest.mark.parametrize("path", sources("cred"), ids=lambda p: str(p.relative_to(ROOT)))
def test_cred_imports_only_net_defer(path: Path) -> None:
    for module in imported_modules(path):
        assert top(module) != "broker", module
        if top(module) == "net":
            assert module == "net.defer", module


SANS_IO = ["wire.py", "messages.py", "tables.py", "errors.py", "flavors.py", "lifecycle.py", "diagnosis.py"]
#: The session layer: sans-I/O too, with Deferreds (pure, no reactor) to carry results.
SESSION = ["session.py", "failures.py", "pipelining.py", "cache.py", "streams.py"]


@pytest.mark.parametrize("name", SANS_IO)
def test_broker_core_is_sans_io(name: str) -> None:
    forbidden = {"net", "cred", "socket", "selectors", "asyncio", "threading"}
    # net.error is pure exception classes (no imports): broker errors extend them, e.g.
    # broker.ConnectionLost is a net.error.ConnectionLost.
    imported = {m for m in imported_modules(ROOT / "broker" / name) if m != "net.error"}
    if name == "wire.py":
        # The shared receive buffer is per thread (threading.local), so decoders in different
        # threads never share one; that is all of threading the codec may use.
        source = (ROOT / "broker" / name).read_text()
        assert set(re.findall(r"threading\.(\w+)", source)) == {"local"}
        imported.discard("threading")
    assert not {top(m) for m in imported} & forbidden


@pytest.mark.parametrize("path", sources("broker"), ids=lambda p: str(p.relative_to(ROOT)))
def test_only_login_imports_cred(path: Path) -> None:
    if path.name != "login.py":
        assert "cred" not in {top(m) for m in imported_modules(path)}


@pytest.mark.parametrize("name", SESSION)
def test_broker_session_is_sans_io(name: str) -> None:
    forbidden = {"net", "cred", "socket", "selectors", "asyncio", "threading"}
    imported = {m for m in imported_modules(ROOT / "broker" / name) if m not in ("net.error", "net.defer")}
    assert not {top(m) for m in imported} & forbidden
