"""AsyncioReactor specifics: embedded in a running asyncio program, own or borrowed loops, uvloop.

The backend-independent behaviour is covered by the other test_reactor_* modules through the
``reactor`` fixture; here pbroker code and asyncio code share one loop.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from typing import Any

import pytest

from net.asyncioreactor import AsyncioReactor
from net.defer import Deferred
from net.error import ReactorAlreadyRunning, ReactorNotRunning


def test_embedded_deferreds_and_tasks_share_the_loop() -> None:
    order: list[str] = []

    async def main() -> None:
        reactor = AsyncioReactor()
        assert reactor.loop is asyncio.get_running_loop()
        reactor.call_when_running(order.append, "running")
        await reactor.start()
        assert reactor.running

        d: Deferred[str] = Deferred()
        reactor.call_later(0.001, d.callback, "fired by call_later")

        async def waiter() -> None:
            order.append(await d)

        def reactor_step(i: int) -> None:
            order.append(f"reactor {i}")
            if i < 3:
                reactor.call_soon(reactor_step, i + 1)

        async def asyncio_steps() -> None:
            for i in range(4):
                order.append(f"asyncio {i}")
                await asyncio.sleep(0)

        reactor.call_soon(reactor_step, 0)
        await asyncio.gather(waiter(), asyncio_steps())
        while len(order) < 10:  # the reactor chain may still be going
            await asyncio.sleep(0)
        await reactor.shutdown()
        assert not reactor.running
        reactor.close()

    asyncio.run(main())
    assert order[0] == "running"
    assert "fired by call_later" in order
    reactor_steps = [i for i, x in enumerate(order) if x.startswith("reactor")]
    asyncio_steps = [i for i, x in enumerate(order) if x.startswith("asyncio")]
    assert len(reactor_steps) == len(asyncio_steps) == 4
    # Neither side ran all its steps before the other started: they interleave on one loop.
    assert reactor_steps[0] < asyncio_steps[-1] and asyncio_steps[0] < reactor_steps[-1]


def test_embedded_shutdown_waits_for_before_triggers() -> None:
    order: list[str] = []

    async def main() -> None:
        reactor = AsyncioReactor()
        gate: Deferred[None] = Deferred()
        reactor.add_system_event_trigger("before", "shutdown", lambda: gate)
        reactor.add_system_event_trigger("during", "shutdown", order.append, "during")
        reactor.add_system_event_trigger("after", "shutdown", order.append, "after")
        await reactor.start()
        work = reactor.defer_to_thread(threading.current_thread)
        assert await work is not threading.current_thread()

        async def open_gate() -> None:
            await asyncio.sleep(0)
            order.append("gate")
            gate.callback(None)

        task = asyncio.create_task(open_gate())
        await reactor.shutdown()
        await task
        assert reactor._pool is None  # stopped by its during-shutdown trigger
        await reactor.shutdown()  # a no-op once stopped
        reactor.close()

    asyncio.run(main())
    assert order == ["gate", "during", "after"]


def test_embedded_misuse() -> None:
    async def main() -> None:
        reactor = AsyncioReactor()
        with pytest.raises(ReactorNotRunning):
            reactor.stop()
        with pytest.raises(ReactorAlreadyRunning):
            reactor.run()  # the loop is already running: start()/shutdown() instead
        await reactor.start()
        with pytest.raises(ReactorAlreadyRunning):
            await reactor.start()
        reactor.stop()  # shutdown() then just waits for it to complete
        await reactor.shutdown()
        assert not reactor.running
        # start again after a shutdown
        await reactor.start()
        await reactor.shutdown()
        reactor.close()
        assert not reactor.loop.is_closed()  # borrowed, not ours to close

    asyncio.run(main())


def test_embedded_threads_and_failures() -> None:
    async def main() -> None:
        reactor = AsyncioReactor()
        await reactor.start()
        d: Deferred[int] = Deferred()
        threading.Thread(target=reactor.call_from_thread, args=(d.callback, 7)).start()
        assert await d == 7

        def broken() -> None:
            raise KeyError("from a thread")

        with pytest.raises(KeyError):
            await reactor.defer_to_thread(broken)
        await reactor.shutdown()
        reactor.close()

    asyncio.run(main())


def test_embedded_fd_callbacks() -> None:
    async def main() -> bytes:
        reactor = AsyncioReactor()
        await reactor.start()
        a, b = socket.socketpair()
        a.setblocking(False)
        got: Deferred[bytes] = Deferred()

        def readable() -> None:
            reactor.remove_reader(a.fileno())
            got.callback(a.recv(100))

        def writable() -> None:
            reactor.remove_writer(b.fileno())
            b.send(b"hello")

        try:
            reactor.add_reader(a.fileno(), readable)
            reactor.add_writer(b.fileno(), writable)
            return await got
        finally:
            a.close()
            b.close()
            await reactor.shutdown()
            reactor.close()

    assert asyncio.run(main()) == b"hello"


def test_fd_callback_errors_go_to_our_log(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        reactor = AsyncioReactor()
        a, b = socket.socketpair()
        done = asyncio.get_running_loop().create_future()

        def bad() -> None:
            reactor.remove_reader(a.fileno())
            reactor.call_soon(done.set_result, None)
            raise RuntimeError("bad reader")

        try:
            reactor.add_reader(a.fileno(), bad)
            b.send(b"x")
            await done
        finally:
            a.close()
            b.close()
            reactor.close()

    with caplog.at_level(logging.ERROR):
        asyncio.run(main())
    assert [r.name for r in caplog.records if r.exc_info] == ["net.reactor"]


def test_borrowed_loop_standalone(run: Any) -> None:
    loop = asyncio.new_event_loop()
    try:
        reactor = AsyncioReactor(loop=loop)
        d: Deferred[str] = Deferred()
        reactor.call_later(0.001, d.callback, "on the given loop")
        assert run(reactor, d) == "on the given loop"
        reactor.close()
        assert not loop.is_closed()
    finally:
        loop.close()


def test_owned_loop_is_closed() -> None:
    reactor = AsyncioReactor()
    reactor.close()
    assert reactor.loop.is_closed()
    reactor.close()  # idempotent


def test_uvloop_request(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("PBROKER_UVLOOP", "1")
    try:
        import uvloop  # type: ignore[import-not-found,unused-ignore]  # noqa: F401

        expected = "uvloop"
    except ImportError:
        expected = "asyncio"
    with caplog.at_level(logging.WARNING, logger="net.reactor"):
        reactor = AsyncioReactor()
    try:
        assert type(reactor.loop).__module__.split(".")[0] == expected
        if expected == "asyncio":
            assert "uvloop" in caplog.text
        reactor.call_when_running(reactor.stop)
        reactor.run()
    finally:
        reactor.close()
