"""`backup`: encrypt + upload of a session's auth state through wagate (SessionBackups.save)
against raw AES-256-GCM + a raw upload of the same bytes, interleaved in the same run.
Ratio = wagate throughput / raw throughput (target ≥ 0.8)."""

from __future__ import annotations

import base64
import os
import time
import uuid
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bench.common import Result, stack, summary
from wagate.adapters.keyring import StaticKeyRing
from wagate.adapters.storage import GcsBlobStore, make_client
from wagate.services.backups import SessionBackups

TARGET = 0.8
STATE_BYTES = 64 * 1024  # a whatsmeow device store with its signal sessions is tens of KB


def run(quick: bool = False, **_: Any) -> Result:
    rounds = 100 if quick else 400
    key = os.urandom(32)
    keyring = StaticKeyRing(f"k1:{base64.b64encode(key).decode()}")
    state = os.urandom(STATE_BYTES)
    with stack(only=("gcs",)) as s:
        client = make_client("bench")
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        store = GcsBlobStore(client, bucket)
        store.ensure_bucket(versioning=True)
        backups = SessionBackups(store, keyring, "cloud", s.config.root / "unused")
        raw_bucket = client.bucket(bucket)
        generation = 0
        wagate_ms: list[float] = []
        raw_ms: list[float] = []
        for i in range(rounds + 5):
            t0 = time.perf_counter()
            saved = backups.save("t", "s", state, expected_generation=generation)
            t1 = time.perf_counter()
            nonce = os.urandom(12)
            sealed = AESGCM(key).encrypt(nonce, state, b"aad")
            raw_bucket.blob(f"raw/{i}").upload_from_string(nonce + sealed)
            t2 = time.perf_counter()
            generation = saved.generation
            if i >= 5:  # warm-up rounds are not counted
                wagate_ms.append((t1 - t0) * 1000)
                raw_ms.append((t2 - t1) * 1000)
    w, r = summary(wagate_ms), summary(raw_ms)
    ratio = round(r["mean"] / w["mean"], 3)
    return Result(
        bench="backup",
        figure=round(1000 / w["mean"], 1),
        unit=f"backups/s ({STATE_BYTES // 1024} KiB state, sequential)",
        baseline=round(1000 / r["mean"], 1),
        ratio=ratio,
        target=f"wagate/raw throughput >= {TARGET}",
        ok=ratio >= TARGET,
        details={"wagate_ms": w, "raw_ms": r, "rounds": rounds},
    )
