"""Serve a root object, or connect to one: the Deferred-style entry points."""

from __future__ import annotations

import sys
from typing import Any

from net.defer import Deferred
from net.endpoints import client, server

from .flavors import Referenceable
from .protocol import BrokerClientFactory, BrokerFactory, BrokerProtocol
from .session import RemoteReference

__all__ = ["serve", "connect"]


def serve(reactor: Any, endpoint: str, root: Referenceable | Any, **options: Any) -> Deferred[Any]:
    """Listen on ``endpoint`` (e.g. ``"tcp:8800"``) and hand ``root`` to every client.

    ``root`` may be a ``cred.portal.Portal``: then each connection gets its own login object
    instead (``broker.login``, docs/PROTOCOL.md section 14), and option ``throttle`` (a
    ``cred.throttle.LoginThrottle``) limits guessing. Options: ``registry`` (CopyRegistry),
    ``limits`` (Limits), ``debug`` (send tracebacks), ``handshake_timeout``. Returns a Deferred
    firing with the listening port.
    """
    cred_portal = sys.modules.get("cred.portal")  # if cred was never imported, root is no Portal
    if cred_portal is not None and isinstance(root, cred_portal.Portal):
        from .login import PortalRoot

        root = PortalRoot(root, throttle=options.pop("throttle", None))
    elif "throttle" in options:
        raise TypeError("serve(throttle=...) applies to a cred Portal only")
    return server(reactor, endpoint).listen(BrokerFactory(reactor, root, **options))


def connect(reactor: Any, endpoint: str, *, root: Referenceable | None = None, **options: Any) -> Deferred[RemoteReference]:
    """Connect to ``endpoint`` (e.g. ``"tcp:host:8800"``); fire with the server's root reference.

    ``root`` is an optional object of ours the server can reach as our bootstrap object.
    The connection attempt and the handshake each time out (endpoint ``timeout=``,
    ``handshake_timeout``), so this never hangs.
    """
    factory = BrokerClientFactory(reactor, root, **options)

    def connected(proto: BrokerProtocol) -> Deferred[RemoteReference]:
        return factory.root

    return client(reactor, endpoint).connect(factory).add_callback(connected)
