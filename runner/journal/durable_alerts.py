"""Alerts that survive a store outage: raised, resolved and recorded recoveries wait in the
journal while Firestore is unreachable and are replayed in order with the other writes."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Literal

from pydantic import BaseModel

from runner.journal.durable_writes import DurableWrites
from runner.journal.entries import Entry
from wagate.contracts import AlertDoc, RecoveryAction
from wagate.domain.ids import new_id
from wagate.errors import DependencyUnavailable
from wagate.logs import get_logger
from wagate.ports import Clock, Store
from wagate.services.alerts import AlertNotifier, Alerts, Severity

log = get_logger("wagate.runner.journal")


class AlertCall(BaseModel):
    op: Literal["raise", "resolve", "recovery"]
    kind: str = ""
    subject: str = ""
    message: str = ""
    severity: Severity = "warning"
    recovery: RecoveryAction | None = None


class DurableAlerts(Alerts):
    """Alerts whose writes wait in the journal while the store is unreachable, so raising
    one during an outage neither fails its caller (a supervisor would drop its socket) nor is
    lost. Replayed by `replay` (registered as the "alert" handler)."""

    def __init__(
        self,
        durable: DurableWrites,
        store: Store,
        clock: Clock,
        notifier: AlertNotifier | None = None,
    ) -> None:
        super().__init__(store, clock, notifier)
        self._durable = durable
        self._now = clock.now
        durable.handle("alert", self.replay)

    def _journal(self, call: AlertCall) -> None:
        try:
            self._durable.write_now("alert", f"alerts/{call.kind or call.op}", call)
        except sqlite3.Error as e:
            log.error("alert lost: the journal refused it", kind=call.kind, error=str(e))

    def _waiting(self) -> bool:
        return self._durable.backlog > 0

    def raise_alert(
        self, kind: str, subject: str, message: str, severity: Severity = "warning"
    ) -> AlertDoc | None:
        if not self._waiting():
            try:
                return super().raise_alert(kind, subject, message, severity)
            except DependencyUnavailable:
                pass
        self._journal(
            AlertCall(op="raise", kind=kind, subject=subject, message=message, severity=severity)
        )
        return None

    def resolve(self, kind: str, subject: str) -> bool:
        if not self._waiting():
            try:
                return super().resolve(kind, subject)
            except DependencyUnavailable:
                pass
        self._journal(AlertCall(op="resolve", kind=kind, subject=subject))
        return False

    def record_recovery(
        self,
        action: str,
        reason: str,
        outcome: str,
        *,
        session_id: str | None = None,
        shard: int | None = None,
    ) -> RecoveryAction:
        if not self._waiting():
            try:
                return super().record_recovery(
                    action, reason, outcome, session_id=session_id, shard=shard
                )
            except DependencyUnavailable:
                pass
        doc = RecoveryAction(
            id=new_id("rec"),
            session_id=session_id,
            shard=shard,
            action=action,
            reason=reason,
            outcome=outcome,
            at=self._now(),
        )
        self._journal(AlertCall(op="recovery", recovery=doc))
        return doc

    async def replay(self, entries: list[Entry]) -> None:
        for entry in entries:
            call = AlertCall.model_validate_json(entry.body)
            if call.op == "raise":
                await asyncio.to_thread(
                    super().raise_alert, call.kind, call.subject, call.message, call.severity
                )
            elif call.op == "resolve":
                await asyncio.to_thread(super().resolve, call.kind, call.subject)
            elif call.recovery is not None:
                await asyncio.to_thread(self._actions.put, call.recovery)
