"""Tests for net.defer: chains, chaining, cancellation, unhandled-error logging, timeouts, coroutines,
asyncio interop, gather. No sleeps: time is a fake clock, asyncio tests use call_soon."""

from __future__ import annotations

import asyncio
import gc
import heapq
import logging
import traceback
from typing import Any, Callable

import pytest

from deferred_results import failure_of, result_of
from net import defer
from net.defer import (
    AlreadyCalledError,
    CancelledError,
    Deferred,
    Failure,
    ensure_deferred,
    fail,
    gather,
    maybe_deferred,
    succeed,
)


class FakeDelayedCall:
    def __init__(self, clock: FakeClock, when: float, f: Callable[..., Any], a: Any, kw: Any):
        self.clock, self.time, self.f, self.a, self.kw = clock, when, f, a, kw
        self.cancelled = self.called = False

    def active(self) -> bool:
        return not (self.cancelled or self.called)

    def cancel(self) -> None:
        assert self.active()
        self.cancelled = True

    def __lt__(self, other: FakeDelayedCall) -> bool:
        return self.time < other.time


class FakeClock:
    """Minimal call_later/advance clock (the real reactor lives elsewhere)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.calls: list[FakeDelayedCall] = []

    def call_later(self, delay: float, f: Callable[..., Any], *a: Any, **kw: Any) -> FakeDelayedCall:
        dc = FakeDelayedCall(self, self.now + delay, f, a, kw)
        heapq.heappush(self.calls, dc)
        return dc

    def advance(self, amount: float) -> None:
        self.now += amount
        while self.calls and self.calls[0].time <= self.now:
            dc = heapq.heappop(self.calls)
            if dc.active():
                dc.called = True
                dc.f(*dc.a, **dc.kw)


@pytest.fixture
def unhandled(caplog: pytest.LogCaptureFixture) -> Callable[[], list[logging.LogRecord]]:
    """Collect garbage, then return the 'Unhandled error in Deferred' records logged so far."""
    caplog.set_level(logging.ERROR, logger="net.defer")

    def records() -> list[logging.LogRecord]:
        gc.collect()
        return [
            r
            for r in caplog.records
            if r.name == "net.defer" and "Unhandled error in Deferred" in r.getMessage()
        ]

    return records


# -- callback chains ------------------------------------------------------------------------------


def test_callback_chain_passes_results_along() -> None:
    d: Deferred[int] = Deferred()
    seen: list[Any] = []
    d.add_callback(lambda r: r + 1).add_callback(lambda r, k: r * k, 10)
    d.add_callback(lambda r, *, extra: seen.append((r, extra)), extra="x")
    assert not d.called
    d.callback(1)
    assert d.called
    assert seen == [(20, "x")]
    assert d.result is None


def test_callbacks_added_after_firing_run_at_once() -> None:
    d = succeed(3)
    assert result_of(d.add_callback(lambda r: r * 2)) == 6


def test_exception_in_callback_goes_to_next_errback() -> None:
    d: Deferred[int] = Deferred()
    calls: list[str] = []

    def boom(_: Any) -> None:
        raise ValueError("boom")

    def handle(f: Failure) -> str:
        calls.append(f.get_error_message())
        f.trap(ValueError)
        return "recovered"

    d.add_callback(boom)
    d.add_callback(lambda r: calls.append("skipped"))
    d.add_errback(handle)
    d.add_callback(lambda r: calls.append(r))
    d.callback(0)
    assert calls == ["boom", "recovered"]


def test_errback_failure_propagates_until_handled(unhandled: Callable[[], list[Any]]) -> None:
    d: Deferred[Any] = Deferred()
    d.add_callback(lambda r: pytest.fail("callback ran on failure"))
    d.errback(KeyError("k"))
    f = failure_of(d)
    assert f.check(KeyError) is KeyError
    del d, f
    assert unhandled() == []


def test_add_callbacks_pairs_and_args() -> None:
    d: Deferred[Any] = Deferred()
    d.add_callbacks(
        lambda r, a, b=None: ("cb", r, a, b),
        lambda f, a: ("eb", a),
        callback_args=(1,),
        callback_kwargs={"b": 2},
        errback_args=(9,),
    )
    d.callback("x")
    assert result_of(d) == ("cb", "x", 1, 2)

    d2: Deferred[Any] = Deferred()
    d2.add_callbacks(lambda r: "cb", lambda f, a, k: ("eb", a, k, f.type), errback_args=(1,),
                     errback_kwargs={"k": 2})
    d2.errback(ValueError())
    assert result_of(d2) == ("eb", 1, 2, ValueError)


def test_add_both_sees_success_and_failure() -> None:
    seen: list[Any] = []
    succeed(1).add_both(seen.append)
    fail(ValueError("v")).add_both(lambda r: seen.append(type(r)))
    assert seen == [1, Failure]


def test_errback_returning_value_turns_into_success() -> None:
    d = fail(RuntimeError("x")).add_errback(lambda f: 42)
    assert result_of(d) == 42


def test_errback_with_no_argument_uses_current_exception() -> None:
    d: Deferred[Any] = Deferred()
    try:
        raise OSError("current")
    except OSError:
        d.errback()
    assert failure_of(d).check(OSError)


def test_callback_with_a_deferred_is_refused() -> None:
    with pytest.raises(TypeError):
        Deferred().callback(Deferred())


def test_callback_added_during_callback_runs_in_order() -> None:
    d: Deferred[int] = Deferred()
    order: list[str] = []

    def first(r: int) -> int:
        order.append("first")
        d.add_callback(lambda r: order.append("added") or r)
        return r

    d.add_callback(first).add_callback(lambda r: order.append("second") or r)
    d.callback(1)
    assert order == ["first", "second", "added"]


def test_callback_returning_its_own_deferred_fails() -> None:
    d: Deferred[Any] = Deferred()
    d.add_callback(lambda r: d)
    d.callback(1)
    assert failure_of(d).check(TypeError)


# -- firing twice, pause ----------------------------------------------------------------------


def test_firing_twice_raises() -> None:
    d: Deferred[int] = Deferred()
    d.callback(1)
    with pytest.raises(AlreadyCalledError):
        d.callback(2)
    with pytest.raises(AlreadyCalledError):
        d.errback(ValueError())
    e = fail(ValueError())
    e.add_errback(lambda f: None)
    with pytest.raises(AlreadyCalledError):
        e.callback(1)


def test_pause_and_unpause() -> None:
    d: Deferred[int] = Deferred()
    seen: list[int] = []
    d.add_callback(seen.append)
    d.pause()
    d.pause()
    d.callback(5)
    assert seen == []
    d.unpause()
    assert seen == []
    d.unpause()
    assert seen == [5]


def test_pause_from_inside_a_callback_stops_the_chain() -> None:
    d: Deferred[int] = Deferred()
    seen: list[Any] = []

    def pauser(r: int) -> int:
        d.pause()
        return r + 1

    d.add_callback(pauser).add_callback(seen.append)
    d.callback(1)
    assert seen == []
    d.add_callback(lambda r: seen.append("later"))
    d.unpause()
    assert seen == [2, "later"]


# -- chaining ---------------------------------------------------------------------------------


def test_callback_returning_unfired_deferred_pauses_chain() -> None:
    outer: Deferred[int] = Deferred()
    inner: Deferred[int] = Deferred()
    seen: list[Any] = []
    outer.add_callback(lambda r: inner).add_callback(seen.append)
    outer.callback(1)
    assert seen == [] and outer.paused
    assert "waiting on" in repr(outer)
    inner.callback(2)
    assert seen == [2]
    assert not outer.paused
    assert inner.result is None  # handed over


def test_callback_returning_fired_deferred_uses_its_result() -> None:
    d = succeed(1).add_callback(lambda r: succeed(r + 1))
    assert result_of(d) == 2


def test_inner_failure_continues_down_outer_chain(unhandled: Callable[[], list[Any]]) -> None:
    outer: Deferred[int] = Deferred()
    inner: Deferred[int] = Deferred()
    outer.add_callback(lambda r: inner)
    outer.callback(1)
    inner.errback(ZeroDivisionError("inner"))
    assert failure_of(outer).check(ZeroDivisionError)
    # Already-failed inner returned by a callback: handled by the outer chain too.
    d = succeed(0).add_callback(lambda r: fail(LookupError()))
    assert failure_of(d).check(LookupError)
    del outer, inner, d
    assert unhandled() == []


def test_chain_deferred() -> None:
    a: Deferred[int] = Deferred()
    b: Deferred[int] = Deferred()
    a.chain_deferred(b)
    a.callback(7)
    assert result_of(b) == 7


def test_inner_paused_when_returned_waits_for_unpause() -> None:
    inner = succeed(5)
    inner.pause()
    outer = succeed(1).add_callback(lambda r: inner)
    assert outer.paused
    inner.unpause()
    assert result_of(outer) == 5


def test_callbacks_added_to_outer_while_waiting_run_after() -> None:
    outer: Deferred[int] = Deferred()
    inner: Deferred[int] = Deferred()
    seen: list[Any] = []
    outer.add_callback(lambda r: inner)
    outer.callback(0)
    outer.add_callback(seen.append)
    inner.callback("i")
    assert seen == ["i"]


def test_inner_callbacks_added_after_handoff_see_none() -> None:
    # As in Twisted: once an inner Deferred's result has gone to the outer chain, it holds None.
    outer: Deferred[int] = Deferred()
    inner: Deferred[int] = Deferred()
    outer.add_callback(lambda r: inner)
    outer.callback(0)
    after: list[Any] = []
    inner.add_callback(after.append)
    inner.callback(3)
    assert after == [None]
    assert result_of(outer) == 3


def test_outer_paused_again_inside_chain_resumes_the_rest_of_inner() -> None:
    a: Deferred[int] = Deferred()
    b: Deferred[int] = Deferred()
    c: Deferred[int] = Deferred()
    seen: list[Any] = []
    a.add_callback(lambda r: b)  # a waits on b
    a.add_callback(lambda r: c)  # then on c
    a.add_callback(lambda r: seen.append(("a", r)))
    a.callback(0)
    b.add_callback(lambda r: seen.append(("b-after", r)))
    b.callback(1)
    assert seen == [("b-after", None)]
    c.callback(2)
    assert seen == [("b-after", None), ("a", 2)]


def test_deep_chain_of_deferreds_returning_deferreds_no_recursion() -> None:
    n = 10_000
    ds: list[Deferred[int]] = [Deferred() for _ in range(n)]
    for i in range(n - 1):
        ds[i].add_callback(lambda r, nxt=ds[i + 1]: nxt)
    for d in ds[:-1]:
        d.callback(0)  # each pauses waiting on the next
    final: list[Any] = []
    ds[0].add_callback(final.append)
    ds[-1].callback("bottom")
    assert final == ["bottom"]


def test_deep_chain_fired_inner_first_no_recursion() -> None:
    n = 10_000
    d: Deferred[int] = succeed(0)
    for i in range(n):
        d.add_callback(lambda r: succeed(r + 1))
    assert result_of(d) == n


def test_deep_chain_of_outers_each_waiting_on_next_built_lazily() -> None:
    # Each callback returns a new Deferred whose callback returns another, all unfired until the end.
    n = 10_000
    leaves: list[Deferred[int]] = []

    def make(level: int) -> Deferred[int]:
        d: Deferred[int] = Deferred()
        leaves.append(d)
        if level < n:
            d.add_callback(lambda r: make(level + 1))
        return d

    top = make(0)
    # Fire level by level: each firing creates the next level, waiting on it.
    i = 0
    while i < len(leaves):
        leaves[i].callback(i)
        i += 1
    assert result_of(top) == n


# -- cancellation -----------------------------------------------------------------------------


def test_cancel_without_canceller_errbacks_and_ignores_late_fire() -> None:
    d: Deferred[int] = Deferred()
    d.cancel()
    assert failure_of(d).check(CancelledError)
    d.callback(1)  # the operation finishing late: silently ignored
    with pytest.raises(AlreadyCalledError):
        d.callback(2)  # but only once


def test_cancel_with_canceller_that_fires() -> None:
    d: Deferred[str] = Deferred(lambda d: d.callback("cancelled-value"))
    d.cancel()
    assert result_of(d) == "cancelled-value"


def test_cancel_with_canceller_that_does_not_fire() -> None:
    calls: list[Deferred[Any]] = []
    d: Deferred[str] = Deferred(calls.append)
    d.cancel()
    assert calls == [d]
    assert failure_of(d).check(CancelledError)
    d.errback(RuntimeError("late"))  # ignored once


def test_cancel_already_called_is_noop() -> None:
    calls: list[Any] = []
    d: Deferred[int] = Deferred(calls.append)
    d.callback(1)
    d.cancel()
    assert calls == [] and result_of(d) == 1


def test_cancel_paused_chain_cancels_inner() -> None:
    inner_cancelled: list[Any] = []
    inner: Deferred[int] = Deferred(inner_cancelled.append)
    outer: Deferred[int] = Deferred()
    outer.add_callback(lambda r: inner)
    outer.callback(0)
    outer.cancel()
    assert inner_cancelled == [inner]
    assert failure_of(outer).check(CancelledError)


def test_cancel_deep_paused_chain_no_recursion() -> None:
    n = 10_000
    cancelled: list[Any] = []
    ds: list[Deferred[int]] = [Deferred() for _ in range(n - 1)]
    ds.append(Deferred(cancelled.append))
    for i in range(n - 1):
        ds[i].add_callback(lambda r, nxt=ds[i + 1]: nxt)
    for d in reversed(ds[:-1]):
        d.callback(0)
    ds[0].cancel()
    assert cancelled == [ds[-1]]
    assert failure_of(ds[0]).check(CancelledError)


# -- unhandled errors -------------------------------------------------------------------------


def test_unhandled_failure_logged_on_gc(unhandled: Callable[[], list[Any]]) -> None:
    def make() -> None:
        d: Deferred[int] = Deferred()

        def explode(_: Any) -> None:
            raise ValueError("nobody handles me")

        d.add_callback(explode)
        d.callback(1)

    make()
    records = unhandled()
    assert len(records) == 1
    text = records[0].getMessage()
    assert "ValueError: nobody handles me" in text
    assert "explode" in text  # traceback text, not just the message
    assert records[0].levelno == logging.ERROR


def test_handled_failure_not_logged(unhandled: Callable[[], list[Any]]) -> None:
    d = fail(ValueError("handled"))
    d.add_errback(lambda f: None)
    d2: Deferred[Any] = Deferred()
    d2.add_errback(lambda f: "ok")
    d2.errback(ValueError())
    del d, d2
    assert unhandled() == []


def test_failure_logged_when_handler_reraises(unhandled: Callable[[], list[Any]]) -> None:
    d = fail(KeyError("x"))
    d.add_errback(lambda f: f.trap(ValueError))
    del d
    assert len(unhandled()) == 1


def test_unhandled_failure_in_deferred_later_handled(unhandled: Callable[[], list[Any]]) -> None:
    d = fail(ValueError("late handler"))
    assert d._debug_info is not None
    d.add_errback(lambda f: None)
    del d
    assert unhandled() == []


def test_gc_logging_uses_no_deferred_del() -> None:
    assert not hasattr(Deferred, "__del__")
    assert Deferred().__class__.__slots__


# -- Failure ----------------------------------------------------------------------------------


def test_failure_captures_current_exception() -> None:
    def thrower() -> None:
        raise KeyError("key")

    try:
        thrower()
    except KeyError:
        f = Failure()
    assert f.type is KeyError
    assert isinstance(f.value, KeyError)
    assert f.check(ValueError, LookupError) is LookupError
    assert f.check(ValueError) is None
    assert "thrower" in f.tb_text
    assert f.get_traceback() == f.tb_text
    assert f.tb_text.rstrip().endswith("KeyError: 'key'")
    assert f.get_error_message() == "'key'"
    assert "KeyError" in repr(f)


def test_failure_trap() -> None:
    f = Failure(ValueError("v"))
    assert f.trap(TypeError, ValueError) is ValueError
    with pytest.raises(ValueError):
        f.trap(TypeError)


def test_failure_raise_exception_keeps_traceback() -> None:
    def thrower() -> None:
        raise RuntimeError("r")

    try:
        thrower()
    except RuntimeError:
        f = Failure()
    with pytest.raises(RuntimeError) as info:
        f.raise_exception()
    assert any(entry.name == "thrower" for entry in info.traceback)


def test_failure_outside_except_needs_argument() -> None:
    with pytest.raises(TypeError):
        Failure()


def test_failure_of_failure_is_equivalent() -> None:
    f = Failure(ValueError("x"))
    g = Failure(f)
    assert g.value is f.value and g.type is f.type
    assert Failure(ValueError).check(ValueError)  # an exception class is instantiated


def test_clean_failure_drops_frames_keeps_text() -> None:
    def thrower() -> None:
        raise IndexError("i")

    try:
        thrower()
    except IndexError:
        f = Failure()
    assert f.tb is not None
    f.clean_failure()
    assert f.tb is None and f.value.__traceback__ is None
    assert "thrower" in f.tb_text and "IndexError: i" in f.tb_text


def test_cleaned_text_matches_standard_format_with_chain() -> None:
    def inner() -> None:
        raise KeyError("inner")

    def outer() -> None:
        try:
            inner()
        except KeyError as e:
            raise ValueError("outer") from e

    try:
        outer()
    except ValueError as e:
        expected = "".join(traceback.format_exception(e))
        f = Failure()
    f.clean_failure()

    def strip_carets(text: str) -> list[str]:
        return [ln for ln in text.splitlines() if ln.strip(" ^~")]

    assert strip_carets(f.tb_text) == strip_carets(expected)
    assert "direct cause" in f.tb_text and "inner" in f.tb_text


def test_failure_without_traceback_has_text() -> None:
    f = Failure(ValueError("plain"))
    assert f.tb_text.strip() == "ValueError: plain"
    assert Failure(ValueError()).get_error_message() == "ValueError()"


def test_trap_reraise_keeps_the_same_failure() -> None:
    def thrower() -> None:
        raise KeyError("orig")

    d: Deferred[Any] = Deferred()
    d.add_callback(lambda r: thrower())
    d.add_errback(lambda f: f.trap(ValueError))
    d.callback(0)
    f = failure_of(d)
    assert "thrower" in f.tb_text


# -- add_timeout ------------------------------------------------------------------------------


def test_timeout_fires_timeout_error() -> None:
    clock = FakeClock()
    cancelled: list[Any] = []
    d: Deferred[int] = Deferred(cancelled.append)
    assert d.add_timeout(5, clock) is d
    clock.advance(4.9)
    assert not d.called
    clock.advance(0.2)
    assert cancelled == [d]
    f = failure_of(d)
    assert f.check(TimeoutError)
    assert isinstance(f.value, TimeoutError)
    assert "5" in str(f.value)
    assert isinstance(f.value.__cause__, CancelledError)
    d.callback(1)  # late result of the cancelled operation: ignored


def test_timeout_timer_cancelled_when_fired_first() -> None:
    clock = FakeClock()
    d: Deferred[int] = Deferred()
    d.add_timeout(5, clock)
    (dc,) = clock.calls
    d.callback(3)
    assert dc.cancelled
    assert result_of(d) == 3
    clock.advance(10)
    assert d.result == 3


def test_timeout_custom_on_timeout_cancel() -> None:
    clock = FakeClock()
    d: Deferred[int] = Deferred()
    d.add_timeout(1, clock, on_timeout_cancel=lambda result, t: ("timed out", t))
    clock.advance(1)
    assert result_of(d) == ("timed out", 1)


def test_timeout_cancels_chained_inner_operation() -> None:
    clock = FakeClock()
    inner_cancel: list[Any] = []
    inner: Deferred[int] = Deferred(inner_cancel.append)
    d = succeed(0).add_callback(lambda r: inner)
    d.add_timeout(2, clock)
    clock.advance(2)
    assert inner_cancel == [inner]
    assert failure_of(d).check(TimeoutError)


# -- coroutines: ensure_deferred ---------------------------------------------------------------


def test_ensure_deferred_awaits_fired_and_later_fired() -> None:
    later: Deferred[int] = Deferred()

    async def work() -> int:
        a = await succeed(1)
        b = await later
        return a + b

    d = ensure_deferred(work())
    assert not d.called
    later.callback(10)
    assert result_of(d) == 11


def test_ensure_deferred_returns_deferred_unchanged() -> None:
    d = succeed(1)
    assert ensure_deferred(d) is d
    assert Deferred.from_coroutine is ensure_deferred


def test_exception_in_coroutine_becomes_failure() -> None:
    async def work() -> None:
        raise ValueError("from coroutine")

    f = failure_of(ensure_deferred(work()))
    assert f.check(ValueError)
    assert "work" in f.tb_text


def test_failure_thrown_into_coroutine() -> None:
    later: Deferred[int] = Deferred()
    caught: list[Any] = []

    async def work() -> str:
        try:
            await fail(KeyError("sync"))
        except KeyError as e:
            caught.append(e)
        try:
            await later
        except ZeroDivisionError as e:
            caught.append(e)
        return "done"

    d = ensure_deferred(work())
    later.errback(ZeroDivisionError("later"))
    assert result_of(d) == "done"
    assert [type(e) for e in caught] == [KeyError, ZeroDivisionError]


def test_awaited_failure_counts_as_handled(unhandled: Callable[[], list[Any]]) -> None:
    later: Deferred[int] = Deferred()

    async def work() -> None:
        for d in (fail(KeyError()), later):
            try:
                await d
            except Exception:
                pass

    d = ensure_deferred(work())
    later.errback(ValueError())
    assert result_of(d) is None
    del later, d
    assert unhandled() == []


def test_nested_coroutines_and_deferreds() -> None:
    gate: Deferred[int] = Deferred()

    async def inner() -> int:
        return await gate * 2

    async def outer() -> int:
        return await ensure_deferred(inner()) + 1

    d = ensure_deferred(outer())
    gate.callback(5)
    assert result_of(d) == 11


def test_many_sync_awaits_in_a_loop_no_recursion() -> None:
    async def work() -> int:
        total = 0
        for i in range(20_000):
            total += await succeed(1)
        return total

    assert result_of(ensure_deferred(work())) == 20_000


def test_many_later_fired_awaits_no_recursion() -> None:
    ds: list[Deferred[int]] = [Deferred() for _ in range(5_000)]

    async def work() -> int:
        return sum([await d for d in ds])

    out = ensure_deferred(work())
    for d in ds:
        d.callback(1)
    assert result_of(out) == 5_000


def test_coroutine_returning_deferred_chains() -> None:
    async def work() -> Any:
        return succeed("x")

    assert result_of(ensure_deferred(work())) == "x"


def test_cancel_coroutine_cancels_awaited_deferred() -> None:
    awaited_cancelled: list[Any] = []
    awaited: Deferred[int] = Deferred(awaited_cancelled.append)
    seen: list[Any] = []

    async def work() -> int:
        try:
            return await awaited
        except CancelledError:
            seen.append("cancelled")
            raise

    d = ensure_deferred(work())
    d.cancel()
    assert awaited_cancelled == [awaited]
    assert seen == ["cancelled"]
    assert failure_of(d).check(CancelledError)


def test_cancel_coroutine_that_swallows_cancellation() -> None:
    awaited: Deferred[int] = Deferred()

    async def work() -> str:
        try:
            await awaited
        except CancelledError:
            return "swallowed"
        return "not reached"

    d = ensure_deferred(work())
    d.cancel()
    assert result_of(d) == "swallowed"


def test_cancel_coroutine_that_swallows_and_waits_again() -> None:
    first: Deferred[int] = Deferred()
    second: Deferred[int] = Deferred()

    async def work() -> int:
        try:
            await first
        except CancelledError:
            pass
        return await second

    d = ensure_deferred(work())
    d.cancel()
    assert failure_of(d).check(CancelledError)
    second.callback(1)  # the coroutine's late result is dropped, no AlreadyCalledError


def test_coroutine_awaiting_bad_value_fails() -> None:
    class Weird:
        def __await__(self) -> Any:
            yield "not a deferred"

    async def work() -> None:
        await Weird()

    assert failure_of(ensure_deferred(work())).check(RuntimeError)


def test_ensure_deferred_rejects_non_awaitable() -> None:
    with pytest.raises(TypeError):
        ensure_deferred(42)  # type: ignore[call-overload]


def test_ensure_deferred_of_custom_awaitable() -> None:
    gate: Deferred[int] = Deferred()

    class Wrapper:
        def __await__(self) -> Any:
            return (yield from gate.__await__())

    d = ensure_deferred(Wrapper())
    gate.callback(4)
    assert result_of(d) == 4


# -- maybe_deferred, succeed, fail ---------------------------------------------------------------


def test_maybe_deferred_variants() -> None:
    assert result_of(maybe_deferred(lambda a, b=0: a + b, 1, b=2)) == 3
    d = succeed(5)
    assert maybe_deferred(lambda: d) is d

    def raiser() -> None:
        raise OSError("os")

    assert failure_of(maybe_deferred(raiser)).check(OSError)
    assert failure_of(maybe_deferred(lambda: Failure(KeyError()))).check(KeyError)

    async def coro(x: int) -> int:
        return x * 3

    assert result_of(maybe_deferred(coro, 2)) == 6


def test_fail_inside_except_uses_current_exception() -> None:
    try:
        {}["missing"]
    except KeyError:
        d = fail()
    assert failure_of(d).check(KeyError)


# -- gather ------------------------------------------------------------------------------------


def test_gather_success_in_order() -> None:
    a: Deferred[int] = Deferred()
    b: Deferred[int] = Deferred()
    g = gather(a, succeed(2), b)
    b.callback(3)
    assert not g.called
    a.callback(1)
    assert result_of(g) == [1, 2, 3]
    assert result_of(a) == 1  # members keep their results


def test_gather_empty() -> None:
    assert result_of(gather()) == []


def test_gather_first_failure(unhandled: Callable[[], list[Any]]) -> None:
    a: Deferred[int] = Deferred()
    b: Deferred[int] = Deferred()
    g = gather(a, b)
    b.errback(ValueError("b failed"))
    f = failure_of(g)
    assert f.check(ValueError) and str(f.value) == "b failed"
    a.errback(KeyError("a failed later"))
    assert g.result is None  # consumed by failure_of; the later failure does not re-fire g
    assert isinstance(a.result, Failure) and isinstance(b.result, Failure)
    del a, b, g, f
    # Without consume_errors the members' failures are still theirs: both logged.
    assert len(unhandled()) == 2


def test_gather_consume_errors(unhandled: Callable[[], list[Any]]) -> None:
    a: Deferred[int] = Deferred()
    b: Deferred[int] = Deferred()
    g = gather(a, b, consume_errors=True)
    a.errback(ValueError("a"))
    b.errback(KeyError("b"))
    assert failure_of(g).check(ValueError)
    assert a.result is None and b.result is None
    del a, b, g
    assert unhandled() == []


def test_gather_cancel_cancels_members(unhandled: Callable[[], list[Any]]) -> None:
    cancelled: list[Any] = []
    a: Deferred[int] = Deferred(cancelled.append)
    b: Deferred[int] = Deferred(cancelled.append)
    g = gather(a, b)
    g.cancel()
    assert cancelled == [a, b]
    assert failure_of(g).check(CancelledError)
    del a, b, g
    assert unhandled() == []


def test_gather_awaited_in_coroutine() -> None:
    a: Deferred[int] = Deferred()

    async def work() -> list[int]:
        return await gather(a, succeed(2))

    d = ensure_deferred(work())
    a.callback(1)
    assert result_of(d) == [1, 2]


# -- asyncio interop ----------------------------------------------------------------------------


def test_asyncio_task_awaits_deferred_fired_via_call_soon() -> None:
    async def main() -> int:
        loop = asyncio.get_running_loop()
        d: Deferred[int] = Deferred()
        loop.call_soon(d.callback, 41)
        value = await d
        already = await succeed(1)
        return value + already

    assert asyncio.run(main()) == 42


def test_asyncio_task_awaits_failing_deferred() -> None:
    async def main() -> str:
        loop = asyncio.get_running_loop()
        d: Deferred[int] = Deferred()
        loop.call_soon(d.errback, ValueError("async fail"))
        try:
            await d
        except ValueError as e:
            return str(e)
        return "no"

    assert asyncio.run(main()) == "async fail"


def test_asyncio_task_awaits_ensure_deferred() -> None:
    async def inner(d: Deferred[int]) -> int:
        return await d + 1

    async def main() -> int:
        loop = asyncio.get_running_loop()
        d: Deferred[int] = Deferred()
        loop.call_soon(d.callback, 1)
        return await ensure_deferred(inner(d))

    assert asyncio.run(main()) == 2


def test_ensure_deferred_awaits_asyncio_future_and_task() -> None:
    async def helper() -> int:
        await asyncio.sleep(0)
        return 5

    async def driven() -> int:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[int] = loop.create_future()
        loop.call_soon(fut.set_result, 10)
        a = await fut
        b = await asyncio.ensure_future(helper())  # a task, runs on the loop
        c = await helper()  # plain asyncio coroutine, driven by us (bare yield)
        return a + b + c

    async def main() -> int:
        return await ensure_deferred(driven())

    assert asyncio.run(main()) == 20


def test_task_created_inside_driven_coroutine_awaits_deferred() -> None:
    # A task created while ensure_deferred's driver runs must not inherit "driven" state.
    async def in_task(d: Deferred[int]) -> int:
        return await d

    async def driven() -> int:
        loop = asyncio.get_running_loop()
        d: Deferred[int] = Deferred()
        task = loop.create_task(in_task(d))
        loop.call_soon(d.callback, 9)
        return await task

    async def main() -> int:
        return await ensure_deferred(driven())

    assert asyncio.run(main()) == 9


def test_as_future_result_and_failure() -> None:
    async def main() -> tuple[int, str]:
        loop = asyncio.get_running_loop()
        d: Deferred[int] = Deferred()
        fut = d.as_future(loop)
        loop.call_soon(d.callback, 3)
        value = await fut
        e: Deferred[int] = Deferred()
        fut2 = e.as_future()
        e.errback(KeyError("k"))
        try:
            await fut2
        except KeyError as exc:
            return value, str(exc)
        return value, ""

    assert asyncio.run(main()) == (3, "'k'")


def test_as_future_cancel_future_cancels_deferred(unhandled: Callable[[], list[Any]]) -> None:
    cancelled: list[Any] = []

    async def main() -> Deferred[int]:
        d: Deferred[int] = Deferred(cancelled.append)
        fut = d.as_future()
        fut.cancel()
        await asyncio.sleep(0)  # let the done callback run
        await asyncio.sleep(0)
        return d

    d = asyncio.run(main())
    assert cancelled == [d]
    assert d.called and d.result is None  # CancelledError consumed by the future side
    del d
    assert unhandled() == []


def test_as_future_deferred_cancelled_becomes_asyncio_cancelled() -> None:
    async def main() -> str:
        d: Deferred[int] = Deferred()
        fut = d.as_future()
        d.cancel()
        assert fut.cancelled()
        try:
            await fut
        except asyncio.CancelledError:
            return "asyncio-cancelled"
        return "no"

    assert asyncio.run(main()) == "asyncio-cancelled"


def test_task_cancel_while_awaiting_deferred_cancels_it() -> None:
    cancelled: list[Any] = []

    async def waiter(d: Deferred[int]) -> int:
        return await d

    async def main() -> bool:
        d: Deferred[int] = Deferred(cancelled.append)
        task = asyncio.ensure_future(waiter(d))
        await asyncio.sleep(0)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return bool(cancelled)
        return False

    assert asyncio.run(main()) is True


def test_from_future_result_failure_and_done_future() -> None:
    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        out: list[Any] = []
        fut: asyncio.Future[int] = loop.create_future()
        d = Deferred.from_future(fut)
        d.add_callback(out.append)
        fut.set_result(1)
        await asyncio.sleep(0)
        bad: asyncio.Future[int] = loop.create_future()
        bad.set_exception(OSError("bad"))
        out.append(failure_of(Deferred.from_future(bad)).type)  # done future: fires at once

        async def coro() -> int:
            return 7

        task = asyncio.ensure_future(coro())
        d3 = Deferred.from_future(task)
        d4 = Deferred.from_future(coro())  # other awaitables go through ensure_future
        await task
        await asyncio.sleep(0)  # the task's done callbacks
        out.append(result_of(d3))
        out.append(result_of(d4))
        return out

    assert asyncio.run(main()) == [1, OSError, 7, 7]


def test_from_future_cancel_deferred_cancels_future() -> None:
    async def main() -> tuple[bool, type | None]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[int] = loop.create_future()
        d = Deferred.from_future(fut)
        d.cancel()
        await asyncio.sleep(0)  # the future's done callback: a late fire, ignored
        return fut.cancelled(), failure_of(d).check(CancelledError)

    assert asyncio.run(main()) == (True, CancelledError)


def test_from_future_cancelled_future_gives_cancelled_error() -> None:
    async def main() -> type | None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[int] = loop.create_future()
        d = Deferred.from_future(fut)
        fut.cancel()
        await asyncio.sleep(0)
        return failure_of(d).check(CancelledError)

    assert asyncio.run(main()) is CancelledError


def test_cancel_ensure_deferred_waiting_on_asyncio_future() -> None:
    async def driven(fut: asyncio.Future[int]) -> str:
        try:
            await fut
        except CancelledError:
            return "saw net CancelledError"
        return "no"

    async def main() -> tuple[str, bool]:
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        d = ensure_deferred(driven(fut))
        d.cancel()
        await asyncio.sleep(0)
        return result_of(d), fut.cancelled()

    assert asyncio.run(main()) == ("saw net CancelledError", True)


# -- misc ----------------------------------------------------------------------------------------


def test_public_names() -> None:
    for name in defer.__all__:
        assert hasattr(defer, name), name
    assert defer.TimeoutError is TimeoutError
    assert issubclass(CancelledError, Exception)
    assert CancelledError is not asyncio.CancelledError
    assert Deferred[int] is not None  # generic for annotations


def test_repr() -> None:
    assert "pending" in repr(Deferred())
    assert "current result: 1" in repr(succeed(1))
    d: Deferred[int] = Deferred()
    d.pause()
    assert "paused" in repr(d)


def test_as_future_stop_iteration_becomes_runtime_error() -> None:
    async def main() -> str:
        d: Deferred[int] = Deferred()
        fut = d.as_future()
        d.errback(StopIteration())
        try:
            await fut
        except RuntimeError as e:
            return type(e.__cause__).__name__
        return "no"

    assert asyncio.run(main()) == "StopIteration"
