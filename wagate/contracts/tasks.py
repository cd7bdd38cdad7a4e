"""What travels on the queues: send and control tasks, webhook events and tasks, alert notices."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict

from wagate.contracts.actions import StoredContent
from wagate.contracts.base import ApiModel

if TYPE_CHECKING:
    from wagate.contracts.documents import AlertDoc


# ---------------------------------------------------------------- events

EventType = Literal[
    "message.received",
    "message.status",
    "session.state",
    "group.participants",
    # A contact changed a message it sent earlier (docs/events.md).
    "message.edited",
    "message.revoked",
    "reaction.removed",
    "poll.vote",
]
PUBSUB_TOPIC_PATTERN = (
    r"^projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/topics/[A-Za-z][A-Za-z0-9._~+%-]{2,254}$"
)
EVENT_TYPES: tuple[EventType, ...] = get_args(EventType)


class SendSnapshot(BaseModel):
    """The immutable part of a message the runner needs to send it without reading the store
    (a Firestore outage, docs/outage.md). Only put on tasks of messages already written."""

    model_config = ConfigDict(extra="forbid")
    tenant_id: str
    content: StoredContent
    priority: Literal["high", "normal", "bulk"] = "normal"
    send_at: datetime | None = None


class SendTask(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message_id: str
    session_id: str
    # Copies of immutable message fields, so the runner can order per chat without a read.
    to: str | None = None
    created_at: datetime | None = None
    snapshot: SendSnapshot | None = None  # None on tasks of older api versions


class ControlTask(BaseModel):
    model_config = ConfigDict(extra="forbid")
    session_id: str
    action: Literal["start", "stop", "logout", "recover"]


class WebhookEvent(ApiModel):
    """What a tenant's webhook receives. `id` is unique per event: receivers deduplicate by it."""

    id: str
    type: EventType
    session_id: str
    created_at: datetime
    data: dict[str, Any]


class WebhookTask(ApiModel):
    tenant_id: str
    event: WebhookEvent


class AlertNotice(ApiModel):
    """What the operators' alert webhook receives when an alert opens or resolves (signed like
    tenant webhooks, X-Wagate-Signature)."""

    event: Literal["alert.opened", "alert.resolved"]
    id: str
    kind: str
    subject: str
    severity: Literal["info", "warning", "critical"]
    message: str
    first_seen: datetime
    last_seen: datetime
    count: int
    resolved_at: datetime | None = None

    @classmethod
    def of(cls, alert: AlertDoc) -> AlertNotice:
        return cls(
            event="alert.resolved" if alert.resolved_at else "alert.opened",
            id=alert.id,
            kind=alert.kind,
            subject=alert.subject,
            severity=alert.severity,
            message=alert.message,
            first_seen=alert.first_seen,
            last_seen=alert.last_seen,
            count=alert.count,
            resolved_at=alert.resolved_at,
        )
