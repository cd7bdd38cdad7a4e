"""Operations on the whole local system: a real runner process reports its sends in /metrics
and its dependencies in /health; a banned number's alert opens once in health_alerts and the
sweeper resolves it once the session is gone; key material age reaches the session document."""

from __future__ import annotations

import re
import time

import httpx

from tests.e2e.system import System, eventually
from wagate.adapters.firestore import FirestoreStore, make_client
from wagate.adapters.tasks import INTERNAL_TOKEN_HEADER
from wagate.config import Settings
from wagate.contracts import AlertDoc, SessionDoc
from wagate.services.alerts import alert_id


def phone(n: int) -> str:
    return f"+1556{int(time.time() * 1000) % 10_000_000:07d}{n}"


def metric(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.escape(name) + (r"\{" + re.escape(wanted) + r"\}" if labels else "") + r" (\S+)"
    found = re.search(r"^" + pattern + r"$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_the_runner_reports_sends_and_dependencies(system: System) -> None:
    key = system.tenant()["api_key"]
    session = system.paired_session(key, phone(1))
    sent = system.send(key, session["id"], "+16665550101", "measured")
    system.wait_status(key, sent["id"], ("delivered", "read"))
    runner = system.stack.runner_url(0)

    def delivered_timed() -> str | None:
        text = httpx.get(f"{runner}/metrics").text
        stage = "wagate_send_latency_seconds_count"
        return text if metric(text, stage, stage="sent_to_delivered") >= 1 else None

    text = eventually(delivered_timed, timeout=10)
    assert metric(text, "wagate_messages_total", status="sent") >= 1
    assert metric(text, "wagate_send_latency_seconds_count", stage="accepted_to_sent") >= 1
    assert metric(text, "wagate_lease_held") == 1
    renewed = eventually(  # renewed every 3 s; the test may run right after the start
        lambda: metric(
            httpx.get(f"{runner}/metrics").text, "wagate_lease_renewals_total", outcome="ok"
        ),
        timeout=10,
    )
    assert renewed >= 1
    assert 'wagate_dependency_call_seconds_count{dependency="firestore"' in text
    detail = httpx.get(f"{runner}/health", params={"detailed": "true"}).json()
    assert detail["lease_held"] is True and detail["sessions"].get("connected", 0) >= 1
    assert detail["circuit_breakers"]["firestore"] == "closed"
    assert detail["store_latency"]["firestore"]["all"]["count"] > 0
    assert detail["backups"]["oldest_age_s"] is not None
    assert httpx.get(f"{runner}/readyz").status_code == 200


def test_a_banned_number_alert_opens_once_and_resolves_when_the_session_is_gone(
    system: System,
) -> None:
    store = FirestoreStore(make_client(Settings().project_id))
    key = system.tenant()["api_key"]
    number = phone(2)
    session = system.paired_session(key, number)
    doc = store.collection("sessions", SessionDoc).get(session["id"])
    assert doc is not None and doc.keys_changed_at is not None  # pairing handed over keys
    system.control("ban", phone=number, banned=True)
    system.wait_state(key, session["id"], "failed", timeout=20)
    alerts = store.collection("health_alerts", AlertDoc)

    def opened() -> AlertDoc | None:
        return alerts.get(alert_id("session_failed", session["id"]))

    alert = eventually(opened, timeout=10)
    assert alert.count == 1 and alert.severity == "critical" and alert.resolved_at is None
    sweep_url = system.stack.url["sweeper"] + "/sweep"
    headers = {INTERNAL_TOKEN_HEADER: system.stack.internal_secret}
    swept = httpx.post(sweep_url, headers=headers, timeout=30)
    assert swept.status_code == 200, swept.text
    assert alert_id("session_failed", session["id"]) not in swept.json()["alerts_resolved"]
    # The tenant deletes the banned session: its alert has no cause any more.
    assert system.call("DELETE", f"/v1/sessions/{session['id']}", key).status_code == 202
    system.control("ban", phone=number, banned=False)

    def resolved() -> AlertDoc | None:
        # The local scheduler sweeps every minute too; either sweep may be the one.
        assert httpx.post(sweep_url, headers=headers, timeout=30).status_code == 200
        current = alerts.get(alert_id("session_failed", session["id"]))
        return current if current is not None and current.resolved_at is not None else None

    closed = eventually(resolved, timeout=30, every=1.0)
    assert closed.count == 1
