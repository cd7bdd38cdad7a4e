"""The runner's own watch (docs/operations.md): every few seconds it probes Firestore and Cloud
Storage, counts the shard's send backlog, snapshots its memory, and evaluates the alert
conditions only a runner can see: reconnect storm, store latency, memory growth, and the end
of a lost lease. It also assembles what /health and /readyz report.

Only the lease holder judges the shard's conditions: a standby instance (during a rollout)
would otherwise resolve the holder's alerts with its own, quieter, view.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

import psutil

from runner.context import ShardContext
from runner.lease import LeaseKeeper
from runner.shard import Shard
from wagate import __version__
from wagate.errors import WagateError
from wagate.logs import get_logger
from wagate.ports import BlobStore, Where
from wagate.services.monitoring import (
    RECONNECTS,
    CallLatency,
    MemoryTrend,
    RollingCount,
    counter_total,
)

log = get_logger("wagate.runner.monitor")

Status = Literal["ok", "degraded", "error"]
STALEST_SHOWN = 20


class Breaker(Protocol):
    """What the monitor reads of a wagate.adapters.guard.DependencyGuard."""

    name: str

    @property
    def state(self) -> str: ...


@dataclass(frozen=True)
class Thresholds:
    """When the runner raises its alerts (docs/operations.md lists them with the defaults)."""

    store_p99_s: float = 0.5  # SPEC §7: store latency p99 > 500 ms
    store_min_calls: int = 20  # fewer calls in the window say nothing about a p99
    # The first calls open connections and warm caches; judge only a window free of them.
    store_warmup_s: float = 300.0
    reconnect_storm: int = 50  # more than this many disconnects of the shard's sessions...
    reconnect_window_s: float = 300.0  # ...within this window
    memory_every_s: float = 60.0  # one RSS snapshot per minute
    memory_successive: int = 10  # growth at each of 10 snapshots in a row...
    memory_min_growth_bytes: int = 32 * 1024 * 1024  # ...by at least 32 MiB...
    memory_min_growth_ratio: float = 0.10  # ...and 10 %
    backup_failing_after: int = 3  # consecutive failed backups of one session


def process_rss() -> int:
    return int(psutil.Process(os.getpid()).memory_info().rss)


class RunnerMonitor:
    def __init__(
        self,
        ctx: ShardContext,
        shard: Shard,
        lease: LeaseKeeper,
        *,
        latency: CallLatency,
        breakers: Sequence[Breaker] = (),
        blobs: BlobStore | None = None,
        thresholds: Thresholds | None = None,
        period_s: float = 10.0,
        rss: Callable[[], int] = process_rss,
    ) -> None:
        self.ctx = ctx
        self.shard = shard
        self.lease = lease
        self.latency = latency
        self.breakers = list(breakers)
        self.blobs = blobs
        self.thresholds = thresholds or Thresholds()
        self.period_s = period_s
        self.journal = ctx.durable  # the write-behind journal of a store outage
        self._rss = rss
        t = self.thresholds
        self.memory = MemoryTrend(
            successive=t.memory_successive,
            min_growth_bytes=t.memory_min_growth_bytes,
            min_growth_ratio=t.memory_min_growth_ratio,
        )
        self.reconnects = RollingCount(t.reconnect_window_s, clock=ctx.clock.monotonic)
        self._reconnects_seen = counter_total(RECONNECTS)
        self._next_memory_at = float("-inf")
        self.started = ctx.clock.monotonic()
        self.reachable: dict[str, str] = {}  # dependency → "ok" | "error: …"
        self.checked_at: datetime | None = None
        self.backlog: int | None = None
        self.open_conditions: set[str] = set()

    # ------------------------------------------------------------ the loop

    async def run(self) -> None:
        while True:
            try:
                await self.check()
            except Exception:  # the watch must outlive whatever it watches
                log.exception("monitor check failed")
            await asyncio.sleep(self.period_s)

    async def check(self) -> dict[str, str | None]:
        """One round; returns what each alert condition wrote ("raised", "resolved", None)."""
        ctx = self.ctx
        await self._probe()
        now = ctx.clock.monotonic()
        total = counter_total(RECONNECTS)
        self.reconnects.add(max(0.0, total - self._reconnects_seen))
        self._reconnects_seen = total
        if now >= self._next_memory_at:
            self.memory.add(now, self._rss())
            self._next_memory_at = now + self.thresholds.memory_every_s
        self.checked_at = ctx.clock.now()
        if not self.lease.held:
            self.open_conditions.clear()  # not ours to judge now (see the module docstring)
            return {}
        await self._count_backlog()
        results: dict[str, str | None] = {}
        for kind, active, message, severity in self._conditions():
            if active:
                self.open_conditions.add(kind)
            else:
                self.open_conditions.discard(kind)
            try:
                results[kind] = await ctx.io(
                    ctx.alerts.track, kind, f"shard-{ctx.shard}", active, message, severity
                )
            except WagateError as e:
                log.warning("alert not recorded", kind=kind, error=e.message)
                results[kind] = None
        return results

    def _conditions(self) -> list[tuple[str, bool, str, Literal["warning", "critical"]]]:
        t = self.thresholds
        storm = self.reconnects.total()
        store = self.latency.percentiles("firestore")
        warm = self.ctx.clock.monotonic() - self.started >= t.store_warmup_s
        slow = warm and store.count >= t.store_min_calls and (store.p99 or 0.0) > t.store_p99_s
        rss = self.memory.latest or 0
        per_hour = self.memory.growth_per_hour() or 0.0
        window_min = round(t.reconnect_window_s / 60, 1)
        return [
            # Holding the lease is the condition clearing: whoever lost it, it is served again.
            ("lease_lost", False, "", "critical"),
            (
                "reconnect_storm",
                storm > t.reconnect_storm,
                f"{int(storm)} disconnects in {window_min} min on shard {self.ctx.shard} "
                f"(threshold {t.reconnect_storm})",
                "warning",
            ),
            (
                "store_latency",
                slow,
                f"Firestore p99 {1000 * (store.p99 or 0):.0f} ms over {store.count} calls in "
                f"{self.latency.window_s / 60:.0f} min (threshold {1000 * t.store_p99_s:.0f} ms)",
                "warning",
            ),
            (
                "memory_growth",
                self.memory.leaking,
                f"RSS grew at each of the last {t.memory_successive} snapshots to "
                f"{rss / 2**20:.0f} MiB ({per_hour / 2**20:+.1f} MiB/h)",
                "warning",
            ),
        ]

    async def _probe(self) -> None:
        ctx = self.ctx
        probes: list[tuple[str, Callable[[], None]]] = [("firestore", ctx.store.ping)]
        if self.blobs is not None:
            probes.append(("storage", self.blobs.ping))
        for name, ping in probes:
            try:
                await ctx.io(ping)
                self.reachable[name] = "ok"
            except WagateError as e:
                self.reachable[name] = f"error: {e.message}"

    async def _count_backlog(self) -> None:
        ctx = self.ctx
        with contextlib.suppress(WagateError):  # keep the last known value
            # pending/{id} entries, not a scan of `messages` (PendingSend); one left behind by
            # a lost delete counts until the sweeper removes it.
            self.backlog = await ctx.io(
                ctx.pending.count,
                [Where("shard", "==", ctx.shard)],
            )

    # ------------------------------------------------------------ what /readyz and /health say

    def unready_reasons(self) -> list[str]:
        reasons: list[str] = []
        if not self.lease.held:
            reasons.append("does not hold the shard lease")
        if self.shard.draining:
            reasons.append("draining")
        for name, result in self.reachable.items():
            if result != "ok":
                reasons.append(f"{name} unreachable ({result.removeprefix('error: ')})")
        for breaker in self.breakers:
            if breaker.state == "open":
                reasons.append(f"{breaker.name} circuit open")
        return reasons

    def status(self) -> tuple[Status, list[str]]:
        errors: list[str] = []
        if not self.lease.held:
            errors.append("does not hold the shard lease")
        if self.shard.draining:
            errors.append("draining")
        if errors:
            return "error", errors
        degraded: list[str] = []
        for name, result in self.reachable.items():
            if result != "ok":
                degraded.append(f"{name} unreachable")
        for breaker in self.breakers:
            if breaker.state != "closed":
                degraded.append(f"{breaker.name} circuit {breaker.state}")
        labels = {
            "reconnect_storm": "reconnect storm",
            "store_latency": "store latency p99 over threshold",
            "memory_growth": "memory growing at every snapshot",
        }
        degraded += [labels[k] for k in sorted(self.open_conditions) if k in labels]
        failing = sum(
            1
            for s in self.shard.supervisors.values()
            if s.backup_failures >= self.thresholds.backup_failing_after
        )
        if failing:
            degraded.append(f"backups failing for {failing} session(s)")
        if self.journal.store_degraded or self.journal.backlog:
            degraded.append(f"store writes journaled: {self.journal.backlog} waiting")
        return ("degraded" if degraded else "ok"), degraded

    def health(self, *, detailed: bool, per_session: bool = False) -> dict[str, Any]:
        ctx = self.ctx
        status, reasons = self.status()
        body: dict[str, Any] = {
            "status": status,
            "reasons": reasons,
            "version": __version__,
            "shard": ctx.shard,
            "holder": self.lease.holder,
            "lease_held": self.lease.held,
            "draining": self.shard.draining,
            "uptime_s": round(ctx.clock.monotonic() - self.started, 1),
        }
        if not detailed:
            return body
        body["sessions"] = self.shard.by_state()
        body["queue"] = {"backlog": self.backlog, "counted_at": _iso(self.checked_at)}
        body["circuit_breakers"] = {b.name: b.state for b in self.breakers}
        body["dependencies"] = dict(self.reachable)
        body["store_latency"] = self.latency.snapshot()
        body["memory"] = self.memory.snapshot()
        body["reconnects_in_window"] = int(self.reconnects.total())
        body["backups"] = self._backups(per_session)
        body["alert_conditions"] = sorted(self.open_conditions)
        body["journal"] = {
            "store_degraded": self.journal.store_degraded,
            "slow_answers": self.journal.slow_answers,  # timed out, but a ping answered
            "backlog": self.journal.backlog,
            "parked": self.journal.journal.parked,
            "journaled": self.journal.journaled,
            "replayed": self.journal.replayed,
        }
        return body

    def _backups(self, per_session: bool) -> dict[str, Any]:
        now = self.ctx.clock.now()
        ages: dict[str, float | None] = {}
        for sid, supervisor in self.shard.supervisors.items():
            at = supervisor.last_backup_at or supervisor.restored_backup_at
            ages[sid] = None if at is None else round((now - at).total_seconds(), 1)
        known = sorted(((age, sid) for sid, age in ages.items() if age is not None), reverse=True)
        result: dict[str, Any] = {
            "oldest_age_s": known[0][0] if known else None,
            "never": sum(1 for age in ages.values() if age is None),
            "failing": sum(
                1
                for s in self.shard.supervisors.values()
                if s.backup_failures >= self.thresholds.backup_failing_after
            ),
            "stalest": {sid: age for age, sid in known[:STALEST_SHOWN]},
        }
        if per_session:
            result["sessions"] = ages
        return result


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None
