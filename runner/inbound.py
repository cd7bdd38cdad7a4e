"""Inbound messages and receipts: persisted (deduplicated by WhatsApp id), applied to outbound
message status, and handed to the tenant's webhook through a Cloud Tasks queue.

The webhook task's name is derived from the event id, so a replayed event (history sync after
a reconnect, a redelivered receipt) is refused by Cloud Tasks instead of delivered twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import time

from runner.context import ShardContext
from runner.writes import GroupCommit, SentIndex
from wagate.contracts import InboundDoc, MessageDoc, WebhookEvent, WebhookTask
from wagate.domain import events as ev
from wagate.domain.messages import MessageStatus, advance_by_receipt
from wagate.errors import AlreadyExists, NotFound, TaskAlreadyExists, WagateError
from wagate.logs import get_logger
from wagate.ports import TaskSpec, Where
from wagate.queues import webhook_queue

log = get_logger("wagate.runner.inbound")
TENANT_CACHE_S = 30.0


def event_id(*parts: str) -> str:
    return "evt_" + hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]


class InboundSink:
    def __init__(self, ctx: ShardContext, writes: GroupCommit, index: SentIndex) -> None:
        self._ctx = ctx
        self._writes = writes
        self._index = index
        self._webhook_urls: dict[str, tuple[float, str | None]] = {}
        self.inbound_count = 0
        self.receipt_count = 0

    async def accept(
        self, tenant_id: str, session_id: str, event: ev.Receipt | ev.InboundMessage
    ) -> None:
        try:
            if isinstance(event, ev.InboundMessage):
                await self._inbound(tenant_id, session_id, event)
            else:
                await self._receipt(tenant_id, session_id, event)
        except WagateError as e:
            log.warning("inbound event not stored", session_id=session_id, error=e.message)

    async def _inbound(self, tenant_id: str, session_id: str, msg: ev.InboundMessage) -> None:
        ctx = self._ctx
        doc = InboundDoc(
            id=msg.wa_id,
            session_id=session_id,
            tenant_id=tenant_id,
            chat=msg.chat,
            sender=msg.sender,
            kind=msg.kind,
            content=msg.content,
            ts=msg.ts,
            from_history=msg.from_history,
            received_at=ctx.clock.now(),
        )
        repo = ctx.store.subcollection("sessions", session_id, "inbound", InboundDoc)
        try:
            await ctx.io(repo.create, doc)
        except AlreadyExists:
            return  # seen before (history sync, redelivery): already stored and announced
        self.inbound_count += 1
        await self._webhook(
            tenant_id,
            WebhookEvent(
                id=event_id(session_id, "in", msg.wa_id),
                type="message.received",
                session_id=session_id,
                created_at=ctx.clock.now(),
                data=doc.model_dump(mode="json", exclude={"tenant_id"}),
            ),
        )

    async def _receipt(self, tenant_id: str, session_id: str, receipt: ev.Receipt) -> None:
        ctx = self._ctx
        target = MessageStatus(receipt.kind)
        for wa_id in receipt.wa_ids:
            await self._index.settled(wa_id)  # a receipt may overtake our own 'sent' write
            known = self._index.get(wa_id)
            if known is not None:
                message_id, status = known
                new = advance_by_receipt(status, target)
                if new == status:
                    continue
                await self._writes.patch(
                    "messages",
                    message_id,
                    {
                        "status": new,
                        f"status_times.{new.value}": receipt.ts,
                        "updated_at": ctx.clock.now(),
                    },
                )
                self._index.put(wa_id, message_id, new)
                self.receipt_count += 1
                if new == target:
                    await self._announce(tenant_id, session_id, message_id, wa_id, target, receipt)
                continue
            await self._receipt_unknown(tenant_id, session_id, wa_id, target, receipt)

    async def _receipt_unknown(
        self,
        tenant_id: str,
        session_id: str,
        wa_id: str,
        target: MessageStatus,
        receipt: ev.Receipt,
    ) -> None:
        """A receipt for a message this runner did not send (before a restart): look it up."""
        ctx = self._ctx
        found = await ctx.io(
            ctx.messages.query,
            [Where("session_id", "==", session_id), Where("wa_id", "==", wa_id)],
            limit=1,
        )
        if not found:
            return  # a receipt for a message sent from the phone itself
        message = found[0]
        now = ctx.clock.now()

        def apply(doc: MessageDoc) -> MessageDoc:
            status = advance_by_receipt(doc.status, target)
            if status == doc.status:
                return doc
            times = {**doc.status_times, status.value: receipt.ts}
            return doc.model_copy(
                update={"status": status, "status_times": times, "updated_at": now}
            )

        try:
            updated = await ctx.io(ctx.messages.update, message.id, apply)
        except NotFound:
            return
        self._index.put(wa_id, message.id, updated.status)
        self.receipt_count += 1
        if updated.status == target:
            await self._announce(tenant_id, session_id, message.id, wa_id, target, receipt)

    async def _announce(
        self,
        tenant_id: str,
        session_id: str,
        message_id: str,
        wa_id: str,
        target: MessageStatus,
        receipt: ev.Receipt,
    ) -> None:
        await self._webhook(
            tenant_id,
            WebhookEvent(
                id=event_id(session_id, "status", message_id, target.value),
                type="message.status",
                session_id=session_id,
                created_at=self._ctx.clock.now(),
                data={
                    "message_id": message_id,
                    "wa_id": wa_id,
                    "status": target.value,
                    "ts": receipt.ts.isoformat(),
                },
            ),
        )

    async def _webhook(self, tenant_id: str, event: WebhookEvent) -> None:
        ctx = self._ctx
        if await self._webhook_url(tenant_id) is None:
            return
        task = TaskSpec(
            queue=webhook_queue(ctx.settings.queue_prefix),
            name="wh-" + event.id.removeprefix("evt_"),
            url=ctx.settings.sweeper_url.rstrip("/") + "/webhooks/deliver",
            body=WebhookTask(tenant_id=tenant_id, event=event).model_dump_json().encode(),
            dispatch_deadline_s=30,
        )
        with contextlib.suppress(TaskAlreadyExists):  # the event was announced before
            await ctx.io(ctx.queue.enqueue, task)

    async def _webhook_url(self, tenant_id: str) -> str | None:
        now = time.monotonic()
        cached = self._webhook_urls.get(tenant_id)
        if cached and cached[0] > now:
            return cached[1]
        tenant = await self._ctx.io(self._ctx.tenants.get, tenant_id)
        url = tenant.webhook_url if tenant else None
        self._webhook_urls[tenant_id] = (now + TENANT_CACHE_S, url)
        return url
