"""Hands the runner's events (received messages, statuses, session state changes) to the
tenant's channels: the event log of the stream, if the tenant keeps one (written once per
event id); its Pub/Sub topic, if it has one; and a webhook Cloud Task per event, named after
the event id, so an event announced twice (a replay, a retried enqueue) is refused by Cloud
Tasks instead of delivered twice. Signing, retries and the delivery log happen at delivery
(functions/sweeper.py).

An event is enqueued when its tenant uses webhooks at all (has a URL or a signing secret)
(read at most every TENANT_CACHE_S; while the store is unreachable the last answer read is
used). Where it goes — the session's URL or the tenant's, and whether their filters take its
type (wagate.services.events.webhook_target) — is decided at delivery, from the settings of
that moment, so a change of URL or filter holds at once, with no cache to wait for.
"""

from __future__ import annotations

import contextlib
import time
from datetime import datetime
from typing import Any, Generic, TypeVar

from runner.context import ShardContext
from wagate.adapters.pubsub import PubSubPublisher
from wagate.contracts import Document, SessionDoc, TenantDoc, WebhookEvent, WebhookTask
from wagate.domain.sessions import SessionState
from wagate.errors import TaskAlreadyExists, WagateError
from wagate.logs import get_logger
from wagate.ports import Repository
from wagate.services.deliveries import delivery_task
from wagate.services.event_log import EventLog
from wagate.services.events import ordering_key, session_state_event, wanted

log = get_logger("wagate.runner.events")
TENANT_CACHE_S = 30.0
D = TypeVar("D", bound=Document)


class CachedDocs(Generic[D]):
    """Documents read at most every TENANT_CACHE_S; while the store is unreachable the copy
    read last is the best guess."""

    def __init__(self, ctx: ShardContext, repo: Repository[D]) -> None:
        self._ctx = ctx
        self._repo: Repository[D] = repo
        self._docs: dict[str, tuple[float, D | None]] = {}

    async def get(self, doc_id: str) -> D | None:
        now = time.monotonic()
        hit = self._docs.get(doc_id)
        if hit and hit[0] > now:
            return hit[1]
        try:
            doc: D | None = await self._ctx.io(self._repo.get, doc_id)
        except WagateError:
            if hit is None:
                raise
            return hit[1]
        self._docs[doc_id] = (now + TENANT_CACHE_S, doc)
        return doc


class EventAnnouncer:
    def __init__(self, ctx: ShardContext) -> None:
        self._ctx = ctx
        self._tenants = CachedDocs(ctx, ctx.tenants)
        self._log = EventLog(ctx.store, ctx.clock)
        self._sessions = CachedDocs(ctx, ctx.sessions)  # their event filters
        self._publisher: PubSubPublisher | None = None  # made on first use
        self.announced = 0

    async def announce(self, tenant_id: str, event: WebhookEvent) -> None:
        """Enqueue `event` for the tenant's webhook (if one wants it). Raises WagateError when
        the queue or the store cannot be reached (a journal replay then tries again)."""
        ctx = self._ctx
        tenant = await self._tenants.get(tenant_id)
        if tenant is None:
            return
        if tenant.event_log:
            await ctx.io(self._log.record, tenant_id, event)
        if tenant.pubsub_topic is not None:
            await self._publish(tenant, event)
        if tenant.webhook_url is None and tenant.webhook_secret_sealed is None:
            return  # the tenant has no webhook at all (a session URL comes with the secret)
        task = delivery_task(
            ctx.settings.sweeper_url,
            ctx.settings.queue_prefix,
            "wh-" + event.id.removeprefix("evt_"),
            WebhookTask(tenant_id=tenant_id, event=event),
        )
        with contextlib.suppress(TaskAlreadyExists):  # the event was announced before
            await ctx.io(ctx.queue.enqueue, task)
        self.announced += 1

    async def _publish(self, tenant: TenantDoc, event: WebhookEvent) -> None:
        """The event to the tenant's topic, if its filters take it: the events its webhook
        would get, same ids. Awaited one by one, so a session's events reach Pub/Sub in the
        order they happened, under the chat's ordering key."""
        assert tenant.pubsub_topic is not None
        ctx = self._ctx
        session = await self._sessions.get(event.session_id)
        if not wanted(tenant, session, event.type):
            return
        if self._publisher is None:
            self._publisher = PubSubPublisher.from_environment(ctx.settings.region)
        await ctx.io(
            self._publisher.publish,
            tenant.pubsub_topic,
            event.model_dump_json().encode(),
            {"event_id": event.id, "event_type": event.type, "session_id": event.session_id},
            ordering_key(event),
        )

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

    async def state_changed(
        self,
        tenant_id: str,
        session_id: str,
        state: SessionState,
        previous: SessionState,
        fields: dict[str, Any],
        attempt: int,
    ) -> None:
        """A supervisor wrote a session's state: one `session.state` event when it changed,
        or when pairing got a new QR or pairing code."""
        new_code = any(fields.get(name) is not None for name in ("qr", "pairing_code"))
        if state == previous and not new_code:
            return
        details = {
            name: value.isoformat() if isinstance(value, datetime) else value
            for name in ("jid", "qr", "qr_expires_at", "pairing_code")
            if (value := fields.get(name)) is not None
        }
        event = session_state_event(
            session_id,
            state,
            previous,
            self._ctx.clock.now(),
            reason=fields.get("last_reason") if state is not SessionState.CONNECTED else None,
            attempt=attempt,
            details=details,
        )
        await self.announce_or_log(tenant_id, event)

    async def stopped(self, doc: SessionDoc, at: datetime, action: str) -> None:
        """The event of a user's stop or logout (runner/shard.py writes the state); `action`
        (stop | logout) tells which."""
        if doc.state is SessionState.STOPPED:
            return
        event = session_state_event(
            doc.id, SessionState.STOPPED, doc.state, at, details={"requested": action}
        )
        await self.announce_or_log(doc.tenant_id, event)
