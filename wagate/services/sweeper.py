"""The sweeper's reconciliation pass: nothing accepted may stay unsent without a task; and the
dead-letter watch, which raises `dead_letters_growing` (see the end of this module).

It reads the pending/{id} entries (PendingSend: one per unfinished message, a small
collection), never a scan of `messages`. An entry is looked at once it is STUCK_AFTER past its
message's send time, and checked against the queue (one GetTask):

- its task is alive (waiting for a retry, or for its turn in a backlog) → nothing to do; its
  `checked_at` is touched so the next sweeps look at other entries first (the query is
  oldest-checked-first and takes BATCH at a time, so without this a backlog of healthy messages
  would hide a lost task behind it for as long as the backlog lasts);
- its task is gone → the message is read: still pending (its task was never created because
  Cloud Tasks was down, lost by the queue, or completed before the status write landed) → it is
  enqueued under the same name, or, if Cloud Tasks still remembers that name (a finished task's
  name is kept for a while), under a new task generation; finished or missing → the entry was
  left behind by a lost delete and is removed. (Outbox.enqueue_again, which the runner's
  takeover nudge uses too, for a task it found gone.)
A sweep takes BATCH entries at a time and goes on with the next batch until none is due, a
call to Cloud Tasks failed, or SWEEP_BUDGET_S is spent; the GetTask and CreateTask calls of a
batch run WORKERS at a time. (One sequential batch a sweep re-enqueued at most 500 messages a
minute: after Cloud Tasks lost or refused thousands, recovery took that many minutes.)
A second delivery of the same message is harmless: the runner's claim is transactional and the
WhatsApp id is derived from the message id, so the recipient deduplicates a resend.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from wagate.contracts import CountHistory, CountSample, MessageDoc, PendingSend
from wagate.domain.messages import MessageStatus
from wagate.errors import DependencyUnavailable, NotFound, WagateError
from wagate.ports import Clock, Store, Where
from wagate.services.alerts import Alerts
from wagate.services.outbox import Outbox

STUCK_AFTER = timedelta(minutes=2)
BATCH = 500
# A sweep goes on with the next batch until this is spent: well under the schedule's minute,
# so sweeps do not overlap (Cloud Scheduler does not wait for the last one).
SWEEP_BUDGET_S = 30.0
WORKERS = 8  # GetTask / CreateTask calls in flight; the local REST client pools 10 connections


@dataclass
class SweepReport:
    reenqueued: int = 0
    regenerated: int = 0
    enqueue_failures: int = 0
    alive: int = 0  # checked: their tasks are in the queue
    left_behind: int = 0  # pending/{id} entries of finished messages, removed


class Sweeper:
    def __init__(
        self,
        store: Store,
        outbox: Outbox,
        clock: Clock,
        *,
        stuck_after: timedelta = STUCK_AFTER,
        budget_s: float = SWEEP_BUDGET_S,
    ) -> None:
        self._store = store
        self._messages = store.collection("messages", MessageDoc)
        self._entries = store.collection("pending", PendingSend)
        self._outbox = outbox
        self._clock = clock
        self._stuck_after = stuck_after
        self._budget_s = budget_s

    def sweep(self) -> SweepReport:
        """Look at due entries, BATCH at a time, until none is left or the time budget is
        spent: after a mass loss (a queue purged, Cloud Tasks down for a while) thousands of
        messages need a task again, and at one batch of 500 a minute 10,000 took 20 minutes."""
        report = SweepReport()
        started = self._clock.monotonic()
        seen: set[str] = set()
        with ThreadPoolExecutor(WORKERS, thread_name_prefix="sweep") as pool:
            while True:
                now = self._clock.now()
                # Oldest-checked first: an entry falls due for a look STUCK_AFTER past its
                # send time, and again that long after each look that found its task alive.
                batch = self._entries.query(
                    [Where("checked_at", "<", now - self._stuck_after)],
                    order_by="checked_at",
                    limit=BATCH,
                )
                # An entry left untouched (a failed call) comes first again: one look a sweep.
                entries = [e for e in batch if e.id not in seen]
                if not entries:
                    break
                seen.update(e.id for e in entries)
                failures = report.enqueue_failures
                self._sweep_batch(entries, now, report, pool)
                if (
                    len(batch) < BATCH
                    or report.enqueue_failures > failures  # Cloud Tasks is struggling
                    or self._clock.monotonic() - started >= self._budget_s
                ):
                    break
        return report

    def _sweep_batch(
        self, entries: list[PendingSend], now: datetime, report: SweepReport, pool: Executor
    ) -> None:
        alive: list[str] = []
        gone: list[PendingSend] = []
        for entry, state in zip(entries, pool.map(self._task_state, entries), strict=True):
            if state == "alive":
                alive.append(entry.id)
            elif state == "gone":
                gone.append(entry)
            else:
                report.enqueue_failures += 1
        to_touch = [*alive, *(self._reenqueue(gone, report, pool) if gone else [])]
        if to_touch:
            # Only moves them back in the line; a failure here costs nothing but that.
            with contextlib.suppress(WagateError):
                self._touch(to_touch, now)
        report.alive += len(alive)

    def _task_state(self, entry: PendingSend) -> Literal["alive", "gone", "unknown"]:
        try:
            return "alive" if self._outbox.task_alive(entry) else "gone"
        except DependencyUnavailable:
            return "unknown"

    def _reenqueue(self, gone: list[PendingSend], report: SweepReport, pool: Executor) -> list[str]:
        """Entries whose task is gone: the message, if still pending, gets a task again; an
        entry whose message is finished (its delete was lost) or missing is removed. Returns
        the entries to touch: re-enqueued, or found alive under a newer task generation."""
        messages = {doc.id: doc for doc in self._messages.get_many([e.id for e in gone])}
        left_behind: list[str] = []
        to_touch: list[str] = []
        outcomes = pool.map(lambda e: self._outbox.enqueue_again(e, messages.get(e.id)), gone)
        for entry, outcome in zip(gone, outcomes, strict=True):
            if outcome == "left_behind":
                left_behind.append(entry.id)
            elif outcome in ("created", "regenerated"):
                report.reenqueued += 1
                if outcome == "regenerated":
                    report.regenerated += 1
                to_touch.append(entry.id)
            elif outcome == "alive":  # under a newer generation, or created meanwhile
                to_touch.append(entry.id)
            else:
                report.enqueue_failures += 1
        if left_behind:
            with contextlib.suppress(WagateError):
                self._store.patch_many([], [("pending", i) for i in left_behind])
            report.left_behind += len(left_behind)
        return to_touch

    def _touch(self, entry_ids: list[str], now: datetime) -> None:
        """Set checked_at; an entry deleted meanwhile (its message was sent) fails the batch:
        the batch is split until the others are written."""
        try:
            self._store.patch_many([("pending", i, {"checked_at": now}) for i in entry_ids])
        except NotFound:
            if len(entry_ids) > 1:
                half = len(entry_ids) // 2
                self._touch(entry_ids[:half], now)
                self._touch(entry_ids[half:], now)


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
