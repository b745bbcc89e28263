"""Run the fuzz targets for a time budget each: ``python -m fuzz.run [--seconds N] [target ...]``.

Every target runs in its own subprocess (``python -m fuzz.fuzz_<target>``, atheris/libFuzzer)
on a *copy* of its checked-in seed corpus ``fuzz/corpus/<target>/``, so what the fuzzer adds to
its corpus never lands in the repository. Crash, timeout and out-of-memory inputs and each
target's log go to a temporary directory (``--workdir`` to choose it), which is kept, and
printed, when something failed. The exit status is 0 only if every target ran its budget out
without a finding.

``python -m fuzz.run --repro TARGET FILE...`` runs inputs straight through the target's
``TestOneInput`` without atheris: a plain Python traceback, usable under a debugger.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUZZ_DIR = ROOT / "fuzz"
CORPUS = FUZZ_DIR / "corpus"

#: Per-input time limit: a single input running longer is reported as a hang.
INPUT_TIMEOUT = 2
#: Memory limit of one fuzzing process.
RSS_LIMIT_MB = 1024
#: Largest input libFuzzer generates (its default; seeds may be larger).
MAX_LEN = 4096


def targets() -> list[str]:
    """Every ``fuzz/fuzz_<name>.py``, by name."""
    return sorted(p.stem.removeprefix("fuzz_") for p in FUZZ_DIR.glob("fuzz_*.py"))


@dataclasses.dataclass
class Result:
    target: str
    returncode: int
    seconds: float
    log: Path
    artifacts: list[Path]

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.artifacts

    def describe(self) -> str:
        if self.ok:
            return f"{self.target}: ok ({self.seconds:.0f} s, {_stats(self.log)})"
        kind = {77: "crash", 70: "timeout (an input ran over %d s)" % INPUT_TIMEOUT, -9: "killed"}.get(
            self.returncode, f"exit status {self.returncode}")
        lines = [f"{self.target}: FAILED: {kind}; log {self.log}"]
        for artifact in self.artifacts:
            lines.append(f"  input: {artifact}")
            lines.append(f"  reproduce: {sys.executable} -m fuzz.run --repro {self.target} {artifact}")
        return "\n".join(lines)


def _stats(log: Path) -> str:
    """The 'Done N runs' line libFuzzer ends with, if any."""
    for line in reversed(log.read_text(errors="replace").splitlines()):
        if line.startswith("Done "):
            return line.removeprefix("Done ")
    return "no summary"


def run_target(
    target: str,
    seconds: int,
    workdir: Path,
    *,
    command: list[str] | None = None,
    seeds: Path | None = None,
    extra_flags: Sequence[str] = (),
) -> Result:
    """Fuzz one target for ``seconds``; everything it writes goes under ``workdir/target``.

    ``command`` (default ``python -m fuzz.fuzz_<target>``) and ``seeds`` (default
    ``fuzz/corpus/<target>``) are for testing the runner itself.
    """
    base = workdir / target
    corpus, artifacts = base / "corpus", base / "artifacts"
    shutil.rmtree(base, ignore_errors=True)
    artifacts.mkdir(parents=True)
    seeds = CORPUS / target if seeds is None else seeds
    if seeds.is_dir():
        shutil.copytree(seeds, corpus)  # the working corpus: libFuzzer adds to it, never to seeds
    else:
        corpus.mkdir()
    log = base / "fuzz.log"
    argv = (command or [sys.executable, "-m", f"fuzz.fuzz_{target}"]) + [
        str(corpus),
        f"-max_total_time={seconds}",
        f"-timeout={INPUT_TIMEOUT}",
        f"-rss_limit_mb={RSS_LIMIT_MB}",
        f"-max_len={MAX_LEN}",
        f"-artifact_prefix={artifacts}{os.sep}",
        "-print_final_stats=1",
        *extra_flags,
    ]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    started = time.monotonic()
    with log.open("wb") as out:
        try:
            # Start-up (imports under instrumentation, loading the corpus) is not in the budget.
            returncode = subprocess.run(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                        stdout=out, stderr=subprocess.STDOUT,
                                        timeout=seconds + 120).returncode
        except subprocess.TimeoutExpired:
            returncode = -9
    found = sorted(p for p in artifacts.iterdir() if p.is_file())
    return Result(target, returncode, time.monotonic() - started, log, found)


def repro(target: str, files: list[str]) -> int:
    """Run inputs through ``TestOneInput`` in this process (no atheris); 1 if any fails."""
    sys.path.insert(0, str(ROOT))
    module = importlib.import_module(f"fuzz.fuzz_{target}")
    status = 0
    for name in files:
        paths = sorted(Path(name).iterdir()) if Path(name).is_dir() else [Path(name)]
        for path in paths:
            try:
                module.TestOneInput(path.read_bytes())
            except Exception:
                status = 1
                print(f"{path}: FAILED", file=sys.stderr)
                traceback.print_exc()
            else:
                print(f"{path}: ok")
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", metavar="target", help=f"default: all ({', '.join(targets())})")
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("FUZZ_SECONDS", 60)),
                        help="fuzzing time per target (default $FUZZ_SECONDS or 60)")
    parser.add_argument("--workdir", type=Path, help="where corpora, logs and crashes go (default: a new temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the workdir even if nothing was found")
    parser.add_argument("--repro", metavar="TARGET", help="run FILEs (or directories of them) through TARGET, no atheris")
    args, rest = parser.parse_known_args(argv)
    if args.repro:
        return repro(args.repro, args.targets + rest)
    unknown = [t for t in args.targets if t not in targets()]
    if unknown or rest:
        parser.error(f"unknown target or option: {' '.join(unknown + rest)}")
    try:
        import atheris  # noqa: F401
    except ImportError:
        print("atheris is not installed: pip install -e '.[fuzz]' (or make fuzz)", file=sys.stderr)
        return 2
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="pbroker-fuzz-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results = []
    for target in args.targets or targets():
        print(f"fuzzing {target} for {args.seconds} s ...", flush=True)
        result = run_target(target, args.seconds, workdir)
        print(result.describe(), flush=True)
        results.append(result)
    failed = [r for r in results if not r.ok]
    if failed:
        print(f"{len(failed)} of {len(results)} targets failed; everything is in {workdir}", file=sys.stderr)
        return 1
    if args.keep or args.workdir:
        print(f"corpora and logs: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
