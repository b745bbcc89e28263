"""The calculator from a plain asyncio program.  .venv/bin/python examples/calculator/client_asyncio.py tcp:127.0.0.1:8800"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import broker  # noqa: E402
import broker.aio  # noqa: E402
from shared import Vector  # noqa: E402


async def main(endpoint: str) -> None:
    async with broker.aio.connect(endpoint) as root:
        print("add(1, 2) =", await root.call_remote("add", 1, 2))
        print("sum of squares of [1, 2, 3] =", await root.call_remote("sum", [1, 2, 3]))
        squares = await asyncio.gather(*(asyncio.ensure_future(_square(root, x)) for x in range(4)))
        print("slow_square over 0..3, concurrently =", squares)
        print("norm(Vector(3, 4)) =", await root.call_remote("norm", Vector(3, 4)))


async def _square(root: broker.RemoteReference, x: int) -> float:
    return await root.call_remote("slow_square", x)  # type: ignore[no-any-return]


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "tcp:127.0.0.1:8800"))
