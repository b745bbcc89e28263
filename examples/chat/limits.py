"""Pacing shared by the interfaces: IRC's flood limit and the broker's message allowance."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["TokenBucket"]


class TokenBucket:
    """``burst`` tokens, refilled at ``rate`` per second; each line takes one."""

    def __init__(self, burst: float, rate: float, now: Callable[[], float]) -> None:
        self.burst, self.rate, self._now = burst, rate, now
        self.tokens = burst
        self._stamp = now()

    def take(self) -> bool:
        now = self._now()
        self.tokens = min(self.burst, self.tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True
