"""What every contract shares: the stored Document, the API body base, the retention periods
enforced by Firestore TTL policies and the task settling time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict


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


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Page(ApiModel):
    next_cursor: str | None = None
