"""Throttling of failed logins, per user and per peer.

Online password guessing is slowed two ways: a user who has failed `max_failures` times
within `window` seconds is locked for `lockout` seconds (against guessing one account from
many addresses), and so is a peer (against one address trying many accounts). A throttled
login fails with the very same `UnauthorizedLogin()` as a wrong password, so the throttle
does not reveal which accounts exist or which guess was close.

The trade-off: anyone can lock a user out for `lockout` seconds by failing on purpose.

The clock is injectable (`now`), so tests need no sleeps. Pass the peer's *host* as the
peer key, not host:port (the port changes with every connection).
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


@dataclass
class _Record:
    failures: list[float] = field(default_factory=list)
    locked_until: float = float("-inf")


class LoginThrottle:
    """Counts failed logins per user and per peer and locks out the noisy ones."""

    #: Failures that count: wrong credentials, and broken exchanges (probing). A LoginDenied
    #: (right credentials, realm said no) or a server bug does not.
    COUNTED = (UnauthorizedLogin, ScramError)

    def __init__(
        self,
        max_failures: int = 5,
        window: float = 60.0,
        lockout: float = 300.0,
        *,
        now: Callable[[], float] = time.monotonic,
        max_entries: int = 100_000,
    ) -> None:
        if max_failures < 1 or window <= 0 or lockout < 0:
            raise ValueError("need max_failures >= 1, window > 0, lockout >= 0")
        self.max_failures = max_failures
        self.window = window
        self.lockout = lockout
        self._now = now
        self._max_entries = max_entries
        self._records: dict[tuple[str, Hashable], _Record] = {}

    @staticmethod
    def _keys(username: str | None, peer: Hashable | None) -> list[tuple[str, Hashable]]:
        keys: list[tuple[str, Hashable]] = []
        if username is not None:
            # "alice" and "alice\u00ad" are one account: count them together.
            with contextlib.suppress(ValueError):
                username = normalize_username(username)
            keys.append(("user", username))
        if peer is not None:
            keys.append(("peer", peer))
        return keys

    def is_throttled(self, username: str | None, peer: Hashable | None) -> bool:
        """Whether a login by `username` from `peer` must be refused right now."""
        now = self._now()
        return any(
            (record := self._records.get(key)) is not None and record.locked_until > now
            for key in self._keys(username, peer)
        )

    def record_failure(self, username: str | None, peer: Hashable | None) -> None:
        """Count one failed login against the user and the peer."""
        now = self._now()
        if len(self._records) >= self._max_entries:
            self._prune(now)
        for key in self._keys(username, peer):
            record = self._records.setdefault(key, _Record())
            record.failures = [t for t in record.failures if t > now - self.window]
            record.failures.append(now)
            if len(record.failures) >= self.max_failures:
                record.locked_until = now + self.lockout
                record.failures.clear()

    def record_success(self, username: str | None, peer: Hashable | None) -> None:
        """Forget the user's failures. The peer's stay: a peer with one valid account must
        not be able to reset its count between guesses at other accounts."""
        for key in self._keys(username, None):
            self._records.pop(key, None)

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
        """Drop records that neither lock nor hold a failure inside the window."""
        for key in [
            key
            for key, record in self._records.items()
            if record.locked_until <= now and all(t <= now - self.window for t in record.failures)
        ]:
            del self._records[key]
