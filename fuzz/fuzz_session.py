"""A whole broker Session (sans I/O) fed arbitrary bytes from its peer.

The session serves a small root (echo, arithmetic, failures, Deferred and coroutine results,
calls that never finish, new references, call-backs into the peer, a registered copyable) and,
once the handshake is done, has questions of its own open on the peer's root, so that answers,
errors and references from the peer have somewhere to go.

Input: one control byte, then what the peer sends. Control bits: 0x80 raw (the fuzzer must do
the handshake itself; otherwise a valid peer hello is fed first); 0x40 end the stream (feed
``b""``) after the payload; 0x20 small limits; 0x1f seeds the split points (0: one chunk).

Checked: ``receive_data`` and ``process`` never raise (a bad peer gets a goodbye and a close,
nothing else); releases (``flush_releases``, run when ``release_due`` was called) never raise;
``connection_lost`` never raises and leaves no question or answer behind; every byte the session
queued decodes as a hello followed by valid messages, nothing follows a goodbye, and nothing is
queued after the session entered CLOSING.

Regression seeds in ``fuzz/corpus/session/`` include the three bugs this target found in the
first session (messages after a goodbye dispatched, a sender ref to object 0 imported, a peer's
tiny ``max_frame_size`` making ``MessageTooLarge`` escape).
"""

from __future__ import annotations

import dataclasses
import gc
import logging
from typing import Any

from fuzz import _util

with _util.instrument(__name__):
    from broker import wire
    from broker.flavors import CopyRegistry, Referenceable, Root
    from broker.messages import (
        DEFAULT_MAX_CONTAINER_LENGTH,
        DEFAULT_MAX_DEPTH,
        DEFAULT_MAX_FRAME_SIZE,
        Goodbye,
        Hello,
    )
    from broker.session import Limits, RemoteReference, Session, State
    from net.defer import Deferred

REGISTRY = CopyRegistry()


@dataclasses.dataclass
class Point:
    x: Any = 0
    y: Any = 0


REGISTRY.register("fuzz.Point", Point)

PEER_HELLO = wire.encode(Hello(1, DEFAULT_MAX_FRAME_SIZE, DEFAULT_MAX_DEPTH, DEFAULT_MAX_CONTAINER_LENGTH, ()))
SMALL = Limits(max_frame_size=4096, max_outstanding_calls=4, max_running_calls=4,
               max_live_references=4, max_depth=8, max_container_length=64)


class Counter(Referenceable):
    def __init__(self) -> None:
        self.n = 0

    def remote_incr(self, by: Any = 1) -> Any:
        self.n += by
        return self.n


class Service(Root):
    def __init__(self) -> None:
        self.later: list[tuple[Deferred[Any], Any]] = []

    def remote_echo(self, value: Any = None) -> Any:
        return value

    def remote_add(self, a: Any, b: Any = 0) -> Any:
        return a + b

    def remote_fail(self, message: Any = "") -> None:
        raise ValueError(message)

    def remote_later(self, value: Any = None) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.later.append((d, value))
        return d

    def remote_hang(self) -> Deferred[Any]:
        return Deferred()

    async def remote_coro(self, value: Any = None) -> Any:
        return value

    def remote_counter(self) -> Counter:
        return Counter()

    def remote_give_back(self, obj: Any = None) -> Any:
        return obj

    def remote_point(self, x: Any = 0, y: Any = 0) -> Point:
        return Point(x, y)

    def remote_call_back(self, ref: Any, method: Any = "echo", *args: Any) -> Any:
        if isinstance(ref, RemoteReference) and isinstance(method, str):
            return ref.call_remote(method, *args)
        return None

    def fire_later(self) -> None:
        later, self.later = self.later, []
        for d, value in later:
            d.callback(value)


def _ignore(_: Any) -> None:
    return None


def _check_sent(sent: bytes) -> None:
    """What the session sent is a hello and then well-formed messages, none after a goodbye."""
    decoder = wire.WireDecoder(max_frame_size=(1 << 32) - 1)
    decoder.receive_data(sent)
    decoder.receive_data(b"")
    said_goodbye = False
    while True:
        message = decoder.next_message()  # a RemoteProtocolError here is our bug: let it out
        if message is wire.CLOSED:
            return
        assert message is not wire.NEED_DATA
        assert not said_goodbye, f"{message!r} sent after a goodbye"
        said_goodbye = type(message) is Goodbye


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    control, payload = data[0], data[1:]
    limits = SMALL if control & 0x20 else Limits()
    sent = bytearray()
    releases_due: list[None] = []
    service = Service()
    session = Session(root=service, registry=REGISTRY, limits=limits,
                      release_due=lambda: releases_due.append(None))
    results: list[Any] = []

    def ready(root: RemoteReference) -> None:
        # Questions of our own, so the peer's answers, errors and references land somewhere.
        root.call_remote("anything", 1, "two", [3]).add_both(results.append)
        root.call_remote("with_ref", Counter()).add_both(results.append)
        root.call_remote_no_answer("one_way", None)

    session.ready.add_callbacks(ready, _ignore)

    def take_output() -> None:
        was_closing = session.state is not State.HANDSHAKE and session.state is not State.OPEN
        sent.extend(session.data_to_send())
        if was_closing:
            assert not session.data_to_send(), "queued after CLOSING"

    stream = list(_util.chunks(payload, control & 0x1F))
    if not control & 0x80:
        stream.insert(0, PEER_HELLO)
    if control & 0x40:
        stream.append(b"")
    for chunk in stream:
        if session.state is State.CLOSING:
            break
        session.receive_data(chunk)
        while session.process(16):
            take_output()
        take_output()
        while (releases_due or service.later) and session.state is not State.CLOSING:
            while releases_due:
                releases_due.pop()
                session.flush_releases()
            service.fire_later()
            take_output()
    if session.state is not State.CLOSING:  # let every proxy die, so releases are sent and checked too
        del results[:]
        if len(session.imports):
            gc.collect(1)  # the young generations hold this input's objects; a full collect is ms
        while releases_due:
            releases_due.pop()
            session.flush_releases()
    take_output()
    session.connection_lost(session.close_reason)
    assert session.state is State.CLOSED
    assert not session.questions and not session.answers
    assert not session.data_to_send()
    _check_sent(bytes(sent))


if __name__ == "__main__":
    # A bad peer is logged at WARNING; that is not news to the fuzzer. Only here, in the fuzzer's
    # own process: imported (``fuzz.run --repro``, the smoke test) the target must leave the
    # importer's logging alone, or every later test's log capture sees nothing.
    logging.disable(logging.CRITICAL)
    _util.main(TestOneInput)
