"""Login calls with the wrong arguments answer a neutral §14.2 error, not our Python signature.

Raw calls on a served portal's object 0, over loopback (issue 12, item 10).
"""

from __future__ import annotations

from typing import Any

import pytest

import broker
from broker import Avatar, RemoteError
from broker.login import login_with
from cred.checkers import InMemoryUsernamePasswordDatabase
from cred.credentials import UsernamePassword
from cred.portal import Portal, Realm

PASSWORDS = {"alice": "wonderland"}


class User(Avatar):
    def __init__(self, name: str) -> None:
        self.name = name

    def perspective_whoami(self) -> str:
        return self.name


MALFORMED: list[tuple[str, list[Any], dict[str, Any]]] = [
    ("login_scram_start", ["n,,n=alice,r=abc", "extra", "more"], {}),
    ("login_scram_start", [], {}),
    ("login_scram_start", [], {"client_first": "n,,n=alice,r=abc", "surprise": 1}),
    ("login_scram_finish", ["a", None, "b", "c", "d"], {}),
    ("login_anonymous", [None], {"mind": None}),
    ("login_certificate", [], {"self": 1}),
]


def test_malformed_login_calls_answer_a_neutral_error(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        users = InMemoryUsernamePasswordDatabase(PASSWORDS, iterations=4096)
        portal = Portal(Realm(lambda avatar_id, mind: User(str(avatar_id))), [users])
        port = await broker.serve(reactor, "tcp:0:interface=127.0.0.1", portal)
        root = await broker.connect(reactor, f"tcp:127.0.0.1:{port.get_host().port}")
        for method, args, kwargs in MALFORMED:
            with pytest.raises(RemoteError) as info:
                await root.call_remote(method, *args, **kwargs)
            error = info.value
            assert (error.kind, error.remote_type, error.message) == (
                "failed", "broker.LoginSequenceError", "malformed login call"), (method, args, kwargs)
        # Nothing changed: the same connection logs in properly.
        avatar = await login_with(root, UsernamePassword("alice", PASSWORDS["alice"]))
        assert await avatar.call_remote("whoami") == "alice"
        root.session.disconnect()
        port.stop_listening()

    run(reactor, scenario())
