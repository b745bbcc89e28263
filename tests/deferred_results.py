"""Reading a fired Deferred's outcome in a test, shared by the net.defer test modules."""

from __future__ import annotations

from typing import Any

from net.defer import Deferred, Failure

__all__ = ["result_of", "failure_of"]


def result_of(d: Deferred[Any]) -> Any:
    """The current result of a fired Deferred (consumes a failure so nothing is logged)."""
    out: list[Any] = []

    def grab(r: Any) -> Any:
        out.append(r)
        return None if isinstance(r, Failure) else r

    d.add_both(grab)
    assert out, f"{d!r} has not fired"
    return out[0]


def failure_of(d: Deferred[Any]) -> Failure:
    r = result_of(d)
    assert isinstance(r, Failure), r
    return r
