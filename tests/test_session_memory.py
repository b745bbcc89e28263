"""Memory comes back when a connection closes: by reference counting, not the cyclic GC (issue 12).

Before, a closed session sat in reference cycles (its codec's hooks, its bootstrap proxy, the
adapter's callbacks, the transport) and kept its decoder's buffer until the cyclic garbage
collector ran: 20 closed connections held 320 MiB until ``gc.collect()``.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

import broker
from broker.lifecycle import State
from broker_pair import memory_pair


class Service(broker.Root):
    def remote_echo(self, value: Any) -> Any:
        return value

    def remote_child(self) -> broker.Referenceable:
        return broker.Referenceable()


@pytest.fixture
def no_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.parametrize("how", ["client goodbye", "server goodbye", "reset"])
def test_a_closed_session_is_freed_without_the_cyclic_gc(no_gc: None, how: str) -> None:
    pair = memory_pair(Service())
    assert pair.call("echo", b"x" * 3_000_000) == b"x" * 3_000_000  # a big frame went through both
    child = pair.call("child")
    assert child.call_remote("echo", 1) is not None
    sessions = [weakref.ref(pair.client_session), weakref.ref(pair.server_session)]
    protocols = [weakref.ref(pair.client), weakref.ref(pair.server)]
    if how == "client goodbye":
        pair.client_session.disconnect()
        pair.pump()
    elif how == "server goodbye":
        pair.server_session.disconnect()
        pair.pump()
    else:
        pair.lose("server")
    assert pair.client_session.state is State.CLOSED and pair.server_session.state is State.CLOSED
    del pair, child
    assert [r() for r in sessions] == [None, None]
    assert [r() for r in protocols] == [None, None]


def test_a_closed_session_lets_go_of_its_buffer_at_once() -> None:
    pair = memory_pair(Service())
    pair.call("echo", b"x" * 3_000_000)
    session = pair.server_session
    pair.lose("client")
    assert session.state is State.CLOSED
    assert session.buffered_bytes == 0
    assert len(session.exports) == 0 and len(session.imports) == 0
    with pytest.raises(broker.wire.LocalProtocolError, match="after connection_lost"):
        session.receive_data(b"late")
