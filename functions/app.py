"""Composition root of the functions: builds the adapters and services once per instance."""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass

from functions import server
from wagate import logs, wiring
from wagate.adapters import egress, tasks
from wagate.adapters import firestore as fs
from wagate.adapters import storage as gcs
from wagate.adapters.guard import DependencyGuard
from wagate.adapters.keyring import StaticKeyRing
from wagate.adapters.runner_client import RunnerClient
from wagate.clock import SystemClock
from wagate.config import Settings
from wagate.services.chat_actions import ChatActions
from wagate.services.contacts import NumberChecks
from wagate.services.deliveries import DeliveryLog, webhook_queue_spec
from wagate.services.directory import SessionDirectory
from wagate.services.groups import Groups
from wagate.services.inbox import Inbox
from wagate.services.live_queries import LiveQueries
from wagate.services.media import Media
from wagate.services.outbox import Outbox
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
    buckets: wiring.Buckets  # every bucket of this instance: one client, one breaker
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
    number_checks: NumberChecks  # POST …/contacts:check (asks the session's runner)
    groups: Groups  # …/groups (asks the session's runner)
    chat_actions: ChatActions  # mark read, presence, edit, revoke (docs/messaging.md)

    @property
    def guards(self) -> list[DependencyGuard]:
        """The circuit breakers of this instance's dependencies (shown by /v1/health)."""
        return [self.store.guard, self.queue.guard, self.buckets.guard]


def build(settings: Settings) -> Gateway:
    logs.configure(settings.log_format, settings.log_level)
    clock = SystemClock()
    store = wiring.firestore_store(settings)
    queue = wiring.task_queue(settings)
    buckets = wiring.Buckets(settings)
    media = buckets.media()
    routing = wiring.routing(settings)
    directory = SessionDirectory(store)
    # Optional here: without it the api still serves, webhooks answer 503 (functions/sweeper.py).
    keyring = wiring.keyring(settings) if settings.backup_keys else None
    guard = egress.EgressGuard.from_settings(settings)
    post_json = functools.partial(egress.post_json, guard)
    deliveries = DeliveryLog(store, clock, webhook_queue_spec(settings.queue_prefix))
    # Number checks and groups are questions for a live socket: the runner's, asked directly.
    live = LiveQueries(directory, RunnerClient(settings.runner_url, wiring.task_auth(settings)))
    outbox = Outbox(store, queue, clock, routing, directory)
    return Gateway(
        settings=settings,
        store=store,
        queue=queue,
        media=media,
        buckets=buckets,
        tenants=Tenants(store, clock),
        directory=directory,
        outbox=outbox,
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
        number_checks=NumberChecks(store, clock, live),
        groups=Groups(store, clock, live),
        chat_actions=ChatActions(store, outbox, directory, clock),
    )


_lock = threading.Lock()
_gateway: Gateway | None = None


def gateway() -> Gateway:
    """The instance's Gateway, built on first use (Cloud Functions reuse warm instances)."""
    global _gateway
    with _lock:
        if _gateway is None:
            _gateway = build(Settings())
            server.settle_heap()  # the clients just built live as long as the instance
        return _gateway
