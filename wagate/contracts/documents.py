"""The Firestore documents: tenants, sessions and the shard lease, messages and their pending
entries, inbound messages, alerts, recovery actions, idempotency records, webhook deliveries,
the event log and the maintenance state."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field

from wagate.contracts.actions import EditRecord, RevokeRecord, StoredContent
from wagate.contracts.base import (
    IDEMPOTENCY_TTL,
    INBOUND_RETENTION,
    PENDING_ENTRY_RETENTION,
    RECOVERY_RETENTION,
    Document,
    utcnow,
)
from wagate.contracts.tasks import EventType, WebhookEvent
from wagate.domain.messages import MessageState, MessageStatus, SendError, chat_key
from wagate.domain.sessions import DesiredState, SessionState

# ---------------------------------------------------------------- tenants


class TenantLimits(BaseModel):
    sends_per_minute: int = Field(60, ge=1, le=100_000)
    session_creates_per_minute: int = Field(10, ge=1, le=10_000)
    qr_fetches_per_5_minutes: int = Field(5, ge=1, le=10_000)
    pacing_per_second: float = Field(1.0, gt=0, le=100)
    pacing_burst: int = Field(5, ge=1, le=1_000)
    max_sessions: int = Field(5, ge=1, le=100_000)  # sessions a tenant may have (not deleted)
    # Numbers a session may look up on WhatsApp per hour (cached answers do not count).
    contact_checks_per_hour: int = Field(100, ge=1, le=10_000)
    # Group creates and member changes a session may make per hour.
    group_changes_per_hour: int = Field(30, ge=1, le=10_000)


class ApiKeyRecord(BaseModel):
    key_id: str
    prefix: str
    hash: str
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None


class TenantDoc(Document):
    name: str
    api_keys: list[ApiKeyRecord] = Field(default_factory=list)
    webhook_url: str | None = None
    # The webhook signing secret, sealed with the key ring (AES-256-GCM, AAD = tenant id).
    webhook_secret_sealed: bytes | None = None
    # Event types the tenant's channels get (None: all of them); a session may narrow or widen
    # it with its own (docs/events.md).
    webhook_events: list[EventType] | None = None
    # Keep a bounded log of this tenant's events for GET /v1/events/stream (docs/events.md).
    event_log: bool = False
    # The Pub/Sub topic (projects/…/topics/…) that gets the same events as the webhook; set
    # by an admin, since the runner's service account publishes for every tenant.
    pubsub_topic: str | None = None
    limits: TenantLimits = Field(default_factory=TenantLimits)
    created_at: datetime = Field(default_factory=utcnow)


# ---------------------------------------------------------------- sessions


class BackupInfo(BaseModel):
    generation: int
    key_id: str
    sha256: str
    at: datetime


class SessionDoc(Document):
    tenant_id: str
    name: str | None = None
    shard: int
    desired: DesiredState = DesiredState.RUNNING
    state: SessionState = SessionState.CREATED
    qr: str | None = None
    qr_expires_at: datetime | None = None
    pairing_code: str | None = None
    pairing_phone: str | None = None
    jid: str | None = None
    reconnect_attempts: int = 0
    last_reason: int | None = None
    # This session's own webhook URL and event filter, overriding the tenant's (None: inherit).
    webhook_url: str | None = None
    webhook_events: list[EventType] | None = None
    last_backup: BackupInfo | None = None
    # When the engine last handed over changed credentials/keys (docs/operations.md, "Key
    # material age"): the auth state itself is opaque, its age is what wagate can observe.
    keys_changed_at: datetime | None = None
    counters: dict[str, int] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class ShardLease(Document):
    """shards/{id}: who may hold this shard's sockets, and the fencing token of that grant."""

    holder: str | None = None
    token: int = 0
    expires_at: datetime | None = None
    heartbeat_at: datetime | None = None


class MessageError(BaseModel):
    at: datetime
    code: str
    message: str
    attempt: int


class MessageDoc(Document):
    tenant_id: str
    session_id: str
    shard: int
    to: str
    content: StoredContent
    priority: Literal["high", "normal", "bulk"] = "normal"
    send_at: datetime | None = None
    idempotency_key: str | None = None
    status: MessageStatus = MessageStatus.ACCEPTED
    attempts: int = 0
    task_generation: int = 0
    wa_id: str
    errors: list[MessageError] = Field(default_factory=list)
    status_times: dict[str, datetime] = Field(default_factory=dict)
    dead_reason: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    # Set when maintenance replaced the content of a delivered message by a placeholder.
    content_pruned_at: datetime | None = None
    # Chat actions WhatsApp took on this message (docs/messaging.md, "Chat actions"), written by
    # the runner with the action's `sent`: its edits by action id, and its revocation.
    edits: dict[str, EditRecord] = Field(default_factory=dict)
    revoked: RevokeRecord | None = None

    def lifecycle(self) -> MessageState:
        """The part of this document the message aggregate (wagate.domain.messages) changes."""
        return MessageState(
            status=self.status,
            updated_at=self.updated_at,
            attempts=self.attempts,
            task_generation=self.task_generation,
            status_times=dict(self.status_times),
            errors=tuple(SendError(e.at, e.code, e.message, e.attempt) for e in self.errors),
            dead_reason=self.dead_reason,
        )

    def with_lifecycle(self, state: MessageState) -> MessageDoc:
        """This document with the aggregate's new state; itself when nothing changed."""
        if state == self.lifecycle():
            return self
        return self.model_copy(
            update={
                "status": state.status,
                "updated_at": state.updated_at,
                "attempts": state.attempts,
                "task_generation": state.task_generation,
                "status_times": dict(state.status_times),
                "errors": [
                    MessageError(at=e.at, code=e.code, message=e.message, attempt=e.attempt)
                    for e in state.errors
                ],
                "dead_reason": state.dead_reason,
            }
        )


class PendingSend(Document):
    """pending/{message id}: an outbound message that is not finished yet. The small collection
    everything that looks for unfinished sends reads, instead of `messages`: the per-chat
    order check (runner/order_gate.py; docs/messaging.md "Order per chat"), the
    sweeper's stuck check, the runner's backlog count and its takeover nudge.

    Created in the same batch as the message (and again by retry-dead), deleted in the same
    batch as the `sent` patch, and by the runner once a message is dead or found finished.
    Readers confirm an entry against its message, so an entry left behind holds nothing back
    (the sweeper removes it); but every pending message has one. Its own collection because
    the Firestore emulator answers a query by scanning the collection: over all messages the
    order check cost ~140 ms of emulator CPU at 16,000 messages, over this one ~20 ms."""

    chat: str  # chat_key(session_id, to)
    shard: int
    priority: Literal["high", "normal", "bulk"] = "normal"  # with the next two: the task name
    task_generation: int = 0
    created_at: datetime
    send_at: datetime | None = None
    # The sweeper looks at an entry once this is STUCK_AFTER old: first when it falls due, then
    # each time the sweeper found its task alive.
    checked_at: datetime
    expire_at: datetime

    @classmethod
    def of(cls, message: MessageDoc) -> PendingSend:
        due = message.send_at or message.created_at
        return cls(
            id=message.id,
            chat=chat_key(message.session_id, message.to),
            shard=message.shard,
            priority=message.priority,
            task_generation=message.task_generation,
            created_at=message.created_at,
            send_at=message.send_at,
            checked_at=due,
            expire_at=due + PENDING_ENTRY_RETENTION,
        )


class InboundMediaError(BaseModel):
    """Why a received file is not in the media bucket: the message is stored and announced
    anyway (docs/messaging.md, "Inbound media")."""

    code: str
    message: str


class InboundMediaDoc(BaseModel):
    """The file of a received media message, stored at media/{tenant}/{media_id} (the layout of
    uploads, so GET /v1/media/{id} and a send by media_id serve it too); `media_id` is None
    when the download failed, and `error` says why."""

    media_id: str | None = None
    mime_type: str
    size: int | None = None
    sha256: str | None = None
    filename: str | None = None
    error: InboundMediaError | None = None


class InboundDoc(Document):
    """sessions/{id}/inbound/{wa_id}: a received message or reaction (deduplicated by id).
    `sender` is the address WhatsApp gave; `sender_phone`/`sender_lid` its phone-number and LID
    forms where the engine knows them (domain.events.InboundMessage)."""

    session_id: str
    tenant_id: str
    chat: str
    sender: str
    sender_phone: str | None = None
    sender_lid: str | None = None
    kind: str
    content: dict[str, Any]
    ts: datetime
    from_history: bool = False
    media: InboundMediaDoc | None = None  # image, video, audio, voice note, document, sticker
    received_at: datetime = Field(default_factory=utcnow)
    expire_at: datetime = Field(default_factory=lambda: utcnow() + INBOUND_RETENTION)


class AlertDoc(Document):
    """health_alerts/{kind:subject}: one open-or-resolved alert per (kind, subject)."""

    kind: str
    severity: Literal["info", "warning", "critical"] = "warning"
    subject: str
    message: str = ""
    first_seen: datetime = Field(default_factory=utcnow)
    last_seen: datetime = Field(default_factory=utcnow)
    count: int = 1
    resolved_at: datetime | None = None
    last_notified_at: datetime | None = None


class RecoveryAction(Document):
    session_id: str | None = None
    shard: int | None = None
    action: str
    reason: str
    outcome: str
    at: datetime = Field(default_factory=utcnow)
    expire_at: datetime = Field(default_factory=lambda: utcnow() + RECOVERY_RETENTION)


class IdempotencyDoc(Document):
    tenant_id: str
    message_id: str
    request_sha256: str
    created_at: datetime = Field(default_factory=utcnow)
    # After this, the same Idempotency-Key creates a new message (Firestore TTL deletes it).
    expire_at: datetime = Field(default_factory=lambda: utcnow() + IDEMPOTENCY_TTL)


class ApiKeyIndex(Document):
    """api_keys/{key_id}: finds the tenant of a presented key without scanning tenants."""

    tenant_id: str
    hash: str
    revoked_at: datetime | None = None


DELIVERY_RETENTION = timedelta(days=14)
DeliveryState = Literal["retrying", "delivered", "failed"]


class WebhookDeliveryDoc(Document):
    """webhook_deliveries/{event id}: the delivery log of one event to the tenant's webhook,
    written at each attempt (wagate/services/deliveries.py)."""

    tenant_id: str
    session_id: str
    event: WebhookEvent
    url: str
    state: DeliveryState
    attempts: int = 0
    redeliveries: int = 0
    last_status: int | None = None
    last_error: str | None = None
    last_attempt_at: datetime | None = None
    next_retry_at: datetime | None = None
    delivered_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    expire_at: datetime = Field(default_factory=lambda: utcnow() + DELIVERY_RETENTION)


EVENT_LOG_RETENTION = timedelta(hours=24)


class EventLogDoc(Document):
    """events/{event id}: one event of a tenant that keeps an event log, for the stream.
    `seq` orders the log and is the stream's event id: "<ms since epoch, 13 digits>-<id>"."""

    tenant_id: str
    session_id: str
    type: EventType
    seq: str
    event: WebhookEvent
    expire_at: datetime


class CountSample(BaseModel):
    at: datetime
    count: int


class CountHistory(Document):
    """ops_state/{name}: recent samples of a count the sweeper watches (dead letters)."""

    samples: list[CountSample] = Field(default_factory=list)


class Watermark(Document):
    """ops_state/{name}: how far a resumable maintenance pass got."""

    until: datetime
