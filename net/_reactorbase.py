"""What every reactor backend shares: lifecycle, timed calls, triggers, threads, signals.

A backend (:mod:`net.selectreactor`, :mod:`net.asyncioreactor`) subclasses :class:`ReactorBase` and
supplies only the parts that depend on how it waits: the clock, the file-descriptor set, the main
loop, and how to leave it. Everything else lives here so both backends behave the same way, down
to the order in which callbacks run.

Rules of the loop:

* ``call_soon`` is not a timed call: it appends to a FIFO deque that the loop runs once per
  iteration, before it runs the due timed calls and before it waits (the wait's timeout is 0
  while the deque is non-empty). It is the reactor's cheapest way to run something "after the
  current callback returns"; it is not thread-safe (``call_from_thread`` is). The asyncio backend
  maps it onto ``loop.call_soon``, whose ready queue is the same thing.
* Timed calls live in a heap of ``(time, seq, call)`` entries. ``seq`` grows monotonically, so
  calls due at the same time run first-scheduled first. Cancelling or moving a call does not touch
  the heap: the old entry goes stale (its ``seq`` no longer matches the call's) and is skipped
  when popped; the heap is compacted when stale entries dominate it.
* One round runs only the calls that were queued (``call_soon``) or due and already scheduled
  (timed calls) when it began; a call scheduled from a call waits for the next round, so a busy
  chain of ``call_soon`` cannot starve I/O.
* Exceptions raised by anything the loop calls (``call_soon`` calls, timed calls, fd callbacks,
  triggers, calls from threads) are logged to ``logging.getLogger("net.reactor")`` and the loop carries on.
* System event triggers are one-shot: firing an event consumes its triggers, so a reactor that is
  run again starts from a clean slate (and ``call_when_running`` means "the next time it runs").
"""

from __future__ import annotations

import collections
import heapq
import logging
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from itertools import count
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol

from zope.interface import implementer

from .error import NetError, ReactorAlreadyRunning, ReactorNotRunning
from .interfaces import (
    IDelayedCall,
    IReactorCore,
    IReactorFDSet,
    IReactorProcess,
    IReactorTCP,
    IReactorThreads,
    IReactorTime,
    IReactorUDP,
    IReactorUNIX,
    IReactorUNIXDatagram,
)
from .threadpool import ThreadPool
from .waker import ThreadCallQueue as ThreadCallQueue, Waker as Waker  # moved to net.waker; still importable here

if TYPE_CHECKING:
    from .connector import Connector
    from .contracts import CallHandle, ClientProtocolFactory, DatagramHandler, ProcessHandler, ProtocolFactory
    from .defer import Deferred, Failure
    from .process import ChildFD, ProcessTransport
    from .tcp import Port
    from .udp import DatagramPort, UnixDatagramPort
    from .unix import UnixConnector, UnixPort

__all__ = ["ReactorBase", "HostLoop", "DelayedCall", "SoonCall", "AlreadyCalled", "AlreadyCancelled", "PHASES", "EVENTS"]

log = logging.getLogger("net.reactor")

PHASES = ("before", "during", "after")
EVENTS = ("startup", "shutdown")
_SHUTDOWN_SIGNALS = tuple(
    s for s in (getattr(signal, "SIGINT", None), getattr(signal, "SIGTERM", None)) if s is not None
)


class AlreadyCancelled(NetError, ValueError):
    """``cancel()``/``reset()``/``delay()`` on a :class:`DelayedCall` that was cancelled."""


class AlreadyCalled(NetError, ValueError):
    """``cancel()``/``reset()``/``delay()`` on a :class:`DelayedCall` that has already run."""


def _cancelled() -> None:
    """What a cancelled call holds instead of its callable."""


class CallScheduler(Protocol):
    """What a DelayedCall needs of whoever scheduled it: a reactor, or net.testing.Clock."""

    def seconds(self) -> float: ...
    def _forget_call(self, call: DelayedCall) -> None: ...
    def _move_call(self, call: DelayedCall, when: float) -> None: ...


@implementer(IDelayedCall)
class DelayedCall:
    """A call scheduled with ``call_later``; a handle to cancel or move it.

    Moving (``reset``/``delay``) keeps the same object, so whoever holds it keeps a valid handle.
    """

    __slots__ = ("time", "func", "args", "kwargs", "cancelled", "called", "_reactor", "_seq", "__weakref__")

    def __init__(
        self,
        reactor: CallScheduler,
        time: float,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        self.time = time
        self.func = func
        self.args = args
        self.kwargs = kwargs
        self.cancelled = False
        self.called = False
        self._reactor = reactor
        self._seq = 0

    def _check_active(self) -> None:
        if self.cancelled:
            raise AlreadyCancelled(f"{self!r} was already cancelled")
        if self.called:
            raise AlreadyCalled(f"{self!r} has already run")

    def cancel(self) -> None:
        """Stop the call from running. Raises AlreadyCancelled/AlreadyCalled if inactive."""
        self._check_active()
        self.cancelled = True
        # Let go of the callable now: a cancelled call may wait in the heap until its time, and
        # must not keep what it would have called (a closed connection, say) alive until then.
        self.func, self.args, self.kwargs = _cancelled, (), {}
        self._reactor._forget_call(self)

    def reset(self, seconds_from_now: float) -> None:
        """Run ``seconds_from_now`` seconds from now instead."""
        self._check_active()
        self._reactor._move_call(self, self._reactor.seconds() + max(0.0, seconds_from_now))

    def delay(self, seconds_later: float) -> None:
        """Postpone by ``seconds_later`` seconds (negative brings it forward)."""
        self._check_active()
        self._reactor._move_call(self, self.time + seconds_later)

    def active(self) -> bool:
        """True until the call has run or been cancelled."""
        return not (self.cancelled or self.called)

    def __repr__(self) -> str:
        state = "cancelled" if self.cancelled else "called" if self.called else f"at {self.time:.6f}"
        name = getattr(self.func, "__qualname__", repr(self.func))
        return f"<DelayedCall {name} {state}>"


class SoonCall:
    """What :meth:`ReactorBase.call_soon` returns and queues: a handle whose promise is ``cancel()``.

    Unlike a :class:`DelayedCall` it cannot be moved, and ``cancel()`` is a no-op once the call
    has run or was cancelled (as for the ``asyncio.Handle`` the asyncio backend returns).
    """

    __slots__ = ("func", "args", "kwargs", "cancelled")

    def __init__(self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.func = func
        self.args = args
        self.kwargs = kwargs
        self.cancelled = False

    def cancel(self) -> None:
        """Stop the call from running (and let go of what it would have called)."""
        self.cancelled = True
        self.func, self.args, self.kwargs = _cancelled, (), {}

    def __repr__(self) -> str:
        name = getattr(self.func, "__qualname__", repr(self.func))
        return f"<SoonCall {name}{' cancelled' if self.cancelled else ''}>"


_Trigger = tuple[int, Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class HostLoop(Protocol):
    """A loop that runs a reactor in its place (:meth:`ReactorBase.set_host_loop`)."""

    def main_loop(self, startup: Callable[[], None]) -> None:
        """Call ``startup()`` from inside the loop, then loop until :meth:`leave_loop`."""

    def leave_loop(self) -> None:
        """Make :meth:`main_loop` return (the reactor's shutdown is complete)."""


@implementer(IReactorCore, IReactorTime, IReactorFDSet, IReactorThreads, IReactorTCP, IReactorUNIX,
             IReactorUDP, IReactorUNIXDatagram, IReactorProcess)
class ReactorBase:
    """The backend-independent reactor. Subclasses implement the ``# backend`` methods.

    Lifecycle: ``run()`` fires the startup event (``running`` becomes True between its ``during``
    and ``after`` phases), loops, and returns once ``stop()`` has fired the whole shutdown event.
    A stopped reactor may be run again; :meth:`close` releases its file descriptors and threads.
    """

    #: Compact the timer heap when it holds more stale entries than this, and more than half.
    _COMPACT_THRESHOLD = 256

    def __init__(self) -> None:
        self.running = False
        self._started = False  # inside run()/start(), until shutdown completes
        self._stopping = False  # stop() accepted, shutdown in progress
        self._closed = False
        # Mutated in place only (the selectors loop keeps a reference to them).
        self._soon: collections.deque[SoonCall] = collections.deque()
        self._heap: list[tuple[float, int, DelayedCall]] = []
        self._seq = count(1).__next__
        self._stale = 0
        self._triggers: dict[str, dict[str, list[_Trigger]]] = {
            event: {phase: [] for phase in PHASES} for event in EVENTS
        }
        self._trigger_ids = count(1).__next__
        self._pool: ThreadPool | None = None
        self._pool_size = 10
        self._saved_signals: dict[int, Any] = {}
        self._saved_wakeup_fd: int | None = None
        self._shutdown_waiters: list[Callable[[], None]] = []

    # ------------------------------------------------------------------ backend
    def seconds(self) -> float:
        """The monotonic clock that ``call_later`` uses."""
        raise NotImplementedError

    def add_reader(self, fd: int, callback: Callable[[], Any]) -> None:
        raise NotImplementedError

    def remove_reader(self, fd: int) -> None:
        raise NotImplementedError

    def add_writer(self, fd: int, callback: Callable[[], Any]) -> None:
        raise NotImplementedError

    def remove_writer(self, fd: int) -> None:
        raise NotImplementedError

    def call_from_thread(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run ``f(*args, **kwargs)`` in the reactor thread soon. Safe from any thread."""
        raise NotImplementedError

    def _main_loop(self, startup: Callable[[], None]) -> None:
        """Call ``startup()`` from inside the loop, then loop until :meth:`_leave_loop`."""
        raise NotImplementedError

    def _leave_loop(self) -> None:
        """Make :meth:`_main_loop` return after the current callback."""
        raise NotImplementedError

    #: Another program's loop that runs this reactor instead of its own (see set_host_loop).
    _host_loop: HostLoop | None = None

    def set_host_loop(self, host: HostLoop | None) -> None:
        """Let ``host`` (a GUI toolkit's loop, e.g. :mod:`net.tksupport`) run this reactor:
        :meth:`run` calls ``host.main_loop(startup)`` instead of looping itself, and the end of
        the shutdown calls ``host.leave_loop()``. ``None`` gives the reactor its own loop back."""
        if self._started:
            raise RuntimeError("set_host_loop() while the reactor runs: stop it first")
        self._host_loop = host

    def _timer_added(self, when: float) -> None:
        """A timed call was (re)scheduled for ``when``; backends with an external timer re-arm."""

    def close(self) -> None:
        """Release the reactor's resources: stop the thread pool. Backends close their fds too."""
        if self._started:
            raise RuntimeError("close() a reactor after run() has returned, not while it runs")
        self._closed = True
        self._soon.clear()  # never to run: let go of what they hold
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.stop()

    # ------------------------------------------------------------------ lifecycle
    def run(self, install_signal_handlers: bool = True) -> None:
        """Fire startup triggers, loop until :meth:`stop` completes, then return.

        In the main thread, SIGINT and SIGTERM stop the reactor cleanly (shutdown triggers run);
        the previous handlers are restored on return.
        """
        if self._started:
            raise ReactorAlreadyRunning("run() called while the reactor is already running")
        if self._closed:
            raise RuntimeError("run() on a closed reactor")
        self._started = True
        if install_signal_handlers:
            self._install_signal_handlers()
        try:
            host = self._host_loop
            (self._main_loop if host is None else host.main_loop)(self._startup)
        finally:
            self._restore_signal_handlers()
            self._started = self._stopping = self.running = False

    def stop(self) -> None:
        """Fire the shutdown event (from the next loop round), then leave :meth:`run`.

        Raises ReactorNotRunning if the reactor is not running or already stopping.
        """
        if not self._started or self._stopping:
            raise ReactorNotRunning("stop() called on a reactor that is not running")
        self._stopping = True
        self.call_later(0, self._fire_event, "shutdown", None, self._shutdown_complete)

    def call_when_running(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run ``f`` once the reactor is running: now if it is, else after startup."""
        if self.running:
            f(*args, **kwargs)
        else:
            self.add_system_event_trigger("after", "startup", f, *args, **kwargs)

    def _startup(self) -> None:
        self._fire_event("startup", between=self._mark_running)

    def _mark_running(self) -> None:
        self.running = True

    def _shutdown_complete(self) -> None:
        self.running = False
        self._started = self._stopping = False
        waiters, self._shutdown_waiters = self._shutdown_waiters, []
        host = self._host_loop
        (self._leave_loop if host is None else host.leave_loop)()
        for waiter in waiters:
            waiter()

    # ------------------------------------------------------------------ triggers
    def add_system_event_trigger(
        self, phase: str, event: str, f: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> object:
        """Run ``f`` in ``phase`` of ``event``; ``before`` triggers may return a Deferred."""
        if phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, not {phase!r}")
        if event not in EVENTS:
            raise ValueError(f"event must be one of {EVENTS}, not {event!r}")
        trigger_id = self._trigger_ids()
        self._triggers[event][phase].append((trigger_id, f, args, kwargs))
        return (event, phase, trigger_id)

    def remove_system_event_trigger(self, trigger_id: object) -> None:
        """Forget a trigger that has not fired yet; ValueError for an unknown id."""
        if not (isinstance(trigger_id, tuple) and len(trigger_id) == 3):
            raise ValueError(f"not a trigger id: {trigger_id!r}")
        event, phase, number = trigger_id
        try:
            triggers = self._triggers[event][phase]
        except (TypeError, KeyError):
            raise ValueError(f"not a trigger id: {trigger_id!r}") from None
        for i, trigger in enumerate(triggers):
            if trigger[0] == number:
                del triggers[i]
                return
        raise ValueError(f"no such trigger (already fired or removed): {trigger_id!r}")

    def _run_phase(self, event: str, phase: str) -> list[Deferred[Any]]:
        """Run (and consume) the triggers of one phase; return the Deferreds they returned."""
        triggers = self._triggers[event][phase]
        waiting: list[Deferred[Any]] = []
        while triggers:  # pop as we go: a trigger may add or remove others
            _, f, args, kwargs = triggers.pop(0)
            try:
                result = f(*args, **kwargs)
            except Exception:
                log.exception("Error in %s-%s trigger %r", phase, event, f)
                continue
            if hasattr(result, "add_both") and not getattr(result, "called", False):
                waiting.append(result)
        return waiting

    def _fire_event(
        self,
        event: str,
        between: Callable[[], None] | None = None,
        then: Callable[[], None] | None = None,
    ) -> None:
        """Run ``before`` triggers, wait for their Deferreds, then ``during``, ``between()``,
        ``after`` and ``then()``. Failed Deferreds are logged; they don't block the event."""
        waiting = self._run_phase(event, "before")

        def finish() -> None:
            self._run_phase(event, "during")
            if between is not None:
                between()
            self._run_phase(event, "after")
            if then is not None:
                then()

        if not waiting:
            finish()
            return
        remaining = [len(waiting)]

        def one_done(result: Any) -> None:
            if _is_failure(result):
                _log_failure(result, f"before-{event} trigger Deferred failed")
            remaining[0] -= 1
            if remaining[0] == 0:
                finish()

        for d in waiting:
            d.add_both(one_done)

    # ------------------------------------------------------------------ time
    def call_later(self, delay: float, f: Callable[..., Any], *args: Any, **kwargs: Any) -> DelayedCall:
        """Run ``f(*args, **kwargs)`` from the loop in ``delay`` seconds (0: next round)."""
        when = self.seconds() + (delay if delay > 0 else 0.0)
        call = DelayedCall(self, when, f, args, kwargs)
        call._seq = seq = self._seq()
        heapq.heappush(self._heap, (when, seq, call))
        self._timer_added(when)
        return call

    def call_soon(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> CallHandle:
        """Run ``f(*args, **kwargs)`` from the loop once the current callback has returned.

        FIFO among ``call_soon`` calls; on the loop's next round, before it waits (a handle with
        ``cancel()`` is returned). Not thread-safe: from other threads use ``call_from_thread``.
        """
        call = SoonCall(f, args, kwargs)
        self._soon.append(call)
        return call

    def _run_soon_calls(self) -> None:
        """Run the ``call_soon`` calls queued before this round began (later ones wait)."""
        soon = self._soon
        pop = soon.popleft
        for _ in range(len(soon)):
            call = pop()
            if call.cancelled:
                continue
            try:
                call.func(*call.args, **call.kwargs)
            except Exception:
                log.exception("Error in call_soon call %r", call)

    def get_delayed_calls(self) -> list[DelayedCall]:
        """The active timed calls, soonest first (for tests and debugging)."""
        return [c for _, seq, c in sorted(self._heap) if seq == c._seq and c.active()]

    def _forget_call(self, call: DelayedCall) -> None:
        self._stale += 1
        if self._stale > self._COMPACT_THRESHOLD and self._stale * 2 > len(self._heap):
            self._heap[:] = [e for e in self._heap if e[1] == e[2]._seq and not e[2].cancelled]
            heapq.heapify(self._heap)
            self._stale = 0

    def _move_call(self, call: DelayedCall, when: float) -> None:
        call.time = when
        call._seq = seq = self._seq()
        heapq.heappush(self._heap, (when, seq, call))
        self._forget_call(call)  # its old entry is now stale
        self._timer_added(when)

    def _run_due_calls(self) -> None:
        """Run the calls due now that were scheduled before this round began."""
        heap = self._heap
        if not heap:
            return
        now = self.seconds()
        if heap[0][0] > now:  # the common case on a busy loop: nothing due
            return
        limit = self._seq()  # anything scheduled from here on waits for the next round
        pop = heapq.heappop
        while heap:
            when, seq, call = heap[0]
            if when > now or seq >= limit:
                break
            pop(heap)
            if seq != call._seq or call.cancelled:
                self._stale -= 1
                continue
            call.called = True
            try:
                call.func(*call.args, **call.kwargs)
            except Exception:
                log.exception("Error in timed call %r", call)

    def _next_timeout(self) -> float | None:
        """Seconds until the earliest timed call (0 if due), None if there is none."""
        heap = self._heap
        while heap:
            when, seq, call = heap[0]
            if seq != call._seq or call.cancelled:
                heapq.heappop(heap)
                self._stale -= 1
                continue
            timeout = when - self.seconds()
            return timeout if timeout > 0 else 0.0
        return None

    # ------------------------------------------------------------------ threads
    def _get_pool(self) -> ThreadPool:
        pool = self._pool
        if pool is None:
            pool = self._pool = ThreadPool(max_threads=self._pool_size, name=f"net-pool-{id(self):x}")
            self.add_system_event_trigger("during", "shutdown", self._stop_pool, pool)
        return pool

    def _stop_pool(self, pool: ThreadPool) -> None:
        # Joins the workers from the reactor thread: a job must not wait for the reactor then.
        if self._pool is pool:
            self._pool = None
        pool.stop()

    def call_in_thread(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run ``f`` in the bounded thread pool (started on first use); exceptions are logged."""
        self._get_pool().call_in_thread(f, *args, **kwargs)

    def defer_to_thread(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
        """Run ``f`` in the pool; the Deferred fires in the reactor thread with its outcome."""
        from .defer import Deferred, Failure

        d: Deferred[Any] = Deferred()

        def on_result(ok: bool, result: Any) -> None:
            if ok:
                self.call_from_thread(d.callback, result)
            else:
                self.call_from_thread(d.errback, Failure(result))

        self._get_pool().call_in_thread_with_callback(on_result, f, *args, **kwargs)
        return d

    def set_thread_pool_size(self, size: int) -> None:
        """Bound the pool to ``size`` threads (at least 1)."""
        if size < 1:
            raise ValueError(f"thread pool size must be at least 1, not {size}")
        self._pool_size = size
        if self._pool is not None:
            self._pool.adjust_max_threads(size)

    def _run_thread_call(self, f: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        try:
            f(*args, **kwargs)
        except Exception:
            log.exception("Error in call from thread %r", f)

    # ------------------------------------------------------------------ signals
    def _install_signal_handlers(self) -> None:
        """SIGINT/SIGTERM → clean stop; only possible (and only wanted) in the main thread."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in _SHUTDOWN_SIGNALS:
            try:
                self._saved_signals[sig] = signal.signal(sig, self._handle_signal)
            except (OSError, ValueError):  # pragma: no cover - exotic platforms
                pass
        # A signal may be delivered to another thread (the thread pool's, say) while the main
        # thread waits in select() with no timeout: Python's handler then runs only when the main
        # thread next runs bytecode, i.e. never. The wakeup fd makes the C-level handler write to
        # the loop's own wake-up socket, so the wait returns and the handler runs.
        fd = self._signal_wakeup_fd()
        if fd is not None:
            try:
                self._saved_wakeup_fd = signal.set_wakeup_fd(fd, warn_on_full_buffer=False)
            except ValueError:  # pragma: no cover - not the main thread after all
                pass

    def _signal_wakeup_fd(self) -> int | None:
        """The fd (non-blocking, watched by the loop) signals should write to; None: none."""
        return None

    def _restore_signal_handlers(self) -> None:
        if self._saved_wakeup_fd is not None:
            signal.set_wakeup_fd(self._saved_wakeup_fd)
            self._saved_wakeup_fd = None
        saved, self._saved_signals = self._saved_signals, {}
        for sig, handler in saved.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)

    def _handle_signal(self, signum: int, frame: FrameType | None) -> None:
        # A Python signal handler runs between two bytecodes of the main thread, maybe in the
        # middle of a callback: don't stop from here, queue the stop (which also wakes the wait).
        log.info("Received signal %d, stopping the reactor", signum)
        self.call_from_thread(self._stop_on_signal)

    def _stop_on_signal(self) -> None:
        if self._started and not self._stopping:
            self.stop()

    # ------------------------------------------------------------------ transports
    def listen_tcp(self, port: int, factory: ProtocolFactory, backlog: int | None = None, interface: str = "", *,
                   max_connections: int | None = None, max_connections_per_host: int | None = None,
                   reuse_port: bool = False) -> Port:
        """Listen on ``interface:port``; see :func:`net.tcp.listen_tcp` (backlog None: the OS
        maximum; ``reuse_port``: SO_REUSEPORT, so worker processes share the port)."""
        from . import tcp

        return tcp.listen_tcp(self, port, factory, backlog=backlog, interface=interface,
                              max_connections=max_connections,
                              max_connections_per_host=max_connections_per_host, reuse_port=reuse_port)

    def connect_tcp(
        self, host: str, port: int, factory: ClientProtocolFactory, timeout: float | None = 30,
        bind_address: tuple[str, int] | None = None,
    ) -> Connector:
        """Connect to ``host:port``; see :func:`net.tcp.connect_tcp`."""
        from . import tcp

        return tcp.connect_tcp(self, host, port, factory, timeout=timeout, bind_address=bind_address)

    def listen_unix(self, path: str, factory: ProtocolFactory, mode: int = 0o660, backlog: int = 50,
                    **caps: int | None) -> UnixPort:
        """Listen on a Unix stream socket (``@name``: Linux abstract); see :func:`net.unix.listen_unix`."""
        from . import unix

        return unix.listen_unix(self, path, factory, mode=mode, backlog=backlog, **caps)

    def connect_unix(self, path: str, factory: ClientProtocolFactory, timeout: float | None = 30) -> UnixConnector:
        """Connect to a Unix stream socket; see :func:`net.unix.connect_unix`."""
        from . import unix

        return unix.connect_unix(self, path, factory, timeout=timeout)

    def listen_udp(self, port: int, protocol: DatagramHandler, interface: str = "",
                   max_packet_size: int = 65535, listen_multiple: bool = False) -> DatagramPort:
        """Bind a UDP socket to ``interface:port``; see :func:`net.udp.listen_udp`
        (``listen_multiple``: SO_REUSEADDR, so several sockets share a multicast port)."""
        from . import udp

        return udp.listen_udp(self, port, protocol, interface=interface, max_packet_size=max_packet_size,
                              listen_multiple=listen_multiple)

    def listen_unix_datagram(self, path: str, protocol: DatagramHandler, mode: int = 0o660,
                             max_packet_size: int = 65535) -> UnixDatagramPort:
        """Bind a Unix datagram socket at ``path`` (``@name``: abstract); see :mod:`net.udp`."""
        from . import udp

        return udp.listen_unix_datagram(self, path, protocol, mode=mode, max_packet_size=max_packet_size)

    def connect_unix_datagram(self, path: str | None, protocol: DatagramHandler,
                              max_packet_size: int = 65535) -> UnixDatagramPort:
        """An autobound Unix datagram socket (connected to ``path`` unless None), so replies reach
        it; see :func:`net.udp.connect_unix_datagram`."""
        from . import udp

        return udp.connect_unix_datagram(self, path, protocol, max_packet_size=max_packet_size)

    def spawn_process(self, process_protocol: ProcessHandler, executable: str, args: Sequence[Any],
                      env: Mapping[Any, Any] | None = None, path: str | None = None, uid: int | None = None,
                      gid: int | None = None, use_pty: bool = False,
                      child_fds: Mapping[int, ChildFD] | None = None) -> ProcessTransport:
        """Start a child process wired to ``process_protocol``; see :func:`net.process.spawn_process`."""
        from . import process

        return process.spawn_process(self, process_protocol, executable, args, env=env, path=path,
                                     uid=uid, gid=gid, use_pty=use_pty, child_fds=child_fds)


def _is_failure(result: Any) -> bool:
    from .defer import Failure

    return isinstance(result, Failure)


def _log_failure(failure: Failure, message: str) -> None:
    log.error("%s:\n%s", message, failure.get_traceback())
