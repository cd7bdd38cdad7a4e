"""Inbound messages and receipts: persisted (deduplicated by WhatsApp id), applied to outbound
message status, and announced to the tenant's channels (runner/events.py: a webhook Cloud Task
named after the event id, so a replayed event is refused by Cloud Tasks, not delivered twice).

While Firestore is unreachable both go to the runner's journal (runner/journal/) before the
engine acknowledges them to WhatsApp, and are stored and announced when it is back: the replay
handlers here (`replay_status_events`, `replay_inbound`) do what the direct path does,
idempotently. Outbound status events of our own sends (sent, failed, dead) are replayed by the
same handler, so a message's statuses are applied in the order they happened.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from pydantic import BaseModel

from runner.context import ShardContext
from runner.events import EventAnnouncer
from runner.group_commit import GroupCommit
from runner.journal import Entry
from runner.poll_votes import POLL_VOTE, named_vote
from runner.sent_index import SentIndex
from runner.writes import MessageEvent, replay_step
from wagate.contracts import (
    InboundDoc,
    InboundMediaDoc,
    InboundMediaError,
    MessageDoc,
    WebhookEvent,
)
from wagate.domain import events as ev
from wagate.domain.messages import (
    ON_WHATSAPP,
    PENDING,
    RECEIPTS,
    MessageChange,
    MessageState,
    MessageStatus,
    apply_receipt,
)
from wagate.errors import AlreadyExists, NotFound, WagateError
from wagate.logs import get_logger
from wagate.ports import StoredMessages, Where
from wagate.services.events import event_id, inbound_event_type
from wagate.services.media import received_type

log = get_logger("wagate.runner.inbound")


class InboundRecord(BaseModel):
    """A received message, journaled while the store was unreachable."""

    doc: InboundDoc


class AnnouncedRecord(BaseModel):
    """An event with nothing stored behind it (a group's membership change), journaled while
    the store or the queue could not take its announcement."""

    tenant_id: str
    event: WebhookEvent


class InboundSink:
    def __init__(self, ctx: ShardContext, writes: GroupCommit, index: SentIndex) -> None:
        self._ctx = ctx
        self._writes = writes
        self._index = index
        self._durable = ctx.durable
        self._messages = StoredMessages(ctx.store)
        self.events = EventAnnouncer(ctx)  # the supervisors announce their state changes here
        self.inbound_count = 0
        self.receipt_count = 0
        self._durable.handle("message", self.replay_status_events, batched=True)
        self._durable.handle("inbound", self.replay_inbound)
        self._durable.handle("announce", self.replay_announced)
        self._remember_journaled_sends()

    def _remember_journaled_sends(self) -> None:
        """After a restart: messages whose `sent` still waits in the journal are known as sent
        (a redelivered task is answered without sending, a receipt finds its message)."""
        for entry in self._durable.journal.entries("message"):
            event = MessageEvent.model_validate_json(entry.body)
            if event.message_id and event.status in ON_WHATSAPP:
                self._index.put(event.wa_id, event.message_id, event.status)

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

    async def announce(self, tenant_id: str, event: WebhookEvent) -> None:
        """Announce an event that only lives in its announcement: journaled (and announced by
        the replay) when the store or the queue cannot take it, so an outage does not lose it."""
        try:
            await self._durable.write(
                "announce",
                f"announce/{event.id}",
                AnnouncedRecord(tenant_id=tenant_id, event=event),
                lambda: self.events.announce(tenant_id, event),
            )
        except WagateError as e:
            log.warning("event not announced", session_id=event.session_id, error=e.message)

    async def replay_announced(self, entries: list[Entry]) -> None:
        for entry in entries:
            record = AnnouncedRecord.model_validate_json(entry.body)
            await self.events.announce(record.tenant_id, record.event)

    # ------------------------------------------------------------ inbound messages

    async def _inbound(self, tenant_id: str, session_id: str, msg: ev.InboundMessage) -> None:
        # The file first (bounded, retried): the engine acknowledges the message only after
        # this returns, and a file that cannot be had is recorded as its error.
        media = await self._received_file(tenant_id, session_id, msg)
        doc = InboundDoc(
            id=msg.wa_id,
            session_id=session_id,
            tenant_id=tenant_id,
            chat=msg.chat,
            sender=msg.sender,
            sender_phone=msg.sender_phone,
            sender_lid=msg.sender_lid,
            kind=msg.kind,
            content=msg.content,
            ts=msg.ts,
            from_history=msg.from_history,
            media=media,
            received_at=self._ctx.clock.now(),
        )
        await self._durable.write(
            "inbound",
            f"inbound/{session_id}/{msg.wa_id}",
            InboundRecord(doc=doc),
            lambda: self._store_and_announce(doc, replay=False),
        )

    async def _store_and_announce(self, doc: InboundDoc, *, replay: bool) -> None:
        ctx = self._ctx
        if doc.kind == POLL_VOTE and "options" not in doc.content:
            doc = doc.model_copy(
                update={"content": await named_vote(ctx, doc.session_id, doc.content)}
            )
        repo = ctx.store.subcollection("sessions", doc.session_id, "inbound", InboundDoc)
        try:
            await ctx.io(repo.create, doc)
        except AlreadyExists:
            if not replay:
                return  # seen before (history sync, redelivery): already stored and announced
            # Replayed: stored by an earlier attempt of this very record (same received_at),
            # whose announcement may not have happened; otherwise a duplicate delivery.
            stored = await ctx.io(repo.get, doc.id)
            if stored is None or stored.received_at != doc.received_at:
                return
        else:
            self.inbound_count += 1
        await self._webhook(
            doc.tenant_id,
            WebhookEvent(
                id=event_id(doc.session_id, "in", doc.id),
                type=inbound_event_type(doc.kind, doc.content),
                session_id=doc.session_id,
                created_at=ctx.clock.now(),
                data=await self._received_data(doc),
            ),
        )

    async def _received_file(
        self, tenant_id: str, session_id: str, msg: ev.InboundMessage
    ) -> InboundMediaDoc | None:
        if msg.media is None:
            return None
        if self._ctx.media is None:
            return InboundMediaDoc(
                mime_type=received_type(msg.media.mime_type),
                size=msg.media.size,
                filename=msg.media.filename,
                error=InboundMediaError(
                    code="not_configured", message="this runner has no media bucket"
                ),
            )
        return await self._ctx.media.download(tenant_id, session_id, msg)

    async def _received_data(self, doc: InboundDoc) -> dict[str, Any]:
        """The event's data: the stored document, and for a stored file a fresh signed URL
        (signed when announced, so a replay after an outage carries a live one)."""
        data = doc.model_dump(mode="json", exclude={"tenant_id"})
        if doc.media is not None:
            signed = None
            if doc.media.media_id and self._ctx.media is not None:
                signed = await self._ctx.media.signed_url(doc.tenant_id, doc.media.media_id)
            data["media"]["url"] = signed.url if signed else None
            data["media"]["url_expires_at"] = signed.expires_at.isoformat() if signed else None
        return data

    async def replay_inbound(self, entries: list[Entry]) -> None:
        for entry in entries:
            await self._store_and_announce(
                InboundRecord.model_validate_json(entry.body).doc, replay=True
            )

    # ------------------------------------------------------------ receipts

    async def _receipt(self, tenant_id: str, session_id: str, receipt: ev.Receipt) -> None:
        target = MessageStatus(receipt.kind)
        for wa_id in receipt.wa_ids:
            await self._index.settled(wa_id)  # a receipt may overtake our own 'sent' write
            known = self._index.get(wa_id)
            event = MessageEvent(
                message_id=known[0] if known else None,
                session_id=session_id,
                tenant_id=tenant_id,
                wa_id=wa_id,
                status=target,
                at=receipt.ts,
                chat=receipt.chat,
            )
            if known is None:
                await self._durable.write(
                    "message",
                    f"messages/wa/{wa_id}",
                    event,
                    partial(self._receipt_unknown, event),
                )
                continue
            message_id, status = known
            # Sent here: only its status is known (SentIndex), and the step's patch names only
            # what it changes, so a blind patch will do.
            now = self._ctx.clock.now()
            change = apply_receipt(MessageState(status, updated_at=now), target, receipt.ts, now)
            if not change.changed:
                continue
            await self._durable.write(
                "message",
                f"messages/{message_id}",
                event,
                partial(self._receipt_known, event, change),
            )
            self._index.put(wa_id, message_id, change.state.status)

    async def _receipt_known(self, receipt: MessageEvent, change: MessageChange) -> None:
        """A receipt for a message sent here: written as the aggregate's patch."""
        assert receipt.message_id is not None
        await self._writes.patch("messages", receipt.message_id, dict(change.patch))
        self.receipt_count += 1
        if change.state.status == receipt.status:
            await self._announce(receipt)

    async def _receipt_unknown(self, receipt: MessageEvent) -> None:
        """A receipt for a message this runner did not send (before a restart): look it up."""
        ctx = self._ctx
        message_id = await self._find(receipt)
        if message_id is None:
            return  # a receipt for a message sent from the phone itself
        now = ctx.clock.now()
        event = receipt.model_copy(update={"message_id": message_id})
        try:
            updated = await ctx.io(self._messages.update, message_id, replay_step([event], now))
        except NotFound:
            return
        self._index.put(receipt.wa_id, message_id, updated.status)
        self.receipt_count += 1
        if updated.status == receipt.status:
            await self._announce(event)

    async def _find(self, receipt: MessageEvent) -> str | None:
        ctx = self._ctx
        found: list[MessageDoc] = await ctx.io(
            ctx.messages.query,
            [Where("session_id", "==", receipt.session_id), Where("wa_id", "==", receipt.wa_id)],
            limit=1,
        )
        return found[0].id if found else None

    async def replay_status_events(self, entries: list[Entry]) -> None:
        """Journaled status events (our sends' outcomes, receipts), in order, one transaction
        for the whole run; then the receipts' webhook events (their names make a repeat
        harmless)."""
        ctx = self._ctx
        events: list[MessageEvent] = []
        for entry in entries:
            event = MessageEvent.model_validate_json(entry.body)
            if event.message_id is None:
                found = await self._find(event)
                if found is None:
                    continue
                event = event.model_copy(update={"message_id": found})
            events.append(event)
        by_message: dict[str, list[MessageEvent]] = {}
        for event in events:
            assert event.message_id is not None
            by_message.setdefault(event.message_id, []).append(event)
        if not by_message:
            return
        now = ctx.clock.now()
        steps = {message_id: replay_step(its, now) for message_id, its in by_message.items()}
        results = await ctx.io(self._messages.update_many, steps)
        for message_id, result in results.items():
            if isinstance(result, Exception):
                log.warning(
                    "journaled status not applied", message_id=message_id, error=str(result)
                )
                continue
            self._index.put(result.wa_id, result.id, result.status)
            if result.status not in PENDING:
                # Recorded at last: its pending/{id} entry goes now (SendHandler._forget keeps
                # it while the outcome waits here), not with the sweeper's next pass.
                self._writes.discard("pending", message_id)
            for event in by_message[message_id]:
                # Announced if the message went through this status (not when it was skipped).
                if event.status in RECEIPTS and event.status.value in result.status_times:
                    self.receipt_count += 1
                    await self._announce(event)

    async def _announce(self, receipt: MessageEvent) -> None:
        assert receipt.message_id is not None
        await self._webhook(
            receipt.tenant_id,
            WebhookEvent(
                id=event_id(receipt.session_id, "status", receipt.message_id, receipt.status.value),
                type="message.status",
                session_id=receipt.session_id,
                created_at=self._ctx.clock.now(),
                data={
                    "message_id": receipt.message_id,
                    "wa_id": receipt.wa_id,
                    "status": receipt.status.value,
                    "ts": receipt.at.isoformat(),
                    "chat": receipt.chat,
                },
            ),
        )

    # ------------------------------------------------------------ webhooks

    async def _webhook(self, tenant_id: str, event: WebhookEvent) -> None:
        await self.events.announce(tenant_id, event)
