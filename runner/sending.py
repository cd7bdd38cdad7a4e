"""POST /tasks/send: deliver one message to WhatsApp exactly once (SPEC §3).

1. Refuse early, without touching the message, when this runner cannot send now: draining,
   not the lease holder, session not connected (503 + Retry-After) or paced (429).
2. Claim the message in a fenced transaction: `sent` or later → 200 without sending; an older
   message to the same chat still pending → 503 (per-chat order, see docs/messaging.md).
3. Send with the WhatsApp id derived from the message id and wait for the server ack.
4. Record `sent` (fenced) and answer 200. A crash between 3 and 4 leads to a resend with the
   same WhatsApp id, which the recipient deduplicates.
Permanent errors → `dead` + 200 (the queue must stop); the last attempt → `dead` + 200.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from runner.context import ShardContext
from runner.pacing import Pacer
from runner.supervisor import SessionSupervisor
from runner.writes import GroupClaim, GroupCommit, OrderGate, SendKey, SentIndex
from wagate.contracts import MessageDoc, MessageError, SendTask, TenantLimits
from wagate.domain.messages import CLAIMABLE, ON_WHATSAPP, MessageStatus, transition
from wagate.errors import (
    DependencyUnavailable,
    IllegalTransition,
    NotFound,
    PermanentSendError,
    TransientSendError,
    WagateError,
)
from wagate.logs import get_logger
from wagate.ports import Fence

log = get_logger("wagate.runner.send")


@dataclass(frozen=True)
class Outcome:
    status: int
    body: dict[str, object]
    retry_after: float | None = None


class _AlreadyDone(Exception):
    def __init__(self, doc: MessageDoc) -> None:
        self.doc = doc


ORDER_WAIT_S = 25.0
LIMITS_CACHE_S = 60.0
UNWRITTEN_GRACE_S = 120.0  # well inside the queue's 60 s dispatch deadline


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
        self.sent = 0
        self.deduplicated = 0

    async def handle(
        self, task: SendTask, supervisor: SessionSupervisor | None, *, draining: bool
    ) -> Outcome:
        ctx = self._ctx
        fence = ctx.fence
        if draining or fence is None:
            return Outcome(503, {"reason": "not serving this shard now"}, retry_after=5)
        if supervisor is None:
            return Outcome(503, {"reason": "session not on this runner"}, retry_after=10)
        if not supervisor.connected:
            return Outcome(503, {"reason": f"session is {supervisor.state.value}"}, retry_after=5)
        if task.to is None or task.created_at is None:  # a task from an older api version
            current = await ctx.io(ctx.messages.get, task.message_id)
            if current is None:
                return Outcome(200, {"status": "unknown_message"})
            task = task.model_copy(update={"to": current.to, "created_at": current.created_at})
        try:
            if not await self._wait_for_earlier(task):
                return Outcome(503, {"reason": "an earlier message to this chat is pending"}, 2)
        except WagateError as e:
            return Outcome(503, {"reason": e.message}, retry_after=5)
        limits = await self._tenant_limits(supervisor.tenant_id)
        wait = self._pacer.take(task.session_id, limits.pacing_per_second, limits.pacing_burst)
        if wait > 0:
            return Outcome(429, {"reason": "session pacing"}, retry_after=wait)
        try:
            doc = await self._claim(task, fence)
        except _AlreadyDone as done:
            self._pacer.give_back(task.session_id)
            self.deduplicated += 1
            return Outcome(200, {"status": done.doc.status.value, "deduplicated": True})
        except NotFound:
            self._pacer.give_back(task.session_id)
            # The api writes the message and creates its task at the same time: a young task
            # may arrive first. An old one whose message never appeared was for a failed write.
            age = (ctx.clock.now() - task.created_at).total_seconds() if task.created_at else 1e9
            if age < UNWRITTEN_GRACE_S:
                return Outcome(503, {"reason": "message not written yet"}, retry_after=1)
            return Outcome(200, {"status": "unknown_message"})
        except WagateError as e:
            self._pacer.give_back(task.session_id)
            return Outcome(503, {"reason": e.message}, retry_after=5)
        try:
            return await self._send(doc, supervisor, fence)
        finally:
            self._index.done(doc.wa_id)
            await self._order.finished(doc.session_id, doc.to)

    async def _wait_for_earlier(self, message: SendTask) -> bool:
        """True once no older, due message to the same chat is pending (bounded wait)."""
        ctx = self._ctx
        assert message.to is not None and message.created_at is not None
        to, created_at = message.to, message.created_at
        deadline = asyncio.get_running_loop().time() + ORDER_WAIT_S

        async def blocked() -> bool:
            key = SendKey(message.message_id, message.session_id, to, created_at, ctx.clock.now())
            return await self._gate.has_earlier(key)

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
        """The tenant's pacing limits, re-read at most once a minute."""
        now = asyncio.get_running_loop().time()
        cached = self._limits.get(tenant_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        tenant = await self._ctx.io(self._ctx.tenants.get, tenant_id)
        limits = tenant.limits if tenant else TenantLimits()
        self._limits[tenant_id] = (now + LIMITS_CACHE_S, limits)
        return limits

    async def _claim(self, task: SendTask, fence: Fence) -> MessageDoc:
        ctx = self._ctx
        now = ctx.clock.now()

        def claim(doc: MessageDoc) -> MessageDoc:
            if doc.status not in CLAIMABLE:
                raise _AlreadyDone(doc)
            status = transition(doc.status, MessageStatus.SENDING)
            return doc.model_copy(
                update={
                    "status": status,
                    "attempts": doc.attempts + 1,
                    "status_times": {**doc.status_times, status.value: now},
                    "updated_at": now,
                }
            )

        claimed = await self._claims.claim(task.message_id, claim, fence)
        self._index.sending(claimed.wa_id)
        self._index.put(claimed.wa_id, claimed.id, MessageStatus.SENDING)
        return claimed

    async def _send(self, doc: MessageDoc, supervisor: SessionSupervisor, fence: Fence) -> Outcome:
        content = doc.content.model_dump(mode="json", exclude={"type"}, exclude_none=True)
        try:
            ack = await supervisor.send(doc.wa_id, doc.to, doc.content.type, content)
        except PermanentSendError as e:
            await self._finish(doc, fence, MessageStatus.DEAD, error=e)
            return Outcome(200, {"status": "dead", "reason": e.message})
        except TransientSendError as e:
            last = doc.attempts >= self._ctx.settings.max_send_attempts
            status = MessageStatus.DEAD if last else MessageStatus.FAILED
            await self._finish(doc, fence, status, error=e)
            if last:
                return Outcome(200, {"status": "dead", "reason": e.message})
            return Outcome(
                503, {"status": "failed", "reason": e.message}, retry_after=e.retry_after or 5
            )
        self.sent += 1
        try:
            # A blind patch, group-committed: the claim (fenced) made this message ours, and
            # receipts for it wait until this write is durable (SentIndex), so the status
            # cannot move backwards.
            await self._writes.patch(
                "messages",
                doc.id,
                {
                    "status": MessageStatus.SENT,
                    f"status_times.{MessageStatus.SENT.value}": ack.server_ts,
                    "updated_at": self._ctx.clock.now(),
                },
            )
            self._index.put(doc.wa_id, doc.id, MessageStatus.SENT)
        except DependencyUnavailable:
            # WhatsApp has the message; the retry will resend with the same id (deduplicated by
            # the recipient) and record it then.
            return Outcome(503, {"status": "sent", "reason": "could not record yet"}, 5)
        return Outcome(200, {"status": "sent", "wa_id": doc.wa_id})

    async def _finish(
        self,
        doc: MessageDoc,
        fence: Fence,
        status: MessageStatus,
        *,
        error: WagateError | None = None,
        server_ts: object = None,
    ) -> None:
        ctx = self._ctx
        now = ctx.clock.now()

        def record(current: MessageDoc) -> MessageDoc:
            if current.status in ON_WHATSAPP and status != MessageStatus.SENT:
                return current  # a receipt overtook us: WhatsApp has it
            try:
                new = transition(current.status, status)
            except IllegalTransition:
                return current
            update: dict[str, object] = {
                "status": new,
                "status_times": {**current.status_times, new.value: server_ts or now},
                "updated_at": now,
            }
            if error is not None:
                update["errors"] = [
                    *current.errors[-19:],
                    MessageError(
                        at=now, code=error.code, message=error.message, attempt=current.attempts
                    ),
                ]
            if new == MessageStatus.DEAD and error is not None:
                update["dead_reason"] = f"{error.code}: {error.message}"
            return current.model_copy(update=update)

        await ctx.io(ctx.messages.update, doc.id, record, fence=fence)
