"""`backup-restore`: the operator's emergency restore (`wagate backup restore`, SPEC §7 and issue
#7's target: 1,000 sessions in under 10 minutes) on the local emulators.

N sessions (64 KiB of auth state each, state `reconnecting` so every one also gets a `recover`
control task: the worst case) are exported with `wagate backup export`, the bucket loses every
backup, and `wagate backup restore` puts them back: each file checked against the manifest,
authenticated with the key ring, written with a generation precondition, one control task per
session. Both commands run through the installed entry point, process start included.
Baseline: the same files uploaded raw (google-cloud-storage, no checks, no precondition, no
tasks) at the same concurrency, in the same run. Ratio = restore time / raw upload time.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import Result, stack
from devstack.processes import free_port
from wagate.adapters.firestore import FirestoreStore
from wagate.adapters.firestore import make_client as firestore_client
from wagate.adapters.keyring import StaticKeyRing
from wagate.adapters.storage import GcsBlobStore
from wagate.adapters.storage import make_client as storage_client
from wagate.config import Settings
from wagate.contracts import SessionDoc
from wagate.domain.ids import new_session_id
from wagate.domain.sessions import SessionState
from wagate.services.backups import SessionBackups

TARGET_S = 600.0  # for 1,000 sessions
TARGET_SESSIONS = 1000
STATE_BYTES = 64 * 1024
WORKERS = 16
TENANT = "ten_bench"
WAGATE = Path(sys.executable).with_name("wagate")


def _wagate(env: dict[str, str], *args: str) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    done = subprocess.run(
        [str(WAGATE), *args, "--json"], env=env, capture_output=True, text=True, timeout=1800
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"wagate {' '.join(args)} failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return elapsed, result


def _provision(settings: Settings, keyring: StaticKeyRing, count: int) -> list[str]:
    blobs = GcsBlobStore(storage_client(settings.project_id), settings.backup_bucket)
    backups = SessionBackups(blobs, keyring, "cloud", Path(tempfile.gettempdir()))
    ids = [new_session_id() for _ in range(count)]

    def save(sid: str) -> None:
        backups.save(TENANT, sid, os.urandom(STATE_BYTES), expected_generation=0)

    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(save, ids))
    docs = [
        SessionDoc(id=sid, tenant_id=TENANT, shard=0, state=SessionState.RECONNECTING)
        for sid in ids
    ]
    FirestoreStore(firestore_client(settings.project_id)).collection(
        "sessions", SessionDoc
    ).put_many(docs)
    return ids


def _wipe(blobs: GcsBlobStore, ids: list[str]) -> None:
    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(lambda sid: blobs.delete(SessionBackups.object_name(TENANT, sid)), ids))


def run(quick: bool = False, sessions: int | None = None, **_: Any) -> Result:
    count = sessions or (200 if quick else TARGET_SESSIONS)
    keys = f"k1:{base64.b64encode(os.urandom(32)).decode()}"
    # Control tasks go to a runner URL where nothing listens: the queue keeps them (and retries),
    # as it would for runners that are down during an emergency.
    extra = {"WAGATE_BACKUP_KEYS": keys, "WAGATE_RUNNER_URLS": f"http://127.0.0.1:{free_port()}"}
    with stack(extra_env=extra) as s, tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, **s.env}
        settings = Settings()
        ids = _provision(settings, StaticKeyRing(keys), count)
        blobs = GcsBlobStore(storage_client(settings.project_id), settings.backup_bucket)
        folder = Path(tmp) / "export"

        export_s, exported = _wagate(env, "backup", "export", str(folder))
        assert exported["exported"] == count, exported
        _wipe(blobs, ids)
        restore_s, restored = _wagate(env, "backup", "restore", str(folder))
        assert restored["counts"] == {"restored": count}, restored["counts"]
        assert restored["recover_requested"] == count, restored["recover_requested"]

        manifest = json.loads((folder / "manifest.json").read_text())
        with ThreadPoolExecutor(WORKERS) as pool:
            identical = sum(
                pool.map(
                    lambda e: (
                        blobs.get(SessionBackups.object_name(TENANT, e["session_id"])).data
                        == (folder / e["file"]).read_bytes()
                    ),
                    manifest["backups"],
                )
            )
        assert identical == count, f"{identical}/{count} byte-identical"

        # Baseline: the same bytes, uploaded raw at the same concurrency.
        _wipe(blobs, ids)
        raw_bucket = storage_client(settings.project_id).bucket(settings.backup_bucket)

        def raw_upload(entry: dict[str, Any]) -> None:
            data = (folder / entry["file"]).read_bytes()
            name = SessionBackups.object_name(entry["tenant_id"], entry["session_id"])
            raw_bucket.blob(name).upload_from_string(data)

        started = time.perf_counter()
        with ThreadPoolExecutor(WORKERS) as pool:
            list(pool.map(raw_upload, manifest["backups"]))
        raw_s = time.perf_counter() - started

    projected = restore_s * TARGET_SESSIONS / count
    return Result(
        bench="backup-restore",
        figure=round(restore_s, 2),
        unit=f"s for `wagate backup restore` of {count} sessions ({STATE_BYTES // 1024} KiB each)",
        baseline=round(raw_s, 2),
        ratio=round(restore_s / raw_s, 2),
        target=f"< {TARGET_S:.0f} s for {TARGET_SESSIONS} sessions",
        ok=projected < TARGET_S,
        details={
            "sessions": count,
            "export_s": round(export_s, 2),
            "restore_s": round(restore_s, 2),
            "raw_upload_s": round(raw_s, 2),
            "restore_ms_per_session": round(restore_s * 1000 / count, 2),
            "projected_1000_s": round(projected, 1),
            "recover_tasks": restored["recover_requested"],
            "workers": WORKERS,
            "includes": "process start, manifest check, AES-GCM verify, live read, "
            "preconditioned upload, one control task per session",
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )
