"""`python -m bench engine-density [--quick] [--sessions N]`: how many idle logged-in Baileys
sessions fit in a GiB of runner memory.

Sessions are paired and logged in against the WhatsApp-protocol fake (emulators/whatsapp), held by
a `BaileysEngine` (Node workers, `sessions_per_worker` each) in this process. The figure is the
memory they cost: the RSS of every worker plus this process's growth, per session. The baseline,
measured in the same run, is one empty worker's RSS (the fixed cost each 50 sessions share)."""

from __future__ import annotations

import asyncio
import gc
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from bench.common import Result
from runner.engines.baileys import BaileysEngine
from runner.engines.baileys.engine import BaileysConnection
from tests.engine_contract.baileys_kit import FakeNetwork, start_fake
from wagate.domain.events import Connected, EngineEvent, QrCode

GIB = 1024**3
TARGET_PER_GIB = 300
PAIR_CONCURRENCY = 8


async def _next(events: Any, kind: type[EngineEvent], timeout: float = 60) -> EngineEvent:
    async with asyncio.timeout(timeout):
        async for event in events:
            if isinstance(event, kind):
                return event
    raise RuntimeError(f"no {kind.__name__}")


async def _pair(engine: BaileysEngine, network: FakeNetwork, n: int) -> BaileysConnection:
    conn = engine.open(f"density-{n}", None)
    await conn.connect()
    events = conn.events()
    qr = await _next(events, QrCode)
    assert isinstance(qr, QrCode)
    await network.scan(qr.code, f"+1555070{n:04d}")
    await _next(events, Connected)
    return conn


def _rss(pids: list[int]) -> int:
    return sum(psutil.Process(pid).memory_info().rss for pid in pids)


async def _measure(url: str, count: int, per_worker: int) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http:
        network = FakeNetwork(url, http)
        await network.reset()
        gc.collect()
        own_before = psutil.Process().memory_info().rss
        # Baseline: one worker with no session.
        empty = BaileysEngine(network.ws_url, sessions_per_worker=per_worker)
        probe = empty.open("probe", None)
        worker = await empty.place(probe)
        await worker.request({"op": "ping"})
        await asyncio.sleep(2)
        empty_worker = _rss(empty.worker_pids())
        await empty.aclose()

        engine = BaileysEngine(network.ws_url, sessions_per_worker=per_worker, sync_history=False)
        started = time.monotonic()
        limit = asyncio.Semaphore(PAIR_CONCURRENCY)

        async def one(n: int) -> BaileysConnection:
            async with limit:
                return await _pair(engine, network, n)

        conns = await asyncio.gather(*(one(n) for n in range(count)))
        pair_s = time.monotonic() - started
        connected = (await network.stats())["connected"]
        await asyncio.sleep(10)  # idle: let start-up garbage settle
        gc.collect()
        memory = [await w.request({"op": "memory"}) for w in engine.workers]
        workers = _rss(engine.worker_pids())
        own_growth = max(0, psutil.Process().memory_info().rss - own_before)
        n_workers = len(engine.worker_pids())
        for conn in conns:
            await conn.close()
        await engine.aclose()
    return {
        "sessions": count,
        "connected_at_the_fake": connected,
        "workers": n_workers,
        "sessions_per_worker": per_worker,
        "workers_rss": workers,
        "runner_process_growth": own_growth,
        "empty_worker_rss": empty_worker,
        "pair_and_login_s": round(pair_s, 1),
        "worker_memory": [{k: v for k, v in m.items() if k not in ("re", "ok")} for m in memory],
    }


def run(quick: bool = False, sessions: int | None = None, **_: Any) -> Result:
    count = sessions or (50 if quick else 200)
    with tempfile.TemporaryDirectory() as tmp, start_fake(Path(tmp)) as url:
        details = asyncio.run(_measure(url, count, per_worker=50))
    per_session = (details["workers_rss"] + details["runner_process_growth"]) / count
    per_gib = GIB / per_session
    details["bytes_per_session"] = round(per_session)
    details["whatsmeow"] = (
        "not measured offline: a whatsmeow host cannot log in without WhatsApp; "
        "docs/engines.md records about 90 MB per session (one process each)"
    )
    details["note"] = "machine shared with other work while measured; RSS, not CPU, is the figure"
    ok = details["connected_at_the_fake"] == count and per_gib >= TARGET_PER_GIB
    return Result(
        bench="engine-density",
        figure=round(per_gib),
        unit="idle Baileys sessions per GiB (workers + runner)",
        baseline=round(details["empty_worker_rss"] / 2**20, 1),
        ratio=round(per_session / details["empty_worker_rss"], 4),
        target=f">= {TARGET_PER_GIB} sessions per GiB",
        ok=ok,
        details=details,
    )
