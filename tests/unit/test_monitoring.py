"""The runtime measurements behind /health, /metrics and the runner's alerts: rolling latency
percentiles in constant memory, rolling counts, leak detection over RSS snapshots, and the
send latency stages."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from wagate.services.monitoring import (
    RECONNECTS,
    CallLatency,
    LatencyWindow,
    MemoryTrend,
    RollingCount,
    SendTimings,
    counter_total,
    reason_label,
)


class Ticker:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_percentiles_are_within_ten_percent_of_the_exact_ones() -> None:
    rng = random.Random(7)
    values = [rng.lognormvariate(-3.0, 1.0) for _ in range(20_000)]  # median ~50 ms, long tail
    window = LatencyWindow(window_s=300, clock=Ticker())
    for v in values:
        window.record(v)
    got = window.percentiles()
    exact = sorted(values)
    assert got.count == len(values)
    for q, estimate in ((0.50, got.p50), (0.95, got.p95), (0.99, got.p99)):
        truth = exact[int(q * len(exact)) - 1]
        assert estimate is not None and abs(estimate - truth) / truth < 0.10, (q, estimate, truth)
    assert got.max == max(values)


def test_the_window_forgets_calls_older_than_its_length() -> None:
    clock = Ticker()
    window = LatencyWindow(window_s=60, slices=6, clock=clock)
    for _ in range(100):
        window.record(2.0)  # a slow minute
    clock.now += 61
    for _ in range(10):
        window.record(0.01)
    now = window.percentiles()
    assert now.count == 10 and now.p99 is not None and now.p99 < 0.012
    clock.now += 61
    assert window.percentiles().count == 0


def test_latency_memory_does_not_grow_with_calls() -> None:
    clock = Ticker()
    window = LatencyWindow(window_s=60, slices=6, clock=clock)
    for i in range(50_000):
        clock.now += 0.01
        window.record(0.001 * (i % 100 + 1))
    assert len(window._bins) == 6 and all(len(b) == len(window._bins[0]) for b in window._bins)


def test_rolling_count_sums_the_window_only() -> None:
    clock = Ticker()
    count = RollingCount(window_s=300, slices=10, clock=clock)
    count.add(30)
    clock.now += 200
    count.add(25)
    assert count.total() == 55
    clock.now += 150  # the first 30 are now older than 5 minutes
    assert count.total() == 25


def test_call_latency_feeds_the_window_and_the_prometheus_histogram() -> None:
    clock = Ticker()
    latency = CallLatency(window_s=300, clock=clock)
    before = sample(
        "wagate_dependency_call_seconds_count",
        dependency="firestore",
        operation="get",
        outcome="unavailable",
    )
    for _ in range(200):
        latency.observe("firestore", "get", 0.8, True)
    latency.observe("firestore", "transaction", 0.004, True)
    latency.observe("firestore", "get", 5.0, False)
    snapshot = latency.snapshot()["firestore"]
    assert snapshot["all"]["count"] == 202  # type: ignore[index]
    assert snapshot["unavailable"] == 1
    operations = snapshot["operations"]
    assert isinstance(operations, dict) and set(operations) == {"get", "transaction"}
    p99 = latency.percentiles("firestore").p99
    assert p99 is not None and 0.72 < p99 < 5.0
    after = sample(
        "wagate_dependency_call_seconds_count",
        dependency="firestore",
        operation="get",
        outcome="unavailable",
    )
    assert after - before == 1


def test_sustained_growth_over_k_snapshots_is_a_leak() -> None:
    trend = MemoryTrend(successive=5, min_growth_bytes=10_000_000, min_growth_ratio=0.05)
    rss = 100_000_000
    for i in range(6):
        assert not trend.leaking
        trend.add(60.0 * i, rss)
        rss += 3_000_000
    assert trend.leaking
    per_hour = trend.growth_per_hour()
    assert per_hour is not None and per_hour == pytest.approx(15_000_000 / 300 * 3600)


def test_a_plateau_or_small_growth_is_not_a_leak() -> None:
    flat = MemoryTrend(successive=3, min_growth_bytes=1_000_000, min_growth_ratio=0.01)
    for i, rss in enumerate([100_000_000, 110_000_000, 110_000_000, 120_000_000]):
        flat.add(float(i), rss)
    assert not flat.leaking  # one snapshot did not grow
    small = MemoryTrend(successive=3, min_growth_bytes=1_000_000, min_growth_ratio=0.01)
    for i in range(4):
        small.add(float(i), 100_000_000 + i * 1000)
    assert not small.leaking  # grew every time, but by almost nothing


def test_send_timings_time_accept_to_sent_and_sent_to_delivered_once() -> None:
    timings = SendTimings(remember=10)
    accepted = datetime(2026, 1, 1, tzinfo=UTC)
    sent_at = accepted + timedelta(seconds=2)

    def count(stage: str) -> float:
        return sample("wagate_send_latency_seconds_count", stage=stage)

    def total(status: str) -> float:
        return sample("wagate_messages_total", status=status)

    before = {s: count(s) for s in ("accepted_to_sent", "sent_to_delivered")}
    before_totals = {s: total(s) for s in ("sent", "delivered", "read")}
    timings.sent("3EB0AAA", accepted, sent_at)
    timings.sent("3EB0BBB", accepted, sent_at)
    delivered = sent_at + timedelta(seconds=1)
    timings.receipt("delivered", ["3EB0AAA"], delivered)
    timings.receipt("delivered", ["3EB0AAA"], delivered)  # redelivered: not counted again
    timings.receipt("read", ["3EB0BBB"], delivered)  # overtook its delivery: implies it
    timings.receipt("delivered", ["3EB0UNKNOWN"], delivered)  # sent before this process
    assert count("accepted_to_sent") - before["accepted_to_sent"] == 2
    assert count("sent_to_delivered") - before["sent_to_delivered"] == 2
    assert total("sent") - before_totals["sent"] == 2
    assert total("delivered") - before_totals["delivered"] == 2
    assert total("read") - before_totals["read"] == 1


def test_send_timings_forget_the_oldest_sends_beyond_their_bound() -> None:
    timings = SendTimings(remember=3)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(5):
        timings.sent(f"3EB0{i}", None, at)
    assert list(timings._sent) == ["3EB02", "3EB03", "3EB04"]


def test_reason_labels_are_bounded_and_counter_totals_sum_every_label() -> None:
    assert reason_label(503) == "503" and reason_label(12345) == "other"
    before = counter_total(RECONNECTS)
    RECONNECTS.labels("503", "retry").inc(2)
    RECONNECTS.labels("other", "retry").inc()
    assert counter_total(RECONNECTS) - before == 3
