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
* ``glib`` — :class:`net.glibreactor.GlibReactor`, on the GLib main loop, so GTK programs and
  pbroker share one loop (docs/GUI.md). A GUI toolkit's backend: only with PyGObject installed
  (``pip install 'pbroker[gui]'``), and listed by ``available_reactors(gui=True)`` only, so code
  that runs something on every backend (the test suite) does not start GLib by surprise.
"""

from __future__ import annotations

import os
from typing import Any

from ._reactorbase import ReactorBase
from .selectreactor import SELECTOR_KINDS

__all__ = ["make_reactor", "available_reactors", "default_reactor_name", "ReactorBase"]

_PREFERENCE = ("epoll", "poll", "select")


#: The backends that run on a GUI toolkit's loop: make_reactor accepts them; available_reactors
#: lists them only when asked (``gui=True``) and when their toolkit imports.
_GUI_REACTORS = ("glib",)


def available_reactors(*, gui: bool = False) -> list[str]:
    """The reactor names this platform supports, in the fixed order select, poll, epoll, asyncio;
    with ``gui=True``, then the GUI toolkits' backends whose bindings import (``glib``)."""
    names = [name for name in ("select", "poll", "epoll") if name in SELECTOR_KINDS] + ["asyncio"]
    if gui:
        names += [name for name in _GUI_REACTORS if _gui_reactor_class(name, required=False) is not None]
    return names


def _gui_reactor_class(name: str, required: bool = True) -> type[ReactorBase] | None:
    """The class of GUI backend ``name``, imported now (it imports its toolkit); None when the
    toolkit is missing and not ``required``, else the ImportError that says what to install."""
    from .glibreactor import GlibReactor, require_glib

    try:
        require_glib()
    except ImportError:
        if required:
            raise
        return None
    return GlibReactor


def default_reactor_name() -> str:
    """``PBROKER_REACTOR`` if set, else the best selector this platform has."""
    name = os.environ.get("PBROKER_REACTOR", "").strip()
    if name:
        return name
    return next(name for name in _PREFERENCE if name in SELECTOR_KINDS)


def make_reactor(name: str | None = None, **kwargs: Any) -> ReactorBase:
    """A new reactor of backend ``name`` (see :func:`available_reactors`); ``kwargs`` go to it.

    Raises ValueError, naming the valid choices, for an unknown or unavailable name; ImportError,
    saying what to install, for a GUI backend (``glib``) whose bindings are missing.
    """
    if name is None:
        name = default_reactor_name()
    if name in _GUI_REACTORS:
        reactor_class = _gui_reactor_class(name)
        assert reactor_class is not None
        return reactor_class(**kwargs)
    choices = available_reactors()
    if name not in choices:
        raise ValueError(f"unknown or unavailable reactor {name!r}; choose one of "
                         f"{', '.join(choices + list(_GUI_REACTORS))}")
    if name == "asyncio":
        from .asyncioreactor import AsyncioReactor

        return AsyncioReactor(**kwargs)
    from .selectreactor import SelectorsReactor

    return SelectorsReactor(kind=name, **kwargs)
