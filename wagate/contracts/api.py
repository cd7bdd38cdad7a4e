"""The API's request and response bodies (the OpenAPI document is generated from them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from wagate.contracts.actions import EditRecord, RevokeRecord, StoredContent
from wagate.contracts.base import ApiModel, Page
from wagate.contracts.content import MessageContent
from wagate.contracts.documents import (
    DeliveryState,
    InboundDoc,
    InboundMediaDoc,
    MessageDoc,
    MessageError,
    SessionDoc,
    WebhookDeliveryDoc,
)
from wagate.contracts.tasks import EventType, WebhookEvent
from wagate.domain.messages import MessageStatus
from wagate.domain.sessions import DesiredState, SessionState

RECIPIENT_PATTERN = (
    r"^(\+?[1-9][0-9]{6,15}|[0-9]{6,20}(-[0-9]{6,12})?@(s\.whatsapp\.net|g\.us)|[0-9]{6,20}@lid)$"
)


class SendMessageRequest(ApiModel):
    """POST /v1/sessions/{session}/messages"""

    to: str = Field(
        pattern=RECIPIENT_PATTERN,
        description="E.164 number (+15551234567), a WhatsApp JID (…@s.whatsapp.net, …@g.us), "
        "or a LID (…@lid: the sender_lid of a received message, to reply to it)",
        examples=["+15551234567"],
    )
    content: MessageContent
    priority: Literal["high", "normal", "bulk"] = "normal"
    send_at: datetime | None = Field(
        None, description="Send no earlier than this time (ISO 8601 with a timezone)"
    )


class MessageView(ApiModel):
    id: str
    session_id: str
    to: str
    status: MessageStatus
    wa_id: str
    priority: Literal["high", "normal", "bulk"]
    send_at: datetime | None = None
    attempts: int
    content: StoredContent
    status_times: dict[str, datetime]
    errors: list[MessageError]
    dead_reason: str | None = None
    created_at: datetime
    edits: list[EditRecord] = Field(
        default_factory=list, description="Edits WhatsApp took, oldest first (PATCH)"
    )
    revoked: RevokeRecord | None = Field(None, description="Revoked for everyone (DELETE)")

    @classmethod
    def of(cls, doc: MessageDoc) -> MessageView:
        return cls(
            id=doc.id,
            session_id=doc.session_id,
            to=doc.to,
            status=doc.status,
            wa_id=doc.wa_id,
            priority=doc.priority,
            send_at=doc.send_at,
            attempts=doc.attempts,
            content=doc.content,
            status_times=doc.status_times,
            errors=doc.errors,
            dead_reason=doc.dead_reason,
            created_at=doc.created_at,
            edits=sorted(doc.edits.values(), key=lambda e: (e.at, e.action_id)),
            revoked=doc.revoked,
        )


class CreateSessionRequest(ApiModel):
    name: str | None = Field(None, max_length=128, description="Your label for this account")
    pairing_phone: str | None = Field(
        None,
        pattern=r"^\+?[1-9][0-9]{6,15}$",
        description="Phone number for pairing-code login instead of a QR",
    )


class SessionView(ApiModel):
    id: str
    name: str | None = None
    state: SessionState
    desired: DesiredState
    shard: int
    jid: str | None = None
    has_qr: bool
    pairing_code: str | None = None
    reconnect_attempts: int
    last_reason: int | None = None
    last_backup_at: datetime | None = None
    qr_expires_at: datetime | None = Field(
        None, description="When the current QR expires; a new value means a new QR"
    )
    webhook_url: str | None = Field(None, description="This session's own webhook, if any")
    webhook_events: list[EventType] | None = None
    created_at: datetime

    @classmethod
    def of(cls, doc: SessionDoc) -> SessionView:
        return cls(
            id=doc.id,
            name=doc.name,
            state=doc.state,
            desired=doc.desired,
            shard=doc.shard,
            jid=doc.jid,
            has_qr=doc.qr is not None,
            pairing_code=doc.pairing_code,
            reconnect_attempts=doc.reconnect_attempts,
            last_reason=doc.last_reason,
            last_backup_at=doc.last_backup.at if doc.last_backup else None,
            qr_expires_at=doc.qr_expires_at if doc.qr is not None else None,
            webhook_url=doc.webhook_url,
            webhook_events=doc.webhook_events,
            created_at=doc.created_at,
        )


class InboundView(ApiModel):
    id: str
    chat: str
    sender: str
    sender_phone: str | None = None
    sender_lid: str | None = None
    kind: str
    content: dict[str, Any]
    ts: datetime
    from_history: bool
    media: InboundMediaDoc | None = Field(
        None, description="a media message's file: GET /v1/media/{media_id}, or `error`"
    )

    @classmethod
    def of(cls, doc: InboundDoc) -> InboundView:
        return cls.model_validate(doc.model_dump(include=set(cls.model_fields)))


class MessageListing(Page):
    """Sent messages (direction=out) or received ones (direction=in), newest first"""

    items: list[MessageView] | list[InboundView]


class RetryDeadRequest(ApiModel):
    session_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    reason: str | None = Field(None, description="Only dead letters whose reason contains this")
    limit: int = Field(500, ge=1, le=5000)


class RetryDeadResult(ApiModel):
    retried: list[str]


class DeliveryView(ApiModel):
    """One event's deliveries to a webhook: attempts, the last answer, the next retry"""

    id: str = Field(description="The event id (X-Wagate-Event-Id)")
    event_type: EventType
    session_id: str
    url: str
    state: DeliveryState = Field(description="retrying | delivered | failed (retries spent)")
    attempts: int
    redeliveries: int
    last_status: int | None = Field(None, description="The receiver's last HTTP status")
    last_error: str | None = None
    last_attempt_at: datetime | None = None
    next_retry_at: datetime | None = Field(None, description="When the queue tries again")
    delivered_at: datetime | None = None
    created_at: datetime
    event: WebhookEvent

    @classmethod
    def of(cls, doc: WebhookDeliveryDoc) -> DeliveryView:
        return cls(
            id=doc.id,
            event_type=doc.event.type,
            session_id=doc.session_id,
            url=doc.url,
            state=doc.state,
            attempts=doc.attempts,
            redeliveries=doc.redeliveries,
            last_status=doc.last_status,
            last_error=doc.last_error,
            last_attempt_at=doc.last_attempt_at,
            next_retry_at=doc.next_retry_at,
            delivered_at=doc.delivered_at,
            created_at=doc.created_at,
            event=doc.event,
        )


class DeliveryPage(Page):
    items: list[DeliveryView]


class MediaView(ApiModel):
    """An uploaded media file, to be sent by its id"""

    id: str
    content_type: str
    size: int
    sha256: str


class MaintenanceReport(BaseModel):
    """What one maintenance run pruned (or, with dry_run, would prune) and counted."""

    dry_run: bool
    inbound_pruned: int = 0
    message_bodies_pruned: int = 0
    backup_versions_expired: int = Field(
        0,
        description="Superseded backup versions holding expired key material, past the kept "
        "ones: the bucket's lifecycle rule deletes them",
    )
    orphan_backups_pruned: int = 0
    sessions_scanned: int = 0
    keys_fresh: int = 0
    keys_aging: int = 0
    keys_expired: int = 0
    keys_unknown: int = 0
    incomplete: list[str] = Field(
        default_factory=list,
        description="Passes that stopped at their per-run limit; the next run continues",
    )
    errors: list[str] = Field(default_factory=list)
