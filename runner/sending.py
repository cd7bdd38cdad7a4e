"""POST /tasks/send: deliver one message to WhatsApp exactly once (SPEC §3).

`SendHandler.handle` runs named steps — admit, wait_for_chat_order, pace, claim, deliver,
record_sent — each answering with a SendResult (runner/send_results.py holds the one result →
HTTP table) or handing on to the next.

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
from datetime import datetime

from runner.chat_actions import ActionDelivery
from runner.chat_order import ChatOrder
from runner.context import ShardContext
from runner.group_commit import GroupClaim, GroupCommit
from runner.order_gate import OrderGate, SendKey
from runner.pacing import Pacer
from runner.parking import Parking, TaskRef
from runner.send_records import SendRecords
from runner.send_results import SendOutcome, SendResult
from runner.sent_index import SentIndex
from runner.store_deadlines import STORE_CLAIM_TIMEOUT_S, STORE_READ_TIMEOUT_S, within
from runner.supervisor import SessionSupervisor
from runner.tenant_limits import TenantLimitsCache
from wagate.contracts import TASK_SETTLED_AFTER_S, MessageDoc, SendTask
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
Out = SendOutcome

ORDER_WAIT_S = 25.0
CONNECT_WATCH_S = 600.0  # parked sends of a session still down after this keep their backoff
# The api creates a task while it writes the message (wagate/services/outbox.py), so a task
# may arrive moments before its message is written: its claim is retried this long...
WRITE_RACE_S = 1.0
# ...and answered 503 until this age; a message still missing then was never written (the api
# withdraws the task of a failed write, but a withdrawal can fail): the task is dropped.
UNWRITTEN_GRACE_S = 120.0


class SendHandler:
    """`gate` comes wired (runner/__main__.py): its SentIndex is this handler's `index`."""

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
        self._limits = TenantLimitsCache(ctx)
        self._order = ChatOrder()
        self._durable = ctx.durable
        self._messages = StoredMessages(ctx.store)
        self._records = SendRecords(ctx, writes, gate)
        self._actions = ActionDelivery(ctx)
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
    ) -> SendResult:
        """`ref` names the task (from Cloud Tasks' dispatch headers), so that a send turned
        away for now can be woken when it can succeed (runner/parking.py)."""
        self.parking.arrived(task.message_id)
        if task.to is not None and task.created_at is not None:
            # Pending until it finishes, whatever this attempt's answer: a send turned away now
            # (not connected, paced) still holds its chat's later messages back.
            self._gate.saw(self._send_key(task), _send_at(task))
        refused = self.admit(task, supervisor, draining=draining, ref=ref)
        if refused is not None:
            return refused
        assert supervisor is not None and self._ctx.fence is not None
        complete = await self._complete(task)
        if isinstance(complete, SendResult):
            return complete
        task = complete
        assert task.to is not None
        done = self._sent_here(task)
        if done is not None:
            return done
        self._gate.saw(self._send_key(task), _send_at(task))
        held = await self.wait_for_chat_order(task, ref)
        if held is not None:
            return held
        paced = await self.pace(task, supervisor.tenant_id, ref)
        if paced is not None:
            return paced
        claimed = await self.claim(task, self._ctx.fence)
        if isinstance(claimed, SendResult):
            return claimed
        doc, by_claim = claimed
        result = SendResult(Out.INTERRUPTED, "send interrupted")
        try:
            result = await self.deliver(doc, supervisor, self._ctx.fence, claimed=by_claim)
            return result
        finally:
            self._index.done(doc.wa_id)
            await self._order.finished(doc.session_id, doc.to)
            if result.status == 200:  # no longer pending: the chat's next send may go
                self.parking.chat_moved(doc.session_id, doc.to)
            self.parking.session_moved(doc.session_id)

    # ------------------------------------------------------------ the steps

    def admit(
        self,
        task: SendTask,
        supervisor: SessionSupervisor | None,
        *,
        draining: bool,
        ref: TaskRef | None,
    ) -> SendResult | None:
        """Refuse early, without touching the message, when this runner cannot send now."""
        if draining or self._ctx.fence is None:
            return SendResult(Out.NOT_SERVING, "not serving this shard now")
        if supervisor is None:
            return SendResult(Out.SESSION_ELSEWHERE, "session not on this runner")
        if not supervisor.connected:
            if ref is not None and task.created_at is not None:
                self.parking.park_for_session(
                    task.message_id, task.session_id, task.created_at, ref
                )
                self._wake_on_connect(supervisor)
            return SendResult(Out.SESSION_DOWN, f"session is {supervisor.state.value}")
        return None

    async def _complete(self, task: SendTask) -> SendTask | SendResult:
        """A task from an older api version carries no recipient: read it from the message."""
        if task.to is not None and task.created_at is not None:
            return task
        ctx = self._ctx
        try:
            current = await within(STORE_READ_TIMEOUT_S, ctx.io(ctx.messages.get, task.message_id))
        except DependencyUnavailable as e:
            return SendResult(Out.STORE_UNAVAILABLE, e.message)
        if current is None:
            return SendResult(Out.UNKNOWN_MESSAGE)
        return task.model_copy(update={"to": current.to, "created_at": current.created_at})

    def _sent_here(self, task: SendTask) -> SendResult | None:
        """Sent from here before (its `sent` may still wait in the journal): never again."""
        assert task.to is not None
        known = self._index.get(whatsapp_message_id(task.message_id))
        if known is None or known[1] not in ON_WHATSAPP:
            return None
        self.deduplicated += 1
        self._records.forget(task.message_id, task.session_id, task.to)
        self.parking.chat_moved(task.session_id, task.to)
        return SendResult(Out.DEDUPLICATED, message_status=known[1])

    async def wait_for_chat_order(self, task: SendTask, ref: TaskRef | None) -> SendResult | None:
        """Per-chat order (docs/messaging.md): hold while an older message to the chat is
        pending; past ORDER_WAIT_S, park the task and answer 503."""
        assert task.to is not None and task.created_at is not None
        try:
            if await self._wait_for_earlier(task):
                return None
        except WagateError as e:
            return SendResult(Out.STORE_UNAVAILABLE, e.message)
        if ref is not None:
            self.parking.park_for_chat(
                task.message_id, task.session_id, task.to, task.created_at, ref
            )
        return SendResult(Out.EARLIER_PENDING, "an earlier message to this chat is pending")

    async def pace(self, task: SendTask, tenant_id: str, ref: TaskRef | None) -> SendResult | None:
        """The session's token bucket (SPEC §3 pacing): 429 with the wait, the task parked."""
        assert task.created_at is not None
        limits = await self._limits.get(tenant_id)
        wait = self._pacer.take(task.session_id, limits.pacing_per_second, limits.pacing_burst)
        if wait <= 0:
            return None
        if ref is not None:
            self.parking.park_for_session(task.message_id, task.session_id, task.created_at, ref)
            self.parking.drip(task.session_id, wait)
        return SendResult(Out.PACED, "session pacing", wait_s=wait)

    async def claim(self, task: SendTask, fence: Fence) -> tuple[MessageDoc, bool] | SendResult:
        """The message and whether the store's claim made it ours: claimed in a fenced
        transaction, or, while the store is away, taken from the task's snapshot (not claimed).
        The pacing token goes back when nothing will be sent."""
        assert task.to is not None
        try:
            if task.snapshot is not None and self._durable.store_degraded:
                # Known outage: do not wait for the claim's timeout on every send.
                raise DependencyUnavailable("the store is unreachable")
            return await self._claim(task, fence), True
        except lifecycle.NotClaimable as done:
            self._pacer.give_back(task.session_id)
            self.deduplicated += 1
            self._records.forget(task.message_id, task.session_id, task.to)
            self.parking.chat_moved(task.session_id, task.to)
            self.parking.session_moved(task.session_id)
            return SendResult(Out.DEDUPLICATED, message_status=done.status)
        except NotFound:
            self._pacer.give_back(task.session_id)
            if self._age(task) < UNWRITTEN_GRACE_S:
                return SendResult(Out.NOT_WRITTEN_YET, "message not written yet")
            self._records.forget(task.message_id, task.session_id, task.to)
            return SendResult(Out.UNKNOWN_MESSAGE)
        except DependencyUnavailable as e:
            self._durable.note_failure(e)
            unsettled = TASK_SETTLED_AFTER_S - self._age(task)
            unclaimed = self._records.from_snapshot(task) if unsettled <= 0 else None
            if unclaimed is None:
                # No snapshot: only the store knows what to send. A young one: its write may
                # have failed and its task be on the way out (wagate/services/outbox.py).
                self._pacer.give_back(task.session_id)
                return SendResult(Out.STORE_UNAVAILABLE, e.message, wait_s=max(5.0, unsettled))
            self._index.sending(unclaimed.wa_id)
            return unclaimed, False
        except WagateError as e:
            self._pacer.give_back(task.session_id)
            return SendResult(Out.STORE_UNAVAILABLE, e.message)

    async def deliver(
        self, doc: MessageDoc, supervisor: SessionSupervisor, fence: Fence, *, claimed: bool
    ) -> SendResult:
        """Send with the WhatsApp id derived from the message id, wait for the server ack, and
        record the outcome: permanent errors and the last attempt are dead (200, the queue
        must stop), other failures retry."""
        started = self._ctx.clock.now()
        try:
            ack = await self._actions.transmit(doc, supervisor)  # a message or a chat action
        except PermanentSendError as e:
            await self._records.failure(
                doc, fence, MessageStatus.DEAD, e, claimed=claimed, started=started
            )
            return SendResult(Out.DEAD, e.message)
        except TransientSendError as e:
            last = doc.attempts >= self._ctx.settings.max_send_attempts
            status = MessageStatus.DEAD if last else MessageStatus.FAILED
            await self._records.failure(doc, fence, status, e, claimed=claimed, started=started)
            if last:
                return SendResult(Out.DEAD, e.message)
            return SendResult(Out.FAILED, e.message, wait_s=e.retry_after or 5)
        self.sent += 1
        return await self.record_sent(doc, ack.server_ts, started, claimed=claimed)

    async def record_sent(
        self, doc: MessageDoc, acked_at: datetime, started: datetime, *, claimed: bool
    ) -> SendResult:
        """`sent` in the store (a claimed send) or the journal, before the 200. A crash before
        it leads to a resend with the same WhatsApp id, which the recipient deduplicates."""
        try:
            journaled = await self._records.write_sent(doc, acked_at, started, claimed=claimed)
        except DependencyUnavailable:
            # Neither the store nor the journal took it. WhatsApp has the message; the retry
            # resends with the same id (deduplicated by the recipient) and records it then.
            return SendResult(Out.NOT_RECORDED)
        self._index.put(doc.wa_id, doc.id, MessageStatus.SENT)
        self._records.forget(doc.id, doc.session_id, doc.to, recorded=not journaled)
        if journaled:
            self.sent_without_store += 1
            return SendResult(Out.SENT_JOURNALED, wa_id=doc.wa_id)
        return SendResult(Out.SENT, wa_id=doc.wa_id)

    # ------------------------------------------------------------ helpers

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

    async def _wait_for_earlier(self, message: SendTask) -> bool:
        """True once no older, due message to the same chat is pending (bounded wait)."""
        assert message.to is not None

        async def blocked() -> bool:
            key = self._send_key(message, self._ctx.clock.now())
            if message.snapshot is not None and self._durable.store_degraded:
                return self._gate.blocked_without_store(key)  # the store is away: what we know
            try:
                return await within(STORE_READ_TIMEOUT_S, self._gate.has_earlier(key))
            except DependencyUnavailable as e:
                if message.snapshot is None:
                    raise
                self._durable.note_failure(e)
                return self._gate.blocked_without_store(key)

        return await self._order.wait_until_clear(
            message.session_id, message.to, blocked, ORDER_WAIT_S
        )

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


def _send_at(task: SendTask) -> datetime | None:
    return task.snapshot.send_at if task.snapshot is not None else None
