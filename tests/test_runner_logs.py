"""net.logsetup in this process (a handler of its own, never the root logger's): sizes, the daily
rollover, reopening, JSON lines. The end-to-end runs are in test_runner.py; also here, the
runner's --manhole wiring."""

from __future__ import annotations

import contextlib
import json
import logging
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from runner_helpers import Server

from net.logsetup import JSONFormatter, ServerLogHandler, parse_size


@pytest.mark.parametrize(("text", "size"), [("10M", 10 << 20), ("500k", 500 << 10), ("1G", 1 << 30),
                                            ("123", 123), ("1.5K", 1536), ("2MiB", 2 << 20)])
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "lots", "-1M", "0", "10X"])
def test_bad_sizes_say_what_to_write(text: str) -> None:
    with pytest.raises(ValueError, match="K, M or G|more than 0"):
        parse_size(text)


@contextlib.contextmanager
def logger_with(handler: logging.Handler) -> Iterator[logging.Logger]:
    """A fresh logger writing only to ``handler``, whatever the process's logging state.

    The handler is under test, not the configuration: a ``logging.disable`` left by an earlier
    test or import would drop every line silently, so it is lifted here and put back after,
    and the logger and the handler are gone from the registry afterwards.
    """
    logger = logging.getLogger(f"test_runner_logs.{id(handler)}")
    disabled_below = logging.root.manager.disable
    logging.disable(logging.NOTSET)
    logger.propagate = False
    logger.disabled = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield logger
    finally:
        logger.removeHandler(handler)
        handler.close()
        logging.disable(disabled_below)


def test_daily_rollover_keeps_numbered_files_and_loses_no_line(tmp_path: Path) -> None:
    path = tmp_path / "d.log"
    handler = ServerLogHandler(str(path), backup_count=3, daily=True)
    with logger_with(handler) as logger:
        logger.info("day one")
        handler._next_midnight = 0.0  # as if midnight passed: the next line rolls over
        logger.info("day two")
        handler._next_midnight = 0.0
        logger.info("day three")
    assert path.read_text() == "day three\n"
    assert (tmp_path / "d.log.1").read_text() == "day two\n"
    assert (tmp_path / "d.log.2").read_text() == "day one\n"
    assert handler._next_midnight > 0  # the next midnight, from now


def test_reopen_starts_a_new_file_after_a_rename(tmp_path: Path) -> None:
    path = tmp_path / "r.log"
    handler = ServerLogHandler(str(path))
    with logger_with(handler) as logger:
        logger.info("one")
        path.rename(tmp_path / "r.log.old")
        logger.info("two")
        handler.reopen()
        logger.info("three")
    assert (tmp_path / "r.log.old").read_text() == "one\ntwo\n"
    assert path.read_text() == "three\n"


def test_json_lines_carry_the_exception_and_call_id() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("app", logging.ERROR, __file__, 1, "failed %s", ("here",), sys.exc_info())
    record.call_id = "c-42"
    entry = json.loads(JSONFormatter().format(record))
    assert entry["message"] == "failed here" and entry["level"] == "ERROR" and entry["logger"] == "app"
    assert entry["call_id"] == "c-42" and "ValueError: boom" in entry["exception"]
    assert entry["time"].endswith("+00:00")


def test_serve_with_a_manhole_on_a_private_unix_socket(tmp_path: Path) -> None:
    sock = tmp_path / "manhole.sock"
    with Server(["examples.served_app:make_app", "--listen", "tcp:0:interface=127.0.0.1",
                 "--manhole", f"unix:{sock}"], tmp_path) as server:
        server.wait_serving()
        assert stat.S_ISSOCK(sock.stat().st_mode) and stat.S_IMODE(sock.stat().st_mode) == 0o600
        assert server.stop() == 0


def test_a_manhole_over_plain_tcp_is_refused_at_start(tmp_path: Path) -> None:
    with Server(["examples.served_app:root", "--listen", "tcp:0:interface=127.0.0.1",
                 "--manhole", "tcp:0:interface=127.0.0.1"], tmp_path) as server:
        assert server.proc.wait(30) == 2
        assert "--manhole" in server.stderr_text()
