"""RateLimits as a task handler sees them: never more attempts in flight than
maxConcurrentDispatches, never faster than maxDispatchesPerSecond after the burst."""

from __future__ import annotations

import pytest
from google.cloud import tasks_v2

from tests.emulators.conftest import QueueFactory
from tests.emulators.harness import Step, Target, http_task, wait_until

pytestmark = pytest.mark.integration


def test_concurrency_limit_is_honoured(
    client: tasks_v2.CloudTasksClient, make_queue: QueueFactory, target: Target, path: str
) -> None:
    name = make_queue(rate_limits=tasks_v2.RateLimits(max_concurrent_dispatches=3))
    target.script(path, [Step(200, delay=0.25)] * 12)
    client.pause_queue(name=name)
    for _ in range(12):
        client.create_task(parent=name, task=http_task(target.url(path)))

    client.resume_queue(name=name)

    target.wait_for_hits(path, 12, timeout=10)
    wait_until(lambda: not list(client.list_tasks(parent=name)), 5, "all tasks to finish")
    assert target.max_inflight(path) == 3  # the limit, and used in full


def test_rate_limit_is_honoured(
    client: tasks_v2.CloudTasksClient, make_queue: QueueFactory, target: Target, path: str
) -> None:
    rate = 10.0
    name = make_queue(rate_limits=tasks_v2.RateLimits(max_dispatches_per_second=rate))
    burst = client.get_queue(name=name).rate_limits.max_burst_size
    client.pause_queue(name=name)
    count = 30
    for _ in range(count):
        client.create_task(parent=name, task=http_task(target.url(path)))

    client.resume_queue(name=name)

    hits = target.wait_for_hits(path, count, timeout=10)
    times = sorted(h.received_mono for h in hits)
    span = times[-1] - times[0]
    expected = (count - burst) / rate  # the burst goes at once, the rest at the rate
    assert expected * 0.9 <= span <= expected * 1.5
    # No one-second window holds more than a burst plus a second's worth of tokens.
    assert max(sum(1 for t in times if start <= t < start + 1.0) for start in times) <= burst + rate
