"""A blocking client for scripts and the REPL.

    with broker.blocking.connect("tcp:127.0.0.1:8800") as root:
        print(root.call_remote("add", 1, 2))

A reactor runs in one background thread shared by every blocking connection; calls are handed to
it with ``call_from_thread`` and their results waited for with a timeout, so a call never hangs
forever. Proxies may be used from any number of threads at once (no thread affinity).
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

from net.defer import Deferred, maybe_deferred
from net.reactor import make_reactor

from . import api
from .session import RemoteReference

__all__ = ["connect", "login", "BlockingReference", "BlockingConnection", "DEFAULT_TIMEOUT"]

DEFAULT_TIMEOUT = 60.0

_lock = threading.Lock()
_thread: _ReactorThread | None = None


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


def _unwrap(value: Any) -> Any:
    if isinstance(value, BlockingReference):
        return value.remote
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    if isinstance(value, dict):
        return {k: _unwrap(v) for k, v in value.items()}
    return value


def _wrap(value: Any, runner: _ReactorThread, timeout: float | None) -> Any:
    if isinstance(value, RemoteReference):
        return BlockingReference(value, runner, timeout)
    if isinstance(value, list):
        return [_wrap(v, runner, timeout) for v in value]
    if isinstance(value, dict):
        return {k: _wrap(v, runner, timeout) for k, v in value.items()}
    return value


class BlockingReference:
    """A RemoteReference whose calls return results (or raise) synchronously."""

    def __init__(self, remote: RemoteReference, runner: _ReactorThread, timeout: float | None) -> None:
        self.remote = remote
        self._runner = runner
        self.timeout = timeout

    def call_remote(self, _name: str, /, *args: Any, **kwargs: Any) -> Any:
        args = tuple(_unwrap(a) for a in args)
        kwargs = {k: _unwrap(v) for k, v in kwargs.items()}
        result = self._runner.run(self.remote.call_remote, _name, *args, timeout=self.timeout, **kwargs)
        return _wrap(result, self._runner, self.timeout)

    def call_remote_no_answer(self, _name: str, /, *args: Any, **kwargs: Any) -> None:
        args = tuple(_unwrap(a) for a in args)
        self._runner.reactor.call_from_thread(self.remote.call_remote_no_answer, _name, *args, **kwargs)

    def notify_on_disconnect(self, callback: Callable[[RemoteReference], object]) -> None:
        """``callback`` runs in the reactor thread when the connection closes."""
        self._runner.run(self.remote.notify_on_disconnect, callback, timeout=self.timeout)

    def __repr__(self) -> str:
        return f"<BlockingReference {self.remote!r}>"


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
        self._runner = _reactor_thread()
        remote = self._runner.run(opener, self._runner.reactor, endpoint, timeout=timeout, **options)
        self.root = BlockingReference(remote, self._runner, timeout)
        self.endpoint = endpoint

    def call_remote(self, _name: str, /, *args: Any, **kwargs: Any) -> Any:
        """``self.root.call_remote(...)``: call a method of the server's root; wait for the result."""
        return self.root.call_remote(_name, *args, **kwargs)

    def call_remote_no_answer(self, _name: str, /, *args: Any, **kwargs: Any) -> None:
        """``self.root.call_remote_no_answer(...)``: a one-way call on the server's root."""
        self.root.call_remote_no_answer(_name, *args, **kwargs)

    def notify_on_disconnect(self, callback: Callable[[RemoteReference], object]) -> None:
        """``callback`` runs in the reactor thread when the connection closes."""
        self.root.notify_on_disconnect(callback)

    @property
    def closed(self) -> bool:
        """True once the connection is ending or gone (calls fail with ConnectionLost)."""
        return self.root.remote.session.state.value in ("closing", "closed")

    def close(self) -> None:
        """Disconnect (idempotent); pending and later calls fail with ``broker.ConnectionLost``."""
        remote = self.root.remote
        self._runner.reactor.call_from_thread(remote.session.disconnect)

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
    """
    return BlockingConnection(endpoint, timeout, options)


def login(endpoint: str, credentials: Any, *, mind: Any = None, timeout: float | None = DEFAULT_TIMEOUT,
          **options: Any) -> BlockingConnection:
    """Connect and log in; a context manager giving the avatar as a BlockingReference.

    ``credentials`` and ``mind`` as for :func:`broker.login` (the mind's methods run in the
    reactor thread); a refused login raises ``cred.error.UnauthorizedLogin``. Leaving the
    ``with`` block disconnects, which is the logout.
    """
    from .login import login as login_deferred

    def opener(reactor: Any, endpoint: str, **options: Any) -> Deferred[RemoteReference]:
        return login_deferred(reactor, endpoint, credentials, mind, **options)

    return BlockingConnection(endpoint, timeout, options, opener)
