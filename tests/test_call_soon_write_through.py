"""The reactor's own call_soon queue, and the broker's send path without an extra loop turn (issue 13).

call_soon is a FIFO run once per loop iteration (not a timed call on the heap; ``loop.call_soon`` on
asyncio); a call made outside a receive is written through at once, and what follows it is coalesced
so calls issued together still leave in few writes. No timing assertions: the speed is in bench/.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

import broker
import broker.aio
from broker.protocol import FLUSH_FRAMES
from net.defer import Deferred, gather

from broker_pair import memory_pair, result_of


class Calculator(broker.Root):
    def remote_add(self, a: int, b: int) -> int:
        return a + b


# ---------------------------------------------------------------------------------- call_soon


def test_call_soon_is_not_a_timed_call(reactor: Any) -> None:
    reactor.call_soon(lambda: None)
    assert reactor.get_delayed_calls() == []


def test_call_soon_fifo_after_the_current_callback(reactor: Any, run: Any) -> None:
    order: list[Any] = []
    done: Deferred[None] = Deferred()

    def first() -> None:
        for i in range(100):
            reactor.call_soon(order.append, i)
        order.append("first returned")  # none of them ran synchronously
        reactor.call_soon(done.callback, None)

    reactor.call_soon(first)
    run(reactor, done)
    assert order == ["first returned", *range(100)]


def test_call_soon_runs_before_the_loop_waits(reactor: Any, run: Any) -> None:
    # A far-off timer is the loop's only other work: the wait must not last until it.
    order: list[str] = []
    done: Deferred[None] = Deferred()
    late = reactor.call_later(3600, order.append, "late")

    def chain(n: int) -> None:
        order.append(f"soon {n}")
        if n < 3:
            reactor.call_soon(chain, n + 1)
        else:
            done.callback(None)

    reactor.call_soon(chain, 0)
    run(reactor, done)
    late.cancel()
    assert order == ["soon 0", "soon 1", "soon 2", "soon 3"]


def test_call_soon_kwargs_and_cancel(reactor: Any, run: Any) -> None:
    got: list[Any] = []
    done: Deferred[None] = Deferred()
    reactor.call_soon(lambda *a, **kw: got.append((a, kw)), 1, 2, key="value")
    cancelled = reactor.call_soon(got.append, "cancelled")
    cancelled.cancel()
    reactor.call_soon(done.callback, None)
    run(reactor, done)
    assert got == [((1, 2), {"key": "value"})]
    cancelled.cancel()  # a no-op once cancelled (or run), as for an asyncio.Handle


def test_call_soon_errors_are_logged_not_fatal(reactor: Any, run: Any, caplog: pytest.LogCaptureFixture) -> None:
    ran: list[str] = []
    done: Deferred[None] = Deferred()

    def boom() -> None:
        raise RuntimeError("in call_soon")

    reactor.call_soon(boom)
    reactor.call_soon(ran.append, "after")
    reactor.call_soon(done.callback, None)
    with caplog.at_level(logging.ERROR, logger="net"):
        run(reactor, done)
    assert ran == ["after"]
    assert any(r.name == "net.reactor" and r.exc_info and str(r.exc_info[1]) == "in call_soon"
               for r in caplog.records)


def test_call_soon_and_call_from_thread_mix(reactor: Any, run: Any) -> None:
    # call_from_thread (the thread-safe one) still wakes a loop that has call_soon work too.
    import threading

    done: Deferred[list[int]] = Deferred()
    seen: list[int] = []

    def arrived(i: int) -> None:
        seen.append(i)
        reactor.call_soon(check)

    def check() -> None:
        if len(seen) == 50 and not done.called:
            done.callback(sorted(seen))

    def worker() -> None:
        for i in range(50):
            reactor.call_from_thread(arrived, i)

    thread = threading.Thread(target=worker)
    reactor.call_when_running(thread.start)
    assert run(reactor, done) == list(range(50))
    thread.join()


# ---------------------------------------------------------------------------------- write-through


def _count_writes(transport: Any) -> list[int]:
    sizes: list[int] = []
    write = transport.write

    def counting(data: bytes) -> None:
        sizes.append(len(data))
        write(data)

    transport.write = counting
    return sizes


def test_a_call_outside_a_receive_is_written_at_once() -> None:
    pair = memory_pair(Calculator())
    writes = _count_writes(pair.client_transport)
    pending = len(pair.clock.get_delayed_calls())
    d = pair.root.call_remote("add", 1, 2)
    assert len(writes) == 1  # written through: no call_soon, no loop turn
    assert len(pair.clock.get_delayed_calls()) == pending
    assert pair.result(d) == 3
    d = pair.root.call_remote("add", 2, 3)  # having heard the answer, the next goes through too
    assert len(writes) == 2
    assert pair.result(d) == 5


def test_calls_issued_together_are_coalesced() -> None:
    pair = memory_pair(Calculator())
    writes = _count_writes(pair.client_transport)
    calls = [pair.root.call_remote("add", i, 1) for i in range(100)]
    # The first goes through; the rest leave in FLUSH_FRAMES chunks and one scheduled flush.
    assert len(writes) == 1 + 99 // FLUSH_FRAMES
    pair.pump()
    assert len(writes) == 2 + 99 // FLUSH_FRAMES
    assert [result_of(d) for d in calls] == [i + 1 for i in range(100)]


def test_a_second_call_before_any_answer_waits_for_the_flush() -> None:
    pair = memory_pair(Calculator())
    writes = _count_writes(pair.client_transport)
    first = pair.root.call_remote("add", 1, 1)
    pair.clock.run_until_idle()  # a loop turn, but nothing heard from the server yet
    second = pair.root.call_remote("add", 2, 2)
    assert len(writes) == 1  # coalesced: scheduled
    pair.clock.run_until_idle()
    assert len(writes) == 2
    pair.pump()
    assert [result_of(d) for d in (first, second)] == [2, 4]


def test_no_write_through_while_the_transport_holds_unsent_bytes() -> None:
    pair = memory_pair(Calculator())
    writes = _count_writes(pair.client_transport)
    size = pair.client_transport.get_write_buffer_size

    pair.client_transport.get_write_buffer_size = lambda: 1  # type: ignore[method-assign]
    d = pair.root.call_remote("add", 1, 2)
    assert writes == []  # behind unsent bytes: coalesce, a flush is scheduled
    pair.client_transport.get_write_buffer_size = size  # type: ignore[method-assign]
    assert pair.result(d) == 3
    assert len(writes) == 1


# ---------------------------------------------------------------------------------- over TCP


def test_sequential_and_pipelined_over_tcp(reactor: Any, run: Any) -> None:
    async def main() -> tuple[list[int], list[int]]:
        port = await broker.serve(reactor, "tcp:0:interface=127.0.0.1", Calculator())
        try:
            root = await broker.connect(reactor, f"tcp:127.0.0.1:{port.get_host().port}")
            sequential = []
            for i in range(50):
                sequential.append(await root.call_remote("add", i, 1))
            pipelined = await gather(*[root.call_remote("add", i, 2) for i in range(100)])
            root.session.disconnect()
            return sequential, pipelined
        finally:
            await port.stop_listening()

    sequential, pipelined = run(reactor, main())
    assert sequential == [i + 1 for i in range(50)]
    assert pipelined == [i + 2 for i in range(100)]


def test_asyncio_tasks_call_outside_a_receive() -> None:
    # An asyncio task resumes after its answer's receive has returned: the write-through path.
    async def main() -> tuple[list[int], list[int]]:
        port = await broker.aio.serve("tcp:0:interface=127.0.0.1", Calculator())
        try:
            async with broker.aio.connect(f"tcp:127.0.0.1:{port.get_host().port}") as root:
                sequential = [await root.call_remote("add", i, 1) for i in range(50)]
                pipelined = await asyncio.gather(*[root.call_remote("add", i, 2) for i in range(100)])
                return sequential, list(pipelined)
        finally:
            await port.stop_listening()
            await (await broker.aio.get_reactor()).shutdown()

    sequential, pipelined = asyncio.run(main())
    assert sequential == [i + 1 for i in range(50)]
    assert pipelined == [i + 2 for i in range(100)]
