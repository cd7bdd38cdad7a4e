"""Shard leases with a monotonic fencing token, built on Repository.swap (a compare-and-set
that locks nothing, so a runner that dies while renewing leaves the lease to its successor).

A runner may hold its shard's sockets only while it holds the lease. Taking over a free or
expired lease increments the token; every state write by the runner carries the token as a
`Fence`, so a runner that lost its lease (paused, partitioned) can no longer write.
"""

from __future__ import annotations

from datetime import timedelta

from wagate.contracts import ShardLease
from wagate.errors import FencedOut, LeaseHeld
from wagate.ports import Clock, Repository


class Leases:
    """Implements ports.ShardLeases on any Repository of ShardLease documents."""

    def __init__(self, shards: Repository[ShardLease], clock: Clock) -> None:
        self._shards = shards
        self._clock = clock

    def acquire(self, shard: int, holder: str, ttl: float) -> ShardLease:
        now = self._clock.now()

        def take(current: ShardLease | None) -> ShardLease:
            lease = current or ShardLease(id=str(shard))
            free = lease.holder is None or lease.expires_at is None or lease.expires_at <= now
            if not free and lease.holder != holder:
                assert lease.expires_at is not None
                remaining = (lease.expires_at - now).total_seconds()
                raise LeaseHeld(
                    f"shard {shard} is held by {lease.holder} for {remaining:.1f}s more",
                    retry_after=remaining,
                )
            token = lease.token if lease.holder == holder and not free else lease.token + 1
            return lease.model_copy(
                update={
                    "holder": holder,
                    "token": token,
                    "expires_at": now + timedelta(seconds=ttl),
                    "heartbeat_at": now,
                }
            )

        return self._shards.swap(str(shard), take)

    def renew(self, shard: int, holder: str, token: int, ttl: float) -> ShardLease:
        now = self._clock.now()

        def extend(current: ShardLease | None) -> ShardLease:
            if current is None or current.holder != holder or current.token != token:
                raise FencedOut(f"shard {shard}: lease with token {token} was taken over")
            return current.model_copy(
                update={"expires_at": now + timedelta(seconds=ttl), "heartbeat_at": now}
            )

        return self._shards.swap(str(shard), extend)

    def release(self, shard: int, holder: str, token: int) -> None:
        now = self._clock.now()

        def give_up(current: ShardLease | None) -> ShardLease:
            if current is None or current.holder != holder or current.token != token:
                raise FencedOut(f"shard {shard}: lease with token {token} is not ours")
            return current.model_copy(update={"holder": None, "expires_at": now})

        try:
            self._shards.swap(str(shard), give_up)
        except FencedOut:
            return  # someone else holds it now: nothing of ours to release

    def current(self, shard: int) -> ShardLease | None:
        return self._shards.get(str(shard))
