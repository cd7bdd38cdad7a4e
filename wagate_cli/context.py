"""Composition root of the operator CLI: builds adapters and services once per command from
Settings (the same WAGATE_* environment the functions and runners read).

Everything is built on first use, so a read-only command never needs, say, the internal secret
that enqueueing a control task does. Against the local stack the environment comes from
`./dev up` (it writes `.stack/env`); against a real project, from the deployment's settings and
Application Default Credentials.
"""

from __future__ import annotations

import sys
from functools import cached_property

import structlog

from wagate import logs, wiring
from wagate.adapters import firestore as fs
from wagate.adapters import storage as gcs
from wagate.adapters import tasks
from wagate.adapters.keyring import StaticKeyRing
from wagate.clock import SystemClock
from wagate.config import Settings
from wagate.contracts import AlertDoc, MessageDoc, SessionDoc, ShardLease, TenantDoc
from wagate.errors import ValidationFailed, WagateError
from wagate.ports import Repository
from wagate.services.alerts import Alerts, QueuedAlertNotifier
from wagate.services.directory import SessionDirectory
from wagate.services.outbox import Outbox, Routing
from wagate.services.sessions import Sessions
from wagate.services.tenants import Tenants


class Operator:
    """The ports and services an operator command needs, wired from one Settings object."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.clock = SystemClock()

    # ------------------------------------------------------------ adapters

    @cached_property
    def store(self) -> fs.FirestoreStore:
        return wiring.firestore_store(self.settings)

    @cached_property
    def backup_bucket(self) -> gcs.GcsBlobStore:
        return wiring.Buckets(self.settings).backups()

    @cached_property
    def queue(self) -> tasks.CloudTasksQueue:
        """Only commands that send control tasks need it (and its secret or service account)."""
        try:
            return wiring.task_queue(self.settings)
        except wiring.MissingSetting as e:
            hint = " (source .stack/env after ./dev up)" if self.settings.env == "local" else ""
            raise ValidationFailed(f"{e}{hint}", field=e.setting) from None

    @cached_property
    def keyring(self) -> StaticKeyRing:
        try:
            return wiring.keyring(self.settings)
        except wiring.MissingSetting as e:
            raise ValidationFailed(str(e), field=e.setting) from None

    # ------------------------------------------------------------ repositories

    @cached_property
    def session_docs(self) -> Repository[SessionDoc]:
        return self.store.collection("sessions", SessionDoc)

    @cached_property
    def message_docs(self) -> Repository[MessageDoc]:
        return self.store.collection("messages", MessageDoc)

    @cached_property
    def alert_docs(self) -> Repository[AlertDoc]:
        return self.store.collection("health_alerts", AlertDoc)

    @cached_property
    def tenant_docs(self) -> Repository[TenantDoc]:
        return self.store.collection("tenants", TenantDoc)

    @cached_property
    def shard_leases(self) -> Repository[ShardLease]:
        return self.store.collection("shards", ShardLease)

    # ------------------------------------------------------------ services

    @cached_property
    def routing(self) -> Routing:
        return wiring.routing(self.settings)

    @cached_property
    def directory(self) -> SessionDirectory:
        return SessionDirectory(self.store)

    @cached_property
    def tenants(self) -> Tenants:
        return Tenants(self.store, self.clock)

    @cached_property
    def sessions(self) -> Sessions:
        return Sessions(
            self.store,
            self.queue,
            self.clock,
            self.routing,
            self.directory,
            self.settings.shard_count,
            self.settings.sessions_per_shard,
        )

    @cached_property
    def outbox(self) -> Outbox:
        return Outbox(self.store, self.queue, self.clock, self.routing, self.directory)

    @cached_property
    def alerts(self) -> Alerts:
        """With the operators' notifier when control tasks can be sent (resolve notices)."""
        try:
            queue = self.queue
        except WagateError:
            return Alerts(self.store, self.clock)
        s = self.settings
        return Alerts(
            self.store, self.clock, QueuedAlertNotifier(queue, s.queue_prefix, s.sweeper_url)
        )


class _Stderr:
    """Whatever sys.stderr is at the time of writing (test runners swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def connect() -> Operator:
    """The one place the CLI turns the environment into objects. Service logs go to stderr
    (warnings and up), so stdout carries only the command's output; a host process that set up
    logging already (tests running the app in-process) keeps its own setup."""
    settings = Settings()
    if not structlog.is_configured():
        logs.configure("console", "WARNING", stream=_Stderr())
    return Operator(settings)
