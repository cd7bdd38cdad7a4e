"""Queue settings (RateLimits, RetryConfig) with Cloud Tasks' defaults and limits, plus the
retry policy they imply: when the next attempt is due and when a task is given up.

Pure Python, no I/O: the rules are small enough to read in one sitting and to test alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_DISPATCHES_PER_SECOND = 500.0  # the API refuses more per queue
MAX_CONCURRENT_DISPATCHES = 5000
MIN_DISPATCH_DEADLINE_S = 15.0  # HTTP targets: [15 s, 30 min]
MAX_DISPATCH_DEADLINE_S = 30 * 60.0
DEFAULT_DISPATCH_DEADLINE_S = 10 * 60.0


@dataclass(frozen=True)
class RateLimits:
    max_dispatches_per_second: float = 500.0
    max_concurrent_dispatches: int = 1000

    @property
    def max_burst_size(self) -> int:
        """Output only in the API; Cloud Tasks picks it "at least equal to" the rate."""
        return max(1, math.ceil(self.max_dispatches_per_second))


@dataclass(frozen=True)
class RetryConfig:
    max_attempts: int = 100  # -1 = unlimited
    max_retry_duration_s: float = 0.0  # 0 = unlimited
    min_backoff_s: float = 0.1
    max_backoff_s: float = 3600.0
    max_doublings: int = 16

    def delay_after(self, attempts: int) -> float:
        """How long after the failure of attempt number ``attempts`` (1-based) to retry.

        The interval starts at min_backoff, doubles max_doublings times, then grows linearly by
        the last doubled interval, capped at max_backoff: with 10 s, 300 s and 3 doublings the
        retries come after 10, 20, 40, 80, 160, 240, 300, 300 … seconds.
        """
        retry = max(1, attempts)
        if retry - 1 <= self.max_doublings:
            interval = self.min_backoff_s * 2.0 ** (retry - 1)
        else:
            step = self.min_backoff_s * 2.0**self.max_doublings
            interval = step * (retry - self.max_doublings)
        return min(interval, self.max_backoff_s)

    def gives_up(self, attempts: int, since_first_attempt_s: float) -> bool:
        """Whether a task that failed its ``attempts``-th attempt is deleted instead of retried.

        Cloud Tasks stops only when both limits are reached; an unlimited one (-1 attempts,
        0 s duration) is always reached, and both unlimited means retry for ever.
        """
        unlimited_attempts = self.max_attempts == -1
        unlimited_duration = self.max_retry_duration_s <= 0
        if unlimited_attempts and unlimited_duration:
            return False
        attempts_spent = unlimited_attempts or attempts >= self.max_attempts
        time_spent = unlimited_duration or since_first_attempt_s >= self.max_retry_duration_s
        return attempts_spent and time_spent


@dataclass(frozen=True)
class QueueConfig:
    """Everything UpdateQueue can change."""

    rate_limits: RateLimits = RateLimits()
    retry: RetryConfig = RetryConfig()
    logging_sampling_ratio: float | None = None  # stackdriverLoggingConfig, echoed only
