"""Choosing a reactor: :func:`make_reactor` and :func:`available_reactors`.

A short tour::

    from net.reactor import make_reactor

    reactor = make_reactor()              # PBROKER_REACTOR, else epoll > poll > select
    reactor.call_later(1.0, print, "a second later")
    reactor.call_when_running(print, "started")
    reactor.add_system_event_trigger("before", "shutdown", flush_everything)  # may return a Deferred
    reactor.call_later(2.0, reactor.stop)
    reactor.run()                         # SIGINT/SIGTERM stop it cleanly, too

    d = reactor.defer_to_thread(blocking_call, arg)   # fires in the reactor thread
    reactor.call_from_thread(f)                        # from any thread

The reactor is an object you pass around, not a global: code asks for the interface it needs
(``IReactorTime`` for a clock, ``IReactorTCP`` to connect, ...). Backends:

* ``epoll`` / ``poll`` / ``select`` — :class:`net.selectreactor.SelectorsReactor`, our own loop.
* ``asyncio`` — :class:`net.asyncioreactor.AsyncioReactor`, the same API on an asyncio event loop
  (uvloop if ``PBROKER_UVLOOP=1``), also usable from inside a running asyncio program with
  ``await reactor.start()`` / ``await reactor.shutdown()``.
"""

from __future__ import annotations

import os
from typing import Any

from ._reactorbase import ReactorBase
from .selectreactor import SELECTOR_KINDS

__all__ = ["make_reactor", "available_reactors", "default_reactor_name", "ReactorBase"]

_PREFERENCE = ("epoll", "poll", "select")


def available_reactors() -> list[str]:
    """The reactor names this platform supports, in the fixed order select, poll, epoll, asyncio."""
    return [name for name in ("select", "poll", "epoll") if name in SELECTOR_KINDS] + ["asyncio"]


def default_reactor_name() -> str:
    """``PBROKER_REACTOR`` if set, else the best selector this platform has."""
    name = os.environ.get("PBROKER_REACTOR", "").strip()
    if name:
        return name
    return next(name for name in _PREFERENCE if name in SELECTOR_KINDS)


def make_reactor(name: str | None = None, **kwargs: Any) -> ReactorBase:
    """A new reactor of backend ``name`` (see :func:`available_reactors`); ``kwargs`` go to it.

    Raises ValueError, naming the valid choices, for an unknown or unavailable name.
    """
    if name is None:
        name = default_reactor_name()
    choices = available_reactors()
    if name not in choices:
        raise ValueError(f"unknown or unavailable reactor {name!r}; choose one of {', '.join(choices)}")
    if name == "asyncio":
        from .asyncioreactor import AsyncioReactor

        return AsyncioReactor(**kwargs)
    from .selectreactor import SelectorsReactor

    return SelectorsReactor(kind=name, **kwargs)
