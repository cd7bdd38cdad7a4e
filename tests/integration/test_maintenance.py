"""Scheduled maintenance on the Firestore and Cloud Storage emulators: old inbound messages and
delivered message bodies are pruned by retention, live sessions' key material is bucketed by
age and an expired backlog raises (then resolves) `expired_keys`, superseded backup versions
with expired key material and orphan backups are removed; a dry run only counts; a second run
finds nothing left; the sweeper serves it at /maintenance."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.factories import text_message
from tests.integration.api_client import Api
from wagate.adapters.firestore import FirestoreStore, make_client
from wagate.adapters.memory import FixedClock
from wagate.adapters.storage import GcsBlobStore
from wagate.adapters.storage import make_client as gcs_client
from wagate.adapters.tasks import INTERNAL_TOKEN_HEADER
from wagate.contracts import (
    AlertDoc,
    BackupInfo,
    ContactContent,
    InboundDoc,
    LocationContent,
    MediaContent,
    MessageDoc,
    ReactionContent,
    SessionDoc,
    TextContent,
)
from wagate.domain.ids import new_message_id
from wagate.domain.messages import MessageStatus
from wagate.domain.sessions import SessionState
from wagate.services.alerts import Alerts, alert_id
from wagate.services.backups import SessionBackups
from wagate.services.maintenance import PLACEHOLDER, Maintenance, Retention, pruned_content

pytestmark = pytest.mark.integration

DAY = timedelta(days=1)


@pytest.fixture
def env(firestore_env: dict[str, str], gcs_env: dict[str, str]) -> Iterator[tuple[Any, Any]]:
    store = FirestoreStore(make_client(firestore_env["WAGATE_PROJECT_ID"]))
    bucket = GcsBlobStore(gcs_client("wagate-test"), f"b-{uuid.uuid4().hex[:12]}")
    bucket.ensure_bucket(versioning=True)
    yield store, bucket


def message(status: MessageStatus, updated: datetime, body: str = "hello there") -> MessageDoc:
    mid = new_message_id()
    return text_message(
        mid,
        session_id="ses_fresh",
        to="+15551234567",
        content=TextContent(body=body),
        status=status,
        created_at=updated - timedelta(minutes=1),
        updated_at=updated,
    )


def session(sid: str, state: SessionState, keys_at: datetime | None) -> SessionDoc:
    return SessionDoc(id=sid, tenant_id="ten_1", shard=0, state=state, keys_changed_at=keys_at)


def test_maintenance_prunes_by_retention_and_ages_key_material(env: tuple[Any, Any]) -> None:
    store, bucket = env
    # GCS stamps objects with the real time; the maintenance clock runs 40 days ahead, so
    # every backup version written now is 40 days old to it.
    real_now = datetime.now(UTC)
    clock = FixedClock(real_now + 40 * DAY)
    now = clock.now()
    alerts = Alerts(store, clock)
    sessions = store.collection("sessions", SessionDoc)
    legacy = session("ses_legacy", SessionState.RECONNECTING, None)
    legacy.last_backup = BackupInfo(generation=1, key_id="k1", sha256="x", at=now - 12 * DAY)
    sessions.put_many(
        [
            session("ses_fresh", SessionState.CONNECTED, now - 1 * DAY),
            session("ses_aging", SessionState.CONNECTED, now - 10 * DAY),
            session("ses_expired", SessionState.CONNECTED, now - 45 * DAY),
            legacy,  # written before keys_changed_at existed: its last backup tells the age
            session("ses_new", SessionState.CONNECTING, None),
            session("ses_stopped", SessionState.STOPPED, now - 400 * DAY),  # not live: not aged
        ]
    )
    inbound = store.subcollection("sessions", "ses_fresh", "inbound", InboundDoc)
    for wa_id, age in (("old-1", 31 * DAY), ("old-2", 60 * DAY), ("recent", 2 * DAY)):
        inbound.put(
            InboundDoc(
                id=wa_id,
                session_id="ses_fresh",
                tenant_id="ten_1",
                chat="c",
                sender="s",
                kind="text",
                content={"body": "hi"},
                ts=now - age,
                received_at=now - age,
            )
        )
    messages = store.collection("messages", MessageDoc)
    old_delivered = message(MessageStatus.DELIVERED, now - 31 * DAY)
    old_read = message(MessageStatus.READ, now - 50 * DAY)
    recent_read = message(MessageStatus.READ, now - 2 * DAY)
    old_dead = message(MessageStatus.DEAD, now - 50 * DAY)  # an operator may still retry it
    old_sent = message(MessageStatus.SENT, now - 50 * DAY)  # not delivered: kept
    messages.put_many([old_delivered, old_read, recent_read, old_dead, old_sent])
    # Backups: ses_fresh has 4 versions (3 superseded), an orphan whose session was deleted.
    name = SessionBackups.object_name("ten_1", "ses_fresh")
    for i in range(4):
        bucket.put(name, f"state-{i}".encode())
    orphan = SessionBackups.object_name("ten_1", "ses_gone")
    bucket.put(orphan, b"v1")
    bucket.put(orphan, b"v2")

    maintenance = Maintenance(store, bucket, clock, Retention(), alerts=alerts)
    dry = maintenance.run(dry_run=True)
    expected = {
        "inbound_pruned": 2,
        "message_bodies_pruned": 2,
        "backup_versions_expired": 1,  # 3 superseded, the newest 2 kept for a fallback restore
        "orphan_backups_pruned": 1,
        "sessions_scanned": 6,
        "keys_fresh": 1,
        "keys_aging": 2,
        "keys_expired": 1,
        "keys_unknown": 1,
        "incomplete": [],
        "errors": [],
    }
    assert dry.model_dump(exclude={"dry_run"}) == expected and dry.dry_run
    # A dry run changes nothing and raises nothing.
    assert len(inbound.query()) == 3
    assert messages.get(old_delivered.id).content_pruned_at is None
    assert len(bucket.versions(name)) == 4 and bucket.list_objects(orphan)
    assert alerts.open_alerts() == []

    done = maintenance.run()
    assert done.model_dump(exclude={"dry_run"}) == expected
    assert sorted(d.id for d in inbound.query()) == ["recent"]
    for pruned in (old_delivered, old_read):
        doc = messages.get(pruned.id)
        assert doc is not None and doc.content == TextContent(body=PLACEHOLDER)
        assert doc.content_pruned_at == now and doc.status == pruned.status
        assert doc.wa_id == pruned.wa_id
    for kept in (recent_read, old_dead, old_sent):
        assert messages.get(kept.id).content == TextContent(body="hello there")
    # Counted, not deleted: the bucket's lifecycle rule does that (see Maintenance).
    assert len(bucket.versions(name)) == 4 and bucket.head(name).size == len(b"state-3")
    # (fake-gcs-server keeps non-current versions it was asked to delete; GCS does not.)
    assert bucket.list_objects(orphan) == []
    expired = alerts.open_alerts()
    assert [(a.kind, a.subject) for a in expired] == [("expired_keys", "sessions")]
    assert "1 live session(s)" in expired[0].message

    # Nothing left to do; the expired session got fresh keys: the alert resolves.
    sessions.update(
        "ses_expired", lambda d: d.model_copy(update={"keys_changed_at": now - 1 * DAY})
    )
    again = maintenance.run()
    assert (again.inbound_pruned, again.message_bodies_pruned) == (0, 0)
    assert again.orphan_backups_pruned == 0
    assert again.keys_expired == 0 and again.keys_fresh == 2
    closed = store.collection("health_alerts", AlertDoc).get(alert_id("expired_keys", "sessions"))
    assert closed is not None and closed.resolved_at is not None


def test_a_pass_stops_at_its_limit_and_the_next_run_continues(env: tuple[Any, Any]) -> None:
    store, _ = env
    clock = FixedClock(datetime.now(UTC))
    messages = store.collection("messages", MessageDoc)
    old = [
        message(MessageStatus.DELIVERED, clock.now() - (40 + i) * DAY, body=f"m{i}")
        for i in range(5)
    ]
    messages.put_many(old)
    maintenance = Maintenance(store, None, clock, Retention(limit_per_pass=3))
    first = maintenance.run()
    assert first.message_bodies_pruned == 3 and first.incomplete == ["message_bodies"]
    second = maintenance.run()
    assert second.message_bodies_pruned == 2 and second.incomplete == []
    assert all(messages.get(m.id).content_pruned_at for m in old)
    assert maintenance.run().message_bodies_pruned == 0


def test_pruned_content_keeps_the_kind_and_drops_what_people_wrote() -> None:
    media = MediaContent(type="image", url="https://example.com/a.png", caption="our secret")
    assert pruned_content(TextContent(body="call me")) == TextContent(body=PLACEHOLDER)
    assert pruned_content(media) == MediaContent(type="image", url="https://example.com/a.png")
    location = pruned_content(LocationContent(latitude=48.1, longitude=11.5, name="home"))
    assert location == LocationContent(latitude=0.0, longitude=0.0)
    contact = pruned_content(ContactContent(name="Ann", phone="+15551234567"))
    assert contact == ContactContent(name=PLACEHOLDER, phone="000000")
    reaction = ReactionContent(message_id="3EB0X", emoji="👍")
    assert pruned_content(reaction) == reaction


def test_the_sweeper_serves_maintenance_to_the_scheduler_only(
    emulators: Any, firestore_env: dict[str, str]
) -> None:
    emulators.provision_project(firestore_env["WAGATE_PROJECT_ID"])
    sweeper = Api(target="sweeper")
    from functions.app import gateway

    secret = gateway().settings.internal_secret.get_secret_value()  # type: ignore[union-attr]
    messages = gateway().store.collection("messages", MessageDoc)
    old = message(MessageStatus.READ, datetime.now(UTC) - 31 * DAY)
    messages.put(old)
    dry = sweeper.call("POST", "/maintenance?dry_run=true", headers={INTERNAL_TOKEN_HEADER: secret})
    assert dry.status_code == 200, dry.get_json()
    assert dry.get_json()["dry_run"] is True and dry.get_json()["message_bodies_pruned"] == 1
    assert dry.get_json()["errors"] == []
    run = sweeper.call("POST", "/maintenance", headers={INTERNAL_TOKEN_HEADER: secret})
    assert run.status_code == 200 and run.get_json()["message_bodies_pruned"] == 1
    assert messages.get(old.id).content_pruned_at is not None  # type: ignore[union-attr]
    assert sweeper.call("POST", "/maintenance").status_code == 401
