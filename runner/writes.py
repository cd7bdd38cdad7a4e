"""How a message's status events (sent, failed, dead, receipts) are applied.

`MessageEvent` is the journaled form of a status write made while the store was unreachable
(runner/journal.py); `apply_status_events` replays it by the status machine's rules, so a
replay never moves a message backwards and applying it twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from wagate.contracts import MessageDoc, MessageError
from wagate.domain.messages import ON_WHATSAPP, MessageStatus, advance_by_receipt, can_transition


class MessageEvent(BaseModel):
    """One status write for an outbound message, as journaled while the store was away."""

    message_id: str | None  # None: a receipt for a message not sent here; found by wa_id
    session_id: str
    tenant_id: str
    wa_id: str
    status: MessageStatus  # sent, failed, dead (our sends) or delivered, read (receipts)
    at: datetime  # the status time (WhatsApp's ack / receipt time)
    started_at: datetime | None = None  # when the send began (an unclaimed send's `sending`)
    # False: the send went ahead without the store's claim, which would have counted the
    # attempt and set `sending`; the replay does both.
    claimed: bool = True
    error_code: str | None = None
    error_message: str | None = None
    chat: str | None = None  # a receipt's chat (for the event's Pub/Sub ordering key)


RECEIPTS = frozenset({MessageStatus.DELIVERED, MessageStatus.READ})


def apply_status_events(
    doc: MessageDoc, events: Sequence[MessageEvent], now: datetime
) -> MessageDoc:
    for event in events:
        doc = apply_status_event(doc, event, now)
    return doc


def apply_status_event(doc: MessageDoc, event: MessageEvent, now: datetime) -> MessageDoc:
    """The message after `event`, by the status machine's rules; unchanged if the event is
    stale (a receipt behind the current status, a send outcome after WhatsApp has it)."""
    current, target = doc.status, event.status
    if target in RECEIPTS:
        new = advance_by_receipt(current, target)
        if new == current:
            return doc
        times = {**doc.status_times, new.value: event.at}
        return doc.model_copy(update={"status": new, "status_times": times, "updated_at": now})
    if current in ON_WHATSAPP or current == MessageStatus.DEAD:
        return doc  # WhatsApp has it, or an operator must decide: a late outcome changes nothing
    steps = [target] if current == MessageStatus.SENDING else [MessageStatus.SENDING, target]
    status: MessageStatus = current
    for step in steps:
        if not can_transition(status, step):
            return doc
        status = step
    attempts = doc.attempts if event.claimed else doc.attempts + 1
    times = dict(doc.status_times)
    if len(steps) == 2:
        times[MessageStatus.SENDING.value] = event.started_at or event.at
    times[target.value] = event.at
    update: dict[str, Any] = {
        "status": target,
        "attempts": attempts,
        "status_times": times,
        "updated_at": now,
    }
    if event.error_code is not None:
        error = MessageError(
            at=event.at,
            code=event.error_code,
            message=event.error_message or "",
            attempt=attempts,
        )
        update["errors"] = [*doc.errors[-19:], error]
        if target == MessageStatus.DEAD:
            update["dead_reason"] = f"{event.error_code}: {event.error_message or ''}"
    return doc.model_copy(update=update)
