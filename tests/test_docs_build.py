"""The API reference builds from the docstrings without a warning, offline, with the key pages."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pdoc")

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("api")
    result = subprocess.run(
        [sys.executable, "-W", "default", str(ROOT / "docs" / "build_api.py"), str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", f"the build wrote to stderr (a warning?):\n{result.stderr}"
    return out


@pytest.mark.parametrize("page, names", [
    ("index.html", ["net", "broker", "cred"]),
    ("net/defer.html", ["Deferred", "Failure", "add_callback", "gather"]),
    ("net/reactor.html", ["make_reactor", "available_reactors"]),
    ("net/testing.html", ["connect_protocols", "MemoryTransport", "Pump"]),
    ("broker.html", ["serve", "connect", "Referenceable", "RemoteReference", "Limits"]),
    ("broker/session.html", ["Limits", "call_timeout", "max_outstanding_calls"]),
    ("broker/blocking.html", ["BlockingReference"]),
    ("cred/portal.html", ["Portal", "IRealm"]),
])
def test_page_documents_names(api: Path, page: str, names: list[str]) -> None:
    html = (api / page).read_text(encoding="utf-8")
    for name in names:
        assert name in html, f"{page} does not mention {name}"


def test_private_modules_have_no_page(api: Path) -> None:
    assert not (api / "net" / "_reactorbase.html").exists()
    assert not list(api.rglob("__main__.html"))


def test_needs_no_network(api: Path) -> None:
    """Nothing is loaded from elsewhere: no remote script, stylesheet or image (math/mermaid off)."""
    remote = re.compile(r"""<(?:script|link|img)\b[^>]*\b(?:src|href)\s*=\s*["']?(?:https?:)?//""", re.I)
    assert (api / "search.js").exists()
    for page in api.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert not remote.search(text), f"{page.relative_to(api)} loads a remote resource"
        assert "cdn.jsdelivr" not in text and "MathJax" not in text
