"""The delivery log's bookkeeping: attempts add up, the next retry follows the webhook queue's
backoff, the entry fails once the queue's attempts are spent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from wagate.adapters.memory import MemoryStore
from wagate.contracts import WebhookEvent, WebhookTask
from wagate.queues import QueueSpec
from wagate.services.deliveries import DeliveryLog

NOW = datetime(2026, 1, 2, tzinfo=UTC)
SPEC = QueueSpec("q", 1.0, 1, 2.0, 3600.0, 10, 5, 30.0)


class FixedClock:
    def now(self) -> datetime:
        return NOW

    def monotonic(self) -> float:
        return 0.0


def task() -> WebhookTask:
    event = WebhookEvent(id="evt_1", type="session.state", session_id="s1", created_at=NOW, data={})
    return WebhookTask(tenant_id="t1", event=event)


def test_attempts_add_up_and_the_next_retry_follows_the_queue_backoff() -> None:
    log = DeliveryLog(MemoryStore(), FixedClock(), SPEC)
    first = log.record(task(), "https://x.example/h", retry=0, status=500, error="answered 500")
    assert (first.state, first.attempts, first.last_status) == ("retrying", 1, 500)
    assert first.next_retry_at == NOW + timedelta(seconds=2)
    third = log.record(task(), "https://x.example/h", retry=2, status=None, error="unreachable")
    assert third.attempts == 2 and third.last_status is None
    assert third.next_retry_at == NOW + timedelta(seconds=8)
    done = log.record(task(), "https://x.example/h", retry=3, status=204, error=None)
    assert (done.state, done.delivered_at, done.next_retry_at) == ("delivered", NOW, None)


def test_the_entry_fails_when_the_queue_stops_retrying() -> None:
    log = DeliveryLog(MemoryStore(), FixedClock(), SPEC)
    last = log.record(task(), "https://x.example/h", retry=4, status=502, error="answered 502")
    assert (last.state, last.next_retry_at) == ("failed", None)


def test_backoff_doubles_then_grows_linearly_up_to_the_cap() -> None:
    spec = QueueSpec("q", 1.0, 1, 10.0, 300.0, 3, -1, 30.0)
    assert [spec.retry_interval_s(n) for n in range(1, 9)] == [10, 20, 40, 80, 160, 240, 300, 300]
