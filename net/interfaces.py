"""The contracts of the networking layer, declared as zope.interface interfaces.

Small interfaces, so code asks only for what it uses (a protocol that needs a clock asks for
:class:`IReactorTime`, not for a whole reactor). Implementations declare them with
``@implementer``, and tests check every implementation with ``zope.interface.verify.verifyObject``.

**The full contract of each method is in** :mod:`net.contracts`, whose ``typing.Protocol``
classes mirror these one for one (``IFoo`` -> ``net.contracts.Foo``; ``IProtocol`` ->
``StreamProtocol``, ``IBufferedProtocol`` -> ``BufferedStreamProtocol``), with signatures mypy
checks: what happens after close, at end of stream, on a second call, on cancellation. Here each
method keeps a one-line summary. ``tests/test_contracts.py`` fails if an interface and its
mirror stop naming the same methods and attributes.
"""

# zope.interface declares methods without ``self`` and with docstring-only bodies; mypy reads
# them as ordinary methods and reports [misc] "must have at least one argument" and [empty-body].
# mypy never checks implementations against these declarations (they use @implementer, no
# subclassing): the annotations here are documentation; net.contracts has the checked ones.
# mypy: disable-error-code="misc, empty-body"

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from zope.interface import Attribute, Interface

if TYPE_CHECKING:
    from .address import Address
    from .contracts import (
        CallHandle,
        ClientProtocolFactory,
        Connector,
        DatagramHandler,
        DatagramTransport,
        DelayedCall,
        ListeningPort,
        ProcessHandler,
        ProcessTransport,
        ProtocolFactory,
        PullProducer,
        PushProducer,
        StreamProtocol,
        Transport,
    )
    from .defer import Deferred, Failure
    from .process import ChildFD, ProcessAddress

__all__ = [
    "IService",
    "IDelayedCall",
    "IReactorCore",
    "IReactorTime",
    "IReactorFDSet",
    "IReactorThreads",
    "IReactorTCP",
    "IReactorUNIX",
    "IReactorUDP",
    "IReactorUNIXDatagram",
    "IReactorProcess",
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
    "IDatagramTransport",
    "IProcessTransport",
]


class IDelayedCall(Interface):
    """A call scheduled with :meth:`IReactorTime.call_later`. Contract: :class:`net.contracts.DelayedCall`."""

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
    """The clock and timed calls. Contract: :class:`net.contracts.ReactorTime`."""

    def seconds() -> float:
        """The reactor's monotonic clock, in seconds."""

    def call_later(delay: float, f: Callable[..., object], *args: Any, **kwargs: Any) -> DelayedCall:
        """Run ``f(*args, **kwargs)`` from the loop after ``delay`` seconds (0 = next round)."""

    def call_soon(f: Callable[..., object], *args: Any, **kwargs: Any) -> CallHandle:
        """Run ``f(*args, **kwargs)`` from the loop once the current callback has returned (FIFO)."""


class IReactorCore(Interface):
    """Running and stopping the loop. Contract: :class:`net.contracts.ReactorCore`."""

    running = Attribute("True while run() is looping (after startup, until shutdown completes).")

    def run() -> None:
        """Fire startup triggers, then loop until :meth:`stop`. Raises ``ReactorAlreadyRunning``."""

    def stop() -> None:
        """Fire shutdown triggers, then leave :meth:`run`. Raises ``ReactorNotRunning``."""

    def call_when_running(f: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        """Run ``f`` once the reactor runs (now, if it already does)."""

    def add_system_event_trigger(
        phase: str, event: str, f: Callable[..., object], *args: Any, **kwargs: Any
    ) -> object:
        """Run ``f`` at ``phase`` ("before", "during", "after") of ``event`` ("startup", "shutdown")."""

    def remove_system_event_trigger(trigger_id: object) -> None:
        """Forget a trigger added with :meth:`add_system_event_trigger`."""


class IReactorFDSet(Interface):
    """Readiness callbacks for file descriptors. Contract: :class:`net.contracts.ReactorFDSet`."""

    def add_reader(fd: int, callback: Callable[[], object]) -> None:
        """Call ``callback()`` from the loop whenever ``fd`` is readable. Replaces an earlier one."""

    def remove_reader(fd: int) -> None:
        """Stop watching ``fd`` for reading. A no-op if not watched."""

    def add_writer(fd: int, callback: Callable[[], object]) -> None:
        """Call ``callback()`` from the loop whenever ``fd`` is writable. Replaces an earlier one."""

    def remove_writer(fd: int) -> None:
        """Stop watching ``fd`` for writing. A no-op if not watched."""


class IReactorThreads(Interface):
    """The thread pool and the way back in. Contract: :class:`net.contracts.ReactorThreads`."""

    def call_in_thread(f: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        """Run ``f`` in the reactor's bounded thread pool; exceptions are logged."""

    def call_from_thread(f: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        """Run ``f`` in the reactor thread soon. Safe from any thread; wakes the loop."""

    def defer_to_thread(f: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
        """Run ``f`` in the pool; return a Deferred firing (in the reactor thread) with its result."""

    def set_thread_pool_size(size: int) -> None:
        """Bound the pool to ``size`` threads (at least 1)."""


class IListeningPort(Interface):
    """A bound, accepting socket. Contract: :class:`net.contracts.ListeningPort`."""

    def get_host() -> Address:
        """The address actually bound (port 0 resolves to the real port)."""

    def stop_listening() -> Deferred[None]:
        """Close the listening socket; the Deferred fires once it is closed. Idempotent."""


class IConnector(Interface):
    """A client connection attempt, restartable. Contract: :class:`net.contracts.Connector`."""

    reactor = Attribute("The reactor it connects on (an IReactorTime at least: retries are timed on it).")

    def connect() -> None:
        """Start (or restart) connecting."""

    def stop_connecting() -> None:
        """Abandon an attempt in progress; the factory sees client_connection_failed."""

    def disconnect() -> None:
        """Abandon the attempt or drop the established connection."""

    def get_destination() -> Address:
        """The address being connected to."""


class IReactorTCP(Interface):
    """TCP. Contract: :class:`net.contracts.ReactorTCP` (and :class:`net.contracts.Reactor` for our caps)."""

    def listen_tcp(port: int, factory: ProtocolFactory, backlog: int | None = None,
                   interface: str = "") -> ListeningPort:
        """Listen on ``interface:port``; return an :class:`IListeningPort`. Raises ``CannotListenError``."""

    def connect_tcp(host: str, port: int, factory: ClientProtocolFactory, timeout: float | None = 30,
                    bind_address: tuple[str, int] | None = None) -> Connector:
        """Connect to ``host:port`` with a ClientFactory; return an :class:`IConnector`."""


class IReactorUNIX(Interface):
    """Unix stream sockets. Contract: :class:`net.contracts.ReactorUNIX`."""

    def listen_unix(path: str, factory: ProtocolFactory, mode: int = 0o660, backlog: int = 50, *,
                    max_connections: int | None = None) -> ListeningPort:
        """Listen at ``path`` (``@name``: abstract); return an :class:`IListeningPort`."""

    def connect_unix(path: str, factory: ClientProtocolFactory, timeout: float | None = 30) -> Connector:
        """Connect to ``path`` with a ClientFactory; return an :class:`IConnector`."""


class IReactorUDP(Interface):
    """UDP. Contract: :class:`net.contracts.ReactorUDP`."""

    def listen_udp(port: int, protocol: DatagramHandler, interface: str = "", max_packet_size: int = 65535,
                   listen_multiple: bool = False) -> DatagramTransport:
        """Bind a UDP socket for ``protocol``; return an :class:`IDatagramTransport`."""


class IReactorUNIXDatagram(Interface):
    """Unix datagram sockets. Contract: :class:`net.contracts.ReactorUNIXDatagram`."""

    def listen_unix_datagram(path: str, protocol: DatagramHandler, mode: int = 0o660,
                             max_packet_size: int = 65535) -> DatagramTransport:
        """Bind a Unix datagram socket at ``path``; return an :class:`IDatagramTransport`."""

    def connect_unix_datagram(path: str | None, protocol: DatagramHandler,
                              max_packet_size: int = 65535) -> DatagramTransport:
        """An autobound Unix datagram socket, connected to ``path`` unless None."""


class IReactorProcess(Interface):
    """Child processes. Contract: :class:`net.contracts.ReactorProcess`."""

    def spawn_process(process_protocol: ProcessHandler, executable: str, args: Sequence[Any],
                      env: Mapping[Any, Any] | None = None, path: str | None = None, uid: int | None = None,
                      gid: int | None = None, use_pty: bool = False,
                      child_fds: Mapping[int, ChildFD] | None = None) -> ProcessTransport:
        """Start a child process wired to ``process_protocol``; return an :class:`IProcessTransport`."""


class IProducer(Interface):
    """Contract: :class:`net.contracts.Producer`."""

    def stop_producing() -> None:
        """Stop for good: the consumer is going away."""


class IPushProducer(IProducer):
    """Produces on its own until told to pause. Contract: :class:`net.contracts.PushProducer`."""

    def pause_producing() -> None:
        """Stop producing until :meth:`resume_producing`. Idempotent."""

    def resume_producing() -> None:
        """Produce again after :meth:`pause_producing`. Idempotent."""


class IPullProducer(IProducer):
    """Produces one chunk each time it is asked. Contract: :class:`net.contracts.PullProducer`."""

    def resume_producing() -> None:
        """Write one chunk to the consumer now."""


class IConsumer(Interface):
    """Contract: :class:`net.contracts.Consumer`."""

    def register_producer(producer: PushProducer | PullProducer, streaming: bool) -> None:
        """Attach a producer (streaming: push; else pull). RuntimeError if one is registered."""

    def unregister_producer() -> None:
        """Detach the producer."""

    def write(data: bytes) -> None:
        """Consume ``data``."""


class ITransport(IConsumer, IPushProducer):
    """A bidirectional byte stream. Contract: :class:`net.contracts.Transport`."""

    def write(data: bytes) -> None:
        """Queue ``data``; ignored once the connection is closing or closed."""

    def writelines(seq: Iterable[bytes]) -> None:
        """Queue each bytes object of ``seq``."""

    def lose_connection(reason: BaseException | None = None) -> None:
        """Close after everything written so far is sent. Idempotent."""

    def abort_connection(reason: BaseException | None = None) -> None:
        """Close now, dropping unsent data."""

    def can_write_eof() -> bool:
        """True if this transport can close its sending side alone (:meth:`write_eof`)."""

    def write_eof() -> None:
        """Half-close: shut the sending side down once everything written so far is sent."""

    def is_closing() -> bool:
        """True once closing or closed; False while open. asyncio's name."""

    def get_peer() -> object:
        """The remote address."""

    def get_host() -> object:
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
    """Contract: :class:`net.contracts.TCPTransport`."""

    def set_tcp_nodelay(enabled: bool) -> None:
        """Disable (True) or enable Nagle's algorithm."""

    def set_tcp_keepalive(enabled: bool) -> None:
        """Enable or disable TCP keepalive probes."""


class IProtocol(Interface):
    """What a stream transport calls. Contract: :class:`net.contracts.StreamProtocol`."""

    def make_connection(transport: Transport) -> None:
        """Attach the transport and call :meth:`connection_made`."""

    def connection_made(transport: Transport) -> None:
        """The connection is up; ``transport`` is ready for writes."""

    def data_received(data: bytes) -> None:
        """Some bytes arrived, in any chunking: framing is the protocol's job."""

    def eof_received() -> bool | None:
        """The peer closed its write side. Return True to keep writing; else the transport closes."""

    def connection_lost(reason: Failure) -> None:
        """The connection is closed; ``reason`` is a Failure. Called exactly once."""


class IBufferedProtocol(IProtocol):
    """A protocol that lends the transport its buffer. Contract: :class:`net.contracts.BufferedStreamProtocol`."""

    def get_buffer(sizehint: int) -> Any:
        """A writable buffer (e.g. a memoryview of spare capacity), non-empty."""

    def buffer_updated(nbytes: int) -> None:
        """``nbytes`` bytes were written at the start of the last buffer lent."""


class IProtocolFactory(Interface):
    """Contract: :class:`net.contracts.ProtocolFactory` (a connector's: ``ClientProtocolFactory``)."""

    def build_protocol(addr: Address) -> StreamProtocol | None:
        """Return a protocol for a new connection from/to ``addr``, or None to refuse it."""

    def do_start() -> None:
        """Called when a port or connector starts using the factory (counted)."""

    def do_stop() -> None:
        """Called when a port or connector stops using the factory (counted)."""


class IStreamServerEndpoint(Interface):
    """Contract: :class:`net.contracts.StreamServerEndpoint`."""

    def listen(factory: ProtocolFactory) -> Deferred[ListeningPort]:
        """Return a Deferred firing with an :class:`IListeningPort`."""


class IStreamClientEndpoint(Interface):
    """Contract: :class:`net.contracts.StreamClientEndpoint`."""

    def connect(factory: ProtocolFactory) -> Deferred[Any]:
        """Return a Deferred firing with the connected protocol, or failing with a ConnectError."""


class IDatagramTransport(IListeningPort):
    """A bound datagram socket, port and transport in one. Contract: :class:`net.contracts.DatagramTransport`."""

    def write(data: bytes, addr: Any = None) -> None:
        """Send one datagram to ``addr`` (or the connected peer). RuntimeError once closing."""

    def get_peer() -> Address | None:
        """The connected peer's address; None while unconnected."""

    def get_write_buffer_size() -> int:
        """Bytes of datagrams waiting for the kernel."""

    def pause_reading() -> None:
        """Stop reading (the kernel buffers, then drops)."""

    def resume_reading() -> None:
        """Read again."""

    def lose_connection() -> None:
        """:meth:`stop_listening` without the Deferred."""

    def is_closing() -> bool:
        """True once closing or closed."""


class IProcessTransport(ITransport):
    """A running child process. Contract: :class:`net.contracts.ProcessTransport`."""

    pid = Attribute("The child's process id.")

    def signal_process(sig: str | int) -> None:
        """Send ``sig`` to the child. Raises ``ProcessExitedAlready`` once it has been reaped."""

    def write_to_child(child_fd: int, data: bytes) -> None:
        """Queue ``data`` for the child's fd ``child_fd`` (a ``"w"`` pipe)."""

    def close_stdin() -> None:
        """Close the child's stdin once flushed (on a pty: send ^D)."""

    def close_child_fd(child_fd: int) -> None:
        """Close our end of the child's fd ``child_fd``."""

    def get_host() -> ProcessAddress:
        """The child's address (its pid)."""

    def get_peer() -> ProcessAddress:
        """The child's address (its pid)."""


class IService(Interface):
    """Started once the reactor runs, stopped before it stops. Contract: :class:`net.service.IService`."""

    name = Attribute("A name unique among the services of one MultiService, or None.")
    running = Attribute("True from start_service() until stop_service().")

    def start_service() -> Deferred[None] | None:
        """Start; set ``running``. A Deferred: started once it fires (a failure: it did not start)."""

    def stop_service() -> Deferred[None] | None:
        """Stop; clear ``running``. A Deferred: stopped once it fires (never left pending forever)."""
