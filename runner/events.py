"""Hands the runner's events (received messages, statuses, session state changes) to the
tenant's channels: the event log of the stream, if the tenant keeps one (written once per
event id), and a webhook Cloud Task per event, named after the event id, so an event
announced twice (a replay, a retried enqueue) is refused by Cloud Tasks instead of delivered
twice. Signing, retries and the delivery log happen at delivery (functions/sweeper.py).

An event is enqueued when its tenant has a webhook signing secret, i.e. uses webhooks at all
(read at most every TENANT_CACHE_S; while the store is unreachable the last answer read is
used). Where it goes — the session's URL or the tenant's, and whether their filters take its
type (wagate.services.events.webhook_target) — is decided at delivery, from the settings of
that moment, so a change of URL or filter holds at once, with no cache to wait for.
"""

from __future__ import annotations

import contextlib
import time

from runner.context import ShardContext
from wagate.contracts import TenantDoc, WebhookEvent, WebhookTask
from wagate.errors import TaskAlreadyExists, WagateError
from wagate.logs import get_logger
from wagate.services.deliveries import delivery_task
from wagate.services.event_log import EventLog

log = get_logger("wagate.runner.events")
TENANT_CACHE_S = 30.0


class EventAnnouncer:
    def __init__(self, ctx: ShardContext) -> None:
        self._ctx = ctx
        self._tenants: dict[str, tuple[float, TenantDoc | None]] = {}
        self._log = EventLog(ctx.store, ctx.clock)
        self.announced = 0

    async def announce(self, tenant_id: str, event: WebhookEvent) -> None:
        """Enqueue `event` for the tenant's webhook (if one wants it). Raises WagateError when
        the queue or the store cannot be reached (a journal replay then tries again)."""
        ctx = self._ctx
        tenant = await self._cached(tenant_id)
        if tenant is None:
            return
        if tenant.event_log:
            await ctx.io(self._log.record, tenant_id, event)
        if tenant.webhook_secret_sealed is None:
            return  # the tenant has no webhook at all
        task = delivery_task(
            ctx.settings.sweeper_url,
            ctx.settings.queue_prefix,
            "wh-" + event.id.removeprefix("evt_"),
            WebhookTask(tenant_id=tenant_id, event=event),
        )
        with contextlib.suppress(TaskAlreadyExists):  # the event was announced before
            await ctx.io(ctx.queue.enqueue, task)
        self.announced += 1

    async def announce_or_log(self, tenant_id: str, event: WebhookEvent) -> None:
        """announce(), for callers with nothing to retry: a failure is logged."""
        try:
            await self.announce(tenant_id, event)
        except WagateError as e:
            log.warning(
                "event not announced",
                session_id=event.session_id,
                event_type=event.type,
                error=e.message,
            )

    async def _cached(self, tenant_id: str) -> TenantDoc | None:
        now = time.monotonic()
        hit = self._tenants.get(tenant_id)
        if hit and hit[0] > now:
            return hit[1]
        try:
            doc = await self._ctx.io(self._ctx.tenants.get, tenant_id)
        except WagateError:
            if hit is None:
                raise
            return hit[1]  # the store is unreachable: the settings read last are the best guess
        self._tenants[tenant_id] = (now + TENANT_CACHE_S, doc)
        return doc
