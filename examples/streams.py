"""Streams (PROTOCOL.md §17, feature "streams"): a remote method returns an iterator, the caller
iterates, and neither side holds more than a window of items.

    .venv/bin/python examples/streams.py

``await root.call_remote("numbers", n)`` is a ``broker.RemoteStream``: ``async for`` over it
takes the items as they come, and the server pulls from its generator only as fast as the client
takes them (credit, 64 items or 1 MiB by default: ``Limits.stream_window_items`` /
``stream_window_bytes``). An error in the generator reaches the client after the items before
it; ``stream.cancel()`` (or ``aclose()``) stops the server's generator. A caller may pass an
iterator too: the server then consumes it. The blocking client iterates with a plain ``for``.

One process plays the server and the client, over loopback TCP, on one reactor.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import broker
from net.react import react

__all__ = ["Numbers", "main"]


class Numbers(broker.Root):
    def __init__(self) -> None:
        self.stopped_after: int | None = None

    def remote_numbers(self, n: int) -> Iterator[int]:
        """0 … n−1, made one at a time as the client asks for them."""
        return iter(range(n))

    def remote_squares(self) -> AsyncIterator[int]:
        """An endless async generator: only the client's cancel stops it."""
        async def squares() -> AsyncIterator[int]:
            i = 0
            try:
                while True:
                    yield i * i
                    i += 1
            finally:
                self.stopped_after = i
        return squares()

    def remote_countdown(self, start: int) -> Iterator[int]:
        """Counts down, then fails: the client sees every item, then the error."""
        yield from range(start, 0, -1)
        raise RuntimeError("lift-off failed")

    async def remote_total(self, items: broker.RemoteStream) -> int:
        """Sums a stream the client sends."""
        return sum([item async for item in items])


async def main(reactor: Any) -> None:
    numbers = Numbers()
    port = await broker.serve(reactor, "tcp:0:interface=127.0.0.1", numbers)
    root = await broker.connect(reactor, f"tcp:127.0.0.1:{port.get_host().port}")

    total = 0
    async for item in await root.call_remote("numbers", 100_000):
        total += item
    print(f"sum of 0..99999 = {total}")

    squares = await root.call_remote("squares")
    first = [await squares.next() for _ in range(5)]
    await squares.aclose()  # the server's generator is closed
    await root.call_remote("numbers", 0)  # one round trip: the cancel has arrived
    print(f"squares {first}: cancelled after 5 items (server stopped at {numbers.stopped_after})")

    seen: list[int] = []
    try:
        async for item in await root.call_remote("countdown", 3):
            seen.append(item)
    except broker.RemoteError as exc:
        print(f"countdown {seen}, then: {exc.message}")

    print(f"the server summed our stream: {await root.call_remote('total', iter(range(10)))}")
    root.session.disconnect()
    await port.stop_listening()


if __name__ == "__main__":
    react(main)
