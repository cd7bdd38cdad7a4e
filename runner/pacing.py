"""Per-session pacing (token bucket) that protects WhatsApp numbers from bans.

No backlog is kept in memory: a send that finds no token is answered 429 with the wait as
Retry-After, and Cloud Tasks keeps the message queued durably.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    rate: float  # tokens per second
    burst: int
    tokens: float = -1.0
    updated: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = float(self.burst)

    def take(self, now: float | None = None) -> float:
        """0.0 if a token was taken, else the seconds until one will be available."""
        now = time.monotonic() if now is None else now
        self.tokens = min(float(self.burst), self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate

    def give_back(self) -> None:
        """A claimed send that did not happen returns its token."""
        self.tokens = min(float(self.burst), self.tokens + 1.0)


class Pacer:
    def __init__(self) -> None:
        self._buckets: dict[str, TokenBucket] = {}

    def take(self, session_id: str, rate: float, burst: int) -> float:
        bucket = self._buckets.get(session_id)
        if bucket is None or bucket.rate != rate or bucket.burst != burst:
            bucket = self._buckets[session_id] = TokenBucket(rate, burst)
        return bucket.take()

    def give_back(self, session_id: str) -> None:
        bucket = self._buckets.get(session_id)
        if bucket is not None:
            bucket.give_back()

    def forget(self, session_id: str) -> None:
        self._buckets.pop(session_id, None)
