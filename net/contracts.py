"""The contracts of the networking layer as ``typing.Protocol`` classes: what mypy checks.

:mod:`net.interfaces` declares the same contracts as zope interfaces, for ``@implementer`` and
``verifyObject``; mypy cannot check a call against those. Each class here mirrors one of them,
method for method (``tests/test_contracts.py`` keeps the two from drifting, and checks that every
transport, port, connector, endpoint and reactor of ``net`` satisfies its mirror, statically and
at run time). Annotate with these::

    from net.contracts import ReactorTime, Transport

    def send_later(reactor: ReactorTime, transport: Transport, data: bytes) -> None:
        reactor.call_later(1.0, transport.write, data)

and plain mypy checks both your calls and your own implementations, with no plugin. Every class
is ``runtime_checkable`` (``isinstance`` checks that the members exist, not their signatures).

**These docstrings are the contracts**; the zope interfaces point here. Each method says what it
does while open, after the connection or port closed, on a second call, at end of stream, and
what cancelling leaves behind, in the manner of trio's ``_abc.py``. Where one of our
implementations differs, the docstring says which and how.

Names: ``IFoo`` is mirrored by ``Foo``, except ``IProtocol`` and ``IBufferedProtocol``, which
would shadow :class:`net.protocol.Protocol` (and ``typing.Protocol``): they are
:class:`StreamProtocol` and :class:`BufferedStreamProtocol`. :class:`ClientProtocolFactory`,
:class:`DatagramHandler`, :class:`ProcessHandler`, :class:`CallHandle`, :class:`ReactorIO` and
:class:`Reactor` have no zope twin: they type what the code of ``net`` calls (a connector's
hooks on its factory, what a datagram port or a child process calls on its protocol).

Two rules hold for every transport of ``net``:

* Nothing is called on a protocol from inside a call that protocol made: a ``write()`` that
  fails, a ``lose_connection()``, an ``abort_connection()`` all report ``connection_lost`` from a
  later loop iteration. (The in-memory :class:`net.testing.Pump` delivers when the test pumps.)
* After ``connection_lost`` nothing more is called on the protocol, and the transport's
  methods are harmless: writes are ignored, closing is a no-op, addresses still answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .address import Address
    from .defer import Deferred, Failure
    from .process import ChildFD, ProcessAddress
    from .unix import PeerCredentials

__all__ = [
    "CallHandle",
    "DelayedCall",
    "ReactorTime",
    "ReactorCore",
    "ReactorFDSet",
    "ReactorThreads",
    "ReactorTCP",
    "ReactorUNIX",
    "ReactorUDP",
    "ReactorUNIXDatagram",
    "ReactorProcess",
    "ReactorIO",
    "Reactor",
    "ListeningPort",
    "Connector",
    "Producer",
    "PushProducer",
    "PullProducer",
    "Consumer",
    "Transport",
    "TCPTransport",
    "UNIXTransport",
    "StreamProtocol",
    "BufferedStreamProtocol",
    "ProtocolFactory",
    "ClientProtocolFactory",
    "StreamServerEndpoint",
    "StreamClientEndpoint",
    "DatagramTransport",
    "DatagramHandler",
    "ProcessTransport",
    "ProcessHandler",
    "Service",
]


# -- time ------------------------------------------------------------------------------------------


@runtime_checkable
class CallHandle(Protocol):
    """What :meth:`ReactorTime.call_soon` returns: a way to take the call back."""

    def cancel(self) -> None:
        """Stop the call from running, and let go of what it would have called.

        On a reactor a no-op once the call has run or was cancelled (as ``asyncio.Handle``).
        :class:`net.testing.Clock` returns a :class:`DelayedCall`, whose ``cancel()`` raises
        then: cancel a call only while you know it is pending.
        """


@runtime_checkable
class DelayedCall(Protocol):
    """A call scheduled with :meth:`ReactorTime.call_later`; the handle to cancel or move it.

    Moving it (:meth:`reset`, :meth:`delay`) keeps the same object, so whoever holds it keeps a
    valid handle. A call counts as run from the moment the reactor starts running it: from
    inside the call itself, :meth:`active` is False and :meth:`cancel` raises ``AlreadyCalled``.
    """

    @property
    def time(self) -> float:
        """The reactor time (:meth:`ReactorTime.seconds`) at which the call runs; moves with
        :meth:`reset` and :meth:`delay`."""

    def cancel(self) -> None:
        """Stop the call from running; what it would have called is released at once.

        Raises:
            AlreadyCancelled: it was cancelled before (a second ``cancel()``).
            AlreadyCalled: it has run, or is running.
        """

    def reset(self, seconds_from_now: float) -> None:
        """Run ``seconds_from_now`` seconds from now instead (a negative value: now, that is
        from the next loop round).

        Raises:
            AlreadyCancelled, AlreadyCalled: as :meth:`cancel`; nothing changed.
        """

    def delay(self, seconds_later: float) -> None:
        """Postpone by ``seconds_later`` seconds from the current :attr:`time` (negative brings it
        forward).

        Raises:
            AlreadyCancelled, AlreadyCalled: as :meth:`cancel`; nothing changed.
        """

    def active(self) -> bool:
        """True until the call has started running or was cancelled; then False for good."""


@runtime_checkable
class ReactorTime(Protocol):
    """A clock and the calls scheduled on it; what a timeout needs. :class:`net.testing.Clock`
    provides it with time that moves only when the test says so."""

    def seconds(self) -> float:
        """The reactor's clock in seconds: monotonic (never goes back), not the time of day."""

    def call_later(self, delay: float, f: Callable[..., object], *args: Any, **kwargs: Any) -> DelayedCall:
        """Run ``f(*args, **kwargs)`` from the loop after ``delay`` seconds.

        ``delay`` <= 0 means the next loop round (never from inside this call). Calls due at
        the same time run in the order they were scheduled; a call scheduled by a call runs in a
        later round, so a chain of them cannot starve I/O. An exception ``f`` raises is logged
        (``net.reactor``) and the loop goes on; :class:`net.testing.Clock` lets it propagate to the
        test instead. Not thread-safe: from another thread use
        :meth:`ReactorThreads.call_from_thread`. Before :meth:`ReactorCore.run` the call waits
        for the reactor to run; on a closed reactor it never runs.
        """

    def call_soon(self, f: Callable[..., object], *args: Any, **kwargs: Any) -> CallHandle:
        """Run ``f(*args, **kwargs)`` from the loop once the current callback has returned.

        FIFO among ``call_soon`` calls, on the next loop round, before the due timed calls and
        before the loop waits: the cheapest "after this callback". Exceptions as for
        :meth:`call_later`. Not thread-safe. On a closed reactor the call never runs.
        """


# -- the loop --------------------------------------------------------------------------------------


@runtime_checkable
class ReactorCore(Protocol):
    """Running and stopping the loop, and the startup and shutdown events around it."""

    @property
    def running(self) -> bool:
        """True from the end of the startup event's ``during`` phase until the shutdown event
        has completed; False before, after, and on a stopped reactor."""

    def run(self) -> None:
        """Fire the startup event, loop until :meth:`stop` has completed, return.

        A stopped reactor may be run again (its triggers were consumed: it starts from a clean
        slate). In the main thread SIGINT and SIGTERM stop it cleanly; the previous handlers are
        restored on return.

        Raises:
            ReactorAlreadyRunning: called while it runs (from a callback, or another thread), or
                on the asyncio backend while its asyncio loop already runs (use ``await
                reactor.start()`` and ``await reactor.shutdown()`` there).
            RuntimeError: the reactor was closed.
        """

    def stop(self) -> None:
        """Fire the shutdown event from the next loop round, then leave :meth:`run`.

        ``before`` triggers may return Deferreds; the ``during`` phase waits for all of them (a
        failed one is logged, it does not block the shutdown). Connections stay open: closing
        them is a shutdown trigger's job.

        Raises:
            ReactorNotRunning: not running, or :meth:`stop` was already called (a second call).
        """

    def call_when_running(self, f: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        """Run ``f(*args, **kwargs)`` once the reactor runs: now, inside this call, if it already
        does (an exception then propagates to the caller); else in the startup event's ``after``
        phase of the next :meth:`run` (an exception is then logged)."""

    def add_system_event_trigger(
        self, phase: str, event: str, f: Callable[..., object], *args: Any, **kwargs: Any
    ) -> object:
        """Run ``f(*args, **kwargs)`` in ``phase`` ("before", "during", "after") of ``event``
        ("startup", "shutdown"); return an id for :meth:`remove_system_event_trigger`.

        Triggers are one-shot: firing the event consumes them. A ``before`` trigger may return
        a Deferred, which the ``during`` phase waits for. Exceptions are logged.

        Raises:
            ValueError: an unknown phase or event; nothing was added.
        """

    def remove_system_event_trigger(self, trigger_id: object) -> None:
        """Forget a trigger that has not fired yet.

        Raises:
            ValueError: not an id, or its trigger has fired or was removed (a second call).
        """


@runtime_checkable
class ReactorFDSet(Protocol):
    """Readiness callbacks for file descriptors: what socket and pipe transports are built on.

    Callbacks run from the loop; an exception one raises is logged and the fd stays watched.
    Stop watching an fd before closing it.
    """

    def add_reader(self, fd: int, callback: Callable[[], object]) -> None:
        """Call ``callback()`` whenever ``fd`` is readable (level-triggered: again and again
        while it stays readable). Replaces the fd's earlier reader, if any."""

    def remove_reader(self, fd: int) -> None:
        """Stop calling ``fd``'s reader. A no-op if it has none (a second call)."""

    def add_writer(self, fd: int, callback: Callable[[], object]) -> None:
        """Call ``callback()`` whenever ``fd`` is writable (level-triggered). Replaces the fd's
        earlier writer, if any."""

    def remove_writer(self, fd: int) -> None:
        """Stop calling ``fd``'s writer. A no-op if it has none (a second call)."""


@runtime_checkable
class ReactorThreads(Protocol):
    """A bounded thread pool for blocking work, and the way back into the reactor thread."""

    def call_in_thread(self, f: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        """Run ``f(*args, **kwargs)`` in the pool (started on first use, stopped by the shutdown
        event); jobs wait for a free thread. An exception ``f`` raises is logged. Call it from
        the reactor thread."""

    def call_from_thread(self, f: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        """Run ``f(*args, **kwargs)`` in the reactor thread soon, in the order of the calls.

        Safe from any thread and from signal handlers; wakes the loop. While the reactor is not
        running the call waits for the next :meth:`ReactorCore.run`. On the asyncio backend,
        once its loop is closed, raises RuntimeError (the loop's own refusal).
        """

    def defer_to_thread(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
        """Run ``f`` in the pool; the Deferred fires in the reactor thread with its result, or
        fails with its exception.

        Cancelling the Deferred fails it with CancelledError at once; ``f`` cannot be
        interrupted: it runs to its end in its thread and its outcome is dropped.
        """

    def set_thread_pool_size(self, size: int) -> None:
        """Bound the pool to ``size`` threads; extra threads of a running pool retire as they
        become idle.

        Raises:
            ValueError: ``size`` < 1; nothing changed.
        """


# -- ports and connectors --------------------------------------------------------------------------


@runtime_checkable
class ListeningPort(Protocol):
    """A bound socket that accepts connections (or, for datagrams, receives) for a factory."""

    def get_host(self) -> Address:
        """The address actually bound (port 0 resolved to the real port). Still answers after
        :meth:`stop_listening`."""

    def stop_listening(self) -> Deferred[None]:
        """Stop accepting and close the listening socket; the Deferred fires once it is closed.

        Connections already accepted are not affected. The factory's ``do_stop()`` runs once.
        Idempotent: a later call returns a Deferred that has fired (or, while a datagram port
        still drains its queue, one that fires with the first). Stream ports (TCP, Unix, the
        memory port) have closed, and fired the Deferred, by the time this returns; a datagram
        port fires it after its protocol's ``stop_protocol()``. Cancelling the Deferred stops
        nothing: the port closes all the same.
        """


@runtime_checkable
class Connector(Protocol):
    """One outgoing connection attempt for a :class:`ClientProtocolFactory`, restartable.

    States: disconnected -> connect() -> connecting -> connected -> (the connection ends) ->
    disconnected; connecting -> stop_connecting(), the timeout, a failure -> disconnected. The
    factory hears ``start_connecting`` on each :meth:`connect`, then exactly one of
    ``client_connection_failed`` (from connecting) or ``client_connection_lost`` (from connected).
    """

    def connect(self) -> None:
        """Start an attempt: ``factory.start_connecting(self)`` now, the attempt itself from the
        next loop round, so the factory never hears of a failure before this returns. A
        reconnecting factory calls it again from its ``client_connection_*`` hooks.

        Raises:
            RuntimeError: not disconnected (connecting or connected already).
        """

    def stop_connecting(self) -> None:
        """Abandon the attempt in progress: its socket is closed, its timers cancelled, and the
        factory hears ``client_connection_failed`` with a ConnectError now, inside this call.

        Raises:
            RuntimeError: not connecting (never started, connected already, or a second call).
        """

    def disconnect(self) -> None:
        """Abandon the attempt (:meth:`stop_connecting`) or close the established connection
        (its transport's ``lose_connection()``); a no-op when disconnected."""

    def get_destination(self) -> Address:
        """The address being connected to, as given (a host name is not resolved here)."""

    @property
    def reactor(self) -> ReactorTime:
        """The reactor it connects on: a ReconnectingClientFactory times its retries on it."""


# -- producers and consumers -----------------------------------------------------------------------


@runtime_checkable
class Producer(Protocol):
    """Something that writes to a :class:`Consumer` at the pace the consumer sets."""

    def stop_producing(self) -> None:
        """Stop for good: the consumer is going away (its connection ended). Our transports call
        it once, after the connection closed or at once when the producer is registered with a
        closed transport; nothing written afterwards is sent."""


@runtime_checkable
class PushProducer(Producer, Protocol):
    """Produces on its own until told to pause (a socket being read, say): a ``streaming``
    producer. Our consumers call :meth:`pause_producing` and :meth:`resume_producing` only on a
    change (above the high-water mark, then at or below the low-water mark)."""

    def pause_producing(self) -> None:
        """Stop producing until :meth:`resume_producing`. Idempotent."""

    def resume_producing(self) -> None:
        """Produce again after :meth:`pause_producing`. Idempotent."""


@runtime_checkable
class PullProducer(Producer, Protocol):
    """Produces one chunk each time it is asked (a file being sent, say): not ``streaming``."""

    def resume_producing(self) -> None:
        """Write the next chunk to the consumer now. The consumer asks again each time its
        buffer has drained; at the end, unregister (``unregister_producer()``) rather than write
        nothing, or the consumer keeps asking."""


@runtime_checkable
class Consumer(Protocol):
    """Takes bytes, and paces a producer that feeds it."""

    def register_producer(self, producer: PushProducer | PullProducer, streaming: bool) -> None:
        """Attach ``producer``. ``streaming`` True: a :class:`PushProducer`, paused now if the
        buffer is above the high-water mark, later whenever it goes above, and resumed at or
        below the low-water mark. False: a :class:`PullProducer`, asked for its first chunk now,
        inside this call, and for another each time the buffer drains.

        Registered with a closed transport (or a closing one, for pipes), the producer gets
        ``stop_producing()`` at once and is not kept. It gets ``stop_producing()`` when the
        connection ends.

        Raises:
            RuntimeError: a producer is registered already; nothing changed.
        """

    def unregister_producer(self) -> None:
        """Detach the producer without telling it anything. A no-op when none is registered."""

    def write(self, data: bytes) -> None:
        """Consume ``data``; see :meth:`Transport.write`."""


# -- stream transports and protocols ---------------------------------------------------------------


@runtime_checkable
class Transport(Consumer, PushProducer, Protocol):
    """A bidirectional byte stream: TCP, TLS, Unix sockets, pipes, the in-memory pair.

    Writes are buffered and never block; an I/O error does not raise from them, it closes the
    connection (``connection_lost`` with a ConnectionLost). As a :class:`PushProducer` the
    transport produces what it reads: pausing it pauses reading; ``stop_producing()`` is
    :meth:`abort_connection`.
    """

    def write(self, data: bytes) -> None:
        """Send ``data``: now if nothing is queued, else after what is.

        Ignored once the connection is closing or closed (after :meth:`lose_connection`,
        :meth:`abort_connection`, or its end), and for empty data.

        Raises:
            TypeError: ``data`` is not bytes-like (a str, say); nothing was queued.
            RuntimeError: after :meth:`write_eof` (the sending side is shut down) while the
                connection is otherwise open; nothing was queued. (A process transport and
                :class:`net.stdio.StandardIO` raise it while closing too.)
        """

    def writelines(self, seq: Iterable[bytes]) -> None:
        """:meth:`write` each bytes object of ``seq``, in order (TCP sends them together, in one
        gathering ``sendmsg()``). Same rules as :meth:`write`."""

    def lose_connection(self, reason: BaseException | None = None) -> None:
        """Close once everything written so far is sent; stop reading meanwhile.

        Later writes are ignored. A registered producer is not waited for: it gets
        ``stop_producing()`` when the connection closes. The protocol's ``connection_lost`` gets
        ``reason`` if given, else ConnectionDone; the peer reads end of stream. Idempotent: a
        second call (or one after :meth:`abort_connection` or the end) is a no-op, and the first
        reason stands. :meth:`abort_connection` may still cut a slow flush short.

        TLS sends close_notify before closing below. A process transport closes the child's
        stdin, keeps reading its output, leaves the child running, and ignores ``reason``.
        """

    def abort_connection(self, reason: BaseException | None = None) -> None:
        """Close now, dropping what is queued (also while a :meth:`lose_connection` flushes).

        ``connection_lost`` gets ``reason`` if given, else ConnectionLost("Connection was
        aborted."). A TCP peer sees a reset; a Unix or pipe peer sees end of stream. A no-op once
        closed. A process transport closes every pipe and leaves the child running (signal it).
        """

    def can_write_eof(self) -> bool:
        """True if this transport can close its sending side alone (:meth:`write_eof`).

        True for stream sockets (TCP, Unix), the in-memory transports, a child's stdin pipe and
        StandardIO over two fds; False for TLS (no half-close), a pty, or one fd both ways. The
        answer does not change during a connection's life.
        """

    def write_eof(self) -> None:
        """Half-close: shut the sending side down once everything written so far is sent.

        Receiving goes on: ``data_received`` and then ``eof_received`` still arrive. The peer's
        protocol gets ``eof_received()`` after the last byte (and keeps its connection open for
        writing if that returns True). ``is_closing()`` stays False. Once the peer's end of
        stream has arrived too (before or after this call), nothing is left open and the
        connection closes, after flushing, with ``ConnectionDone``.

        Idempotent; a no-op once the connection is closing or closed. A registered producer is
        not asked for more afterwards (unregister it first; it gets ``stop_producing()`` when the
        connection closes). Afterwards :meth:`write` and :meth:`writelines` with data raise
        RuntimeError: the sending side is gone, the caller wrote too late.

        Raises:
            NotImplementedError: the transport has no half-close (``can_write_eof()`` is False);
                nothing changed, the connection is still open both ways.
        """

    def is_closing(self) -> bool:
        """True once :meth:`lose_connection` or :meth:`abort_connection` was called, or the
        connection is closed; False while it is open (also after :meth:`write_eof`). asyncio's
        name.

        How a protocol learns, through the contract rather than a transport's attributes, that
        what it still receives will not be answered: a framer stops delivering messages then, the
        same over TCP, TLS and the in-memory transports.
        """

    def get_peer(self) -> object:
        """The remote address: an :data:`~net.address.Address` for sockets (TLS: the one of the
        socket below), a ``ProcessAddress`` or ``PipeAddress`` for pipes. Still answers after the
        connection closed."""

    def get_host(self) -> object:
        """The local address, of the same kinds as :meth:`get_peer`. Still answers after the
        connection closed."""

    def pause_reading(self) -> None:
        """Deliver nothing more, neither data nor end of stream, until :meth:`resume_reading`;
        the peer is slowed by the kernel's buffers filling. Idempotent; a no-op once closed."""

    def resume_reading(self) -> None:
        """Deliver again, from a later loop iteration (never from inside this call). Idempotent;
        a no-op after end of stream (there is nothing more to read) or once closed."""

    def get_write_buffer_size(self) -> int:
        """Bytes accepted by :meth:`write` and not yet handed to the OS (TLS: the ciphertext
        queued below). 0 once closed."""

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Set the high- and low-water marks that pause and resume a streaming producer.

        asyncio's rule: given one, the other is 4x or 1/4 of it; neither, 64 KiB and 16 KiB. A
        registered streaming producer is paused or resumed at once if the new marks say so.

        Raises:
            ValueError: unless ``high >= low >= 0``; the marks are unchanged.
        """


@runtime_checkable
class TCPTransport(Transport, Protocol):
    """A TCP connection's options. TLS passes them through to the connection below (a no-op over
    a Unix socket)."""

    def set_tcp_nodelay(self, enabled: bool) -> None:
        """True: send small writes at once (no Nagle delay; our default); False: let the kernel
        coalesce them. On a TCP connection whose socket is closed: OSError."""

    def set_tcp_keepalive(self, enabled: bool) -> None:
        """Turn the kernel's keepalive probes on or off. On a closed TCP connection: OSError."""


@runtime_checkable
class UNIXTransport(Transport, Protocol):
    """A Unix stream socket: the peer's credentials and descriptor passing (:mod:`net.unix`)."""

    def get_peer_credentials(self) -> PeerCredentials:
        """The peer's pid, uid and gid when it connected (``SO_PEERCRED``); read at the start, so
        still there after the connection closed.

        Raises:
            NotImplementedError: not on Linux.
        """

    def send_fds(self, fds: Sequence[int], data: bytes = b"\0") -> None:
        """Send ``fds`` with ``data`` (at least one byte), after everything written before.

        The descriptors are duplicated now, so the caller may close its own; the duplicates are
        closed once sent, or when the connection closes first (then the peer never gets them).

        Ignored, like :meth:`Transport.write`, once the connection is closing or closed.

        Raises:
            ValueError: no data, no descriptors, or more than ``MAX_FDS_PER_MESSAGE``.
            TypeError: a descriptor that is not an int >= 0.
            RuntimeError: after ``write_eof()``; nothing of this call stays queued.
        """


@runtime_checkable
class StreamProtocol(Protocol):
    """What a stream transport calls: the mirror of ``IProtocol``.

    Order, per connection: :meth:`make_connection` (which calls :meth:`connection_made`) once,
    then :meth:`data_received` any number of times, then at most one :meth:`eof_received`, then
    :meth:`connection_lost` exactly once. Nothing after that. An exception raised by one of
    these (but :meth:`connection_lost`) is logged and closes the connection at once, dropping
    what is queued, with the exception as the reason ``connection_lost`` gets; the in-memory
    :class:`net.testing.Pump` lets it propagate to the test instead. An exception from
    :meth:`connection_lost` is logged. :class:`net.protocol.Protocol` is the base to subclass.
    """

    def make_connection(self, transport: Transport) -> None:
        """Attach ``transport`` (as ``self.transport``), then call :meth:`connection_made`.

        TLS calls it once the handshake has completed; a process transport with a
        :class:`ProcessHandler` instead.
        """

    def connection_made(self, transport: Transport) -> None:
        """The connection is up: ``transport`` takes writes now. If this raises, the connection
        is aborted and :meth:`connection_lost` still runs."""

    def data_received(self, data: bytes) -> None:
        """Some bytes arrived, in any chunking (framing is the protocol's job). Never after
        :meth:`eof_received` or :meth:`connection_lost`, nor while reading is paused. Socket
        transports stop delivering once the protocol called ``lose_connection()``; the
        in-memory transport still delivers what reaches it while it flushes."""

    def eof_received(self) -> bool | None:
        """The peer closed its sending side; nothing more will arrive.

        Return True to keep our sending side open (write, then ``lose_connection()``); anything
        else makes the transport ``lose_connection(ConnectionDone(by_peer=True))``. After our own
        ``write_eof()`` the connection closes whatever this returns. Called at most once, never
        after an abort. Over TLS it means close_notify arrived; a TCP end without close_notify
        is no ``eof_received`` but a ``connection_lost`` with ConnectionLost (a possible
        truncation).
        """

    def connection_lost(self, reason: Failure) -> None:
        """The connection is closed; called exactly once, from a loop iteration after the call
        that closed it, also when :meth:`connection_made` raised.

        ``reason`` wraps ConnectionDone for a clean close (``by_peer`` True when the peer ended
        it), ConnectionLost for a reset, an abort or an I/O error, the exception one of our
        callbacks raised, or a TLSError. A registered producer has been told ``stop_producing()``
        just before.
        """


@runtime_checkable
class BufferedStreamProtocol(StreamProtocol, Protocol):
    """Optional: a protocol that lends the transport its own buffer to receive into.

    asyncio's BufferedProtocol shape. Stream transports of :mod:`net.tcp` (and :mod:`net.unix`)
    look for ``get_buffer`` on each read and then use ``recv_into`` on the lent buffer instead
    of ``recv`` + :meth:`data_received`, which saves a fresh bytes object (and a copy) per read:
    what matters for big messages. :meth:`data_received` must still work, for transports that
    do not lend (TLS, the in-memory test transports) and for wrappers.
    """

    def get_buffer(self, sizehint: int) -> Any:  # any writable buffer: a memoryview, a bytearray...
        """A writable buffer (e.g. a memoryview of spare capacity), non-empty.

        ``sizehint`` is the number of bytes the transport would like room for, or -1 for any.
        The transport writes into it once and then calls :meth:`buffer_updated`. An empty
        buffer, or an exception, closes the connection (RuntimeError, or that exception, as the
        reason).
        """

    def buffer_updated(self, nbytes: int) -> None:
        """``nbytes`` (> 0) bytes were written at the start of the last buffer lent.

        The transport drops the buffer before this call; the protocol may move or replace it.
        End of stream is :meth:`eof_received`, never ``buffer_updated(0)``.
        """


@runtime_checkable
class ProtocolFactory(Protocol):
    """Makes a protocol per connection; a port or connector tells it when it starts and stops
    using it (:class:`net.protocol.Factory` counts these)."""

    def build_protocol(self, addr: Address) -> StreamProtocol | None:
        """A protocol for a new connection from (a port) or to (a connector) ``addr``, or None to
        refuse it.

        A port closes a refused connection; a connector fails the attempt with a ConnectError.
        An exception is logged and counts as a refusal (a connector's ConnectError has it as its
        ``__cause__``).
        """

    def do_start(self) -> None:
        """A port or connector starts using the factory: a port before it accepts anything, a
        connector on its first :meth:`Connector.connect`. Counted: called once per user. An
        exception from a port's call propagates (the port does not listen)."""

    def do_stop(self) -> None:
        """A port or connector stops using it (``stop_listening()``; a connector once
        disconnected and not reconnecting). Once per :meth:`do_start`; an exception is logged."""


@runtime_checkable
class ClientProtocolFactory(ProtocolFactory, Protocol):
    """A factory a :class:`Connector` reports to (:class:`net.protocol.ClientFactory`)."""

    def start_connecting(self, connector: Connector) -> None:
        """An attempt starts, from inside :meth:`Connector.connect`; calling
        ``connector.stop_connecting()`` here abandons it."""

    def client_connection_failed(self, connector: Connector, reason: Failure) -> None:
        """The attempt failed (``reason`` wraps a ConnectError: ConnectionRefusedError,
        ConnectTimeoutError, DNSLookupError...; a TLSError for a failed handshake). Once per
        attempt, from the loop (from inside ``stop_connecting()`` when that ended it); calling
        ``connector.connect()`` here tries again."""

    def client_connection_lost(self, connector: Connector, reason: Failure) -> None:
        """The established connection ended, after its protocol's ``connection_lost(reason)``;
        calling ``connector.connect()`` here reconnects."""


# -- endpoints -------------------------------------------------------------------------------------


@runtime_checkable
class StreamServerEndpoint(Protocol):
    """Where to listen (``net.endpoints.server(reactor, "tcp:8000")``)."""

    def listen(self, factory: ProtocolFactory) -> Deferred[ListeningPort]:
        """Listen for ``factory``: a Deferred firing with the :class:`ListeningPort`, or failing
        with CannotListenError (or ValueError for a bad option). Ours have fired by the time
        this returns, so cancelling changes nothing: stop the port instead."""


@runtime_checkable
class StreamClientEndpoint(Protocol):
    """Where to connect (``net.endpoints.client(reactor, "tls:example.com:443")``)."""

    # Any: the Deferred fires with the protocol ``factory`` built, of the caller's own class.
    def connect(self, factory: ProtocolFactory) -> Deferred[Any]:
        """Connect: a Deferred firing with the protocol ``factory`` built, once its
        ``connection_made`` has run (over TLS or a tunnel: once the handshakes are done).

        Fails with a ConnectError (ConnectionRefusedError, ConnectTimeoutError, DNSLookupError,
        TLSError/CertificateError, a ProxyError), or a ConnectError whose ``__cause__`` is what
        ``connection_made`` raised. Cancelling it before it fired abandons the attempt: the
        socket is closed (a handshake's connection aborted), no protocol of ``factory``'s has
        been built, and the Deferred fails with CancelledError. After it fired, cancelling does
        nothing: the connection is the caller's to close.
        """


# -- datagrams -------------------------------------------------------------------------------------


@runtime_checkable
class DatagramTransport(ListeningPort, Protocol):
    """A bound datagram socket (UDP, Unix datagram): the port and its transport in one.

    Lifecycle: open (reads, sends) -> closing (no reads, the send queue drains, at most
    ``drain_timeout`` seconds) -> closed (socket closed; the protocol's ``stop_protocol()`` runs
    from the loop, once; then the :meth:`stop_listening` Deferreds fire). Connecting is per
    family: ``connect(host, port)`` for UDP, ``connect(path)`` for Unix.
    """

    def write(self, data: bytes, addr: Any = None) -> None:  # Any: (host, port) for UDP, a path for Unix
        """Send one datagram to ``addr``, or to the connected peer when ``addr`` is None.

        What the kernel will not take now waits in a bounded queue; a datagram beyond it is
        dropped and reported (SendQueueFull). Failures of the network reach the protocol's
        ``error_received`` (a connected port's refusals: ``connection_refused``) from the loop,
        never from inside this call.

        Raises:
            RuntimeError: the port is closing or closed (unlike a stream, not ignored).
            ValueError: no ``addr`` and not connected.
            InvalidAddressError: ``addr`` cannot be used here (or is not the connected peer).
        """

    def get_peer(self) -> Address | None:
        """The address ``connect()`` connected to; None while unconnected."""

    def get_write_buffer_size(self) -> int:
        """Bytes of datagrams waiting for the kernel; 0 once closed."""

    def pause_reading(self) -> None:
        """Stop reading: datagrams wait in the kernel's buffer, which drops them when full.
        Idempotent."""

    def resume_reading(self) -> None:
        """Read again (a no-op once closing or closed). Idempotent."""

    def lose_connection(self) -> None:
        """:meth:`stop_listening` without the Deferred. Idempotent."""

    def is_closing(self) -> bool:
        """True from :meth:`stop_listening` / :meth:`lose_connection` on (closing or closed)."""


@runtime_checkable
class DatagramHandler(Protocol):
    """What a datagram port calls (:class:`net.protocol.DatagramProtocol` is the base class).

    Order: :meth:`make_connection` once, then :meth:`datagram_received`, :meth:`error_received`
    and :meth:`connection_refused` any number of times, then :meth:`stop_protocol` once.
    An exception from any of them but :meth:`make_connection` is logged (a datagram being
    handled is dropped) and the port stays open.
    """

    def make_connection(self, transport: DatagramTransport) -> None:
        """Attach the port (``self.transport``) and start (``start_protocol()``), from inside
        ``listen_udp()`` and friends; if it raises, the socket is closed and the exception
        propagates to their caller."""

    def datagram_received(self, data: bytes, addr: Any) -> None:  # Any: the family's address form
        """One datagram from ``addr``: ``(host, port)`` for UDP; for Unix a path, ``"@name"``
        (abstract) or None (an unbound sender, which cannot be answered). A datagram longer
        than the port's ``max_packet_size`` is not delivered: it is reported as
        DatagramTruncated to :meth:`error_received`."""

    def error_received(self, exc: OSError) -> None:
        """A send or receive failed in a way that does not close the socket."""

    def connection_refused(self) -> None:
        """On a connected port: the peer is unreachable (ICMP port unreachable; a Unix peer
        gone); what was sent there is lost. The port stays open."""

    def stop_protocol(self) -> None:
        """The socket is closed; nothing more will arrive. Once."""


# -- child processes -------------------------------------------------------------------------------


@runtime_checkable
class ProcessTransport(Transport, Protocol):
    """A running child process (:func:`net.process.spawn_process`): its pipes and its pid.

    :meth:`Transport.write` feeds the child's stdin; ``get_host()``/``get_peer()`` are its
    ``ProcessAddress``. Closing closes our ends of the pipes and never stops the child: signal it.
    """

    @property
    def pid(self) -> int:
        """The child's process id (do not signal it yourself: :meth:`signal_process` knows when
        it has been reaped)."""

    def signal_process(self, sig: str | int) -> None:
        """Send ``sig`` ("TERM", "KILL", "INT", any name with or without SIG, or a number).

        Raises:
            ProcessExitedAlready: the child has exited and been reaped (maybe before
                ``process_exited`` ran): its pid may be someone else's now; nothing was sent.
        """

    def write_to_child(self, child_fd: int, data: bytes) -> None:
        """Queue ``data`` for the child's fd ``child_fd`` (a ``"w"`` entry of ``child_fds``);
        ignored once that pipe is closing or closed.

        Raises:
            ValueError: ``child_fd`` is not one we write to.
        """

    def close_stdin(self) -> None:
        """Close the child's stdin once what was written is sent: the child reads end of file.
        On a pty, which cannot be half-closed, write the terminal's EOF character (^D) instead.
        Idempotent."""

    def close_child_fd(self, child_fd: int) -> None:
        """Close our end of child fd ``child_fd``: a write pipe once flushed, a read pipe now
        (its ``child_connection_lost`` follows). Idempotent; a no-op for an unknown fd."""

    def get_host(self) -> ProcessAddress:
        """The child's ``ProcessAddress`` (its pid)."""

    def get_peer(self) -> ProcessAddress:
        """The child's ``ProcessAddress`` (its pid)."""


@runtime_checkable
class ProcessHandler(Protocol):
    """What a process transport calls (:class:`net.protocol.ProcessProtocol` is the base class).

    Order: :meth:`make_connection` once; per pipe, :meth:`child_data_received` any number of
    times then :meth:`child_connection_lost` once; :meth:`process_exited` once when the exit is
    known (the pipes may still hold data); :meth:`process_ended` once, last, after the exit and
    the end of every pipe. An exception from any of them is logged and changes nothing else
    (the child is not killed).
    """

    def make_connection(self, transport: ProcessTransport) -> None:
        """The child has started; ``transport.pid`` is set."""

    def child_data_received(self, child_fd: int, data: bytes) -> None:
        """Bytes the child wrote to its fd ``child_fd`` (1: stdout, 2: stderr, or a ``"r"`` fd)."""

    def child_connection_lost(self, child_fd: int) -> None:
        """Pipe ``child_fd`` is closed: end of file, our own close, or the child's exit for a
        write pipe."""

    def process_exited(self, reason: Failure) -> None:
        """The child exited: ``reason`` wraps ProcessDone (exit code 0) or ProcessTerminated
        (``exit_code`` or ``signal`` set). Our write pipes are closed now."""

    def process_ended(self, reason: Failure) -> None:
        """The child exited and every pipe is closed: every byte it wrote has been delivered;
        nothing more will arrive. ``reason`` as for :meth:`process_exited`."""


# -- the transports a reactor makes ----------------------------------------------------------------


@runtime_checkable
class ReactorTCP(Protocol):
    """TCP listening and connecting."""

    def listen_tcp(
        self, port: int, factory: ProtocolFactory, backlog: int | None = None, interface: str = ""
    ) -> ListeningPort:
        """Listen on ``interface:port`` (port 0: a free one; ``interface`` "": every IPv4
        address, "::" every address).

        ``backlog`` is the listen queue length; None means the OS maximum (Linux:
        ``net.core.somaxconn``, else ``socket.SOMAXCONN``), so a burst of connects is queued
        rather than dropped (a dropped SYN costs the client a 1 s retransmit). Our reactors also
        take keyword-only ``max_connections``, ``max_connections_per_host`` and ``reuse_port``
        (see :class:`Reactor` and docs/SECURITY.md, "Connections").

        Raises:
            CannotListenError: the address is taken, not ours, or not allowed.
        """

    def connect_tcp(
        self,
        host: str,
        port: int,
        factory: ClientProtocolFactory,
        timeout: float | None = 30,
        bind_address: tuple[str, int] | None = None,
    ) -> Connector:
        """Connect to ``host:port`` (a name is resolved in the thread pool) for ``factory``; the
        outcome goes to its hooks (see :class:`Connector`), never from inside this call.
        ``timeout`` None: no limit but the kernel's.

        Raises:
            TypeError: ``factory`` is not a client factory (for a plain one, connect through
                ``net.endpoints.client(reactor, "tcp:HOST:PORT")``).
        """


@runtime_checkable
class ReactorUNIX(Protocol):
    """Unix stream sockets (:mod:`net.unix`)."""

    def listen_unix(
        self, path: str, factory: ProtocolFactory, mode: int = 0o660, backlog: int = 50, *,
        max_connections: int | None = None,
    ) -> ListeningPort:
        """Listen at ``path`` (``@name``: Linux's abstract namespace); the socket file gets
        ``mode`` before any connection is accepted. ``stop_listening()`` removes it.

        Raises:
            CannotListenError: the path is in use by a live listener, or not ours.
        """

    def connect_unix(self, path: str, factory: ClientProtocolFactory, timeout: float | None = 30) -> Connector:
        """Connect to ``path`` for ``factory``, as :meth:`ReactorTCP.connect_tcp`.

        Raises:
            TypeError: ``factory`` is not a client factory.
        """


@runtime_checkable
class ReactorUDP(Protocol):
    """UDP sockets (:mod:`net.udp`)."""

    def listen_udp(
        self, port: int, protocol: DatagramHandler, interface: str = "", max_packet_size: int = 65535,
        listen_multiple: bool = False,
    ) -> DatagramTransport:
        """Bind a UDP socket to ``interface:port`` (port 0: a free one) for ``protocol``, whose
        ``make_connection`` runs before this returns. ``listen_multiple``: SO_REUSEADDR, so
        several sockets share a multicast port.

        Raises:
            CannotListenError: the address cannot be bound.
            InvalidAddressError: ``interface`` is not an IP address (a host name, say).
        """


@runtime_checkable
class ReactorUNIXDatagram(Protocol):
    """Unix datagram sockets (:mod:`net.udp`)."""

    def listen_unix_datagram(
        self, path: str, protocol: DatagramHandler, mode: int = 0o660, max_packet_size: int = 65535
    ) -> DatagramTransport:
        """Bind a Unix datagram socket at ``path`` (``@name``: abstract) for ``protocol``.

        Raises:
            CannotListenError: the path is in use or not ours.
        """

    def connect_unix_datagram(
        self, path: str | None, protocol: DatagramHandler, max_packet_size: int = 65535
    ) -> DatagramTransport:
        """An autobound Unix datagram socket (so replies can reach it), connected to ``path``
        unless None.

        Raises:
            ConnectError: nobody is bound at ``path``.
        """


@runtime_checkable
class ReactorProcess(Protocol):
    """Child processes (:mod:`net.process`)."""

    def spawn_process(
        self,
        process_protocol: ProcessHandler,
        executable: str,
        args: Sequence[Any],  # str, bytes or path-like
        env: Mapping[Any, Any] | None = None,  # str or bytes keys and values
        path: str | None = None,
        uid: int | None = None,
        gid: int | None = None,
        use_pty: bool = False,
        child_fds: Mapping[int, ChildFD] | None = None,
    ) -> ProcessTransport:
        """Start ``executable`` with ``args`` (``args[0]`` is its name) wired to
        ``process_protocol``; see :func:`net.process.spawn_process`. ``env`` None passes our
        ``os.environ``; ``{}`` an empty environment.

        Raises:
            OSError: the child could not start (FileNotFoundError for a missing program, ...);
                no child is left behind.
        """


@runtime_checkable
class ReactorIO(ReactorTime, ReactorFDSet, Protocol):
    """A clock and the fd set: what a socket or pipe transport asks of its reactor."""


@runtime_checkable
class Reactor(
    ReactorCore, ReactorTime, ReactorFDSet, ReactorThreads, ReactorTCP, ReactorUNIX, ReactorUDP,
    ReactorUNIXDatagram, ReactorProcess, Protocol,
):
    """Everything the reactors of :func:`net.reactor.make_reactor` provide: what endpoints,
    connectors and process transports ask for. Code that needs less should ask for less."""

    def listen_tcp(
        self, port: int, factory: ProtocolFactory, backlog: int | None = None, interface: str = "", *,
        max_connections: int | None = None, max_connections_per_host: int | None = None,
        reuse_port: bool = False,
    ) -> ListeningPort:
        """:meth:`ReactorTCP.listen_tcp`, with our caps: ``max_connections`` (open connections of
        the port in total) and ``max_connections_per_host`` (per peer IP address, IPv6 per /64);
        a connection beyond a cap is accepted and closed at once, with a rate-limited WARNING;
        None (the default) is no cap. ``reuse_port``: SO_REUSEPORT, so worker processes share
        the port.

        Raises:
            CannotListenError: as :meth:`ReactorTCP.listen_tcp`.
            ValueError: a cap that is not a positive integer or None.
        """


# -- services ---------------------------------------------------------------------------------------


@runtime_checkable
class Service(Protocol):
    """Something started once the reactor runs and stopped before it stops.

    ``net.service.IService`` is this contract; :class:`net.service.Service` a base class keeping it.
    """

    # Read-only here, so that a class attribute ``name = "web"`` (a str) satisfies it too.
    @property
    def name(self) -> str | None:
        """Unique among the services of one MultiService, or None."""

    @property
    def running(self) -> bool:
        """True from ``start_service()`` until ``stop_service()``."""

    def start_service(self) -> Deferred[None] | None:
        """Start; set ``running``. A Deferred: started once it fires (a failure: it did not start)."""

    def stop_service(self) -> Deferred[None] | None:
        """Stop; clear ``running``. A Deferred: stopped once it fires (never left pending forever)."""
