"""The broker's I/O adapter: a net Protocol feeding bytes to a :class:`~broker.session.Session`.

Everything about remote objects lives in the session; this module only connects it to a
transport and a reactor, so the session stays testable without sockets.
"""

from __future__ import annotations

import logging
from typing import Any

from zope.interface import implementer

from net.defer import Deferred, Failure
from net.interfaces import IBufferedProtocol
from net.protocol import ClientFactory, Factory, Protocol

from .flavors import CopyRegistry, Referenceable
from .session import Limits, RemoteReference, Session

__all__ = ["BrokerProtocol", "BrokerFactory", "BrokerClientFactory"]

log = logging.getLogger(__name__)


@implementer(IBufferedProtocol)
class BrokerProtocol(Protocol):
    """One broker connection on a transport."""

    session: Session

    def __init__(self, reactor: Any, root: Referenceable | None, *, registry: CopyRegistry | None = None,
                 limits: Limits = Limits(), debug: bool = False, handshake_timeout: float = 30.0) -> None:
        self.reactor = reactor
        self._root = root
        self._registry = registry
        self._limits = limits
        self._debug = debug
        self._handshake_timeout = handshake_timeout
        self._timer: Any = None
        self._sniffing = True  # the session keeps the first bytes until the handshake is over
        self._lent: memoryview | None = None
        self.on_ready: Deferred[RemoteReference] | None = None

    def connection_made(self, transport: Any) -> None:
        peer = transport.get_peer()
        name = f"{getattr(peer, 'host', peer)}:{getattr(peer, 'port', '')}"
        self.session = Session(
            transport.write,
            self._close,
            self.reactor.call_from_thread,
            schedule=self.reactor.call_soon,
            clock=self.reactor,
            root=self._root,
            registry=self._registry,
            limits=self._limits,
            debug=self._debug,
            name=name,
            peer=peer,
            peer_certificate=getattr(transport, "get_peer_certificate", lambda: None)(),
            side="client" if self.on_ready is not None else "server",
        )
        self._timer = self.reactor.call_later(self._handshake_timeout, self._handshake_timed_out)
        self.session.ready.add_both(self._handshake_done)
        self.session.start()

    def _handshake_done(self, result: Any) -> Any:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if isinstance(result, Failure):
            log.info("%r: handshake failed: %s", self.session, result.value)
        waiter, self.on_ready = self.on_ready, None
        if waiter is not None:
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)
        return None

    def _handshake_timed_out(self) -> None:
        self._timer = None
        self._close(TimeoutError(f"no pbroker hello within {self._handshake_timeout} seconds"))

    def _close(self, reason: BaseException | None) -> None:
        if self.transport is not None:
            self.transport.lose_connection(reason)

    def data_received(self, data: bytes) -> None:
        self.session.receive_data(data)

    # BufferedProtocol shape (net.interfaces.IBufferedProtocol): a TCP transport receives straight
    # into the wire decoder's reused buffer, so a big frame is not copied chunk by chunk.

    def get_buffer(self, sizehint: int) -> memoryview:
        view = self.session._decoder.get_buffer(sizehint)
        if self._sniffing:
            self._lent = view
        return view

    def buffer_updated(self, nbytes: int) -> None:
        session = self.session
        if self._sniffing:
            lent, self._lent = self._lent, None
            if lent is not None:
                self._sniffing = session.note_received(lent[:nbytes])
        session._decoder.buffer_updated(nbytes)
        session.process_received()

    def connection_lost(self, reason: Failure) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        session = getattr(self, "session", None)
        if session is not None:
            session.connection_lost(reason.value)


class BrokerFactory(Factory):
    """Serves ``root`` to every connection (``Root.root_object`` may make one per connection)."""

    def __init__(self, reactor: Any, root: Referenceable | None, **options: Any) -> None:
        self.reactor = reactor
        self.root = root
        self.options = options
        self.sessions: set[Session] = set()

    def build_protocol(self, addr: Any) -> BrokerProtocol:
        proto = BrokerProtocol(self.reactor, self.root, **self.options)
        proto.factory = self
        return proto


class BrokerClientFactory(ClientFactory):
    """Connects once; :attr:`root` fires with the peer's bootstrap object after the handshake."""

    def __init__(self, reactor: Any, root: Referenceable | None = None, **options: Any) -> None:
        self.reactor = reactor
        self.local_root = root
        self.options = options
        self.root: Deferred[RemoteReference] = Deferred()

    def build_protocol(self, addr: Any) -> BrokerProtocol:
        proto = BrokerProtocol(self.reactor, self.local_root, **self.options)
        proto.factory = self
        proto.on_ready = self.root
        return proto

    def client_connection_failed(self, connector: Any, reason: Failure) -> None:
        if not self.root.called:
            self.root.errback(reason)
