"""net.testing.Clock: a reactor's timers and queues with time moved by hand."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from zope.interface.verify import verifyObject

from net._reactorbase import AlreadyCalled, AlreadyCancelled
from net.defer import Deferred, Failure
from net.interfaces import IDelayedCall, IReactorTime
from net.testing import Clock


def test_provides_the_interfaces() -> None:
    clock = Clock()
    assert verifyObject(IReactorTime, clock)
    assert verifyObject(IDelayedCall, clock.call_later(1, lambda: None))


def test_nothing_runs_until_time_is_advanced() -> None:
    clock = Clock(start=100.0)
    ran: list[str] = []
    call = clock.call_later(5, ran.append, "five")
    assert clock.seconds() == 100.0 and call.time == 105.0
    assert clock.run_until_idle() == 0  # not due: time stands still
    clock.advance(4.999)
    assert ran == [] and call.active()
    assert clock.advance(0.001) == 1
    assert ran == ["five"] and not call.active() and call.called
    assert clock.seconds() == pytest.approx(105.0)


def test_calls_run_in_time_order_then_scheduling_order_with_their_own_time() -> None:
    clock = Clock()
    seen: list[tuple[str, float]] = []

    def note(name: str) -> None:
        seen.append((name, clock.seconds()))

    clock.call_later(3, note, "c")
    clock.call_later(1, note, "a1")
    clock.call_later(2, note, "b")
    clock.call_later(1, note, "a2")
    assert [c.time for c in clock.get_delayed_calls()] == [1, 1, 2, 3]
    assert clock.advance(10) == 4
    assert seen == [("a1", 1), ("a2", 1), ("b", 2), ("c", 3)]
    assert clock.seconds() == 10 and clock.get_delayed_calls() == []


def test_calls_scheduled_while_advancing_run_if_they_fall_due() -> None:
    clock = Clock()
    seen: list[float] = []

    def tick() -> None:
        seen.append(clock.seconds())
        if len(seen) < 10:
            clock.call_later(1, tick)

    clock.call_later(1, tick)
    clock.advance(3.5)
    assert seen == [1, 2, 3]
    clock.advance(100)
    assert seen == [float(i) for i in range(1, 11)]


def test_args_and_kwargs() -> None:
    clock = Clock()
    got: list[Any] = []
    clock.call_later(0, lambda *a, **kw: got.append((a, kw)), 1, 2, x=3)
    clock.call_soon(lambda *a, **kw: got.append((a, kw)), "soon", y=4)
    clock.call_from_thread(lambda *a, **kw: got.append((a, kw)), "thread", z=5)
    assert clock.run_until_idle() == 3
    assert sorted(got, key=repr) == sorted([((1, 2), {"x": 3}), (("soon",), {"y": 4}), (("thread",), {"z": 5})], key=repr)


def test_cancel() -> None:
    clock = Clock()
    ran: list[int] = []
    call = clock.call_later(1, ran.append, 1)
    call.cancel()
    assert not call.active() and call.cancelled
    with pytest.raises(AlreadyCancelled):
        call.cancel()
    with pytest.raises(AlreadyCancelled):
        call.reset(1)
    clock.advance(5)
    assert ran == [] and clock.get_delayed_calls() == []


def test_a_call_that_ran_cannot_be_cancelled_or_moved() -> None:
    clock = Clock()
    call = clock.call_soon(lambda: None)
    clock.run_until_idle()
    for action in (call.cancel, lambda: call.reset(1), lambda: call.delay(1)):
        with pytest.raises(AlreadyCalled):
            action()


def test_reset_and_delay_move_the_same_handle() -> None:
    clock = Clock()
    ran: list[float] = []
    call = clock.call_later(5, lambda: ran.append(clock.seconds()))
    clock.advance(2)
    call.reset(5)  # from now: at 7
    assert call.time == 7
    clock.advance(4)
    assert ran == []
    call.delay(2)  # at 9
    clock.advance(2.5)
    assert ran == [] and call.active()
    call.delay(-1)  # at 8, already past: due
    clock.run_until_idle()
    assert ran == [8.5]  # it runs at the clock's time, which does not go back
    assert len(clock.get_delayed_calls()) == 0  # the moved-away entries are not run again
    clock.advance(10)
    assert ran == [8.5]


def test_run_until_idle_runs_what_soon_work_schedules_for_now_but_not_later() -> None:
    clock = Clock()
    order: list[str] = []

    def first() -> None:
        order.append("first")
        clock.call_soon(order.append, "chained")
        clock.call_later(1, order.append, "later")

    clock.call_soon(first)
    clock.call_soon(order.append, "second")
    assert clock.pump() == 3
    assert order == ["first", "second", "chained"]
    assert clock.run_until_idle() == 0
    clock.advance(1)
    assert order[-1] == "later"


def test_call_from_thread_is_queued_until_the_test_pumps() -> None:
    clock = Clock()
    got: list[int] = []

    def worker(i: int) -> None:
        clock.call_from_thread(got.append, i)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == []
    assert clock.run_until_idle() == 8
    assert sorted(got) == list(range(8))


def test_call_from_thread_work_queued_by_thread_work_runs_too() -> None:
    clock = Clock()
    got: list[str] = []
    clock.call_from_thread(lambda: clock.call_from_thread(got.append, "inner"))
    clock.run_until_idle()
    assert got == ["inner"]


def test_advance_refuses_to_go_back() -> None:
    clock = Clock()
    with pytest.raises(ValueError, match="forward"):
        clock.advance(-1)


def test_exceptions_propagate_and_the_clock_stays_usable() -> None:
    clock = Clock()
    ran: list[int] = []

    def boom() -> None:
        raise KeyError("boom")

    clock.call_later(1, boom)
    clock.call_later(2, ran.append, 2)
    with pytest.raises(KeyError):
        clock.advance(5)
    assert clock.seconds() == 1  # stopped where the failing call ran
    clock.advance(4)
    assert ran == [2] and clock.seconds() == 5


def test_deferred_add_timeout_uses_the_clock() -> None:
    clock = Clock()
    d: Deferred[Any] = Deferred()
    d.add_timeout(5, clock)
    outcome: list[Any] = []
    d.add_both(outcome.append)
    clock.advance(4.9)
    assert outcome == []
    clock.advance(0.1)
    assert len(outcome) == 1 and isinstance(outcome[0], Failure)
    assert isinstance(outcome[0].value, TimeoutError)

    fired: Deferred[Any] = Deferred()
    fired.add_timeout(5, clock)
    assert len(clock.get_delayed_calls()) == 1
    fired.callback("in time")
    assert clock.get_delayed_calls() == []  # firing cancelled the timer
    assert fired.result == "in time"
