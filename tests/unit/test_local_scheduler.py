"""The local Cloud Scheduler stand-in's job specs."""

from __future__ import annotations

from devstack.scheduler import parse_job


def test_a_job_without_a_period_runs_at_the_default_period() -> None:
    assert parse_job("/sweep", 60.0) == ("/sweep", 60.0)


def test_a_job_may_carry_its_own_period() -> None:
    assert parse_job("/maintenance@3600", 60.0) == ("/maintenance", 3600.0)
