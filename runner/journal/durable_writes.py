"""The write-behind: writes Firestore could not take, kept in the local journal
(runner/journal/entries.py) and replayed in order once it answers again (docs/outage.md).

`DurableWrites.write(kind, key, record, direct)` runs the normal store write (`direct`) when the
journal is empty; if the store fails (DependencyUnavailable) or does not answer within
`timeout_s` — or older journaled writes still wait, which keeps every document's writes in
order — the record is appended to the journal instead, and the caller returns only once that
append is on disk. A failure is an outage (`store_degraded`); a timeout only once a ping fails
too, since a store under load is slow, not down (`note_failure`). A background replayer
applies the journal oldest first through one handler per kind (each idempotent: statuses only
move forward, inbound messages are created once by WhatsApp id, session patches are fenced) and
deletes what it applied; it backs off while the store stays away. A record that cannot be
applied for a reason other than an outage is parked (kept, counted, logged), never silently
dropped.

A store call that timed out may still land later; until it has finished, writes to the same
key go to the journal and the replayer waits, so such a late write can never overtake a newer
one.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from runner.io import Offload
from runner.journal.entries import Entry, Journal
from runner.journal.session_patch import SessionPatch, session_patcher
from wagate.contracts import SessionDoc
from wagate.domain.backoff import Backoff
from wagate.errors import DependencyUnavailable, FencedOut, NotFound
from wagate.logs import get_logger
from wagate.ports import Fence, Store

log = get_logger("wagate.runner.journal")
T = TypeVar("T")

STORE_TIMEOUT_S = 10.0  # a write that takes longer is journaled (and the store probed)
# A call that timed out makes the store "unreachable" only if a ping then fails too: a store
# under load answers slowly but answers (StoreTimedOut, DurableWrites.note_failure).
PROBE_TIMEOUT_S = 2.0  # a one-document read: a store under load answers it well within this
REPLAY_TIMEOUT_S = 20.0
REPLAY_BATCH = 100


class StoreTimedOut(DependencyUnavailable):
    """A store call did not answer in time: the store is slow, or down; a ping tells which."""


Handler = Callable[[list[Entry]], Awaitable[None]]


class DurableWrites:
    """Store writes that must not be lost: direct while the store answers, journaled while it
    does not, replayed in order (see the module docstring)."""

    def __init__(
        self,
        journal: Journal,
        io: Offload,
        store: Store,
        *,
        timeout_s: float = STORE_TIMEOUT_S,
        backoff: Backoff | None = None,
    ) -> None:
        self.journal = journal
        self._io = io
        self._store = store
        self._sessions = store.collection("sessions", SessionDoc)
        self._timeout_s = timeout_s
        self._backoff = backoff or Backoff(base=0.5, cap=10.0)
        self._handlers: dict[str, tuple[Handler, bool]] = {}
        self._orphans: Counter[str] = Counter()
        self._wake: asyncio.Event | None = None
        self._runner: asyncio.Task[None] | None = None
        self.degraded_since: float | None = None
        self._probe: asyncio.Future[None] | None = None
        self.slow_answers = 0  # calls that timed out while a ping answered: slow, not down
        self.replayed = 0
        self.journaled = 0
        self.last_catch_up_s: float | None = None
        self._catch_up_started: float | None = None
        self.handle("session", self._replay_sessions)

    # ------------------------------------------------------------ state for health / tests

    @property
    def backlog(self) -> int:
        return self.journal.backlog

    @property
    def store_degraded(self) -> bool:
        """True from the first store call that failed as an outage (or timed out) until a
        write, replay or probe succeeds. While it is, sends that carry a snapshot do not wait
        for the store at all (runner/sending.py)."""
        return self.degraded_since is not None

    def note_outage(self, why: str) -> None:
        if self.degraded_since is None:
            self.degraded_since = time.monotonic()
            log.warning("store unreachable: writes go to the local journal", why=why)

    def note_failure(self, error: DependencyUnavailable) -> None:
        """A store call failed: an outage if the store said so (or its breaker is open); if it
        merely did not answer in time, only once a ping fails too. A store under load
        (batch writes at a p99 of 2 s on the emulator) must not be taken for a dead one: in
        outage mode every send skips the store and every status waits in the journal."""
        if not isinstance(error, StoreTimedOut):
            self.note_outage(error.message)
            return
        if self.degraded_since is not None or self._probe is not None:
            return
        self._probe = asyncio.ensure_future(self._slow_or_down(error.message))

    async def _slow_or_down(self, why: str) -> None:
        try:
            await self.bounded(["_probe"], self._io(self._store.ping), PROBE_TIMEOUT_S)
        except DependencyUnavailable as e:
            self.note_outage(f"{why}; a ping failed too ({e.message})")
        else:
            self.slow_answers += 1
            log.info("store slow, not down: a call timed out but a ping answered", why=why)
        finally:
            self._probe = None

    def _note_answer(self) -> None:
        if self.degraded_since is not None:
            log.info("store reachable again", after_s=round(time.monotonic() - self.degraded_since))
            self.degraded_since = None

    # ------------------------------------------------------------ writing

    def handle(self, kind: str, handler: Handler, *, batched: bool = False) -> None:
        """Register how entries of `kind` are replayed. A batched handler gets runs of
        consecutive entries of its kind (up to REPLAY_BATCH) in one call."""
        self._handlers[kind] = (handler, batched)

    async def write(
        self,
        kind: str,
        key: str,
        record: BaseModel,
        direct: Callable[[], Awaitable[object]] | None,
    ) -> bool:
        """Apply `direct()` if the store takes it now, else journal `record` durably.
        Returns True if it was journaled. `direct=None` journals without trying the store
        (the caller knows the normal write does not apply, e.g. an unclaimed message)."""
        if direct is not None and self.journal.backlog == 0 and not self._orphans[key]:
            try:
                await self.bounded([key], direct(), self._timeout_s)
                self._note_answer()
                return False
            except DependencyUnavailable as e:
                self.note_failure(e)
        try:
            await self.journal.append(kind, key, record.model_dump_json())
        except sqlite3.Error as e:
            raise DependencyUnavailable(f"the local journal refused a write: {e}") from e
        self.journaled += 1
        self.wake()
        return True

    def write_now(self, kind: str, key: str, record: BaseModel) -> None:
        """Journal from a worker thread (no store attempt)."""
        self.journal.append_now(kind, key, record.model_dump_json())
        self.journaled += 1

    async def bounded(self, keys: Iterable[str], call: Awaitable[T], timeout_s: float) -> T:
        """Await a store call for at most `timeout_s`. If it does not answer in time it is
        left running (a thread cannot be cancelled) and its keys are marked until it ends."""
        task = asyncio.ensure_future(call)
        try:
            return await asyncio.wait_for(asyncio.shield(task), timeout_s)
        except TimeoutError:
            held = list(keys)
            self._orphans.update(held)

            def ended(done: asyncio.Future[T]) -> None:
                self._orphans.subtract(held)
                for k in held:
                    if self._orphans[k] <= 0:
                        del self._orphans[k]
                if not done.cancelled():
                    done.exception()  # retrieved: its failure was already handled as an outage
                self.wake()

            task.add_done_callback(ended)
            raise StoreTimedOut(
                f"the store did not answer within {timeout_s:.0f}s", retry_after=5
            ) from None

    # ------------------------------------------------------------ session state

    async def update_session(
        self, session_id: str, fence: Fence, fields: dict[str, Any], at: datetime
    ) -> None:
        patch = SessionPatch(
            session_id=session_id,
            fence_shard=fence.shard,
            fence_token=fence.token,
            fields=to_jsonable_python(fields),
            at=at,
        )
        await self.write(
            "session",
            f"sessions/{session_id}",
            patch,
            lambda: self._io(
                self._sessions.update, session_id, session_patcher(patch), fence=fence
            ),
        )

    async def _replay_sessions(self, entries: list[Entry]) -> None:
        for entry in entries:
            patch = SessionPatch.model_validate_json(entry.body)
            fence = Fence(patch.fence_shard, patch.fence_token)
            try:
                await self._io(
                    self._sessions.update, patch.session_id, session_patcher(patch), fence=fence
                )
            except (FencedOut, NotFound) as e:
                # The shard changed hands (its new owner writes the state now) or the session
                # was deleted: this state is history.
                log.info(
                    "journaled session state superseded", session_id=patch.session_id, why=e.code
                )

    # ------------------------------------------------------------ replay

    def wake(self) -> None:
        if self._wake is not None:
            self._wake.set()
        self.start()

    def start(self) -> None:
        """Start the replayer (idempotent); needs a running event loop."""
        if self._runner is not None and not self._runner.done():
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        self._runner = asyncio.create_task(self._run(), name="journal-replay")

    async def stop(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None

    async def _run(self) -> None:
        """Replay the journal for ever: oldest first, backing off while the store is away.
        One at a time (`start`): two replayers would apply entries twice."""
        self._wake = asyncio.Event()
        while True:
            try:
                await self._replay_until_empty()
            except Exception as e:  # a bug must not end the replayer for good
                log.error("journal replayer failed; restarting", error=f"{type(e).__name__}: {e}")
                await asyncio.sleep(1.0)

    async def _replay_until_empty(self) -> None:
        assert self._wake is not None
        failures = 0
        while True:
            self._wake.clear()
            entries = await self.journal.oldest_async(REPLAY_BATCH)
            if not entries:
                self._caught_up()
                if self.store_degraded:  # nothing to replay: ask the store whether it is back
                    try:
                        await self.bounded(["_probe"], self._io(self._store.ping), self._timeout_s)
                        self._note_answer()
                        failures = 0
                    except DependencyUnavailable:
                        await asyncio.sleep(max(0.2, self._backoff.delay(failures)))
                        failures += 1
                    continue
                # Worker threads append without waking us: look again every second.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 1.0)
                continue
            group = self._next_group(entries)
            if any(self._orphans[e.key] for e in group):
                with contextlib.suppress(TimeoutError):  # a late store call is still running
                    await asyncio.wait_for(self._wake.wait(), 1.0)
                continue
            try:
                await self._replay(group)
            except DependencyUnavailable as e:
                self.note_failure(e)
                delay = max(0.2, self._backoff.delay(failures))
                failures += 1
                await asyncio.sleep(delay)
                continue
            if self._catch_up_started is None:  # from the first success to an empty journal
                self._catch_up_started = time.monotonic()
            failures = 0
            self._note_answer()

    async def _replay(self, group: list[Entry]) -> None:
        """Apply a group and delete it; a group that fails for another reason than an outage
        is retried entry by entry, and only the entries that fail alone are parked."""
        try:
            await self._apply(group)
        except DependencyUnavailable:
            raise
        except Exception as e:
            if len(group) > 1:
                for entry in group:
                    await self._replay([entry])
                return
            log.error(
                "journal entry could not be replayed; parked",
                kind=group[0].kind,
                seq=group[0].seq,
                error=f"{type(e).__name__}: {e}",
            )
            await self.journal.park_async([group[0].seq], f"{type(e).__name__}: {e}")
            return
        await self.journal.remove_async([e.seq for e in group])
        self.replayed += len(group)

    def _caught_up(self) -> None:
        if self._catch_up_started is not None:
            self.last_catch_up_s = time.monotonic() - self._catch_up_started
            self._catch_up_started = None
            log.info("journal replayed", seconds=round(self.last_catch_up_s, 2))

    def _next_group(self, entries: list[Entry]) -> list[Entry]:
        first = entries[0]
        _, batched = self._handlers.get(first.kind, (None, False))
        if not batched:
            return [first]
        group = []
        for entry in entries:
            if entry.kind != first.kind:
                break
            group.append(entry)
        return group

    async def _apply(self, group: list[Entry]) -> None:
        registered = self._handlers.get(group[0].kind)
        if registered is None:
            raise LookupError(f"no replay handler for journal entries of kind {group[0].kind}")
        handler, _ = registered
        await self.bounded([e.key for e in group], handler(group), REPLAY_TIMEOUT_S)
