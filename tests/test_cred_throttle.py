"""LoginThrottle: per-peer lockout, a growing per-account delay, and known-good addresses (issue 12).

The clock is injected, so nothing sleeps. The last test runs real logins over loopback, the
attacker connecting from 127.0.0.2 and alice from 127.0.0.1.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest

import broker
from broker import Avatar
from cred.checkers import InMemoryUsernamePasswordDatabase
from cred.credentials import UsernamePassword
from cred.error import LoginDenied, UnauthorizedLogin
from cred.portal import Portal, Realm
from cred.throttle import LoginThrottle
from net.defer import Deferred, Failure, fail, succeed

PASSWORDS = {"alice": "wonderland", "bob": "builder"}
HOME = "10.0.0.1"  # where alice logs in from
ATTACKER = "10.6.6.6"


class Clock:
    def __init__(self) -> None:
        self.time = 1000.0

    def __call__(self) -> float:
        return self.time


def result_of(d: Deferred[Any]) -> Any:
    """The result of an already-fired Deferred; raises its failure."""
    out: list[Any] = []
    d.add_both(out.append)
    assert out, "the Deferred has not fired"
    if isinstance(out[0], Failure):
        out[0].raise_exception()
    return out[0]


class Checks:
    """A password check that counts how often the throttle let it run."""

    def __init__(self, throttle: LoginThrottle) -> None:
        self.throttle = throttle
        self.runs = 0

    def login(self, user: str, password: str, peer: str | None) -> Any:
        def attempt() -> Deferred[str]:
            self.runs += 1
            return succeed(user) if PASSWORDS.get(user) == password else fail(UnauthorizedLogin())

        return result_of(self.throttle.guard(user, peer, attempt))

    def refused(self, user: str, password: str, peer: str | None) -> bool:
        """Whether the login fails, as every refused login does: UnauthorizedLogin, fixed text."""
        try:
            self.login(user, password, peer)
        except UnauthorizedLogin as exc:
            assert str(exc) == UnauthorizedLogin.MESSAGE
            return True
        return False


def test_an_attacker_cannot_lock_the_owner_out() -> None:
    clock = Clock()
    checks = Checks(LoginThrottle(max_failures=5, window=60.0, lockout=300.0, now=clock))
    assert checks.login("alice", "wonderland", HOME) == "alice"  # HOME is now known-good
    clock.time += 3600
    for i in range(200):  # guessing as fast as the attacker can, from one address and from many
        assert checks.refused("alice", f"guess{i}", ATTACKER if i % 2 else f"10.9.{i // 250}.{i % 250}")
        clock.time += 0.5
        if i % 20 == 0:
            assert checks.login("alice", "wonderland", HOME) == "alice"
    assert checks.throttle.is_throttled("alice", "10.1.2.3")  # strangers do wait
    assert not checks.throttle.is_throttled("alice", HOME)
    assert checks.login("alice", "wonderland", HOME) == "alice"


def test_the_attackers_address_is_locked() -> None:
    clock = Clock()
    checks = Checks(LoginThrottle(max_failures=5, window=60.0, lockout=300.0, now=clock))
    for i in range(5):
        assert checks.refused("alice", f"guess{i}", ATTACKER)
    runs = checks.runs
    # Locked: not even the right password of another account is checked from there.
    assert checks.refused("bob", "builder", ATTACKER)
    assert checks.refused("alice", "wonderland", ATTACKER)
    assert checks.runs == runs
    assert checks.login("bob", "builder", "10.1.1.1") == "bob"  # from elsewhere, bob is fine
    clock.time += 299
    assert checks.throttle.is_throttled(None, ATTACKER)
    clock.time += 2
    assert checks.login("bob", "builder", ATTACKER) == "bob"


def test_the_account_delay_grows_with_each_failure() -> None:
    clock = Clock()
    throttle = LoginThrottle(max_failures=3, window=60.0, lockout=300.0, delay=1.0, now=clock)
    checks = Checks(throttle)
    peers = (f"10.7.0.{i}" for i in range(1000))  # a botnet: no address fails twice
    for _ in range(2):
        assert checks.refused("alice", "guess", next(peers))
    assert throttle.account_delay("alice") == 0.0
    delays = []
    for _ in range(12):
        assert checks.refused("alice", "guess", next(peers))
        delay = throttle.account_delay("alice")
        delays.append(delay)
        # While the delay runs, a stranger's attempt is refused unchecked and not counted ...
        runs = checks.runs
        assert checks.refused("alice", "wonderland", next(peers))
        assert checks.runs == runs and throttle.account_delay("alice") == delay
        clock.time += delay  # ... and once it is over, the next guess is checked
    assert delays == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]
    # The owner, on a new device, waits like anyone else, and then that address is known-good.
    assert checks.refused("alice", "guess", next(peers))
    new_device = "10.2.2.2"
    assert throttle.is_throttled("alice", new_device)
    clock.time += 300
    assert checks.login("alice", "wonderland", new_device) == "alice"
    assert checks.refused("alice", "guess", next(peers))  # the success ended no delay ...
    assert throttle.account_delay("alice") == 300
    assert checks.login("alice", "wonderland", new_device) == "alice"  # ... for strangers


def test_the_delays_end_after_a_quiet_lockout() -> None:
    clock = Clock()
    throttle = LoginThrottle(max_failures=2, window=60.0, lockout=100.0, delay=10.0, now=clock)
    checks = Checks(throttle)
    for peer in ("a", "b", "c"):
        assert checks.refused("alice", "guess", peer)
        clock.time += throttle.account_delay("alice")
    assert throttle.account_delay("alice") == 0.0  # 10 s, then 20 s, now over
    clock.time += 99.0  # not quite a lockout without failures: the next one doubles again
    assert checks.refused("alice", "guess", "d")
    assert throttle.account_delay("alice") == 40.0
    clock.time += 40.0 + 100.0  # a whole lockout of quiet after the delay: forgiven
    assert checks.refused("alice", "guess", "e")
    assert throttle.account_delay("alice") == 0.0 and not throttle.is_throttled("alice", "f")


def test_known_good_is_per_account_and_forgotten_in_time() -> None:
    clock = Clock()
    throttle = LoginThrottle(max_failures=1, window=60.0, lockout=300.0, delay=100.0,
                             remember=1000.0, now=clock)
    checks = Checks(throttle)
    assert checks.login("alice", "wonderland", HOME) == "alice"
    assert checks.refused("bob", "guess", "10.5.5.5")
    assert checks.refused("alice", "guess", "10.5.5.6")
    assert not throttle.is_throttled("alice", HOME)
    assert throttle.is_throttled("bob", HOME)  # HOME never logged into bob's account
    assert not throttle.is_throttled("ali\u00adce", HOME)  # the same account, SASLprep'd
    clock.time += 1001.0
    assert checks.refused("alice", "guess", "10.5.5.7")
    assert throttle.is_throttled("alice", HOME)  # alice has not been seen there for too long


def test_only_credential_failures_count() -> None:
    throttle = LoginThrottle(max_failures=1, now=Clock())
    with pytest.raises(LoginDenied):
        result_of(throttle.guard("alice", "p", lambda: fail(LoginDenied("no"))))
    assert not throttle.is_throttled("alice", "q") and not throttle.is_throttled(None, "p")


def test_the_known_good_history_is_bounded() -> None:
    clock = Clock()
    throttle = LoginThrottle(max_failures=1, delay=100.0, now=clock, max_entries=10)
    for i in range(30):
        throttle.record_success("alice", f"10.0.0.{i}")
    assert len(throttle._known) == 10
    throttle.record_failure("alice", None)
    assert throttle.is_throttled("alice", "10.0.0.0")  # the oldest were forgotten
    assert not throttle.is_throttled("alice", "10.0.0.29")


# -- over loopback ------------------------------------------------------------------------------


class User(Avatar):
    def __init__(self, name: str) -> None:
        self.name = name

    def perspective_whoami(self) -> str:
        return self.name


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs 127.0.0.2 on loopback")
def test_over_loopback_the_owner_logs_in_while_an_attacker_is_locked(reactor: Any, run: Any) -> None:
    async def scenario() -> None:
        clock = [1000.0]
        throttle = LoginThrottle(max_failures=3, window=60.0, lockout=300.0, now=lambda: clock[0])
        users = InMemoryUsernamePasswordDatabase(PASSWORDS, iterations=4096)
        portal = Portal(Realm(lambda avatar_id, mind: User(str(avatar_id))), [users])
        port = await broker.serve(reactor, "tcp:0:interface=127.0.0.1", portal, throttle=throttle)
        home = f"tcp:127.0.0.1:{port.get_host().port}"
        attacker = f"{home}:bind_address=127.0.0.2"
        alice = UsernamePassword("alice", PASSWORDS["alice"])

        me = await broker.login(reactor, home, alice)
        assert await me.call_remote("whoami") == "alice"
        me.session.disconnect()
        for i in range(10):
            with pytest.raises(UnauthorizedLogin):
                await broker.login(reactor, attacker, UsernamePassword("alice", f"guess{i}"))
        with pytest.raises(UnauthorizedLogin):  # the attacker's address is locked ...
            await broker.login(reactor, attacker, UsernamePassword("bob", PASSWORDS["bob"]))
        assert throttle.is_throttled("alice", "127.0.0.3")  # ... strangers wait for alice ...
        me = await broker.login(reactor, home, alice)  # ... and alice logs in from home
        assert await me.call_remote("whoami") == "alice"
        me.session.disconnect()
        port.stop_listening()

    run(reactor, scenario())
