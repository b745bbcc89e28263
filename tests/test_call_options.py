"""Deadlines and call metadata (feature "call-options", PROTOCOL.md §18).

Sans-I/O on memory pairs with one fake clock (time passes only when a test says), raw peers for
what an old or misbehaving peer sends, and one loopback end-to-end check on every backend.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from broker_pair import memory_pair, raw_peer, result_of

import broker
from broker import wire
from broker.call_options import (
    MAX_METADATA_BYTES,
    MAX_METADATA_ENTRIES,
    CallContext,
    CallIdFilter,
    CallOptions,
    call_id_of,
    current_call,
)
from broker.errors import DeadlineExceeded, InvalidReferenceError, RemoteCancelledError
from broker.flavors import Referenceable
from broker.messages import FEATURE_CALL_OPTIONS, Call, Cancel, Error, ExportedRef, Hello
from broker.protocol import BrokerFactory
from broker.session import Limits
from net.defer import CancelledError, Deferred

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
ALL = ("heartbeat", "decrefs", FEATURE_CALL_OPTIONS)


class Slow(Referenceable):
    """Methods that wait for ever (on Deferreds nobody fires) and say whether they were stopped."""

    def __init__(self, clock: Any = None) -> None:
        self.clock = clock
        self.cancelled: list[str] = []
        self.contexts: list[CallContext] = []
        self.peer_root: Any = None

    def remote_wait(self) -> Deferred[None]:
        self.contexts.append(current_call())  # type: ignore[arg-type]
        return Deferred(lambda d: self.cancelled.append("wait"))

    async def remote_wait_coro(self) -> None:
        try:
            await Deferred()
        except CancelledError:
            self.cancelled.append("coro")
            raise

    def remote_was_cancelled(self, name: str) -> bool:
        return name in self.cancelled

    def remote_context(self) -> dict[str, Any]:
        ctx = current_call()
        assert ctx is not None
        return {"remaining": ctx.remaining(), "metadata": dict(ctx.metadata), "call_id": ctx.call_id}

    async def remote_later_then_ask(self, delay: float) -> Any:
        d: Deferred[None] = Deferred()
        self.clock.call_later(delay, d.callback, None)
        await d
        return await self.peer_root.call_remote("context")

    def remote_fail(self) -> None:
        raise ValueError("broken on purpose")

    def remote_raise_deadline(self) -> None:
        raise DeadlineExceeded("broker.DeadlineExceeded", "a nested call ran out of time")


class Asker(Referenceable):
    """The client's root: reports the context of the server's nested call."""

    def remote_context(self) -> dict[str, Any]:
        ctx = current_call()
        assert ctx is not None
        return {"remaining": ctx.remaining(), "metadata": dict(ctx.metadata)}


def calls_sent(pair: Any) -> list[Call]:
    decoder = wire.WireDecoder(max_frame_size=2**32 - 1, resolve=lambda v: v, features=ALL, expect_hello=True)
    decoder.receive_data(bytes(pair.client_transport.written))
    out = []
    while (m := decoder.next_message()) not in (wire.NEED_DATA, wire.CLOSED):
        if isinstance(m, Call):
            out.append(m)
    return out


# -- the caller's side ------------------------------------------------------------------------------


def test_options_travel_in_field_8_not_in_kwargs() -> None:
    pair = memory_pair(Slow())
    d = pair.root.options(timeout=5, metadata={"traceparent": TRACEPARENT}).call_remote("context")
    pair.pump()
    seen = result_of(d)
    assert seen == {"remaining": 5.0, "metadata": {"traceparent": TRACEPARENT},
                    "call_id": "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"}
    (call,) = calls_sent(pair)
    assert call.kwargs == {} and call.options == {"timeout": 5.0, "metadata": {"traceparent": TRACEPARENT}}


def test_a_plain_call_carries_no_options_and_serves_a_context() -> None:
    pair = memory_pair(Slow())
    assert pair.call("context") == {"remaining": None, "metadata": {}, "call_id": None}
    assert calls_sent(pair)[0].options is None


def test_the_connection_default_travels_too() -> None:
    pair = memory_pair(Slow(), limits=Limits(call_timeout=4.0))
    assert pair.call("context")["remaining"] == 4.0
    assert calls_sent(pair)[0].options == {"timeout": 4.0}


def test_views_combine_and_the_timeout_overrides_the_default() -> None:
    pair = memory_pair(Slow(), limits=Limits(call_timeout=30.0))
    view = pair.root.options(timeout=9, metadata={"a": "1"}).options(metadata={"b": "2"})
    d = view.options(timeout=2).call_remote("context")
    pair.pump()
    seen = result_of(d)
    assert seen["remaining"] == 2.0 and seen["metadata"] == {"a": "1", "b": "2"}


@pytest.mark.parametrize("bad", [
    {"timeout": -1}, {"timeout": float("nan")}, {"timeout": "5"},
    {"metadata": {str(i): "" for i in range(MAX_METADATA_ENTRIES + 1)}},
    {"metadata": {"k": "x" * MAX_METADATA_BYTES}}, {"metadata": {"k": 1}},
])
def test_bad_options_are_refused_where_they_are_written(bad: dict[str, Any]) -> None:
    pair = memory_pair(Slow())
    with pytest.raises((ValueError, TypeError), match=r"ref\.options"):
        pair.root.options(**bad)


def test_the_local_deadline_gives_deadline_exceeded_and_cancels_the_callee() -> None:
    service = Slow()
    pair = memory_pair(service)
    d = pair.root.options(timeout=2).call_remote("wait")
    pair.pump()
    assert not d.called
    pair.advance(2)
    with pytest.raises(DeadlineExceeded) as info:
        result_of(d)
    assert isinstance(info.value, TimeoutError) and isinstance(info.value, RemoteCancelledError)
    assert service.cancelled == ["wait"]
    assert service.contexts[0].cancelled
    assert pair.call("was_cancelled", "wait") is True  # the connection goes on


def test_a_coroutine_method_sees_cancelled_error() -> None:
    service = Slow()
    pair = memory_pair(service)
    d = pair.root.options(timeout=1).call_remote("wait_coro")
    pair.pump()
    pair.advance(1)
    with pytest.raises(DeadlineExceeded):
        result_of(d)
    assert pair.call("was_cancelled", "coro") is True


def test_nested_calls_inherit_the_remaining_budget_and_the_trace() -> None:
    from net.testing import Clock

    clock = Clock()
    service = Slow(clock)
    pair = memory_pair(service, Asker(), clock=clock)
    service.peer_root = pair.server_session.root()  # the nested call goes back to the client
    d = pair.root.options(timeout=10, metadata={"traceparent": TRACEPARENT, "other": "x"}).call_remote("later_then_ask", 3)
    pair.pump()
    pair.advance(3)
    seen = result_of(d)
    assert seen == {"remaining": 7.0, "metadata": {"traceparent": TRACEPARENT}}  # trace keys only


# -- the callee's side, driven by a raw peer ------------------------------------------------------


def raw(service: Any, features: tuple[str, ...] = ALL) -> Any:
    from net.testing import Clock

    clock = Clock()
    connection = raw_peer(BrokerFactory(clock, service))
    connection.send(wire.encode(Hello(features=features)))
    return clock, connection


def errors_of(connection: Any) -> list[Error]:
    decoder = wire.WireDecoder(max_frame_size=2**32 - 1, resolve=lambda v: v, features=ALL, expect_hello=True)
    decoder.receive_data(bytes(connection.peer.received))
    out = []
    while (m := decoder.next_message()) not in (wire.NEED_DATA, wire.CLOSED):
        if isinstance(m, Error):
            out.append(m)
    return out


def test_the_callee_cancels_at_the_deadline_and_answers_deadline() -> None:
    service = Slow()
    clock, connection = raw(service)
    timers = len(clock.get_delayed_calls())  # the connection's own (heartbeat, ...)
    connection.send(wire.encode(Call(1, 0, "wait", options={"timeout": 2})))
    assert len(clock.get_delayed_calls()) == timers + 1
    ctx = service.contexts[0]
    assert ctx.remaining() == 2.0 and not ctx.cancelled
    clock.advance(1.5)
    connection.pump()
    assert errors_of(connection) == [] and ctx.remaining() == 0.5
    clock.advance(0.5)
    connection.pump()
    (error,) = errors_of(connection)
    assert (error.request_id, error.failure.kind, error.failure.type_name) == (1, "deadline", "broker.DeadlineExceeded")
    assert service.cancelled == ["wait"] and ctx.expired and ctx.cancelled
    with pytest.raises(DeadlineExceeded):
        ctx.raise_if_cancelled()  # what a thread-run part of the method checks
    assert len(clock.get_delayed_calls()) == timers  # the timer went with the call


def test_a_one_way_call_is_stopped_at_its_deadline_and_answered_with_nothing() -> None:
    service = Slow()
    clock, connection = raw(service)
    connection.send(wire.encode(Call(0, 0, "wait", flags=1, options={"timeout": 1})))
    clock.advance(1)
    connection.pump()
    assert service.cancelled == ["wait"] and service.contexts[0].expired
    assert errors_of(connection) == [] and connection.peer.lost is None


def test_no_timer_is_left_once_the_call_ends() -> None:
    service = Slow()
    clock, connection = raw(service)
    before = len(clock.get_delayed_calls())
    connection.send(wire.encode(Call(1, 0, "context", options={"timeout": 60})))  # answered at once
    connection.send(wire.encode(Call(2, 0, "wait", options={"timeout": 60})))
    connection.send(wire.encode(Cancel(2)))
    assert service.cancelled == ["wait"] and service.contexts[0].cancelled and not service.contexts[0].expired
    assert len(clock.get_delayed_calls()) == before  # neither call left a timer behind
    clock.advance(120)
    connection.pump()
    assert [e.failure.kind for e in errors_of(connection)] == ["cancelled"]  # not "deadline": the caller cancelled


@pytest.mark.parametrize("options", [
    {"timeout": -1}, {"timeout": True}, {"metadata": "a=b"},
    {"metadata": {str(i): "v" for i in range(MAX_METADATA_ENTRIES + 1)}},
    {"metadata": {"k": "x" * (MAX_METADATA_BYTES + 1)}},
])
def test_bad_options_get_invalid_and_the_connection_stays(options: dict[str, Any]) -> None:
    clock, connection = raw(Slow())
    connection.send(wire.encode(Call(1, 0, "context", options=options)))
    connection.send(wire.encode(Call(2, 0, "context", options={"future-option": 1})))  # unknown keys: ignored
    errors = errors_of(connection)
    assert [(e.request_id, e.failure.kind, e.failure.type_name) for e in errors] == [(1, "invalid", "broker.BadCallOptions")]
    assert connection.peer.lost is None


@pytest.mark.parametrize("options", [{"metadata": {"k": ExportedRef(5)}}, {"metadata": ["a"]}, {"timeout": [1]}])
def test_options_holding_containers_or_references_are_malformed(options: dict[str, Any]) -> None:
    clock, connection = raw(Slow())
    connection.send(wire.encode(Call(1, 0, "context", options=options)))
    assert connection.peer.lost is not None  # a protocol error: closed with a goodbye
    assert "call options" in str(connection.peer.messages()[-1])


def test_a_peer_without_the_feature_breaks_the_protocol_with_field_8() -> None:
    clock, connection = raw(Slow(), features=("heartbeat", "decrefs"))
    connection.send(wire.encode(Call(1, 0, "context", options={"timeout": 1})))
    assert connection.peer.lost is not None  # as in version 1: a call has 6 fields


def test_an_old_peer_gets_deadline_as_cancelled() -> None:
    clock, connection = raw(Slow(), features=("heartbeat", "decrefs"))
    connection.send(wire.encode(Call(1, 0, "raise_deadline")))
    (error,) = errors_of(connection)
    assert (error.failure.kind, error.failure.type_name) == ("cancelled", "broker.DeadlineExceeded")
    assert isinstance(broker.failures.from_failure(error.failure, broker.flavors.default_registry), DeadlineExceeded)


def test_an_old_server_gets_no_options_and_the_local_deadline_still_holds() -> None:
    from net.address import IPv4Address
    from net.testing import Clock, connect_protocols

    from broker.protocol import BrokerClientFactory
    from broker_pair import RawPeer

    clock = Clock()
    factory = BrokerClientFactory(clock, None)
    client = factory.build_protocol(IPv4Address("TCP", "127.0.0.1", 8000))
    peer = RawPeer()
    pump = connect_protocols(peer, client)
    peer.transport.write(wire.encode(Hello(features=("heartbeat",))))
    while pump.pump() or clock.run_until_idle():
        pass
    root = result_of(factory.root)
    d = root.options(timeout=3, metadata={"a": "b"}).call_remote("hang")
    while pump.pump() or clock.run_until_idle():
        pass
    (call,) = [m for m in peer.messages() if isinstance(m, Call)]
    assert call.options is None
    clock.advance(3)
    with pytest.raises(DeadlineExceeded):
        result_of(d)
    root.session.disconnect()
    while pump.pump() or clock.run_until_idle():
        pass


# -- logs -------------------------------------------------------------------------------------------


def test_call_log_lines_carry_the_call_id(caplog: pytest.LogCaptureFixture) -> None:
    pair = memory_pair(Slow())
    with caplog.at_level(logging.INFO, logger="broker.calls"):
        d = pair.root.options(metadata={"traceparent": TRACEPARENT}).call_remote("fail")
        pair.pump()
        d.add_errback(lambda f: None)
        d2 = pair.root.options(timeout=1, metadata={"call-id": "order-17"}).call_remote("wait")
        pair.pump()
        pair.advance(1)
        d2.add_errback(lambda f: None)
    lines = [(r.getMessage(), getattr(r, "call_id", None)) for r in caplog.records if r.name == "broker.calls"]
    assert any("[call 4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7]" in text and
               call_id == "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7" for text, call_id in lines), lines


def test_the_filter_names_the_call_being_served() -> None:
    seen: list[str] = []

    class Logs(Referenceable):
        def remote_work(self) -> None:
            record = logging.LogRecord("app", logging.INFO, __file__, 1, "working", None, None)
            CallIdFilter().filter(record)
            seen.append(record.call_id)  # type: ignore[attr-defined]

    pair = memory_pair(Logs())
    pair.root.options(metadata={"call-id": "job-9"}).call_remote("work")
    pair.call("work")
    pair.pump()
    assert seen == ["job-9", "-"]


def test_call_ids() -> None:
    assert call_id_of({"traceparent": TRACEPARENT}) == "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"
    assert call_id_of({"traceparent": "garbage", "call-id": "x"}) == "x"
    assert call_id_of({}) is None
    assert CallOptions(1).metadata == {}


# -- end to end, every backend ----------------------------------------------------------------------


def test_deadline_over_loopback(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        service = Slow()
        port = await broker.serve(reactor, "tcp:0:interface=127.0.0.1", service)
        root = await broker.connect(reactor, f"tcp:127.0.0.1:{port.get_host().port}", call_timeout=30.0)
        assert FEATURE_CALL_OPTIONS in root.session.negotiated
        with pytest.raises(DeadlineExceeded):
            await root.options(timeout=0.2).call_remote("wait_coro")
        assert await root.call_remote("was_cancelled", "coro") is True
        assert (await root.call_remote("context"))["remaining"] <= 30.0
        root.session.disconnect()
        await port.stop_listening()

    run(reactor, scenario())


# -- OpenTelemetry (extra "otel"), in a child process: a tracer provider is process-global --------

OTEL_SCRIPT = r'''
import json, sys
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)

from broker_pair import memory_pair, result_of
from test_call_options import Asker, Slow
from net.testing import Clock

clock = Clock()
service = Slow(clock)
pair = memory_pair(service, Asker(), clock=clock)
service.peer_root = pair.server_session.root()
d = pair.root.call_remote("later_then_ask", 1)  # no options: the trace context travels all the same
pair.pump()
pair.advance(1)
nested = result_of(d)
spans = [{"name": s.name, "kind": s.kind.name, "trace": s.context.trace_id, "id": s.context.span_id,
          "parent": s.parent.span_id if s.parent else None} for s in exporter.get_finished_spans()]
print(json.dumps({"spans": spans, "nested_metadata": nested["metadata"]}))
'''


def test_spans_link_client_and_server_through_the_metadata() -> None:
    import importlib.util
    import json
    import os
    import subprocess
    import sys

    if importlib.util.find_spec("opentelemetry") is None or importlib.util.find_spec("opentelemetry.sdk") is None:
        pytest.skip("opentelemetry-sdk is not installed (pip install -e .[test,otel])")
    here = os.path.dirname(__file__)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([here, os.path.dirname(here)])}
    done = subprocess.run([sys.executable, "-c", OTEL_SCRIPT], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    spans = {span["name"]: span for span in out["spans"]}
    outer_client = spans["pbroker.call later_then_ask"]
    outer_server = spans["pbroker.serve later_then_ask"]
    inner_client = spans["pbroker.call context"]
    inner_server = spans["pbroker.serve context"]
    assert (outer_client["kind"], outer_server["kind"]) == ("CLIENT", "SERVER")
    assert len({span["trace"] for span in spans.values()}) == 1  # one trace, across both sides
    assert outer_server["parent"] == outer_client["id"]  # the server span is the client's child
    assert inner_client["parent"] == outer_server["id"]  # a nested call: a child of the serving span
    assert inner_server["parent"] == inner_client["id"]
    assert out["nested_metadata"]["traceparent"].split("-")[2] == f"{inner_client['id']:016x}"


def test_the_example_runs() -> None:
    import subprocess
    import sys
    from pathlib import Path

    example = Path(__file__).resolve().parent.parent / "examples" / "deadlines.py"
    done = subprocess.run([sys.executable, str(example)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("lookup: DeadlineExceeded")
    assert "log: app [4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7] reporting" in lines
    assert lines[-1] == "server stopped: ['crunch', 'lookup']"


# -- the options parser against anything a peer may send ------------------------------------------

from hypothesis import given, strategies as st  # noqa: E402

from broker.call_options import InvalidCallOptions, parse_options  # noqa: E402

_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40) | st.binary(max_size=8)


@given(st.dictionaries(st.text(max_size=10) | st.sampled_from(["timeout", "metadata"]),
                       _scalars | st.dictionaries(_scalars, _scalars, max_size=40), max_size=5))
def test_parse_options_accepts_or_refuses_never_crashes(options: dict[Any, Any]) -> None:
    try:
        timeout, metadata = parse_options(options)
    except InvalidCallOptions as exc:
        assert exc.kind == "invalid" and exc.remote_type == "broker.BadCallOptions"
        return
    assert timeout is None or 0 <= timeout <= 1e9
    assert len(metadata) <= MAX_METADATA_ENTRIES and all(type(k) is str and type(v) is str for k, v in metadata.items())
