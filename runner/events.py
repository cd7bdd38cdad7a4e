"""Hands the runner's events (received messages, statuses, session state changes) to the
tenant's channels: a webhook Cloud Task per event, named after the event id, so an event
announced twice (a replay, a retried enqueue) is refused by Cloud Tasks instead of delivered
twice. Signing, retries and the delivery log happen at delivery (functions/sweeper.py).

Where an event goes (wagate.services.events.webhook_target) depends on the tenant's and the
session's webhook settings, read at most every TENANT_CACHE_S; while the store is unreachable
the last answer read is used.
"""

from __future__ import annotations

import contextlib
import time
from typing import TypeVar

from runner.context import ShardContext
from wagate.contracts import SessionDoc, TenantDoc, WebhookEvent, WebhookTask
from wagate.errors import TaskAlreadyExists, WagateError
from wagate.logs import get_logger
from wagate.ports import Repository, TaskSpec
from wagate.queues import webhook_queue
from wagate.services.events import webhook_target

log = get_logger("wagate.runner.events")
TENANT_CACHE_S = 30.0
D = TypeVar("D", TenantDoc, SessionDoc)


class EventAnnouncer:
    def __init__(self, ctx: ShardContext) -> None:
        self._ctx = ctx
        self._tenants: dict[str, tuple[float, TenantDoc | None]] = {}
        self._sessions: dict[str, tuple[float, SessionDoc | None]] = {}
        self.announced = 0

    async def announce(self, tenant_id: str, event: WebhookEvent) -> None:
        """Enqueue `event` for the tenant's webhook (if one wants it). Raises WagateError when
        the queue or the store cannot be reached (a journal replay then tries again)."""
        ctx = self._ctx
        tenant = await self._cached(self._tenants, ctx.tenants, tenant_id)
        session = await self._cached(self._sessions, ctx.sessions, event.session_id)
        if webhook_target(tenant, session, event.type) is None:
            return
        task = TaskSpec(
            queue=webhook_queue(ctx.settings.queue_prefix),
            name="wh-" + event.id.removeprefix("evt_"),
            url=ctx.settings.sweeper_url.rstrip("/") + "/webhooks/deliver",
            body=WebhookTask(tenant_id=tenant_id, event=event).model_dump_json().encode(),
            dispatch_deadline_s=30,
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

    def forget_session(self, session_id: str) -> None:
        """Read the session's webhook settings afresh next time (after a control task)."""
        self._sessions.pop(session_id, None)

    async def _cached(
        self, cache: dict[str, tuple[float, D | None]], repo: Repository[D], key: str
    ) -> D | None:
        now = time.monotonic()
        hit = cache.get(key)
        if hit and hit[0] > now:
            return hit[1]
        try:
            doc = await self._ctx.io(repo.get, key)
        except WagateError:
            if hit is None:
                raise
            return hit[1]  # the store is unreachable: the settings read last are the best guess
        cache[key] = (now + TENANT_CACHE_S, doc)
        return doc
