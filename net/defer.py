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
  the driver. Inside a native asyncio task, ``await deferred`` instead awaits
  :meth:`Deferred.as_future` on the running loop. A thread-local flag, set only while the
  ``ensure_deferred`` driver is inside ``coro.send``/``coro.throw`` (and only when a loop is
  running: without one there is no asyncio task to confuse), tells the two apart. (A thread-local,
  not a ``ContextVar``: tasks created inside a driven coroutine copy its context and would inherit
  the flag.)

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
import builtins
import logging
import sys
import threading
import traceback
from types import CoroutineType, GeneratorType
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
    TypeVar,
    overload,
)

__all__ = [
    "AlreadyCalledError",
    "CancelledError",
    "Deferred",
    "Failure",
    "TimeoutError",
    "ensure_deferred",
    "fail",
    "gather",
    "maybe_deferred",
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
# Failure


class Failure:
    """An exception together with its traceback, as a value that can travel down a callback chain.

    ``Failure()`` inside an ``except`` block captures the exception being handled;
    ``Failure(exc)`` wraps ``exc`` (using ``exc.__traceback__`` unless ``tb`` is given);
    ``Failure(failure)`` makes an equivalent copy.

    The traceback object is kept only until :meth:`clean_failure` (called when a Deferred's chain
    ends with this failure); after that a frame-free summary remains, so ``tb_text`` still works
    while the frames (and their locals) can be freed. ``tb_text`` is formatted on first use.
    """

    __slots__ = ("type", "value", "tb", "_frames", "_tb_text")

    type: builtins.type[BaseException]
    value: BaseException
    tb: Any
    _frames: list[tuple[str, int, str]] | None  # (file, line, function), kept by clean_failure
    _tb_text: str | None

    def __init__(
        self,
        exc: BaseException | builtins.type[BaseException] | Failure | None = None,
        tb: Any = None,
    ) -> None:
        if exc is None:
            exc = sys.exc_info()[1]
            if exc is None:
                raise TypeError(
                    "Failure() with no argument must be called inside an 'except' block; "
                    "outside one, pass the exception: Failure(exc)"
                )
        elif isinstance(exc, Failure):
            self.type = exc.type
            self.value = exc.value
            self.tb = exc.tb if tb is None else tb
            self._frames = exc._frames
            self._tb_text = exc._tb_text
            return
        elif not isinstance(exc, BaseException):
            if isinstance(exc, type) and issubclass(exc, BaseException):
                exc = exc()
            else:
                raise TypeError(f"Failure() needs an exception or a Failure, not {exc!r}")
        self.type = type(exc)
        self.value = exc
        self.tb = exc.__traceback__ if tb is None else tb
        self._frames = None
        self._tb_text = None

    def check(
        self, *types: builtins.type[BaseException]
    ) -> builtins.type[BaseException] | None:
        """Return the first of ``types`` this failure's exception is an instance of, else None."""
        for t in types:
            if issubclass(self.type, t):
                return t
        return None

    def trap(self, *types: builtins.type[BaseException]) -> builtins.type[BaseException]:
        """Like :meth:`check`, but re-raise this failure's exception when nothing matches.

        Meant for errbacks: ``f.trap(KeyError)`` handles KeyError and lets anything else carry on
        down the chain (the re-raised exception becomes this same Failure again).
        """
        t = self.check(*types)
        if t is None:
            self.raise_exception()
        return t

    def raise_exception(self) -> NoReturn:
        """Raise the wrapped exception, with its original traceback while that is still held."""
        raise self.value.with_traceback(self.tb)

    def get_error_message(self) -> str:
        """``str()`` of the exception (its ``repr`` if ``str`` fails or is empty)."""
        try:
            text = str(self.value)
        except Exception:
            text = ""
        return text or repr(self.value)

    def get_traceback(self) -> str:
        """The formatted traceback, ending with the ``Type: message`` line."""
        return self.tb_text

    @property
    def tb_text(self) -> str:
        text = self._tb_text
        if text is None:
            if self._frames is None:
                text = "".join(traceback.format_exception(self.type, self.value, self.tb))
            else:
                text = self._format_from_frames(self._frames)
            self._tb_text = text
        return text

    def _format_from_frames(self, frames: list[tuple[str, int, str]]) -> str:
        # Like traceback.format_exception, from the frame list clean_failure kept; the chained
        # exceptions (__cause__/__context__) still have their own tracebacks.
        value = self.value
        parts: list[str] = []
        cause = value.__cause__
        context = value.__context__
        if cause is not None:
            parts += traceback.format_exception(cause)
            parts.append(
                "\nThe above exception was the direct cause of the following exception:\n\n"
            )
        elif context is not None and not value.__suppress_context__:
            parts += traceback.format_exception(context)
            parts.append(
                "\nDuring handling of the above exception, another exception occurred:\n\n"
            )
        if frames:
            parts.append("Traceback (most recent call last):\n")
            parts += traceback.StackSummary.from_list(
                [(file, line, name, None) for file, line, name in frames]
            ).format()
        parts += traceback.format_exception_only(self.type, value)
        return "".join(parts)

    def clean_failure(self) -> None:
        """Drop the frames: keep (file, line, function) per frame for ``tb_text``, release the rest.

        Also clears ``value.__traceback__`` (as Twisted does), so a failure kept for a long time
        does not keep every local variable of the failing call stack alive. Costs a walk over the
        traceback (no formatting, no file access); the text is made only if someone asks.
        """
        tb = self.tb
        if tb is not None:
            if self._tb_text is None and self._frames is None:
                frames = []
                while tb is not None:
                    code = tb.tb_frame.f_code
                    frames.append((code.co_filename, tb.tb_lineno, code.co_name))
                    tb = tb.tb_next
                self._frames = frames
            self.tb = None
        if self.value.__traceback__ is not None:
            self.value.__traceback__ = None

    def __repr__(self) -> str:
        return f"<Failure {self.type.__qualname__}: {self.get_error_message()}>"

    __str__ = __repr__


class _DebugInfo:
    """Held by a Deferred whose chain ended with a Failure; logs it if still unhandled at GC."""

    __slots__ = ("failure",)

    def __init__(self, failure: Failure | None) -> None:
        self.failure = failure

    def __del__(self) -> None:
        failure = self.failure
        if failure is None:
            return
        self.failure = None
        try:
            _log.error("Unhandled error in Deferred:\n%s", failure.tb_text.rstrip("\n"))
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
        self._debug_info: _DebugInfo | None = None

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
        self._run_callbacks()

    def _already_called(self) -> None:
        if self._suppress_already_called:
            # Cancelled earlier; this is the underlying operation's late result. Ignore it once.
            self._suppress_already_called = False
            return
        raise AlreadyCalledError(f"{self!r} has already been fired")

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
        :func:`ensure_deferred`'s driver, the Deferred itself is yielded to the driver; in a native
        asyncio task (a running loop, no driver), :meth:`as_future` on that loop is awaited.
        """
        if self.called and not self.paused:
            return self._await_ready()
        loop = _get_running_loop()
        if loop is not None and not _local.driving:
            return self.as_future(loop).__await__()
        return self._await_wait()

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
# Coroutine driver


class _Local(threading.local):
    driving = False  # True while ensure_deferred's driver is inside coro.send/throw (this thread)


_local = _Local()


class _CoroutineDeferred(Deferred[_T]):
    """The Deferred returned by :func:`ensure_deferred`; it also drives the coroutine.

    One object per coroutine (no separate driver, canceller closure or reference cycle). The step
    loop runs the coroutine until it waits on something unfired; a Deferred that fires while we add
    our callbacks to it is handled by going round the loop, not by recursing.
    """

    __slots__ = ("_coro", "_waiting", "_adding", "_sync")

    def __init__(self, coro: Any) -> None:
        # Deferred.__init__, inlined: this is on the hot path of every ensure_deferred().
        self.called = False
        self.paused = 0
        self.result = None
        self._callbacks = None
        self._canceller = None
        self._suppress_already_called = False
        self._running_callbacks = False
        self._debug_info = None
        self._coro = coro
        self._waiting: Deferred[Any] | None = None
        self._adding = False
        self._sync: Any = _NOTHING

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
                    yielded = coro.send(value)
                else:
                    yielded = coro.throw(exc)
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
