"""All sessions of this runner's shard: started when the lease is won, stopped when it is lost,
controlled by control tasks, drained on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from runner.context import ShardContext
from runner.group_commit import GroupCommit
from runner.inbound import InboundSink
from runner.order_gate import OrderGate
from runner.sent_index import SentIndex
from runner.supervisor import SessionSupervisor, desired_running
from runner.writes import MessageEvent
from wagate.contracts import TASK_SETTLED_AFTER_S, ControlTask, PendingSend, SessionDoc
from wagate.domain.ids import send_task_name
from wagate.domain.sessions import DesiredState, SessionState, session_transition
from wagate.errors import NotFound, WagateError
from wagate.logs import get_logger
from wagate.ports import Fence, Where
from wagate.queues import send_queue
from wagate.services.outbox import Outbox

log = get_logger("wagate.runner.shard")
NUDGE_AFTER_CONNECT_S = 10.0
NUDGE_RETRY_S = 300.0  # how long a takeover keeps trying to list the pending sends to nudge
NUDGE_LIMIT = 2000  # a page
NUDGE_PAGES = 50


class Shard:
    def __init__(
        self,
        ctx: ShardContext,
        writes: GroupCommit,
        index: SentIndex,
        outbox: Outbox,
        gate: OrderGate | None = None,
    ) -> None:
        self.ctx = ctx
        self.outbox = outbox  # gives a pending send whose task is gone a task again
        self.gate = gate  # learns the shard's pending sends from the takeover listing
        self.inbound = InboundSink(ctx, writes, index)
        self.supervisors: dict[str, SessionSupervisor] = {}
        self.draining = False
        self.restored_at: float | None = None
        self._restore_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ lease callbacks

    async def on_lease_won(self, fence: Fence) -> None:
        if self.gate is not None:
            self.gate.forget_all()
        self.ctx.fence = fence
        self._restore_task = asyncio.create_task(self._restore_all())

    async def on_lease_lost(self, why: str) -> None:
        self.ctx.fence = None
        if self._restore_task is not None:
            self._restore_task.cancel()
        await self._stop_all(flush=False)  # the new owner restores from the last backup
        with contextlib.suppress(WagateError):
            await self.ctx.io(
                self.ctx.alerts.raise_alert,
                "lease_lost",
                f"shard-{self.ctx.shard}",
                f"runner lost shard {self.ctx.shard}: {why}",
                "critical",
            )

    async def _restore_all(self) -> None:
        """Every session of the shard that should run, connected again from its backup."""
        ctx = self.ctx
        started = asyncio.get_running_loop().time()
        while True:
            try:
                docs: list[SessionDoc] = await ctx.io(
                    ctx.sessions.query, [Where("shard", "==", ctx.shard)]
                )
                break
            except WagateError as e:
                log.warning("cannot list the shard's sessions yet", error=e.message)
                await asyncio.sleep(2)
        wanted = [d for d in docs if desired_running(d)]
        log.info("restoring sessions", shard=ctx.shard, sessions=len(wanted))
        for doc in wanted:
            self._start(doc)
        self.restored_at = asyncio.get_running_loop().time() - started
        await self._nudge_pending()

    async def _nudge_pending(self) -> None:
        """After a takeover, run the shard's pending send tasks now instead of waiting for
        their backoff: recovery is bounded by the lease, not by the queue's retry schedule. A
        send whose task is gone gets one again now (_enqueue_again), not at the sweeper's
        stuck pass minutes later."""
        ctx = self.ctx
        supervisors = list(self.supervisors.values())
        await asyncio.gather(
            *(s.wait_connected(NUDGE_AFTER_CONNECT_S) for s in supervisors),
            return_exceptions=True,
        )
        sem = asyncio.Semaphore(20)

        async def nudge(doc: PendingSend) -> bool:
            """False if its task is gone."""
            queue = send_queue(ctx.settings.queue_prefix, ctx.shard, doc.priority)
            async with sem:
                try:
                    await ctx.io(
                        ctx.queue.run_now, queue, send_task_name(doc.id, doc.task_generation)
                    )
                except NotFound:
                    return False
                except WagateError:  # Cloud Tasks did not answer: the task keeps its schedule
                    pass
            return True

        nudged, requeued, cursor = 0, 0, None
        for _ in range(NUDGE_PAGES):  # the whole backlog, a page at a time
            page = await self._pending_page(cursor)
            if page is None:
                break
            if self.gate is not None:
                self.gate.listed(page)
            now = ctx.clock.now()
            due = [d for d in page if d.send_at is None or d.send_at <= now]
            found = await asyncio.gather(*(nudge(d) for d in due))
            gone = [d for d, there in zip(due, found, strict=True) if not there]
            nudged += len(due) - len(gone)
            requeued += await self._enqueue_again(gone, sem)
            if len(page) < NUDGE_LIMIT:
                if self.gate is not None:
                    self.gate.shard_listed()
                break
            cursor = page[-1].id
        log.info("nudged pending sends", shard=ctx.shard, count=nudged, requeued=requeued)

    async def _enqueue_again(self, gone: list[PendingSend], sem: asyncio.Semaphore) -> int:
        """Pending sends whose task RunTask did not find (withdrawn, lost, expired, or never
        created because Cloud Tasks was down at accept): a task again, as the sweeper gives one
        (Outbox.enqueue_again: the same names and generations, so never two live tasks).
        Passed over, for the sweeper: an entry younger than TASK_SETTLED_AFTER_S (the api may
        still be creating its task) and a send whose outcome waits in this runner's journal
        (it is not pending; the replay says so). Returns how many got a task."""
        ctx = self.ctx
        settled = ctx.clock.now() - timedelta(seconds=TASK_SETTLED_AFTER_S)
        gone = [e for e in gone if (e.send_at or e.created_at) <= settled]
        if not gone:
            return 0
        try:
            # The journal first, then the store: an outcome the replay moves from one to the
            # other in between is seen in the store.
            journaled = await ctx.io(self._journaled_outcomes)
            gone = [e for e in gone if e.id not in journaled]
            docs = await ctx.io(ctx.messages.get_many, [e.id for e in gone])
        except WagateError as e:
            log.warning("pending sends without a task left to the sweeper", error=e.message)
            return 0
        messages = {doc.id: doc for doc in docs}

        async def again(entry: PendingSend) -> bool:
            doc = messages.get(entry.id)
            async with sem:
                try:
                    outcome = await ctx.io(self.outbox.enqueue_again, entry, doc)
                    if outcome == "alive" and doc is not None:  # under the message's generation
                        queue = send_queue(ctx.settings.queue_prefix, ctx.shard, doc.priority)
                        name = send_task_name(doc.id, doc.task_generation)
                        await ctx.io(ctx.queue.run_now, queue, name)
                except WagateError as e:
                    log.warning("send task not created again", message_id=entry.id, error=e.message)
                    return False
            return outcome in ("created", "regenerated")

        return sum(await asyncio.gather(*(again(e) for e in gone)))

    def _journaled_outcomes(self) -> set[str | None]:
        """Messages with a status write (a send's outcome, a receipt) waiting in the journal."""
        entries = self.ctx.durable.journal.entries("message")
        return {MessageEvent.model_validate_json(e.body).message_id for e in entries}

    async def _pending_page(self, cursor: str | None) -> list[PendingSend] | None:
        """A page of the shard's pending/{id} entries (one per unfinished send); None if the
        store did not answer for NUDGE_RETRY_S (a takeover often meets a slow or recovering
        store: without the nudge the backlog waits out each task's backoff, minutes)."""
        ctx = self.ctx
        delay, deadline = 1.0, asyncio.get_running_loop().time() + NUDGE_RETRY_S
        while True:
            try:
                page: list[PendingSend] = await ctx.io(
                    ctx.pending.query,
                    [Where("shard", "==", ctx.shard)],
                    limit=NUDGE_LIMIT,
                    start_after=cursor,
                )
                return page
            except WagateError as e:
                if asyncio.get_running_loop().time() + delay > deadline or self.draining:
                    log.warning("could not list pending messages to nudge", error=e.message)
                    return None
                log.info("pending messages to nudge not listed yet", error=e.message)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    def _start(self, doc: SessionDoc) -> SessionSupervisor:
        existing = self.supervisors.get(doc.id)
        if existing is not None:
            return existing
        supervisor = SessionSupervisor(doc, self.ctx, self.inbound)
        self.supervisors[doc.id] = supervisor
        supervisor.start()
        return supervisor

    async def _stop_all(self, *, flush: bool) -> None:
        supervisors = list(self.supervisors.values())
        self.supervisors.clear()
        await asyncio.gather(*(s.stop(flush=flush) for s in supervisors), return_exceptions=True)

    # ------------------------------------------------------------ control tasks

    async def control(self, task: ControlTask) -> tuple[int, dict[str, object]]:
        ctx = self.ctx
        if self.draining or ctx.fence is None:
            return 503, {"reason": "not serving this shard now"}
        doc = await ctx.io(ctx.sessions.get, task.session_id)
        if doc is None or doc.shard != ctx.shard:
            return 200, {"ignored": "unknown session or another shard"}
        current = self.supervisors.get(doc.id)
        if task.action in ("start", "recover"):
            if doc.desired != DesiredState.RUNNING:
                return 200, {"ignored": "session is stopped"}
            restart = current is not None and (
                current.ended or (task.action == "recover" and not current.connected)
            )
            if current is not None and restart:
                # Start over from the stored backup: an operator may have restored it (`wagate
                # backup restore`), or the session ended (banned, logged out). The flush keeps
                # fresher credentials; against a restored backup its generation check fails.
                self.supervisors.pop(doc.id, None)
                try:
                    await current.stop(flush=True)
                except Exception as e:
                    log.warning("flush before restart failed", session_id=doc.id, error=str(e))
                current = None
            if current is None:
                self._start(doc)
            else:
                current.recover()
            return 200, {"action": task.action}
        # stop / logout
        if current is not None:
            self.supervisors.pop(doc.id, None)
            await current.stop(logout=task.action == "logout")
        if task.action == "logout":
            await ctx.io(ctx.backups.wipe, doc.tenant_id, doc.id)
        state = SessionState.STOPPED
        now = ctx.clock.now()
        await ctx.io(
            ctx.sessions.update,
            doc.id,
            lambda d: d.model_copy(
                update={"state": session_transition(d.state, state), "qr": None, "updated_at": now}
            ),
            fence=ctx.fence,
        )
        await self.inbound.events.stopped(doc, now, task.action)
        return 200, {"action": task.action}

    # ------------------------------------------------------------ periodic + shutdown

    async def backup_loop(self) -> None:
        while True:
            await asyncio.sleep(self.ctx.settings.backup_period_s)
            for supervisor in list(self.supervisors.values()):
                try:
                    await supervisor.periodic_backup()
                except Exception as e:
                    # One session's trouble (a store outage…) must not end the loop for all.
                    log.warning(
                        "periodic backup failed", session_id=supervisor.session_id, error=str(e)
                    )

    async def drain(self) -> None:
        """SIGTERM: stop taking work, flush every backup, close every socket."""
        self.draining = True
        await self._stop_all(flush=True)

    def by_state(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for supervisor in self.supervisors.values():
            counts[supervisor.state.value] = counts.get(supervisor.state.value, 0) + 1
        return counts
