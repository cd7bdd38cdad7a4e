"""The error types of wagate.

Every error a client or operator can see is one of these: it carries a stable `code`, a human
`message`, the `field` at fault (where one is) and optional `details`. Adapters translate vendor
exceptions into these; `wagate.http` maps them to HTTP status codes in one table.
"""

from __future__ import annotations

from typing import Any


class WagateError(Exception):
    """Base of every wagate error."""

    code: str = "internal"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        details: list[dict[str, Any]] | None = None,
        retry_after: float | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details or []
        self.retry_after = retry_after
        if code is not None:
            self.code = code


class ValidationFailed(WagateError):
    code = "validation_failed"


class Unauthenticated(WagateError):
    code = "unauthenticated"


class Forbidden(WagateError):
    code = "forbidden"


class NotFound(WagateError):
    code = "not_found"


class MethodNotAllowed(WagateError):
    code = "method_not_allowed"


class Conflict(WagateError):
    code = "conflict"


class AlreadyExists(Conflict):
    code = "already_exists"


class SessionQuotaExceeded(Conflict):
    """The tenant has as many sessions as its limits.max_sessions allows."""

    code = "session_quota_exceeded"


class StaleGeneration(Conflict):
    """A blob write whose generation precondition no longer holds (another writer won)."""

    code = "stale_generation"


class TaskAlreadyExists(AlreadyExists):
    """Cloud Tasks refused a task name it has seen before: the work is already enqueued."""

    code = "task_already_exists"


class FencedOut(Conflict):
    """A write carried a fencing token that is no longer the shard's current one."""

    code = "fenced_out"


class LeaseHeld(Conflict):
    """The shard lease is held by another live instance."""

    code = "lease_held"


class IllegalTransition(Conflict):
    code = "illegal_transition"


class PayloadTooLarge(WagateError):
    code = "payload_too_large"


class UnsupportedMediaType(WagateError):
    """The body's Content-Type is not one the endpoint takes."""

    code = "unsupported_media_type"


class HeadersTooLarge(WagateError):
    """Refused by the HTTP server before the application ran (431)."""

    code = "headers_too_large"


class UriTooLong(WagateError):
    """Refused by the HTTP server before the application ran (414)."""

    code = "uri_too_long"


class NotImplementedByServer(WagateError):
    """A transfer coding or feature the HTTP server does not implement (501)."""

    code = "not_implemented"


class Unprocessable(WagateError):
    code = "unprocessable"


class RateLimited(WagateError):
    code = "rate_limited"


class DependencyUnavailable(WagateError):
    """A store, queue or WhatsApp itself cannot be reached right now; retry later."""

    code = "dependency_unavailable"


class ShardsFull(DependencyUnavailable):
    """Every shard holds its WAGATE_SESSIONS_PER_SHARD sessions: no runner can take another."""

    code = "shards_full"


class Internal(WagateError):
    code = "internal"


class SendError(WagateError):
    code = "send_failed"


class PermanentSendError(SendError):
    """Retrying cannot help: invalid recipient, not on WhatsApp, media too large, logged out."""

    code = "send_permanent"


class TransientSendError(SendError, DependencyUnavailable):
    """Not connected, ack timed out, rate limited by WhatsApp: retry later."""

    code = "send_transient"
