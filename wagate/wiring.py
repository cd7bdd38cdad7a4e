"""Builds the core's adapters from one Settings, for every program's composition root
(functions/app.py, runner/__main__.py, wagate_cli/context.py): each setting is read and
checked here, once, so the programs cannot drift apart in what they accept."""

from __future__ import annotations

import os
import threading
from datetime import timedelta
from typing import Any

from wagate.adapters import firestore as fs
from wagate.adapters import storage as gcs
from wagate.adapters import tasks
from wagate.adapters.guard import DependencyGuard
from wagate.adapters.keyring import StaticKeyRing
from wagate.adapters.signed_urls import PUBLIC_ENDPOINT, GcsUrlSigner
from wagate.config import Settings
from wagate.services.maintenance import Retention
from wagate.services.outbox import Routing


class MissingSetting(RuntimeError):
    """A setting the program cannot do its work without; `setting` names the variable."""

    def __init__(self, setting: str, why: str) -> None:
        super().__init__(f"{setting} is required: {why}")
        self.setting = setting


def task_auth(settings: Settings) -> tasks.TaskAuth:
    """How the tasks this program creates prove they are wagate's: an OIDC token signed as
    WAGATE_TASKS_SERVICE_ACCOUNT in the cloud, the WAGATE_INTERNAL_SECRET header locally.

    Unset or empty is an error in both modes: the receiving endpoints (functions/auth.py,
    runner/app.py) refuse an empty secret and accept only tokens of that account, so a task
    signed with neither would fail at delivery, long after the misconfiguration."""
    if settings.env == "cloud":
        if not settings.tasks_service_account:
            raise MissingSetting(
                "WAGATE_TASKS_SERVICE_ACCOUNT",
                "in the cloud, Cloud Tasks signs the internal calls' OIDC tokens as it",
            )
        return tasks.OidcAuth(settings.tasks_service_account)
    secret = settings.internal_secret.get_secret_value() if settings.internal_secret else ""
    if not secret:
        raise MissingSetting(
            "WAGATE_INTERNAL_SECRET", "locally, internal calls carry it instead of OIDC tokens"
        )
    return tasks.SharedSecretAuth(secret)


def firestore_store(settings: Settings, guard: DependencyGuard | None = None) -> fs.FirestoreStore:
    return fs.FirestoreStore(
        fs.make_client(settings.project_id), guard or DependencyGuard("firestore")
    )


def task_queue(settings: Settings, guard: DependencyGuard | None = None) -> tasks.CloudTasksQueue:
    """Raises MissingSetting when tasks could not be signed (task_auth)."""
    return tasks.CloudTasksQueue(
        tasks.make_client(settings.tasks_endpoint),
        settings.project_id,
        settings.region,
        task_auth(settings),
        guard or DependencyGuard("tasks"),
    )


def routing(settings: Settings) -> Routing:
    """Where send tasks go: the api creates them, the runner's takeover nudge and the sweeper
    create them again (wagate/services/outbox.py), all to the same queues and runner URLs."""
    return Routing(settings.queue_prefix, settings.runner_url)


class Buckets:
    """Every bucket one program uses, over one Cloud Storage client (made on first use) and one
    breaker, so an outage of Cloud Storage shows once in /health, whichever bucket saw it."""

    def __init__(self, settings: Settings, guard: DependencyGuard | None = None) -> None:
        self.guard = guard or DependencyGuard("storage")
        self._settings = settings
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def in_use(self) -> bool:
        """Whether any bucket was handed out (the runner shows the breaker only then)."""
        return self._client is not None

    def bucket(self, name: str) -> gcs.GcsBlobStore:
        with self._lock:
            if self._client is None:
                self._client = gcs.make_client(self._settings.project_id)
            return gcs.GcsBlobStore(self._client, name, self.guard)

    def backups(self) -> gcs.GcsBlobStore:
        return self.bucket(self._settings.backup_bucket)

    def media(self) -> gcs.GcsBlobStore:
        return self.bucket(self._settings.media_bucket)

    def media_signer(self) -> GcsUrlSigner | None:
        """Signs the media bucket's URLs: as the runtime's service account in the cloud, with
        WAGATE_MEDIA_SIGNING_KEY locally; None locally without a key (events then carry no
        URL, GET /v1/media/{id} still serves the file)."""
        s = self._settings
        key = s.media_signing_key.get_secret_value() if s.media_signing_key else None
        if s.env != "cloud" and not key:
            return None
        emulator = os.environ.get("STORAGE_EMULATOR_HOST")
        endpoint = s.media_url_endpoint or emulator or PUBLIC_ENDPOINT
        with self._lock:
            if self._client is None:
                self._client = gcs.make_client(s.project_id)
            client = self._client
        return GcsUrlSigner(client, s.media_bucket, key_json=key, endpoint=endpoint)


def keyring(settings: Settings) -> StaticKeyRing:
    """The backup key ring (also the webhook secrets' seal)."""
    if settings.backup_keys is None or not settings.backup_keys.get_secret_value():
        raise MissingSetting("WAGATE_BACKUP_KEYS", "the backup key ring 'kid:base64key,…'")
    return StaticKeyRing(settings.backup_keys.get_secret_value())


def retention_of(s: Settings) -> Retention:
    """Maintenance retention (the sweeper's hourly pass and `wagate cleanup`)."""
    return Retention(
        inbound=timedelta(days=s.retention_inbound_days),
        message_bodies=timedelta(days=s.retention_message_body_days),
        key_max_age=timedelta(days=s.key_max_age_days),
    )
