"""The lifecycle of one broker connection, as a table (docs/PROTOCOL.md §5.1).

Rules of this file, in the manner of h11's ``_state.py``:

* Every event that changes or depends on the connection's state goes through :func:`advance`,
  the one place where the state is checked. Nothing else in the broker compares states to decide
  whether an event is allowed.
* :data:`TRANSITIONS` is the whole table: ``(state, event) -> next state``. A pair that is not in
  it is illegal. The table in docs/PROTOCOL.md §5.1 lists the same rows (tests/test_lifecycle.py
  reads both and fails if they differ); what the session *does* on each row is written there.
* Who is at fault for an illegal event depends on who caused it: events the peer causes
  (:data:`PEER_EVENTS`) close the connection as a protocol error; the local application's raise
  :class:`broker.wire.LocalProtocolError`.
"""

from __future__ import annotations

import enum
from typing import Final

from .wire import LocalProtocolError, RemoteProtocolError

__all__ = ["State", "Event", "TRANSITIONS", "PEER_EVENTS", "ACTIVE", "IllegalPeerEvent", "advance"]


class State(enum.Enum):
    HANDSHAKE = "handshake"  #: our hello is sent; the peer's is awaited
    OPEN = "open"  #: both hellos are in: calls flow both ways
    CLOSING = "closing"  #: a goodbye was sent or received, or a close requested: nothing more is dispatched
    CLOSED = "closed"  #: the transport is gone; tables are dropped

    # Members are singletons: hash by identity, in C (Enum hashes its name in Python, and the
    # table and ``in ACTIVE`` are looked up for every message).
    __hash__ = object.__hash__


class Event(enum.Enum):
    HELLO = "hello"  #: the peer's well-formed hello arrived
    GOODBYE = "goodbye"  #: the peer's goodbye arrived
    MESSAGE = "message"  #: a call, answer, error, cancel or decref arrived
    PROTOCOL_ERROR = "protocol_error"  #: what arrived breaks the protocol (the decoder said so)
    CLOSE = "close"  #: the local application asked to end the connection
    LOST = "lost"  #: the transport reports the connection gone

    __hash__ = object.__hash__


H, O, C, X = State.HANDSHAKE, State.OPEN, State.CLOSING, State.CLOSED

TRANSITIONS: Final[dict[tuple[State, Event], State]] = {
    (H, Event.HELLO): O,
    (H, Event.GOODBYE): C,
    (H, Event.PROTOCOL_ERROR): C,
    (H, Event.CLOSE): C,
    (H, Event.LOST): X,
    (O, Event.MESSAGE): O,
    (O, Event.GOODBYE): C,
    (O, Event.PROTOCOL_ERROR): C,
    (O, Event.CLOSE): C,
    (O, Event.LOST): X,
    (C, Event.MESSAGE): C,
    (C, Event.GOODBYE): C,
    (C, Event.PROTOCOL_ERROR): C,
    (C, Event.CLOSE): C,
    (C, Event.LOST): X,
    (X, Event.CLOSE): X,
    (X, Event.LOST): X,
}

#: Events the peer causes; the others come from this side (application or transport).
PEER_EVENTS: Final = frozenset({Event.HELLO, Event.GOODBYE, Event.MESSAGE, Event.PROTOCOL_ERROR})

#: The states in which what the peer sends is acted on and we may send; in the others, neither.
ACTIVE: Final = frozenset({State.HANDSHAKE, State.OPEN})


class IllegalPeerEvent(RemoteProtocolError):
    """The peer caused an event the state does not allow: closed like any protocol error."""


def advance(state: State, event: Event) -> State:
    """The state after ``event`` in ``state``; raises if the table does not allow it.

    Raises:
        IllegalPeerEvent: ``event`` is the peer's (the connection must be closed).
        LocalProtocolError: ``event`` is this side's: the caller misused the session.
    """
    try:
        return TRANSITIONS[state, event]
    except KeyError:
        text = f"can't handle event {event.value!r} in state {state.value!r}"
        if event in PEER_EVENTS:
            raise IllegalPeerEvent(text) from None
        raise LocalProtocolError(text) from None
