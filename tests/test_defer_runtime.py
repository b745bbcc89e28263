"""net.defer fixes of issue 14 and the await hop of issue 13: contextvars isolation of coroutines,
weak references, cancellers dropped on firing (checked with the cyclic GC off), picklable and
more detailed Failures, debug mode, and asyncio tasks resumed straight from a Deferred's callback.
No sleeps: asyncio tests order their steps with call_soon and futures."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import io
import logging
import multiprocessing
import pickle
import weakref
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable, Generator

import pytest

from deferred_results import result_of
from net import defer, failure
from net.defer import (
    AlreadyCalledError,
    CancelledError,
    Deferred,
    Failure,
    ensure_deferred,
    gather,
    inline_callbacks,
    set_debugging,
    succeed,
)

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


@pytest.fixture
def unhandled(caplog: pytest.LogCaptureFixture) -> Callable[[], list[logging.LogRecord]]:
    caplog.set_level(logging.ERROR, logger="net.defer")

    def records() -> list[logging.LogRecord]:
        gc.collect()
        return [r for r in caplog.records if "Unhandled error in Deferred" in r.getMessage()]

    return records


@pytest.fixture
def no_gc() -> Iterator[None]:
    """Cyclic GC off: whatever is freed here is freed by reference counting alone."""
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


@pytest.fixture
def debugging() -> Iterator[None]:
    set_debugging(True)
    try:
        yield
    finally:
        set_debugging(False)


# -- contextvars: ensure_deferred ------------------------------------------------------------------


def test_contextvar_set_in_coroutine_does_not_leak_to_caller() -> None:
    d: Deferred[int] = Deferred()
    seen: list[str] = []

    async def coro() -> str:
        seen.append(var.get())  # the creator's value
        var.set("inside")
        await d
        seen.append(var.get())  # still its own value after resuming
        var.set("inside-2")
        return var.get()

    def caller() -> Deferred[str]:
        var.set("caller")
        r = ensure_deferred(coro())
        assert var.get() == "caller"  # the synchronous part's set stayed inside
        d.callback(1)
        assert var.get() == "caller"  # and so did the part run from d.callback
        return r

    ctx = contextvars.copy_context()
    r = ctx.run(caller)
    assert result_of(r) == "inside-2"
    assert seen == ["caller", "inside"]
    assert ctx[var] == "caller"
    assert var.get() == "unset"


def test_context_of_whoever_fires_the_awaited_deferred_does_not_leak_in() -> None:
    d: Deferred[int] = Deferred()
    seen: list[str] = []

    async def coro() -> None:
        await d
        seen.append(var.get())

    var_token = var.set("creator")
    try:
        r = ensure_deferred(coro())
    finally:
        var.reset(var_token)

    def firer() -> None:
        var.set("firer")
        d.callback(1)

    contextvars.copy_context().run(firer)
    assert seen == ["creator"]
    assert result_of(r) is None


def test_coroutine_context_is_a_copy_made_at_creation() -> None:
    d: Deferred[int] = Deferred()
    seen: list[str] = []

    async def coro() -> None:
        await d
        seen.append(var.get())

    token = var.set("at creation")
    r = ensure_deferred(coro())
    var.set("changed later")  # the caller's later changes are not seen either
    d.callback(1)
    var.reset(token)
    assert seen == ["at creation"]
    result_of(r)


def test_nested_coroutines_each_get_their_own_context() -> None:
    d: Deferred[int] = Deferred()

    async def inner() -> str:
        var.set("inner")
        await d
        return var.get()

    async def outer() -> tuple[str, str]:
        var.set("outer")
        got = await ensure_deferred(inner())
        return got, var.get()

    r = contextvars.copy_context().run(ensure_deferred, outer())
    d.callback(1)
    assert result_of(r) == ("inner", "outer")


def test_inline_callbacks_runs_in_a_copied_context() -> None:
    d: Deferred[int] = Deferred()
    seen: list[str] = []

    @inline_callbacks
    def gen() -> Generator[Any, Any, str]:
        seen.append(var.get())
        var.set("gen")
        yield d
        return var.get()

    def caller() -> Deferred[str]:
        var.set("caller")
        r = gen()
        assert var.get() == "caller"

        def firer() -> None:
            var.set("firer")
            d.callback(1)

        contextvars.copy_context().run(firer)
        assert var.get() == "caller"
        return r

    r = contextvars.copy_context().run(caller)
    assert result_of(r) == "gen"
    assert seen == ["caller"]


# -- contextvars: asyncio tasks awaiting Deferreds ---------------------------------------------


def test_task_resumed_by_deferred_keeps_its_context_both_ways() -> None:
    async def main() -> tuple[str, str]:
        loop = asyncio.get_running_loop()
        d: Deferred[int] = Deferred()
        firer_saw: list[str] = []
        var.set("task")

        def fire() -> None:  # a plain loop callback, as a reactor's reader is
            var.set("firer")
            d.callback(1)
            firer_saw.append(var.get())  # the task's set after resuming did not leak out here

        loop.call_soon(fire, context=contextvars.copy_context())
        await d
        in_task = var.get()
        var.set("task-after")
        done: asyncio.Future[None] = loop.create_future()
        loop.call_soon(done.set_result, None)
        await done
        return in_task, firer_saw[0]

    assert asyncio.run(main()) == ("task", "firer")


# -- weak references and cancellers --------------------------------------------------------------


def test_deferred_can_be_weakly_referenced() -> None:
    d: Deferred[int] = Deferred()
    ref = weakref.ref(d)
    assert ref() is d
    pending: weakref.WeakSet[Deferred[Any]] = weakref.WeakSet([d, succeed(1)])
    assert d in pending
    assert "__weakref__" in Deferred.__slots__
    del d
    assert ref() is None


def test_coroutine_deferred_can_be_weakly_referenced(no_gc: None) -> None:
    async def coro() -> int:
        return 1

    d = ensure_deferred(coro())
    ref = weakref.ref(d)
    assert result_of(d) == 1
    del d
    assert ref() is None


@pytest.mark.parametrize("how", ["callback", "errback", "cancel", "cancel-fires"])
def test_canceller_dropped_once_fired_no_cycle_left(no_gc: None, how: str) -> None:
    class Operation:
        """An operation that knows its Deferred, whose canceller knows the operation: a cycle."""

        def __init__(self) -> None:
            self.d: Deferred[int] = Deferred(self.cancel)

        def cancel(self, d: Deferred[int]) -> None:
            if how == "cancel-fires":
                d.callback(0)

    op = Operation()
    d = op.d
    ref_d, ref_op = weakref.ref(d), weakref.ref(op)
    if how == "callback":
        d.callback(1)
    elif how == "errback":
        d.errback(KeyError("x"))
    else:
        d.cancel()
    result_of(d)  # consume a failure
    assert d._canceller is None
    del d, op
    assert ref_d() is None and ref_op() is None


def test_self_referencing_canceller_closure_freed_without_gc(no_gc: None) -> None:
    def make() -> Deferred[int]:
        d: Deferred[int] = Deferred(lambda _: print(d))  # the closure refers to d itself
        return d

    d = make()
    ref = weakref.ref(d)
    d.callback(1)
    del d
    assert ref() is None


def test_gather_freed_without_gc_after_firing(no_gc: None) -> None:
    a: Deferred[int] = Deferred()
    b: Deferred[int] = Deferred()
    g = gather(a, b)
    ref = weakref.ref(g)
    a.callback(1)
    b.callback(2)
    assert result_of(g) == [1, 2]
    del g
    assert ref() is None


def test_task_await_leaves_no_cycle(no_gc: None) -> None:
    refs: list[weakref.ref[Deferred[Any]]] = []

    async def main() -> int:
        loop = asyncio.get_running_loop()
        d: Deferred[int] = Deferred(lambda _: None)
        refs.append(weakref.ref(d))
        loop.call_soon(d.callback, 5)
        value = await d
        del d
        return value

    assert asyncio.run(main()) == 5
    assert refs[0]() is None


# -- Failure: module, pickling, detail, frames --------------------------------------------------


def _raise_nested() -> None:
    try:
        empty: dict[str, int] = {}
        empty["missing"]
    except KeyError as e:
        raise ValueError("outer problem") from e


def _make_failure() -> Failure:
    try:
        _raise_nested()
    except ValueError:
        return Failure()
    raise AssertionError("unreachable")


def test_failure_lives_in_net_failure_and_is_reexported() -> None:
    assert defer.Failure is failure.Failure
    assert "Failure" in failure.__all__


def test_failure_pickles_without_traceback_keeping_text_and_frames() -> None:
    f = _make_failure()
    text, frames = f.get_traceback(), f.frames
    assert [name for _, _, name in frames] == ["_make_failure", "_raise_nested"]
    g = pickle.loads(pickle.dumps(f))
    assert g.tb is None and g.type is ValueError
    assert str(g.value) == "outer problem"
    assert g.get_traceback() == text  # chained cause included, though __cause__ did not travel
    assert "direct cause" in g.get_traceback()
    assert g.frames == frames
    assert g.check(ValueError) is ValueError
    assert g.trap(ValueError) is ValueError
    with pytest.raises(ValueError, match="outer problem"):
        g.raise_exception()
    # the original is untouched
    assert f.tb is not None


def test_cleaned_failure_pickles_too() -> None:
    f = _make_failure()
    text = f.tb_text
    f.clean_failure()
    g = pickle.loads(pickle.dumps(f, protocol=pickle.HIGHEST_PROTOCOL))
    assert g.tb_text == text and g.frames == f.frames


def _failing_job(n: int) -> Failure:
    try:
        raise ArithmeticError(f"job {n} failed")
    except ArithmeticError:
        return Failure()


def test_failure_crosses_a_process_pool() -> None:
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("needs the fork start method")
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        f = pool.submit(_failing_job, 7).result()
    assert isinstance(f, Failure) and f.check(ArithmeticError)
    assert "job 7 failed" in f.get_traceback()
    assert "_failing_job" in f.get_traceback()
    assert f.frames[-1][2] == "_failing_job"


def test_get_traceback_detail_levels() -> None:
    f = _make_failure()
    assert f.get_traceback("default") == f.tb_text == f.get_traceback()
    brief = f.get_traceback(detail="brief")
    lines = brief.splitlines()
    assert lines[0].endswith(":_make_failure") and lines[1].endswith(":_raise_nested")
    assert lines[-1] == "ValueError: outer problem"
    secret = "local-value-42"  # noqa: F841 - shows up in the verbose text of a frame below

    def with_local() -> Failure:
        marker = secret  # noqa: F841
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            return Failure()

    g = with_local()
    verbose = g.get_traceback(detail="verbose")
    assert "marker = 'local-value-42'" in verbose
    g.clean_failure()
    assert g.get_traceback(detail="verbose") == g.tb_text  # locals gone with the frames
    with pytest.raises(ValueError):
        f.get_traceback(detail="loud")  # type: ignore[arg-type]


def test_print_traceback() -> None:
    f = _make_failure()
    out = io.StringIO()
    f.print_traceback(out)
    assert out.getvalue() == f.tb_text
    out = io.StringIO()
    f.print_traceback(file=out, detail="brief")
    assert out.getvalue() == f.get_traceback("brief")


def test_frames_survive_clean_failure() -> None:
    f = _make_failure()
    frames = f.frames
    f.clean_failure()
    assert f.tb is None
    assert f.frames == frames
    assert Failure(ValueError("no tb")).frames == []


# -- debug mode -----------------------------------------------------------------------------


def _create_here() -> Deferred[int]:
    return Deferred()


def _fire_here(d: Deferred[int]) -> None:
    d.callback(1)


def test_already_called_error_shows_creator_and_first_invoker(debugging: None) -> None:
    d = _create_here()
    _fire_here(d)
    with pytest.raises(AlreadyCalledError) as info:
        d.callback(2)
    text = str(info.value)
    created, _, fired = text.partition("Deferred first fired at:")
    assert "Deferred created at:" in created and "_create_here" in created
    assert "_fire_here" in fired
    assert defer.get_debugging()


def test_debug_mode_covers_succeed_and_coroutines(debugging: None) -> None:
    with pytest.raises(AlreadyCalledError, match="first fired at"):
        succeed(1).callback(2)

    async def coro() -> int:
        return 1

    d = ensure_deferred(coro())
    with pytest.raises(AlreadyCalledError, match="test_debug_mode_covers_succeed_and_coroutines"):
        d.errback(KeyError())


def test_without_debug_mode_the_error_says_how_to_get_stacks() -> None:
    assert not defer.get_debugging()
    d: Deferred[int] = Deferred()
    d.callback(1)
    with pytest.raises(AlreadyCalledError, match="set_debugging"):
        d.callback(2)
    assert d._debug_info is None  # nothing recorded outside debug mode


def test_debug_mode_unhandled_log_has_the_stacks(
    debugging: None, unhandled: Callable[[], list[logging.LogRecord]]
) -> None:
    d = _create_here()
    d.errback(KeyError("lost"))
    del d
    (record,) = unhandled()
    message = record.getMessage()
    assert "KeyError: 'lost'" in message and "_create_here" in message


# -- asyncio tasks: resumed directly from the Deferred's callback -------------------------------


def test_task_resumed_inside_the_callback_when_fired_outside_any_task() -> None:
    order: list[str] = []

    async def main() -> int:
        loop = asyncio.get_running_loop()
        d: Deferred[int] = Deferred()

        def fire() -> None:
            d.callback(3)
            order.append("callback returned")

        loop.call_soon(fire)
        value = await d
        order.append("task resumed")
        done: asyncio.Future[None] = loop.create_future()
        loop.call_soon(done.set_result, None)
        await done
        return value

    assert asyncio.run(main()) == 3
    assert order == ["task resumed", "callback returned"]  # no extra loop turn in between


def test_task_woken_by_call_soon_when_fired_from_another_task() -> None:
    order: list[str] = []

    async def waiter(d: Deferred[int]) -> int:
        value = await d
        order.append("waiter resumed")
        return value

    async def main() -> int:
        d: Deferred[int] = Deferred()
        task = asyncio.ensure_future(waiter(d))
        started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(started.set_result, None)
        await started  # the waiter task is now suspended on d
        d.callback(4)  # fired from inside this task: asyncio cannot enter the other one now
        order.append("firing task went on")
        return await task

    assert asyncio.run(main()) == 4
    assert order == ["firing task went on", "waiter resumed"]


def test_task_awaiting_failure_gets_it_with_traceback_and_it_is_handled(
    unhandled: Callable[[], list[logging.LogRecord]],
) -> None:
    def raiser() -> None:
        raise LookupError("remote said no")

    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        d: Deferred[int] = Deferred()

        def fire() -> None:
            try:
                raiser()
            except LookupError:
                d.errback()

        loop.call_soon(fire)
        try:
            await d
        except LookupError as e:
            import traceback

            return [fs.name for fs in traceback.extract_tb(e.__traceback__)]
        return []

    names = asyncio.run(main())
    assert "raiser" in names
    assert unhandled() == []


def test_task_await_passes_success_on_down_the_chain() -> None:
    after: list[Any] = []

    async def main() -> int:
        loop = asyncio.get_running_loop()
        d: Deferred[int] = Deferred()
        loop.call_soon(d.callback, 8)
        value = await d
        d.add_callback(after.append)
        return value

    assert asyncio.run(main()) == 8
    assert after == [8]


def test_task_awaits_deferred_paused_on_an_inner_one() -> None:
    async def main() -> int:
        loop = asyncio.get_running_loop()
        inner: Deferred[int] = Deferred()
        outer: Deferred[int] = Deferred()
        outer.add_callback(lambda _: inner)
        outer.callback(0)  # fired, but waiting on inner
        loop.call_soon(inner.callback, 11)
        return await outer

    assert asyncio.run(main()) == 11


def test_task_cancel_wins_even_if_the_canceller_fires_a_result() -> None:
    seen: list[str] = []

    async def waiter(d: Deferred[int]) -> None:
        try:
            await d
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    async def main() -> Any:
        loop = asyncio.get_running_loop()
        d: Deferred[int] = Deferred(lambda d: d.callback(99))
        task = asyncio.ensure_future(waiter(d))
        started: asyncio.Future[None] = loop.create_future()
        loop.call_soon(started.set_result, None)
        await started
        assert task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return result_of(d)

    assert asyncio.run(main()) == 99  # the canceller's result went on down d's chain
    assert seen == ["cancelled"]


def test_deferred_cancelled_elsewhere_raises_asyncio_cancelled_in_task(
    unhandled: Callable[[], list[logging.LogRecord]],
) -> None:
    async def main() -> str:
        loop = asyncio.get_running_loop()
        d: Deferred[int] = Deferred()
        loop.call_soon(d.cancel)
        try:
            await d
        except asyncio.CancelledError:
            return "asyncio-cancelled"
        return "no"

    assert asyncio.run(main()) == "asyncio-cancelled"
    assert unhandled() == []


def test_wait_for_and_shield_accept_deferreds() -> None:
    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        a: Deferred[int] = Deferred()
        b: Deferred[int] = Deferred()
        loop.call_soon(a.callback, 1)
        loop.call_soon(b.callback, 2)
        return [await asyncio.wait_for(a, 3600), await asyncio.shield(b)]

    assert asyncio.run(main()) == [1, 2]


def test_many_sequential_task_awaits() -> None:
    async def main() -> int:
        loop = asyncio.get_running_loop()
        total = 0
        for i in range(2000):
            d: Deferred[int] = Deferred()
            loop.call_soon(d.callback, i)
            total += await d
        return total

    assert asyncio.run(main()) == sum(range(2000))


def test_keyboard_interrupt_in_resumed_task_reaches_the_loop() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        d: Deferred[int] = Deferred()
        loop.call_soon(d.callback, 1)
        await d
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        asyncio.run(main())
