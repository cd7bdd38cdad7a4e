"""The emulator's pure rules, alone: Cloud Tasks' backoff schedule and give-up rule, the token
bucket, the spent-name memory, and the protobuf-JSON scalars."""

from __future__ import annotations

import pytest

from emulators.cloud_tasks import protojson
from emulators.cloud_tasks.config import RetryConfig
from emulators.cloud_tasks.names import SpentNames
from emulators.cloud_tasks.ratelimit import TokenBucket


def test_backoff_doubles_then_grows_linearly_then_caps_as_documented() -> None:
    # The RetryConfig.max_doublings example from the Cloud Tasks reference.
    retry = RetryConfig(min_backoff_s=10, max_backoff_s=300, max_doublings=3)

    delays = [retry.delay_after(n) for n in range(1, 9)]

    assert delays == [10, 20, 40, 80, 160, 240, 300, 300]


def test_zero_doublings_means_linear_growth() -> None:
    retry = RetryConfig(min_backoff_s=1, max_backoff_s=100, max_doublings=0)

    assert [retry.delay_after(n) for n in range(1, 5)] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("max_attempts", "max_duration", "attempts", "elapsed", "gives_up"),
    [
        (3, 0, 2, 999, False),  # attempts left, duration unlimited
        (3, 0, 3, 0, True),  # attempts spent
        (-1, 0, 10_000, 10**6, False),  # both unlimited: retry for ever
        (-1, 60, 10_000, 59, False),  # attempts unlimited, time left
        (-1, 60, 2, 60, True),  # attempts unlimited, time spent
        (3, 60, 5, 30, False),  # both set: both must be spent
        (3, 60, 3, 60, True),
    ],
)
def test_gives_up_only_when_both_limits_are_reached(
    max_attempts: int, max_duration: float, attempts: int, elapsed: float, gives_up: bool
) -> None:
    retry = RetryConfig(max_attempts=max_attempts, max_retry_duration_s=max_duration)

    assert retry.gives_up(attempts, elapsed) is gives_up


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=10, capacity=3, now=0.0)

    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.1)
    assert bucket.take(0.1) == 0.0
    assert bucket.take(10.0) == 0.0  # refills, but never beyond the burst
    assert [bucket.take(10.0) for _ in range(3)][-1] == pytest.approx(0.1)


def test_spent_names_expire_after_retention_and_stay_bounded() -> None:
    spent = SpentNames(retention_s=10, capacity=3)
    for i in range(3):
        spent.remember(f"t{i}", now=float(i))

    assert spent.recently_used("t0", now=9.0)
    assert not spent.recently_used("t0", now=10.0)

    spent.remember("t3", now=3.0)  # over capacity: the oldest goes early
    assert len(spent) == 3
    assert not spent.recently_used("t0", now=3.0)
    assert spent.recently_used("t3", now=12.9)


def test_durations_and_timestamps_round_trip() -> None:
    assert protojson.format_duration(0.1) == "0.100s"
    assert protojson.format_duration(3600) == "3600s"
    assert protojson.format_duration(1.000001) == "1.000001s"
    assert protojson.parse_duration("0.200s", "d") == pytest.approx(0.2)
    stamp = protojson.parse_timestamp("2030-01-02T03:04:05.123456789Z", "t")
    assert protojson.format_timestamp(stamp) == "2030-01-02T03:04:05.123457Z"
    assert protojson.parse_timestamp("2030-01-02T04:04:05+01:00", "t") == pytest.approx(
        stamp - 0.123456789
    )
