"""The fuzz harness (fuzz/, ``make fuzz``) cannot rot: every seed passes every target, and every
target fuzzes for a couple of seconds under atheris without a finding.

A real finding fails here with the input and a command that reproduces it; see fuzz/README.md.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import importlib
import importlib.util
import logging
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # fuzz/ is a tree folder, not an installed package

from fuzz import run  # noqa: E402

TARGETS = run.targets()
SMOKE_SECONDS = 2

needs_atheris = pytest.mark.skipif(
    importlib.util.find_spec("atheris") is None,
    reason="atheris is not installed (it comes with the test extra on Linux x86_64; "
    "elsewhere: pip install -e '.[fuzz]')",
)


def _snapshot(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def test_every_target_has_seeds() -> None:
    assert set(TARGETS) == {"wire", "session", "scram", "userfile", "framers"}
    for target in TARGETS:
        assert any((run.CORPUS / target).iterdir()), f"fuzz/corpus/{target} is empty: python -m fuzz.make_seeds"


@pytest.mark.parametrize("target", TARGETS)
def test_seeds_pass_in_process(target: str) -> None:
    """Without atheris: each seed through TestOneInput (what ``fuzz.run --repro`` does)."""
    disabled_below = logging.root.manager.disable
    module = importlib.import_module(f"fuzz.fuzz_{target}")
    for seed in sorted((run.CORPUS / target).iterdir()):
        try:
            module.TestOneInput(seed.read_bytes())
        except Exception as exc:
            raise AssertionError(f"seed fuzz/corpus/{target}/{seed.name} fails") from exc
    # Imported, a target runs in its importer's process (this one): it must leave logging as it
    # found it (a logging.disable belongs under the target's ``if __name__ == "__main__":``).
    assert logging.root.manager.disable == disabled_below, f"fuzz/fuzz_{target}.py changed logging.disable"


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[run.Result, bool]]:
    """Every target fuzzed for SMOKE_SECONDS, two at a time; per target: result, seeds intact."""
    workdir = tmp_path_factory.mktemp("fuzz")

    def one(target: str) -> tuple[run.Result, bool]:
        before = _snapshot(run.CORPUS / target)
        result = run.run_target(target, SMOKE_SECONDS, workdir)
        return result, _snapshot(run.CORPUS / target) == before

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(TARGETS, pool.map(one, TARGETS)))


@needs_atheris
@pytest.mark.parametrize("target", TARGETS)
def test_target_fuzzes_briefly(target: str, smoke_runs: dict[str, tuple[run.Result, bool]]) -> None:
    result, seeds_intact = smoke_runs[target]
    log_tail = "\n".join(result.log.read_text(errors="replace").splitlines()[-40:])
    assert result.ok, f"{result.describe()}\n--- log tail ---\n{log_tail}"
    assert seeds_intact, "the fuzzer wrote into the checked-in seed corpus"
    assert "Done " in log_tail, "libFuzzer did not run to the end of its budget"


@needs_atheris
def test_runner_reports_a_crash(tmp_path: Path) -> None:
    """A target that raises fails the run, and its input lands in the workdir, not the repo."""
    script = tmp_path / "crashing_target.py"
    script.write_text(
        "import sys, atheris\n"
        "def test(data):\n"
        "    if data.startswith(b'boom'):\n"
        "        raise RuntimeError('found it')\n"
        "atheris.Setup(sys.argv, test)\n"
        "atheris.Fuzz()\n"
    )
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "crasher").write_bytes(b"boom!")
    result = run.run_target("selftest", 10, tmp_path / "work", command=[sys.executable, str(script)], seeds=seeds)
    assert not result.ok and result.returncode != 0
    assert [p.read_bytes() for p in result.artifacts] == [b"boom!"]
    assert all(tmp_path in p.parents for p in result.artifacts)
    assert "RuntimeError: found it" in result.log.read_text()
    assert _snapshot(seeds) == {"crasher": hashlib.sha256(b"boom!").hexdigest()}
    assert "--repro selftest" in result.describe()
