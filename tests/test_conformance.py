"""The transport conformance kit (:mod:`net.testing.conformance`) over every transport it knows
(:data:`~net.testing.conformance.STREAM_PAIRS`: TCP, TLS, in memory) on every reactor backend.

A transport joins by adding its pair maker to ``STREAM_PAIRS``; nothing here changes. The
transports' own behaviour (connect errors, certificates, ...) is tested in their own modules.
"""

from __future__ import annotations

import os
import unittest
from typing import Any

import pytest

from net.testing import STREAM_PAIRS, TRANSPORT_CHECKS, MemoryTransport, Recorder, connect_protocols
from net.testing.conformance import check_transport, register_pair


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("check", TRANSPORT_CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", sorted(STREAM_PAIRS))
def test_conformance(reactor: Any, run: Any, name: str, check: Any) -> None:
    pair = STREAM_PAIRS[name](reactor)
    try:
        run(reactor, check(reactor, pair), timeout=60)
    except unittest.SkipTest as skip:
        pytest.skip(str(skip))


def test_half_close_is_skipped_exactly_where_there_is_none(reactor: Any, run: Any) -> None:
    """check_transport runs every check; the one TLS cannot pass is reported skipped, not failed,
    and not one descriptor is left open afterwards."""
    before = open_fds()
    assert run(reactor, check_transport(reactor, STREAM_PAIRS["tcp"](reactor))) == []
    assert run(reactor, check_transport(reactor, STREAM_PAIRS["tls"](reactor)), timeout=60) == [
        "check_half_close"]
    assert open_fds() <= before  # (the reactor's own, and the certificates' files, were open before)


def test_a_failing_check_leaves_nothing_open(reactor: Any, run: Any) -> None:
    """force_close_both: a check that fails half-way still closes both ends and the port."""
    from net.testing.conformance import Connected

    before = open_fds()
    protocols: list[Recorder] = []

    async def failing() -> None:
        async with Connected(reactor, STREAM_PAIRS["tcp"](reactor)) as (_, server, client):
            protocols.extend((server, client))
            client.transport.write(b"some")
            raise KeyError("the check failed here")

    with pytest.raises(KeyError):
        run(reactor, failing())
    assert [len(p.reasons) for p in protocols] == [1, 1]
    assert open_fds() <= before


def test_register_pair_adds_a_transport() -> None:
    try:
        register_pair("memory_again", STREAM_PAIRS["memory"])
        assert STREAM_PAIRS["memory_again"] is STREAM_PAIRS["memory"]
        with pytest.raises(ValueError, match="identifier"):
            register_pair("unix sockets", STREAM_PAIRS["memory"])
    finally:
        STREAM_PAIRS.pop("memory_again", None)


# -- half-close in memory, step by step (the Pump's rules, sans I/O) --------------------------------


class KeepsWriting(Recorder):
    keep_open_on_eof = True


def test_memory_half_close_step_by_step() -> None:
    server, client = KeepsWriting(), Recorder()
    pump = connect_protocols(server, client)
    assert client.transport.can_write_eof()
    client.transport.write(b"request")
    client.transport.write_eof()
    assert isinstance(client.transport, MemoryTransport) and not client.transport.is_closing()
    with pytest.raises(RuntimeError, match="write_eof"):
        client.transport.write(b"late")
    pump.pump()
    assert server.events == ["made", "data", "eof"]  # kept open: no close yet
    server.transport.write(b"answer")
    pump.pump()
    assert bytes(client.received) == b"answer" and client.events == ["made", "data"]
    server.transport.write_eof()  # both directions done: the connection closes
    pump.pump()
    assert client.events == ["made", "data", "eof", "lost"]
    assert server.events == ["made", "data", "eof", "lost"]


def test_memory_eof_waits_while_reading_is_paused() -> None:
    server, client = Recorder(), Recorder()
    pump = connect_protocols(server, client)
    server.transport.pause_reading()
    client.transport.write_eof()
    pump.pump()
    assert server.events == ["made"]
    server.transport.resume_reading()
    pump.pump()
    assert server.events == ["made", "eof", "lost"]


def test_every_name_of_the_old_module_still_imports_from_net_testing() -> None:
    """net/testing.py became a package; code importing its names from ``net.testing`` is unchanged."""
    import net.testing

    old = ["MemoryTransport", "Pump", "connect_protocols", "ClockCall", "Clock", "Recorder", "Echo",
           "CollectingFactory", "StreamPair", "EndpointPair", "tcp_pair", "iterations",
           "check_echo_one_byte", "check_echo_16_mib", "check_lose_connection_flushes",
           "check_abort_drops", "check_abort_reason", "check_write_after_close_ignored",
           "check_pause_resume_reading", "check_addresses", "ChunkProducer",
           "check_streaming_producer", "check_pull_producer", "check_protocol_as_consumer",
           "CheckFunction", "TRANSPORT_CHECKS", "check_transport"]
    assert [name for name in old if name not in net.testing.__all__] == []
    for name in net.testing.__all__:
        assert getattr(net.testing, name) is not None
