"""A calculator service: remote methods returning values, Deferreds and coroutines, a per-client
memory handed out by reference, and a copyable argument.

    python examples/calculator/server.py [endpoint]      # default tcp:8800

Prints ``listening on HOST:PORT`` once ready.
"""

from __future__ import annotations

import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import broker  # noqa: E402
from net.defer import Deferred, Failure  # noqa: E402
from net.reactor import make_reactor  # noqa: E402
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


def main(argv: list[str]) -> None:
    endpoint = argv[1] if len(argv) > 1 else "tcp:8800"
    reactor = make_reactor()
    d = broker.serve(reactor, endpoint, Calculator(reactor))
    d.add_callback(lambda port: print(f"listening on {port.get_host().host}:{port.get_host().port}", flush=True))

    def cannot_listen(failure: Failure) -> None:
        print(f"cannot listen: {failure.value}", file=sys.stderr)
        reactor.stop()

    d.add_errback(cannot_listen)
    reactor.run()


if __name__ == "__main__":
    main(sys.argv)
