"""What every fuzz target shares. Imports nothing from the project (see ``fuzz/__init__.py``).

Input layout used by the stream targets: one **control byte**, then the payload. The control
byte's low bits seed how the payload is split into chunks (0: one chunk, the whole payload), its
high bits pick target-specific options. Seeds written by ``fuzz/make_seeds.py`` follow it, so a
checked-in seed is ``control + valid input``.
"""

from __future__ import annotations

import contextlib
import random
import sys
from collections.abc import Callable, Iterator
from typing import Any

#: The packages whose code atheris instruments (coverage feedback and comparison hooks).
PACKAGES = ["net", "broker", "cred"]


def instrument(module_name: str) -> contextlib.AbstractContextManager[Any]:
    """Wrap a target's project imports: instrumented when the target runs as the fuzzer.

    Imported as a module (by ``fuzz.run --repro`` or the smoke test) nothing is instrumented and
    atheris need not be installed.
    """
    if module_name != "__main__":
        return contextlib.nullcontext()
    import atheris

    return atheris.instrument_imports(include=PACKAGES)


def chunks(payload: bytes, seed: int) -> Iterator[bytes]:
    """``payload`` whole (seed 0), or split at points chosen by ``seed`` (some chunks tiny)."""
    if seed == 0 or len(payload) < 2:
        if payload:
            yield payload
        return
    rng = random.Random(seed)
    position = 0
    while position < len(payload):
        # Mostly small pieces, so that headers and bodies get cut everywhere; now and then big.
        size = rng.choice((1, 1, 2, 3, 4, 5, 7, 16, rng.randint(1, len(payload))))
        yield payload[position : position + size]
        position += size


def main(test_one_input: Callable[[bytes], None]) -> None:
    """Run the fuzzer: ``python -m fuzz.fuzz_X [libFuzzer flags] [corpus dirs or input files]``."""
    import atheris

    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
