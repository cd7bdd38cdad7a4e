"""Quota leasing (wagate.services.ratelimit) on the memory store: never more than the limit,
however many instances share it, and few store round trips."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any

import pytest

from wagate.adapters.memory import FixedClock, MemoryStore
from wagate.contracts import TenantLimits
from wagate.services.ratelimit import (
    QR_FETCHES,
    SENDS,
    SESSION_CREATES,
    RateLimiter,
    RateLimitShard,
    shard_quotas,
)

DEFAULTS = TenantLimits()


class CountingStore:
    """A MemoryStore that counts reservation transactions (the limiter's only round trips)."""

    def __init__(self) -> None:
        self.inner = MemoryStore()
        self.upserts = 0

    def collection(self, name: str, model: type[Any]) -> Any:
        repo = self.inner.collection(name, model)
        outer = self

        class Counted:
            def __getattr__(self, attr: str) -> Any:
                return getattr(repo, attr)

            def upsert(self, doc_id: str, fn: Callable[[Any], Any], **kw: Any) -> Any:
                outer.upserts += 1
                return repo.upsert(doc_id, fn, **kw)

        return Counted()


def admitted(limiter: RateLimiter, n: int, tenant: str = "ten_a", **kw: Any) -> int:
    rule = kw.pop("rule", SENDS)
    limits = kw.pop("limits", DEFAULTS)
    return sum(limiter.take(tenant, rule, limits).allowed for _ in range(n))


def test_a_window_admits_exactly_the_limit_then_refuses_until_it_ends() -> None:
    clock = FixedClock()
    clock.advance(15)  # 15 s into a minute
    limiter = RateLimiter(MemoryStore(), clock)
    assert admitted(limiter, 60) == 60
    refused = limiter.take("ten_a", SENDS, DEFAULTS)
    assert not refused.allowed
    assert (refused.limit, refused.remaining) == (60, 0)
    assert refused.reset_s == pytest.approx(45)
    clock.advance(45)
    fresh = limiter.take("ten_a", SENDS, DEFAULTS)
    assert fresh.allowed and fresh.remaining == 59


def test_the_default_limits_of_each_route() -> None:
    limiter = RateLimiter(MemoryStore(), FixedClock())
    assert admitted(limiter, 100, rule=SESSION_CREATES) == 10
    assert admitted(limiter, 100, rule=QR_FETCHES) == 5
    assert admitted(limiter, 100, rule=SENDS) == 60  # routes do not share a quota
    assert admitted(limiter, 100, tenant="ten_b") == 60  # nor do tenants


def test_a_qr_window_lasts_five_minutes() -> None:
    clock = FixedClock()
    limiter = RateLimiter(MemoryStore(), clock)
    assert admitted(limiter, 10, rule=QR_FETCHES) == 5
    clock.advance(299)
    assert admitted(limiter, 10, rule=QR_FETCHES) == 0
    clock.advance(1)
    assert admitted(limiter, 10, rule=QR_FETCHES) == 5


def test_a_tenant_override_sets_the_limit() -> None:
    limiter = RateLimiter(MemoryStore(), FixedClock())
    generous = TenantLimits(sends_per_minute=500)
    assert admitted(limiter, 600, limits=generous) == 500
    assert limiter.take("ten_a", SENDS, generous).limit == 500


@pytest.mark.parametrize("limit", [1, 7, 60, 333, 5000])
def test_many_instances_sharing_the_store_never_admit_more_than_the_limit(limit: int) -> None:
    store, clock, rng = MemoryStore(), FixedClock(), random.Random(limit)
    instances = [RateLimiter(store, clock, random.Random(i)) for i in range(8)]
    limits = TenantLimits(sends_per_minute=limit)
    allowed = 0
    for _ in range(limit * 3):  # requests land on instances at random, as a load balancer would
        clock.advance(0.01 / max(1, limit // 100))
        allowed += rng.choice(instances).take("ten_a", SENDS, limits).allowed
    # Every instance kept receiving requests, so it spent every token it had reserved.
    assert allowed == limit
    shards = store.collection("rate_limits", RateLimitShard).query()
    assert sum(s.reserved for s in shards) == limit


def test_an_instance_that_goes_quiet_strands_its_block_but_never_causes_excess() -> None:
    store, clock = MemoryStore(), FixedClock()
    busy, quiet = RateLimiter(store, clock), RateLimiter(store, clock)
    limits = TenantLimits(sends_per_minute=100)
    for _ in range(5):
        clock.advance(0.1)
        assert quiet.take("ten_a", SENDS, limits).allowed
    total = 5 + admitted(busy, 200, limits=limits)
    assert 80 <= total <= 100


def test_threads_of_one_instance_share_its_blocks() -> None:
    limiter = RateLimiter(MemoryStore(), FixedClock())
    results: list[bool] = []
    lock = threading.Lock()

    def hammer() -> None:
        for _ in range(30):
            allowed = limiter.take("ten_a", SENDS, DEFAULTS).allowed
            with lock:
                results.append(allowed)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(results) == 60 and len(results) == 240


def test_steady_traffic_costs_few_round_trips_and_refusals_cost_none() -> None:
    store, clock = CountingStore(), FixedClock()
    limiter = RateLimiter(store, clock)  # type: ignore[arg-type]
    limits = TenantLimits(sends_per_minute=100_000)
    for _ in range(6000):  # 100 requests/s for a minute
        clock.advance(0.01)
        assert limiter.take("ten_a", SENDS, limits).allowed
    assert store.upserts < 6000 * 0.02
    small = CountingStore()
    limiter = RateLimiter(small, FixedClock())  # type: ignore[arg-type]
    assert admitted(limiter, 60) == 60
    before = small.upserts
    assert admitted(limiter, 500) == 0
    assert small.upserts == before  # the window is known to be spent: no round trip


def test_a_large_limit_spreads_over_shard_documents() -> None:
    assert shard_quotas(60) == [60]
    assert shard_quotas(5) == [5]
    quotas = shard_quotas(100_000)
    assert len(quotas) == 16 and sum(quotas) == 100_000
    assert (
        sum(shard_quotas(1234)) == 1234 and max(shard_quotas(1234)) - min(shard_quotas(1234)) <= 1
    )


def test_window_documents_carry_an_expiry_after_their_window() -> None:
    store, clock = MemoryStore(), FixedClock()
    RateLimiter(store, clock).take("ten_a", SENDS, DEFAULTS)
    (doc,) = store.collection("rate_limits", RateLimitShard).query()
    assert doc.id == f"ten_a:sends:{int(clock.now().timestamp())}:0"
    assert doc.expire_at > doc.window_start
    assert doc.reserved >= 1


def test_lowering_the_limit_caps_the_current_window_at_once() -> None:
    limiter = RateLimiter(MemoryStore(), FixedClock())
    assert admitted(limiter, 10) == 10
    lower = TenantLimits(sends_per_minute=12)
    # The new limit holds for the window in all, counting what the old one admitted.
    assert 10 + admitted(limiter, 50, limits=lower) == 12
