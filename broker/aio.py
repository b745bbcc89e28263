"""The broker from plain asyncio programs: one loop shared by pbroker and asyncio code.

    async with broker.aio.connect("tcp:127.0.0.1:8800") as root:
        print(await root.call_remote("add", 1, 2))

Deferreds are awaitable from asyncio tasks, so ``call_remote`` needs no wrapper, and it costs no
hop: a task awaiting a Deferred is resumed straight from the reactor callback that delivers the
answer (no asyncio Future, no extra turn of the loop; see ``net.defer.Deferred.__await__``).
"""

from __future__ import annotations

import asyncio
import weakref
from types import TracebackType
from typing import Any

from net.asyncioreactor import AsyncioReactor

from . import api
from .flavors import Referenceable
from .session import RemoteReference

__all__ = ["get_reactor", "connect", "login", "serve"]

_reactors: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncioReactor] = weakref.WeakKeyDictionary()


async def get_reactor() -> AsyncioReactor:
    """The pbroker reactor of the running asyncio loop, started on first use."""
    loop = asyncio.get_running_loop()
    reactor = _reactors.get(loop)
    if reactor is None:
        reactor = _reactors[loop] = AsyncioReactor(loop)
        await reactor.start()
    return reactor


def _check_endpoint(function: str, endpoint: Any) -> None:
    if not isinstance(endpoint, str):
        raise TypeError(
            f"broker.aio.{function}() takes the endpoint string first, e.g. "
            f"broker.aio.{function}('tcp:127.0.0.1:8800'): it uses the running asyncio loop's "
            f"reactor itself (broker.aio.get_reactor()); got {type(endpoint).__name__}. "
            f"With a reactor of your own, use broker.{function}(reactor, endpoint, ...)")


class connect:
    """Async context manager: connects on entry (giving the root), disconnects on exit."""

    def __init__(self, endpoint: str, **options: Any) -> None:
        _check_endpoint("connect", endpoint)
        self.endpoint = endpoint
        self.options = options
        self.root: RemoteReference | None = None

    async def __aenter__(self) -> RemoteReference:
        reactor = await get_reactor()
        self.root = await api.connect(reactor, self.endpoint, **self.options)
        return self.root

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.root is not None:
            self.root.session.disconnect()
            self.root = None


class login(connect):
    """Async context manager: connects and logs in on entry (giving the avatar), disconnects on exit.

        async with broker.aio.login("tls:localhost:8801:ca=ca.pem", UsernamePassword("alice", pw)) as me:
            await me.call_remote("list_notes")

    ``credentials`` and ``mind`` as for :func:`broker.login`; a refused login raises
    ``cred.error.UnauthorizedLogin``. Disconnecting is the logout.
    """

    def __init__(self, endpoint: str, credentials: Any, mind: Referenceable | None = None, **options: Any) -> None:
        _check_endpoint("login", endpoint)
        super().__init__(endpoint, **options)
        self.credentials = credentials
        self.mind = mind

    async def __aenter__(self) -> RemoteReference:
        from .login import login as login_deferred

        reactor = await get_reactor()
        self.root = await login_deferred(reactor, self.endpoint, self.credentials, self.mind, **self.options)
        return self.root


async def serve(endpoint: str, root: Referenceable | Any, **options: Any) -> Any:
    """Listen on ``endpoint`` in the running loop; return the listening port.

    ``root`` and ``options`` as for :func:`broker.serve` (a cred Portal serves login).
    """
    from .login import serve as serve_any_root  # broker.serve: a Portal is served with login

    _check_endpoint("serve", endpoint)
    reactor = await get_reactor()
    return await serve_any_root(reactor, endpoint, root, **options)
