"""Health alerts with per-kind cooldowns and auto-resolve, their webhook notices, and the
recovery-action journal.

One document per (kind, subject). Raising an open alert again bumps its count and last_seen at
most once per cooldown: the cooldown is checked against the stored `last_notified_at` inside
the transaction, so it holds across processes (the sweeper is a new function instance every
so often) and a storm never becomes a Firestore hot spot; an in-process memo spares the
store round trip within one process. Resolving stamps resolved_at; raising a resolved alert
reopens it (count 1). `track` turns a condition that is re-evaluated periodically into
raise/resolve calls, with at most one store read per cooldown while the condition is clear.

Opening and resolving send an `AlertNotice` to the operators' webhook (WAGATE_ALERT_WEBHOOK_URL)
through the webhook Cloud Tasks queue, so a receiver that is down gets it later; the sweeper's
/alerts/deliver signs it like tenant webhooks (wagate.services.webhooks).
"""

from __future__ import annotations

import hashlib
import threading
import time
from datetime import datetime, timedelta
from typing import Literal, Protocol

from wagate.contracts import AlertDoc, AlertNotice, RecoveryAction, SessionDoc
from wagate.domain.ids import new_id
from wagate.domain.sessions import DesiredState, SessionState
from wagate.errors import DependencyUnavailable, NotFound, TaskAlreadyExists, WagateError
from wagate.logs import get_logger
from wagate.ports import Clock, Repository, Store, TaskQueue, TaskSpec, Where
from wagate.queues import webhook_queue
from wagate.services.webhooks import SIGNATURE_HEADER, Poster, sign

log = get_logger("wagate.alerts")

Severity = Literal["info", "warning", "critical"]

DEFAULT_COOLDOWN = timedelta(minutes=5)
NOISY_COOLDOWN = timedelta(minutes=30)
COOLDOWNS: dict[str, timedelta] = {
    "reconnect_storm": NOISY_COOLDOWN,
    "memory_growth": NOISY_COOLDOWN,
    "store_latency": NOISY_COOLDOWN,
    "dead_letters_growing": NOISY_COOLDOWN,
}
# While a condition stays clear, `track` re-reads the alert at most this often (another
# process may have opened it meanwhile).
CLEAR_RECHECK = timedelta(minutes=10)
_MEMO_LIMIT = 10_000

# Alerts about one session (subject = session id) and what clears them (resolve_cleared).
SESSION_STATE_KINDS = frozenset({"session_failed", "session_failing", "session_logged_out"})
SESSION_BACKUP_KINDS = frozenset({"backup_failing", "backup_corrupt", "backup_conflict"})


def alert_id(kind: str, subject: str) -> str:
    return f"{kind}-{hashlib.sha256(subject.encode()).hexdigest()[:16]}"


def cooldown_of(kind: str) -> timedelta:
    return COOLDOWNS.get(kind, DEFAULT_COOLDOWN)


class AlertNotifier(Protocol):
    def notify(self, notice: AlertNotice) -> None:
        """Hand the notice on; must not raise (an alert is recorded whether or not it is sent)."""


class _WithinCooldown(WagateError):
    code = "within_cooldown"

    def __init__(self, since: datetime) -> None:
        super().__init__("raised within its cooldown")
        self.since = since


class _NotOpen(WagateError):
    code = "not_open"


class Alerts:
    def __init__(self, store: Store, clock: Clock, notifier: AlertNotifier | None = None) -> None:
        self._alerts = store.collection("health_alerts", AlertDoc)
        self._actions = store.collection("recovery_actions", RecoveryAction)
        self._clock = clock
        self._notifier = notifier
        self._last_written: dict[str, datetime] = {}  # doc id → last raise recorded
        self._known_clear: dict[str, datetime] = {}  # doc id → when we last saw it closed
        self._lock = threading.Lock()

    # ------------------------------------------------------------ raise / resolve

    def raise_alert(
        self, kind: str, subject: str, message: str, severity: Severity = "warning"
    ) -> AlertDoc | None:
        """Open (or bump) an alert; None when suppressed by the cooldown."""
        now = self._clock.now()
        doc_id = alert_id(kind, subject)
        cooldown = cooldown_of(kind)
        with self._lock:
            last = self._last_written.get(doc_id)
            if last is not None and now - last < cooldown:
                return None
            self._last_written[doc_id] = now  # reserved: concurrent raisers back off
            self._known_clear.pop(doc_id, None)
        opened: list[bool] = []

        def bump(current: AlertDoc | None) -> AlertDoc:
            if current is None or current.resolved_at is not None:
                opened[:] = [True]
                return AlertDoc(
                    id=doc_id,
                    kind=kind,
                    subject=subject,
                    severity=severity,
                    message=message,
                    first_seen=now,
                    last_seen=now,
                    count=1,
                    last_notified_at=now,
                )
            opened[:] = []
            since = current.last_notified_at or current.last_seen
            if now - since < cooldown:
                raise _WithinCooldown(since)  # raised by another process: nothing to write
            return current.model_copy(
                update={
                    "last_seen": now,
                    "count": current.count + 1,
                    "message": message,
                    "severity": severity,
                    "last_notified_at": now,
                }
            )

        try:
            alert = self._alerts.upsert(doc_id, bump)
        except _WithinCooldown as e:
            with self._lock:
                self._last_written[doc_id] = e.since
            return None
        except Exception:
            with self._lock:
                self._last_written.pop(doc_id, None)  # not recorded: the next raise retries
            raise
        # Log-based metrics in Cloud Monitoring count this line (infra/terraform monitoring.tf).
        log.warning(
            "health alert raised",
            kind=kind,
            subject=subject,
            alert_severity=severity,
            count=alert.count,
            detail=message,
        )
        if opened:
            self._notify(alert)
        self._trim_memos(now)
        return alert

    def resolve(self, kind: str, subject: str) -> bool:
        """Close an open alert; False if it is not open."""
        doc_id = alert_id(kind, subject)
        now = self._clock.now()
        current = self._alerts.get(doc_id)
        alert: AlertDoc | None = None
        if current is not None and current.resolved_at is None:

            def close(doc: AlertDoc) -> AlertDoc:
                if doc.resolved_at is not None:
                    raise _NotOpen("resolved meanwhile")
                return doc.model_copy(update={"resolved_at": now})

            try:
                alert = self._alerts.update(doc_id, close)
            except (_NotOpen, NotFound):
                alert = None
        with self._lock:
            self._last_written.pop(doc_id, None)
            self._known_clear[doc_id] = now
        if alert is None:
            return False
        log.info("health alert resolved", kind=kind, subject=subject)
        self._notify(alert)
        return True

    def track(
        self,
        kind: str,
        subject: str,
        active: bool,
        message: str = "",
        severity: Severity = "warning",
    ) -> Literal["raised", "resolved"] | None:
        """One evaluation of a condition: raise while active (cooldown applies), resolve once
        it is clear. Returns what was written, if anything.

        The memos are kept here too (not only in raise_alert/resolve), so that a subclass
        that defers the writes (the runner's outage journal) is still called only on
        transitions and once per cooldown, not at every evaluation."""
        doc_id = alert_id(kind, subject)
        now = self._clock.now()
        if active:
            with self._lock:
                last = self._last_written.get(doc_id)
                if last is not None and now - last < cooldown_of(kind):
                    return None
            raised = self.raise_alert(kind, subject, message, severity)
            with self._lock:
                self._last_written.setdefault(doc_id, now)
                self._known_clear.pop(doc_id, None)
            return "raised" if raised else None
        with self._lock:
            seen_clear = self._known_clear.get(doc_id)
            if seen_clear is not None and now - seen_clear < CLEAR_RECHECK:
                return None
        resolved = self.resolve(kind, subject)
        with self._lock:
            self._last_written.pop(doc_id, None)
            self._known_clear[doc_id] = now
        return "resolved" if resolved else None

    def open_alerts(self, limit: int = 500) -> list[AlertDoc]:
        found = self._alerts.query([Where("resolved_at", "==", None)], limit=limit)
        return sorted(found, key=lambda a: a.last_seen)

    def resolve_cleared(self, sessions: Repository[SessionDoc]) -> list[str]:
        """Resolve open session alerts whose cause is gone: the session is connected again
        (state kinds), a backup succeeded since the alert (backup kinds), or the session was
        stopped or deleted. Returns the resolved alert ids."""
        wanted = [
            a for a in self.open_alerts() if a.kind in SESSION_STATE_KINDS | SESSION_BACKUP_KINDS
        ]
        if not wanted:
            return []
        docs = {d.id: d for d in sessions.get_many(sorted({a.subject for a in wanted}))}
        resolved: list[str] = []
        for alert in wanted:
            doc = docs.get(alert.subject)
            if doc is None or doc.desired != DesiredState.RUNNING:
                cleared = True
            elif alert.kind in SESSION_STATE_KINDS:
                cleared = doc.state == SessionState.CONNECTED
            else:
                cleared = doc.last_backup is not None and doc.last_backup.at > alert.last_seen
            if cleared and self.resolve(alert.kind, alert.subject):
                resolved.append(alert.id)
        return resolved

    def _notify(self, alert: AlertDoc) -> None:
        if self._notifier is None:
            return
        try:
            self._notifier.notify(AlertNotice.of(alert))
        except Exception as e:  # a notifier must not fail the caller; the alert is recorded
            log.warning("alert notice not sent", alert_id=alert.id, error=str(e))

    def _trim_memos(self, now: datetime) -> None:
        with self._lock:
            if len(self._last_written) + len(self._known_clear) <= _MEMO_LIMIT:
                return
            horizon = now - max(NOISY_COOLDOWN, CLEAR_RECHECK)
            for memo in (self._last_written, self._known_clear):
                for key in [k for k, at in memo.items() if at < horizon]:
                    del memo[key]

    # ------------------------------------------------------------ recovery journal

    def record_recovery(
        self,
        action: str,
        reason: str,
        outcome: str,
        *,
        session_id: str | None = None,
        shard: int | None = None,
    ) -> RecoveryAction:
        doc = RecoveryAction(
            id=new_id("rec"),
            session_id=session_id,
            shard=shard,
            action=action,
            reason=reason,
            outcome=outcome,
            at=self._clock.now(),
        )
        self._actions.put(doc)
        return doc


# ---------------------------------------------------------------- notices

ALERT_DELIVER_PATH = "/alerts/deliver"


def notice_task_name(notice: AlertNotice) -> str:
    """One task per transition: an open is named by its first_seen, a resolve by resolved_at,
    so a repeated notify of the same transition is refused by Cloud Tasks."""
    at = notice.resolved_at if notice.resolved_at is not None else notice.first_seen
    event = "r" if notice.event == "alert.resolved" else "o"
    return f"al-{notice.id}-{event}-{int(at.timestamp() * 1000)}"


class QueuedAlertNotifier:
    """Enqueues each notice on the webhook queue for the sweeper's /alerts/deliver."""

    def __init__(self, queue: TaskQueue, queue_prefix: str, sweeper_url: str) -> None:
        self._queue = queue
        self._queue_name = webhook_queue(queue_prefix)
        self._url = sweeper_url.rstrip("/") + ALERT_DELIVER_PATH

    def notify(self, notice: AlertNotice) -> None:
        task = TaskSpec(
            queue=self._queue_name,
            name=notice_task_name(notice),
            url=self._url,
            body=notice.model_dump_json().encode(),
            dispatch_deadline_s=30,
        )
        try:
            self._queue.enqueue(task)
        except TaskAlreadyExists:
            pass  # this transition was announced before
        except WagateError as e:
            log.warning("alert notice not enqueued", alert_id=notice.id, error=e.message)


class AlertWebhook:
    """Delivers notices to the operators' webhook, signed with HMAC-SHA256 (X-Wagate-Signature:
    t=<unix>,v1=<hex>, the tenant webhook scheme); receivers deduplicate by X-Wagate-Event-Id."""

    def __init__(self, url: str | None, secret: str | None, post: Poster) -> None:
        self._url = url
        self._secret = secret
        self._post = post

    @property
    def configured(self) -> bool:
        return bool(self._url)

    def deliver(self, notice: AlertNotice) -> int | None:
        """The receiver's status, or None when no webhook is configured. Raises
        DependencyUnavailable (the queue retries) on a non-2xx answer or a network error."""
        if not self._url:
            return None
        if not self._secret:
            raise DependencyUnavailable(
                "WAGATE_ALERT_WEBHOOK_SECRET is not configured: cannot sign alert notices",
                retry_after=60,
            )
        body = notice.model_dump_json().encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self._secret, body, int(time.time())),
            "X-Wagate-Event-Id": notice_task_name(notice),
            "X-Wagate-Event-Type": notice.event,
            "User-Agent": "wagate-alerts/1",
        }
        try:
            status = self._post(self._url, body, headers)
        except OSError as e:
            raise DependencyUnavailable(f"alert webhook unreachable: {e}", retry_after=10) from e
        if not 200 <= status < 300:
            raise DependencyUnavailable(f"alert webhook answered {status}", retry_after=10)
        return status
