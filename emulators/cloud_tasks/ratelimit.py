"""The token bucket behind RateLimits: capacity max_burst_size, refilled at
max_dispatches_per_second, one token per dispatch (first attempts and retries alike)."""

from __future__ import annotations


class TokenBucket:
    def __init__(self, rate: float, capacity: int, now: float) -> None:
        self._rate = rate
        self._capacity = float(capacity)
        self._tokens = float(capacity)
        self._stamp = now

    def reconfigure(self, rate: float, capacity: int, now: float) -> None:
        self._refill(now)
        self._rate = rate
        self._capacity = float(capacity)
        self._tokens = min(self._tokens, self._capacity)

    def take(self, now: float) -> float:
        """Take one token: 0.0 if one was taken, else the seconds until one is available."""
        self._refill(now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self._rate

    def _refill(self, now: float) -> None:
        elapsed = now - self._stamp
        if elapsed > 0:
            self._tokens = min(self._capacity, self._tokens + elapsed * self._rate)
            self._stamp = now
