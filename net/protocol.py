"""Protocols and factories: what to do with bytes, kept apart from how they travel.

A :class:`Protocol` instance serves one connection; a :class:`Factory` makes one per connection and
holds what they share. Method names follow asyncio's (``connection_made``, ``data_received``,
``connection_lost``), so they read the same to people coming from either world.
"""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING, Any, ClassVar, Self

from zope.interface import implementer

from .interfaces import IProtocol, IProtocolFactory

if TYPE_CHECKING:
    from .address import Address
    from .contracts import (
        ClientProtocolFactory,
        Connector,
        DatagramTransport,
        DelayedCall,
        ProcessTransport,
        ProtocolFactory,
        Transport,
    )
    from .defer import Failure

__all__ = [
    "Protocol", "Factory", "ServerFactory", "ClientFactory", "ReconnectingClientFactory",
    "ProcessProtocol", "DatagramProtocol", "WrappingFactory",
    "LayerClientFactory",
]

log = logging.getLogger(__name__)


@implementer(IProtocol)
class Protocol:
    """Override the callbacks you need; the defaults do nothing (and close on EOF)."""

    factory: Factory | None = None
    # A contracts.Transport once connected, None before. Any, so that a subclass calls
    # self.transport.write(...) without a None check at every use (and may narrow it: annotate
    # ``transport: TCPTransport`` in the subclass to have its calls checked).
    transport: Any = None
    connected: bool = False

    def make_connection(self, transport: Transport) -> None:
        self.connected = True
        self.transport = transport
        self.connection_made(transport)

    def connection_made(self, transport: Transport) -> None:
        """The connection is up; ``self.transport`` is set."""

    def data_received(self, data: bytes) -> None:
        """Bytes arrived, in arbitrary chunks."""

    def eof_received(self) -> bool | None:
        """The peer half-closed. Return True to keep the write side open."""
        return None

    def connection_lost(self, reason: Failure) -> None:
        """The connection closed; ``reason`` wraps ConnectionDone on a clean close."""


@implementer(IProtocolFactory)
class Factory:
    """Makes protocols of class :attr:`protocol`; start/stop hooks are reference counted."""

    protocol: ClassVar[type[Protocol] | None] = None
    num_ports: int = 0

    @classmethod
    def for_protocol(cls, protocol: type[Protocol], *args: Any, **kwargs: Any) -> Self:
        """A factory of this class building ``protocol`` instances."""
        factory = cls(*args, **kwargs)
        factory.protocol = protocol  # type: ignore[misc]
        return factory

    def do_start(self) -> None:
        if not self.num_ports:
            self.start_factory()
        self.num_ports += 1

    def do_stop(self) -> None:
        if self.num_ports == 0:
            return
        self.num_ports -= 1
        if not self.num_ports:
            self.stop_factory()

    def start_factory(self) -> None:
        """Set up shared state before the first connection (open files, databases...)."""

    def stop_factory(self) -> None:
        """Tear down shared state after the last port or connector stopped using the factory."""

    def build_protocol(self, addr: Address) -> Protocol | None:
        if self.protocol is None:
            raise TypeError(f"{type(self).__name__}.protocol is not set; use Factory.for_protocol(P)")
        proto = self.protocol()
        proto.factory = self
        return proto


class WrappingFactory:
    """Base of a factory that stands in front of another (the TLS, tunnel and endpoint wrappers):
    the ports and connectors using it start and stop :attr:`wrapped`, which keeps its own count."""

    wrapped: ProtocolFactory

    def do_start(self) -> None:
        self.wrapped.do_start()

    def do_stop(self) -> None:
        self.wrapped.do_stop()


class LayerClientFactory(WrappingFactory):
    """Base of the client factory of a layer that opens over the connected stream before the
    application's protocol runs (TLS's handshake, a proxy's tunnel).

    The connector's hooks go on to :attr:`wrapped`, except that a connection that ends before the
    layer opened is the application's ``client_connection_failed``, with the layer's error: the
    layer's protocol says which, through :attr:`_outcome` (``(established, failure)``), from its
    ``connection_lost``, which runs just before the connector's ``client_connection_lost``.
    """

    wrapped: ClientProtocolFactory
    _outcome: tuple[bool, Failure] | None = None

    def start_connecting(self, connector: Connector) -> None:
        self.wrapped.start_connecting(connector)

    def client_connection_failed(self, connector: Connector, reason: Failure) -> None:
        self.wrapped.client_connection_failed(connector, self._connect_failure(reason))

    def _connect_failure(self, reason: Failure) -> Failure:
        """What the application hears when connecting the stream itself failed (as it is, here)."""
        return reason

    def client_connection_lost(self, connector: Connector, reason: Failure) -> None:
        established, failure = self._outcome or (True, reason)
        self._outcome = None
        if established:
            self.wrapped.client_connection_lost(connector, failure)
        else:
            self.wrapped.client_connection_failed(connector, failure)


class ServerFactory(Factory):
    """A factory for listening ports (no client-side hooks)."""


class ClientFactory(Factory):
    """A factory for outgoing connections, told when they fail or end."""

    def start_connecting(self, connector: Connector) -> None:
        """A connection attempt is starting."""

    def client_connection_failed(self, connector: Connector, reason: Failure) -> None:
        """The attempt failed; ``reason`` wraps a ConnectError subclass."""

    def client_connection_lost(self, connector: Connector, reason: Failure) -> None:
        """An established connection ended."""


class ReconnectingClientFactory(ClientFactory):
    """Reconnects after failures and losses, with exponential back-off and jitter.

    The delay starts at :attr:`initial_delay`, is multiplied by :attr:`factor` after each failure
    up to :attr:`max_delay`, and is randomised by :attr:`jitter` so that many clients dropped at
    once do not all return at once. Call :meth:`reset_delay` when a connection is known good
    (``build_protocol`` does), :meth:`stop_trying` to give up.
    """

    initial_delay: float = 1.0
    max_delay: float = 3600.0
    factor: float = 2.7182818284590451
    jitter: float = 0.11962656472
    max_retries: int | None = None

    delay: float = initial_delay
    retries: int = 0
    continue_trying: bool = True
    connector: Connector | None = None
    _call: DelayedCall | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # A subclass setting initial_delay must start its back-off there, not at the base's 1.0.
        super().__init_subclass__(**kwargs)
        if "initial_delay" in cls.__dict__ and "delay" not in cls.__dict__:
            cls.delay = cls.initial_delay

    def client_connection_failed(self, connector: Connector, reason: Failure) -> None:
        if self.continue_trying:
            self.connector = connector
            self.retry()

    def client_connection_lost(self, connector: Connector, reason: Failure) -> None:
        if self.continue_trying:
            self.connector = connector
            self.retry()

    def build_protocol(self, addr: Address) -> Protocol | None:
        self.reset_delay()
        return super().build_protocol(addr)

    def next_delay(self) -> float:
        """Advance the back-off and return the next delay (also used by tests)."""
        self.delay = min(self.delay * self.factor, self.max_delay)
        if self.jitter:
            self.delay = random.normalvariate(self.delay, self.delay * self.jitter)
        self.delay = max(0.0, min(self.delay, self.max_delay))
        return self.delay

    def retry(self, connector: Connector | None = None) -> None:
        """Schedule another connection attempt after the next back-off delay."""
        if not self.continue_trying:
            return
        connector = connector or self.connector
        if connector is None:
            return
        self.retries += 1
        if self.max_retries is not None and self.retries > self.max_retries:
            log.info("Abandoning %r after %d retries", connector, self.max_retries)
            return
        delay = self.next_delay()
        log.info("Will retry %r in %.3g seconds", connector, delay)
        self._call = connector.reactor.call_later(delay, self._reconnect, connector)

    def _reconnect(self, connector: Connector) -> None:
        self._call = None
        connector.connect()

    def stop_trying(self) -> None:
        """Stop reconnecting and cancel a scheduled attempt."""
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        self.continue_trying = False
        if self.connector is not None:
            try:
                self.connector.stop_connecting()
            except Exception:  # not connecting: nothing to stop
                pass

    def reset_delay(self) -> None:
        self.delay = self.initial_delay
        self.retries = 0
        self._call = None
        self.continue_trying = True


class ProcessProtocol:
    """What to do with a child process's pipes and exit; see :meth:`spawn_process`.

    Callbacks run in the reactor thread, in this order per pipe: ``out_received`` /
    ``err_received`` any number of times, then that pipe's ``*_connection_lost`` once. When the
    child has exited ``process_exited(reason)`` runs once; ``process_ended(reason)`` runs once after
    both the exit and the close of every pipe. ``reason`` wraps :class:`net.error.ProcessDone`
    (exit code 0) or :class:`net.error.ProcessTerminated` (``exit_code`` or ``signal`` set).
    """

    transport: Any = None  # a contracts.ProcessTransport once started; Any as Protocol.transport

    def make_connection(self, transport: ProcessTransport) -> None:
        self.transport = transport
        self.connection_made(transport)

    def connection_made(self, transport: ProcessTransport) -> None:
        """The child is started; ``transport.pid`` is set and ``transport.write`` feeds stdin."""

    def child_data_received(self, child_fd: int, data: bytes) -> None:
        """Bytes from any child fd; the default routes fd 1 and 2 to the two methods below."""
        if child_fd == 1:
            self.out_received(data)
        elif child_fd == 2:
            self.err_received(data)

    def out_received(self, data: bytes) -> None:
        """Bytes the child wrote to its stdout."""

    def err_received(self, data: bytes) -> None:
        """Bytes the child wrote to its stderr."""

    def child_connection_lost(self, child_fd: int) -> None:
        """One of the child's pipes closed; the default routes fd 0, 1 and 2 below."""
        if child_fd == 0:
            self.in_connection_lost()
        elif child_fd == 1:
            self.out_connection_lost()
        elif child_fd == 2:
            self.err_connection_lost()

    def in_connection_lost(self) -> None:
        """The child's stdin is closed (by us, or the child closed it)."""

    def out_connection_lost(self) -> None:
        """The child's stdout reached EOF."""

    def err_connection_lost(self) -> None:
        """The child's stderr reached EOF."""

    def process_exited(self, reason: Failure) -> None:
        """The child exited (its pipes may still hold data)."""

    def process_ended(self, reason: Failure) -> None:
        """The child exited and every pipe is closed: nothing more will arrive."""


class DatagramProtocol:
    """What to do with datagrams; see :meth:`listen_udp`.

    ``transport.write(data, addr)`` sends; on a connected transport ``write(data)``.
    """

    transport: Any = None  # a contracts.DatagramTransport once bound; Any as Protocol.transport

    def make_connection(self, transport: DatagramTransport) -> None:
        self.transport = transport
        self.start_protocol()

    def start_protocol(self) -> None:
        """The socket is bound; ``self.transport`` is set."""

    def stop_protocol(self) -> None:
        """The socket is closed; nothing more will arrive."""

    def datagram_received(self, data: bytes, addr: Any) -> None:
        """One datagram arrived from ``addr``: a ``(host, port)`` tuple; for Unix a path,
        ``"@name"`` (abstract) or None (an unbound sender, which cannot be answered)."""

    def connection_refused(self) -> None:
        """On a connected transport: the peer's port is unreachable (ICMP), as far as we know,
        or the connected Unix peer is gone; what was sent there is lost. The port stays open."""

    def error_received(self, exc: OSError) -> None:
        """A send or receive failed in a way that does not close the socket (logged by default)."""
        log.warning("%r: datagram error: %s", self, exc)
