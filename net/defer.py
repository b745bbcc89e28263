"""Deferreds: a result that will arrive later, with a chain of callbacks to process it.

Why it looks like this:

* **Pure.** No reactor, no I/O. ``cred`` and the broker's state machine may use it, and
  :meth:`Deferred.add_timeout` takes the clock as an argument instead of importing one.
* **Fast on the hot path.** The broker creates one :class:`Deferred` per remote call, so the class
  uses ``__slots__``, creates no callback list until a callback is added, stores each callback pair as
  one flat tuple, treats ``None`` as "pass the result through" (no pass-through function calls), and
  never formats a traceback unless someone asks for the text. A :class:`Failure` keeps its
  traceback object only until its chain ends with it; then ``clean_failure`` keeps just
  (file, line, function) per frame and lets the frames and their locals go.
* **Iterative chaining.** A callback that returns a Deferred pauses the outer chain until the inner
  Deferred fires. Resuming the outer chain is done by a loop over an explicit stack (as Twisted's
  ``_runCallbacks`` does), never by recursion, so 10,000 Deferreds each waiting on the next fire
  without ``RecursionError``.
* **Unhandled errors are logged, cheaply.** Only a Deferred whose chain *ends* holding a
  :class:`Failure` gets a small ``_DebugInfo`` object; that object's ``__del__`` logs the failure to
  ``logging.getLogger("net.defer")`` at ERROR if nobody handled it. The Deferred itself has no
  ``__del__``, so ordinary Deferreds cost the garbage collector nothing extra.
* **Cancellation.** ``Deferred(canceller)``: :meth:`Deferred.cancel` calls the canceller, errbacks
  with :class:`CancelledError` if the canceller did not fire the Deferred, and then silently ignores
  the one late ``callback``/``errback`` the underlying operation may still deliver (unlike
  Twisted, also when a canceller ran but did not fire it: a broker answer racing a cancel is
  normal, not a bug). A Deferred waiting on an inner Deferred cancels the innermost one.
* **Coroutines, two drivers.** :func:`ensure_deferred` drives a coroutine itself with
  ``send``/``throw`` (no asyncio needed); a coroutine awaiting a Deferred there yields the Deferred to
  the driver. Inside a native asyncio task, ``await deferred`` yields a small future-like waiter
  to the task instead, which resumes the task directly from the Deferred's callback when the
  Deferred fires outside any task (the usual case: a reactor read callback), so a result costs no
  Future and no extra turn of the loop; fired from inside another task it wakes the task with
  ``call_soon``, as a Future would. A thread-local flag, set only while the ``ensure_deferred``
  driver is inside ``coro.send``/``coro.throw`` (and only when a loop is running: without one
  there is no asyncio task to confuse), tells the two apart. (A thread-local, not a
  ``ContextVar``: tasks created inside a driven coroutine copy its context and would inherit the
  flag.)
* **Context isolation.** Each coroutine run by :func:`ensure_deferred` (and each
  :func:`inline_callbacks` generator) runs every step in its own copy of its creator's
  ``contextvars`` context, as an asyncio Task does: a ContextVar it sets does not leak out to its
  caller, and values set by whatever code fires the Deferred it awaits do not leak in.
* **No cycles left behind.** A Deferred drops its canceller when it fires (the canceller is
  usually a closure or bound method that refers back to the Deferred or its operation), so a
  fired Deferred is freed by reference counting alone. ``__weakref__`` is in ``__slots__``, so
  Deferreds can be held in ``WeakSet``/``WeakValueDictionary`` tables of pending operations.
* **Debug mode** (:func:`set_debugging`): each Deferred records the stack where it was created and
  where it was first fired; :class:`AlreadyCalledError` and the unhandled-error log show them.
  Off by default: a stack capture per Deferred is far more than the rest of a Deferred costs.
* **Twisted's helpers, snake_case.** :class:`DeferredList`, :func:`race`, :class:`DeferredLock`,
  :class:`DeferredSemaphore`, :class:`DeferredQueue` and :func:`inline_callbacks` behave as
  Twisted's do (docs/TWISTED.md lists the differences); each waiter is an ordinary Deferred.

Cancellation across the asyncio boundary:

* :meth:`Deferred.as_future`: cancelling the future cancels the Deferred; a Deferred that fails with
  :class:`CancelledError` cancels the future (awaiting it raises ``asyncio.CancelledError``).
* :meth:`Deferred.from_future`: cancelling the Deferred cancels the future; a future that ends
  cancelled fails the Deferred with :class:`CancelledError` (this module's, not asyncio's).

:func:`gather` fails with the *first member's own* :class:`Failure` (as ``asyncio.gather`` raises
the first exception), not a wrapper, so ``except SomeRemoteError`` works on ``await gather(...)``.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import sys
import threading
import traceback
from collections import deque
from types import CoroutineType, GeneratorType, TracebackType
from typing import (
    Any,
    Awaitable,
    Callable,
    Concatenate,
    Coroutine,
    Generator,
    Generic,
    NoReturn,
    ParamSpec,
    Self,
    TypeVar,
    overload,
)

from .failure import Failure

__all__ = [
    "AlreadyCalledError",
    "CancelledError",
    "Deferred",
    "DeferredList",
    "DeferredLock",
    "DeferredQueue",
    "DeferredSemaphore",
    "Failure",
    "FirstError",
    "QueueOverflow",
    "QueueUnderflow",
    "TimeoutError",
    "ensure_deferred",
    "fail",
    "gather",
    "get_debugging",
    "inline_callbacks",
    "maybe_deferred",
    "race",
    "set_debugging",
    "succeed",
]

_T = TypeVar("_T")
_P = ParamSpec("_P")

_log = logging.getLogger("net.defer")

# ``TimeoutError`` is the builtin one (``add_timeout`` fails with it); re-exported for convenience.
TimeoutError = TimeoutError  # noqa: A001, PLW0127

_get_running_loop = asyncio._get_running_loop  # C-level, no exception when no loop is running


class CancelledError(Exception):
    """A Deferred was cancelled before it had a result.

    Distinct from ``asyncio.CancelledError`` (a ``BaseException``): see the module docstring for the
    conversion in both directions done by :meth:`Deferred.as_future` and
    :meth:`Deferred.from_future`.
    """


class AlreadyCalledError(Exception):
    """``callback`` or ``errback`` was called on a Deferred that already has a result."""


# --------------------------------------------------------------------------------------------------
# Unhandled-error logging and debug mode


_debugging = False


def set_debugging(on: bool) -> None:
    """Debug mode: record where each new Deferred is created and where it is first fired.

    The stacks go into :class:`AlreadyCalledError` (who fired it first, and who made it) and into
    the "Unhandled error in Deferred" log. Costs a stack capture per Deferred created and fired,
    so it is off by default: turn it on while hunting a double-fire or a lost error.
    """
    global _debugging
    _debugging = bool(on)


def get_debugging() -> bool:
    """Whether :func:`set_debugging` mode is on."""
    return _debugging


def _stack(depth: int) -> traceback.StackSummary:
    """The stack above our caller's ``depth``-th caller, outermost first; source lines read lazily."""
    stack = traceback.StackSummary.extract(
        traceback.walk_stack(sys._getframe(depth + 1)), lookup_lines=False
    )
    stack.reverse()
    return stack


class _DebugInfo:
    """Held by a Deferred whose chain ended with a Failure (logs it if still unhandled at GC), and,
    in debug mode, by every Deferred: where it was created and first fired."""

    __slots__ = ("failure", "creator", "invoker")

    def __init__(
        self, failure: Failure | None, creator: traceback.StackSummary | None = None
    ) -> None:
        self.failure = failure
        self.creator = creator
        self.invoker: traceback.StackSummary | None = None

    def stacks_text(self) -> str:
        """The recorded stacks (innermost call last), or "" outside debug mode."""
        parts = []
        for label, stack in (("created", self.creator), ("first fired", self.invoker)):
            if stack is not None:
                parts.append(f"Deferred {label} at:\n" + "".join(stack.format()))
        return "".join(parts)

    def __del__(self) -> None:
        failure = self.failure
        if failure is None:
            return
        self.failure = None
        try:
            text = failure.tb_text.rstrip("\n")
            stacks = self.stacks_text()
            if stacks:
                text += "\n" + stacks.rstrip("\n")
            _log.error("Unhandled error in Deferred:\n%s", text)
        except Exception:  # interpreter shutdown or a broken __str__: never raise from __del__
            pass


# Marker in a callback tuple: "hand my result to the outer Deferred (args slot) and resume it".
def _CONTINUE(result: Any) -> Any:  # pragma: no cover - never called, compared by identity
    return result


_NOTHING: Any = object()


def _put_back(d: Deferred[Any], cbs: list[tuple[Any, ...]], item: tuple[Any, ...]) -> None:
    """Loop interrupted at ``item``: requeue what followed it, before anything added meanwhile."""
    for i, x in enumerate(cbs):
        if x is item:
            rest = cbs[i + 1 :]
            break
    else:  # pragma: no cover - item always comes from cbs
        rest = []
    newer = d._callbacks
    if newer:
        rest += newer
    d._callbacks = rest or None


def _wait_or_take(current: Deferred[Any], inner: Deferred[Any]) -> Any:
    """A callback of ``current`` returned ``inner``: take its result now, or pause until it fires."""
    if inner is current:
        return Failure(TypeError("a callback returned the Deferred it was added to"))
    if not inner.called or inner.paused or inner._running_callbacks:
        # Pause, and have the inner Deferred resume us (with its result) when it gets there.
        current.paused += 1
        if current._debug_info is not None:
            current._debug_info.failure = None
        marker = (_CONTINUE, current, None, _CONTINUE, current, None)
        inner_cbs = inner._callbacks
        if inner_cbs is None:
            inner._callbacks = [marker]
        else:
            inner_cbs.append(marker)
        return inner  # current.result is the inner Deferred while waiting (cancel() uses it)
    # Already fired: its result continues down our chain; it counts as handled there.
    result = inner.result
    inner.result = None
    if inner._debug_info is not None:
        inner._debug_info.failure = None
    return result


# --------------------------------------------------------------------------------------------------
# Deferred


class Deferred(Generic[_T]):
    """A result that is not there yet, and the chain of callbacks waiting for it.

    Fires once, with :meth:`callback` (success) or :meth:`errback` (a :class:`Failure`). Callbacks
    and errbacks run in the order added; each gets the previous one's return value. A callback that
    raises turns the result into a Failure for the next errback; an errback that returns normally
    turns it back into a success. A callback returning a Deferred pauses this chain until that inner
    Deferred fires, and its result (success or failure) continues down this chain.
    """

    __slots__ = (
        "called",
        "paused",
        "result",
        "_callbacks",
        "_canceller",
        "_suppress_already_called",
        "_running_callbacks",
        "_debug_info",
        "__weakref__",  # WeakSet/WeakValueDictionary of pending calls, weakref.finalize
    )

    called: bool
    paused: int
    result: Any

    def __init__(self, canceller: Callable[[Deferred[Any]], None] | None = None) -> None:
        self.called = False
        self.paused = 0
        self.result = None
        self._callbacks: list[tuple[Any, ...]] | None = None
        self._canceller = canceller
        self._suppress_already_called = False
        self._running_callbacks = False
        self._debug_info: _DebugInfo | None = _DebugInfo(None, _stack(1)) if _debugging else None

    # -- adding callbacks -----------------------------------------------------------------------

    def add_callbacks(
        self,
        callback: Callable[..., Any] | None,
        errback: Callable[..., Any] | None = None,
        callback_args: tuple[Any, ...] = (),
        callback_kwargs: dict[str, Any] | None = None,
        errback_args: tuple[Any, ...] = (),
        errback_kwargs: dict[str, Any] | None = None,
    ) -> Deferred[Any]:
        """Add a callback/errback pair at the same position in the chain; returns self.

        ``None`` for either means "pass that kind of result through unchanged".
        """
        item = (callback, callback_args, callback_kwargs, errback, errback_args, errback_kwargs)
        cbs = self._callbacks
        if cbs is None:
            self._callbacks = [item]
        else:
            cbs.append(item)
        if self.called:
            self._run_callbacks()
        return self

    def add_callback(
        self, callback: Callable[Concatenate[_T, _P], Any], *args: _P.args, **kwargs: _P.kwargs
    ) -> Deferred[Any]:
        """Add ``callback(result, *args, **kwargs)`` for success; failures pass it by."""
        item = (callback, args, kwargs or None, None, (), None)
        cbs = self._callbacks
        if cbs is None:
            self._callbacks = [item]
        else:
            cbs.append(item)
        if self.called:
            self._run_callbacks()
        return self

    def add_errback(
        self, errback: Callable[Concatenate[Failure, _P], Any], *args: _P.args, **kwargs: _P.kwargs
    ) -> Deferred[Any]:
        """Add ``errback(failure, *args, **kwargs)`` for failure; successes pass it by."""
        item = (None, (), None, errback, args, kwargs or None)
        cbs = self._callbacks
        if cbs is None:
            self._callbacks = [item]
        else:
            cbs.append(item)
        if self.called:
            self._run_callbacks()
        return self

    def add_both(
        self, callback: Callable[Concatenate[Any, _P], Any], *args: _P.args, **kwargs: _P.kwargs
    ) -> Deferred[Any]:
        """Add ``callback(result_or_failure, *args, **kwargs)`` for both outcomes."""
        kw = kwargs or None
        item = (callback, args, kw, callback, args, kw)
        cbs = self._callbacks
        if cbs is None:
            self._callbacks = [item]
        else:
            cbs.append(item)
        if self.called:
            self._run_callbacks()
        return self

    def chain_deferred(self, d: Deferred[Any]) -> Deferred[Any]:
        """Fire ``d`` with this Deferred's result (at this point of the chain); returns self."""
        return self.add_callbacks(d.callback, d.errback)

    # -- firing ---------------------------------------------------------------------------------

    def callback(self, result: Any) -> None:
        """Fire with a success result. Raises AlreadyCalledError if already fired."""
        if self.called:
            self._already_called()
            return
        if isinstance(result, Deferred):
            raise TypeError(
                "Deferred.callback() got a Deferred; to wait on it use "
                "inner.chain_deferred(outer), or return it from a callback"
            )
        self.called = True
        self.result = result
        self._canceller = None  # fired: no use for it now, and it often refers back to us
        if _debugging:
            self._record_invoker()
        if self._callbacks is not None:
            self._run_callbacks()

    def errback(self, fail: Failure | BaseException | None = None) -> None:
        """Fire with a failure. No argument: the exception being handled (inside ``except``)."""
        if self.called:
            self._already_called()
            return
        if type(fail) is not Failure:
            fail = Failure(fail)
        self.called = True
        self.result = fail
        self._canceller = None
        if _debugging:
            self._record_invoker()
        self._run_callbacks()

    def _record_invoker(self) -> None:
        info = self._debug_info
        if info is None:
            info = self._debug_info = _DebugInfo(None)
        if info.invoker is None:
            info.invoker = _stack(2)

    def _already_called(self) -> None:
        if self._suppress_already_called:
            # Cancelled earlier; this is the underlying operation's late result. Ignore it once.
            self._suppress_already_called = False
            return
        message = f"{self!r} has already been fired"
        info = self._debug_info
        stacks = "" if info is None else info.stacks_text()
        if stacks:
            message += "\n" + stacks
        elif not _debugging:
            message += " (net.defer.set_debugging(True) records where it was created and fired)"
        raise AlreadyCalledError(message)

    # -- pause / cancel -------------------------------------------------------------------------

    def pause(self) -> None:
        """Stop running callbacks until a matching :meth:`unpause`."""
        self.paused += 1

    def unpause(self) -> None:
        """Undo one :meth:`pause`; run pending callbacks when no pause remains."""
        self.paused -= 1
        if not self.paused and self.called:
            self._run_callbacks()

    def cancel(self) -> None:
        """Cancel the operation this Deferred waits for.

        Not yet fired: call the canceller; if it did not fire the Deferred, errback with
        :class:`CancelledError` and ignore one late ``callback``/``errback``. Fired but waiting on
        an inner Deferred returned by a callback: cancel that one (the innermost, if it is waiting
        too); its CancelledError then comes down this chain. Otherwise: nothing.
        """
        if not self.called:
            canceller = self._canceller
            if canceller is not None:
                canceller(self)
            if not self.called:
                self._suppress_already_called = True
                self.errback(Failure(CancelledError()))
        elif isinstance(self.result, Deferred):
            # Waiting on an inner Deferred (maybe itself waiting...): cancel the innermost one.
            # A loop, not recursion, so a 10,000-deep chain cancels fine.
            inner = self.result
            while inner.called and isinstance(inner.result, Deferred):
                inner = inner.result
            inner.cancel()

    # -- the engine -----------------------------------------------------------------------------

    def _run_callbacks(self) -> None:
        """Run pending callbacks; resume outer Deferreds waiting on this one, iteratively.

        ``chain`` is a stack of Deferreds whose callback loop was suspended at a ``_CONTINUE``
        marker: we switched to the outer Deferred it names, and come back to them when that one
        stops (finishes or pauses again). A Deferred is marked running while its loop is active or
        suspended on the stack, so callbacks added meanwhile are queued, not run re-entrantly.
        The callback list is taken whole and iterated (no ``pop(0)`` per callback); when a loop is
        interrupted by a pause or a switch, the unprocessed rest is put back in front of anything
        added meanwhile.
        """
        if self._running_callbacks:
            return  # a callback added more callbacks; the running loop will pick them up
        chain: list[Deferred[Any]] | None = None
        current: Deferred[Any] = self
        current._running_callbacks = True
        while True:
            switched = False
            while True:
                cbs = current._callbacks
                if not cbs or current.paused:
                    break
                current._callbacks = None
                result = current.result
                for item in cbs:
                    if isinstance(result, Failure):
                        _, _, _, fn, args, kw = item
                    else:
                        fn, args, kw, _, _, _ = item
                    if fn is None:
                        continue
                    if fn is _CONTINUE:
                        # The inner Deferred (current) hands its result to the outer one (args).
                        outer: Deferred[Any] = args
                        outer.result = result
                        current.result = None
                        if current._debug_info is not None:
                            current._debug_info.failure = None
                        outer.paused -= 1
                        _put_back(current, cbs, item)
                        if chain is None:
                            chain = [current]
                        else:
                            chain.append(current)
                        current = outer
                        current._running_callbacks = True
                        switched = True
                        break
                    try:
                        if kw:
                            result = fn(result, *args, **kw)
                        elif args:
                            result = fn(result, *args)
                        else:
                            result = fn(result)
                    except BaseException as e:
                        # Re-raising the incoming failure (e.g. trap()) keeps that Failure as is.
                        if type(result) is not Failure or result.value is not e:
                            result = Failure(e)
                    if isinstance(result, Deferred):
                        result = _wait_or_take(current, result)
                    current.result = result
                    if current.paused:
                        _put_back(current, cbs, item)
                        break
                else:
                    continue  # list done: go round for callbacks added meanwhile
                break
            if switched:
                continue
            current._running_callbacks = False
            if not current.paused:
                result = current.result
                if isinstance(result, Failure):
                    result.clean_failure()
                    info = current._debug_info
                    if info is None:
                        current._debug_info = _DebugInfo(result)
                    else:
                        info.failure = result
                elif current._debug_info is not None:
                    current._debug_info.failure = None
            if not chain:
                return
            current = chain.pop()

    # -- timeouts -------------------------------------------------------------------------------

    def add_timeout(
        self,
        seconds: float,
        reactor: Any,
        on_timeout_cancel: Callable[[Any, float], Any] | None = None,
    ) -> Deferred[_T]:
        """Cancel this Deferred if it has not fired ``seconds`` from now; returns self.

        Uses ``reactor.call_later(seconds, f)`` (anything with that method and a returned object
        with ``cancel()``/``active()``). On timeout the resulting :class:`CancelledError` becomes
        the builtin ``TimeoutError``; or, if given, ``on_timeout_cancel(result, seconds)`` decides
        the result. Firing first cancels the timer. Covers callbacks added before this call.
        """
        timed_out = False

        def time_out() -> None:
            nonlocal timed_out
            timed_out = True
            self.cancel()

        delayed = reactor.call_later(seconds, time_out)

        def convert(result: Any) -> Any:
            if delayed.active():
                delayed.cancel()
            if not timed_out:
                return result
            if on_timeout_cancel is not None:
                return on_timeout_cancel(result, seconds)
            if isinstance(result, Failure) and result.check(CancelledError):
                exc = TimeoutError(f"Deferred timed out after {seconds} seconds")
                exc.__cause__ = result.value
                return Failure(exc)
            return result

        self.add_both(convert)
        return self

    # -- coroutines and asyncio -----------------------------------------------------------------

    def __await__(self) -> Generator[Any, Any, _T]:
        """``await d``: the result, or the failure's exception raised.

        Awaiting consumes a failure (it counts as handled; later callbacks see None) and passes a
        success on unchanged. Already fired: no suspension at all. Otherwise, under
        :func:`ensure_deferred`'s driver, the Deferred itself is yielded to the driver. In an
        asyncio task, a small future-like waiter is yielded to the task instead of a Future: when
        the Deferred fires outside any task (a reactor's read callback, typically) the task is
        resumed right there, with no Future, no ``call_soon`` and no extra turn of the loop.
        (Fired from inside another task, where asyncio refuses to enter a second task, the
        waiter wakes the task with ``call_soon`` as a Future would.) A running loop with no task
        and no driver (someone else's coroutine runner) gets :meth:`as_future`.
        """
        if self.called and not self.paused:
            return self._await_ready()
        loop = _get_running_loop()
        if loop is not None and not _local.driving:
            if _current_task(loop) is not None:
                return self._await_task(loop)
            return self.as_future(loop).__await__()
        return self._await_wait()

    def _await_task(self, loop: asyncio.AbstractEventLoop) -> Generator[Any, Any, _T]:
        waiter = _TaskWaiter(loop, self)
        self.add_both(waiter.on_outcome)
        try:
            yield waiter
        except BaseException:
            if not waiter._state:
                waiter._state = _ABANDONED  # thrown out while waiting: let the result pass by
                waiter._wakeup = None
            raise
        # The task resumes us only once the waiter has the outcome (cancellation is thrown in).
        result = waiter._value
        waiter._value = None
        if isinstance(result, Failure):
            result.raise_exception()
        return result  # type: ignore[no-any-return]

    def _await_ready(self) -> Generator[Any, Any, _T]:
        result = self.result
        if isinstance(result, Failure):
            self._consume_failure()
            result.raise_exception()
        return result  # type: ignore[no-any-return]
        yield  # pragma: no cover - makes this a generator that finishes without yielding

    def _await_wait(self) -> Generator[Any, Any, _T]:
        # Yield ourselves to whoever drives the coroutine (ensure_deferred's driver). It resumes us
        # from inside one of our callbacks, where self.result is the value being passed along, or
        # throws the failure in.
        yield self
        if not self.called or self.paused:
            raise RuntimeError(f"coroutine awaiting {self!r} was resumed before it fired")
        result = self.result
        if isinstance(result, Failure):
            self._consume_failure()
            result.raise_exception()
        return result  # type: ignore[no-any-return]

    def _consume_failure(self) -> None:
        self.result = None
        if self._debug_info is not None:
            self._debug_info.failure = None

    def as_future(self, loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Future[_T]:
        """An asyncio future on ``loop`` (default: the running loop) with this Deferred's result.

        Cancelling the future cancels this Deferred. A :class:`CancelledError` failure cancels the
        future. Successes pass on down this chain; failures are consumed (the future has them).
        """
        if loop is None:
            loop = asyncio.get_running_loop()
        future = loop.create_future()

        def on_future_done(f: asyncio.Future[Any]) -> None:
            if f.cancelled():
                self.cancel()

        future.add_done_callback(on_future_done)

        def on_result(result: Any) -> Any:
            if not future.done():
                future.set_result(result)
            return result

        def on_failure(failure: Failure) -> None:
            if not future.done():
                if failure.check(CancelledError):
                    future.cancel()
                else:
                    exc = failure.value
                    if isinstance(exc, StopIteration):  # a future refuses these; as asyncio does:
                        exc = RuntimeError(f"Deferred failed with {exc!r}")
                        exc.__cause__ = failure.value
                    future.set_exception(exc)
            return None

        self.add_callbacks(on_result, on_failure)
        return future

    @staticmethod
    def from_future(future: Awaitable[_T]) -> Deferred[_T]:
        """A Deferred with an asyncio future's (or task's, or awaitable's) result.

        Cancelling the Deferred cancels the future; a cancelled future fails the Deferred with
        :class:`CancelledError`. A future that is already done fires the Deferred at once.
        """
        fut: asyncio.Future[_T] = asyncio.ensure_future(future)

        def cancel(_d: Deferred[Any]) -> None:
            fut.cancel()

        d: Deferred[_T] = Deferred(cancel)

        def on_done(f: asyncio.Future[Any]) -> None:
            if d.called:  # cancelled meanwhile: this is the late result, drop it
                d._suppress_already_called = False
                return
            if f.cancelled():
                d.errback(Failure(CancelledError()))
                return
            exc = f.exception()
            if exc is not None:
                d.errback(Failure(exc))
            else:
                d.callback(f.result())

        if fut.done():
            on_done(fut)
        else:
            fut.add_done_callback(on_done)
        return d

    from_coroutine: Callable[..., Deferred[Any]]  # set below: = ensure_deferred

    # -- display --------------------------------------------------------------------------------

    def __repr__(self) -> str:
        name = type(self).__name__
        if not self.called:
            state = "pending"
        elif isinstance(self.result, Deferred):
            state = f"waiting on {self.result!r}"
        else:
            state = f"current result: {self.result!r}"
        if self.paused:
            state += " (paused)"
        return f"<{name} at {id(self):#x} {state}>"


# --------------------------------------------------------------------------------------------------
# asyncio tasks awaiting a Deferred

_current_task = asyncio.current_task  # C-level when the _asyncio accelerator is there
_copy_context = contextvars.copy_context

_PENDING, _DONE, _CANCELLED, _ABANDONED = 0, 1, 2, 3


class _TaskWaiter:
    """What ``await deferred`` yields to an asyncio Task: just enough of a Future for the Task.

    A Task needs ``_asyncio_future_blocking``, ``get_loop()``, ``add_done_callback(fn,
    context=)``, ``result()`` (it raises only for cancellation; the awaiting generator reads the
    outcome itself and raises the failure with its own traceback) and ``cancel(msg=)``. Unlike a
    Future, it resumes the task synchronously when that is allowed, saving the loop turn.
    """

    __slots__ = (
        "_asyncio_future_blocking",
        "_loop",
        "_deferred",
        "_state",
        "_value",
        "_wakeup",
        "_context",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, deferred: Deferred[Any]) -> None:
        self._asyncio_future_blocking = True
        self._loop = loop
        self._deferred: Deferred[Any] | None = deferred  # for cancel(); dropped with the outcome
        self._state = _PENDING
        self._value: Any = None
        self._wakeup: Callable[[Any], Any] | None = None
        self._context: contextvars.Context | None = None

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def add_done_callback(
        self, fn: Callable[[Any], Any], *, context: contextvars.Context | None = None
    ) -> None:
        if context is None:
            context = contextvars.copy_context()
        if self._wakeup is not None:
            raise RuntimeError("a Deferred's task waiter has one waiter: the task awaiting it")
        if self._state:
            self._loop.call_soon(fn, self, context=context)
            return
        self._wakeup = fn
        self._context = context

    def remove_done_callback(self, fn: Callable[[Any], Any]) -> int:
        if self._wakeup is not None and self._wakeup == fn:
            self._wakeup = None
            return 1
        return 0

    def done(self) -> bool:
        return self._state != _PENDING

    def cancelled(self) -> bool:
        return self._state == _CANCELLED

    def result(self) -> None:
        if self._state == _CANCELLED:
            raise asyncio.CancelledError()
        return None

    def exception(self) -> BaseException | None:
        if self._state == _CANCELLED:
            raise asyncio.CancelledError()
        return None

    def cancel(self, msg: Any = None) -> bool:
        """Task.cancel(): wake the task with CancelledError now, and cancel the Deferred."""
        if self._state:
            return False
        self._state = _CANCELLED
        fn = self._wakeup
        if fn is not None:
            self._wakeup = None
            self._loop.call_soon(fn, self, context=self._context)
        deferred = self._deferred
        if deferred is not None:
            self._deferred = None
            try:
                deferred.cancel()
            except Exception as e:  # a broken canceller: report it as asyncio would, go on
                self._loop.call_exception_handler(
                    {"message": f"error cancelling {deferred!r}", "exception": e}
                )
        return True

    def __repr__(self) -> str:
        state = ("pending", "done", "cancelled", "abandoned")[self._state]
        return f"<task waiter {state} for {self._deferred!r}>"

    def on_outcome(self, result: Any) -> Any:
        """The Deferred's callback and errback: record the outcome, resume the task."""
        state = self._state
        if state != _PENDING:
            if state == _CANCELLED and isinstance(result, Failure):
                return None  # the task already has its CancelledError: this is the cancel's echo
            return result
        self._deferred = None
        failed = isinstance(result, Failure)
        if failed and result.check(CancelledError):
            self._state = _CANCELLED  # cancelled from elsewhere: the task sees asyncio's kind
        else:
            self._state = _DONE
            self._value = result
        fn = self._wakeup
        if fn is not None:
            self._wakeup = None
            loop = self._loop
            if _get_running_loop() is loop and _current_task(loop) is None:
                try:
                    self._context.run(fn, self)  # type: ignore[union-attr]
                except (SystemExit, KeyboardInterrupt) as e:
                    # The Deferred's chain would turn these into a Failure: let the loop raise.
                    loop.call_soon(_reraise, e)
            else:
                loop.call_soon(fn, self, context=self._context)
        return None if failed else result


def _reraise(exc: BaseException) -> NoReturn:
    raise exc


# --------------------------------------------------------------------------------------------------
# Coroutine driver


class _Local(threading.local):
    driving = False  # True while ensure_deferred's driver is inside coro.send/throw (this thread)


_local = _Local()


class _CoroutineDeferred(Deferred[_T]):
    """The Deferred returned by :func:`ensure_deferred`; it also drives the coroutine.

    One object per coroutine (no separate driver, canceller closure or reference cycle). The step
    loop runs the coroutine until it waits on something unfired; a Deferred that fires while we add
    our callbacks to it is handled by going round the loop, not by recursing.

    Every step runs in the coroutine's own context, a copy of its creator's (as an asyncio Task
    does): what the coroutine sets in a ContextVar stays in it, and what the code that fires an
    awaited Deferred has set does not reach it.
    """

    __slots__ = ("_coro", "_waiting", "_adding", "_sync", "_context")

    # inline_callbacks: a yielded value that is not a Deferred is sent straight back (Twisted's
    # rule), instead of being an error (or an asyncio future to wait for).
    _send_back_others = False

    def __init__(self, coro: Any) -> None:
        # Deferred.__init__, inlined: this is on the hot path of every ensure_deferred().
        self.called = False
        self.paused = 0
        self.result = None
        self._callbacks = None
        self._canceller = None
        self._suppress_already_called = False
        self._running_callbacks = False
        self._debug_info = _DebugInfo(None, _stack(2)) if _debugging else None
        self._coro = coro
        self._waiting: Deferred[Any] | None = None
        self._adding = False
        self._sync: Any = _NOTHING
        self._context = _copy_context()

    def cancel(self) -> None:
        """Cancel what the coroutine is awaiting (it sees CancelledError there), then as usual."""
        if not self.called:
            waiting = self._waiting
            if waiting is not None:
                waiting.cancel()
        Deferred.cancel(self)

    def _on_result(self, result: Any) -> Any:
        if self._adding:
            self._sync = (result, None)
        else:
            self._waiting = None
            self._step(result, None)
        return result

    def _on_failure(self, failure: Failure) -> None:
        if self._adding:
            self._sync = (None, failure.value)
        else:
            self._waiting = None
            self._step(None, failure.value)
        return None  # the coroutine got it: handled

    def _step(self, value: Any, exc: BaseException | None) -> None:
        coro = self._coro
        run = self._context.run
        send = coro.send
        while True:
            # The "driven" flag only matters to Deferred.__await__ when a loop is running; without
            # one, awaiting an unfired Deferred yields it to us anyway. Skip the thread-local then.
            local = None if _get_running_loop() is None else _local
            prev = False
            if local is not None:
                prev = local.driving
                local.driving = True
            try:
                if exc is None:
                    yielded = run(send, value)
                else:
                    yielded = run(coro.throw, exc)
            except StopIteration as e:
                if local is not None:
                    local.driving = prev
                self._coro = None
                result = e.value
                if isinstance(result, Deferred):
                    result.chain_deferred(self)
                else:
                    self.callback(result)
                return
            except BaseException as e:
                if local is not None:
                    local.driving = prev
                self._coro = None
                self.errback(Failure(e))
                return
            if local is not None:
                local.driving = prev
            exc = None
            if isinstance(yielded, Deferred):
                waiting = yielded
            elif yielded is None:
                value = None  # bare yield (asyncio.sleep(0)): just go on
                continue
            elif self._send_back_others:
                value = yielded
                continue
            elif getattr(yielded, "_asyncio_future_blocking", None) is not None:
                yielded._asyncio_future_blocking = False
                waiting = Deferred.from_future(yielded)
            else:
                value = None
                exc = RuntimeError(
                    f"a coroutine run by ensure_deferred() yielded {yielded!r}; "
                    "it can await Deferreds and asyncio futures"
                )
                continue
            self._waiting = waiting
            self._adding = True
            waiting.add_callbacks(self._on_result, self._on_failure)
            self._adding = False
            sync = self._sync
            if sync is _NOTHING:
                return  # resumed later, from the waited-on Deferred's callback
            self._sync = _NOTHING
            self._waiting = None
            value, exc = sync


@overload
def ensure_deferred(coro: Deferred[_T]) -> Deferred[_T]: ...
@overload
def ensure_deferred(coro: Coroutine[Any, Any, _T]) -> Deferred[_T]: ...
@overload
def ensure_deferred(coro: Awaitable[_T]) -> Deferred[_T]: ...
def ensure_deferred(coro: Any) -> Deferred[Any]:
    """Run a coroutine, returning a Deferred of its result. A Deferred is returned unchanged.

    The coroutine runs at once, up to its first await of something that has not fired. It may
    await Deferreds, and asyncio futures/tasks (those need a running loop to complete). Cancelling
    the returned Deferred cancels the Deferred the coroutine is waiting on, so the coroutine sees
    :class:`CancelledError` raised at that ``await``; if it catches it and goes on, the returned
    Deferred has already failed with CancelledError and the coroutine's eventual result is dropped.
    """
    if isinstance(coro, Deferred):
        return coro
    if not isinstance(coro, (CoroutineType, GeneratorType)):
        if getattr(coro, "_asyncio_future_blocking", None) is not None:
            return Deferred.from_future(coro)
        await_ = getattr(type(coro), "__await__", None)
        if await_ is None:
            raise TypeError(f"ensure_deferred() needs a coroutine or awaitable, not {coro!r}")
        coro = await_(coro)
    d: _CoroutineDeferred[Any] = _CoroutineDeferred(coro)
    d._step(None, None)
    return d


Deferred.from_coroutine = staticmethod(ensure_deferred)


# --------------------------------------------------------------------------------------------------
# Helpers


def succeed(value: _T) -> Deferred[_T]:
    """A Deferred that has already fired with ``value``."""
    d: Deferred[_T] = Deferred()
    d.called = True
    d.result = value
    if _debugging:
        d._record_invoker()
    return d


def fail(exc_or_failure: BaseException | Failure | None = None) -> Deferred[Any]:
    """A Deferred that has already failed (no argument: with the exception being handled)."""
    d: Deferred[Any] = Deferred()
    d.errback(exc_or_failure)
    return d


def maybe_deferred(f: Callable[_P, Any], *args: _P.args, **kwargs: _P.kwargs) -> Deferred[Any]:
    """Call ``f`` and always get a Deferred back.

    A returned Deferred is passed through; a coroutine is run with :func:`ensure_deferred`; an
    asyncio future is wrapped with :meth:`Deferred.from_future`; a Failure or a raised exception
    gives a failed Deferred; any other value a fired one.
    """
    try:
        result = f(*args, **kwargs)
    except BaseException as e:
        return fail(Failure(e))
    if isinstance(result, Deferred):
        return result
    if isinstance(result, CoroutineType):
        return ensure_deferred(result)
    if isinstance(result, Failure):
        return fail(result)
    if getattr(result, "_asyncio_future_blocking", None) is not None:
        return Deferred.from_future(result)
    d: Deferred[Any] = Deferred()
    d.called = True
    d.result = result
    return d


def gather(*deferreds: Deferred[Any], consume_errors: bool = False) -> Deferred[list[Any]]:
    """A Deferred of the list of all results, in argument order.

    Fails with the first member failure itself (the same :class:`Failure`, not a wrapper) as soon
    as it happens. With ``consume_errors=True`` every member's failure is handled here, so none is
    logged as unhandled; otherwise members keep their failures (and log them if nobody else
    handles them). Cancelling the gathered Deferred cancels every member (their resulting
    CancelledErrors are then always consumed). Members' successes pass on down their chains.
    """
    count = len(deferreds)
    results: list[Any] = [None] * count
    remaining = count
    cancelling = False

    def cancel_all(_d: Deferred[Any]) -> None:
        nonlocal cancelling
        cancelling = True
        for member in deferreds:
            member.cancel()

    out: Deferred[list[Any]] = Deferred(cancel_all)
    if not count:
        out.callback(results)
        return out

    def on_result(result: Any, index: int) -> Any:
        nonlocal remaining
        results[index] = result
        remaining -= 1
        if not remaining and not out.called:
            out.callback(results)
        return result

    def on_failure(failure: Failure, index: int) -> Failure | None:
        if not out.called:
            out.errback(failure)
        if consume_errors or (cancelling and failure.check(CancelledError)):
            return None
        return failure

    for i, member in enumerate(deferreds):
        member.add_callbacks(on_result, on_failure, (i,), None, (i,), None)
    return out


# --------------------------------------------------------------------------------------------------
# Twisted's combinators: DeferredList, race


class FirstError(Exception):
    """:class:`DeferredList` with ``fire_on_one_errback``: member ``index`` failed with
    ``sub_failure`` (kept whole, so its type and traceback are still there)."""

    def __init__(self, failure: Failure, index: int) -> None:
        super().__init__(failure, index)
        self.sub_failure = failure
        self.index = index

    def __repr__(self) -> str:
        return f"FirstError[#{self.index}, {self.sub_failure!r}]"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FirstError):
            return (self.sub_failure, self.index) == (other.sub_failure, other.index)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((id(self.sub_failure), self.index))


class DeferredList(Deferred[Any]):
    """Twisted's DeferredList: fires with ``[(success, result_or_failure), ...]`` in argument order.

    For code migrating from Twisted; new code usually wants :func:`gather` (plain results, first
    failure raised) or :func:`race`. ``fire_on_one_callback``: fire with ``(result, index)`` at the
    first success. ``fire_on_one_errback``: fail with :class:`FirstError` at the first failure.
    ``consume_errors``: members' failures stop here (not logged as unhandled); otherwise they go
    on down the members' chains. Cancelling the list cancels every member not yet fired.
    ``result_list`` holds the pairs collected so far (``None`` for members still pending).
    """

    __slots__ = ("result_list", "_deferreds", "_remaining", "_one_cb", "_one_eb", "_consume")

    def __init__(
        self,
        deferreds: "list[Deferred[Any]] | tuple[Deferred[Any], ...]",
        fire_on_one_callback: bool = False,
        fire_on_one_errback: bool = False,
        consume_errors: bool = False,
    ) -> None:
        Deferred.__init__(self, _cancel_deferred_list)
        members = list(deferreds)
        self._deferreds: list[Deferred[Any]] | None = members
        self.result_list: list[tuple[bool, Any] | None] = [None] * len(members)
        self._remaining = len(members)
        self._one_cb = fire_on_one_callback
        self._one_eb = fire_on_one_errback
        self._consume = consume_errors
        if not members and not fire_on_one_callback:
            self.callback(self.result_list)
            return
        for index, member in enumerate(members):
            member.add_callbacks(
                self._member_fired, self._member_fired, (index, True), None, (index, False), None
            )

    def _member_fired(self, result: Any, index: int, succeeded: bool) -> Any:
        self.result_list[index] = (succeeded, result)
        self._remaining -= 1
        if not self.called:
            if succeeded and self._one_cb:
                self.callback((result, index))
            elif not succeeded and self._one_eb:
                self.errback(Failure(FirstError(result, index)))
            elif not self._remaining:
                self.callback(self.result_list)
        if self.called:
            self._deferreds = None  # nothing left to cancel: no need to keep the members
        if not succeeded and self._consume:
            return None
        return result



def _cancel_deferred_list(d: Deferred[Any]) -> None:
    # A plain function, not a bound method: the canceller then holds no reference to the list.
    assert isinstance(d, DeferredList)
    for member in d._deferreds or ():
        if not member.called:
            member.cancel()


def race(*deferreds: Deferred[_T]) -> Deferred[tuple[int, _T]]:
    """A Deferred of ``(index, result)`` for the first member to succeed; the rest are cancelled.

    Losers' results and failures (their CancelledErrors included) are consumed here. If every
    member fails, fails with a ``BaseExceptionGroup`` (an ``ExceptionGroup`` for ordinary
    exceptions) of all their exceptions, in argument order, so ``except*`` picks them apart.
    Cancelling the race cancels every member and fails it with :class:`CancelledError`. At least
    one member is needed: a race of none could never fire.
    """
    if not deferreds:
        raise ValueError("race() needs at least one Deferred")
    count = len(deferreds)
    failures: list[Failure | None] = [None] * count
    failed = 0
    winner = False
    cancelling = False

    def cancel_all(_d: Deferred[Any]) -> None:
        nonlocal cancelling
        cancelling = True
        for member in deferreds:
            member.cancel()

    out: Deferred[tuple[int, _T]] = Deferred(cancel_all)

    def on_result(result: Any, index: int) -> None:
        nonlocal winner
        if winner or out.called:
            return None
        winner = True
        for i, member in enumerate(deferreds):
            if i != index:
                member.cancel()
        out.callback((index, result))
        return None

    def on_failure(failure: Failure, index: int) -> None:
        nonlocal failed
        failures[index] = failure
        failed += 1
        if failed == count and not winner and not out.called and not cancelling:
            exc = BaseExceptionGroup(
                "every Deferred in the race failed",
                [f.value for f in failures if f is not None],
            )
            out.errback(Failure(exc))
        return None

    for i, member in enumerate(deferreds):
        member.add_callbacks(on_result, on_failure, (i,), None, (i,), None)
    return out


# --------------------------------------------------------------------------------------------------
# Locks, semaphores, queues (each waiter is a Deferred, so they work from callbacks and coroutines)


class _ConcurrencyPrimitive:
    """What DeferredLock and DeferredSemaphore share: a FIFO of waiting Deferreds, ``run``, and
    ``async with``."""

    def __init__(self) -> None:
        self.waiting: deque[Deferred[Any]] = deque()

    def _cancel_acquire(self, d: Deferred[Any]) -> None:
        # A waiter cancelled before its turn leaves the queue (then fails with CancelledError).
        try:
            self.waiting.remove(d)
        except ValueError:  # pragma: no cover - not waiting any more
            pass

    def acquire(self) -> Deferred[Any]:  # pragma: no cover - overridden
        raise NotImplementedError

    def release(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def run(self, f: Callable[_P, Any], *args: _P.args, **kwargs: _P.kwargs) -> Deferred[Any]:
        """Acquire, call ``f(*args, **kwargs)`` (its Deferred or coroutine is waited for), release.

        The returned Deferred has ``f``'s result or failure; the release happens whatever it is.
        """

        def with_acquired(_: Any) -> Deferred[Any]:
            d = maybe_deferred(f, *args, **kwargs)

            def release(result: Any) -> Any:
                self.release()
                return result

            return d.add_both(release)

        return self.acquire().add_callback(with_acquired)

    async def __aenter__(self) -> Self:
        await self.acquire()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class DeferredLock(_ConcurrencyPrimitive):
    """A lock for callback-style code: ``acquire()`` gives a Deferred that fires when it is ours.

    Waiters get it in the order they asked. Cancelling a waiting acquire gives up its place.
    ``async with lock:`` works in coroutines run by :func:`ensure_deferred` or asyncio tasks.
    """

    def __init__(self) -> None:
        super().__init__()
        self.locked = False

    def acquire(self) -> Deferred[DeferredLock]:
        """A Deferred firing with this lock once it is held (at once, if it is free)."""
        d: Deferred[DeferredLock] = Deferred(self._cancel_acquire)
        if self.locked:
            self.waiting.append(d)
        else:
            self.locked = True
            d.callback(self)
        return d

    def release(self) -> None:
        """Give the lock to the next waiter, or free it. Must be held."""
        if not self.locked:
            raise RuntimeError("DeferredLock.release() of a lock that is not held")
        if self.waiting:
            self.waiting.popleft().callback(self)
        else:
            self.locked = False


class DeferredSemaphore(_ConcurrencyPrimitive):
    """At most ``tokens`` holders at a time; ``acquire()`` gives a Deferred firing when in.

    ``run(f, ...)`` is the usual use: limit how many of some operation run at once. Waiters get in
    in the order they asked; cancelling a waiting acquire gives up its place.
    """

    def __init__(self, tokens: int) -> None:
        if tokens < 1:
            raise ValueError(f"DeferredSemaphore needs at least one token, not {tokens}")
        super().__init__()
        self.tokens = tokens
        self.limit = tokens

    def acquire(self) -> Deferred[DeferredSemaphore]:
        """A Deferred firing with this semaphore once a token is ours."""
        d: Deferred[DeferredSemaphore] = Deferred(self._cancel_acquire)
        if self.tokens:
            self.tokens -= 1
            d.callback(self)
        else:
            self.waiting.append(d)
        return d

    def release(self) -> None:
        """Return a token: the next waiter gets it, else it is free again."""
        if self.tokens >= self.limit:
            raise RuntimeError("DeferredSemaphore.release() without a matching acquire()")
        if self.waiting:
            self.waiting.popleft().callback(self)
        else:
            self.tokens += 1


class QueueOverflow(Exception):
    """:meth:`DeferredQueue.put` on a queue holding ``size`` items already."""


class QueueUnderflow(Exception):
    """:meth:`DeferredQueue.get` with ``backlog`` gets already waiting."""


class DeferredQueue(Generic[_T]):
    """A FIFO whose ``get()`` is a Deferred: fires at once with the oldest item, or when one comes.

    ``size`` bounds the items held (``put`` raises :class:`QueueOverflow` beyond it) and
    ``backlog`` the gets waiting (``get`` raises :class:`QueueUnderflow`); ``None`` means no
    bound. Limits raise instead of blocking because ``put`` is called from callbacks, which cannot
    wait. Cancelling a waiting ``get`` removes it from the backlog.
    """

    def __init__(self, size: int | None = None, backlog: int | None = None) -> None:
        self.size = size
        self.backlog = backlog
        self.pending: deque[_T] = deque()
        self.waiting: deque[Deferred[_T]] = deque()

    def put(self, obj: _T) -> None:
        """Hand ``obj`` to the oldest waiting get, or keep it."""
        if self.waiting:
            self.waiting.popleft().callback(obj)
        elif self.size is None or len(self.pending) < self.size:
            self.pending.append(obj)
        else:
            raise QueueOverflow(f"DeferredQueue is full ({self.size} items)")

    def get(self) -> Deferred[_T]:
        """A Deferred of the next item."""
        if self.pending:
            return succeed(self.pending.popleft())
        if self.backlog is not None and len(self.waiting) >= self.backlog:
            raise QueueUnderflow(f"DeferredQueue already has {self.backlog} gets waiting")
        d: Deferred[_T] = Deferred(self._cancel_get)
        self.waiting.append(d)
        return d

    def _cancel_get(self, d: Deferred[Any]) -> None:
        try:
            self.waiting.remove(d)
        except ValueError:  # pragma: no cover
            pass


# --------------------------------------------------------------------------------------------------
# inline_callbacks


class _InlineDeferred(_CoroutineDeferred[_T]):
    """:func:`inline_callbacks`' Deferred: the coroutine driver, with Twisted's yield rule."""

    __slots__ = ()
    _send_back_others = True


def inline_callbacks(
    f: Callable[_P, Generator[Any, Any, _T]],
) -> Callable[_P, Deferred[_T]]:
    """Decorator for Twisted-style generator code: ``x = yield d`` waits for Deferred ``d``.

    For migrating ``@inlineCallbacks`` code without rewriting it as ``async def`` (which is the
    better form: :func:`ensure_deferred`). A plain ``return value`` gives the result (Python 3
    needs no ``returnValue``). Yielding anything else than a Deferred sends it straight back, as
    in Twisted. Same driver as :func:`ensure_deferred`: runs at once up to the first wait, in a
    copy of the caller's context, iteratively (no recursion on already-fired Deferreds), and
    cancelling the result cancels the Deferred the generator is waiting on.
    """

    @functools.wraps(f)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> Deferred[_T]:
        gen = f(*args, **kwargs)
        if not isinstance(gen, GeneratorType):
            raise TypeError(
                f"inline_callbacks needs a generator function; {f!r} returned {gen!r}"
            )
        d: _InlineDeferred[_T] = _InlineDeferred(gen)
        d._step(None, None)
        return d

    return wrapper
