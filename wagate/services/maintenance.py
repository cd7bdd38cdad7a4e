"""Scheduled maintenance (the sweeper's /maintenance, hourly; `wagate cleanup` by hand): prune
what retention says must go, and age the sessions' key material.

Passes, each bounded by `Retention.limit_per_pass` per run (the next run continues):
- inbound messages (sessions/{id}/inbound) received before the inbound retention;
- content of delivered/read messages older than the body retention, replaced by a placeholder
  of the same kind (`content_pruned_at` is set; status, times and ids stay for the record).
  A watermark in ops_state/message_bodies makes the pass resumable without re-reading;
- key material age buckets of live sessions (fresh < 7 d ≤ aging < key max age ≤ expired)
  and the `expired_keys` alert when more than `expired_keys_alert_over` are expired;
- superseded backup generations older than the key max age (they hold nothing but expired
  key material) beyond the newest `backup_versions_kept`, counted only: the bucket's lifecycle
  rule deletes them (infra/terraform storage.tf). Deleting one generation here is not safe
  everywhere: fake-gcs-server's DELETE ?generation= removes the *live* object instead, which
  would cost a session its credentials on a developer's machine;
- orphan backups: backup objects of sessions that no longer exist, older than a grace period,
  deleted with every version.

Firestore TTL policies (expire_at) and the bucket lifecycle rules do the same in the cloud on
their own schedule (TTL deletes can lag by a day or more); the local emulators have neither,
and this pass reports what is left. See docs/operations.md for the key-age decision.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from wagate.contracts import (
    ContactContent,
    EditContent,
    InboundDoc,
    LocationContent,
    MaintenanceReport,
    MediaContent,
    MessageDoc,
    PollContent,
    PresenceContent,
    ReactionContent,
    ReadContent,
    RevokeContent,
    SessionDoc,
    StoredContent,
    TextContent,
    Watermark,
)
from wagate.domain.messages import MessageStatus
from wagate.domain.sessions import SessionState
from wagate.errors import WagateError
from wagate.logs import get_logger
from wagate.ports import BlobInfo, BlobStore, Clock, Store, Where
from wagate.services.alerts import Alerts

log = get_logger("wagate.maintenance")

PLACEHOLDER = "[pruned]"
PAGE = 300
PATCH_BATCH = 200
# Sessions that hold credentials and keep using them; their key material should keep changing.
LIVE_KEY_STATES = frozenset(
    {SessionState.CONNECTED, SessionState.CONNECTING, SessionState.RECONNECTING}
)
DELIVERED_VALUES = [MessageStatus.DELIVERED.value, MessageStatus.READ.value]
# SessionBackups.object_name: sessions/{tenant}/{session}/auth.wgb
BACKUP_NAME = re.compile(r"^sessions/(?P<tenant>[^/]+)/(?P<session>[^/]+)/auth\.wgb$")
EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Retention:
    inbound: timedelta = timedelta(days=30)
    message_bodies: timedelta = timedelta(days=30)
    key_max_age: timedelta = timedelta(days=30)
    key_aging_after: timedelta = timedelta(days=7)
    backup_versions_kept: int = 2
    orphan_grace: timedelta = timedelta(hours=1)
    limit_per_pass: int = 5000
    expired_keys_alert_over: int = 0


def pruned_content(content: StoredContent) -> StoredContent:
    """The same kind of content with what the user wrote removed."""
    match content:
        case EditContent():
            return content.model_copy(update={"body": PLACEHOLDER})
        case ReadContent() | PresenceContent() | RevokeContent():
            return content
        case TextContent():
            return TextContent(body=PLACEHOLDER)
        case MediaContent():
            # The reference stays (the media bucket's lifecycle expires uploads); the words go.
            return content.model_copy(update={"caption": None, "filename": None})
        case LocationContent():
            return LocationContent(latitude=0.0, longitude=0.0)
        case ContactContent():
            return ContactContent(name=PLACEHOLDER, phone="000000")
        case ReactionContent():
            return content
        case PollContent():
            # Distinct placeholders keep the poll valid; votes arriving later are not named.
            options = [f"{PLACEHOLDER} {i}" for i in range(1, len(content.options) + 1)]
            return content.model_copy(update={"question": PLACEHOLDER, "options": options})
    raise AssertionError(f"unknown content {type(content).__name__}")  # pragma: no cover


class Maintenance:
    def __init__(
        self,
        store: Store,
        backups: BlobStore | None,
        clock: Clock,
        retention: Retention | None = None,
        *,
        alerts: Alerts | None = None,
    ) -> None:
        self._store = store
        self._sessions = store.collection("sessions", SessionDoc)
        self._messages = store.collection("messages", MessageDoc)
        self._state = store.collection("ops_state", Watermark)
        self._backups = backups
        self._clock = clock
        self.retention = retention or Retention()
        self._alerts = alerts

    def run(self, *, dry_run: bool = False) -> MaintenanceReport:
        report = MaintenanceReport(dry_run=dry_run)
        now = self._clock.now()
        sessions: dict[str, SessionDoc] | None = None
        try:
            sessions = self._session_pass(report, now, dry_run)
        except WagateError as e:
            report.errors.append(f"sessions: {e.message}")
        self._guarded(report, "message_bodies", lambda: self._prune_bodies(report, now, dry_run))
        if self._backups is not None and sessions is not None:
            # Orphans are judged against the full list of sessions: never after a partial scan.
            known = sessions
            self._guarded(report, "backups", lambda: self._backup_pass(report, now, known, dry_run))
        alerts = self._alerts
        if alerts is not None and sessions is not None and not dry_run:
            over = report.keys_expired > self.retention.expired_keys_alert_over
            message = (
                f"{report.keys_expired} live session(s) have key material unchanged for "
                f"{self.retention.key_max_age.days}+ days"
            )
            self._guarded(
                report, "alerts", lambda: alerts.track("expired_keys", "sessions", over, message)
            )
        log.info("maintenance ran", **report.model_dump())
        return report

    @staticmethod
    def _guarded(report: MaintenanceReport, name: str, step: Callable[[], object]) -> None:
        try:
            step()
        except WagateError as e:
            report.errors.append(f"{name}: {e.message}")

    # ------------------------------------------------------------ sessions: inbound + key ages

    def _all_sessions(self) -> Iterator[SessionDoc]:
        cursor: str | None = None
        while True:
            page = self._sessions.query(order_by="id", limit=PAGE, start_after=cursor)
            yield from page
            if len(page) < PAGE:
                return
            cursor = page[-1].id

    def _session_pass(
        self, report: MaintenanceReport, now: datetime, dry_run: bool
    ) -> dict[str, SessionDoc]:
        seen: dict[str, SessionDoc] = {}
        budget = self.retention.limit_per_pass
        cutoff = now - self.retention.inbound
        for doc in self._all_sessions():
            seen[doc.id] = doc
            report.sessions_scanned += 1
            self._age_keys(report, doc, now)
            if budget <= 0:
                continue
            inbound = self._store.subcollection("sessions", doc.id, "inbound", InboundDoc)
            old = inbound.query([Where("received_at", "<", cutoff)], limit=budget)
            for message in old:
                if not dry_run:
                    inbound.delete(message.id)
            report.inbound_pruned += len(old)
            budget -= len(old)
            if budget <= 0:
                report.incomplete.append("inbound")
        return seen

    def _age_keys(self, report: MaintenanceReport, doc: SessionDoc, now: datetime) -> None:
        if doc.state not in LIVE_KEY_STATES:
            return
        changed = doc.keys_changed_at or (doc.last_backup.at if doc.last_backup else None)
        if changed is None:
            report.keys_unknown += 1
            return
        age = now - changed
        if age >= self.retention.key_max_age:
            report.keys_expired += 1
        elif age >= self.retention.key_aging_after:
            report.keys_aging += 1
        else:
            report.keys_fresh += 1

    # ------------------------------------------------------------ delivered message bodies

    def _prune_bodies(self, report: MaintenanceReport, now: datetime, dry_run: bool) -> None:
        cutoff = now - self.retention.message_bodies
        mark = self._state.get("message_bodies")
        since = mark.until if mark else EPOCH
        limit = self.retention.limit_per_pass
        found = self._messages.query(
            [
                Where("status", "in", DELIVERED_VALUES),
                Where("updated_at", ">=", since),
                Where("updated_at", "<", cutoff),
            ],
            order_by="updated_at",
            limit=limit + 1,  # one more tells whether this run leaves some for the next
        )
        if len(found) > limit:
            report.incomplete.append("message_bodies")
            found = found[:limit]
        todo = [m for m in found if m.content_pruned_at is None]
        report.message_bodies_pruned = len(todo)
        if dry_run or not found:
            return
        for start in range(0, len(todo), PATCH_BATCH):
            self._store.patch_many(
                [
                    (
                        "messages",
                        m.id,
                        {
                            "content": pruned_content(m.content),
                            "content_pruned_at": now,
                            # The texts of its edits are what the user wrote too.
                            **{f"edits.{k}.text": PLACEHOLDER for k in m.edits},
                        },
                    )
                    for m in todo[start : start + PATCH_BATCH]
                ]
            )
        # Resume after the newest one handled; one with the same updated_at is re-read, and
        # skipped, next time.
        self._state.put(Watermark(id="message_bodies", until=found[-1].updated_at))

    # ------------------------------------------------------------ backups

    def _backup_pass(
        self,
        report: MaintenanceReport,
        now: datetime,
        sessions: dict[str, SessionDoc],
        dry_run: bool,
    ) -> None:
        assert self._backups is not None
        budget = self.retention.limit_per_pass
        for live in self._backups.list_objects("sessions/"):
            if budget <= 0:
                report.incomplete.append("backups")
                return
            match = BACKUP_NAME.match(live.name)
            if match is None:
                continue
            doc = sessions.get(match["session"])
            if doc is None or doc.tenant_id != match["tenant"]:
                budget -= self._prune_orphan(report, now, live, dry_run)
            else:
                budget -= self._count_expired_versions(report, now, live)

    def _prune_orphan(
        self, report: MaintenanceReport, now: datetime, live: BlobInfo, dry_run: bool
    ) -> int:
        assert self._backups is not None
        if live.updated is None or now - live.updated < self.retention.orphan_grace:
            return 0  # too young to judge (or no time known): a session may be being created
        if not dry_run:
            for version in self._backups.versions(live.name):
                self._backups.delete(live.name, generation=version.generation)
            self._backups.delete(live.name)
        report.orphan_backups_pruned += 1
        log.info("orphan backup pruned", object=live.name, dry_run=dry_run)
        return 1

    def _count_expired_versions(
        self, report: MaintenanceReport, now: datetime, live: BlobInfo
    ) -> int:
        assert self._backups is not None
        versions = self._backups.versions(live.name)
        superseded = [v for v in versions if v.generation != live.generation]
        expired = [
            v
            for v in superseded[self.retention.backup_versions_kept :]
            if v.updated is not None and now - v.updated >= self.retention.key_max_age
        ]
        report.backup_versions_expired += len(expired)
        return 1  # one listing call
