"""The sweeper's reconciliation pass: nothing accepted may stay unsent without a task.

- `accepted`/`queued` for longer than STUCK_AFTER past its send time: the task was probably
  never created (Cloud Tasks was down) → enqueue with the same task name (a duplicate is
  refused by Cloud Tasks, so this is safe to repeat).
- still pending after ORPHANED_AFTER: the task itself is gone (dropped after its retry limit,
  or its name is remembered after a completed attempt) → enqueue under a new task generation.
  A second delivery of the same message is harmless: the runner's claim is transactional and
  the WhatsApp id is derived from the message id, so the recipient deduplicates a resend.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from wagate.contracts import MessageDoc
from wagate.domain.messages import PENDING_VALUES, MessageStatus
from wagate.ports import Clock, Store, Where
from wagate.services.outbox import Outbox

STUCK_AFTER = timedelta(minutes=2)
ORPHANED_AFTER = timedelta(minutes=15)
BATCH = 500


@dataclass
class SweepReport:
    reenqueued: int = 0
    regenerated: int = 0
    enqueue_failures: int = 0


class Sweeper:
    def __init__(self, store: Store, outbox: Outbox, clock: Clock) -> None:
        self._messages = store.collection("messages", MessageDoc)
        self._outbox = outbox
        self._clock = clock

    def sweep(self) -> SweepReport:
        report = SweepReport()
        now = self._clock.now()
        stale = self._messages.query(
            [Where("status", "in", PENDING_VALUES), Where("updated_at", "<", now - STUCK_AFTER)],
            limit=BATCH,
        )
        for doc in stale:
            due = doc.send_at or doc.created_at
            if due > now - STUCK_AFTER:
                continue  # a scheduled send that is not due yet
            if doc.updated_at < now - ORPHANED_AFTER:
                doc = self._regenerate(doc)
                report.regenerated += 1
            elif doc.status not in (MessageStatus.ACCEPTED, MessageStatus.QUEUED):
                continue  # sending/failed: its task is still retrying
            if self._outbox.enqueue(doc):
                report.reenqueued += 1
            else:
                report.enqueue_failures += 1
        return report

    def _regenerate(self, doc: MessageDoc) -> MessageDoc:
        now = self._clock.now()
        return self._messages.update(
            doc.id,
            lambda d: d.model_copy(
                update={"task_generation": d.task_generation + 1, "updated_at": now}
            ),
        )
