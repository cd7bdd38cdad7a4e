"""Keeps this runner's shard lease: waits for it, renews it, and tells the runner when it is
won or lost. Sockets may be held only between `on_won` and `on_lost`.

When the store cannot be reached the lease is neither renewed nor lost: the runner keeps
serving its connected sessions (SPEC §4, docs/outage.md). The lease lives in that same store,
so while it is unreachable nobody else can take the shard over either; once it answers again,
a renewal that finds our token still there carries on, and one that finds another holder
(`FencedOut`) stops everything. The remaining corner — a runner cut off from Firestore while
a second instance can reach it and takes over after the TTL — leads to two sockets for the
same accounts for a while: WhatsApp keeps one (440 "replaced" for the other), and a message
both send carries the same WhatsApp id, which the recipient deduplicates.

Lease calls get no deadline of their own here: a renewal that hangs on an unreachable store
only delays the next one while the fence stays, and giving up early to try again would pile
transactions onto the one shard document (a slow store gets slower).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from runner.io import Offload
from wagate.errors import Conflict, DependencyUnavailable, FencedOut, LeaseHeld
from wagate.logs import get_logger
from wagate.ports import Fence, ShardLeases
from wagate.services.monitoring import LEASE_RENEWALS

log = get_logger("wagate.runner.lease")


@dataclass(eq=False)
class LeaseKeeper:
    """The shard lease of this runner, and what to call when it is won or lost."""

    leases: ShardLeases
    io: Offload
    shard: int
    holder: str
    ttl: float
    renew_every: float
    on_won: Callable[[Fence], Awaitable[None]]
    on_lost: Callable[[str], Awaitable[None]]
    fence: Fence | None = field(default=None, init=False)
    renewals: int = field(default=0, init=False)
    store_unreachable_since: float | None = field(default=None, init=False)

    @property
    def held(self) -> bool:
        return self.fence is not None

    async def run(self) -> None:
        """Never ends on its own: a lease loop that died would leave the runner up but serving
        nothing, for ever. An unexpected error is logged and the loop goes on."""
        while True:
            try:
                if self.fence is None:
                    await self._acquire()
                else:
                    await asyncio.sleep(self.renew_every)
                    await self._renew()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("lease loop error; retrying", shard=self.shard)
                await asyncio.sleep(1.0)

    async def _acquire(self) -> None:
        try:
            lease = await self.io(self.leases.acquire, self.shard, self.holder, self.ttl)
        except LeaseHeld as held:
            wait = min(max(held.retry_after or 1.0, 0.2), self.ttl)
            log.info("lease held elsewhere; waiting", shard=self.shard, wait_s=round(wait, 1))
            await asyncio.sleep(wait)
            return
        except (DependencyUnavailable, Conflict) as e:
            # Conflict: the lock of a transaction whose process died (a SIGKILLed runner holds
            # the shard document until the store times it out) or a racing instance.
            log.info("lease not taken yet; retrying", shard=self.shard, why=e.message)
            await asyncio.sleep(1.0)
            return
        self.fence = Fence(self.shard, lease.token)
        self.store_unreachable_since = None
        log.info("lease won", shard=self.shard, fence=lease.token, holder=self.holder)
        await self.on_won(self.fence)

    async def _renew(self) -> None:
        assert self.fence is not None
        try:
            await self.io(self.leases.renew, self.shard, self.holder, self.fence.token, self.ttl)
            self.renewals += 1
            LEASE_RENEWALS.labels("ok").inc()
            self.store_unreachable_since = None
        except FencedOut:
            LEASE_RENEWALS.labels("fenced_out").inc()
            await self.lose("taken over by another instance")
        except (DependencyUnavailable, Conflict):
            LEASE_RENEWALS.labels("store_unreachable").inc()
            # Nobody else can take the lease without the store either: keep serving the
            # connected sessions (module docstring) and keep trying.
            if self.store_unreachable_since is None:
                self.store_unreachable_since = asyncio.get_running_loop().time()
                log.warning("lease renewal failed: store unreachable; serving on", shard=self.shard)

    async def lose(self, why: str) -> None:
        if self.fence is None:
            return
        self.fence = None
        log.warning("lease lost", shard=self.shard, why=why)
        await self.on_lost(why)

    async def release(self) -> None:
        if self.fence is None:
            return
        fence, self.fence = self.fence, None
        try:
            await self.io(self.leases.release, self.shard, self.holder, fence.token)
        except DependencyUnavailable:
            log.warning("could not release the lease; it will expire", shard=self.shard)
