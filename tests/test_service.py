"""net.service: the service model (start in order, stop in reverse, failures contained), the timer
(on net.testing.Clock), a stream server service on every backend; broker.service's graceful stop."""

from __future__ import annotations

import inspect
import logging
from typing import Any

import pytest
from zope.interface.verify import verifyObject

import broker
from broker.service import BrokerService
from net import interfaces
from net.defer import Deferred, fail, succeed
from net.endpoints import client
from net.service import IService, MultiService, Service, StreamServerService, TimerService
from net.testing import Clock, CollectingFactory, Echo, iterations


class Recording(Service):
    """Appends ("start"|"stop", name) to a shared journal; optionally waits on a Deferred."""

    def __init__(self, name: str, journal: list[tuple[str, str]], *, start: Any = None, stop: Any = None) -> None:
        self.name = name
        self.journal = journal
        self.start_result = start
        self.stop_result = stop

    def start_service(self) -> Any:
        super().start_service()
        self.journal.append(("start", self.name or ""))
        return self.start_result

    def stop_service(self) -> Any:
        super().stop_service()
        self.journal.append(("stop", self.name or ""))
        return self.stop_result


# -- the contract ----------------------------------------------------------------------------------


def test_zope_interface_and_typing_protocol_name_the_same_members() -> None:
    members = {n for n, v in vars(IService).items()
               if not n.startswith("_") and (inspect.isfunction(v) or isinstance(v, property))}
    assert set(interfaces.IService.names()) == members


def test_every_service_here_provides_the_interface_and_the_protocol() -> None:
    clock = Clock()
    for service in (Service(), MultiService(), TimerService(clock, 1.0, lambda: None),
                    StreamServerService(clock, "tcp:0", CollectingFactory())):  # type: ignore[arg-type]
        assert verifyObject(interfaces.IService, service)
        assert isinstance(service, IService)


# -- MultiService ----------------------------------------------------------------------------------


def test_children_start_in_order_each_after_the_previous_one_and_stop_in_reverse() -> None:
    journal: list[tuple[str, str]] = []
    slow: Deferred[None] = Deferred()
    slow_stop: Deferred[None] = Deferred()
    top = MultiService(Recording("a", journal), Recording("b", journal, start=slow, stop=slow_stop),
                       Recording("c", journal))
    started = top.start_service()
    assert journal == [("start", "a"), ("start", "b")]  # c waits for b's Deferred
    assert not started.called
    slow.callback(None)
    assert journal[-1] == ("start", "c") and started.called
    assert [s.name for s in top] == ["a", "b", "c"] and all(s.running for s in top)
    journal.clear()
    stopped = top.stop_service()
    assert journal == [("stop", "c"), ("stop", "b")]  # a waits for b's
    assert not stopped.called
    slow_stop.callback(None)
    assert journal == [("stop", "c"), ("stop", "b"), ("stop", "a")] and stopped.called
    assert not top.running and not any(s.running for s in top)


def test_a_child_failing_to_stop_is_logged_and_the_others_still_stop(caplog: pytest.LogCaptureFixture) -> None:
    journal: list[tuple[str, str]] = []
    top = MultiService(Recording("a", journal), Recording("b", journal, stop=fail(RuntimeError("disk gone"))),
                       Recording("c", journal))
    top.start_service()
    journal.clear()
    outcome: list[object] = []
    with caplog.at_level(logging.ERROR, logger="net.service"):
        top.stop_service().add_both(outcome.append)
    assert journal == [("stop", "c"), ("stop", "b"), ("stop", "a")]
    assert outcome == [None]
    assert "failed to stop" in caplog.text and "disk gone" in caplog.text


def test_a_child_failing_to_start_stops_those_started_and_fails_the_start() -> None:
    journal: list[tuple[str, str]] = []
    top = MultiService(Recording("a", journal), Recording("b", journal),
                       Recording("c", journal, start=fail(OSError("address in use"))), Recording("d", journal))
    outcome: list[Any] = []
    top.start_service().add_both(outcome.append)
    assert journal == [("start", "a"), ("start", "b"), ("start", "c"), ("stop", "b"), ("stop", "a")]
    assert isinstance(outcome[0].value, OSError) and not top.running


def test_services_added_while_running_start_and_removed_ones_stop() -> None:
    journal: list[tuple[str, str]] = []
    top = MultiService()
    top.start_service()
    late = Recording("late", journal)
    top.add_service(late)
    assert journal == [("start", "late")] and late.parent is top
    top.remove_service(late)
    assert journal == [("start", "late"), ("stop", "late")] and late.parent is None and list(top) == []


def test_names_are_unique_and_a_service_has_one_parent() -> None:
    top = MultiService(Service(), name="top")
    named = Recording("x", [])
    top.add_service(named)
    assert top.get_service_named("x") is named
    with pytest.raises(ValueError, match="already has a service named 'x'"):
        top.add_service(Recording("x", []))
    with pytest.raises(ValueError, match="belongs to"):
        MultiService(named)
    with pytest.raises(KeyError):
        top.get_service_named("y")


# -- TimerService, on a Clock ----------------------------------------------------------------------


def test_timer_calls_at_once_then_every_interval_until_stopped() -> None:
    clock = Clock()
    calls: list[float] = []
    timer = TimerService(clock, 10.0, lambda: calls.append(clock.seconds()))
    timer.start_service()
    assert calls == [0.0]
    clock.advance(35.0)
    assert calls == [0.0, 10.0, 20.0, 30.0]
    stopped = timer.stop_service()
    assert stopped.called and not clock.get_delayed_calls()
    clock.advance(100.0)
    assert len(calls) == 4


def test_timer_waits_for_a_deferred_and_skips_the_ticks_it_overran() -> None:
    clock = Clock()
    pending: list[Deferred[None]] = []

    def slow() -> Deferred[None]:
        pending.append(Deferred())
        return pending[-1]

    timer = TimerService(clock, 10.0, slow)
    timer.start_service()
    clock.advance(25.0)
    assert len(pending) == 1  # no overlap: the first call has not finished
    pending[0].callback(None)
    assert len(pending) == 1
    clock.advance(5.0)  # the next tick of the rhythm, t=30 (10 and 20 were skipped)
    assert len(pending) == 2
    stopped = timer.stop_service()
    assert not stopped.called  # waits for the call in progress
    pending[1].callback(None)
    assert stopped.called and not clock.get_delayed_calls()


def test_a_failing_call_is_logged_and_the_timer_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    calls: list[int] = []

    def flaky() -> None:
        calls.append(1)
        raise ValueError("bad run")

    timer = TimerService(clock, 1.0, flaky)
    with caplog.at_level(logging.ERROR, logger="net.service"):
        timer.start_service()
        clock.advance(2.0)
    assert len(calls) == 3 and "bad run" in caplog.text
    timer.stop_service()


def test_timer_refuses_a_bad_interval() -> None:
    with pytest.raises(ValueError, match="> 0"):
        TimerService(Clock(), 0, print)


# -- StreamServerService, every backend --------------------------------------------------------------


def test_stream_server_listens_while_running_and_closes_on_stop(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        factory = CollectingFactory(Echo)
        service = StreamServerService(reactor, "tcp:0:interface=127.0.0.1", factory)
        await service.start_service()
        assert service.running and service.port is not None
        port = service.port.get_host().port
        conn = await client(reactor, f"tcp:127.0.0.1:{port}").connect(CollectingFactory())
        conn.transport.write(b"ping")
        await conn.when_received(4)
        await service.stop_service()
        assert not service.running and service.port is None
        with pytest.raises(ConnectionRefusedError):
            await client(reactor, f"tcp:127.0.0.1:{port}").connect(CollectingFactory())
        conn.transport.lose_connection()
        await conn.when_lost()

    run(reactor, scenario())


def test_stream_server_that_cannot_listen_fails_its_start(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        first = StreamServerService(reactor, "tcp:0:interface=127.0.0.1", CollectingFactory())
        await first.start_service()
        assert first.port is not None
        taken = first.port.get_host().port
        second = StreamServerService(reactor, f"tcp:{taken}:interface=127.0.0.1", CollectingFactory())
        top = MultiService(second)
        with pytest.raises(Exception, match=str(taken)):
            await top.start_service()
        assert not second.running
        with pytest.raises(ValueError, match="unknown server endpoint type"):
            await StreamServerService(reactor, "tpc:0", CollectingFactory()).start_service()
        await first.stop_service()

    run(reactor, scenario())


# -- BrokerService: graceful stop ------------------------------------------------------------------


class Slow(broker.Root):
    def __init__(self) -> None:
        self.waiting: list[Deferred[str]] = []
        self.arrived: Deferred[None] = Deferred()

    def remote_add(self, a: int, b: int) -> int:
        return a + b

    def remote_wait(self) -> Deferred[str]:
        d: Deferred[str] = Deferred()
        self.waiting.append(d)
        if not self.arrived.called:
            self.arrived.callback(None)
        return d


def test_broker_service_lets_calls_in_flight_finish_then_says_goodbye(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        root = Slow()
        service = BrokerService(reactor, "tcp:0:interface=127.0.0.1", root, grace=30.0)
        await service.start_service()
        assert service.port is not None
        port = service.port.get_host().port
        ref = await broker.connect(reactor, f"tcp:127.0.0.1:{port}")
        assert await ref.call_remote("add", 1, 2) == 3
        in_flight = ref.call_remote("wait")
        await root.arrived
        await iterations(reactor, 1)  # remote_wait has returned its Deferred: the call is running
        assert service.in_flight() == 1 and service.connection_count() == 1
        stopped = service.stop_service()
        # Stopped listening at once: a new client is refused, cleanly.
        with pytest.raises(ConnectionRefusedError):
            await broker.connect(reactor, f"tcp:127.0.0.1:{port}")
        assert not stopped.called  # the call in flight holds the stop (up to grace)
        root.waiting[0].callback("done")
        assert await in_flight == "done"
        await stopped
        assert service.connection_count() == 0
        # The connection was closed with a goodbye: a later call fails at once, cleanly.
        with pytest.raises(broker.ConnectionLost, match="shutting down"):
            await ref.call_remote("add", 1, 2)

    run(reactor, scenario())


def test_broker_service_ends_calls_still_running_after_grace_with_a_goodbye(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        root = Slow()
        service = BrokerService(reactor, "tcp:0:interface=127.0.0.1", root, grace=0.2)
        await service.start_service()
        assert service.port is not None
        ref = await broker.connect(reactor, f"tcp:127.0.0.1:{service.port.get_host().port}")
        in_flight = ref.call_remote("wait")
        await root.arrived
        await service.stop_service()  # fires after grace: the call never finishes by itself
        with pytest.raises(broker.ConnectionLost, match="shutting down"):
            await in_flight

    run(reactor, scenario())


class Me(broker.Avatar):
    def __init__(self, avatar_id: Any) -> None:
        self.avatar_id = avatar_id

    def perspective_whoami(self) -> str:
        return str(self.avatar_id)


def test_broker_service_serves_a_portal_with_login(reactor: Any, run: Any) -> None:
    from cred.checkers import InMemoryUsernamePasswordDatabase
    from cred.credentials import UsernamePassword
    from cred.portal import Portal, Realm

    async def scenario() -> None:
        users = InMemoryUsernamePasswordDatabase({"alice": "secret"}, iterations=4096)
        service = BrokerService(reactor, "tcp:0:interface=127.0.0.1", Portal(Realm(lambda a, m: Me(a)), [users]))
        await service.start_service()
        assert service.port is not None
        avatar = await broker.login(reactor, f"tcp:127.0.0.1:{service.port.get_host().port}",
                                    UsernamePassword("alice", "secret"))
        assert await avatar.call_remote("whoami") == "alice"
        await service.stop_service()

    run(reactor, scenario())


def test_broker_service_stop_before_any_connection_is_immediate(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        service = BrokerService(reactor, "tcp:0:interface=127.0.0.1", Slow())
        await service.start_service()
        await service.stop_service()
        assert not service.running and service.port is None

    run(reactor, scenario())


def test_succeed_is_enough_for_a_service_that_returns_none() -> None:
    # A plain Service returns None from both: a MultiService still fires.
    top = MultiService(Service(), Service())
    assert top.start_service().called and top.stop_service().called
    assert succeed(None).called
