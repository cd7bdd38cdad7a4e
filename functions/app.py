"""Composition root of the functions: builds the adapters and services once per instance."""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass

from wagate import logs
from wagate.adapters import egress, tasks
from wagate.adapters import firestore as fs
from wagate.adapters import storage as gcs
from wagate.adapters.guard import DependencyGuard
from wagate.adapters.keyring import StaticKeyRing
from wagate.clock import SystemClock
from wagate.config import Settings
from wagate.services.deliveries import DeliveryLog, webhook_queue_spec
from wagate.services.directory import SessionDirectory
from wagate.services.inbox import Inbox
from wagate.services.media import Media
from wagate.services.outbox import Outbox, Routing
from wagate.services.ratelimit import RateLimiter
from wagate.services.sessions import Sessions
from wagate.services.tenants import Tenants
from wagate.services.webhooks import Poster, WebhookDelivery


@dataclass
class Gateway:
    settings: Settings
    store: fs.FirestoreStore
    queue: tasks.CloudTasksQueue
    media: gcs.GcsBlobStore
    tenants: Tenants
    directory: SessionDirectory
    outbox: Outbox
    sessions: Sessions
    clock: SystemClock
    keyring: StaticKeyRing | None
    webhooks: WebhookDelivery | None
    inbox: Inbox
    media_files: Media
    limiter: RateLimiter
    egress: egress.EgressGuard  # every URL a user gives: webhooks, media (docs/security.md)
    post_json: Poster  # webhook and alert POSTs, through the egress guard
    deliveries: DeliveryLog  # the webhook delivery log (docs/events.md)

    @property
    def guards(self) -> list[DependencyGuard]:
        """The circuit breakers of this instance's dependencies (shown by /v1/health)."""
        return [self.store.guard, self.queue.guard, self.media.guard]


def task_auth(settings: Settings) -> tasks.TaskAuth:
    if settings.env == "cloud":
        if not settings.tasks_service_account:
            raise RuntimeError("WAGATE_TASKS_SERVICE_ACCOUNT is required when WAGATE_ENV=cloud")
        return tasks.OidcAuth(settings.tasks_service_account)
    if settings.internal_secret is None:
        raise RuntimeError("WAGATE_INTERNAL_SECRET is required when WAGATE_ENV=local")
    return tasks.SharedSecretAuth(settings.internal_secret.get_secret_value())


def build(settings: Settings) -> Gateway:
    logs.configure(settings.log_format, settings.log_level)
    clock = SystemClock()
    store = fs.FirestoreStore(fs.make_client(settings.project_id), DependencyGuard("firestore"))
    queue = tasks.CloudTasksQueue(
        tasks.make_client(settings.tasks_endpoint),
        settings.project_id,
        settings.region,
        task_auth(settings),
        DependencyGuard("tasks"),
    )
    media = gcs.GcsBlobStore(
        gcs.make_client(settings.project_id), settings.media_bucket, DependencyGuard("storage")
    )
    routing = Routing(settings.queue_prefix, settings.runner_url)
    directory = SessionDirectory(store)
    keyring = (
        StaticKeyRing(settings.backup_keys.get_secret_value()) if settings.backup_keys else None
    )
    guard = egress.EgressGuard.from_settings(settings)
    post_json = functools.partial(egress.post_json, guard)
    deliveries = DeliveryLog(store, clock, webhook_queue_spec(settings.queue_prefix))
    return Gateway(
        settings=settings,
        store=store,
        queue=queue,
        media=media,
        tenants=Tenants(store, clock),
        directory=directory,
        outbox=Outbox(store, queue, clock, routing, directory),
        sessions=Sessions(
            store,
            queue,
            clock,
            routing,
            directory,
            settings.shard_count,
            settings.sessions_per_shard,
        ),
        clock=clock,
        keyring=keyring,
        webhooks=WebhookDelivery(store, keyring, post_json, deliveries) if keyring else None,
        inbox=Inbox(store, directory),
        media_files=Media(media),
        limiter=RateLimiter(store, clock),
        egress=guard,
        post_json=post_json,
        deliveries=deliveries,
    )


_lock = threading.Lock()
_gateway: Gateway | None = None


def gateway() -> Gateway:
    """The instance's Gateway, built on first use (Cloud Functions reuse warm instances)."""
    global _gateway
    with _lock:
        if _gateway is None:
            _gateway = build(Settings())
        return _gateway
