"""The runner's health surface and its own alert conditions, in process, on the Firestore and
Cloud Tasks emulators: /readyz turns false when the shard lease is lost (and lease_lost is
raised once, then resolved when the lease is back), each runner alert kind is raised once per
cooldown and resolved when its condition clears, /health and /metrics carry what
docs/operations.md promises."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from runner.app import RunnerApp
from runner.context import ShardContext
from runner.engines.simulated import SimulatedEngine
from runner.group_commit import GroupClaim, GroupCommit
from runner.io import Offload
from runner.lease import LeaseKeeper
from runner.monitor import RunnerMonitor, Thresholds
from runner.order_gate import OrderGate
from runner.pacing import Pacer
from runner.sending import SendHandler
from runner.sent_index import SentIndex
from runner.shard import Shard
from wagate import wiring
from wagate.adapters import firestore as fs
from wagate.adapters import storage as gcs
from wagate.adapters import tasks
from wagate.adapters.guard import DependencyGuard
from wagate.adapters.keyring import StaticKeyRing
from wagate.adapters.memory import FixedClock
from wagate.clock import SystemClock
from wagate.config import Settings
from wagate.contracts import AlertDoc, ShardLease
from wagate.ports import Clock
from wagate.services.alerts import Alerts, alert_id
from wagate.services.backups import SessionBackups
from wagate.services.directory import SessionDirectory
from wagate.services.leases import Leases
from wagate.services.monitoring import RECONNECTS, CallLatency
from wagate.services.outbox import Outbox

pytestmark = pytest.mark.integration


@dataclass
class Runner:
    ctx: ShardContext
    shard: Shard
    lease: LeaseKeeper
    monitor: RunnerMonitor
    app: RunnerApp
    alerts_repo: Any
    rss: list[int]

    def alert(self, kind: str) -> AlertDoc | None:
        doc: AlertDoc | None = self.alerts_repo.get(alert_id(kind, "shard-0"))
        return doc


def build_runner(
    settings: Settings, clock: Clock, tmp: Path, thresholds: Thresholds | None = None
) -> Runner:
    """The runner's composition (runner/__main__.py) with a clock and memory readings the test
    controls; every port is the real adapter on the emulators."""
    latency = CallLatency(clock=clock.monotonic)
    store = fs.FirestoreStore(
        fs.make_client(settings.project_id), DependencyGuard("firestore", observer=latency)
    )
    queue = tasks.CloudTasksQueue(
        tasks.make_client(settings.tasks_endpoint),
        settings.project_id,
        settings.region,
        tasks.SharedSecretAuth("x"),
        DependencyGuard("tasks", observer=latency),
    )
    assert settings.backup_keys is not None
    ctx = ShardContext(
        settings=settings,
        store=store,
        queue=queue,
        engine=SimulatedEngine(settings.simulator_url),
        backups=SessionBackups(
            None, StaticKeyRing(settings.backup_keys.get_secret_value()), "local", tmp
        ),
        alerts=Alerts(store, clock),
        clock=clock,
        io=Offload(8),
        state_dir=tmp,
    )
    writes = GroupCommit(store, ctx.io)
    index = SentIndex()
    outbox = Outbox(store, queue, clock, wiring.routing(settings), SessionDirectory(store))
    shard = Shard(ctx, writes, index, outbox)
    lease = LeaseKeeper(
        Leases(store.collection("shards", ShardLease), clock),
        ctx.io,
        0,
        "runner-under-test",
        ttl=3.0,
        renew_every=0.2,
        on_won=shard.on_lease_won,
        on_lost=shard.on_lease_lost,
    )
    rss = [200 * 2**20]
    monitor = RunnerMonitor(
        ctx,
        shard,
        lease,
        latency=latency,
        breakers=[store.guard, queue.guard],
        thresholds=thresholds,
        rss=lambda: rss[0],
    )
    gate = OrderGate(store, ctx.io)
    gate.index = index  # as runner/__main__.py wires it
    sender = SendHandler(ctx, Pacer(), writes, index, GroupClaim(store, ctx.io), gate)
    app = RunnerApp(shard, lease, sender, monitor)
    return Runner(ctx, shard, lease, monitor, app, store.collection("health_alerts", AlertDoc), rss)


@pytest.fixture
def settings(emulators: Any, firestore_env: dict[str, str]) -> Iterator[Settings]:
    emulators.provision_project(firestore_env["WAGATE_PROJECT_ID"])
    yield Settings(_env_file=None)


def serve(runner: Runner, body: Callable[[TestClient[Any, Any]], Awaitable[None]]) -> None:
    async def main() -> None:
        keeper = asyncio.create_task(runner.lease.run())
        client = TestClient(TestServer(runner.app.build()))
        await client.start_server()
        try:
            await body(client)
        finally:
            keeper.cancel()
            await client.close()
            await runner.shard.drain()
            runner.ctx.io.shutdown()

    asyncio.run(main())


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


def test_readyz_turns_false_when_the_lease_is_lost_and_lease_lost_is_raised_once(
    settings: Settings, tmp_path: Path
) -> None:
    runner = build_runner(settings, SystemClock(), tmp_path)
    shards = runner.ctx.store.collection("shards", ShardLease)

    async def body(client: TestClient[Any, Any]) -> None:
        async def ready() -> bool:
            return (await client.get("/readyz")).status == 200

        await until(lambda: asyncio.sleep(0, runner.lease.held))
        await runner.monitor.check()
        await until(ready)
        assert runner.alert("lease_lost") is None
        # Another instance takes the shard over (this one was paused past its lease, say).
        current = shards.get("0")
        assert current is not None
        shards.put(current.model_copy(update={"holder": "intruder", "token": current.token + 1}))
        await until(lambda: asyncio.sleep(0, not runner.lease.held))
        answer = await client.get("/readyz")
        assert answer.status == 503
        assert "does not hold the shard lease" in (await answer.json())["reasons"]
        health = await client.get("/health")
        assert health.status == 503 and (await health.json())["status"] == "error"
        # Raised once the sessions are stopped (Shard.on_lease_lost), just after.
        await until(lambda: asyncio.sleep(0, runner.alert("lease_lost") is not None))
        lost = runner.alert("lease_lost")
        assert lost is not None and lost.resolved_at is None and lost.count == 1
        assert lost.severity == "critical"
        # The intruder goes away; this runner wins the shard back and resolves the alert.
        shards.put(current.model_copy(update={"holder": None, "token": current.token + 1}))
        await until(lambda: asyncio.sleep(0, runner.lease.held))
        assert (await runner.monitor.check())["lease_lost"] == "resolved"
        await until(ready)
        back = runner.alert("lease_lost")
        assert back is not None and back.resolved_at is not None and back.count == 1

    serve(runner, body)


def test_runner_alerts_are_raised_once_per_cooldown_and_resolve_when_clear(
    settings: Settings, tmp_path: Path
) -> None:
    clock = FixedClock()
    thresholds = Thresholds(
        reconnect_storm=50,
        reconnect_window_s=300,
        memory_every_s=60,
        memory_successive=3,
        memory_min_growth_bytes=16 * 2**20,
    )
    runner = build_runner(settings, clock, tmp_path, thresholds)
    monitor = runner.monitor

    def slow_store(calls: int = 100) -> None:
        for _ in range(calls):
            monitor.latency.observe("firestore", "get", 0.9, True)

    async def body(client: TestClient[Any, Any]) -> None:
        await until(lambda: asyncio.sleep(0, runner.lease.held))
        first = await monitor.check()
        assert first == {
            "lease_lost": None,
            "reconnect_storm": None,
            "store_latency": None,
            "memory_growth": None,
        }
        # A slow store right after start is the connections warming up: not judged.
        slow_store()
        assert (await monitor.check())["store_latency"] is None
        assert runner.alert("store_latency") is None
        clock.advance(thresholds.store_warmup_s)
        # Every condition turns active at once: a storm, a slow store, memory growing.
        RECONNECTS.labels("503", "retry").inc(51)
        slow_store()
        for _ in range(3):
            clock.advance(61)
            runner.rss[0] += 20 * 2**20
            slow_store()
            await monitor.check()
        for kind in ("reconnect_storm", "store_latency", "memory_growth"):
            raised = runner.alert(kind)
            assert raised is not None and raised.count == 1, kind
        health = await (await client.get("/health")).json()
        assert health["status"] == "degraded"
        assert "store latency p99 over threshold" in health["reasons"]
        # Still active 10 minutes later, within the 30-minute cooldown of these noisy kinds:
        # nothing is written again.
        clock.advance(600)
        RECONNECTS.labels("503", "retry").inc(51)
        runner.rss[0] += 20 * 2**20
        slow_store()
        assert set((await monitor.check()).values()) == {None}
        for kind in ("reconnect_storm", "store_latency", "memory_growth"):
            alert = runner.alert(kind)
            assert alert is not None and alert.count == 1 and alert.resolved_at is None, kind
        # Past the cooldown and still active: counted once more.
        clock.advance(30 * 60)
        RECONNECTS.labels("503", "retry").inc(51)
        runner.rss[0] += 20 * 2**20
        slow_store()
        results = await monitor.check()
        assert results["reconnect_storm"] == "raised" and results["store_latency"] == "raised"
        assert runner.alert("store_latency").count == 2  # type: ignore[union-attr]
        # The conditions clear: calls are fast again, the storm is over, memory is flat.
        clock.advance(301)
        for _ in range(100):
            monitor.latency.observe("firestore", "get", 0.01, True)
        cleared = await monitor.check()
        assert cleared["reconnect_storm"] == "resolved"
        assert cleared["store_latency"] == "resolved"
        assert cleared["memory_growth"] == "resolved"  # the last snapshot did not grow
        for kind in ("reconnect_storm", "store_latency", "memory_growth"):
            assert runner.alert(kind).resolved_at is not None, kind  # type: ignore[union-attr]
        assert (await (await client.get("/health")).json())["status"] == "ok"

    serve(runner, body)


def test_health_and_metrics_report_what_operations_documents(
    settings: Settings, tmp_path: Path
) -> None:
    runner = build_runner(settings, SystemClock(), tmp_path)

    async def body(client: TestClient[Any, Any]) -> None:
        # The renewal counter is exported after the first renewal, not when the lease is won.
        await until(lambda: asyncio.sleep(0, runner.lease.renewals > 0))
        await runner.monitor.check()
        plain = await (await client.get("/health")).json()
        assert plain["status"] == "ok" and plain["reasons"] == []
        assert {"version", "uptime_s", "shard", "lease_held"} <= set(plain)
        assert "sessions" not in plain
        detail = await (await client.get("/health", params={"detailed": "true"})).json()
        assert detail["sessions"] == {}
        assert detail["queue"]["backlog"] == 0
        assert detail["circuit_breakers"] == {"firestore": "closed", "tasks": "closed"}
        assert detail["dependencies"] == {"firestore": "ok"}
        firestore = detail["store_latency"]["firestore"]["all"]
        assert firestore["count"] > 0 and firestore["p50_ms"] <= firestore["p99_ms"]
        assert detail["memory"]["rss_bytes"] == 200 * 2**20
        assert detail["backups"] == {"oldest_age_s": None, "never": 0, "failing": 0, "stalest": {}}
        assert "sent" in detail and "receipts" in detail
        assert detail["journal"]["backlog"] == 0 and detail["journal"]["store_degraded"] is False
        metrics = await (await client.get("/metrics")).text()
        for name in (
            "wagate_dependency_call_seconds_bucket",
            'wagate_lease_renewals_total{outcome="ok"}',
            'wagate_circuit_state{dependency="firestore"} 0.0',
            "wagate_lease_held 1.0",
            "wagate_send_backlog 0.0",
            "wagate_store_latency_p99_seconds",
            "wagate_send_latency_seconds",
            "wagate_reconnects_total",
            "wagate_backup_seconds",
            "wagate_messages_total",
        ):
            assert name in metrics, name

    serve(runner, body)


def test_readyz_names_a_dependency_its_probe_cannot_reach(
    settings: Settings, tmp_path: Path
) -> None:
    runner = build_runner(settings, SystemClock(), tmp_path)
    # A backup bucket that does not exist (yet): Cloud Storage answers the probe with an error.
    bucket = gcs.GcsBlobStore(gcs.make_client(settings.project_id), f"b-{uuid.uuid4().hex[:12]}")
    runner.monitor.blobs = bucket

    async def body(client: TestClient[Any, Any]) -> None:
        await until(lambda: asyncio.sleep(0, runner.lease.held))
        await runner.monitor.check()
        answer = await client.get("/readyz")
        assert answer.status == 503
        (reason,) = (await answer.json())["reasons"]
        assert reason.startswith("storage unreachable")
        health = await (await client.get("/health")).json()
        assert health["status"] == "degraded" and health["reasons"] == ["storage unreachable"]
        bucket.ensure_bucket(versioning=True)
        await runner.monitor.check()
        assert (await client.get("/readyz")).status == 200

    serve(runner, body)
