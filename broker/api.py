"""Serve a root object, or connect to one: the Deferred-style entry points."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from net.defer import Deferred
from net.endpoints import client, server

from .flavors import Referenceable
from .protocol import BrokerClientFactory, BrokerFactory, BrokerProtocol
from .session import Limits, RemoteReference

__all__ = ["serve", "connect"]

_MISSING: Any = object()
_F = TypeVar("_F", bound=Callable[..., Any])


def needs_reactor(function: str, example: str) -> Callable[[_F], _F]:
    """Check the reactor and endpoint arguments before Python's own "missing argument" error,
    which would not say what to pass. The signature type checkers see stays the function's."""

    def decorate(f: _F) -> _F:
        @functools.wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            reactor = args[0] if args else kwargs.get("reactor", _MISSING)
            endpoint = args[1] if len(args) > 1 else kwargs.get("endpoint", _MISSING)
            check_reactor(function, reactor, endpoint, example)
            return f(*args, **kwargs)

        return cast(_F, wrapper)

    return decorate


def check_reactor(function: str, reactor: Any, endpoint: Any, example: str) -> None:
    """Say what to do when a reactor-taking entry point is called without one (a common slip)."""
    if isinstance(reactor, str) or reactor is _MISSING or endpoint is _MISSING or not hasattr(reactor, "call_later"):
        got = (f"the endpoint string {reactor!r}" if isinstance(reactor, str)
               else "nothing" if reactor is _MISSING else f"{type(reactor).__name__} {reactor!r:.60}")
        style = function
        raise TypeError(
            f"broker.{function}() takes a reactor as its first argument, then the endpoint: "
            f"broker.{function}(reactor, {example}), with reactor = net.reactor.make_reactor() "
            f"(then reactor.run()) or the one net.react(main) passes to main; got {got} first. "
            f"Without a reactor use broker.aio.{style}({example}) in asyncio code"
            + (f" or broker.blocking.{style}({example}) in a script" if style != "serve" else "")
            + "."
        )
    if not isinstance(endpoint, str):
        raise TypeError(f"broker.{function}(): the endpoint must be a string like {example}, not {type(endpoint).__name__}")


@needs_reactor("serve", "'tcp:8800', root")
def serve(reactor: Any, endpoint: str, root: Referenceable | None, **options: Any) -> Deferred[Any]:
    """Listen on ``endpoint`` (e.g. ``"tcp:8800"``) and hand ``root`` to every client.

    Any root: ``broker.serve`` (:func:`broker.login.serve`) turns a cred Portal into one first.
    Options: ``registry`` (CopyRegistry), ``limits`` (Limits), ``debug`` (send tracebacks),
    ``handshake_timeout``. Returns a Deferred firing with the listening port.
    """
    return server(reactor, endpoint).listen(BrokerFactory(reactor, root, **options))


@needs_reactor("connect", "'tcp:127.0.0.1:8800'")
def connect(reactor: Any, endpoint: str, *, root: Referenceable | None = None, **options: Any) -> Deferred[RemoteReference]:
    """Connect to ``endpoint`` (e.g. ``"tcp:host:8800"``); fire with the server's root reference.

    ``root`` is an optional object of ours the server can reach as our bootstrap object.
    The connection attempt and the handshake each time out (endpoint ``timeout=``,
    ``handshake_timeout``), so this never hangs. ``call_timeout`` (seconds) is the default
    deadline of every call (``Limits.call_timeout``; with "call-options" it travels, §18).
    """
    call_timeout = options.pop("call_timeout", None)
    if call_timeout is not None:
        options["limits"] = dataclasses.replace(options.get("limits") or Limits(), call_timeout=call_timeout)
    factory = BrokerClientFactory(reactor, root, **options)

    def connected(proto: BrokerProtocol) -> Deferred[RemoteReference]:
        return factory.root

    return client(reactor, endpoint).connect(factory).add_callback(connected)
