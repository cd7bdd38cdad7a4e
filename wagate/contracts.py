"""Pydantic models of everything that crosses a boundary: Firestore documents, API bodies,
task payloads and webhook events. Adapters store these; functions and the runner speak them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

from wagate.domain.messages import MessageStatus, chat_key
from wagate.domain.sessions import DesiredState, SessionState


def utcnow() -> datetime:
    return datetime.now(UTC)


# Retention, enforced by Firestore TTL policies on `expire_at` (infra/terraform firestore.tf).
IDEMPOTENCY_TTL = timedelta(hours=24)
INBOUND_RETENTION = timedelta(days=30)
RECOVERY_RETENTION = timedelta(days=90)
# A pending/{id} entry outlives the latest a message can be due (send_at is at most 30 days
# ahead) by a few days; one left behind by a lost delete goes then (PendingSend).
PENDING_ENTRY_RETENTION = timedelta(days=35)

# The api creates a message's send task while it writes the message, and withdraws (deletes)
# the task when the write fails (wagate/services/outbox.py). Each of those calls is bounded by
# its adapter's 10 s call timeout, so this long after a task's `created_at` its message is
# written or its task withdrawn. The runner sends from a task's snapshot without the store
# only past this age (docs/outage.md). Checked against the adapters' timeouts in the tests.
TASK_SETTLED_AFTER_S = 25.0


class Document(BaseModel):
    """A stored document: `id` is its key in its collection."""

    model_config = ConfigDict(extra="ignore", validate_assignment=False)
    id: str


# ---------------------------------------------------------------- events

EventType = Literal["message.received", "message.status", "session.state"]
PUBSUB_TOPIC_PATTERN = (
    r"^projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/topics/[A-Za-z][A-Za-z0-9._~+%-]{2,254}$"
)
EVENT_TYPES: tuple[EventType, ...] = ("message.received", "message.status", "session.state")

# ---------------------------------------------------------------- tenants


class TenantLimits(BaseModel):
    sends_per_minute: int = Field(60, ge=1, le=100_000)
    session_creates_per_minute: int = Field(10, ge=1, le=10_000)
    qr_fetches_per_5_minutes: int = Field(5, ge=1, le=10_000)
    pacing_per_second: float = Field(1.0, gt=0, le=100)
    pacing_burst: int = Field(5, ge=1, le=1_000)
    max_sessions: int = Field(5, ge=1, le=100_000)  # sessions a tenant may have (not deleted)


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


# ---------------------------------------------------------------- message content

MAX_MEDIA_BYTES = 16 * 1024 * 1024


class _Content(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reply_to: str | None = Field(None, description="wagate or WhatsApp id of the quoted message")


class TextContent(_Content):
    type: Literal["text"] = "text"
    body: str = Field(min_length=1, max_length=65_536)


class MediaContent(_Content):
    type: Literal["image", "document", "audio", "video"]
    url: HttpUrl | None = None
    media_id: str | None = Field(
        None, pattern=r"^med_[0-9A-HJKMNP-TV-Z]{26}$", description="id from POST /v1/media"
    )
    caption: str | None = Field(None, max_length=1024)
    filename: str | None = Field(None, max_length=255)
    mime_type: str | None = Field(None, max_length=127)

    @model_validator(mode="after")
    def _one_source(self) -> MediaContent:
        if (self.url is None) == (self.media_id is None):
            raise ValueError("give exactly one of url or media_id")
        return self


class LocationContent(_Content):
    type: Literal["location"] = "location"
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    name: str | None = Field(None, max_length=255)
    address: str | None = Field(None, max_length=1024)


class ContactContent(_Content):
    type: Literal["contact"] = "contact"
    name: str = Field(min_length=1, max_length=255)
    phone: str = Field(pattern=r"^\+?[0-9]{6,16}$")


class ReactionContent(_Content):
    type: Literal["reaction"] = "reaction"
    message_id: str = Field(min_length=1, max_length=128)
    emoji: str = Field(max_length=16, description="empty string removes the reaction")


MessageContent = Annotated[
    TextContent | MediaContent | LocationContent | ContactContent | ReactionContent,
    Field(discriminator="type"),
]


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
    content: MessageContent
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


class PendingSend(Document):
    """pending/{message id}: an outbound message that is not finished yet. The small collection
    everything that looks for unfinished sends reads, instead of `messages`: the per-chat
    order check (runner/writes.py OrderGate; docs/messaging.md "Order per chat"), the
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
    received_at: datetime = Field(default_factory=utcnow)
    expire_at: datetime = Field(default_factory=lambda: utcnow() + INBOUND_RETENTION)


# ---------------------------------------------------------------- operations


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


# ---------------------------------------------------------------- task payloads


class SendSnapshot(BaseModel):
    """The immutable part of a message the runner needs to send it without reading the store
    (a Firestore outage, docs/outage.md). Only put on tasks of messages already written."""

    model_config = ConfigDict(extra="forbid")
    tenant_id: str
    content: MessageContent
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


class ApiKeyIndex(Document):
    """api_keys/{key_id}: finds the tenant of a presented key without scanning tenants."""

    tenant_id: str
    hash: str
    revoked_at: datetime | None = None


# ---------------------------------------------------------------- API bodies

RECIPIENT_PATTERN = r"^(\+?[1-9][0-9]{6,15}|[0-9]{6,20}(-[0-9]{6,12})?@(s\.whatsapp\.net|g\.us))$"


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SendMessageRequest(ApiModel):
    """POST /v1/sessions/{session}/messages"""

    to: str = Field(
        pattern=RECIPIENT_PATTERN,
        description="E.164 number (+15551234567) or a WhatsApp JID (…@s.whatsapp.net, …@g.us)",
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
    content: MessageContent
    status_times: dict[str, datetime]
    errors: list[MessageError]
    dead_reason: str | None = None
    created_at: datetime

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


class Page(ApiModel):
    next_cursor: str | None = None


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


class MediaView(ApiModel):
    """An uploaded media file, to be sent by its id"""

    id: str
    content_type: str
    size: int
    sha256: str


# ---------------------------------------------------------------- operations: notices, maintenance


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


class CountSample(BaseModel):
    at: datetime
    count: int


class CountHistory(Document):
    """ops_state/{name}: recent samples of a count the sweeper watches (dead letters)."""

    samples: list[CountSample] = Field(default_factory=list)


class Watermark(Document):
    """ops_state/{name}: how far a resumable maintenance pass got."""

    until: datetime


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
