"""The runner's lease loop (runner/lease.py) must never die: a store error it did not expect
would otherwise leave the runner up but serving nothing. The chaos test found one: a runner
SIGKILLed inside its lease transaction leaves the shard document locked until the store times
the transaction out, and the next runner's acquire then fails with a conflict."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from runner.io import Offload
from runner.lease import LeaseKeeper
from wagate.contracts import ShardLease
from wagate.errors import Conflict
from wagate.ports import Fence


class FlakyLeases:
    """Acquire fails with the given errors first, then grants token 3."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def acquire(self, shard: int, holder: str, ttl: float) -> ShardLease:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return ShardLease(id=str(shard), holder=holder, token=3, expires_at=datetime.now(UTC))

    def renew(self, shard: int, holder: str, token: int, ttl: float) -> ShardLease:
        return self.acquire(shard, holder, ttl)

    def release(self, shard: int, holder: str, token: int) -> None:
        return None

    def current(self, shard: int) -> ShardLease | None:
        return None


def keep(leases: FlakyLeases) -> list[Fence]:
    won: list[Fence] = []

    async def on_won(fence: Fence) -> None:
        won.append(fence)

    async def on_lost(why: str) -> None:
        return None

    async def scenario() -> None:
        io = Offload(2)
        keeper = LeaseKeeper(
            leases, io, 0, "me", ttl=5, renew_every=60, on_won=on_won, on_lost=on_lost
        )
        loop = asyncio.create_task(keeper.run())
        for _ in range(100):
            if won:
                break
            await asyncio.sleep(0.05)
        loop.cancel()
        io.shutdown()

    asyncio.run(scenario())
    return won


def test_a_conflict_while_acquiring_is_retried() -> None:
    leases = FlakyLeases(Conflict("shard document locked"))
    assert keep(leases) == [Fence(0, 3)]
    assert leases.calls == 2


def test_an_unexpected_error_does_not_end_the_lease_loop() -> None:
    leases = FlakyLeases(RuntimeError("a bug somewhere below"))
    assert keep(leases) == [Fence(0, 3)]
