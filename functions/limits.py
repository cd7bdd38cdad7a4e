"""The api's per-tenant (or per-session) rate limits on a request (docs/security.md): one
place that counts a request and sets the RateLimit-* headers, for every module of routes."""

from __future__ import annotations

import math

from functions.app import gateway
from functions.web import Call
from wagate.contracts import TenantDoc
from wagate.errors import RateLimited, ValidationFailed
from wagate.services.ratelimit import Rule


def rate_limit(call: Call, tenant: TenantDoc, rule: Rule, *, subject: str | None = None) -> None:
    """Count one request against the tenant's limit for `rule`; 429 once it is spent. The
    RateLimit-* headers go on every answer of a limited route, the 429 included. `subject`
    (a session id) makes the limit that session's instead of the tenant's."""
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
        raise RateLimited(
            f"rate limit reached: {decision.limit} {rule.route.replace('_', ' ')} per "
            f"{rule.window_s} s; retry in {reset} s",
            retry_after=reset,
        )


def idempotency_key(call: Call) -> str | None:
    """The request's Idempotency-Key header, if any: 1 to 255 characters."""
    key = call.request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= 255:
        raise ValidationFailed(
            "Idempotency-Key must be 1 to 255 characters", field="Idempotency-Key"
        )
    return key
