"""Events a tenant can build on (docs/events.md): their ids, the `session.state` event, and
where an event goes — the session's webhook URL and filter override the tenant's.

The runner decides whether to enqueue an event with these rules, and the sweeper applies them
again at delivery time (a tenant may change its webhook in between).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from wagate.contracts import EventType, SessionDoc, TenantDoc, WebhookEvent
from wagate.domain.events import GroupParticipantsChanged
from wagate.domain.sessions import DisconnectReason, SessionState


def event_id(*parts: str) -> str:
    """A deterministic event id: the same fact announced twice gets the same id (and the same
    task name), so receivers and Cloud Tasks deduplicate it."""
    return "evt_" + hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]


def inbound_event_type(kind: str, content: dict[str, Any]) -> EventType:
    """What a received message is announced as: a contact's edit or revoke of an earlier message
    (`content.message_id` names it), a reaction taken back (an empty emoji), a vote in a poll
    (runner/poll_votes.py), or a message."""
    if kind == "poll_vote":
        return "poll.vote"
    if kind == "edit":
        return "message.edited"
    if kind == "revoke":
        return "message.revoked"
    if kind == "reaction" and not content.get("emoji"):
        return "reaction.removed"
    return "message.received"


def wanted(tenant: TenantDoc | None, session: SessionDoc | None, event_type: EventType) -> bool:
    """Whether the event filters (the session's, else the tenant's) take `event_type`."""
    if session is not None and session.webhook_events is not None:
        types: list[EventType] | None = session.webhook_events
    else:
        types = tenant.webhook_events if tenant else None
    return types is None or event_type in types


def webhook_target(
    tenant: TenantDoc | None, session: SessionDoc | None, event_type: EventType
) -> str | None:
    """The URL an event of `event_type` goes to, or None when it goes nowhere."""
    url = (session.webhook_url if session else None) or (tenant.webhook_url if tenant else None)
    if url is None or not wanted(tenant, session, event_type):
        return None
    return url


def ordering_key(event: WebhookEvent) -> str:
    """The Pub/Sub ordering key: the chat (within its session) for message events, the
    session for its state changes."""
    chat = event.data.get("chat")
    return f"{event.session_id}/{chat}" if chat else event.session_id


def reason_name(code: int | None) -> str | None:
    """The disconnect reason's name (logged_out, closed, …); None for no or an unknown code."""
    if code is None:
        return None
    try:
        return DisconnectReason(code).name.lower()
    except ValueError:
        return None


def session_state_event(
    session_id: str,
    state: SessionState,
    previous: SessionState,
    at: datetime,
    *,
    reason: int | None = None,
    attempt: int = 0,
    details: dict[str, Any] | None = None,
) -> WebhookEvent:
    """One change of a session's state. The id covers the change and its time, so each change
    is one event and a repeat of the same change (a retried enqueue) is the same event."""
    data: dict[str, Any] = {
        "state": state.value,
        "previous": previous.value,
        "reason": reason,
        "reason_name": reason_name(reason),
        "attempt": attempt,
        **(details or {}),
    }
    marker = str(data.get("qr") or data.get("pairing_code") or "")
    return WebhookEvent(
        id=event_id(session_id, "state", state.value, at.isoformat(), marker),
        type="session.state",
        session_id=session_id,
        created_at=at,
        data=data,
    )


def group_participants_event(session_id: str, change: GroupParticipantsChanged) -> WebhookEvent:
    """Members joined, left, were promoted or demoted. The id covers the group, the action,
    the members and the time WhatsApp gave, so a notice delivered twice is one event."""
    people = sorted(change.participants)
    return WebhookEvent(
        id=event_id(
            session_id, "group", change.group, change.action, *people, change.ts.isoformat()
        ),
        type="group.participants",
        session_id=session_id,
        created_at=change.ts,
        data={
            "chat": change.group,
            "group": change.group,
            "action": change.action,
            "participants": list(change.participants),
            "by": change.by,
            "ts": change.ts.isoformat(),
        },
    )
