"""A calculator service: remote methods returning values, Deferreds and coroutines, a per-client
memory handed out by reference, and a copyable argument.

    .venv/bin/python examples/calculator/server.py [ENDPOINT]   # default tcp:8800:interface=127.0.0.1

Prints ``listening on HOST:PORT`` once ready; Ctrl-C or SIGTERM stops it (``net.react``).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import broker  # noqa: E402
from net.defer import Deferred  # noqa: E402
from net.error import NetError  # noqa: E402
from net.react import react  # noqa: E402
from shared import Vector  # noqa: E402


class Memory(broker.Referenceable):
    """One client's memory register: a capability only that client holds."""

    def __init__(self) -> None:
        self.value = 0.0

    def remote_store(self, value: float) -> None:
        self.value = value

    def remote_recall(self) -> float:
        return self.value


class Calculator(broker.Root):
    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor

    def remote_add(self, a: float, b: float) -> float:
        return a + b

    def remote_divide(self, a: float, b: float) -> float:
        return a / b  # b == 0 reaches the caller as RemoteError("builtins.ZeroDivisionError")

    def remote_slow_square(self, x: float) -> Deferred[float]:
        """A Deferred result: the answer is sent when it fires."""
        d: Deferred[float] = Deferred()
        self.reactor.call_later(0.01, d.callback, x * x)
        return d

    async def remote_sum(self, numbers: list[float]) -> float:
        """A coroutine result: the sum of squares, awaiting a Deferred per number."""
        total = 0.0
        for n in numbers:
            total += await self.remote_slow_square(n)
        return total

    def remote_memory(self) -> Memory:
        return Memory()

    def remote_norm(self, v: Vector) -> float:
        return float((v.x**2 + v.y**2) ** 0.5)

    def remote_scale(self, v: Vector, k: float) -> Vector:
        return Vector(v.x * k, v.y * k)


async def serve(reactor: Any, endpoint: str = "tcp:8800:interface=127.0.0.1") -> None:
    """Serve a Calculator on ``endpoint`` until the reactor is stopped."""
    try:
        port = await broker.serve(reactor, endpoint, Calculator(reactor))
    except (NetError, OSError, ValueError) as exc:  # port taken, bad endpoint: say so, exit 1
        sys.exit(f"cannot listen on {endpoint}: {exc}")
    print(f"listening on {port.get_host().host}:{port.get_host().port}", flush=True)
    await Deferred()  # never fires: Ctrl-C or SIGTERM stops the reactor


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    react(serve, argv)


if __name__ == "__main__":
    main()
