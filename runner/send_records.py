"""How a send's outcome is recorded: `sent`, `failed` or `dead` in the store through the
message aggregate's steps, or in the runner's journal while the store is away
(runner/journal/); and what a finished send leaves behind (its chat-order entry, its
pending/{id} entry, the attempts counted without the store)."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime

from runner.chat_actions import target_patches
from runner.context import ShardContext
from runner.group_commit import GroupCommit
from runner.order_gate import OrderGate
from runner.writes import MessageEvent
from wagate.contracts import MessageDoc, SendTask
from wagate.domain import messages as lifecycle
from wagate.domain.ids import whatsapp_message_id
from wagate.domain.messages import MessageChange, MessageState, MessageStatus
from wagate.errors import WagateError
from wagate.ports import Fence, StoredMessages


class SendRecords:
    def __init__(self, ctx: ShardContext, writes: GroupCommit, gate: OrderGate) -> None:
        self._ctx = ctx
        self._writes = writes
        self._gate = gate
        self._durable = ctx.durable
        self._messages = StoredMessages(ctx.store)
        self._unclaimed_attempts: dict[str, int] = {}  # sends made without the store's claim

    def from_snapshot(self, task: SendTask) -> MessageDoc | None:
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

    async def write_sent(
        self, doc: MessageDoc, acked_at: datetime, started: datetime, *, claimed: bool
    ) -> bool:
        """Record `sent`; True if it went to the journal (the store is away, or the send was
        not claimed). DependencyUnavailable if neither took it."""
        event = self.event(doc, MessageStatus.SENT, acked_at, claimed, started)

        def patch_sent() -> Awaitable[None]:
            # A blind patch, group-committed: the claim (fenced) made this message ours, and
            # receipts for it wait until this write is durable (SentIndex), so the status
            # cannot move backwards.
            sent = lifecycle.record_sent(doc.lifecycle(), acked_at, self._ctx.clock.now())
            # A sent edit or revoke also lands on the message it changed, in the same batch.
            changed = target_patches(doc, acked_at)
            return self._writes.patch_together([("messages", doc.id, dict(sent.patch)), *changed])

        return await self._durable.write(
            "message", f"messages/{doc.id}", event, patch_sent if claimed else None
        )

    def forget(self, message_id: str, session_id: str, to: str, *, recorded: bool = True) -> None:
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
    def event(
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

    async def failure(
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

        event = self.event(doc, status, now, claimed, started, error)
        journaled = await self._durable.write(
            "message", f"messages/{doc.id}", event, update_in_store if claimed else None
        )
        if status == MessageStatus.DEAD:
            self.forget(doc.id, doc.session_id, doc.to, recorded=not journaled)
