"""`restore` and `session-memory`: a runner restoring N sessions after a restart, and the
runner's resident memory per idle connected session.

restore: N sessions are connected by a first runner; it gets SIGTERM (releases the lease); the
figure is the time from starting a new runner process to all N connected again. The baseline
is the same N connections opened straight through the engine (no store, no backups, no
supervisor) in the same run, so the ratio shows wagate's own cost.
"""

from __future__ import annotations

import asyncio
import gc
import json
import signal
import time
from typing import Any

import httpx
import psutil

from bench.common import Result, stack
from bench.provisioning import provision_sessions
from runner.engines.simulated import SimulatedEngine
from wagate.domain.events import Connected

RESTORE_TARGET_S = 30.0
MEMORY_TARGET_BYTES = 1_000_000


def _connected(stack_runner_url: str) -> int:
    try:
        detail = httpx.get(f"{stack_runner_url}/health", params={"detailed": "true"}, timeout=5)
        return int(detail.json().get("sessions", {}).get("connected", 0))
    except (httpx.HTTPError, ValueError):
        return 0


def _wait_connected(url: str, count: int, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if _connected(url) >= count:
            return time.monotonic() - started
        time.sleep(0.05)
    raise TimeoutError(f"only {_connected(url)}/{count} sessions connected after {timeout}s")


async def _raw_connects(sim_url: str, states: list[bytes]) -> float:
    engine = SimulatedEngine(sim_url)
    started = time.monotonic()

    async def one(state: bytes) -> Any:
        conn = engine.open("raw", state)
        await conn.connect()
        async for event in conn.events():
            if isinstance(event, Connected):
                return conn
        return conn

    conns = await asyncio.gather(*(one(s) for s in states))
    elapsed = time.monotonic() - started
    await asyncio.gather(*(c.close() for c in conns))
    await engine.aclose()
    return elapsed


def run_restore(quick: bool = False, sessions: int | None = None, **_: Any) -> Result:
    count = sessions or (200 if quick else 1000)
    with stack(only=("firestore", "gcs", "simulator")) as s:
        provision_sessions(s, count)
        first = s.runner_service(0)
        s.start(first)
        _wait_connected(s.runner_url(0), count, 120)
        first.signal(signal.SIGTERM)
        assert first.process is not None
        first.process.wait(timeout=15)
        started = time.monotonic()
        second = s.runner_service(0, name="runner-0-restart")
        second.start()
        elapsed = _wait_connected(s.runner_url(0), count, 180)
        figure = time.monotonic() - started
        second.stop()
        # Baseline: the same devices connected directly through the engine.
        devices = httpx.get(s.url["simulator"] + "/control/devices", timeout=30).json()
        creds = [d for d in devices if isinstance(d, dict)]
        states = _states_for_baseline(s.url["simulator"], len(creds))
        baseline = asyncio.run(_raw_connects(s.url["simulator"], states)) if states else None
    return Result(
        bench="restore",
        figure=round(figure, 2),
        unit=f"s until {count} sessions connected after a restart",
        baseline=round(baseline, 2) if baseline else None,
        ratio=round(figure / baseline, 2) if baseline else None,
        target=f"<= {RESTORE_TARGET_S:.0f} s for 1000 sessions",
        ok=figure <= RESTORE_TARGET_S,
        details={"sessions": count, "measured_from": "process start", "after_health_poll": elapsed},
    )


def _states_for_baseline(sim_url: str, count: int) -> list[bytes]:
    """Fresh linked devices for the baseline (the runner's devices stay with their sessions)."""
    phones = [f"+1888{i:07d}" for i in range(count)]

    async def link() -> list[bytes]:
        import aiohttp

        async with aiohttp.ClientSession() as http:
            sem = asyncio.Semaphore(50)

            async def one(phone: str) -> bytes:
                async with sem, http.post(f"{sim_url}/control/link", json={"phone": phone}) as r:
                    creds = (await r.json())["creds"]
                return json.dumps(creds, separators=(",", ":"), sort_keys=True).encode()

            return list(await asyncio.gather(*(one(p) for p in phones)))

    return asyncio.run(link())


def run_memory(quick: bool = False, sessions: int | None = None, **_: Any) -> Result:
    count = sessions or (200 if quick else 1000)
    with stack(only=("firestore", "gcs", "simulator")) as s:
        empty = s.runner_service(0, name="runner-empty")
        s.start(empty)
        time.sleep(2)
        gc.collect()
        assert empty.process is not None
        rss_empty = psutil.Process(empty.process.pid).memory_info().rss
        empty.stop()
        provision_sessions(s, count)
        full = s.runner_service(0, name="runner-full")
        s.start(full)
        _wait_connected(s.runner_url(0), count, 180)
        time.sleep(3)  # let restore-time garbage settle
        assert full.process is not None
        rss_full = psutil.Process(full.process.pid).memory_info().rss
        full.stop()
    per_session = (rss_full - rss_empty) / count
    return Result(
        bench="session-memory",
        figure=round(per_session),
        unit="bytes RSS per idle connected session",
        baseline=None,
        ratio=None,
        target="<= 1 MB per session",
        ok=per_session <= MEMORY_TARGET_BYTES,
        details={
            "sessions": count,
            "rss_empty": rss_empty,
            "rss_full": rss_full,
        },
    )
