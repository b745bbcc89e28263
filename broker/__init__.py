"""pbroker's remote-object protocol.

Objects travel by reference (:class:`Referenceable`, :class:`Root`, :class:`Viewable`) or by copy
(:func:`copyable` / :func:`register_copyable`); peers call ``remote_<name>`` methods and get
Deferreds back. Three client styles: Deferreds (:func:`connect`), asyncio (:mod:`broker.aio`) and
blocking (:mod:`broker.blocking`). Serving a ``cred.portal.Portal`` adds login (:func:`login`,
:class:`Avatar`; the module ``broker.login``, imported as ``from broker.login import ...`` since
``broker.login`` is the function). The wire format is in ``docs/PROTOCOL.md``.
"""

from net._version import __version__

from .api import connect
from .errors import (
    BrokerError,
    ConnectionLost,
    HandshakeError,
    InvalidReferenceError,
    LimitExceeded,
    NoSuchMethodError,
    OverloadedError,
    RemoteCancelledError,
    DeadlineExceeded,
    RemoteError,
    UnimplementedError,
    UnregisteredCopyError,
)
from .flavors import (
    Copyable,
    CopyRegistry,
    Referenceable,
    RemoteCopy,
    Root,
    Viewable,
    copyable,
    default_registry,
    register_copyable,
)
from .session import Limits, RemoteReference, Session
from .pipelining import Promise
from .call_options import CallContext, CallIdFilter, CallOptions, current_call
from .cache import Cacheable, CacheObserver, RemoteCache, register_remote_cache
from .streams import BlockingStream, RemoteStream, Stream
from .login import AlreadyLoggedIn, Avatar, CertificateLogin, IPerspective, LoginSequenceError, login, serve

__all__ = [
    "__version__",
    "serve",
    "connect",
    "login",
    "Avatar",
    "IPerspective",
    "CertificateLogin",
    "AlreadyLoggedIn",
    "LoginSequenceError",
    "Referenceable",
    "Root",
    "Viewable",
    "Copyable",
    "RemoteCopy",
    "CopyRegistry",
    "copyable",
    "register_copyable",
    "default_registry",
    "Cacheable",
    "CacheObserver",
    "RemoteCache",
    "register_remote_cache",
    "Stream",
    "RemoteStream",
    "BlockingStream",
    "RemoteReference",
    "Promise",
    "Session",
    "Limits",
    "BrokerError",
    "RemoteError",
    "OverloadedError",
    "UnimplementedError",
    "NoSuchMethodError",
    "InvalidReferenceError",
    "RemoteCancelledError",
    "DeadlineExceeded",
    "CallOptions",
    "CallContext",
    "CallIdFilter",
    "current_call",
    "ConnectionLost",
    "UnregisteredCopyError",
    "LimitExceeded",
    "HandshakeError",
    "aio",
    "blocking",
]


def __getattr__(name: str) -> object:
    # aio and blocking load on first use: aio pulls in asyncio, blocking starts a thread on connect.
    if name in ("aio", "blocking"):
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(name)
