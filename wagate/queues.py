"""Every Cloud Tasks queue wagate uses, with the retry and rate settings the code assumes.

This is the one source of truth: the local stack creates these queues on the emulator, and the
Terraform tests check that infra/terraform declares the same names and settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Priority = Literal["high", "normal", "bulk"]
PRIORITIES: tuple[Priority, ...] = ("high", "normal", "bulk")


@dataclass(frozen=True)
class QueueSpec:
    name: str
    max_dispatches_per_second: float
    max_concurrent_dispatches: int
    min_backoff_s: float
    max_backoff_s: float
    max_doublings: int
    max_attempts: int  # -1 = unlimited; the runner decides when a message is dead
    dispatch_deadline_s: float

    def retry_interval_s(self, retry: int) -> float:
        """Cloud Tasks' wait before retry number `retry` (1-based): min_backoff doubled
        max_doublings times, then growing linearly by the last doubled step, capped at
        max_backoff (the delivery log's next-retry estimate)."""
        if retry - 1 <= self.max_doublings:
            interval = self.min_backoff_s * 2.0 ** (retry - 1)
        else:
            step = self.min_backoff_s * 2.0**self.max_doublings
            interval = step * (retry - self.max_doublings)
        return min(interval, self.max_backoff_s)


# Sends: the runner answers only after WhatsApp acked, so deadlines cover the ack wait.
_SEND = {
    "high": (500.0, 200),
    "normal": (200.0, 100),
    "bulk": (50.0, 50),
}


def send_queue(prefix: str, shard: int, priority: Priority = "normal") -> str:
    return f"{prefix}-s{shard}-{priority}"


def control_queue(prefix: str, shard: int) -> str:
    return f"{prefix}-s{shard}-control"


def webhook_queue(prefix: str) -> str:
    return f"{prefix}-webhooks"


def all_queues(prefix: str, shard_count: int) -> list[QueueSpec]:
    specs: list[QueueSpec] = []
    for shard in range(shard_count):
        for priority in PRIORITIES:
            rate, concurrent = _SEND[priority]
            specs.append(
                QueueSpec(
                    name=send_queue(prefix, shard, priority),
                    max_dispatches_per_second=rate,
                    max_concurrent_dispatches=concurrent,
                    min_backoff_s=1.0,
                    max_backoff_s=300.0,
                    max_doublings=8,
                    max_attempts=-1,
                    dispatch_deadline_s=60.0,
                )
            )
        specs.append(
            QueueSpec(
                name=control_queue(prefix, shard),
                max_dispatches_per_second=100.0,
                max_concurrent_dispatches=50,
                min_backoff_s=1.0,
                max_backoff_s=60.0,
                max_doublings=5,
                max_attempts=-1,
                dispatch_deadline_s=60.0,
            )
        )
    specs.append(
        QueueSpec(
            name=webhook_queue(prefix),
            max_dispatches_per_second=500.0,
            max_concurrent_dispatches=200,
            min_backoff_s=2.0,
            max_backoff_s=3600.0,
            max_doublings=10,
            max_attempts=50,
            dispatch_deadline_s=30.0,
        )
    )
    return specs
