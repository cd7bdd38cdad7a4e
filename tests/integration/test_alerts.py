"""Alerts with cooldowns and auto-resolve, on the memory store and the Firestore emulator; and
their notices, through the webhook queue (Cloud Tasks emulator) and the sweeper function, to a
local operators' webhook that checks the signature."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import functions_framework
import pytest
from werkzeug.serving import make_server

import functions.app
from wagate.adapters.memory import FixedClock
from wagate.contracts import AlertDoc, BackupInfo, SessionDoc
from wagate.domain.sessions import DesiredState, SessionState
from wagate.ports import Store
from wagate.services.alerts import CLEAR_RECHECK, Alerts, QueuedAlertNotifier, alert_id
from wagate.services.webhooks import SIGNATURE_HEADER, verify

pytestmark = pytest.mark.integration


def test_an_alert_is_raised_once_per_cooldown_and_counted(store: Store) -> None:
    clock = FixedClock()
    alerts = Alerts(store, clock)
    first = alerts.raise_alert("session_failed", "ses_1", "banned", "critical")
    assert first is not None and first.count == 1
    assert alerts.raise_alert("session_failed", "ses_1", "banned again") is None  # cooldown
    clock.advance(301)
    again = alerts.raise_alert("session_failed", "ses_1", "still banned")
    assert again is not None and again.count == 2 and again.first_seen == first.first_seen
    assert [a.subject for a in alerts.open_alerts()] == ["ses_1"]


def test_the_cooldown_holds_across_processes(store: Store) -> None:
    """The sweeper is a new function instance every so often: the cooldown is in the store."""
    clock = FixedClock()
    assert Alerts(store, clock).raise_alert("dead_letters_growing", "messages", "x") is not None
    clock.advance(60)
    assert Alerts(store, clock).raise_alert("dead_letters_growing", "messages", "x") is None
    clock.advance(30 * 60)
    bumped = Alerts(store, clock).raise_alert("dead_letters_growing", "messages", "x")
    assert bumped is not None and bumped.count == 2


def test_noisy_kinds_have_longer_cooldowns(store: Store) -> None:
    clock = FixedClock()
    alerts = Alerts(store, clock)
    assert alerts.raise_alert("reconnect_storm", "shard-0", "x") is not None
    clock.advance(301)
    assert alerts.raise_alert("reconnect_storm", "shard-0", "x") is None
    clock.advance(30 * 60)
    assert alerts.raise_alert("reconnect_storm", "shard-0", "x") is not None


def test_resolving_closes_and_a_new_occurrence_reopens(store: Store) -> None:
    clock = FixedClock()
    alerts = Alerts(store, clock)
    alerts.raise_alert("lease_lost", "shard-1", "taken over")
    assert alerts.resolve("lease_lost", "shard-1") is True
    assert alerts.resolve("lease_lost", "shard-1") is False
    assert alerts.open_alerts() == []
    reopened = alerts.raise_alert("lease_lost", "shard-1", "taken over again")
    assert reopened is not None and reopened.count == 1 and reopened.resolved_at is None


def test_a_tracked_condition_raises_while_active_and_resolves_once_clear(store: Store) -> None:
    clock = FixedClock()
    alerts = Alerts(store, clock)
    assert alerts.track("store_latency", "shard-0", True, "p99 900 ms") == "raised"
    assert alerts.track("store_latency", "shard-0", True, "p99 900 ms") is None  # cooldown
    assert alerts.track("store_latency", "shard-0", False) == "resolved"
    assert alerts.track("store_latency", "shard-0", False) is None
    # Opened by another process meanwhile: a clear condition re-reads it after a while.
    Alerts(store, clock).raise_alert("store_latency", "shard-0", "p99 800 ms")
    assert alerts.track("store_latency", "shard-0", False) is None  # not re-read yet
    clock.advance(CLEAR_RECHECK.total_seconds() + 1)
    assert alerts.track("store_latency", "shard-0", False) == "resolved"
    assert alerts.open_alerts() == []


def test_session_alerts_resolve_once_their_cause_is_gone(store: Store) -> None:
    clock = FixedClock()
    alerts = Alerts(store, clock)
    sessions = store.collection("sessions", SessionDoc)
    banned = SessionDoc(id="ses_banned", tenant_id="ten_1", shard=0, state=SessionState.FAILED)
    backups = SessionDoc(id="ses_backup", tenant_id="ten_1", shard=0, state=SessionState.CONNECTED)
    gone = "ses_deleted"
    sessions.put_many([banned, backups])
    alerts.raise_alert("session_failed", banned.id, "banned", "critical")
    alerts.raise_alert("backup_failing", backups.id, "3 backups failed")
    alerts.raise_alert("session_logged_out", gone, "logged out")
    clock.advance(10)
    # Nothing changed but the deletion.
    assert alerts.resolve_cleared(sessions) == [alert_id("session_logged_out", gone)]
    # The number was unbanned and reconnected; a backup succeeded after the alert.
    sessions.update(banned.id, lambda d: d.model_copy(update={"state": SessionState.CONNECTED}))
    sessions.update(
        backups.id,
        lambda d: d.model_copy(
            update={"last_backup": BackupInfo(generation=2, key_id="k", sha256="x", at=clock.now())}
        ),
    )
    assert sorted(alerts.resolve_cleared(sessions)) == sorted(
        [alert_id("session_failed", banned.id), alert_id("backup_failing", backups.id)]
    )
    assert alerts.open_alerts() == []
    # A stopped session's alerts go too.
    sessions.update(banned.id, lambda d: d.model_copy(update={"desired": DesiredState.STOPPED}))
    clock.advance(301)
    alerts.raise_alert("session_failing", banned.id, "5 reconnects failed")
    assert alerts.resolve_cleared(sessions) == [alert_id("session_failing", banned.id)]


def test_recovery_actions_are_journaled(store: Store) -> None:
    alerts = Alerts(store, FixedClock())
    action = alerts.record_recovery("reconnect", "after 3 attempts", "connected", session_id="s")
    assert action.id.startswith("rec_")


# ---------------------------------------------------------------- notices to the operators


@dataclass
class Receiver:
    url: str
    got: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    fail_first: int = 0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            failing = state.fail_first > 0
            state.fail_first -= 1
            if not failing:
                state.got.append((dict(self.headers), body))
            self.send_response(503 if failing else 204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_port}/wagate-alerts"
    yield state
    server.shutdown()


@pytest.fixture
def sweeper_server(
    emulators: Any, firestore_env: dict[str, str], receiver: Receiver, monkeypatch: Any
) -> Iterator[str]:
    """The sweeper function served over HTTP, so the Cloud Tasks emulator can call it."""
    emulators.provision_project(firestore_env["WAGATE_PROJECT_ID"])
    functions.app._gateway = None
    app = functions_framework.create_app(target="sweeper", source="functions/main.py")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    monkeypatch.setenv("WAGATE_SWEEPER_URL", url)
    monkeypatch.setenv("WAGATE_ALERT_WEBHOOK_URL", receiver.url)
    monkeypatch.setenv("WAGATE_ALERT_WEBHOOK_SECRET", "alert-signing-secret")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield url
    server.shutdown()
    functions.app._gateway = None


def wait_for(receiver: Receiver, count: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while len(receiver.got) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(receiver.got) >= count, receiver.got


def test_alert_notices_reach_the_operators_webhook_signed_and_retried(
    sweeper_server: str, receiver: Receiver
) -> None:
    g = functions.app.gateway()
    clock = FixedClock()
    alerts = Alerts(g.store, clock, QueuedAlertNotifier(g.queue, "wagate", sweeper_server))
    receiver.fail_first = 1  # the first delivery attempt fails: the queue retries it
    alerts.raise_alert("session_failed", "ses_banned", "WhatsApp banned this number", "critical")
    alerts.raise_alert("session_failed", "ses_banned", "again")  # within the cooldown: no notice
    wait_for(receiver, 1)
    clock.advance(10)
    assert alerts.resolve("session_failed", "ses_banned")
    wait_for(receiver, 2)
    time.sleep(1.0)  # nothing else arrives
    assert len(receiver.got) == 2
    events = []
    for headers, body in receiver.got:
        assert verify("alert-signing-secret", headers[SIGNATURE_HEADER], body)
        assert not verify("another-secret", headers[SIGNATURE_HEADER], body)
        notice = json.loads(body)
        events.append(notice["event"])
        assert notice["kind"] == "session_failed" and notice["subject"] == "ses_banned"
        assert headers["X-Wagate-Event-Type"] == notice["event"]
    assert events == ["alert.opened", "alert.resolved"]
    stored = g.store.collection("health_alerts", AlertDoc).get(
        alert_id("session_failed", "ses_banned")
    )
    assert stored is not None and stored.resolved_at is not None


def test_without_an_alert_webhook_notices_are_dropped_quietly(
    sweeper_server: str, receiver: Receiver, monkeypatch: Any
) -> None:
    monkeypatch.delenv("WAGATE_ALERT_WEBHOOK_URL")
    functions.app._gateway = None
    from tests.integration.api_client import Api
    from wagate.adapters.tasks import INTERNAL_TOKEN_HEADER
    from wagate.contracts import AlertNotice

    api = Api(target="sweeper")
    notice = AlertNotice.of(
        AlertDoc(id="lease_lost-x", kind="lease_lost", subject="shard-0", message="lost")
    )
    secret = functions.app.gateway().settings.internal_secret.get_secret_value()  # type: ignore[union-attr]
    answered = api.call(
        "POST",
        "/alerts/deliver",
        headers={INTERNAL_TOKEN_HEADER: secret},
        data=notice.model_dump_json(),
        content_type="application/json",
    )
    assert answered.status_code == 200
    assert answered.get_json() == {"delivered": False, "reason": "no alert webhook is configured"}
    refused = api.call("POST", "/alerts/deliver", data=notice.model_dump_json())
    assert refused.status_code == 401
    assert receiver.got == []


def test_cooldown_defaults() -> None:
    from wagate.services.alerts import cooldown_of

    assert cooldown_of("session_failed") == timedelta(minutes=5)
    for noisy in ("reconnect_storm", "memory_growth", "store_latency", "dead_letters_growing"):
        assert cooldown_of(noisy) == timedelta(minutes=30)
