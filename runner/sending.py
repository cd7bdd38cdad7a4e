"""POST /tasks/send: deliver one message to WhatsApp exactly once (SPEC §3).

1. Refuse early, without touching the message, when this runner cannot send now: draining,
   not the lease holder, session not connected (503 + Retry-After) or paced (429).
2. Claim the message in a fenced transaction: `sent` or later → 200 without sending; an older
   message to the same chat still pending → 503 (per-chat order, see docs/messaging.md).
3. Send with the WhatsApp id derived from the message id and wait for the server ack.
4. Record `sent` (fenced) and answer 200. A crash between 3 and 4 leads to a resend with the
   same WhatsApp id, which the recipient deduplicates.
Permanent errors → `dead` + 200 (the queue must stop); the last attempt → `dead` + 200.

While Firestore is unreachable (docs/outage.md) a task that carries a snapshot of its message
is sent from it without the claim: the order check uses what this runner knows is pending,
the WhatsApp id still makes a resend harmless, and the outcome is written to the local journal
(fsync'd) before the 200. A task without a snapshot needs the store: 503. So does a task
younger than TASK_SETTLED_AFTER_S: the api creates it while it writes the message and withdraws
it if the write fails, and until then only the store could tell a written message from one that
never will be (wagate/services/outbox.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from datetime import datetime

from runner.context import ShardContext
from runner.group_commit import GroupClaim, GroupCommit
from runner.order_gate import OrderGate, SendKey
from runner.pacing import Pacer
from runner.parking import Parking, TaskRef
from runner.sent_index import SentIndex
from runner.store_deadlines import STORE_CLAIM_TIMEOUT_S, STORE_READ_TIMEOUT_S, within
from runner.supervisor import SessionSupervisor
from runner.writes import MessageEvent
from wagate.contracts import TASK_SETTLED_AFTER_S, MessageDoc, SendTask, TenantLimits
from wagate.domain import messages as lifecycle
from wagate.domain.ids import whatsapp_message_id
from wagate.domain.messages import ON_WHATSAPP, MessageChange, MessageState, MessageStatus
from wagate.errors import (
    DependencyUnavailable,
    NotFound,
    PermanentSendError,
    TransientSendError,
    WagateError,
)
from wagate.logs import get_logger
from wagate.ports import Fence, StoredMessages

log = get_logger("wagate.runner.send")


@dataclass(frozen=True)
class Outcome:
    status: int
    body: dict[str, object]
    retry_after: float | None = None


ORDER_WAIT_S = 25.0
CONNECT_WATCH_S = 600.0  # parked sends of a session still down after this keep their backoff
LIMITS_CACHE_S = 60.0
LIMITS_RETRY_S = 5.0  # the store did not answer: use what we know, ask again this soon
# The api creates a task while it writes the message (wagate/services/outbox.py), so a task
# may arrive moments before its message is written: its claim is retried this long...
WRITE_RACE_S = 1.0
# ...and answered 503 until this age; a message still missing then was never written (the api
# withdraws the task of a failed write, but a withdrawal can fail): the task is dropped.
UNWRITTEN_GRACE_S = 120.0


class ChatOrder:
    """Lets a send wait, in process, for older messages to the same chat to finish.

    All tasks of a shard reach the same runner, so a predecessor that is pending is normally
    being handled right here; waiting for it (instead of answering 503 and letting the queue's
    exponential backoff decide) keeps a burst to one chat flowing at the send rate.
    """

    def __init__(self) -> None:
        self._changed: dict[tuple[str, str], asyncio.Condition] = {}
        self._waiting: dict[tuple[str, str], int] = {}

    @contextlib.asynccontextmanager
    async def watching(self, session_id: str, to: str) -> AsyncIterator[asyncio.Condition]:
        key = (session_id, to)
        cond = self._changed.setdefault(key, asyncio.Condition())
        self._waiting[key] = self._waiting.get(key, 0) + 1
        try:
            yield cond
        finally:
            self._waiting[key] -= 1
            if self._waiting[key] == 0:  # nobody waits on this chat: forget it
                del self._waiting[key]
                self._changed.pop(key, None)

    async def finished(self, session_id: str, to: str) -> None:
        cond = self._changed.get((session_id, to))
        if cond is not None:
            async with cond:
                cond.notify_all()


class SendHandler:
    def __init__(
        self,
        ctx: ShardContext,
        pacer: Pacer,
        writes: GroupCommit,
        index: SentIndex,
        claims: GroupClaim,
        gate: OrderGate,
    ) -> None:
        self._ctx = ctx
        self._claims = claims
        self._gate = gate
        self._pacer = pacer
        self._writes = writes
        self._index = index
        self._limits: dict[str, tuple[float, TenantLimits]] = {}
        self._order = ChatOrder()
        self._durable = ctx.durable
        self._messages = StoredMessages(ctx.store)
        self._unclaimed_attempts: dict[str, int] = {}  # sends made without the store's claim
        gate.index = index  # messages sent here are not pending, whatever the store says yet
        self.parking = Parking(self._run_now)
        self._watched: dict[str, asyncio.Task[None]] = {}
        self.sent = 0
        self.sent_without_store = 0
        self.deduplicated = 0

    async def handle(
        self,
        task: SendTask,
        supervisor: SessionSupervisor | None,
        *,
        draining: bool,
        ref: TaskRef | None = None,
    ) -> Outcome:
        """`ref` names the task (from Cloud Tasks' dispatch headers), so that a send turned
        away for now can be woken when it can succeed (runner/parking.py)."""
        ctx = self._ctx
        fence = ctx.fence
        self.parking.arrived(task.message_id)
        if task.to is not None and task.created_at is not None:
            # Pending until it finishes, whatever this attempt's answer: a send turned away now
            # (not connected, paced) still holds its chat's later messages back.
            self._gate.saw(
                self._send_key(task), task.snapshot.send_at if task.snapshot is not None else None
            )
        if draining or fence is None:
            return Outcome(503, {"reason": "not serving this shard now"}, retry_after=5)
        if supervisor is None:
            return Outcome(503, {"reason": "session not on this runner"}, retry_after=10)
        if not supervisor.connected:
            if ref is not None and task.created_at is not None:
                self.parking.park_for_session(
                    task.message_id, task.session_id, task.created_at, ref
                )
                self._wake_on_connect(supervisor)
            return Outcome(503, {"reason": f"session is {supervisor.state.value}"}, retry_after=5)
        if task.to is None or task.created_at is None:  # a task from an older api version
            try:
                current = await within(
                    STORE_READ_TIMEOUT_S, ctx.io(ctx.messages.get, task.message_id)
                )
            except DependencyUnavailable as e:
                return Outcome(503, {"reason": e.message}, retry_after=5)
            if current is None:
                return Outcome(200, {"status": "unknown_message"})
            task = task.model_copy(update={"to": current.to, "created_at": current.created_at})
        assert task.to is not None and task.created_at is not None
        wa_id = whatsapp_message_id(task.message_id)
        known = self._index.get(wa_id)
        if known is not None and known[1] in ON_WHATSAPP:
            # Sent from here before (its `sent` may still wait in the journal): never again.
            self.deduplicated += 1
            self._forget(task.message_id, task.session_id, task.to)
            self.parking.chat_moved(task.session_id, task.to)
            return Outcome(200, {"status": known[1].value, "deduplicated": True})
        self._gate.saw(self._send_key(task), task.snapshot.send_at if task.snapshot else None)
        try:
            if not await self._wait_for_earlier(task):
                if ref is not None:
                    self.parking.park_for_chat(
                        task.message_id, task.session_id, task.to, task.created_at, ref
                    )
                return Outcome(503, {"reason": "an earlier message to this chat is pending"}, 2)
        except WagateError as e:
            return Outcome(503, {"reason": e.message}, retry_after=5)
        limits = await self._tenant_limits(supervisor.tenant_id)
        wait = self._pacer.take(task.session_id, limits.pacing_per_second, limits.pacing_burst)
        if wait > 0:
            if ref is not None:
                self.parking.park_for_session(
                    task.message_id, task.session_id, task.created_at, ref
                )
                self.parking.drip(task.session_id, wait)
            return Outcome(429, {"reason": "session pacing"}, retry_after=wait)
        claimed = True
        try:
            if task.snapshot is not None and self._durable.store_degraded:
                # Known outage: do not wait for the claim's timeout on every send.
                raise DependencyUnavailable("the store is unreachable")
            doc = await self._claim(task, fence)
        except lifecycle.NotClaimable as done:
            self._pacer.give_back(task.session_id)
            self.deduplicated += 1
            self._forget(task.message_id, task.session_id, task.to)
            self.parking.chat_moved(task.session_id, task.to)
            self.parking.session_moved(task.session_id)
            return Outcome(200, {"status": done.status.value, "deduplicated": True})
        except NotFound:
            self._pacer.give_back(task.session_id)
            if self._age(task) < UNWRITTEN_GRACE_S:
                return Outcome(503, {"reason": "message not written yet"}, retry_after=1)
            self._forget(task.message_id, task.session_id, task.to)
            return Outcome(200, {"status": "unknown_message"})
        except DependencyUnavailable as e:
            self._durable.note_failure(e)
            unsettled = TASK_SETTLED_AFTER_S - self._age(task)
            unclaimed = self._from_snapshot(task) if unsettled <= 0 else None
            if unclaimed is None:
                # No snapshot: only the store knows what to send. A young one: its write may
                # have failed and its task be on the way out (wagate/services/outbox.py).
                self._pacer.give_back(task.session_id)
                return Outcome(503, {"reason": e.message}, retry_after=max(5.0, unsettled))
            doc, claimed = unclaimed, False
            self._index.sending(doc.wa_id)
        except WagateError as e:
            self._pacer.give_back(task.session_id)
            return Outcome(503, {"reason": e.message}, retry_after=5)
        outcome = Outcome(503, {"reason": "send interrupted"}, retry_after=5)
        try:
            outcome = await self._send(doc, supervisor, fence, claimed=claimed)
            return outcome
        finally:
            self._index.done(doc.wa_id)
            await self._order.finished(doc.session_id, doc.to)
            if outcome.status == 200:  # no longer pending: the chat's next send may go
                self.parking.chat_moved(doc.session_id, doc.to)
            self.parking.session_moved(doc.session_id)

    async def _run_now(self, ref: TaskRef) -> bool:
        try:
            await self._ctx.io(self._ctx.queue.run_now, ref.queue, ref.name)
        except NotFound:
            return False
        return True

    def _wake_on_connect(self, supervisor: SessionSupervisor) -> None:
        """Once the session is connected again, its parked sends go (one watcher a session)."""
        sid = supervisor.session_id
        if sid in self._watched:
            return

        async def watch() -> None:
            try:
                if await supervisor.wait_connected(CONNECT_WATCH_S):
                    self.parking.session_connected(sid)
            finally:
                self._watched.pop(sid, None)

        self._watched[sid] = asyncio.get_running_loop().create_task(watch())

    async def close(self) -> None:
        for job in list(self._watched.values()):
            job.cancel()
        await asyncio.gather(*self._watched.values(), return_exceptions=True)
        await self.parking.close()

    @staticmethod
    def _send_key(task: SendTask, now: datetime | None = None) -> SendKey:
        assert task.to is not None and task.created_at is not None
        return SendKey(
            task.message_id,
            task.session_id,
            task.to,
            task.created_at,
            now or task.created_at,
            whatsapp_message_id(task.message_id),
        )

    def _from_snapshot(self, task: SendTask) -> MessageDoc | None:
        """The message as its task describes it, for a send without the store."""
        snapshot = task.snapshot
        if snapshot is None or task.to is None or task.created_at is None:
            return None
        attempt = self._unclaimed_attempts.get(task.message_id, 0) + 1
        self._unclaimed_attempts[task.message_id] = attempt
        return MessageDoc(
            id=task.message_id,
            tenant_id=snapshot.tenant_id,
            session_id=task.session_id,
            shard=self._ctx.shard,
            to=task.to,
            content=snapshot.content,
            priority=snapshot.priority,
            send_at=snapshot.send_at,
            status=MessageStatus.SENDING,
            attempts=attempt,
            wa_id=whatsapp_message_id(task.message_id),
            created_at=task.created_at,
            updated_at=self._ctx.clock.now(),
        )

    async def _wait_for_earlier(self, message: SendTask) -> bool:
        """True once no older, due message to the same chat is pending (bounded wait)."""
        ctx = self._ctx
        assert message.to is not None
        to = message.to
        deadline = asyncio.get_running_loop().time() + ORDER_WAIT_S

        async def blocked() -> bool:
            key = self._send_key(message, ctx.clock.now())
            if message.snapshot is not None and self._durable.store_degraded:
                return self._gate.blocked_without_store(key)  # the store is away: what we know
            try:
                return await within(STORE_READ_TIMEOUT_S, self._gate.has_earlier(key))
            except DependencyUnavailable as e:
                if message.snapshot is None:
                    raise
                self._durable.note_failure(e)
                return self._gate.blocked_without_store(key)

        async with self._order.watching(message.session_id, to) as cond, cond:
            # The check runs under the condition's lock, so a predecessor finishing meanwhile
            # cannot notify before we wait: no wake-up is lost.
            while await blocked():
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    return False
                with contextlib.suppress(TimeoutError):
                    # Also re-checked every 2 s, for predecessors handled elsewhere.
                    await asyncio.wait_for(cond.wait(), min(remaining, 2.0))
        return True

    async def _tenant_limits(self, tenant_id: str) -> TenantLimits:
        """The tenant's pacing limits, re-read at most once a minute; the last known ones (or
        the defaults) while the store does not answer."""
        now = asyncio.get_running_loop().time()
        cached = self._limits.get(tenant_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        if self._durable.store_degraded:
            return cached[1] if cached is not None else TenantLimits()
        try:
            tenant = await within(
                STORE_READ_TIMEOUT_S, self._ctx.io(self._ctx.tenants.get, tenant_id)
            )
        except DependencyUnavailable:
            limits = cached[1] if cached is not None else TenantLimits()
            self._limits[tenant_id] = (now + LIMITS_RETRY_S, limits)
            return limits
        limits = tenant.limits if tenant else TenantLimits()
        self._limits[tenant_id] = (now + LIMITS_CACHE_S, limits)
        return limits

    def _age(self, task: SendTask) -> float:
        assert task.created_at is not None
        return (self._ctx.clock.now() - task.created_at).total_seconds()

    async def _claim(self, task: SendTask, fence: Fence) -> MessageDoc:
        """Claim in a transaction; a task younger than WRITE_RACE_S whose message is not
        written yet is claimed again a few times first (its write is usually in flight)."""
        pause = 0.05
        while True:
            try:
                return await self._claim_once(task, fence)
            except NotFound:
                if self._age(task) + pause > WRITE_RACE_S:
                    raise
                await asyncio.sleep(pause)
                pause *= 2

    async def _claim_once(self, task: SendTask, fence: Fence) -> MessageDoc:
        now = self._ctx.clock.now()

        def claim(state: MessageState) -> MessageChange:
            return lifecycle.claim(state, now)  # NotClaimable: sent or later already

        claimed = await within(
            STORE_CLAIM_TIMEOUT_S, self._claims.claim(task.message_id, claim, fence)
        )
        self._index.sending(claimed.wa_id)
        self._index.put(claimed.wa_id, claimed.id, MessageStatus.SENDING)
        return claimed

    async def _send(
        self, doc: MessageDoc, supervisor: SessionSupervisor, fence: Fence, *, claimed: bool
    ) -> Outcome:
        content = doc.content.model_dump(mode="json", exclude={"type"}, exclude_none=True)
        started = self._ctx.clock.now()
        try:
            ack = await supervisor.send(doc.wa_id, doc.to, doc.content.type, content)
        except PermanentSendError as e:
            await self._finish(doc, fence, MessageStatus.DEAD, e, claimed=claimed, started=started)
            return Outcome(200, {"status": "dead", "reason": e.message})
        except TransientSendError as e:
            last = doc.attempts >= self._ctx.settings.max_send_attempts
            status = MessageStatus.DEAD if last else MessageStatus.FAILED
            await self._finish(doc, fence, status, e, claimed=claimed, started=started)
            if last:
                return Outcome(200, {"status": "dead", "reason": e.message})
            return Outcome(
                503, {"status": "failed", "reason": e.message}, retry_after=e.retry_after or 5
            )
        self.sent += 1
        event = self._event(doc, MessageStatus.SENT, ack.server_ts, claimed, started)

        def patch_sent() -> Awaitable[None]:
            # A blind patch, group-committed: the claim (fenced) made this message ours, and
            # receipts for it wait until this write is durable (SentIndex), so the status
            # cannot move backwards.
            sent = lifecycle.record_sent(doc.lifecycle(), ack.server_ts, self._ctx.clock.now())
            return self._writes.patch("messages", doc.id, dict(sent.patch))

        try:
            journaled = await self._durable.write(
                "message", f"messages/{doc.id}", event, patch_sent if claimed else None
            )
        except DependencyUnavailable:
            # Neither the store nor the journal took it. WhatsApp has the message; the retry
            # resends with the same id (deduplicated by the recipient) and records it then.
            return Outcome(503, {"status": "sent", "reason": "could not record yet"}, 5)
        self._index.put(doc.wa_id, doc.id, MessageStatus.SENT)
        self._forget(doc.id, doc.session_id, doc.to, recorded=not journaled)
        if journaled:
            self.sent_without_store += 1
            return Outcome(200, {"status": "sent", "wa_id": doc.wa_id, "recorded": "journal"})
        return Outcome(200, {"status": "sent", "wa_id": doc.wa_id})

    def _forget(self, message_id: str, session_id: str, to: str, *, recorded: bool = True) -> None:
        """Sent, dead or gone: no longer pending for its chat's order, no attempts to count.
        Its pending/{id} entry goes with the next batch: WhatsApp has the message (or it is
        dead, which holds nothing back), so its successors may go even before that lands.
        Not while the outcome waits in the journal (not `recorded` in the store): until the
        replay the store still says pending, and the entry keeps the sweeper looking at it;
        the order check then drops it as left behind."""
        self._gate.finished(message_id, session_id, to)
        self._unclaimed_attempts.pop(message_id, None)
        if recorded:
            self._writes.discard("pending", message_id)

    @staticmethod
    def _event(
        doc: MessageDoc,
        status: MessageStatus,
        at: datetime,
        claimed: bool,
        started: datetime,
        error: WagateError | None = None,
    ) -> MessageEvent:
        return MessageEvent(
            message_id=doc.id,
            session_id=doc.session_id,
            tenant_id=doc.tenant_id,
            wa_id=doc.wa_id,
            status=status,
            at=at,
            started_at=started,
            claimed=claimed,
            error_code=error.code if error is not None else None,
            error_message=error.message if error is not None else None,
        )

    async def _finish(
        self,
        doc: MessageDoc,
        fence: Fence,
        status: MessageStatus,
        error: WagateError,
        *,
        claimed: bool,
        started: datetime,
    ) -> None:
        """Record `failed` or `dead`: in the store (fenced), or the journal while it is away."""
        ctx = self._ctx
        now = ctx.clock.now()

        def record(state: MessageState) -> MessageChange:
            dead = status == MessageStatus.DEAD
            return lifecycle.record_failure(state, error.code, error.message, now, dead=dead)

        def update_in_store() -> Awaitable[MessageDoc]:
            return ctx.io(self._messages.update, doc.id, record, fence=fence)

        event = self._event(doc, status, now, claimed, started, error)
        journaled = await self._durable.write(
            "message", f"messages/{doc.id}", event, update_in_store if claimed else None
        )
        if status == MessageStatus.DEAD:
            self._forget(doc.id, doc.session_id, doc.to, recorded=not journaled)
