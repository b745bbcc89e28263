"""Failure: an exception and its traceback as a value (what travels down a Deferred's errbacks).

Lives in its own module so code that only reports errors (the broker's error mapping, logging)
need not import the Deferred machinery; :mod:`net.defer` re-exports it, so
``from net.defer import Failure`` keeps working.

Why it looks like this:

* **Frames are let go early.** The traceback object (and with it every frame's locals) is held
  only until :meth:`Failure.clean_failure`, which a Deferred calls when its chain ends holding the
  failure; afterwards a (file, line, function) list per frame remains, enough for the text.
* **Text on demand.** Nothing is formatted until someone asks (``tb_text``,
  :meth:`Failure.get_traceback`); then the text is cached.
* **Picklable.** A Failure pickles as its exception, its formatted text and its frame list, never
  the traceback object (which cannot be pickled), so it can come back from a process pool. The
  unpickled copy reports the same text; ``raise_exception`` raises the exception without a
  traceback (the original frames are in another process).
"""

from __future__ import annotations

import builtins
import sys
import traceback
from typing import IO, Any, Literal, NoReturn

__all__ = ["Failure", "Detail"]

Detail = Literal["default", "brief", "verbose"]
"""``get_traceback(detail=...)``: ``"default"`` the usual Python text; ``"brief"`` one
``file:line:function`` line per frame; ``"verbose"`` the usual text plus each frame's locals
(while the frames are still held)."""


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

    def get_traceback(self, detail: Detail = "default") -> str:
        """The formatted traceback, ending with the ``Type: message`` line.

        ``detail``: ``"default"`` is Python's usual text (also ``tb_text``); ``"brief"`` is one
        ``file:line:function`` line per frame, for logs that must stay short; ``"verbose"`` adds
        each frame's local variables (``repr``-ed) while the traceback is still held (before
        :meth:`clean_failure` or pickling), and is the default text after that.
        """
        if detail == "default":
            return self.tb_text
        if detail == "brief":
            lines = [f"{file}:{line}:{name}\n" for file, line, name in self.frames]
            lines += traceback.format_exception_only(self.type, self.value)
            return "".join(lines)
        if detail == "verbose":
            if self.tb is None:
                return self.tb_text
            return "".join(
                traceback.TracebackException(
                    self.type, self.value, self.tb, capture_locals=True
                ).format()
            )
        raise ValueError(f"detail must be 'default', 'brief' or 'verbose', not {detail!r}")

    def print_traceback(self, file: IO[str] | None = None, detail: Detail = "default") -> None:
        """Write :meth:`get_traceback` to ``file`` (default: ``sys.stderr``)."""
        if file is None:
            file = sys.stderr
        file.write(self.get_traceback(detail))

    @property
    def frames(self) -> list[tuple[str, int, str]]:
        """(file, line, function) per frame, outermost first; survives cleaning and pickling.

        Twisted's ``Failure.frames`` also carries each frame's locals and globals; keeping those
        would keep them alive, so this has only what the text needs.
        """
        frames = self._frames
        if frames is not None:
            return list(frames)
        out = []
        tb = self.tb
        while tb is not None:
            code = tb.tb_frame.f_code
            out.append((code.co_filename, tb.tb_lineno, code.co_name))
            tb = tb.tb_next
        return out

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
        if self.tb is not None:
            if self._frames is None:
                self._frames = self.frames
            self.tb = None
        if self.value.__traceback__ is not None:
            self.value.__traceback__ = None

    # -- pickling: the exception, the text and the frame list; never the traceback object ------

    def __getstate__(self) -> dict[str, Any]:
        """What a pickle keeps: the traceback text is made now, while the frames are at hand."""
        return {
            "type": self.type,
            "value": self.value,
            "tb_text": self.tb_text,
            "frames": self.frames,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.type = state["type"]
        self.value = state["value"]
        self.tb = None
        self._frames = state["frames"]
        self._tb_text = state["tb_text"]

    def __repr__(self) -> str:
        return f"<Failure {self.type.__qualname__}: {self.get_error_message()}>"

    __str__ = __repr__
