"""GET /v1/health: the api's dependencies and breakers, the shards' session capacity, and with
a tenant key that tenant's session quota (docs/operations.md, docs/sessions.md "Quotas")."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, Field

from functions import auth
from functions.app import gateway
from functions.web import Call, Doc, Router
from wagate import __version__
from wagate.errors import WagateError


class ShardCapacity(BaseModel):
    shard: int
    sessions: int = Field(description="live (not deleted) sessions on the shard")
    capacity: int = Field(description="WAGATE_SESSIONS_PER_SHARD: a full shard is not assigned")


class CapacityView(BaseModel):
    shards: list[ShardCapacity]
    free: int = Field(description="sessions that can still be created across all shards")


class TenantQuotaView(BaseModel):
    sessions: int = Field(description="the tenant's live sessions")
    max_sessions: int = Field(description="its limits.max_sessions")


class HealthView(BaseModel):
    """Health of the api function"""

    status: str = Field(description="ok | degraded")
    version: str
    checks: dict[str, str] = Field(description="dependency → ok | error: …")
    breakers: dict[str, str] = Field(
        description="this instance's circuit breakers: dependency → closed | open | half_open"
    )
    capacity: CapacityView | None = Field(
        None, description="sessions per shard against its capacity (absent while Firestore is down)"
    )
    tenant: TenantQuotaView | None = Field(
        None, description="the calling tenant's session quota, when a tenant key is given"
    )


def get_health(call: Call) -> Any:
    g = gateway()
    checks: dict[str, str] = {}
    for name, ping in (("firestore", g.store.ping), ("tasks", g.queue.ping)):
        try:
            ping()  # through the breaker: while it is open this fails at once
            checks[name] = "ok"
        except WagateError as e:
            checks[name] = f"error: {e.message}"
    breakers = {guard.name: guard.state for guard in g.guards}
    healthy = all(v == "ok" for v in checks.values()) and "open" not in breakers.values()
    view = HealthView(
        status="ok" if healthy else "degraded",
        version=__version__,
        checks=checks,
        breakers=breakers,
        capacity=_capacity() if checks["firestore"] == "ok" else None,
        tenant=_tenant_quota(call) if checks["firestore"] == "ok" else None,
    )
    if healthy:
        return view, 200
    wait = max((guard.retry_after() for guard in g.guards), default=0.0)
    call.response_headers["Retry-After"] = str(max(5, math.ceil(wait)))
    return view, 503


def _capacity() -> CapacityView | None:
    g = gateway()
    per_shard = g.settings.sessions_per_shard
    try:
        loads = g.sessions.shard_loads()
    except WagateError:
        return None
    return CapacityView(
        shards=[
            ShardCapacity(shard=n, sessions=c, capacity=per_shard) for n, c in enumerate(loads)
        ],
        free=sum(max(0, per_shard - c) for c in loads),
    )


def _tenant_quota(call: Call) -> TenantQuotaView | None:
    """Health needs no key; with a valid tenant key it also shows that tenant's quota."""
    if not call.request.headers.get("Authorization"):
        return None
    g = gateway()
    try:
        tenant = auth.tenant(call, g.tenants)
        return TenantQuotaView(
            sessions=g.sessions.tenant_sessions(tenant.id), max_sessions=tenant.limits.max_sessions
        )
    except WagateError:
        return None


def register(router: Router) -> None:
    router.route(
        "/v1/health",
        ["GET"],
        Doc(
            "Health of the api and its dependencies",
            auth=None,
            responses={200: HealthView, 503: HealthView},
            tags=("operations",),
        ),
    )(get_health)
