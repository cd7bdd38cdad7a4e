"""Health alerts with per-kind cooldowns and auto-resolve, and the recovery-action journal.

One document per (kind, subject): raising an open alert again only bumps its count and
last_seen (at most once per cooldown, so a storm does not become a Firestore hot spot);
resolving stamps resolved_at; raising a resolved alert reopens it.
"""

from __future__ import annotations

import hashlib
import threading
from datetime import timedelta
from typing import Literal

from wagate.contracts import AlertDoc, RecoveryAction
from wagate.domain.ids import new_id
from wagate.logs import get_logger
from wagate.ports import Clock, Store

log = get_logger("wagate.alerts")

Severity = Literal["info", "warning", "critical"]

DEFAULT_COOLDOWN = timedelta(minutes=5)
COOLDOWNS: dict[str, timedelta] = {
    "reconnect_storm": timedelta(minutes=30),
    "memory_growth": timedelta(minutes=30),
    "store_latency": timedelta(minutes=30),
}


def alert_id(kind: str, subject: str) -> str:
    return f"{kind}-{hashlib.sha256(subject.encode()).hexdigest()[:16]}"


class Alerts:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._alerts = store.collection("health_alerts", AlertDoc)
        self._actions = store.collection("recovery_actions", RecoveryAction)
        self._clock = clock
        self._last_written: dict[str, object] = {}
        self._lock = threading.Lock()

    def raise_alert(
        self, kind: str, subject: str, message: str, severity: Severity = "warning"
    ) -> AlertDoc | None:
        """Open (or bump) an alert; None when suppressed by the cooldown."""
        now = self._clock.now()
        doc_id = alert_id(kind, subject)
        cooldown = COOLDOWNS.get(kind, DEFAULT_COOLDOWN)
        with self._lock:
            last = self._last_written.get(doc_id)
            if last is not None and now - last < cooldown:  # type: ignore[operator]
                return None
            self._last_written[doc_id] = now

        def bump(current: AlertDoc | None) -> AlertDoc:
            if current is None or current.resolved_at is not None:
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
            return current.model_copy(
                update={"last_seen": now, "count": current.count + 1, "message": message}
            )

        alert = self._alerts.upsert(doc_id, bump)
        # Log-based metrics in Cloud Monitoring count this line (infra/terraform monitoring.tf).
        log.warning(
            "health alert raised",
            alert_kind=kind,
            subject=subject,
            severity_level=severity,
            count=alert.count,
            detail=message,
        )
        return alert

    def resolve(self, kind: str, subject: str) -> bool:
        doc_id = alert_id(kind, subject)
        current = self._alerts.get(doc_id)
        if current is None or current.resolved_at is not None:
            return False
        now = self._clock.now()
        self._alerts.update(doc_id, lambda a: a.model_copy(update={"resolved_at": now}))
        log.info("health alert resolved", alert_kind=kind, subject=subject)
        with self._lock:
            self._last_written.pop(doc_id, None)
        return True

    def open_alerts(self) -> list[AlertDoc]:
        return [a for a in self._alerts.query(order_by="last_seen") if a.resolved_at is None]

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
