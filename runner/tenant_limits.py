"""The tenants' pacing limits as the send path reads them: cached, and never waited for while
the store does not answer."""

from __future__ import annotations

import asyncio

from runner.context import ShardContext
from runner.store_deadlines import STORE_READ_TIMEOUT_S, within
from wagate.contracts import TenantLimits
from wagate.errors import DependencyUnavailable

LIMITS_CACHE_S = 60.0
LIMITS_RETRY_S = 5.0  # the store did not answer: use what we know, ask again this soon


class TenantLimitsCache:
    def __init__(self, ctx: ShardContext) -> None:
        self._ctx = ctx
        self._limits: dict[str, tuple[float, TenantLimits]] = {}

    async def get(self, tenant_id: str) -> TenantLimits:
        """The tenant's limits, re-read at most once a minute; the last known ones (or the
        defaults) while the store does not answer."""
        now = asyncio.get_running_loop().time()
        cached = self._limits.get(tenant_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        if self._ctx.durable.store_degraded:
            return cached[1] if cached is not None else TenantLimits()
        try:
            tenant = await within(
                STORE_READ_TIMEOUT_S, self._ctx.io(self._ctx.tenants.get, tenant_id)
            )
        except DependencyUnavailable:
            limits = cached[1] if cached is not None else TenantLimits()
            self._limits[tenant_id] = (now + LIMITS_RETRY_S, limits)
            return limits
        limits = tenant.limits if tenant else TenantLimits()
        self._limits[tenant_id] = (now + LIMITS_CACHE_S, limits)
        return limits
