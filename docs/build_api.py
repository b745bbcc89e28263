"""Build the HTML API reference from the docstrings with pdoc: ``python docs/build_api.py [OUTDIR]``.

Writes ``docs/api/`` by default (``make docs``). Every public module of ``net``, ``broker`` and
``cred`` gets a page, including those a package's ``__all__`` leaves out of its submodule list
(``broker.session``, ``cred.portal``, ...); private modules (``_name``) and ``__main__`` do not.

Fails (exit status 1) on any warning, so a broken annotation or docstring cannot slip in. The
output needs no network: math and mermaid (the only parts of pdoc's templates that load from a
CDN) stay off, and the search index is a local ``search.js``.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("net", "broker", "cred")
DEFAULT_OUTPUT = ROOT / "docs" / "api"


def public_modules(packages: tuple[str, ...] = PACKAGES) -> list[str]:
    """The dotted names of every module to document, packages first, in a stable order."""
    names: list[str] = []
    for package in packages:
        names.append(package)
        module = importlib.import_module(package)
        for info in pkgutil.walk_packages(module.__path__, f"{package}."):
            parts = info.name.split(".")
            if any(part.startswith("_") for part in parts):
                continue  # private modules and __main__
            names.append(info.name)
    return names


def _specs(modules: list[str]) -> list[str]:
    """``modules`` minus those pdoc adds by itself (a package brings the submodules in its __all__)."""
    from pdoc.extract import walk_specs

    specs: list[str] = []
    covered: set[str] = set()
    for name in modules:
        if name not in covered:
            specs.append(name)
            covered.update(walk_specs([name]))
    return specs


def build(output_directory: Path = DEFAULT_OUTPUT) -> list[str]:
    """Write the reference to ``output_directory``; return the warnings emitted (empty is good)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import pdoc
        import pdoc.render

        pdoc.render.configure(
            docformat="restructuredtext",
            math=False,  # would load MathJax from a CDN
            mermaid=False,  # would load mermaid from a CDN
            search=True,  # a local search.js, no network
            footer_text="pbroker",
        )
        pdoc.pdoc(*_specs(public_modules()), output_directory=Path(output_directory))
    return [f"{w.category.__name__}: {w.message}" for w in caught]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1 or (args and args[0].startswith("-")):
        print(__doc__.splitlines()[0], file=sys.stderr)
        return 2
    output = Path(args[0]) if args else DEFAULT_OUTPUT
    problems = build(output)
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    if problems:
        print(f"docs/build_api.py: {len(problems)} warning(s); fix the docstrings or annotations",
              file=sys.stderr)
        return 1
    print(f"API reference written to {output}/index.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
