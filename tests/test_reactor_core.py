"""The reactor core on every backend: time, lifecycle, triggers, fd set, errors.

Only orderings are asserted, never durations; the loop is always left via ``run`` (which times
out instead of hanging) or a ``stop`` scheduled before ``run()``.

Timed calls: the scheduling rules (time order, FIFO at equal times, cancel, reset/delay, one round
at a time) are tested on each backend's own scheduler with its time read from a
:class:`net.testing.Clock` (:class:`ManualTime`), so no test waits for a timer and none is flaky on
a loaded machine; a few tests on the real loop check only that timed calls fire from it.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

import pytest
from zope.interface.verify import verifyObject

from net._reactorbase import AlreadyCalled, AlreadyCancelled, DelayedCall
from net.defer import Deferred, fail, succeed
from net.error import ReactorAlreadyRunning, ReactorNotRunning
from net.interfaces import (
    IDelayedCall,
    IReactorCore,
    IReactorFDSet,
    IReactorTCP,
    IReactorThreads,
    IReactorTime,
)
from net.reactor import available_reactors, default_reactor_name, make_reactor
from net.testing import Clock, iterations


def stop_after_startup(reactor: Any) -> None:
    reactor.call_when_running(reactor.stop)


# ---------------------------------------------------------------------------------- interfaces


@pytest.mark.parametrize(
    "interface", [IReactorCore, IReactorTime, IReactorFDSet, IReactorThreads, IReactorTCP]
)
def test_provides_interfaces(reactor: Any, interface: Any) -> None:
    assert verifyObject(interface, reactor)


def test_delayed_call_provides_interface(reactor: Any) -> None:
    call = reactor.call_later(1, lambda: None)
    assert verifyObject(IDelayedCall, call)
    call.cancel()


# ---------------------------------------------------------------------------------- make_reactor


def test_make_reactor_unknown_name_lists_choices() -> None:
    with pytest.raises(ValueError) as info:
        make_reactor("kqueue-on-linux")
    for name in available_reactors():
        assert name in str(info.value)


def test_default_reactor_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PBROKER_REACTOR", "select")
    assert default_reactor_name() == "select"
    reactor = make_reactor()
    try:
        assert getattr(reactor, "kind", None) == "select"
    finally:
        reactor.close()
    monkeypatch.delenv("PBROKER_REACTOR")
    assert default_reactor_name() in ("epoll", "poll", "select")


# ---------------------------------------------------------------------------------- timed calls


class ManualTime:
    """A reactor's own timed-call machinery, with its time read from a :class:`Clock`.

    The reactor's ``seconds`` is the clock's; :meth:`advance` moves the clock and then runs the
    reactor's due calls round after round, as its loop does between waits (a call scheduled by a
    call waits for the next round). No loop runs and no real time passes.
    """

    def __init__(self, reactor: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.reactor = reactor
        self.clock = Clock(start=reactor.seconds())
        monkeypatch.setattr(reactor, "seconds", self.clock.seconds)

    def run_round(self) -> None:
        """One round of the loop's timed calls: those due now and scheduled before it began."""
        self.reactor._run_due_calls()

    def advance(self, seconds: float) -> int:
        """Move time ``seconds`` on, then run rounds until nothing is due; how many rounds ran."""
        self.clock.advance(seconds)
        rounds = 0
        while self.reactor._next_timeout() == 0:
            self.run_round()
            rounds += 1
        return rounds


@pytest.fixture
def manual(reactor: Any, monkeypatch: pytest.MonkeyPatch) -> ManualTime:
    return ManualTime(reactor, monkeypatch)


def test_delayed_calls_run_in_time_order_each_at_its_time(manual: ManualTime) -> None:
    reactor = manual.reactor
    order: list[float] = []
    delays = [3.0, 0.0, 2.0, 0.5, 1.0, 0.0, 2.5]
    for delay in delays:
        reactor.call_later(delay, order.append, delay)
    manual.advance(0)
    assert order == [0.0, 0.0]
    manual.advance(0.499)
    assert order == [0.0, 0.0]  # not before its time
    manual.advance(0.001)
    assert order == [0.0, 0.0, 0.5]
    manual.advance(10)
    assert order == sorted(delays)
    assert reactor.get_delayed_calls() == []


def test_cancelled_calls_never_run(manual: ManualTime) -> None:
    reactor = manual.reactor
    ran: list[str] = []
    calls = [reactor.call_later(i, ran.append, f"c{i}") for i in range(10)]
    for call in calls[::2]:
        call.cancel()
    assert reactor.get_delayed_calls() == calls[1::2]
    manual.advance(20)
    assert ran == [f"c{i}" for i in range(1, 10, 2)]
    assert all(not call.active() for call in calls)
    with pytest.raises(AlreadyCancelled):
        calls[0].cancel()
    with pytest.raises(AlreadyCalled):
        calls[1].cancel()
    with pytest.raises(AlreadyCalled):
        calls[1].reset(1)
    with pytest.raises(AlreadyCancelled):
        calls[0].delay(1)


def test_cancel_from_an_earlier_call_even_in_the_same_round(manual: ManualTime) -> None:
    reactor = manual.reactor
    ran: list[str] = []
    later = reactor.call_later(2, ran.append, "later")

    def first() -> None:
        ran.append("first")
        later.cancel()
        same_time.cancel()  # due in this very round, after first

    reactor.call_later(1, first)
    same_time = reactor.call_later(1, ran.append, "due with first, cancelled by it")
    manual.advance(5)
    assert ran == ["first"]


def test_reset_and_delay_move_calls(manual: ManualTime) -> None:
    reactor = manual.reactor
    order: list[str] = []
    a = reactor.call_later(1, order.append, "a")
    b = reactor.call_later(10, order.append, "b")
    c = reactor.call_later(0, order.append, "c")
    d = reactor.call_later(20, order.append, "d")
    time_a, time_c = a.time, c.time
    a.reset(15)  # a: after b
    c.delay(25)  # c: last
    assert a.time == pytest.approx(time_a + 14) and c.time == pytest.approx(time_c + 25)
    assert a.active() and c.active()
    assert reactor.get_delayed_calls() == [b, a, d, c]
    manual.advance(14)
    assert order == ["b"]  # a is due at 15 now
    a.delay(-10)  # brought forward into the past: due at once
    manual.advance(0)
    assert order == ["b", "a"]
    manual.advance(100)
    assert order == ["b", "a", "d", "c"]
    assert a.called and not a.active()
    assert len(reactor.get_delayed_calls()) == 0  # the moved-away heap entries never run


def test_equal_times_run_fifo(manual: ManualTime) -> None:
    reactor = manual.reactor
    order: list[int] = []
    calls = [reactor.call_later(5, order.append, i) for i in range(50)]
    assert len({call.time for call in calls}) == 1  # the clock stands still: one time for all
    calls[10].reset(5)  # moved to the same time: now the last of them
    manual.advance(5)
    assert order == [*range(10), *range(11, 50), 10]


def test_a_call_scheduled_by_a_due_call_waits_for_the_next_round(manual: ManualTime) -> None:
    """One round runs only what was due and scheduled when it began, so timed calls that keep
    scheduling calls for "now" cannot starve the loop's I/O."""
    reactor = manual.reactor
    order: list[str] = []

    def first() -> None:
        order.append("first")
        reactor.call_later(0, order.append, "scheduled by first")

    reactor.call_later(1, first)
    reactor.call_later(1, order.append, "second")
    manual.clock.advance(1)
    manual.run_round()
    assert order == ["first", "second"]
    manual.run_round()
    assert order == ["first", "second", "scheduled by first"]


def test_timed_calls_fire_from_the_real_loop(reactor: Any, run: Any) -> None:
    """On the running loop (each backend arms its own timer), in time order; waits on the last."""
    order: list[str] = []
    done: Deferred[None] = Deferred()

    def last() -> None:
        order.append("last")
        done.callback(None)

    reactor.call_later(0.003, last)
    reactor.call_later(0.001, order.append, "first")
    reactor.call_later(0.002, order.append, "second")
    moved = reactor.call_later(0.0005, order.append, "moved")
    moved.reset(0.0025)
    run(reactor, done)
    assert order == ["first", "second", "moved", "last"]


def test_call_soon_runs_in_next_round(reactor: Any, run: Any) -> None:
    # A call scheduled from a call waits for the next round, behind calls already due.
    order: list[str] = []
    done: Deferred[None] = Deferred()

    def first() -> None:
        order.append("first")
        reactor.call_soon(scheduled_by_first)

    def scheduled_by_first() -> None:
        order.append("scheduled by first")
        done.callback(None)

    reactor.call_soon(first)
    reactor.call_soon(order.append, "second")
    run(reactor, done)
    assert order == ["first", "second", "scheduled by first"]


def test_call_soon_chain_does_not_starve_io(reactor: Any, run: Any) -> None:
    # An endless call_soon chain must still let fd callbacks run.
    a, b = socket.socketpair()
    done: Deferred[int] = Deferred()
    rounds = [0]

    def spin() -> None:
        rounds[0] += 1
        if not done.called:
            reactor.call_soon(spin)

    def readable() -> None:
        reactor.remove_reader(a.fileno())
        done.callback(rounds[0])

    try:
        reactor.add_reader(a.fileno(), readable)
        reactor.call_soon(spin)
        reactor.call_soon(b.send, b"x")
        run(reactor, done)
    finally:
        a.close()
        b.close()


def test_get_delayed_calls(reactor: Any) -> None:
    a = reactor.call_later(2, lambda: None)
    b = reactor.call_later(1, lambda: None)
    c = reactor.call_later(3, lambda: None)
    c.cancel()
    assert reactor.get_delayed_calls() == [b, a]
    a.cancel()
    b.cancel()
    assert reactor.get_delayed_calls() == []


def test_many_cancelled_calls_are_compacted(reactor: Any) -> None:
    calls = [reactor.call_later(10, lambda: None) for _ in range(2000)]
    for call in calls:
        call.cancel()
    assert len(reactor._heap) < 1000


def test_delayed_call_repr(reactor: Any) -> None:
    call = reactor.call_later(1, test_delayed_call_repr)
    assert "test_delayed_call_repr" in repr(call)
    call.cancel()
    assert "cancelled" in repr(call)
    assert isinstance(call, DelayedCall)


# ---------------------------------------------------------------------------------- lifecycle


def test_stop_when_not_running_raises(reactor: Any) -> None:
    with pytest.raises(ReactorNotRunning):
        reactor.stop()


def test_stop_twice_raises(reactor: Any) -> None:
    errors: list[BaseException] = []

    def stop_twice() -> None:
        reactor.stop()
        try:
            reactor.stop()
        except ReactorNotRunning as exc:
            errors.append(exc)

    reactor.call_when_running(stop_twice)
    reactor.run()
    assert len(errors) == 1


def test_run_while_running_raises(reactor: Any) -> None:
    errors: list[BaseException] = []

    def run_again() -> None:
        try:
            reactor.run()
        except ReactorAlreadyRunning as exc:
            errors.append(exc)
        reactor.stop()

    reactor.call_when_running(run_again)
    reactor.run()
    assert len(errors) == 1
    assert not reactor.running


def test_rerun_a_stopped_reactor(reactor: Any, run: Any) -> None:
    runs: list[bool] = []
    for _ in range(3):
        reactor.call_when_running(lambda: runs.append(reactor.running))
        stop_after_startup(reactor)
        reactor.run()
        assert not reactor.running
    assert runs == [True, True, True]
    assert run(reactor, succeed(5)) == 5  # already fired: no need to run
    d: Deferred[str] = Deferred()
    reactor.call_soon(d.callback, "again")
    assert run(reactor, d) == "again"


def test_run_raises_the_failure(reactor: Any, run: Any) -> None:
    d: Deferred[None] = Deferred()
    reactor.call_soon(d.errback, KeyError("nope"))
    with pytest.raises(KeyError):
        run(reactor, d)
    with pytest.raises(ValueError):
        run(reactor, fail(ValueError("already failed")))


def test_run_times_out(reactor: Any, run: Any) -> None:
    with pytest.raises(TimeoutError):
        run(reactor, Deferred(), timeout=0.01)
    assert not reactor.running


def test_run_drives_a_coroutine(reactor: Any, run: Any) -> None:
    async def work() -> str:
        d: Deferred[str] = Deferred()
        reactor.call_later(0.001, d.callback, "slept")
        return await d

    assert run(reactor, work()) == "slept"


def test_call_when_running(reactor: Any) -> None:
    seen: list[tuple[str, bool]] = []

    def when_running() -> None:
        seen.append(("first", reactor.running))
        reactor.call_when_running(lambda: seen.append(("nested, at once", reactor.running)))
        seen.append(("after nested", reactor.running))
        reactor.stop()

    reactor.call_when_running(when_running)
    assert seen == []
    reactor.run()
    assert seen == [("first", True), ("nested, at once", True), ("after nested", True)]


# ---------------------------------------------------------------------------------- triggers


def test_triggers_run_in_phase_order(reactor: Any) -> None:
    order: list[tuple[str, str, bool]] = []
    for event in ("shutdown", "startup"):
        for phase in ("after", "during", "before"):
            reactor.add_system_event_trigger(
                phase, event, lambda p=phase, e=event: order.append((e, p, reactor.running))
            )
    stop_after_startup(reactor)
    reactor.run()
    assert order == [
        ("startup", "before", False),
        ("startup", "during", False),
        ("startup", "after", True),
        ("shutdown", "before", True),
        ("shutdown", "during", True),
        ("shutdown", "after", True),
    ]
    assert not reactor.running


def test_triggers_are_consumed(reactor: Any) -> None:
    fired: list[str] = []
    reactor.add_system_event_trigger("during", "shutdown", fired.append, "x")
    for _ in range(2):
        stop_after_startup(reactor)
        reactor.run()
    assert fired == ["x"]


def test_before_shutdown_deferreds_delay_shutdown(reactor: Any) -> None:
    order: list[str] = []
    first: Deferred[None] = Deferred()
    second: Deferred[None] = Deferred()
    failing: Deferred[None] = Deferred()

    def fire(d: Deferred[None], name: str, error: Exception | None = None) -> None:
        order.append(name)
        if error is None:
            d.callback(None)
        else:
            d.errback(error)  # logged; it doesn't hold shutdown up

    def first_trigger() -> Deferred[None]:
        # Once every trigger has returned, the Deferreds fire one loop round apart, in an order
        # unlike the triggers' order.
        reactor.call_soon(fire, second, "second fired")
        reactor.call_soon(reactor.call_soon, fire, failing, "failing fired", OSError("x"))
        reactor.call_soon(reactor.call_soon, reactor.call_soon, fire, first, "first fired")
        return first

    reactor.add_system_event_trigger("before", "shutdown", first_trigger)
    reactor.add_system_event_trigger("before", "shutdown", lambda: second)
    reactor.add_system_event_trigger("before", "shutdown", lambda: failing)
    reactor.add_system_event_trigger("before", "shutdown", lambda: succeed(None))
    reactor.add_system_event_trigger("during", "shutdown", order.append, "during")
    reactor.add_system_event_trigger("after", "shutdown", order.append, "after")
    stop_after_startup(reactor)
    reactor.run()
    assert order == ["second fired", "failing fired", "first fired", "during", "after"]


def test_before_startup_deferred_delays_running(reactor: Any) -> None:
    order: list[str] = []
    d: Deferred[None] = Deferred()

    def fire() -> None:
        order.append("fired")
        d.callback(None)

    def before() -> Deferred[None]:
        reactor.call_soon(fire)
        return d

    def when_running() -> None:
        order.append("running")
        reactor.stop()

    reactor.add_system_event_trigger("before", "startup", before)
    reactor.call_when_running(when_running)
    reactor.run()
    assert order == ["fired", "running"]


def test_remove_system_event_trigger(reactor: Any) -> None:
    fired: list[str] = []
    keep = reactor.add_system_event_trigger("during", "shutdown", fired.append, "keep")
    drop = reactor.add_system_event_trigger("during", "shutdown", fired.append, "drop")
    reactor.remove_system_event_trigger(drop)
    with pytest.raises(ValueError):
        reactor.remove_system_event_trigger(drop)
    with pytest.raises(ValueError):
        reactor.remove_system_event_trigger("nonsense")
    stop_after_startup(reactor)
    reactor.run()
    assert fired == ["keep"]
    with pytest.raises(ValueError):
        reactor.remove_system_event_trigger(keep)  # already fired


def test_bad_phase_or_event(reactor: Any) -> None:
    with pytest.raises(ValueError):
        reactor.add_system_event_trigger("whenever", "startup", print)
    with pytest.raises(ValueError):
        reactor.add_system_event_trigger("before", "lunch", print)


# ---------------------------------------------------------------------------------- errors


def test_callback_errors_are_logged_and_the_loop_continues(
    reactor: Any, run: Any, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = socket.socketpair()
    done: Deferred[None] = Deferred()
    everywhere = {"in trigger", "in call_soon call", "in timed call", "in call from thread", "in reader"}
    raised: set[str] = set()

    def boom(where: str) -> None:
        raised.add(where)
        if raised == everywhere:
            reactor.call_soon(done.callback, None)  # runs only if the loop carried on
        raise RuntimeError(where)

    def bad_reader() -> None:
        reactor.remove_reader(a.fileno())
        boom("in reader")

    try:
        reactor.add_system_event_trigger("during", "startup", boom, "in trigger")
        reactor.call_soon(boom, "in call_soon call")
        reactor.call_later(0, boom, "in timed call")
        reactor.call_from_thread(boom, "in call from thread")
        reactor.add_reader(a.fileno(), bad_reader)
        b.send(b"x")
        with caplog.at_level(logging.ERROR, logger="net"):
            run(reactor, done)
    finally:
        a.close()
        b.close()
    messages = {str(r.exc_info[1]) for r in caplog.records if r.exc_info and r.name == "net.reactor"}
    assert messages >= everywhere


# ---------------------------------------------------------------------------------- threads


def test_call_from_thread_many_threads(reactor: Any, run: Any) -> None:
    threads, per_thread = 8, 1000
    received: dict[int, list[int]] = {t: [] for t in range(threads)}
    done: Deferred[None] = Deferred()
    count = [0]

    def arrive(t: int, i: int) -> None:
        received[t].append(i)
        count[0] += 1
        if count[0] == threads * per_thread:
            done.callback(None)

    def producer(t: int) -> None:
        for i in range(per_thread):
            reactor.call_from_thread(arrive, t, i)

    def start() -> None:
        for t in range(threads):
            threading.Thread(target=producer, args=(t,)).start()

    reactor.call_when_running(start)
    run(reactor, done)
    assert count[0] == threads * per_thread
    assert all(received[t] == list(range(per_thread)) for t in range(threads))


def test_call_from_thread_before_run(reactor: Any, run: Any) -> None:
    d: Deferred[str] = Deferred()
    t = threading.Thread(target=reactor.call_from_thread, args=(d.callback, "queued"))
    t.start()
    t.join()
    assert run(reactor, d) == "queued"


# ---------------------------------------------------------------------------------- fd set


def test_reader_and_writer_on_socketpair(reactor: Any, run: Any) -> None:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    events: list[str] = []
    done: Deferred[bytes] = Deferred()

    def writable() -> None:
        events.append("writable")
        reactor.remove_writer(a.fileno())
        reactor.remove_writer(a.fileno())  # a no-op now
        a.send(b"ping")

    def b_readable() -> None:
        events.append("b readable")
        reactor.remove_reader(b.fileno())
        b.send(b.recv(100) + b"/pong")

    def replaced() -> None:
        raise AssertionError("a replaced reader must not be called")

    def a_readable() -> None:
        data = a.recv(100)
        events.append("a readable")
        reactor.remove_reader(a.fileno())
        done.callback(data)

    try:
        reactor.add_reader(a.fileno(), replaced)
        reactor.add_reader(a.fileno(), a_readable)  # replaces
        reactor.add_writer(a.fileno(), writable)  # same fd, both directions
        reactor.add_reader(b.fileno(), b_readable)
        assert run(reactor, done) == b"ping/pong"
        assert events == ["writable", "b readable", "a readable"]
    finally:
        a.close()
        b.close()


def test_remove_unknown_fd_is_a_noop(reactor: Any) -> None:
    a, b = socket.socketpair()
    try:
        reactor.remove_reader(a.fileno())
        reactor.remove_writer(a.fileno())
    finally:
        a.close()
        b.close()


def test_writer_removed_by_reader_is_not_called(reactor: Any, run: Any) -> None:
    a, b = socket.socketpair()
    done: Deferred[None] = Deferred()
    calls: list[str] = []

    def readable() -> None:
        calls.append("read")
        reactor.remove_writer(a.fileno())
        reactor.remove_reader(a.fileno())
        iterations(reactor, 3).chain_deferred(done)  # a late writer call would show by then

    def writable() -> None:
        calls.append("write")
        reactor.remove_writer(a.fileno())

    try:
        b.send(b"x")  # a is readable and writable in the same round
        reactor.add_reader(a.fileno(), readable)
        reactor.add_writer(a.fileno(), writable)
        run(reactor, done)
    finally:
        a.close()
        b.close()
    assert calls[0] == "read" or calls == ["write", "read"]
    assert calls.count("write") <= 1
