"""The contracts of the networking layer, as zope.interface interfaces.

Small interfaces, so code asks only for what it uses (a protocol that needs a clock asks for
:class:`IReactorTime`, not for a whole reactor). Tests check every implementation with
``zope.interface.verify.verifyObject``.
"""

# zope.interface declares methods without ``self`` and with docstring-only bodies; mypy reads
# them as ordinary methods and reports [misc] "must have at least one argument" and [empty-body].
# Implementations use @implementer (no subclassing), so mypy never checks them against these
# declarations; the annotations below are documentation. Objects that merely *provide* an interface
# (factories, protocols, transports, producers) are typed ``Any`` for the same reason.
# mypy: disable-error-code="misc, empty-body"

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from zope.interface import Attribute, Interface

if TYPE_CHECKING:
    from .address import Address
    from .defer import Deferred, Failure

__all__ = [
    "IDelayedCall",
    "IReactorCore",
    "IReactorTime",
    "IReactorFDSet",
    "IReactorThreads",
    "IReactorTCP",
    "IListeningPort",
    "IConnector",
    "IProducer",
    "IPushProducer",
    "IPullProducer",
    "IConsumer",
    "ITransport",
    "ITCPTransport",
    "IProtocol",
    "IBufferedProtocol",
    "IProtocolFactory",
    "IStreamServerEndpoint",
    "IStreamClientEndpoint",
]


class IDelayedCall(Interface):
    """A call scheduled with :meth:`IReactorTime.call_later`."""

    time = Attribute("The reactor time (seconds()) at which the call will run.")

    def cancel() -> None:
        """Stop the call from running. Raises ``AlreadyCancelled``/``AlreadyCalled`` if inactive."""

    def reset(seconds_from_now: float) -> None:
        """Reschedule the call to run ``seconds_from_now`` seconds from now."""

    def delay(seconds_later: float) -> None:
        """Postpone the call by ``seconds_later`` seconds."""

    def active() -> bool:
        """True until the call has run or been cancelled."""


class IReactorTime(Interface):
    def seconds() -> float:
        """The reactor's monotonic clock, in seconds."""

    def call_later(delay: float, f: Callable[..., object], *args: Any, **kwargs: Any) -> IDelayedCall:
        """Run ``f(*args, **kwargs)`` from the loop after ``delay`` seconds (0 = next iteration).

        Calls due at the same time run in the order they were scheduled.
        """


class IReactorCore(Interface):
    running = Attribute("True while run() is looping (after startup, until shutdown completes).")

    def run() -> None:
        """Fire startup triggers, then loop until :meth:`stop`. Raises ``ReactorAlreadyRunning``."""

    def stop() -> None:
        """Fire shutdown triggers (``before`` ones may return Deferreds), then leave :meth:`run`.

        Raises ``ReactorNotRunning`` if not running.
        """

    def call_when_running(f: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        """Run ``f`` once the reactor runs (now, if it already does)."""

    def add_system_event_trigger(
        phase: str, event: str, f: Callable[..., object], *args: Any, **kwargs: Any
    ) -> object:
        """Run ``f`` at ``phase`` ("before", "during", "after") of ``event`` ("startup", "shutdown").

        A ``before`` trigger may return a Deferred; the ``during`` phase waits for it.
        Returns an id for :meth:`remove_system_event_trigger`.
        """

    def remove_system_event_trigger(trigger_id: object) -> None:
        """Forget a trigger added with :meth:`add_system_event_trigger`."""


class IReactorFDSet(Interface):
    """Readiness notifications for file descriptors; transports are built on this."""

    def add_reader(fd: int, callback: Callable[[], object]) -> None:
        """Call ``callback()`` from the loop whenever ``fd`` is readable. Replaces an earlier one."""

    def remove_reader(fd: int) -> None:
        """Stop watching ``fd`` for reading. A no-op if not watched."""

    def add_writer(fd: int, callback: Callable[[], object]) -> None:
        """Call ``callback()`` from the loop whenever ``fd`` is writable. Replaces an earlier one."""

    def remove_writer(fd: int) -> None:
        """Stop watching ``fd`` for writing. A no-op if not watched."""


class IReactorThreads(Interface):
    def call_in_thread(f: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        """Run ``f`` in the reactor's bounded thread pool; exceptions are logged."""

    def call_from_thread(f: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        """Run ``f`` in the reactor thread soon. Safe from any thread; wakes the loop."""

    def defer_to_thread(f: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
        """Run ``f`` in the pool; return a Deferred firing (in the reactor thread) with its result."""

    def set_thread_pool_size(size: int) -> None:
        """Bound the pool to ``size`` threads (at least 1)."""


class IListeningPort(Interface):
    def get_host() -> Address:
        """The address actually bound (port 0 resolves to the real port)."""

    def stop_listening() -> Deferred[None]:
        """Close the listening socket; return a Deferred that fires once it is closed.

        Established connections are not affected.
        """


class IConnector(Interface):
    """A client connection attempt, which a ReconnectingClientFactory can retry."""

    def connect() -> None:
        """Start (or restart) connecting."""

    def stop_connecting() -> None:
        """Abandon an attempt in progress; the factory sees client_connection_failed."""

    def disconnect() -> None:
        """Abandon the attempt or drop the established connection."""

    def get_destination() -> Address:
        """The address being connected to."""


class IReactorTCP(Interface):
    def listen_tcp(port: int, factory: Any, backlog: int | None = None, interface: str = "") -> Any:
        """Listen on ``interface:port``; return an :class:`IListeningPort`.

        ``backlog`` is the listen queue length; None means the OS maximum (Linux:
        ``net.core.somaxconn``, else ``socket.SOMAXCONN``), so a burst of connects is queued
        rather than dropped (a dropped SYN costs the client a 1 s retransmit).

        ``net.tcp.listen_tcp`` (and the ``tcp:`` endpoint, as ``max_connections=N`` and
        ``max_connections_per_host=N``) also takes the keyword-only caps ``max_connections``
        (open connections of the port in total) and ``max_connections_per_host`` (per peer IP
        address, IPv6 per /64); a connection beyond a cap is accepted and closed at once, with a
        rate-limited WARNING. None (the default) is no cap. See docs/SECURITY.md, "Connections".

        Raises ``CannotListenError``.
        """

    def connect_tcp(
        host: str, port: int, factory: Any, timeout: float = 30, bind_address: tuple[str, int] | None = None
    ) -> Any:
        """Connect to ``host:port`` with a ClientFactory; return an :class:`IConnector`.

        Failure is reported to ``factory.client_connection_failed(connector, reason)``.
        """


class IProducer(Interface):
    def stop_producing() -> None:
        """Stop for good: the consumer is going away."""


class IPushProducer(IProducer):
    """Produces on its own until told to pause (a socket being read, say)."""

    def pause_producing() -> None:
        """Stop producing until :meth:`resume_producing`. Idempotent."""

    def resume_producing() -> None:
        """Produce again after :meth:`pause_producing`. Idempotent."""


class IPullProducer(IProducer):
    """Produces one chunk each time it is asked (a file being sent, say)."""

    def resume_producing() -> None:
        """Write one chunk to the consumer now."""


class IConsumer(Interface):
    def register_producer(producer: Any, streaming: bool) -> None:
        """Attach a producer. ``streaming`` True: push producer, paused above the high-water mark
        and resumed below the low-water mark. False: pull producer, asked for more each time the
        buffer drains. Raises RuntimeError if one is already registered.
        """

    def unregister_producer() -> None:
        """Detach the producer."""

    def write(data: bytes) -> None:
        """Consume ``data``."""


class ITransport(IConsumer, IPushProducer):
    """A bidirectional byte stream. Writes are buffered and never block or raise for I/O."""

    def write(data: bytes) -> None:
        """Queue ``data``; ignored once the connection is closing or closed."""

    def writelines(seq: Iterable[bytes]) -> None:
        """Queue each bytes object of ``seq``."""

    def lose_connection(reason: BaseException | None = None) -> None:
        """Close after everything written so far is sent. Idempotent.

        ``connection_lost`` receives ``reason`` if given, else ``ConnectionDone``.
        """

    def abort_connection(reason: BaseException | None = None) -> None:
        """Close now, dropping unsent data. ``connection_lost`` gets ``reason`` or ConnectionLost."""

    def can_write_eof() -> bool:
        """True if this transport can close its sending side alone (:meth:`write_eof`).

        True for stream sockets (TCP, Unix) and the in-memory transports; False for TLS, which
        has no half-close. The answer does not change during a connection's life.
        """

    def write_eof() -> None:
        """Half-close: shut the sending side down once everything written so far is sent.

        Receiving goes on: ``data_received`` and then ``eof_received`` still arrive. The peer's
        protocol gets ``eof_received()`` after the last byte (and keeps its connection open for
        writing if that returns True). ``is_closing()`` stays False. Once the peer's end of
        stream has arrived too (before or after this call), nothing is left open and the
        connection closes, after flushing, with ``ConnectionDone``.

        Idempotent; a no-op once the connection is closing or closed. A registered producer is
        not asked for more afterwards (unregister it first; it gets ``stop_producing()`` when the
        connection closes).

        Raises:
            NotImplementedError: the transport has no half-close (``can_write_eof()`` is False);
                nothing changed, the connection is still open both ways.

        Afterwards :meth:`write` and :meth:`writelines` with data raise ``RuntimeError``: the
        sending side is gone, the caller wrote too late.
        """

    def is_closing() -> bool:
        """True once :meth:`lose_connection` or :meth:`abort_connection` was called, or the
        connection is closed; False while it is open. asyncio's name.

        How a protocol learns, through the contract rather than a transport's attributes, that
        what it still receives will not be answered: a framer stops delivering messages then, the
        same over TCP, TLS and the in-memory transports.
        """

    def get_peer() -> Address:
        """The remote address."""

    def get_host() -> Address:
        """The local address."""

    def pause_reading() -> None:
        """Stop delivering ``data_received`` until :meth:`resume_reading`."""

    def resume_reading() -> None:
        """Deliver ``data_received`` again."""

    def get_write_buffer_size() -> int:
        """Bytes queued and not yet handed to the OS."""

    def set_write_buffer_limits(high: int | None = None, low: int | None = None) -> None:
        """Set the high- and low-water marks that pause and resume a streaming producer."""


class ITCPTransport(ITransport):
    def set_tcp_nodelay(enabled: bool) -> None:
        """Disable (True) or enable Nagle's algorithm."""

    def set_tcp_keepalive(enabled: bool) -> None:
        """Enable or disable TCP keepalive probes."""


class IProtocol(Interface):
    def make_connection(transport: Any) -> None:
        """Attach the transport and call :meth:`connection_made`."""

    def connection_made(transport: Any) -> None:
        """The connection is up; ``transport`` is ready for writes."""

    def data_received(data: bytes) -> None:
        """Some bytes arrived, in any chunking: framing is the protocol's job."""

    def eof_received() -> bool | None:
        """The peer closed its write side. Return True to keep writing; else the transport closes."""

    def connection_lost(reason: Failure) -> None:
        """The connection is closed; ``reason`` is a Failure. Called exactly once."""


class IBufferedProtocol(IProtocol):
    """Optional: a protocol that lends the transport its own buffer to receive into.

    asyncio's BufferedProtocol shape. Stream transports of :mod:`net.tcp` check for
    ``get_buffer`` on each read and then use ``recv_into`` on the lent buffer instead of
    ``recv`` + ``data_received``, which saves a fresh bytes object (and a copy) per read: what
    matters for big messages. ``data_received`` must still work, for transports that do not
    lend (TLS, the in-memory test transports) and for wrappers.
    """

    def get_buffer(sizehint: int) -> Any:
        """A writable buffer (e.g. a memoryview of spare capacity), non-empty.

        ``sizehint`` is the number of bytes the transport would like room for, or -1 for any.
        The transport writes into it once and then calls :meth:`buffer_updated`.
        """

    def buffer_updated(nbytes: int) -> None:
        """``nbytes`` bytes were written at the start of the last buffer lent.

        The transport drops the buffer before this call; the protocol may move or replace it.
        """


class IProtocolFactory(Interface):
    def build_protocol(addr: Address) -> Any:
        """Return a protocol for a new connection from/to ``addr``, or None to refuse it."""

    def do_start() -> None:
        """Called when a port or connector starts using the factory (counted)."""

    def do_stop() -> None:
        """Called when a port or connector stops using the factory (counted)."""


class IStreamServerEndpoint(Interface):
    def listen(factory: Any) -> Deferred[Any]:
        """Return a Deferred firing with an :class:`IListeningPort`."""


class IStreamClientEndpoint(Interface):
    def connect(factory: Any) -> Deferred[Any]:
        """Return a Deferred firing with the connected protocol, or failing with a ConnectError."""
