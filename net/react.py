"""``react(main)``: run one program on a fresh reactor and exit with its outcome.

In the manner of ``twisted.internet.task.react``::

    import net

    async def main(reactor, endpoint="tcp:127.0.0.1:8800"):
        ...                                  # await Deferreds; return when done

    if __name__ == "__main__":
        net.react(main)                      # main(reactor, *sys.argv[1:])

What it does, in order:

1. makes a new reactor with :func:`net.reactor.make_reactor` (so ``PBROKER_REACTOR`` picks the
   backend);
2. calls ``main(reactor, *argv)`` *before* the reactor runs, as Twisted does. ``argv`` defaults to
   ``sys.argv[1:]``, so a script's command-line arguments become ``main``'s parameters; pass
   ``argv=()`` for a ``main(reactor)`` that takes none. ``main`` may be a coroutine function (its
   coroutine is driven with :func:`net.defer.ensure_deferred`), return a Deferred, or return any
   other value (done at once); if it raises, that is a failure like any other;
3. runs the reactor, and stops it once that result is known — even if it was known before the
   reactor ran: the stop is scheduled with ``call_when_running``, never called too early;
4. closes the reactor and raises :class:`SystemExit` (callers and tests may catch it) with:

   * ``0`` when ``main``'s result was a success (whatever the value);
   * ``1`` when it was a failure; the traceback is printed on stderr first. A failure that is
     itself a ``SystemExit`` exits with its code instead (``sys.exit(2)`` or an argparse error
     inside ``main`` behave as in a plain script), without a traceback;
   * ``130`` (128 + SIGINT, what a shell reports) when Ctrl-C / SIGINT stopped the reactor before
     the result was known, or ``main`` raised ``KeyboardInterrupt`` before the reactor ran;
   * ``0`` when SIGTERM stopped it: SIGTERM is the polite "please stop" of service managers and
     test harnesses, and the reactor's shutdown triggers have run, so it is a clean exit;
   * ``0`` when something else called ``reactor.stop()`` before the result was known.

   When the reactor stops before the result is known, the pending Deferred is cancelled from a
   ``before shutdown`` trigger (a coroutine sees ``CancelledError`` at its ``await``, so its
   ``finally`` blocks run) and whatever it then fires with is ignored.

``net.react`` is this function (``import net; net.react(main)``); the module's other names come
``from net.react import ...``.

Signals: ``run()`` makes SIGINT and SIGTERM stop the reactor cleanly (see
:meth:`net._reactorbase.ReactorBase.run`); once the reactor runs, ``react`` wraps those handlers
only to remember which signal it was. ``react`` does not configure :mod:`logging`; a program should
(``logging.basicConfig(level=logging.INFO, format=...)``) so the reactor's warnings are seen.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

from .defer import Deferred, Failure, maybe_deferred
from .error import ReactorNotRunning

if TYPE_CHECKING:
    from ._reactorbase import ReactorBase
    from .contracts import ReactorCore

__all__ = ["react", "EXIT_SIGINT", "EXIT_SIGTERM"]

#: The exit code after SIGINT (Ctrl-C) stopped the program: 128 + 2, as a shell reports it.
EXIT_SIGINT = 130
#: The exit code after SIGTERM stopped the program: a clean, requested stop.
EXIT_SIGTERM = 0

_SIGNAL_CODES = {signal.SIGINT: EXIT_SIGINT}
if hasattr(signal, "SIGTERM"):
    _SIGNAL_CODES[signal.SIGTERM] = EXIT_SIGTERM


def react(
    main: Callable[..., Any],
    argv: Sequence[Any] | None = None,
    *,
    reactor: ReactorBase | None = None,
) -> NoReturn:
    """Run ``main(reactor, *argv)`` on a new reactor until its result is known; exit with it.

    See the module docstring for the exit codes. ``argv`` defaults to ``sys.argv[1:]``.
    ``reactor`` (for tests and embedding) uses that reactor instead of a new one; it must not be
    running, and is left open (a reactor ``react`` made itself is closed).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    owned = reactor is None
    if reactor is None:
        from .reactor import make_reactor

        reactor = make_reactor()
    try:
        code = _run(reactor, main, args)
    except KeyboardInterrupt:  # Ctrl-C in the moment between main() and run() installing handlers
        code = EXIT_SIGINT
    finally:
        if owned:
            reactor.close()
    raise SystemExit(code)


def _run(reactor: ReactorCore, main: Callable[..., Any], args: list[Any]) -> int | str | None:
    outcome: list[Any] = []  # main's result or Failure, if it came before the shutdown began
    signals: list[int] = []  # the shutdown signals received while running, in order
    verdict: list[Any] = []  # what the shutdown found: ("result", x) | ("signal", n) | ("stopped",)

    def stop() -> None:
        try:
            reactor.stop()
        except ReactorNotRunning:  # already stopping (a signal, or main stopped it itself)
            pass

    def finished(result: Any) -> None:
        if verdict:  # the reactor was already shutting down: too late to count
            return None
        outcome.append(result)
        reactor.call_when_running(stop)  # before run(): waits for startup; otherwise stops now
        return None  # the failure (if any) is handled: we report it

    def shutting_down() -> None:
        if outcome:
            verdict.append(("result", outcome[0]))
            return
        verdict.append(("signal", signals[0]) if signals else ("stopped",))
        try:
            done.cancel()  # let main clean up; whatever it fires with now is ignored
        except Exception:  # a canceller that raises must not spoil the exit
            pass

    def remember_signals() -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in _SIGNAL_CODES:
            previous = signal.getsignal(sig)
            if not callable(previous):  # run() did not install its handler: nothing to wrap
                continue
            signal.signal(sig, _recorder(signals, previous))
        # run() restores the handlers it saved when it returns, so these go away with it.

    def replay_early_signals() -> None:
        if early:
            signals.extend(early)
            stop()

    # main() runs before run() installs the reactor's handlers, and a server's main typically
    # prints "listening" then: a SIGTERM sent on reading that line must still stop it cleanly.
    # Until run() takes over, a shutdown signal is only noted, and acted on once it runs.
    early: list[int] = []
    saved = _note_signals(early)
    try:
        reactor.add_system_event_trigger("before", "shutdown", shutting_down)
        reactor.call_when_running(remember_signals)
        reactor.call_when_running(replay_early_signals)
        done: Deferred[Any] = maybe_deferred(main, reactor, *args)
        done.add_both(finished)
        reactor.run()
    finally:
        for sig, previous in saved.items():
            signal.signal(sig, previous)

    if not verdict:  # run() returned without a shutdown event: cannot happen, but don't lie
        verdict.append(("result", outcome[0]) if outcome else ("stopped",))
    kind, *rest = verdict[0]
    if kind == "signal":
        return _SIGNAL_CODES.get(rest[0], 1)
    if kind == "stopped":
        return 0
    return _exit_code(rest[0])


def _note_signals(early: list[int]) -> dict[int, Any]:
    """Make SIGINT/SIGTERM append to ``early`` (main thread only); the handlers they replace."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    saved: dict[int, Any] = {}
    for sig in _SIGNAL_CODES:
        saved[sig] = signal.signal(sig, lambda signum, _frame: early.append(signum))
    return saved


def _recorder(signals: list[int], previous: Callable[[int, FrameType | None], Any]) -> Any:
    def handler(signum: int, frame: FrameType | None) -> None:
        signals.append(signum)
        previous(signum, frame)

    return handler


def _exit_code(result: Any) -> int | str | None:
    if not isinstance(result, Failure):
        return 0
    if isinstance(result.value, SystemExit):
        code: int | str | None = result.value.code
        return code
    if result.check(KeyboardInterrupt):
        return EXIT_SIGINT
    sys.stdout.flush()
    print(result.get_traceback(), end="", file=sys.stderr, flush=True)
    return 1
