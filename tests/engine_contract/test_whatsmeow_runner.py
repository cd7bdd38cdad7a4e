"""The runner process with WAGATE_ENGINE=whatsmeow, against the local stack's emulators, when
WhatsApp cannot be reached (its traffic goes to a closed local proxy port, so this holds on any
machine): it starts, stays up, and reports the session as reconnecting with reason 503 and a
growing attempt count (the supervisor's backoff) instead of crashing; after five failures in a
row the `session_failing` alert is raised (slow: the backoff makes that take ~30 s)."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devstack.processes import LOCALHOST, Service, free_port, http_ok
from devstack.stack import Stack
from tests.engine_contract.whatsmeow_kit import UNREACHABLE_PROXY
from wagate.adapters.firestore import FirestoreStore, make_client
from wagate.contracts import AlertDoc, SessionDoc
from wagate.domain.sessions import SessionState
from wagate.services.alerts import alert_id

pytestmark = pytest.mark.integration


class RunnerUnderTest:
    def __init__(self, service: Service, store: FirestoreStore, session_id: str) -> None:
        self.service = service
        self.sessions = store.collection("sessions", SessionDoc)
        self.alerts = store.collection("health_alerts", AlertDoc)
        self.session_id = session_id

    def session(self) -> SessionDoc:
        doc = self.sessions.get(self.session_id)
        assert doc is not None
        return doc

    def wait_for(self, what: str, check: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.service.alive, f"the runner exited:\n{self.service.tail(40)}"
            if check():
                return
            time.sleep(0.5)
        raise AssertionError(f"{what} within {timeout}s; session: {self.session()!r}")


@pytest.fixture
def whatsmeow_runner(
    emulators: Stack, firestore_env: dict[str, str], tmp_path: Path
) -> Iterator[RunnerUnderTest]:
    project = firestore_env["WAGATE_PROJECT_ID"]  # a fresh project: no other test's sessions
    emulators.provision_project(project)
    store = FirestoreStore(make_client(project))
    session_id = f"ses_{uuid.uuid4().hex[:10]}"
    store.collection("sessions", SessionDoc).create(
        SessionDoc(id=session_id, tenant_id="ten_offline", shard=0, state=SessionState.CONNECTING)
    )
    port = free_port()
    service = Service(
        "runner-whatsmeow",
        [sys.executable, "-m", "runner"],
        f"http://{LOCALHOST}:{port}/healthz",
        tmp_path / "runner.log",
        {
            **emulators._child_env(),
            "PORT": str(port),
            "GOOGLE_CLOUD_PROJECT": project,
            "WAGATE_PROJECT_ID": project,
            "WAGATE_SHARD_ID": "0",
            "WAGATE_ENGINE": "whatsmeow",
            "WAGATE_WHATSMEOW_PROXY": UNREACHABLE_PROXY,
            "WAGATE_STATE_DIR": str(tmp_path / "state"),
        },
    )
    service.start()
    try:
        service.wait_ready()
        yield RunnerUnderTest(service, store, session_id)
    finally:
        service.stop()


def test_the_runner_stays_up_and_reports_an_unreachable_whatsapp_as_reconnecting(
    whatsmeow_runner: RunnerUnderTest,
) -> None:
    r = whatsmeow_runner
    r.wait_for(
        "two failed connects, each recorded as 503 with backoff",
        lambda: (
            r.session().state == SessionState.RECONNECTING
            and r.session().last_reason == 503
            and r.session().reconnect_attempts >= 2
        ),
        timeout=60,
    )
    assert http_ok(r.service.health_url or "")
    assert "Traceback" not in r.service.tail(200)


@pytest.mark.slow
def test_five_failed_connects_in_a_row_raise_the_session_failing_alert(
    whatsmeow_runner: RunnerUnderTest,
) -> None:
    r = whatsmeow_runner
    alert = alert_id("session_failing", r.session_id)
    r.wait_for("the session_failing alert", lambda: r.alerts.get(alert) is not None, timeout=150)
    assert r.session().state == SessionState.RECONNECTING
