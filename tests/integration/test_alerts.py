"""Alerts with cooldowns and auto-resolve, on the memory store and the Firestore emulator."""

from __future__ import annotations

import pytest

from wagate.adapters.memory import FixedClock
from wagate.ports import Store
from wagate.services.alerts import Alerts

pytestmark = pytest.mark.integration


def test_an_alert_is_raised_once_per_cooldown_and_counted(store: Store) -> None:
    clock = FixedClock()
    alerts = Alerts(store, clock)
    first = alerts.raise_alert("session_failed", "ses_1", "banned", "critical")
    assert first is not None and first.count == 1
    assert alerts.raise_alert("session_failed", "ses_1", "banned again") is None  # cooldown
    clock.advance(301)
    again = alerts.raise_alert("session_failed", "ses_1", "still banned")
    assert again is not None and again.count == 2 and again.first_seen == first.first_seen
    assert [a.subject for a in alerts.open_alerts()] == ["ses_1"]


def test_noisy_kinds_have_longer_cooldowns(store: Store) -> None:
    clock = FixedClock()
    alerts = Alerts(store, clock)
    assert alerts.raise_alert("reconnect_storm", "shard-0", "x") is not None
    clock.advance(301)
    assert alerts.raise_alert("reconnect_storm", "shard-0", "x") is None
    clock.advance(30 * 60)
    assert alerts.raise_alert("reconnect_storm", "shard-0", "x") is not None


def test_resolving_closes_and_a_new_occurrence_reopens(store: Store) -> None:
    clock = FixedClock()
    alerts = Alerts(store, clock)
    alerts.raise_alert("lease_lost", "shard-1", "taken over")
    assert alerts.resolve("lease_lost", "shard-1") is True
    assert alerts.resolve("lease_lost", "shard-1") is False
    assert alerts.open_alerts() == []
    reopened = alerts.raise_alert("lease_lost", "shard-1", "taken over again")
    assert reopened is not None and reopened.count == 1 and reopened.resolved_at is None


def test_recovery_actions_are_journaled(store: Store) -> None:
    alerts = Alerts(store, FixedClock())
    action = alerts.record_recovery("reconnect", "after 3 attempts", "connected", session_id="s")
    assert action.id.startswith("rec_")
