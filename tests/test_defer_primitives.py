"""net.defer's Twisted-style helpers: DeferredList/FirstError, race, DeferredLock,
DeferredSemaphore, DeferredQueue, inline_callbacks, Deferred.from_coroutine."""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any, Callable, Generator

import pytest

from deferred_results import failure_of, result_of
from net import defer
from net.defer import (
    CancelledError,
    Deferred,
    DeferredList,
    DeferredLock,
    DeferredQueue,
    DeferredSemaphore,
    Failure,
    FirstError,
    QueueOverflow,
    QueueUnderflow,
    ensure_deferred,
    fail,
    inline_callbacks,
    race,
    succeed,
)


@pytest.fixture
def unhandled(caplog: pytest.LogCaptureFixture) -> Callable[[], list[logging.LogRecord]]:
    caplog.set_level(logging.ERROR, logger="net.defer")

    def records() -> list[logging.LogRecord]:
        gc.collect()
        return [r for r in caplog.records if "Unhandled error in Deferred" in r.getMessage()]

    return records


def test_new_names_are_public() -> None:
    for name in [
        "DeferredList", "FirstError", "race", "DeferredLock", "DeferredSemaphore",
        "DeferredQueue", "QueueOverflow", "QueueUnderflow", "inline_callbacks",
        "set_debugging", "get_debugging",
    ]:
        assert name in defer.__all__, name
        assert hasattr(defer, name)


# -- DeferredList -------------------------------------------------------------------------------


def test_deferred_list_pairs_in_argument_order(unhandled: Callable[[], list[Any]]) -> None:
    a: Deferred[int] = Deferred()
    b: Deferred[int] = Deferred()
    dl = DeferredList([a, b, succeed(3)], consume_errors=True)
    assert not dl.called
    b.errback(KeyError("b"))
    assert not dl.called
    a.callback(1)
    (ok_a, ra), (ok_b, rb), (ok_c, rc) = result_of(dl)
    assert (ok_a, ra) == (True, 1) and (ok_c, rc) == (True, 3)
    assert ok_b is False and rb.check(KeyError)
    assert isinstance(dl, Deferred)
    assert result_of(b) is None  # consumed
    del a, b, dl, rb
    assert unhandled() == []


def test_deferred_list_without_consume_errors_leaves_member_failures() -> None:
    b: Deferred[int] = Deferred()
    dl = DeferredList([b])
    b.errback(KeyError("b"))
    assert result_of(dl)[0][0] is False
    assert failure_of(b).check(KeyError)  # still on b's chain


def test_deferred_list_empty_fires_at_once() -> None:
    assert result_of(DeferredList([])) == []
    assert not DeferredList([], fire_on_one_callback=True).called


def test_deferred_list_fire_on_one_callback() -> None:
    a: Deferred[int] = Deferred()
    b: Deferred[int] = Deferred()
    dl = DeferredList([a, b], fire_on_one_callback=True)
    b.callback(2)
    assert result_of(dl) == (2, 1)
    a.callback(1)  # later members still fire normally
    assert dl.result_list == [(True, 1), (True, 2)]


def test_deferred_list_fire_on_one_errback_gives_first_error() -> None:
    a: Deferred[int] = Deferred()
    b: Deferred[int] = Deferred()
    dl = DeferredList([a, b], fire_on_one_errback=True, consume_errors=True)
    b.errback(ValueError("bad b"))
    f = failure_of(dl)
    assert f.check(FirstError)
    err = f.value
    assert isinstance(err, FirstError)
    assert err.index == 1 and err.sub_failure.check(ValueError)
    assert "bad b" in str(err)
    assert err == FirstError(err.sub_failure, 1) and err != FirstError(err.sub_failure, 0)
    a.callback(1)


def test_deferred_list_cancel_cancels_members() -> None:
    a: Deferred[int] = Deferred()
    b: Deferred[int] = Deferred()
    dl = DeferredList([a, b], consume_errors=True)
    dl.cancel()
    results = result_of(dl)
    assert [ok for ok, _ in results] == [False, False]
    assert all(r.check(CancelledError) for _, r in results)


# -- race -------------------------------------------------------------------------------------


def test_race_first_success_wins_and_the_rest_are_cancelled(
    unhandled: Callable[[], list[Any]],
) -> None:
    cancelled: list[int] = []
    a: Deferred[int] = Deferred(lambda _: cancelled.append(0))
    b: Deferred[int] = Deferred(lambda _: cancelled.append(1))
    c: Deferred[int] = Deferred(lambda _: cancelled.append(2))
    r = race(a, b, c)
    a.errback(KeyError("a lost"))  # a failure is not a win
    assert not r.called
    b.callback(20)
    assert result_of(r) == (1, 20)
    assert cancelled == [2]
    del a, c
    assert unhandled() == []  # losers' failures consumed


def test_race_with_a_fired_member_wins_at_once() -> None:
    a: Deferred[int] = Deferred()
    r = race(a, succeed(5))
    assert result_of(r) == (1, 5)
    assert a.called  # cancelled


def test_race_all_fail_gives_exception_group() -> None:
    a: Deferred[int] = Deferred()
    b: Deferred[int] = Deferred()
    r = race(a, b)
    b.errback(KeyError("b"))
    a.errback(ValueError("a"))
    f = failure_of(r)
    assert isinstance(f.value, ExceptionGroup)
    assert [type(e) for e in f.value.exceptions] == [ValueError, KeyError]


def test_race_cancel_cancels_all() -> None:
    a: Deferred[int] = Deferred()
    b: Deferred[int] = Deferred()
    r = race(a, b)
    r.cancel()
    assert a.called and b.called
    assert failure_of(r).check(CancelledError)


def test_race_of_nothing_is_refused() -> None:
    with pytest.raises(ValueError):
        race()


def test_race_awaited_in_a_coroutine() -> None:
    a: Deferred[str] = Deferred()
    b: Deferred[str] = Deferred()

    async def coro() -> tuple[int, str]:
        return await race(a, b)

    d = ensure_deferred(coro())
    a.callback("a")
    assert result_of(d) == (0, "a")


# -- DeferredLock -------------------------------------------------------------------------------


def test_lock_fifo_and_release() -> None:
    lock = DeferredLock()
    first = lock.acquire()
    assert result_of(first) is lock and lock.locked
    second, third = lock.acquire(), lock.acquire()
    assert not second.called and not third.called
    lock.release()
    assert second.called and not third.called
    lock.release()
    assert third.called
    lock.release()
    assert not lock.locked
    with pytest.raises(RuntimeError):
        lock.release()


def test_lock_cancelled_waiter_gives_up_its_place() -> None:
    lock = DeferredLock()
    lock.acquire()
    waiting = lock.acquire()
    after = lock.acquire()
    waiting.cancel()
    assert failure_of(waiting).check(CancelledError)
    lock.release()
    assert after.called
    assert list(lock.waiting) == []


def test_lock_run_serialises_and_releases_on_failure() -> None:
    lock = DeferredLock()
    gate: Deferred[int] = Deferred()
    log: list[str] = []

    def first() -> Deferred[int]:
        log.append("first start")
        return gate

    def second(x: int) -> int:
        log.append(f"second {x}")
        raise ValueError("second failed")

    d1 = lock.run(first)
    d2 = lock.run(second, 2)
    assert log == ["first start"]
    gate.callback(1)
    assert result_of(d1) == 1
    assert failure_of(d2).check(ValueError)
    assert log == ["first start", "second 2"]
    assert not lock.locked


def test_lock_async_with_in_coroutines() -> None:
    lock = DeferredLock()
    gate: Deferred[None] = Deferred()
    log: list[str] = []

    async def worker(name: str, wait: Deferred[None] | None) -> None:
        async with lock:
            log.append(f"{name} in")
            if wait is not None:
                await wait
            log.append(f"{name} out")

    a = ensure_deferred(worker("a", gate))
    b = ensure_deferred(worker("b", None))
    assert log == ["a in"]
    gate.callback(None)
    assert log == ["a in", "a out", "b in", "b out"]
    result_of(a), result_of(b)


def test_lock_from_asyncio_tasks() -> None:
    async def main() -> list[str]:
        lock = DeferredLock()
        log: list[str] = []

        async def worker(name: str) -> None:
            async with lock:
                log.append(f"{name} in")
                fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                asyncio.get_running_loop().call_soon(fut.set_result, None)
                await fut
                log.append(f"{name} out")

        await asyncio.gather(worker("a"), worker("b"))
        return log

    assert asyncio.run(main()) == ["a in", "a out", "b in", "b out"]


# -- DeferredSemaphore --------------------------------------------------------------------------


def test_semaphore_tokens() -> None:
    sem = DeferredSemaphore(2)
    a, b, c = sem.acquire(), sem.acquire(), sem.acquire()
    assert a.called and b.called and not c.called and sem.tokens == 0
    sem.release()
    assert c.called and sem.tokens == 0
    sem.release()
    sem.release()
    assert sem.tokens == 2 == sem.limit
    with pytest.raises(RuntimeError):
        sem.release()
    with pytest.raises(ValueError):
        DeferredSemaphore(0)


def test_semaphore_run_limits_concurrency() -> None:
    sem = DeferredSemaphore(2)
    gates = [Deferred[int]() for _ in range(5)]
    running = 0
    peak = 0

    def job(i: int) -> Deferred[int]:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)

        def done(r: int) -> int:
            nonlocal running
            running -= 1
            return r

        return gates[i].add_callback(done)

    results = [sem.run(job, i) for i in range(5)]
    assert running == 2
    for i, g in enumerate(gates):
        g.callback(i * 10)
    assert [result_of(r) for r in results] == [0, 10, 20, 30, 40]
    assert peak == 2 and sem.tokens == 2


def test_semaphore_run_coroutine_function() -> None:
    sem = DeferredSemaphore(1)
    gate: Deferred[int] = Deferred()

    async def job() -> int:
        return await gate + 1

    first, second = sem.run(job), sem.run(job)
    assert not second.called
    gate.callback(1)
    assert result_of(first) == 2 and result_of(second) == 2


def test_semaphore_cancel_waiting_acquire() -> None:
    sem = DeferredSemaphore(1)
    sem.acquire()
    waiting = sem.acquire()
    waiting.cancel()
    assert failure_of(waiting).check(CancelledError)
    sem.release()
    assert sem.tokens == 1


# -- DeferredQueue ----------------------------------------------------------------------------


def test_queue_put_then_get_and_get_then_put() -> None:
    q: DeferredQueue[str] = DeferredQueue()
    q.put("a")
    q.put("b")
    assert result_of(q.get()) == "a"
    assert result_of(q.get()) == "b"
    g1, g2 = q.get(), q.get()
    q.put("c")
    assert result_of(g1) == "c" and not g2.called
    q.put("d")
    assert result_of(g2) == "d"


def test_queue_size_limit() -> None:
    q: DeferredQueue[int] = DeferredQueue(size=1)
    q.put(1)
    with pytest.raises(QueueOverflow):
        q.put(2)
    assert result_of(q.get()) == 1
    q.put(3)


def test_queue_backlog_limit_and_cancel() -> None:
    q: DeferredQueue[int] = DeferredQueue(backlog=1)
    g = q.get()
    with pytest.raises(QueueUnderflow):
        q.get()
    g.cancel()
    assert failure_of(g).check(CancelledError)
    g2 = q.get()  # room again
    q.put(5)
    assert result_of(g2) == 5


def test_queue_consumer_coroutine() -> None:
    q: DeferredQueue[int | None] = DeferredQueue()
    got: list[int] = []

    async def consumer() -> int:
        while True:
            item = await q.get()
            if item is None:
                return len(got)
            got.append(item)

    d = ensure_deferred(consumer())
    for i in range(3):
        q.put(i)
    q.put(None)
    assert result_of(d) == 3 and got == [0, 1, 2]


# -- inline_callbacks ---------------------------------------------------------------------------


def test_inline_callbacks_waits_and_returns() -> None:
    later: Deferred[int] = Deferred()

    @inline_callbacks
    def work(x: int) -> Generator[Any, Any, int]:
        a = yield succeed(x)
        b = yield later
        c = yield 5  # not a Deferred: sent straight back, as in Twisted
        return int(a + b + c)

    d = work(1)
    assert not d.called
    later.callback(10)
    assert result_of(d) == 16
    assert work.__name__ == "work"


def test_inline_callbacks_failures_thrown_in_and_out() -> None:
    @inline_callbacks
    def work() -> Generator[Any, Any, str]:
        try:
            yield fail(KeyError("k"))
        except KeyError:
            pass
        yield fail(ValueError("out"))
        return "unreached"

    assert failure_of(work()).check(ValueError)


def test_inline_callbacks_exception_before_first_yield() -> None:
    @inline_callbacks
    def work() -> Generator[Any, Any, None]:
        raise OSError("early")
        yield  # pragma: no cover

    assert failure_of(work()).check(OSError)


def test_inline_callbacks_needs_a_generator_function() -> None:
    def not_gen() -> int:
        return 1

    wrapped: Any = inline_callbacks(not_gen)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        wrapped()


def test_inline_callbacks_cancel_cancels_awaited_deferred() -> None:
    cancelled: list[Any] = []
    inner: Deferred[int] = Deferred(cancelled.append)

    @inline_callbacks
    def work() -> Generator[Any, Any, str]:
        try:
            yield inner
        except CancelledError:
            return "saw cancel"
        return "no"

    d = work()
    d.cancel()
    assert cancelled == [inner]
    assert result_of(d) == "saw cancel"  # it caught the CancelledError and returned

    other: Deferred[int] = Deferred()

    @inline_callbacks
    def uncaught() -> Generator[Any, Any, None]:
        yield other

    d2 = uncaught()
    d2.cancel()
    assert failure_of(d2).check(CancelledError)


def test_inline_callbacks_many_fired_yields_no_recursion() -> None:
    @inline_callbacks
    def work() -> Generator[Any, Any, int]:
        total = 0
        for i in range(10000):
            total += yield succeed(i)
        return total

    assert result_of(work()) == sum(range(10000))


def test_inline_callbacks_deferred_result_chains() -> None:
    inner: Deferred[int] = Deferred()

    @inline_callbacks
    def work() -> Generator[Any, Any, Deferred[int]]:
        yield None
        return inner

    d = work()
    assert not d.called or isinstance(d.result, Deferred)
    inner.callback(4)
    assert result_of(d) == 4


# -- Deferred.from_coroutine ----------------------------------------------------------------------


def test_from_coroutine() -> None:
    gate: Deferred[int] = Deferred()

    async def coro() -> int:
        return await gate * 2

    d = Deferred.from_coroutine(coro())
    gate.callback(21)
    assert result_of(d) == 42
    assert Deferred.from_coroutine(d) is d
