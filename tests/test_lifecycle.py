"""The lifecycle table in broker/lifecycle.py is the one in docs/PROTOCOL.md §5.1, row for row."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from broker import wire
from broker.lifecycle import ACTIVE, PEER_EVENTS, TRANSITIONS, Event, IllegalPeerEvent, State, advance

SPEC = Path(__file__).resolve().parent.parent / "docs" / "PROTOCOL.md"


def spec_rows() -> dict[tuple[State, Event], State]:
    text = SPEC.read_text()
    section = text[text.index("### 5.1 States") : text.index("## 6.")]
    rows: dict[tuple[State, Event], State] = {}
    for state, event, after in re.findall(r"^\| ([A-Z]+) \| ([a-z_]+) \| ([A-Z]+) \|", section, re.M):
        key = (State[state], Event(event))
        assert key not in rows, f"row {state} {event} twice in the spec"
        rows[key] = State[after]
    return rows


def test_code_table_is_the_spec_table() -> None:
    assert spec_rows() == TRANSITIONS


def test_every_state_handles_loss_and_close() -> None:
    for state in State:
        assert advance(state, Event.LOST) is State.CLOSED
        assert advance(state, Event.CLOSE) in (State.CLOSING, State.CLOSED)


def test_only_active_states_accept_what_the_peer_sends_as_work() -> None:
    assert ACTIVE == {State.HANDSHAKE, State.OPEN}
    assert advance(State.HANDSHAKE, Event.HELLO) is State.OPEN
    assert advance(State.OPEN, Event.MESSAGE) is State.OPEN


@pytest.mark.parametrize("state, event", [(s, e) for s in State for e in Event if (s, e) not in TRANSITIONS])
def test_illegal_events_say_whose_fault(state: State, event: Event) -> None:
    expected = IllegalPeerEvent if event in PEER_EVENTS else wire.LocalProtocolError
    with pytest.raises(expected, match=f"can't handle event '{event.value}' in state '{state.value}'"):
        advance(state, event)
    if event in PEER_EVENTS:
        assert issubclass(IllegalPeerEvent, wire.RemoteProtocolError)  # closed as a protocol error
