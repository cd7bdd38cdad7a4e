"""`wagate health`, `alerts`, `cleanup`, and how every command fails: one clear line, the right
exit code, JSON when --json was asked for, never a stack trace."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from devstack.processes import free_port
from tests.cli.conftest import Project, invoke, run
from tests.e2e.system import System
from wagate.clock import SystemClock
from wagate.contracts import InboundDoc, SessionDoc
from wagate.services.alerts import Alerts, alert_id

pytestmark = pytest.mark.integration

EXIT_BY_STATUS = {"ok": 0, "degraded": 1, "error": 2}


def test_health_json_reports_every_part_and_its_exit_code_follows_the_status(
    system: System,
) -> None:
    env = system.stack.env
    checked = run(env, "health", "--json")
    report = checked.json()
    assert checked.code == EXIT_BY_STATUS[report["status"]], report["problems"]
    assert report["api"]["status"] == "ok" and report["api"]["checks"]["firestore"] == "ok"
    [shard] = report["shards"]
    assert shard["reachable"] and shard["lease"]["live"] and shard["runner"]["lease_held"]
    assert report["store"]["reachable"] and "dead_letters" in report["store"]
    capacity = report["store"]["capacity"]
    assert capacity["sessions_per_shard"] == 100 and len(capacity["live_sessions_by_shard"]) == 1
    assert capacity["free"] == 100 - capacity["live_sessions_by_shard"][0]

    # A shard whose runner is down (nothing listens at its URL, nobody holds its lease).
    down = f"http://127.0.0.1:{free_port()}"
    two_shards = {
        **env,
        "WAGATE_SHARD_COUNT": "2",
        "WAGATE_RUNNER_URLS": f"{env['WAGATE_RUNNER_URLS']},{down}",
    }
    broken = run(two_shards, "health", "--json")
    assert broken.code == 2
    report = broken.json()
    assert report["status"] == "error"
    assert report["shards"][1]["status"] == "error" and not report["shards"][1]["reachable"]
    assert any(p.startswith("shard 1:") for p in report["problems"])

    no_api = invoke({**env, "WAGATE_API_URL": down}, "health", "--json", "--verbose")
    assert no_api.code == 2 and no_api.json()["api"]["status"] == "error"
    assert "sessions" in no_api.json()["store"]  # --verbose: per-session detail


def test_alerts_are_listed_and_resolved(project: Project) -> None:
    env = project.env
    alerts = Alerts(project.store, SystemClock())
    alerts.raise_alert("backup_failing", "ses_a", "3 backups in a row failed", "warning")
    alerts.raise_alert("session_failed", "ses_b", "banned", "critical")
    opened = invoke(env, "alerts", "list", "--json").json()
    assert {a["kind"] for a in opened["items"]} == {"backup_failing", "session_failed"}

    target = alert_id("session_failed", "ses_b")
    resolved = run(env, "alerts", "resolve", target, "--json")
    assert resolved.code == 0, resolved.stderr
    assert resolved.json()["resolved_at"] is not None
    still_open = invoke(env, "alerts", "list", "--json").json()["items"]
    assert [a["kind"] for a in still_open] == ["backup_failing"]
    everything = invoke(env, "alerts", "list", "--all", "--json").json()["items"]
    assert len(everything) == 2

    again = invoke(env, "alerts", "resolve", target)
    assert again.code == 1 and "already resolved" in again.stderr
    unknown = invoke(env, "alerts", "resolve", "session_failed-0000000000000000")
    assert unknown.code == 1 and "not found" in unknown.stderr


def test_cleanup_dry_run_counts_and_the_real_run_prunes(project: Project) -> None:
    env = project.env
    session = SessionDoc(id="ses_01HZZZZZZZZZZZZZZZZZZZZZZZ", tenant_id="ten_x", shard=0)
    project.store.collection("sessions", SessionDoc).put(session)
    inbound = project.store.subcollection("sessions", session.id, "inbound", InboundDoc)
    old = datetime.now(UTC) - timedelta(days=40)
    inbound.put(
        InboundDoc(
            id="3EB0OLD",
            session_id=session.id,
            tenant_id="ten_x",
            chat="1555",
            sender="1555",
            kind="text",
            content={"body": "old"},
            ts=old,
            received_at=old,
        )
    )
    dry = invoke(env, "cleanup", "--dry-run", "--json")
    assert dry.code == 0, dry.stderr
    assert dry.json()["dry_run"] is True and dry.json()["inbound_pruned"] == 1
    assert inbound.get("3EB0OLD") is not None
    done = run(env, "cleanup", "--json")
    assert done.code == 0, done.stderr
    assert done.json()["inbound_pruned"] == 1 and inbound.get("3EB0OLD") is None


def test_bad_input_gets_one_clear_line_and_a_non_zero_exit(project: Project) -> None:
    env = project.env
    missing = run(env, "sessions", "show", "ses_nope")
    assert missing.code == 1
    assert missing.stderr.strip() == "error: session ses_nope not found (session_id)"
    as_json = invoke(env, "sessions", "show", "ses_nope", "--json")
    assert as_json.json()["error"] == {
        "code": "not_found",
        "message": "session ses_nope not found",
        "field": "session_id",
    }
    usage = run(env, "dead-letters", "list", "--since", "yesterday")
    assert usage.code == 2 and "30m, 2h, 7d" in usage.stderr
    not_an_export = invoke(env, "backup", "restore", "/nonexistent-folder")
    assert not_an_export.code == 1 and "not a wagate backup export" in not_an_export.stderr
    no_keys = run({k: v for k, v in env.items() if k != "WAGATE_BACKUP_KEYS"}, "keys", "rotate")
    assert no_keys.code == 1 and "WAGATE_BACKUP_KEYS" in no_keys.stderr
    bad_state = invoke(env, "sessions", "list", "--state", "asleep")
    assert bad_state.code == 1 and "unknown state" in bad_state.stderr
    bad_setting = invoke({**env, "WAGATE_SHARD_COUNT": "zero"}, "sessions", "list")
    assert bad_setting.code == 1 and "shard_count" in bad_setting.stderr
    for ran in (missing, as_json, usage, not_an_export, no_keys):
        assert "Traceback" not in ran.stderr + ran.stdout
