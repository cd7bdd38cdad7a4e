"""`wagate backup export|restore` and `wagate keys rotate` on the real Cloud Storage and
Firestore emulators: exported bytes come back byte-identical, a tampered file is refused, live
backups are never overwritten behind their writer, rotation re-encrypts and stays restorable."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devstack.stack import generate_backup_keys
from tests.cli.conftest import ControlSink, Project, invoke, run
from tests.e2e.system import eventually
from wagate.adapters.keyring import StaticKeyRing
from wagate.clock import SystemClock
from wagate.contracts import BackupInfo, SessionDoc, TenantDoc
from wagate.domain.ids import new_session_id
from wagate.domain.sessions import DesiredState, SessionState
from wagate.errors import NotFound
from wagate.services.backups import SessionBackups, key_id_of
from wagate.services.tenants import Tenants
from wagate.services.webhooks import open_secret, seal_secret, sealed_key_id

pytestmark = pytest.mark.integration

TENANT = "ten_01HZZZZZZZZZZZZZZZZZZZZZZZ"


def make_sessions(
    project: Project, states: dict[str, tuple[SessionState, DesiredState]]
) -> dict[str, tuple[str, bytes]]:
    """Session documents in the given states, each with a sealed backup of random state."""
    backups = SessionBackups(project.bucket, project.keyring, "cloud", Path("/nonexistent"))
    made: dict[str, tuple[str, bytes]] = {}
    docs = []
    for label, (state, desired) in states.items():
        sid = new_session_id()
        secret = os.urandom(600)
        saved = backups.save(TENANT, sid, secret, expected_generation=0)
        docs.append(
            SessionDoc(
                id=sid,
                tenant_id=TENANT,
                shard=0,
                state=state,
                desired=desired,
                last_backup=BackupInfo(
                    generation=saved.generation,
                    key_id=saved.key_id,
                    sha256=saved.sha256,
                    at=datetime.now(UTC),
                ),
            )
        )
        made[label] = (sid, secret)
    project.store.collection("sessions", SessionDoc).put_many(docs)
    return made


def live_bytes(project: Project, sid: str) -> bytes | None:
    try:
        return project.bucket.get(SessionBackups.object_name(TENANT, sid)).data
    except NotFound:
        return None


def wipe(project: Project, sid: str) -> None:
    SessionBackups(project.bucket, project.keyring, "cloud", Path("/nonexistent")).wipe(TENANT, sid)


def test_export_then_restore_brings_back_identical_bytes_and_refuses_a_tampered_file(
    project: Project, control_sink: ControlSink, tmp_path: Path
) -> None:
    env = project.env
    made = make_sessions(
        project,
        {
            "connected": (SessionState.CONNECTED, DesiredState.RUNNING),
            "pairing": (SessionState.PAIRING, DesiredState.RUNNING),
            "stopped": (SessionState.STOPPED, DesiredState.STOPPED),
            "logged_out": (SessionState.LOGGED_OUT, DesiredState.RUNNING),
        },
    )
    ids = {label: sid for label, (sid, _) in made.items()}
    originals = {label: live_bytes(project, sid) for label, sid in ids.items()}
    folder = tmp_path / "export"

    exported = run(env, "backup", "export", str(folder), "--json")
    assert exported.code == 0, exported.stderr
    assert exported.json()["exported"] == 4 and exported.json()["key_ids"] == {"k1": 4}
    manifest = json.loads((folder / "manifest.json").read_text())
    for entry in manifest["backups"]:
        data = (folder / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert data == live_bytes(project, entry["session_id"])  # sealed, as stored
    files = [(folder / e["file"]).read_bytes() for e in manifest["backups"]]
    assert not any(secret in data for data in files for _, secret in made.values())
    assert invoke(env, "backup", "export", str(folder)).code == 1  # never over an export

    for sid in ids.values():  # the bucket is lost
        wipe(project, sid)
    dry = invoke(env, "backup", "restore", str(folder), "--dry-run", "--json")
    assert dry.code == 0, dry.stdout + dry.stderr
    outcomes = {r["session_id"]: r["outcome"] for r in dry.json()["results"]}
    assert outcomes == {
        ids["connected"]: "would_restore",
        ids["pairing"]: "would_restore",
        ids["stopped"]: "would_restore",
        ids["logged_out"]: "skipped",  # its backup was wiped on purpose
    }
    assert all(live_bytes(project, sid) is None for sid in ids.values())  # dry: nothing written

    tampered_id = ids["stopped"]
    [entry] = [e for e in manifest["backups"] if e["session_id"] == tampered_id]
    tampered = folder / entry["file"]
    data = bytearray(tampered.read_bytes())
    data[-3] ^= 0x55
    tampered.write_bytes(bytes(data))
    checked = invoke(env, "backup", "restore", str(folder), "--dry-run", "--json")
    assert checked.code == 1
    [problem] = checked.json()["problems"]
    assert problem["session_id"] == tampered_id and problem["outcome"] == "corrupt"

    restored = run(env, "backup", "restore", str(folder), "--json")
    assert restored.code == 1, restored.stderr  # the tampered one is reported
    summary = restored.json()
    assert [p["session_id"] for p in summary["problems"]] == [tampered_id]
    assert live_bytes(project, tampered_id) is None  # never uploaded
    for label, sid in ids.items():
        if sid != tampered_id and label != "logged_out":
            assert live_bytes(project, sid) == originals[label]  # byte-identical
    # Only a session that should run and is not connected is asked to reconnect.
    recovering = {r["session_id"] for r in summary["results"] if r["recover"] == "requested"}
    assert recovering == {ids["pairing"]}
    eventually(lambda: control_sink.received, timeout=20)
    assert [(c["session_id"], c["action"]) for c in control_sink.received] == [
        (ids["pairing"], "recover")
    ]


def test_restore_never_overwrites_a_newer_valid_backup_unless_forced(
    project: Project, tmp_path: Path
) -> None:
    env = project.env
    made = make_sessions(project, {"idle": (SessionState.STOPPED, DesiredState.STOPPED)})
    sid, _ = made["idle"]
    folder = tmp_path / "export"
    assert invoke(env, "backup", "export", str(folder)).code == 0
    same = invoke(env, "backup", "restore", str(folder), "--json").json()
    assert same["counts"] == {"unchanged": 1}

    backups = SessionBackups(project.bucket, project.keyring, "cloud", Path("/nonexistent"))
    live = project.bucket.get(SessionBackups.object_name(TENANT, sid))
    backups.save(TENANT, sid, b"newer state", expected_generation=live.generation)
    newer = live_bytes(project, sid)
    kept = invoke(env, "backup", "restore", str(folder), "--session", sid, "--json").json()
    assert kept["counts"] == {"kept": 1}
    assert live_bytes(project, sid) == newer
    forced = invoke(env, "backup", "restore", str(folder), "--force", "--json").json()
    assert forced["counts"] == {"replaced": 1}
    assert live_bytes(project, sid) != newer


def test_keys_rotate_reencrypts_idle_backups_leaves_running_ones_and_is_idempotent(
    project: Project, tmp_path: Path
) -> None:
    made = make_sessions(
        project,
        {
            "stopped": (SessionState.STOPPED, DesiredState.STOPPED),
            "failed": (SessionState.FAILED, DesiredState.RUNNING),
            "running": (SessionState.CONNECTED, DesiredState.RUNNING),
        },
    )
    old = project.env["WAGATE_BACKUP_KEYS"]
    new = generate_backup_keys().replace("k1:", "k2:")
    env = {**project.env, "WAGATE_BACKUP_KEYS": f"{new},{old}"}
    ids = {label: sid for label, (sid, _) in made.items()}
    before = {label: live_bytes(project, sid) for label, sid in ids.items()}

    dry = invoke(env, "keys", "rotate", "--dry-run", "--json").json()
    assert dry["counts"] == {"rotated": 2, "live": 1} and dry["live_by_key"] == {"k1": 1}
    assert {label: live_bytes(project, sid) for label, sid in ids.items()} == before

    rotated = run(env, "keys", "rotate", "--json")
    assert rotated.code == 0, rotated.stderr
    assert rotated.json()["counts"] == {"rotated": 2, "live": 1}
    for label in ("stopped", "failed"):
        assert key_id_of(live_bytes(project, ids[label]) or b"") == "k2"
        doc = project.store.collection("sessions", SessionDoc).get(ids[label])
        assert doc is not None and doc.last_backup is not None
        assert doc.last_backup.key_id == "k2"
    assert live_bytes(project, ids["running"]) == before["running"]  # left to its runner

    # The re-encrypted backups open with the new key alone and hold the same state.
    only_new = SessionBackups(project.bucket, StaticKeyRing(new), "cloud", Path("/nonexistent"))
    for label in ("stopped", "failed"):
        restored = only_new.restore(TENANT, ids[label])
        assert restored is not None and restored.state == made[label][1]

    again = invoke(env, "keys", "rotate", "--json").json()
    assert again["counts"] == {"current": 2, "live": 1}

    # Still restorable through an export made after the rotation.
    folder = tmp_path / "after-rotation"
    assert invoke(env, "backup", "export", str(folder)).code == 0
    verified = invoke(env, "backup", "restore", str(folder), "--dry-run", "--json")
    assert verified.code == 0 and verified.json()["counts"] == {"unchanged": 3}


def test_keys_rotate_reseals_webhook_secrets_and_says_which_old_keys_are_still_needed(
    project: Project,
) -> None:
    tenants = Tenants(project.store, SystemClock())
    sealed_tenant = tenants.create("acme", webhook_url="https://acme.example/hooks")
    tenants.set_webhook(
        sealed_tenant.id,
        "https://acme.example/hooks",
        seal_secret(project.keyring, sealed_tenant.id, "whsec_the-old-one"),
    )
    plain_tenant = tenants.create("no-webhook")
    old = project.env["WAGATE_BACKUP_KEYS"]
    new = generate_backup_keys().replace("k1:", "k2:")
    env = {**project.env, "WAGATE_BACKUP_KEYS": f"{new},{old}"}
    docs = project.store.collection("tenants", TenantDoc)

    def sealed() -> bytes:
        doc = docs.get(sealed_tenant.id)
        assert doc is not None and doc.webhook_secret_sealed is not None
        return doc.webhook_secret_sealed

    before = sealed()
    dry = invoke(env, "keys", "rotate", "--dry-run", "--json").json()
    assert dry["webhook_secrets"] == {"rotated": 1} and dry["still_needed"] == {"k1": 1}
    assert sealed() == before

    done = run(env, "keys", "rotate", "--json")
    assert done.code == 0, done.stderr
    assert done.json()["webhook_secrets"] == {"rotated": 1} and done.json()["still_needed"] == {}
    assert sealed_key_id(sealed()) == "k2"
    assert open_secret(StaticKeyRing(new), sealed_tenant.id, sealed()) == "whsec_the-old-one"
    plain = docs.get(plain_tenant.id)
    assert plain is not None and plain.webhook_secret_sealed is None

    again = invoke(env, "keys", "rotate", "--json").json()
    assert again["webhook_secrets"] == {"current": 1}

    # A secret no key of the ring opens is reported, and its key is still needed.
    foreign = StaticKeyRing(generate_backup_keys().replace("k1:", "k7:"))
    tenants.set_webhook(
        sealed_tenant.id, "https://acme.example/hooks", seal_secret(foreign, sealed_tenant.id, "x")
    )
    broken = run(env, "keys", "rotate", "--json")
    assert broken.code == 1
    assert broken.json()["still_needed"] == {"k7": 1}
    assert [p["outcome"] for p in broken.json()["problems"]] == ["unreadable"]
