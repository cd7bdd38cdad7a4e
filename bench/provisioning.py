"""Provisioning many linked sessions quickly for benchmarks: devices linked out of band at the
simulator, their credentials sealed into backups, their documents written in batches."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import aiohttp
import httpx

from devstack.stack import Stack
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

UNPACED = {"pacing_per_second": 100, "pacing_burst": 100, "sends_per_minute": 100_000}


def create_tenant(s: Stack, name: str, limits: dict[str, Any]) -> tuple[str, str]:
    """A tenant with these limits, through the admin API: its id and its first API key."""
    created = httpx.post(
        f"{s.url['api']}/v1/admin/tenants",
        headers={"Authorization": f"Bearer {s.admin_key}"},
        json={"name": name, "limits": limits},
        timeout=30,
    )
    if created.status_code != 201:
        raise RuntimeError(f"tenant not created: {created.text}")
    body = created.json()
    return str(body["id"]), str(body["api_key"])


async def _link(sim_url: str, phones: list[str]) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as http:
        sem = asyncio.Semaphore(50)

        async def one(phone: str) -> dict[str, Any]:
            async with sem, http.post(f"{sim_url}/control/link", json={"phone": phone}) as r:
                creds: dict[str, Any] = (await r.json())["creds"]
                return creds

        return list(await asyncio.gather(*(one(p) for p in phones)))


def provision_sessions(stack: Stack, count: int, tenant_id: str = "ten_bench") -> list[str]:
    """`count` sessions on shard 0, each with a backup the runner will restore."""
    settings = Settings()
    phones = [f"+1777{i:07d}" for i in range(count)]
    creds = asyncio.run(_link(stack.url["simulator"], phones))
    blobs = GcsBlobStore(storage_client(settings.project_id), settings.backup_bucket)
    blobs.ensure_bucket(versioning=True)
    backups = SessionBackups(
        blobs,
        StaticKeyRing(stack.backup_keys),
        "cloud",
        stack.config.root / "unused",
    )
    docs = [
        SessionDoc(id=new_session_id(), tenant_id=tenant_id, shard=0, state=SessionState.CONNECTED)
        for _ in phones
    ]
    from concurrent.futures import ThreadPoolExecutor

    def save(pair: tuple[SessionDoc, dict[str, Any]]) -> None:
        doc, cred = pair
        state = json.dumps(cred, separators=(",", ":"), sort_keys=True).encode()
        backups.save(tenant_id, doc.id, state, expected_generation=0)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(save, zip(docs, creds, strict=True)))
    store = FirestoreStore(firestore_client(settings.project_id))
    store.collection("sessions", SessionDoc).put_many(docs)
    _ = os.environ  # provisioning reads the stack's environment through Settings
    return [d.id for d in docs]
