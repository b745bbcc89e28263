"""The broker from plain asyncio programs: one loop shared by pbroker and asyncio code.

    async with broker.aio.connect("tcp:127.0.0.1:8800") as root:
        print(await root.call_remote("add", 1, 2))

Deferreds are awaitable from asyncio tasks, so ``call_remote`` needs no wrapper.
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

__all__ = ["get_reactor", "connect", "serve"]

_reactors: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncioReactor] = weakref.WeakKeyDictionary()


async def get_reactor() -> AsyncioReactor:
    """The pbroker reactor of the running asyncio loop, started on first use."""
    loop = asyncio.get_running_loop()
    reactor = _reactors.get(loop)
    if reactor is None:
        reactor = _reactors[loop] = AsyncioReactor(loop)
        await reactor.start()
    return reactor


class connect:
    """Async context manager: connects on entry (giving the root), disconnects on exit."""

    def __init__(self, endpoint: str, **options: Any) -> None:
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


async def serve(endpoint: str, root: Referenceable, **options: Any) -> Any:
    """Listen on ``endpoint`` in the running loop; return the listening port."""
    reactor = await get_reactor()
    return await api.serve(reactor, endpoint, root, **options)
