"""`wagate sessions …` and `wagate dead-letters …` against a real runner and the simulator."""

from __future__ import annotations

import time

import pytest

from tests.cli.conftest import invoke, run
from tests.e2e.system import System, eventually

pytestmark = pytest.mark.integration


def phone(n: int) -> str:
    return f"+1556{int(time.time() * 1000) % 10_000_000:07d}{n}"


def test_sessions_are_listed_shown_stopped_and_recovered_without_a_new_qr(
    system: System,
) -> None:
    env = system.stack.env
    tenant = invoke(env, "tenants", "create", "sessions", "--json").json()
    key = tenant["api_key"]
    session = system.paired_session(key, phone(1))
    sid = session["id"]
    eventually(lambda: system.session(key, sid)["last_backup_at"])

    listed = run(env, "sessions", "list", "--tenant", tenant["id"], "--json")
    assert listed.code == 0, listed.stderr
    items = listed.json()["items"]
    assert [(i["id"], i["state"], i["desired"]) for i in items] == [(sid, "connected", "running")]
    assert invoke(env, "sessions", "list", "--state", "connected", "--json").json()["count"] >= 1
    shown = invoke(env, "sessions", "show", sid, "--json").json()
    assert shown["jid"] == session["jid"]
    assert shown["backup_object"]["key_id"] == "k1" and shown["backup_object"]["size"] > 0

    stopped = invoke(env, "sessions", "stop", sid, "--json")
    assert stopped.code == 0, stopped.stderr
    assert stopped.json()["session"]["desired"] == "stopped"
    system.wait_state(key, sid, "stopped", timeout=30)
    time.sleep(1)
    assert system.session(key, sid)["state"] == "stopped"  # a stop is not reconnected

    pairings_before = system.sim.get("/control/pairings").json()
    recovered = invoke(env, "sessions", "recover", sid, "--json")
    assert recovered.code == 0, recovered.stderr
    after = system.wait_state(key, sid, "connected", timeout=30)
    assert after["jid"] == session["jid"]  # restored from its backup: no new QR
    assert system.sim.get("/control/pairings").json() == pairings_before


def test_dead_letters_are_listed_by_reason_and_a_retried_one_is_sent_once(
    system: System,
) -> None:
    env = system.stack.env
    tenant = invoke(env, "tenants", "create", "dead letters", "--json").json()
    key = tenant["api_key"]
    session = system.paired_session(key, phone(2))
    to = phone(3)
    system.control("not-on-whatsapp", phone=to, value=True)
    sent = system.send(key, session["id"], to, "to nobody yet")
    system.wait_status(key, sent["id"], ("dead",))

    listed = invoke(
        env, "dead-letters", "list", "--session", session["id"], "--since", "1h", "--json"
    )
    assert listed.code == 0, listed.stderr
    [dead] = listed.json()["items"]
    assert dead["id"] == sent["id"] and "not_on_whatsapp" in dead["dead_reason"]
    other_reason = invoke(
        env, "dead-letters", "list", "--tenant", tenant["id"], "--reason", "banned", "--json"
    )
    assert other_reason.json()["items"] == []

    dry = invoke(env, "dead-letters", "retry", "--session", session["id"], "--dry-run", "--json")
    assert dry.json() == {"matched": [sent["id"]], "retried": [], "dry_run": True}
    assert system.message(key, sent["id"])["status"] == "dead"

    system.control("not-on-whatsapp", phone=to, value=False)
    retried = run(env, "dead-letters", "retry", "--session", session["id"], "--json")
    assert retried.code == 0, retried.stderr
    assert retried.json()["retried"] == [sent["id"]]
    system.wait_status(key, sent["id"], ("sent", "delivered", "read"))
    assert [m["content"]["body"] for m in system.received(to)] == ["to nobody yet"]
    left = invoke(env, "dead-letters", "list", "--session", session["id"], "--json")
    assert left.json()["count"] == 0
