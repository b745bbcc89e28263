"""Operators see what went wrong (issue 10): what the server logs, under which logger name.

``broker.calls``: an exception raised by a remote method (WARNING, with caller and traceback);
``broker.login``: a refused login (WARNING, user and peer, never the password). Real loopback sockets.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator
from typing import Any

import pytest

import broker
from cred.checkers import InMemoryUsernamePasswordDatabase
from cred.credentials import UsernamePassword
from cred.error import UnauthorizedLogin
from cred.portal import Portal, Realm

LOCAL = "tcp:0:interface=127.0.0.1"
PASSWORD = "s3cret-pass✓"


class Calculator(broker.Root):
    def remote_divide(self, a: int, b: int) -> float:
        return a / b

    async def remote_later_divide(self, a: int, b: int) -> float:
        return a / b

    def remote_refuse(self) -> None:
        raise broker.RemoteError("calc.Refused", "not today")


class User(broker.Avatar):
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<User {self.name}>"

    def perspective_boom(self) -> None:
        raise KeyError("missing note")


@pytest.fixture
def reactor(reactor: Any) -> Iterator[Any]:
    yield reactor
    gc.collect()


async def calculator(reactor: Any) -> Any:
    port = await broker.serve(reactor, LOCAL, Calculator())
    return await broker.connect(reactor, f"tcp:127.0.0.1:{port.get_host().port}")


def test_a_raising_remote_method_is_logged_with_caller_and_traceback(
        reactor: Any, run: Any, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        root = await calculator(reactor)
        for name in ("divide", "later_divide"):
            with pytest.raises(broker.RemoteError):
                await root.call_remote(name, 1, 0)
        root.session.disconnect()

    with caplog.at_level(logging.INFO, logger="broker.calls"):
        run(reactor, scenario())
    records = [r for r in caplog.records if r.name == "broker.calls"]
    assert [r.levelno for r in records] == [logging.WARNING, logging.WARNING]
    sync, later = records
    text = sync.getMessage()
    assert text.startswith("remote call 'divide' on Calculator from 127.0.0.1:")
    assert "(perspective <anonymous>) raised ZeroDivisionError: division by zero" in text
    assert sync.peer.startswith("127.0.0.1:") and sync.method == "divide"  # type: ignore[attr-defined]
    assert sync.exc_info is not None and "in remote_divide" in caplog.text  # the traceback
    assert later.getMessage().startswith("remote call 'later_divide' on Calculator from 127.0.0.1:")
    assert "Traceback" in later.getMessage() and "in remote_later_divide" in later.getMessage()


def test_deliberate_failures_are_info_and_the_level_is_configurable(
        reactor: Any, run: Any, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        root = await calculator(reactor)
        with pytest.raises(broker.RemoteError):
            await root.call_remote("refuse")
        with pytest.raises(broker.NoSuchMethodError):
            await root.call_remote("multiply", 2, 3)
        with pytest.raises(broker.RemoteError):
            await root.call_remote("divide", 1, 0)
        root.session.disconnect()

    logging.getLogger("broker.calls").setLevel(logging.ERROR)  # an operator silencing it
    try:
        with caplog.at_level(logging.INFO, logger="broker"):
            run(reactor, scenario())
    finally:
        logging.getLogger("broker.calls").setLevel(logging.NOTSET)
    assert not [r for r in caplog.records if r.name == "broker.calls"]

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="broker.calls"):
        run(reactor, scenario())
    levels = {r.getMessage().split(" raised ")[0].split("'")[1]: r.levelname for r in caplog.records
              if r.name == "broker.calls"}
    assert levels == {"refuse": "INFO", "multiply": "INFO", "divide": "WARNING"}
    assert "raised NoSuchMethodError: Calculator has no remote method 'multiply' (looked for remote_multiply)" in caplog.text


def portal() -> Portal:
    users = InMemoryUsernamePasswordDatabase({"alice": PASSWORD}, iterations=4096)
    return Portal(Realm(lambda avatar_id, mind: User(str(avatar_id))), [users])


def test_refused_login_is_logged_with_user_and_peer_never_the_password(
        reactor: Any, run: Any, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        port = await broker.serve(reactor, LOCAL, portal())
        endpoint = f"tcp:127.0.0.1:{port.get_host().port}"
        with pytest.raises(UnauthorizedLogin):
            await broker.login(reactor, endpoint, UsernamePassword("alice", "wrong-" + PASSWORD))
        avatar = await broker.login(reactor, endpoint, UsernamePassword("alice", PASSWORD))
        with pytest.raises(broker.RemoteError):
            await avatar.call_remote("boom")
        avatar.session.disconnect()

    with caplog.at_level(logging.INFO, logger="broker"):
        run(reactor, scenario())
    refused = [r for r in caplog.records if r.name == "broker.login" and r.levelno == logging.WARNING]
    assert len(refused) == 1
    assert refused[0].getMessage().startswith("login refused for user 'alice' from 127.0.0.1:")
    assert refused[0].user == "alice"  # type: ignore[attr-defined]
    assert any(r.name == "broker.login" and r.getMessage().startswith("logged in from 127.0.0.1:")
               and "as <User alice>" in r.getMessage() for r in caplog.records)
    # the refusal is the login's to report: broker.calls does not call it a crash
    assert not [r for r in caplog.records if r.name == "broker.calls" and r.levelno >= logging.WARNING
                and "login_" in r.getMessage()]
    boom = [r for r in caplog.records if r.name == "broker.calls" and "'boom'" in r.getMessage()]
    assert len(boom) == 1 and boom[0].levelno == logging.WARNING
    assert "(perspective <User alice>) raised KeyError" in boom[0].getMessage()
    assert PASSWORD not in caplog.text and "wrong-" not in caplog.text
