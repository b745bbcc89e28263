"""Logging for a server process: a file rotated by size and/or daily, reopened on SIGHUP, text or JSON.

Built on stdlib ``logging.handlers`` (:class:`ServerLogHandler` is a ``RotatingFileHandler``
that can also roll over at midnight and reopen its file), configured in one call::

    setup = setup_logging("/var/log/app.log", level="INFO", fmt="json",
                          rotate_size=10 * 2**20, rotate_keep=5, rotate_daily=False)
    signal.signal(signal.SIGHUP, lambda *_: reactor.call_from_thread(setup.reopen))

No line is lost across a rotation: the check, the renames and the reopen happen inside
``emit``, under the handler's lock, so the line that crossed the limit is the first of the new
file and no other thread writes meanwhile. A rotation by an outside tool (logrotate's default
"create" mode: rename the file, then send SIGHUP) loses nothing either: lines written between
the rename and the signal land in the renamed file, and :meth:`LogSetup.reopen` (under the same
lock) starts the new one. Rotated files are ``PATH.1`` (newest) to ``PATH.N``, for size and
daily rotation alike; ``rotate_keep`` is N.

One process per file: two processes rotating one file would each rename the other's; the
runner gives each worker a file of its own (docs/RUNNING.md).
"""

from __future__ import annotations

import datetime
import json
import logging
import logging.handlers
import os
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

__all__ = ["setup_logging", "LogSetup", "ServerLogHandler", "JSONFormatter", "TEXT_FORMAT", "parse_size"]

#: The text format: time, level, logger, pid, then the message (``call_id``: the broker call served).
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """``"10M"`` -> 10485760: a byte count with an optional K/M/G/T suffix (powers of 1024)."""
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"not a size: {text!r}; write a number of bytes, optionally with K, M or G (e.g. 10M)")
    number, unit = float(match.group(1)), match.group(2).lower()
    size = int(number * _UNITS[unit])
    if size <= 0:
        raise ValueError(f"a size must be more than 0 bytes, got {text!r}")
    return size


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time (ISO 8601, UTC), level, logger, pid, message, and
    ``exception`` (the traceback text) and ``call_id`` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        call_id = getattr(record, "call_id", None)
        if call_id not in (None, "-"):
            entry["call_id"] = call_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False, default=str)


class ServerLogHandler(logging.handlers.RotatingFileHandler):
    """A RotatingFileHandler (``max_bytes``; 0: no size limit) that can also roll over at local
    midnight (``daily``) and :meth:`reopen` its file (after an outside rename)."""

    def __init__(self, path: str, *, max_bytes: int = 0, backup_count: int = 5, daily: bool = False) -> None:
        super().__init__(path, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8", delay=False)
        self.daily = daily
        self._next_midnight = self._midnight_after(time.time())

    @staticmethod
    def _midnight_after(now: float) -> float:
        today = datetime.datetime.fromtimestamp(now).date()
        return datetime.datetime.combine(today + datetime.timedelta(days=1), datetime.time()).timestamp()

    def shouldRollover(self, record: logging.LogRecord) -> bool:  # noqa: N802 - the stdlib's name
        if self.daily and record.created >= self._next_midnight:
            return True
        return bool(super().shouldRollover(record))

    def doRollover(self) -> None:  # noqa: N802 - the stdlib's name
        self._next_midnight = self._midnight_after(time.time())
        if self.backupCount > 0:
            super().doRollover()
        else:  # nothing to keep: start the file over
            if self.stream:
                self.stream.close()
            self.stream = open(self.baseFilename, "w", encoding="utf-8")  # noqa: SIM115

    def reopen(self) -> None:
        """Close the file and open ``path`` again (a new file, if it was renamed), under the lock."""
        with self.lock:  # type: ignore[union-attr]  # created by Handler.__init__
            if self.stream:
                try:
                    self.stream.flush()
                finally:
                    self.stream.close()
            self.stream = self._open()


@dataclass
class LogSetup:
    """What :func:`setup_logging` installed: :meth:`reopen` on SIGHUP, :meth:`close` at exit."""

    handler: logging.Handler
    path: str | None
    handlers: list[logging.Handler] = field(default_factory=list)

    def reopen(self) -> None:
        """Reopen the log file (SIGHUP); a no-op for stderr."""
        if isinstance(self.handler, ServerLogHandler):
            self.handler.reopen()
            logging.getLogger(__name__).info("reopened the log file %s", self.path)

    def close(self) -> None:
        """Flush and remove the handler from the root logger."""
        root = logging.getLogger()
        for handler in self.handlers:
            root.removeHandler(handler)
            handler.close()


def setup_logging(path: str | None = "-", *, level: str | int = "INFO", fmt: str = "text",
                  rotate_size: int | None = None, rotate_keep: int = 5, rotate_daily: bool = False,
                  stream: TextIO | None = None) -> LogSetup:
    """Send every logger's records at ``level`` and above to ``path`` (``"-"`` or None: stderr).

    Replaces the root logger's handlers (a forked worker calls this again for its own file).
    ``fmt``: ``"text"`` (:data:`TEXT_FORMAT`) or ``"json"`` (:class:`JSONFormatter`).
    """
    if fmt not in ("text", "json"):
        raise ValueError(f"log format must be 'text' or 'json', not {fmt!r}")
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}; use DEBUG, INFO, WARNING, ERROR or CRITICAL")
    if rotate_keep < 0:
        raise ValueError(f"rotate_keep must be >= 0, got {rotate_keep}")
    handler: logging.Handler
    if path in (None, "-"):
        handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
        path = None
    else:
        path = os.path.abspath(path)
        handler = ServerLogHandler(path, max_bytes=rotate_size or 0, backup_count=rotate_keep, daily=rotate_daily)
    handler.setFormatter(JSONFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(numeric)
    logging.captureWarnings(True)
    return LogSetup(handler, path, [handler])
