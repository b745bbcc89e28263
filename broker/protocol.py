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
from .lifecycle import State
from .session import Limits, RemoteReference, Session

__all__ = ["BrokerProtocol", "BrokerFactory", "BrokerClientFactory", "FLUSH_FRAMES", "FLUSH_BYTES"]

log = logging.getLogger(__name__)


#: The adapter writes once the session has queued this many frames, or this many bytes, so the
#: peer starts on the first answers of a burst while we work on the rest: the two processes
#: overlap instead of taking turns (pipelined, 100 in flight: ~50k -> ~100k calls/s here).
FLUSH_FRAMES = 16
FLUSH_BYTES = 64 * 1024


@implementer(IBufferedProtocol)
class BrokerProtocol(Protocol):
    """One broker connection on a transport: feeds the session, writes what it queues, closes.

    This is the only place that knows about the transport, the reactor's timers and threads;
    the flush policy (FLUSH_FRAMES / FLUSH_BYTES) is here too.
    """

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
        self._write_scheduled = False
        self._closing = False
        self.on_ready: Deferred[RemoteReference] | None = None

    def connection_made(self, transport: Any) -> None:
        peer = transport.get_peer()
        name = f"{getattr(peer, 'host', peer)}:{getattr(peer, 'port', '')}"
        self.session = Session(
            root=self._root,
            registry=self._registry,
            limits=self._limits,
            debug=self._debug,
            name=name,
            peer=peer,
            peer_certificate=getattr(transport, "get_peer_certificate", lambda: None)(),
            side="client" if self.on_ready is not None else "server",
            clock=self.reactor,
            on_output=self._output_waiting,
            release_due=self._release_due,
        )
        self._timer = self.reactor.call_later(self._handshake_timeout, self._handshake_timed_out)
        self.session.ready.add_both(self._handshake_done)
        self._write_out()  # our hello

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
        self.session.disconnect(TimeoutError(f"no pbroker hello within {self._handshake_timeout} seconds"))

    # -- bytes in: feed, then let the session work in chunks, writing after each -------------

    def data_received(self, data: bytes) -> None:
        self.session.receive_data(data)
        self._process()

    # BufferedProtocol shape (net.interfaces.IBufferedProtocol): a TCP transport receives straight
    # into the wire decoder's reused buffer, so a big frame is not copied chunk by chunk.

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.session.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        self.session.buffer_updated(nbytes)
        self._process()

    def _process(self) -> None:
        session = self.session
        while session.process(FLUSH_FRAMES, FLUSH_BYTES):
            self._write_out()
        self._write_out()

    # -- bytes out ---------------------------------------------------------------------------

    def _output_waiting(self) -> None:
        """The session queued output outside process(): write now if a chunk is ready, else soon."""
        session = self.session
        if session.output_frames >= FLUSH_FRAMES or session.output_bytes >= FLUSH_BYTES or session.close_reason is not None:
            self._write_out()
        elif not self._write_scheduled:
            self._write_scheduled = True
            self.reactor.call_soon(self._scheduled_write)

    def _scheduled_write(self) -> None:
        self._write_scheduled = False
        self._write_out()

    def _write_out(self) -> None:
        """Write what the session queued; close the transport once the session is CLOSING."""
        session = self.session
        transport = self.transport
        data = session.data_to_send()
        if transport is None:
            return
        if data:
            transport.write(data)
        if session.state is State.CLOSING and not self._closing:
            self._closing = True
            transport.lose_connection(session.close_reason)

    def _release_due(self) -> None:
        """Proxies died (in any thread, inside the GC): release them from the reactor thread."""
        self.reactor.call_from_thread(self._flush_releases)

    def _flush_releases(self) -> None:
        self.session.flush_releases()
        self._write_out()

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
