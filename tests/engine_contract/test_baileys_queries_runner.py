"""The api's questions through a real runner process on the Baileys engine: the api (in process,
on the emulators) asks the runner's POST /queries with the local stack's internal secret, the
runner asks its Node worker, Baileys asks the WhatsApp-protocol fake over the session's socket
(a usync query for the number check, w:g2 IQs for groups)."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.stack import Stack
from tests.engine_contract.baileys_kit import fake_lid
from tests.engine_contract.test_baileys_runner import baileys_runner, fake, wait_for
from tests.integration.api_client import Api
from wagate.adapters.firestore import FirestoreStore, make_client
from wagate.contracts import SessionDoc
from wagate.domain.ids import new_session_id
from wagate.domain.sessions import SessionState

pytestmark = pytest.mark.integration

PHONE, BOB = "+15550810001", "+15550810002"


def test_number_checks_and_groups_reach_the_fake_through_a_baileys_runner(
    emulators: Stack,
    firestore_env: dict[str, str],
    whatsapp_fake_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake(whatsapp_fake_url, "reset")
    project = firestore_env["WAGATE_PROJECT_ID"]
    emulators.provision_project(project)
    runner = baileys_runner(
        "runner-baileys-queries", emulators, project, whatsapp_fake_url, tmp_path
    )
    assert runner.health_url is not None
    monkeypatch.setenv("WAGATE_RUNNER_URLS", runner.health_url.removesuffix("/healthz"))
    api = Api()
    tenant = api.tenant()
    key = tenant["api_key"]
    sessions = FirestoreStore(make_client(project)).collection("sessions", SessionDoc)
    session_id = new_session_id()
    sessions.create(
        SessionDoc(id=session_id, tenant_id=tenant["id"], shard=0, state=SessionState.CONNECTING)
    )

    def doc() -> SessionDoc:
        found = sessions.get(session_id)
        assert found is not None
        return found

    runner.start()
    try:
        runner.wait_ready()
        wait_for("a QR on the session", lambda: doc().qr is not None, runner, 60)
        fake(whatsapp_fake_url, "scan", qr=doc().qr, phone=PHONE)
        wait_for("connected", lambda: doc().state == SessionState.CONNECTED, runner, 60)

        checked = api.call(
            "POST",
            f"/v1/sessions/{session_id}/contacts:check",
            key,
            json={"numbers": [BOB, "+99955501234"]},
        )
        assert checked.status_code == 200, checked.get_json()
        bob, nobody = checked.get_json()["items"]
        assert (bob["on_whatsapp"], bob["jid"], bob["lid"], bob["cached"]) == (
            True,
            f"{BOB[1:]}@s.whatsapp.net",
            fake_lid(BOB),
            False,
        )
        assert nobody["on_whatsapp"] is False

        base = f"/v1/sessions/{session_id}/groups"
        created = api.call("POST", base, key, json={"subject": "Baileys", "participants": [BOB]})
        assert created.status_code == 201, created.get_json()
        group = created.get_json()
        listed = api.call("GET", base, key).get_json()["items"]
        assert [g["jid"] for g in listed] == [group["jid"]]
        added = api.call(
            "POST",
            f"{base}/{group['id']}/participants",
            key,
            json={"action": "add", "participants": [BOB]},
        )
        assert [r["status"] for r in added.get_json()["results"]] == [409]
        invite = api.call("GET", f"{base}/{group['id']}/invite", key).get_json()
        assert invite["url"].endswith(invite["code"]) and len(invite["code"]) >= 16
        missing = api.call("GET", f"{base}/120363999999999999", key)
        assert missing.status_code == 404, missing.get_json()
    finally:
        runner.stop()
