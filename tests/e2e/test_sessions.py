"""Sessions on the whole system: pairing, restore without a QR after SIGKILL/SIGTERM, the shard
lease, and the reaction to every disconnect reason."""

from __future__ import annotations

import signal
import time
from typing import Any

import httpx
import pytest

from devstack.stack import generate_backup_keys
from tests.e2e.system import System, eventually
from wagate.adapters.storage import GcsBlobStore, make_client
from wagate.config import Settings
from wagate.services.backups import SessionBackups, key_id_of

pytestmark = pytest.mark.integration


def phone(n: int) -> str:
    return f"+1555{int(time.time() * 1000) % 10_000_000:07d}{n}"


def status_of(url: str) -> int:
    try:
        return httpx.get(url, timeout=5).status_code
    except httpx.HTTPError:
        return 0


def restart_runner(system: System, how: int) -> float:
    """Stop the runner with `how`, start a new one on the same port; returns the stop time."""
    stack = system.stack
    old = stack.services["runner-0"]
    stopped_at = time.monotonic()
    if how == signal.SIGKILL:
        old.kill()
    else:
        old.signal(how)
        assert old.process is not None
        old.process.wait(timeout=10)  # Cloud Run's budget
    stack.start(stack.runner_service(0))
    return stopped_at


def test_pairing_by_qr_connects_and_backs_up_the_credentials(system: System) -> None:
    key = system.tenant()["api_key"]
    number = phone(1)
    session = system.paired_session(key, number)
    assert session["jid"].startswith(number.lstrip("+"))
    backed_up = eventually(lambda: system.session(key, session["id"])["last_backup_at"])
    assert backed_up


def test_a_sigkilled_runner_is_replaced_and_sessions_resume_without_a_new_qr(
    system: System,
) -> None:
    key = system.tenant()["api_key"]
    session = system.paired_session(key, phone(2))
    eventually(lambda: system.session(key, session["id"])["last_backup_at"])
    pairings_before = system.sim.get("/control/pairings").json()
    killed_at = restart_runner(system, signal.SIGKILL)
    after = system.wait_state(key, session["id"], "connected", timeout=30)
    recovery_s = time.monotonic() - killed_at
    assert after["jid"] == session["jid"]  # the same linked device: no new pairing
    assert system.sim.get("/control/pairings").json() == pairings_before == []
    sent = system.send(key, session["id"], "+15550009999", "after the crash")
    system.wait_status(key, sent["id"], ("sent", "delivered", "read"))
    assert recovery_s < 30, recovery_s


def test_sigterm_drains_within_the_budget_and_the_next_runner_restores(system: System) -> None:
    key = system.tenant()["api_key"]
    session = system.paired_session(key, phone(3))
    started = time.monotonic()
    restart_runner(system, signal.SIGTERM)
    assert time.monotonic() - started < 30
    after = system.wait_state(key, session["id"], "connected", timeout=30)
    assert after["jid"] == session["jid"]


def test_a_second_runner_for_the_shard_waits_while_the_first_holds_the_lease(
    system: System,
) -> None:
    key = system.tenant()["api_key"]
    session = system.paired_session(key, phone(4))
    stack = system.stack
    from devstack.processes import free_port

    port = free_port()
    second = stack.runner_service(0, name="runner-0-b", port=port)
    second.start()
    eventually(lambda: status_of(f"http://127.0.0.1:{port}/healthz") == 200)
    devices_before = system.sim.get("/control/stats").json()
    time.sleep(3)  # several lease-acquire attempts by the second runner
    assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 503
    detail = httpx.get(f"http://127.0.0.1:{port}/health", params={"detailed": "true"}).json()
    assert detail["lease_held"] is False and detail["sessions"] == {}
    assert system.sim.get("/control/stats").json()["sockets"] == devices_before["sockets"]
    # The first dies: the second takes over and restores the session.
    stack.services["runner-0"].kill()
    eventually(lambda: status_of(f"http://127.0.0.1:{port}/readyz") == 200, 30)
    system.wait_state(key, session["id"], "connected", timeout=30)
    # Put the shard back on its usual port for the other tests.
    second.stop()
    stack.start(stack.runner_service(0))
    system.wait_state(key, session["id"], "connected", timeout=30)


@pytest.mark.parametrize("reason", [408, 428, 500, 503, 515])
def test_transient_disconnects_reconnect_by_themselves(system: System, reason: int) -> None:
    key = system.tenant()["api_key"]
    number = phone(5)
    session = system.paired_session(key, number)
    system.control("drop", phone=number, reason=reason)

    def back() -> dict[str, Any] | None:
        now = system.session(key, session["id"])
        return now if now["state"] == "connected" and now["last_reason"] == reason else None

    reconnected = eventually(back, timeout=20)
    assert reconnected["jid"] == session["jid"]
    assert reconnected["reconnect_attempts"] == 0  # reset once connected


def test_logged_out_by_the_phone_needs_a_new_qr(system: System) -> None:
    key = system.tenant()["api_key"]
    number = phone(6)
    session = system.paired_session(key, number)
    system.control("unlink", jid=session["jid"])
    after = system.wait_state(key, session["id"], "logged_out", timeout=20)
    assert after["last_reason"] == 401
    time.sleep(1)
    assert system.session(key, session["id"])["state"] == "logged_out"  # no reconnect storm


def test_a_banned_number_fails_and_raises_an_alert(system: System) -> None:
    key = system.tenant()["api_key"]
    number = phone(7)
    session = system.paired_session(key, number)
    system.control("ban", phone=number, banned=True)
    after = system.wait_state(key, session["id"], "failed", timeout=20)
    assert after["last_reason"] == 403


def test_recover_brings_back_a_session_that_gave_up_without_a_new_qr(system: System) -> None:
    key = system.tenant()["api_key"]
    number = phone(9)
    session = system.paired_session(key, number)
    pairings_before = system.sim.get("/control/pairings").json()
    system.control("ban", phone=number, banned=True)
    system.wait_state(key, session["id"], "failed", timeout=20)
    system.control("ban", phone=number, banned=False)  # the appeal succeeded
    recovered = system.call("POST", f"/v1/sessions/{session['id']}:recover", key)
    assert recovered.status_code == 202, recovered.text
    after = system.wait_state(key, session["id"], "connected", timeout=30)
    assert after["jid"] == session["jid"]
    assert system.sim.get("/control/pairings").json() == pairings_before


def test_a_rotated_key_ring_re_seals_live_backups_with_the_new_key(system: System) -> None:
    tenant = system.tenant()
    key = tenant["api_key"]
    session = system.paired_session(key, phone(0))
    eventually(lambda: system.session(key, session["id"])["last_backup_at"])
    settings = Settings()
    blobs = GcsBlobStore(make_client(settings.project_id), settings.backup_bucket)
    name = SessionBackups.object_name(tenant["id"], session["id"])
    assert key_id_of(blobs.get(name).data) == "k1"
    stack = system.stack
    original = stack.backup_keys
    rotated = generate_backup_keys().replace("k1:", "k9:", 1)
    try:
        stack.backup_keys = f"{rotated},{original}"  # k9 seals, k1 still opens
        stack.config.extra_env["WAGATE_BACKUP_PERIOD_S"] = "1"
        restart_runner(system, signal.SIGTERM)
        system.wait_state(key, session["id"], "connected", timeout=30)
        eventually(lambda: key_id_of(blobs.get(name).data) == "k9", timeout=30)
    finally:
        # Later tests' runners seal with k1 again and can still open what k9 sealed.
        stack.backup_keys = f"{original},{rotated}"
        stack.config.extra_env.pop("WAGATE_BACKUP_PERIOD_S", None)
        restart_runner(system, signal.SIGTERM)
    assert system.wait_state(key, session["id"], "connected", timeout=30)["jid"] == session["jid"]


def test_a_user_stop_never_reconnects(system: System) -> None:
    key = system.tenant()["api_key"]
    session = system.paired_session(key, phone(8))
    assert system.call("DELETE", f"/v1/sessions/{session['id']}", key).status_code == 202
    system.wait_state(key, session["id"], "stopped", timeout=20)
    time.sleep(1.5)
    assert system.session(key, session["id"])["state"] == "stopped"


def test_pairing_code_login_through_the_api(system: System) -> None:
    key = system.tenant()["api_key"]
    number = phone(9)
    created = system.call("POST", "/v1/sessions", key, json={"pairing_phone": number})
    assert created.status_code == 201, created.text
    sid = created.json()["id"]
    code = eventually(lambda: system.session(key, sid)["pairing_code"], timeout=30)
    system.control("pair-code", code=code, phone=number)
    connected = system.wait_state(key, sid, "connected")
    assert connected["jid"].startswith(number.lstrip("+"))
    assert connected["pairing_code"] is None


def test_a_multidevice_mismatch_is_treated_as_a_logout(system: System) -> None:
    key = system.tenant()["api_key"]
    number = phone(12)
    session = system.paired_session(key, number)
    system.control("drop", phone=number, reason=411)
    after = system.wait_state(key, session["id"], "logged_out", timeout=20)
    assert after["last_reason"] == 411


def test_a_replaced_connection_is_not_fought_over(system: System) -> None:
    key = system.tenant()["api_key"]
    number = phone(13)
    session = system.paired_session(key, number)
    system.control("drop", phone=number, reason=440)
    after = system.wait_state(key, session["id"], "reconnecting", timeout=20)
    assert after["last_reason"] == 440
    time.sleep(3)  # it backs off for at least 30 s instead of grabbing the account back
    still = system.session(key, session["id"])
    assert still["state"] == "reconnecting" and still["reconnect_attempts"] == 1
