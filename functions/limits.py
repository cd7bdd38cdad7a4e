"""The api's per-tenant (or per-session) rate limits on a request (docs/security.md): one
place that counts a request and sets the RateLimit-* headers, for every module of routes.

A request that repeats an earlier one by its Idempotency-Key is answered with the earlier
result even at the limit (`replay`): a client that lost the first answer and retries must get
that answer, not a 429 for a send that already went (docs/security.md, "Rate limits")."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

from functions.app import gateway
from functions.web import Call
from wagate.contracts import MessageDoc, TenantDoc
from wagate.errors import RateLimited, ValidationFailed
from wagate.services.ratelimit import Rule

T = TypeVar("T")


def rate_limit(
    call: Call,
    tenant: TenantDoc,
    rule: Rule,
    *,
    subject: str | None = None,
    replay: Callable[[], T | None] | None = None,
) -> T | None:
    """Count one request against the tenant's limit for `rule`; 429 once it is spent. The
    RateLimit-* headers go on every answer of a limited route, the 429 included. `subject`
    (a session id) makes the limit that session's instead of the tenant's. At the limit,
    `replay` is asked for the earlier result of this same request (its Idempotency-Key): that
    result is returned instead of the 429 (a Conflict if the key was used with another body).
    None means the request is counted and may go on."""
    counted = tenant.id if subject is None else f"{tenant.id}:{subject}"
    decision = gateway().limiter.take(counted, rule, tenant.limits)
    reset = max(1, math.ceil(decision.reset_s))
    call.response_headers.update(
        {
            "RateLimit-Limit": str(decision.limit),
            "RateLimit-Remaining": str(decision.remaining),
            "RateLimit-Reset": str(reset),
        }
    )
    if not decision.allowed:
        earlier = None if replay is None else replay()
        if earlier is not None:
            return earlier
        raise RateLimited(
            f"rate limit reached: {decision.limit} {rule.route.replace('_', ' ')} per "
            f"{rule.window_s} s; retry in {reset} s",
            retry_after=reset,
        )
    return None


def replay_of(
    tenant: TenantDoc, key: str | None, fingerprint: str
) -> Callable[[], MessageDoc | None] | None:
    """`rate_limit`'s replay for a send or a chat action: the outbox's first result for this
    Idempotency-Key (none without a key)."""
    if key is None:
        return None
    return lambda: gateway().outbox.replayed(tenant.id, key, fingerprint)


def idempotency_key(call: Call) -> str | None:
    """The request's Idempotency-Key header, if any: 1 to 255 characters."""
    key = call.request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= 255:
        raise ValidationFailed(
            "Idempotency-Key must be 1 to 255 characters", field="Idempotency-Key"
        )
    return key
