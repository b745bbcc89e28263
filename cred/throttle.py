"""Throttling of failed logins, per peer and per account.

Online password guessing is slowed two ways:

- **Per peer** (one address trying many guesses or many accounts): a peer that has failed
  `max_failures` times within `window` seconds is locked for `lockout` seconds; every login from
  it is refused meanwhile, for every account.
- **Per account** (one account guessed from many addresses): once an account has failed
  `max_failures` times within `window` seconds, each login attempt for it from a *stranger* — a
  peer that never logged into that account — must wait a delay after the last failure that
  doubles with every further failure: `delay`, `2 * delay`, `4 * delay`, …, at most `lockout`.
  A peer that has logged into the account before (within `remember` seconds) is exempt, so an
  attacker cannot lock the account's owner out: she logs in from her usual address as always.
  The delays end once the account has had no failure for `lockout` seconds after the last one
  ran out; a success does not end them (it clears only the failures counted before them).

A throttled login fails with the very same `UnauthorizedLogin()` as a wrong password, without
running the check, so the throttle does not reveal which accounts exist or which guess was close;
throttled attempts are not counted (they guessed nothing).

The clock is injectable (`now`), so tests need no sleeps. Pass the peer's *host* as the peer key,
not host:port (the port changes with every connection).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from cred.error import ScramError, UnauthorizedLogin
from cred.scram import normalize_username
from net.defer import Deferred, Failure, fail, maybe_deferred

__all__ = ["LoginThrottle"]

#: Strikes above this no longer double the delay (it is capped long before; no float overflow).
_MAX_DOUBLINGS = 64


@dataclass
class _Record:
    failures: list[float] = field(default_factory=list)  # inside the window
    #: A peer: locked until then. An account: strangers wait until then.
    locked_until: float = float("-inf")
    strikes: int = 0  # an account: failures since its delays began (0: none)


class LoginThrottle:
    """Counts failed logins per peer and per account, and slows down the noisy ones."""

    #: Failures that count: wrong credentials, and broken exchanges (probing). A LoginDenied
    #: (right credentials, realm said no) or a server bug does not.
    COUNTED = (UnauthorizedLogin, ScramError)

    def __init__(
        self,
        max_failures: int = 5,
        window: float = 60.0,
        lockout: float = 300.0,
        *,
        delay: float = 1.0,
        remember: float = 90 * 86400.0,
        now: Callable[[], float] = time.monotonic,
        max_entries: int = 100_000,
    ) -> None:
        if max_failures < 1 or window <= 0 or lockout < 0 or delay < 0 or remember < 0:
            raise ValueError("need max_failures >= 1, window > 0, lockout, delay and remember >= 0")
        self.max_failures = max_failures
        self.window = window
        self.lockout = lockout
        self.delay = delay
        self.remember = remember
        self._now = now
        self._max_entries = max_entries
        self._records: dict[tuple[str, Hashable], _Record] = {}
        #: (account, peer) → when that peer last logged into that account.
        self._known: dict[tuple[str, Hashable], float] = {}

    @staticmethod
    def _account(username: str) -> str:
        # "alice" and "alice\u00ad" are one account: count them together.
        with contextlib.suppress(ValueError):
            username = normalize_username(username)
        return username

    def _is_known(self, account: str, peer: Hashable | None, now: float) -> bool:
        if peer is None:
            return False
        since = self._known.get((account, peer))
        return since is not None and now - since <= self.remember

    def account_delay(self, username: str) -> float:
        """Seconds a stranger must still wait before trying `username` (0: no wait)."""
        record = self._records.get(("user", self._account(username)))
        return 0.0 if record is None else max(0.0, record.locked_until - self._now())

    def is_throttled(self, username: str | None, peer: Hashable | None) -> bool:
        """Whether a login by `username` from `peer` must be refused right now."""
        now = self._now()
        if peer is not None:
            record = self._records.get(("peer", peer))
            if record is not None and record.locked_until > now:
                return True
        if username is not None:
            account = self._account(username)
            record = self._records.get(("user", account))
            if record is not None and record.locked_until > now:
                return not self._is_known(account, peer, now)
        return False

    def record_failure(self, username: str | None, peer: Hashable | None) -> None:
        """Count one failed login against the peer and the account."""
        now = self._now()
        if len(self._records) >= self._max_entries:
            self._prune(now)
        if peer is not None:
            record = self._records.setdefault(("peer", peer), _Record())
            if self._counts_to_limit(record, now):
                record.locked_until = now + self.lockout
        if username is not None:
            record = self._records.setdefault(("user", self._account(username)), _Record())
            if record.strikes and now >= record.locked_until + self.lockout:
                record.strikes = 0  # quiet for a whole lockout since the last delay: forgiven
            if record.strikes:
                record.strikes += 1
            elif self._counts_to_limit(record, now):
                record.strikes = 1
            if record.strikes:
                doublings = min(record.strikes - 1, _MAX_DOUBLINGS)
                record.locked_until = now + min(self.lockout, self.delay * 2.0**doublings)

    def _counts_to_limit(self, record: _Record, now: float) -> bool:
        """Add a failure at `now` to the window; True (and the window emptied) at the limit."""
        record.failures = [t for t in record.failures if t > now - self.window]
        record.failures.append(now)
        if len(record.failures) >= self.max_failures:
            record.failures.clear()
            return True
        return False

    def record_success(self, username: str | None, peer: Hashable | None) -> None:
        """Remember `peer` as one that logs into the account, and forget the account's
        failures counted so far — not its delays, which only time ends, and not the peer's:
        a peer with one valid account must not reset its count between guesses at others."""
        if username is None:
            return
        now = self._now()
        account = self._account(username)
        record = self._records.get(("user", account))
        if record is not None:
            record.failures.clear()
            if not record.strikes:
                del self._records[("user", account)]
        if peer is not None:
            known = self._known
            known.pop((account, peer), None)  # re-inserted last: the dict stays oldest first
            known[(account, peer)] = now
            while len(known) > self._max_entries:
                del known[next(iter(known))]

    def guard(
        self, username: str | None, peer: Hashable | None, attempt: Callable[[], Any]
    ) -> Deferred[Any]:
        """Run `attempt()` (returning a value or a Deferred) unless throttled, and count its
        outcome. Throttled: a Deferred failing with UnauthorizedLogin, `attempt` not run."""
        if self.is_throttled(username, peer):
            return fail(UnauthorizedLogin())

        def succeeded(result: Any) -> Any:
            self.record_success(username, peer)
            return result

        def failed(failure: Failure) -> Failure:
            if failure.check(*self.COUNTED):
                self.record_failure(username, peer)
            return failure

        return maybe_deferred(attempt).add_callbacks(succeeded, failed)

    def _prune(self, now: float) -> None:
        """Drop records that neither throttle nor hold a failure inside the window."""
        for key in [
            key
            for key, record in self._records.items()
            if record.locked_until <= now
            and all(t <= now - self.window for t in record.failures)
            and (not record.strikes or now >= record.locked_until + self.lockout)
        ]:
            del self._records[key]
