"""A blocking client for scripts and the REPL.

    with broker.blocking.connect("tcp:127.0.0.1:8800") as root:
        print(root.call_remote("add", 1, 2))

Proxies may be used from any number of threads at once (no thread affinity), and every call is
bounded by a timeout (``timeout=``, :data:`DEFAULT_TIMEOUT` seconds unless told otherwise).

**How a ``tcp:`` connection runs.** No event loop: the calling thread drives the connection's
sans-I/O :class:`~broker.session.Session` itself over a blocking socket, under the connection's
lock. It sends its call, then reads until its answer is in: one ``send`` and one ``recv`` per
call, no thread hand-off. When several threads call at once, one of them does the reading (the
*leader*) and delivers every answer that arrives to the thread waiting for it (the
*followers*, each waiting on its own condition); when the leader has its answer it hands the
reading over to a follower still waiting. Sending never waits for the reader: a thread sends
its own call, or, if another thread is in the middle of sending, leaves its frame queued for
that thread to send next (order is kept).

A small per-connection daemon thread reads while nobody else does (after the connection has
been quiet for :data:`IDLE_GRACE` seconds), so the server's pings are answered, its calls to
our objects run, and a disconnect is noticed while the program does not call. While calls are
being made it only wakes up every :data:`IDLE_GRACE` seconds to see that it is not needed.

**Where the server's calls to us run.** A ``Referenceable`` we passed (or the ``root=``, or a
login ``mind``) is called by the server in whichever thread is reading at that moment — a
caller waiting for its own answer, or the idle reader — with the connection's lock held, like
the reactor thread of the event-driven client. Such a method must not make a *blocking* call on
the same connection (it raises RuntimeError: it would wait for itself); it may return a value or
a Deferred, and may call ``ref.remote.call_remote`` (Deferred style). An answer computed later
(a Deferred fired afterwards) is sent at the connection's next I/O (a call, or the idle
reader's next turn). Disconnect callbacks (``notify_on_disconnect``) run in the thread that
noticed or made the disconnect.

**Releases**: proxies dropped in any thread (inside the garbage collector) are released on the
connection's next I/O. **Heartbeat**: whoever reads pings a silent server and declares it dead
after ``Limits.dead_after`` seconds of silence, failing every pending call with ConnectionLost;
the frame and idle timeouts of :class:`~broker.session.Limits` are kept too. A disconnect fails
every pending call in every waiting thread.

**Other endpoints** (``tls:``, and any endpoint type or option this module does not handle
itself) run as before: one reactor in a background thread shared by every such connection;
calls are handed to it with ``call_from_thread`` and their results waited for with a timeout.
"""

from __future__ import annotations

import concurrent.futures
import errno
import logging
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import net.error
from net.address import address_from_sockaddr
from net.defer import Deferred, Failure, ensure_deferred, maybe_deferred
from net.endpoints import parse as parse_endpoint
from net.reactor import make_reactor

from . import api
from .errors import ConnectionLost
from .flavors import CopyRegistry, Referenceable
from .lifecycle import ACTIVE, State
from .messages import FEATURE_HEARTBEAT, HEARTBEAT_IDLE_FRACTION
from .session import Limits, RemoteReference, Session
from .streams import RemoteStream

__all__ = ["connect", "login", "BlockingReference", "BlockingConnection", "DEFAULT_TIMEOUT"]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 60.0

#: Seconds a connection must have been quiet (no call started, nobody reading) before its idle
#: reader thread takes over the reading.
IDLE_GRACE = 0.05

#: Process this many messages between writes (answers to the server's calls go out in chunks).
_FLUSH_FRAMES = 16
#: What one recv asks for (the decoder offers more inside a big frame).
_RECV_SIZE = 64 * 1024
#: How often a reader with nothing to wait for looks up when the heartbeat is off (seconds).
_LOOK_UP = 5.0
#: The socket options the in-thread path understands; anything else goes to the reactor path.
_SESSION_OPTIONS = frozenset({"root", "registry", "limits", "debug", "handshake_timeout"})
#: Set to False to run every connection in the background reactor (tests compare the two).
_IN_THREAD = True

_lock = threading.Lock()
_thread: _ReactorThread | None = None


# -- the reactor-thread path (tls: and other endpoint types) --------------------------------------


class _ReactorThread:
    """A reactor running in a daemon thread, with a way to run code in it and wait."""

    def __init__(self) -> None:
        self.reactor = make_reactor()
        started = threading.Event()
        self.reactor.call_when_running(started.set)
        self.thread = threading.Thread(target=self.reactor.run, name="pbroker-reactor", daemon=True)
        self.thread.start()
        if not started.wait(30):
            raise RuntimeError("the background reactor did not start")

    def run(self, f: Callable[..., Any], *args: Any, timeout: float | None = DEFAULT_TIMEOUT, **kwargs: Any) -> Any:
        """Run ``f`` in the reactor thread; wait for its (possibly Deferred) result."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        deferred_box: list[Deferred[Any]] = []

        def start() -> None:
            d = maybe_deferred(f, *args, **kwargs)
            deferred_box.append(d)
            d.add_callbacks(future.set_result, lambda failure: future.set_exception(failure.value))

        self.reactor.call_from_thread(start)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            def cancel() -> None:
                if deferred_box:
                    deferred_box[0].cancel()

            self.reactor.call_from_thread(cancel)
            raise TimeoutError(f"no result within {timeout} seconds") from None


def _reactor_thread() -> _ReactorThread:
    global _thread
    with _lock:
        if _thread is None or not _thread.thread.is_alive():
            _thread = _ReactorThread()
        return _thread


class _ReactorChannel:
    """A connection run by the shared background reactor (calls hop to its thread and back)."""

    def __init__(self, runner: _ReactorThread) -> None:
        self.runner = runner

    def call(self, remote: RemoteReference, name: str, args: tuple[Any, ...], kwargs: dict[str, Any],
             timeout: float | None) -> Any:
        return self.runner.run(remote.call_remote, name, *args, timeout=timeout, **kwargs)

    def call_no_answer(self, remote: RemoteReference, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.runner.reactor.call_from_thread(remote.call_remote_no_answer, name, *args, **kwargs)

    def notify_on_disconnect(self, remote: RemoteReference, callback: Callable[[RemoteReference], object],
                             timeout: float | None) -> None:
        self.runner.run(remote.notify_on_disconnect, callback, timeout=timeout)

    def close(self, remote: RemoteReference) -> None:
        self.runner.reactor.call_from_thread(remote.session.disconnect)


# -- the in-thread path (tcp:) ----------------------------------------------------------------------


class _Slot:
    """Where a waiting thread's answer lands (filled in whichever thread reads it)."""

    __slots__ = ("done", "value", "error", "cond")

    def __init__(self) -> None:
        self.done = False
        self.value: Any = None
        self.error: BaseException | None = None
        self.cond: threading.Condition | None = None  # made when the thread has to wait

    def ok(self, value: Any) -> None:
        self.value = value
        self.done = True
        if self.cond is not None:
            self.cond.notify()

    def fail(self, failure: Failure) -> None:
        self.error = failure.value
        self.done = True
        if self.cond is not None:
            self.cond.notify()


def _nothing() -> None:
    pass


if sys.platform.startswith(("linux", "darwin", "freebsd", "openbsd", "netbsd")) and hasattr(socket, "SO_RCVTIMEO"):
    def _timeval(seconds: float) -> bytes:
        usec = max(1000, int(seconds * 1e6))  # 0 would mean "no timeout"
        return struct.pack("@ll", usec // 1_000_000, usec % 1_000_000)
else:  # pragma: no cover - no kernel receive timeout we know how to set: Python's own timeouts
    _timeval = None  # type: ignore[assignment]


class _SocketChannel:
    """One ``tcp:`` connection driven from the calling threads (see the module docstring).

    Everything about the session happens under ``_lock``; ``_reading`` and ``_writing`` say
    whether some thread is in ``recv`` or ``sendall`` (with the lock released meanwhile).
    """

    def __init__(self, host: str, port: int, connect_timeout: float | None, bind: tuple[str, int] | None,
                 timeout: float | None, *, root: Referenceable | None = None, registry: CopyRegistry | None = None,
                 limits: Limits = Limits(), debug: bool = False, handshake_timeout: float = 30.0) -> None:
        self._lock = threading.Lock()
        self._idle_cond = threading.Condition(self._lock)
        self._reading = False
        self._writing = False
        self._dead = False  # the socket is shut down and the session told
        self._fd_closed = False
        self._followers: list[_Slot] = []  # slots of the threads waiting for the reader
        self._active = 0  # calls in progress
        self._started = 0  # calls started so far (how the idle reader sees activity)
        self._releases_due = False
        self._user_code_thread: int | None = None  # the thread running session code that may call ours
        self._recv_timeout: float | None = None  # what SO_RCVTIMEO is set to now
        self._limits = limits
        dead_after = limits.dead_after
        self._tick = _LOOK_UP if dead_after is None else min(_LOOK_UP, dead_after * HEARTBEAT_IDLE_FRACTION / 2)
        self._frame_mark = (-1, 0.0)  # (frames received, when) while a frame is half in

        self._sock = self._open(host, port, connect_timeout if timeout is None else
                                timeout if connect_timeout is None else min(connect_timeout, timeout), bind)
        now = time.monotonic()
        self._last_heard = self._reading_since = now
        self._last_ping = -1.0
        try:
            peer = address_from_sockaddr("TCP", self._sock.family, self._sock.getpeername())
        except OSError:
            peer = None
        self.session = Session(root=root, registry=registry, limits=limits, debug=debug,
                               name=f"{host}:{port}", peer=peer, side="client", clock=None,
                               on_output=_nothing, release_due=self._release_due)
        self._thread = threading.Thread(target=self._idle_reader, name=f"pbroker-blocking {host}:{port}", daemon=True)
        deadline = None if timeout is None else now + timeout
        if handshake_timeout is not None:
            deadline = now + handshake_timeout if deadline is None else min(deadline, now + handshake_timeout)
        slot = _Slot()
        with self._lock:
            self.session.ready.add_callbacks(slot.ok, slot.fail)
            self._flush()  # our hello
            if not self._wait(slot, deadline):
                self._user(self.session.disconnect,
                           TimeoutError(f"no pbroker hello within {min(timeout or handshake_timeout, handshake_timeout)} seconds"))
                self._flush()
            self._kill_if_closing()
        if slot.error is not None:
            raise slot.error
        self.root: RemoteReference = slot.value
        self._thread.start()

    @staticmethod
    def _open(host: str, port: int, timeout: float | None, bind: tuple[str, int] | None) -> socket.socket:
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            sock = socket.create_connection((host, port), timeout=timeout, source_address=bind)
        except socket.gaierror as exc:
            raise net.error.DNSLookupError(f"DNS lookup failed for {host!r}: {exc}") from exc
        except TimeoutError as exc:
            raise net.error.ConnectTimeoutError(f"Connection to {where} timed out after {timeout}s") from exc
        except OSError as exc:
            error: net.error.ConnectError
            if exc.errno == errno.ECONNREFUSED:
                error = net.error.ConnectionRefusedError(
                    f"Connection refused by {where}: is the server running and listening on that port?")
            else:
                error = net.error.ConnectError(f"Could not connect to {where}: {exc.strerror or exc}")
            error.errno = exc.errno
            raise error from exc
        sock.settimeout(None)  # blocking: one syscall per send and per recv; SO_RCVTIMEO bounds reads
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        return sock

    # -- what BlockingReference asks for --------------------------------------------------------

    def call(self, remote: RemoteReference, name: str, args: tuple[Any, ...], kwargs: dict[str, Any],
             timeout: float | None) -> Any:
        self._check_not_inside()
        call_timeout = self._limits.call_timeout  # Limits.call_timeout bounds every call too
        if call_timeout is not None and (timeout is None or call_timeout < timeout):
            timeout = call_timeout
        slot = _Slot()
        with self._lock:
            self._active += 1
            self._started += 1
            try:
                d = remote.call_remote(name, *args, **kwargs)
                d.add_callbacks(slot.ok, slot.fail)
                if not slot.done:
                    self._flush()
                    if not self._wait(slot, None if timeout is None else time.monotonic() + timeout):
                        d.cancel()  # a Cancel goes to the server; the call fails here
                        self._flush()
                        raise TimeoutError(f"no result within {timeout} seconds")
            finally:
                self._active -= 1
        if slot.error is not None:
            raise slot.error
        return slot.value

    def wait_for(self, d: Deferred[Any], timeout: float | None) -> Any:
        """Wait for a Deferred of this session's (the lock held: the caller started it)."""
        slot = _Slot()
        d.add_callbacks(slot.ok, slot.fail)
        self._active += 1
        self._started += 1
        try:
            self._flush()
            if not self._wait(slot, None if timeout is None else time.monotonic() + timeout):
                d.cancel()
                self._flush()
                raise TimeoutError(f"no result within {timeout} seconds")
        finally:
            self._active -= 1
        if slot.error is not None:
            raise slot.error
        return slot.value

    def call_no_answer(self, remote: RemoteReference, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self._check_not_inside()
        with self._lock:
            self._started += 1
            remote.call_remote_no_answer(name, *args, **kwargs)
            self._flush()

    def notify_on_disconnect(self, remote: RemoteReference, callback: Callable[[RemoteReference], object],
                             timeout: float | None) -> None:
        self._check_not_inside()
        with self._lock:
            self._user(remote.notify_on_disconnect, callback)

    def close(self, remote: RemoteReference | None = None) -> None:
        self._check_not_inside()
        with self._lock:
            if self.session.state in ACTIVE:
                self._user(self.session.disconnect)
            self._flush()
            self._kill_if_closing()

    # -- internals (all with the lock held) ------------------------------------------------------

    def _check_not_inside(self) -> None:
        if self._user_code_thread == threading.get_ident():
            raise RuntimeError(
                "a blocking call on a broker.blocking connection from inside one of its own callbacks "
                "(a method the server called, or a disconnect callback) would wait for itself: return a "
                "Deferred, or use ref.remote.call_remote(...) there")

    def _user(self, f: Callable[..., Any], *args: Any) -> Any:
        """Run session code that may run application code (callbacks); mark the thread meanwhile."""
        me = threading.get_ident()
        outer = self._user_code_thread
        self._user_code_thread = me
        try:
            return f(*args)
        finally:
            self._user_code_thread = outer

    def _release_due(self) -> None:
        """Proxies died (in any thread, inside the GC): released at the next flush. No lock here:
        the GC may run this in a thread that holds it."""
        self._releases_due = True

    def _flush(self) -> None:
        """Send what the session queued, unless another thread is sending (it sends this too)."""
        if self._writing:
            return
        session = self.session
        if self._releases_due:
            self._releases_due = False
            session.flush_releases()
        data = session.data_to_send()
        while data:
            self._writing = True
            self._lock.release()
            try:
                self._sock.sendall(data)
                error: OSError | None = None
            except OSError as exc:
                error = exc
            finally:
                self._lock.acquire()
                self._writing = False
            if error is not None:
                self._connection_lost(error)
                return
            data = session.data_to_send()
        if session.state is State.CLOSING:
            self._kill_if_closing()
        elif self._dead:
            self._maybe_close_fd()

    def _kill_if_closing(self) -> None:
        """The session wants the connection closed and everything queued is sent: close it."""
        if self.session.state not in ACTIVE and not self._writing:
            self._connection_lost(None)

    def _connection_lost(self, reason: BaseException | None) -> None:
        """Shut the socket down (waking a reader), tell the session: every pending call fails."""
        if self._dead:
            self._maybe_close_fd()
            return
        self._dead = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._user(self.session.connection_lost, reason)
        for slot in self._followers:
            if slot.cond is not None:
                slot.cond.notify()
        self._idle_cond.notify()
        self._maybe_close_fd()

    def _maybe_close_fd(self) -> None:
        """Close the descriptor once no thread is in recv or send on it (its number may be reused)."""
        if self._dead and not self._reading and not self._writing and not self._fd_closed:
            self._fd_closed = True
            self._sock.close()

    def _wait(self, slot: _Slot, deadline: float | None) -> bool:
        """Until ``slot`` is filled (True) or ``deadline`` (monotonic) passes (False).

        Reads if nobody else does (the leader); else waits to be given the answer or the reading.
        """
        while not slot.done:
            if self._dead:
                slot.error = ConnectionLost("connection lost: the connection is closed")
                slot.done = True
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            if self._reading:  # a follower: the reader delivers, or hands the reading over
                cond = slot.cond
                if cond is None:
                    cond = slot.cond = threading.Condition(self._lock)
                self._followers.append(slot)
                try:
                    cond.wait(None if deadline is None else deadline - time.monotonic())
                finally:
                    self._followers.remove(slot)
                continue
            self._take_reading()
            try:
                while not slot.done and not self._dead:
                    if deadline is not None and time.monotonic() >= deadline:
                        break
                    self._read_once(deadline)
            finally:
                self._give_reading()
        return True

    def _take_reading(self) -> None:
        self._reading = True
        self._reading_since = time.monotonic()  # time nobody read is not the peer's silence

    def _give_reading(self) -> None:
        """Stop reading; wake a follower still waiting, to read in our place."""
        self._reading = False
        for follower in self._followers:
            if not follower.done and follower.cond is not None:
                follower.cond.notify()
                break
        self._maybe_close_fd()

    def _set_recv_timeout(self, seconds: float) -> None:
        if seconds == self._recv_timeout:
            return
        self._recv_timeout = seconds
        if _timeval is not None:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(seconds))
        else:  # pragma: no cover
            self._sock.settimeout(seconds)

    def _read_once(self, deadline: float | None) -> None:
        """One recv (the lock released meanwhile), then handle what arrived or the silence."""
        session = self.session
        wait = self._tick
        if deadline is not None:
            wait = min(wait, deadline - time.monotonic())
            if wait <= 0:
                return
        self._set_recv_timeout(wait)
        buffer = session.get_buffer(_RECV_SIZE)
        sock = self._sock
        self._lock.release()
        try:
            n = sock.recv_into(buffer)
            error: OSError | None = None
        except (BlockingIOError, TimeoutError):  # SO_RCVTIMEO (or Python's timeout) passed
            n = -1
            error = None
        except OSError as exc:
            n = 0
            error = exc
        finally:
            self._lock.acquire()
        if n > 0:
            if session.state is State.CLOSED:
                return  # lost meanwhile (another thread's send failed): these bytes are moot
            self._last_heard = time.monotonic()
            session.buffer_updated(n)
            self._process()
            if session.buffered_bytes:
                self._watch_frame()
        elif n == 0:
            if not self._dead:
                self._connection_lost(error or net.error.ConnectionDone("the peer closed the connection", by_peer=True))
        else:
            self._silence()

    def _process(self) -> None:
        session = self.session
        me = threading.get_ident()
        outer, self._user_code_thread = self._user_code_thread, me
        try:
            # No output bound: the outbox may hold other threads' calls, queued while a thread
            # sends (it sends them next); a bound would stop process() before any message.
            while session.process(_FLUSH_FRAMES):
                self._flush()
        finally:
            self._user_code_thread = outer
        self._flush()

    def _watch_frame(self) -> None:
        """A frame is half in: it must complete within frame_timeout (as broker.protocol)."""
        session = self.session
        frames, since = self._frame_mark
        now = time.monotonic()
        if frames != session.frames_received:
            self._frame_mark = (session.frames_received, now)
        elif now - since >= self._limits.frame_timeout:
            timeout = self._limits.frame_timeout
            log.warning("%r: closing: a frame was not completed within %s s", session, timeout)
            self._user(session.disconnect, TimeoutError(f"a frame from the peer was not completed within {timeout} s"),
                       "invalid")
            self._flush()

    def _silence(self) -> None:
        """Nothing arrived for a while: the heartbeat, and the frame and idle timeouts."""
        session = self.session
        if session.state is not State.OPEN:
            return
        if session.buffered_bytes:
            self._watch_frame()
        limits = self._limits
        now = time.monotonic()
        silence = now - max(self._last_heard, self._reading_since)
        if limits.idle_timeout is not None and silence >= limits.idle_timeout:
            log.info("%r: closing: nothing received for %s s", session, limits.idle_timeout)
            self._user(session.disconnect,
                       TimeoutError(f"nothing received from the peer for {limits.idle_timeout} s (idle_timeout)"))
            self._flush()
            return
        dead_after = limits.dead_after
        if dead_after is None or FEATURE_HEARTBEAT not in session.negotiated:
            return
        if silence >= dead_after:
            reason = TimeoutError(f"the peer stopped answering (nothing received for {silence:.0f} s)")
            log.warning("%r: closing: %s", session, reason)
            self._connection_lost(reason)
            return
        idle = dead_after * HEARTBEAT_IDLE_FRACTION
        if silence >= idle and now - self._last_ping >= idle:
            self._last_ping = now
            session.ping()
            self._flush()

    def _idle_reader(self) -> None:
        """Read while no caller does: pings, the server's calls to us, a disconnect."""
        with self._lock:
            seen = -1
            while not self._dead:
                if self._reading or self._active or self._started != seen:
                    seen = self._started
                    self._idle_cond.wait(IDLE_GRACE)
                    continue
                self._take_reading()
                try:
                    while not self._dead and not self._active:
                        self._read_once(None)
                        self._flush()  # what was queued meanwhile: releases, later answers
                finally:
                    self._give_reading()
                seen = self._started


# -- the public face ------------------------------------------------------------------------------

_Channel = _SocketChannel | _ReactorChannel


def _wrap(value: Any, channel: _Channel, timeout: float | None) -> Any:
    if isinstance(value, RemoteReference):
        return BlockingReference(value, channel, timeout)
    if isinstance(value, RemoteStream):  # §17: a plain iterator, each step waited for here
        return value.blocking(_stream_runner(channel, timeout))
    if isinstance(value, list):
        return [_wrap(v, channel, timeout) for v in value]
    if isinstance(value, dict):
        return {k: _wrap(v, channel, timeout) for k, v in value.items()}
    return value


def _stream_runner(channel: _Channel, timeout: float | None) -> Callable[[Callable[[], Deferred[Any]]], Any]:
    """How a BlockingStream takes a step: in the session's thread, waiting for the Deferred."""
    if isinstance(channel, _ReactorChannel):
        return lambda step: channel.runner.run(step, timeout=timeout)

    def run(step: Callable[[], Deferred[Any]]) -> Any:
        channel._check_not_inside()
        with channel._lock:
            return channel.wait_for(step(), timeout)
    return run


_SIMPLE = (int, str, float, bool, bytes, type(None))


class BlockingReference:
    """A RemoteReference whose calls return results (or raise) synchronously."""

    def __init__(self, remote: RemoteReference, channel: _Channel, timeout: float | None) -> None:
        self.remote = remote
        self._channel = channel
        self.timeout = timeout

    @property
    def __remote_reference__(self) -> RemoteReference:
        """What the encoder sends for this object, at any depth of the arguments (no walk here)."""
        return self.remote

    def call_remote(self, _name: str, /, *args: Any, **kwargs: Any) -> Any:
        """Call ``remote_<_name>`` on the peer's object; wait (at most ``timeout``) for the result."""
        session = self.remote.session
        seen = session.refs_received
        result = self._channel.call(self.remote, _name, args, kwargs, self.timeout)
        if type(result) in _SIMPLE or session.refs_received == seen:
            return result  # no reference arrived since the call went out: nothing to wrap
        return _wrap(result, self._channel, self.timeout)

    def call_remote_no_answer(self, _name: str, /, *args: Any, **kwargs: Any) -> None:
        """A one-way call (no answer; the server logs its errors)."""
        self._channel.call_no_answer(self.remote, _name, args, kwargs)

    def notify_on_disconnect(self, callback: Callable[[RemoteReference], object]) -> None:
        """``callback`` runs once when the connection closes: for a ``tcp:`` connection in the
        thread that noticed or made the disconnect, else in the reactor thread."""
        self._channel.notify_on_disconnect(self.remote, callback, self.timeout)

    def __repr__(self) -> str:
        return f"<BlockingReference {self.remote!r}>"


class _LoginOpener:
    """The opener :func:`login` passes: logs in after connecting (either path)."""

    def __init__(self, credentials: Any, mind: Any) -> None:
        self.credentials = credentials
        self.mind = mind

    def __call__(self, reactor: Any, endpoint: str, **options: Any) -> Deferred[RemoteReference]:
        from .login import login as login_deferred

        return login_deferred(reactor, endpoint, self.credentials, self.mind, **options)


def _tcp_target(endpoint: str, options: dict[str, Any]) -> tuple[str, int, float | None, tuple[str, int] | None] | None:
    """(host, port, connect timeout, bind address) for a plain ``tcp:`` endpoint the in-thread
    path can open itself; None for anything else (the reactor path handles it, errors included)."""
    if not _IN_THREAD or not options.keys() <= _SESSION_OPTIONS:
        return None
    try:
        kind, args, kw = parse_endpoint(endpoint)
    except ValueError:
        return None
    if kind != "tcp" or len(args) != 2 or not kw.keys() <= {"timeout", "bind_address"}:
        return None
    host, port_text = args
    try:
        port = int(port_text)
        text = kw.get("timeout", "30")
        connect_timeout = None if text.lower() in ("none", "") else float(text)
    except ValueError:
        return None
    if not host or not 0 < port <= 65535 or (connect_timeout is not None and not connect_timeout >= 0):
        return None
    bind = (kw["bind_address"], 0) if kw.get("bind_address") else None
    return host, port, connect_timeout, bind


class BlockingConnection:
    """An open connection; ``root`` is the server's root (or the avatar, after :func:`login`).

    Use it in a ``with`` block (which gives ``root`` and closes on exit), or directly:
    ``conn = broker.blocking.connect(...)``, then ``conn.call_remote(...)`` (forwarded to
    ``conn.root``) and finally ``conn.close()``.
    """

    def __init__(self, endpoint: str, timeout: float | None, options: dict[str, Any],
                 opener: Callable[..., Deferred[RemoteReference]] = api.connect) -> None:
        if not isinstance(endpoint, str):
            raise TypeError(f"broker.blocking takes the endpoint string first (it runs its own reactor), "
                            f"e.g. broker.blocking.connect('tcp:127.0.0.1:8800'); got {type(endpoint).__name__}")
        self.endpoint = endpoint
        target = _tcp_target(endpoint, options) if opener is api.connect or isinstance(opener, _LoginOpener) else None
        self._channel: _Channel
        if target is not None:
            host, port, connect_timeout, bind = target
            channel = _SocketChannel(host, port, connect_timeout, bind, timeout, **options)
            self._channel = channel
            remote = channel.root
            if isinstance(opener, _LoginOpener):
                remote = self._log_in(channel, opener, timeout)
        else:
            runner = _reactor_thread()
            self._channel = _ReactorChannel(runner)
            remote = runner.run(opener, runner.reactor, endpoint, timeout=timeout, **options)
        self.root = BlockingReference(remote, self._channel, timeout)

    @staticmethod
    def _log_in(channel: _SocketChannel, opener: _LoginOpener, timeout: float | None) -> RemoteReference:
        from .login import login_with

        try:
            with channel._lock:
                d = channel._user(ensure_deferred, login_with(channel.root, opener.credentials, opener.mind))
                avatar: RemoteReference = channel.wait_for(d, timeout)
        except BaseException:
            channel.close()
            raise
        return avatar

    def call_remote(self, _name: str, /, *args: Any, **kwargs: Any) -> Any:
        """``self.root.call_remote(...)``: call a method of the server's root; wait for the result."""
        return self.root.call_remote(_name, *args, **kwargs)

    def call_remote_no_answer(self, _name: str, /, *args: Any, **kwargs: Any) -> None:
        """``self.root.call_remote_no_answer(...)``: a one-way call on the server's root."""
        self.root.call_remote_no_answer(_name, *args, **kwargs)

    def notify_on_disconnect(self, callback: Callable[[RemoteReference], object]) -> None:
        """``callback`` runs once when the connection closes (see BlockingReference)."""
        self.root.notify_on_disconnect(callback)

    @property
    def closed(self) -> bool:
        """True once the connection is ending or gone (calls fail with ConnectionLost)."""
        return self.root.remote.session.state.value in ("closing", "closed")

    def close(self) -> None:
        """Disconnect (idempotent); pending and later calls fail with ``broker.ConnectionLost``."""
        self._channel.close(self.root.remote)

    def __enter__(self) -> BlockingReference:
        return self.root

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<BlockingConnection {self.endpoint} {self.root.remote.session!r}>"


def connect(endpoint: str, *, timeout: float | None = DEFAULT_TIMEOUT, **options: Any) -> BlockingConnection:
    """Connect; the connection gives the server's root as a BlockingReference.

    ``with connect(...) as root:`` closes on exit; or keep the connection and call
    ``conn.call_remote(...)`` / ``conn.root`` directly, then ``conn.close()``.

    ``timeout`` bounds connecting and every call (seconds; None waits forever, on your head).
    Options as for :func:`broker.connect` (``root``, ``registry``, ``limits``, ``debug``,
    ``handshake_timeout``).
    """
    return BlockingConnection(endpoint, timeout, options)


def login(endpoint: str, credentials: Any, *, mind: Any = None, timeout: float | None = DEFAULT_TIMEOUT,
          **options: Any) -> BlockingConnection:
    """Connect and log in; a context manager giving the avatar as a BlockingReference.

    ``credentials`` and ``mind`` as for :func:`broker.login` (the mind's methods run where the
    server's calls to us run: see the module docstring); a refused login raises
    ``cred.error.UnauthorizedLogin``. Leaving the ``with`` block disconnects, which is the logout.
    """
    return BlockingConnection(endpoint, timeout, options, _LoginOpener(credentials, mind))
