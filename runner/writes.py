"""The journaled form of a message's status events (sent, failed, dead, receipts).

`MessageEvent` is a status write made while the store was unreachable (runner/journal/);
`replay_step` applies a message's events through the aggregate's rules
(wagate.domain.messages: apply_receipt, replay_outcome), so a replay never moves a message
backwards and applying it twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel

from wagate.contracts import MessageDoc
from wagate.domain.messages import (
    RECEIPTS,
    MessageChange,
    MessageState,
    MessageStatus,
    apply_receipt,
    change_between,
    replay_outcome,
)
from wagate.ports import LifecycleStep


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


def replay_step(events: Sequence[MessageEvent], now: datetime) -> LifecycleStep:
    """The lifecycle step that applies `events`, in order, to one message."""

    def step(state: MessageState) -> MessageChange:
        new = state
        for event in events:
            new = apply_status_event(new, event, now).state
        return change_between(state, new)

    return step


def apply_status_event(state: MessageState, event: MessageEvent, now: datetime) -> MessageChange:
    """The message after `event`; unchanged if the event is stale (a receipt behind the
    current status, a send outcome after WhatsApp has it)."""
    if event.status in RECEIPTS:
        return apply_receipt(state, event.status, event.at, now)
    error = None
    if event.error_code is not None:
        error = (event.error_code, event.error_message or "")
    return replay_outcome(
        state,
        event.status,
        event.at,
        now,
        started_at=event.started_at,
        claimed=event.claimed,
        error=error,
    )


def apply_status_events(
    doc: MessageDoc, events: Sequence[MessageEvent], now: datetime
) -> MessageDoc:
    """`replay_step` on a document (the journal's tests read it this way)."""
    return doc.with_lifecycle(replay_step(events, now)(doc.lifecycle()).state)
