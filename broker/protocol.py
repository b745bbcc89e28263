"""The broker's I/O adapter: a net Protocol feeding bytes to a :class:`~broker.session.Session`.

Everything about remote objects lives in the session; this module only connects it to a
transport and a reactor, so the session stays testable without sockets.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from typing import Any

from zope.interface import implementer

from net.defer import Deferred, Failure, gather
from net.interfaces import IBufferedProtocol, IPushProducer
from net.protocol import ClientFactory, Factory, Protocol

from .errors import OverloadedError
from .messages import FEATURE_HEARTBEAT, HEARTBEAT_IDLE_FRACTION
from .flavors import CopyRegistry, Referenceable
from .lifecycle import State
from .session import Limits, RemoteReference, Session

__all__ = ["BrokerProtocol", "BrokerFactory", "BrokerClientFactory", "FLUSH_FRAMES", "FLUSH_BYTES", "CHUNKS_PER_TURN"]

log = logging.getLogger(__name__)


#: The adapter writes once the session has queued this many frames, or this many bytes, so the
#: peer starts on the first answers of a burst while we work on the rest: the two processes
#: overlap instead of taking turns (pipelined, 100 in flight: ~50k -> ~100k calls/s here).
FLUSH_FRAMES = 16
FLUSH_BYTES = 64 * 1024
#: Chunks of work (FLUSH_FRAMES messages each) one connection may do per turn of the event loop
#: before it lets the others have it; the rest is done on the next turn, reading paused meanwhile.
CHUNKS_PER_TURN = 8



def _peer_credentials(transport: Any) -> Any:
    """A Unix socket peer's credentials (what login throttles by), else None."""
    get = getattr(transport, "get_peer_credentials", None)
    if get is None:
        return None
    try:
        return get()
    except (OSError, ValueError):  # not a Unix stream socket after all, or already closed
        return None

class _Ticker:
    """One reactor timer for the heartbeat checks of every connection with the same period.

    A timer per connection, re-armed every few seconds, cost every idle connection a
    DelayedCall, a bound method, an empty kwargs dict and a heap entry (~300 bytes, and 10,000
    heap operations per period for 10,000 connections); one ticker per reactor and period costs
    a dict entry per connection. Each tick checks the connections in the order they joined; the
    timer runs only while there are any, and an empty ticker leaves the registry.
    """

    __slots__ = ("reactor", "period", "members", "timer")

    def __init__(self, reactor: Any, period: float) -> None:
        self.reactor = reactor
        self.period = period
        self.members: dict[BrokerProtocol, None] = {}
        self.timer: Any = None  # the reactor's DelayedCall, while there are members

    def add(self, protocol: BrokerProtocol) -> None:
        self.members[protocol] = None
        if self.timer is None:
            self.timer = self.reactor.call_later(self.period, self._tick)

    def discard(self, protocol: BrokerProtocol) -> None:
        members = self.members
        members.pop(protocol, None)
        if not members:
            self._stop()

    def _tick(self) -> None:
        self.timer = None
        members = self.members
        for protocol in list(members):
            if protocol in members:  # not gone meanwhile (a check may close other connections)
                try:
                    protocol._heartbeat()
                except Exception:
                    log.exception("%r: the heartbeat check failed", protocol)
        if not members:
            self._stop()
        elif self.timer is None:
            self.timer = self.reactor.call_later(self.period, self._tick)

    def _stop(self) -> None:
        timer, self.timer = self.timer, None
        if timer is not None and timer.active():
            timer.cancel()
        try:
            by_period = _TICKERS.get(self.reactor)
        except TypeError:  # a reactor that cannot be weakly referenced: never registered
            return
        if by_period is not None and by_period.get(self.period) is self:
            del by_period[self.period]


#: The tickers of each reactor, by period (weakly: a reactor that goes takes its tickers along).
_TICKERS: weakref.WeakKeyDictionary[Any, dict[float, _Ticker]] = weakref.WeakKeyDictionary()


def _ticker(reactor: Any, period: float) -> _Ticker:
    """The ticker for ``period`` on ``reactor`` (a new one if it has none)."""
    try:
        by_period = _TICKERS.get(reactor)
        if by_period is None:
            by_period = _TICKERS[reactor] = {}
    except TypeError:  # a reactor that cannot be weakly referenced: a ticker of the connection's own
        return _Ticker(reactor, period)
    ticker = by_period.get(period)
    if ticker is None:
        ticker = by_period[period] = _Ticker(reactor, period)
    return ticker


@implementer(IBufferedProtocol, IPushProducer)
class BrokerProtocol(Protocol):
    """One broker connection on a transport: feeds the session, writes what it queues, closes.

    This is the only place that knows about the transport, the reactor's timers and threads:
    the flush policy (FLUSH_FRAMES / FLUSH_BYTES), fairness between connections
    (CHUNKS_PER_TURN), back-pressure (it is the transport's producer: reading stops while the
    peer does not take what we send), and the timeouts of :class:`~broker.session.Limits`
    (handshake, frame completion, idle, overload).

    One per connection: slots, each timer a slot of its own holding the reactor's DelayedCall
    only while it is pending, and the heartbeat checked by a :class:`_Ticker` shared with the
    other connections, which also lets go of the session's big-frame buffers once idle.
    """

    __slots__ = (
        "factory", "transport", "connected", "session", "reactor", "_root", "_registry", "_limits",
        "_debug", "_handshake_timeout", "_handshake_timer", "_frame_timer", "_idle_timer",
        "_overload_timer", "_ticker", "_frame_count", "_write_scheduled", "_wrote_through",
        "_closing", "_output_blocked", "_last_heard", "_last_ping", "_work_pending", "on_ready",
    )

    session: Session

    def __init__(self, reactor: Any, root: Referenceable | None, *, registry: CopyRegistry | None = None,
                 limits: Limits = Limits(), debug: bool = False, handshake_timeout: float = 30.0) -> None:
        self.factory: Factory | None = None
        self.transport: Any = None
        self.connected = False
        self.reactor = reactor
        self._root = root
        self._registry = registry
        self._limits = limits
        self._debug = debug
        self._handshake_timeout = handshake_timeout
        # Timers: the reactor's DelayedCall while pending (see _start); the heartbeat's ticker.
        self._handshake_timer: Any = None
        self._frame_timer: Any = None
        self._idle_timer: Any = None
        self._overload_timer: Any = None
        self._ticker: _Ticker | None = None
        self._frame_count = -1  # frames decoded when the frame timer was armed
        self._write_scheduled = False  # a coalesced flush is scheduled (call_soon)
        self._wrote_through = False  # a frame was written through since we last heard the peer
        self._closing = False
        self._output_blocked = False  # the peer is not taking what we send (write buffer high)
        self._last_heard = 0.0  # reactor time of the last bytes received (the heartbeat's clock)
        self._last_ping = -1.0
        self._work_pending = False  # messages left for the next loop turn
        self.on_ready: Deferred[RemoteReference] | None = None

    def connection_made(self, transport: Any) -> None:
        peer = transport.get_peer()
        self.session = Session(
            root=self._root,
            registry=self._registry,
            limits=self._limits,
            debug=self._debug,
            peer=peer,  # the session's name is made from it when asked
            peer_certificate=getattr(transport, "get_peer_certificate", lambda: None)(),
            peer_credentials=_peer_credentials(transport),
            side="client" if self.on_ready is not None else "server",
            clock=self.reactor,
            on_output=self._output_waiting,
            release_due=self._release_due,
        )
        self._start("_handshake_timer", self._handshake_timeout, self._handshake_timed_out)
        self.session.ready.add_both(self._handshake_done)
        limits = self._limits
        transport.set_write_buffer_limits(high=limits.output_high_water)
        transport.register_producer(self, True)
        set_keepalive = getattr(transport, "set_tcp_keepalive", None)
        if set_keepalive is not None:  # the kernel's own check, for when the loop is not running
            set_keepalive(True)
        self._touch()
        self._write_out()  # our hello

    def _handshake_done(self, result: Any) -> Any:
        self._stop("_handshake_timer")
        if not isinstance(result, Failure):
            self._start_heartbeat()
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
        self._handshake_timer = None
        self.session.disconnect(TimeoutError(f"no pbroker hello within {self._handshake_timeout} seconds"))

    # -- bytes in: feed, then let the session work in chunks, writing after each -------------

    def data_received(self, data: bytes) -> None:
        self.session.receive_data(data)
        self._touch()
        self._process()

    # BufferedProtocol shape (net.interfaces.IBufferedProtocol): a TCP transport receives straight
    # into the wire decoder's reused buffer, so a big frame is not copied chunk by chunk.

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.session.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        self.session.buffer_updated(nbytes)
        self._touch()
        self._process()

    def _process(self) -> None:
        """Handle what arrived, a chunk at a time, writing after each; yield after a few."""
        session = self.session
        self._work_pending = False
        self._wrote_through = False  # we heard from the peer: the next call may go through again
        chunks = 0
        while not self._output_blocked and session.process(FLUSH_FRAMES, FLUSH_BYTES):
            self._write_out()
            chunks += 1
            if chunks >= CHUNKS_PER_TURN:  # let the other connections have the loop
                self._work_pending = True
                self.reactor.call_soon(self._continue)
                break
        self._write_out()
        self._update_reading()
        self._watch_frame()

    def _continue(self) -> None:
        if self._work_pending and not self._closing and self.transport is not None:
            self._process()

    def _update_reading(self) -> None:
        """Read only while the peer takes our output and nothing is left over from the last turn."""
        transport = self.transport
        if transport is None or self._closing:
            return
        if self._output_blocked or self._work_pending or self.session.pending_messages:
            transport.pause_reading()
        else:
            transport.resume_reading()

    # -- back-pressure: the transport pauses us, as its producer, when the peer stops reading --

    def pause_producing(self) -> None:
        self._output_blocked = True
        self._update_reading()
        if self._overload_timer is None and not self._closing:
            self._start("_overload_timer", self._limits.overload_timeout, self._check_overload)

    def resume_producing(self) -> None:
        self._output_blocked = False
        self._stop("_overload_timer")
        if self.transport is not None and not self._closing:
            self._process()  # what waited in the buffer while we did not read

    def stop_producing(self) -> None:
        self._output_blocked = True

    def _check_overload(self) -> None:
        """The peer has not taken our output for overload_timeout: drop it if it holds too much."""
        self._overload_timer = None
        transport = self.transport
        if transport is None or self._closing or not self._output_blocked:
            return
        unsent = transport.get_write_buffer_size()
        limit = self._limits.max_unsent_bytes
        if unsent <= limit:
            self._start("_overload_timer", self._limits.overload_timeout, self._check_overload)
            return
        reason = OverloadedError(
            "broker.Overloaded", f"the peer took none of our last {unsent} bytes for "
            f"{self._limits.overload_timeout} s (the limit is {limit} bytes unsent)")
        log.warning("%r: closing: %s", self.session, reason.message)
        self.session.disconnect(reason, goodbye_kind="overloaded")
        transport.abort_connection(reason)  # it does not read: a goodbye would never arrive

    # -- timeouts: a frame must complete, an idle connection may be closed ---------------------

    def _watch_frame(self) -> None:
        """Arm the frame timer while a frame is half in, re-arm it when one completed since."""
        session = self.session
        if not session.buffered_bytes or self._closing:
            if self._frame_timer is not None:
                self._stop("_frame_timer")
        elif self._frame_timer is None or session.frames_received != self._frame_count:
            self._frame_count = session.frames_received
            self._start("_frame_timer", self._limits.frame_timeout, self._frame_timed_out)

    def _frame_timed_out(self) -> None:
        self._frame_timer = None
        timeout = self._limits.frame_timeout
        log.warning("%r: closing: a frame was not completed within %s s", self.session, timeout)
        self.session.disconnect(TimeoutError(f"a frame from the peer was not completed within {timeout} s"),
                                goodbye_kind="invalid")

    # -- the heartbeat (PROTOCOL.md §5.2): ping a silent peer, declare it dead after dead_after --

    def _start_heartbeat(self) -> None:
        dead_after = self._limits.dead_after
        if dead_after is not None and FEATURE_HEARTBEAT in self.session.negotiated:
            ticker = self._ticker = _ticker(self.reactor, dead_after / 6)  # idle / 2
            ticker.add(self)

    def _stop_heartbeat(self) -> None:
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.discard(self)

    def _heartbeat(self) -> None:
        """The ticker's check, every dead_after / 6: ping a silent peer, give up on a dead one,
        and let go of the session's big-frame buffers once a whole period passed in silence."""
        dead_after = self._limits.dead_after
        if dead_after is None or self._closing or self.transport is None:
            self._stop_heartbeat()
            return
        idle = dead_after * HEARTBEAT_IDLE_FRACTION
        now = self.reactor.seconds()
        if self._output_blocked or self._work_pending:
            self._last_heard = now  # we are not reading: its silence would be ours
        silence = now - self._last_heard
        if silence >= dead_after:
            self._peer_dead(silence)
            return
        if silence >= idle / 2:
            self.session.trim()
        if silence >= idle and now - self._last_ping >= idle:
            self._last_ping = now
            self.session.ping()
            self._write_out()

    def _peer_dead(self, silence: float) -> None:
        """Nothing came for dead_after: the connection is lost (no goodbye: nobody would read it)."""
        reason = TimeoutError(f"the peer stopped answering (nothing received for {silence:.0f} s)")
        log.warning("%r: closing: %s", self.session, reason)
        transport = self.transport
        self._closing = True
        self._cancel_timers()
        self.session.connection_lost(reason)
        if transport is not None:
            transport.abort_connection(reason)

    def _touch(self) -> None:
        """Bytes arrived: the peer is alive, and the idle timer starts over."""
        self._last_heard = self.reactor.seconds()
        timeout = self._limits.idle_timeout
        if timeout is not None and not self._closing:
            self._start("_idle_timer", timeout, self._idle_timed_out)

    def _idle_timed_out(self) -> None:
        self._idle_timer = None
        timeout = self._limits.idle_timeout
        log.info("%r: closing: nothing received for %s s", self.session, timeout)
        self.session.disconnect(TimeoutError(f"nothing received from the peer for {timeout} s (idle_timeout)"))

    # -- bytes out ---------------------------------------------------------------------------

    def _output_waiting(self) -> None:
        """The session queued output outside process(): write through at once, or coalesce.

        The policy (issue 13): the *first* frame queued after we last
        heard from the peer (or after the last coalesced flush) is written through at once, if
        the transport holds nothing unsent and no receive burst is in progress here. A call made
        outside a receive (an asyncio task resumed by its answer, a blocking client's
        ``call_from_thread``, an answer computed later) so leaves in the same loop turn, with no
        call_soon and no extra turn. Frames that follow it before the next receive are coalesced:
        the second schedules one flush with ``call_soon`` (after the current callback returns)
        and every FLUSH_FRAMES / FLUSH_BYTES a chunk is written meanwhile, so pipelined calls
        issued from one callback still leave in few writes (100 calls: 1 + 6 chunks + the rest).

        Always scheduling the flush as well (write the first frame, then call_soon for whatever
        follows) would cost a sequential caller one extra, empty loop turn per call; coalescing
        until the next receive instead costs only a delayed flush (one call_soon) to a caller
        that sends twice without hearing back, which is what coalescing is for. Measured on
        loopback (asyncio task, sequential ``await call_remote``): 3 -> 2 loop iterations per
        call and about a quarter less client CPU per call; 100 calls gathered from one task:
        8 writes per batch instead of 7, same throughput.
        """
        session = self.session
        if session.output_frames >= FLUSH_FRAMES or session.output_bytes >= FLUSH_BYTES or session.close_reason is not None:
            self._write_out()
        elif self._write_scheduled:
            pass  # the flush already scheduled takes it
        elif not self._wrote_through and not self._work_pending and self._writable_now():
            self._wrote_through = True
            self._write_out()
        else:
            self._write_scheduled = True
            self.reactor.call_soon(self._scheduled_write)

    def _writable_now(self) -> bool:
        """Nothing is waiting in the transport (so a write goes straight to the kernel)."""
        transport = self.transport
        return transport is not None and not self._output_blocked and transport.get_write_buffer_size() == 0

    def _scheduled_write(self) -> None:
        self._write_scheduled = False
        self._wrote_through = False  # a loop turn has passed: the next frame may go through
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
            self._cancel_timers()
            transport.lose_connection(session.close_reason)

    def _release_due(self) -> None:
        """Proxies died (in any thread, inside the GC): release them from the reactor thread."""
        self.reactor.call_from_thread(self._flush_releases)

    def _flush_releases(self) -> None:
        if self.transport is not None:
            self.session.flush_releases()
            self._write_out()

    _TIMERS = ("_handshake_timer", "_frame_timer", "_idle_timer", "_overload_timer")

    def _start(self, slot: str, delay: float, f: Callable[[], None]) -> None:
        """(Re)start the timer in ``slot``: ``f`` runs after ``delay`` seconds unless stopped
        first (and clears the slot itself first thing: no closure per timer)."""
        self._stop(slot)
        setattr(self, slot, self.reactor.call_later(delay, f))

    def _stop(self, slot: str) -> None:
        timer = getattr(self, slot)
        if timer is not None:
            setattr(self, slot, None)
            if timer.active():
                timer.cancel()

    def _cancel_timers(self) -> None:
        for slot in self._TIMERS:
            self._stop(slot)
        self._stop_heartbeat()

    def connection_lost(self, reason: Failure) -> None:
        self._cancel_timers()
        session: Session | None = getattr(self, "session", None)
        if session is not None:
            session.connection_lost(reason.value)
        self.transport = None  # no cycle left between us and the transport


class BrokerFactory(Factory):
    """Serves ``root`` to every connection (``Root.root_object`` may make one per connection)."""

    def __init__(self, reactor: Any, root: Referenceable | None, **options: Any) -> None:
        self.reactor = reactor
        self.root = root
        self.options = options

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
        if hasattr(self.reactor, "add_system_event_trigger"):  # a reactor (not a bare test Clock)
            _ClientGoodbyes.of(self.reactor).add(proto)
        return proto

    def client_connection_failed(self, connector: Any, reason: Failure) -> None:
        if not self.root.called:
            self.root.errback(reason)


class _ClientGoodbyes:
    """Client connections say goodbye when their reactor shuts down.

    A program that stops its reactor (a GUI window closed, Ctrl-C) would otherwise just drop its
    connections, and the server would see a reset, not a goodbye. One "before shutdown" trigger
    per reactor disconnects every client connection still open and waits until each is down, at
    most :data:`SHUTDOWN_GOODBYE_TIMEOUT` seconds (a peer that does not read cannot hold the
    shutdown). Server connections are left to their service (``broker.service.BrokerService``
    lets calls finish first).
    """

    _by_reactor: weakref.WeakKeyDictionary[Any, _ClientGoodbyes] = weakref.WeakKeyDictionary()

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.protocols: weakref.WeakSet[BrokerProtocol] = weakref.WeakSet()
        reactor.add_system_event_trigger("before", "shutdown", self.say_goodbye)

    @classmethod
    def of(cls, reactor: Any) -> _ClientGoodbyes:
        goodbyes = cls._by_reactor.get(reactor)
        if goodbyes is None:
            goodbyes = cls._by_reactor[reactor] = cls(reactor)
        return goodbyes

    def add(self, proto: BrokerProtocol) -> None:
        self.protocols.add(proto)

    def say_goodbye(self) -> Deferred[Any] | None:
        closing = []
        for proto in list(self.protocols):
            session: Session | None = getattr(proto, "session", None)
            if session is None or session.state is State.CLOSED:
                continue
            closing.append(session.when_closed())
            session.disconnect()  # a goodbye "normal"; pending calls fail with ConnectionLost
        self.protocols.clear()  # a reactor run again starts afresh
        if not closing:
            return None
        done: Deferred[Any] = gather(*closing)
        done.add_timeout(SHUTDOWN_GOODBYE_TIMEOUT, self.reactor)
        return done.add_errback(self._late, closing)

    def _late(self, failure: Failure, closing: list[Deferred[None]]) -> None:
        log.warning("reactor shutdown: %d broker connection(s) not closed %g s after their goodbye; "
                    "shutting down anyway", sum(not d.called for d in closing), SHUTDOWN_GOODBYE_TIMEOUT)


#: Seconds a reactor's shutdown waits for its client connections' goodbyes to go out.
SHUTDOWN_GOODBYE_TIMEOUT = 5.0
