"""The sweeper's reconciliation pass: nothing accepted may stay unsent without a task; and the
dead-letter watch, which raises `dead_letters_growing` (see the end of this module).

Every pending message (`accepted`, `queued`, `sending`, `failed`) not updated for STUCK_AFTER
past its send time is checked against the queue (one GetTask):

- its task is alive (waiting for a retry, or for its turn in a backlog) → nothing to do; its
  `updated_at` is touched so the next sweeps look at other messages first (the stuck query is
  oldest-first and takes BATCH at a time, so without this a backlog of healthy messages would
  hide a lost task behind it for as long as the backlog lasts);
- its task is gone (never created because Cloud Tasks was down, lost by the queue, or completed
  before the status write landed) → enqueue it under the same name; if Cloud Tasks still
  remembers that name (a finished task's name is kept for a while), under a new task
  generation.
A second delivery of the same message is harmless: the runner's claim is transactional and the
WhatsApp id is derived from the message id, so the recipient deduplicates a resend.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import timedelta

from wagate.contracts import CountHistory, CountSample, MessageDoc
from wagate.domain.ids import send_task_name
from wagate.domain.messages import PENDING_VALUES, MessageStatus
from wagate.errors import DependencyUnavailable, WagateError
from wagate.ports import Clock, Store, TaskQueue, Where
from wagate.queues import send_queue
from wagate.services.alerts import Alerts
from wagate.services.outbox import Outbox

STUCK_AFTER = timedelta(minutes=2)
BATCH = 500


@dataclass
class SweepReport:
    reenqueued: int = 0
    regenerated: int = 0
    enqueue_failures: int = 0
    alive: int = 0  # checked: their tasks are in the queue


class Sweeper:
    def __init__(
        self,
        store: Store,
        outbox: Outbox,
        clock: Clock,
        queue: TaskQueue,
        queue_prefix: str,
        *,
        stuck_after: timedelta = STUCK_AFTER,
    ) -> None:
        self._store = store
        self._messages = store.collection("messages", MessageDoc)
        self._outbox = outbox
        self._clock = clock
        self._queue = queue
        self._queue_prefix = queue_prefix
        self._stuck_after = stuck_after

    def sweep(self) -> SweepReport:
        report = SweepReport()
        now = self._clock.now()
        stale = self._messages.query(
            [
                Where("status", "in", PENDING_VALUES),
                Where("updated_at", "<", now - self._stuck_after),
            ],
            limit=BATCH,
        )
        alive: list[str] = []
        for doc in stale:
            due = doc.send_at or doc.created_at
            if due > now - self._stuck_after:
                continue  # a scheduled send that is not due yet
            try:
                if self._queue.exists(self._queue_of(doc), self._task_name(doc)):
                    alive.append(doc.id)
                    continue
            except DependencyUnavailable:
                report.enqueue_failures += 1
                continue
            outcome = self._outbox.create_task(doc)
            if outcome == "exists":  # the name is remembered: a finished task of this message
                doc = self._regenerate(doc)
                report.regenerated += 1
                outcome = self._outbox.create_task(doc)
            if outcome == "created":
                report.reenqueued += 1
            else:
                report.enqueue_failures += 1
        if alive:
            # Only moves them back in the line; a failure here costs nothing but that.
            with contextlib.suppress(WagateError):
                self._store.patch_many([("messages", m, {"updated_at": now}) for m in alive])
        report.alive = len(alive)
        return report

    def _queue_of(self, doc: MessageDoc) -> str:
        return send_queue(self._queue_prefix, doc.shard, doc.priority)

    @staticmethod
    def _task_name(doc: MessageDoc) -> str:
        return send_task_name(doc.id, doc.task_generation)

    def _regenerate(self, doc: MessageDoc) -> MessageDoc:
        now = self._clock.now()
        return self._messages.update(
            doc.id,
            lambda d: d.model_copy(
                update={"task_generation": d.task_generation + 1, "updated_at": now}
            ),
        )


# ---------------------------------------------------------------- dead letters growing

DEAD_LETTER_WINDOW = timedelta(minutes=15)
DEAD_LETTER_GROWTH = 10
_MAX_SAMPLES = 240


@dataclass
class DeadLetterReading:
    count: int
    growth: int  # since the oldest sample inside the window
    alert: str | None  # "raised", "resolved" or None


class DeadLetterWatch:
    """Counts dead letters at every sweep (one count() aggregation) and keeps the recent counts
    in ops_state/dead_letters, because the sweeper itself remembers nothing between runs.

    `dead_letters_growing` is raised when the count grew by more than `grow_over` within
    `window`, and resolved once it stopped growing (no growth within the window); in between
    an open alert stays open."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        alerts: Alerts,
        *,
        window: timedelta = DEAD_LETTER_WINDOW,
        grow_over: int = DEAD_LETTER_GROWTH,
    ) -> None:
        self._messages = store.collection("messages", MessageDoc)
        self._history = store.collection("ops_state", CountHistory)
        self._clock = clock
        self._alerts = alerts
        self._window = window
        self._grow_over = grow_over

    def check(self) -> DeadLetterReading:
        count = self._messages.count([Where("status", "==", MessageStatus.DEAD.value)])
        now = self._clock.now()

        def add(current: CountHistory | None) -> CountHistory:
            kept = [s for s in (current.samples if current else []) if s.at >= now - self._window]
            kept.append(CountSample(at=now, count=count))
            return CountHistory(id="dead_letters", samples=kept[-_MAX_SAMPLES:])

        history = self._history.upsert("dead_letters", add)
        growth = count - history.samples[0].count
        alert = None
        if growth > self._grow_over:
            alert = self._alerts.track(
                "dead_letters_growing",
                "messages",
                True,
                f"{growth} new dead letters in {int(self._window.total_seconds() // 60)} min "
                f"({count} in all): `wagate dead-letters list`",
            )
        elif growth <= 0:
            alert = self._alerts.track("dead_letters_growing", "messages", False)
        return DeadLetterReading(count, growth, alert)
