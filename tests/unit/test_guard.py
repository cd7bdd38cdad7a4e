"""The dependency guard: which failures open the breaker, failing fast while open, the trial
call after the reset timeout, and the timing of every call."""

from __future__ import annotations

import time

import pytest

from wagate.adapters.guard import DependencyGuard
from wagate.errors import Conflict, DependencyUnavailable, FencedOut, NotFound, StaleGeneration


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, float, bool]] = []

    def observe(self, dependency: str, operation: str, seconds: float, ok: bool) -> None:
        self.calls.append((dependency, operation, seconds, ok))


def fail(guard: DependencyGuard, error: Exception) -> None:
    with pytest.raises(type(error)), guard.call("get"):
        raise error


def test_repeated_outages_open_the_breaker_and_calls_then_fail_fast() -> None:
    guard = DependencyGuard("firestore", fail_max=3, reset_timeout_s=60)
    for _ in range(3):
        fail(guard, DependencyUnavailable("down"))
    assert guard.state == "open"
    reached = []
    with pytest.raises(DependencyUnavailable) as raised, guard.call("get"):
        reached.append(True)  # pragma: no cover (the vendor must not be called)
    assert reached == []
    assert "circuit open" in raised.value.message
    assert raised.value.retry_after is not None and 50 < raised.value.retry_after <= 60


def test_answers_are_not_outages_and_reset_the_count() -> None:
    guard = DependencyGuard("firestore", fail_max=2, reset_timeout_s=60)
    for answer in (NotFound("x"), Conflict("x"), StaleGeneration("x"), FencedOut("x")):
        fail(guard, DependencyUnavailable("down"))
        fail(guard, answer)  # an answer between two outages: they are not "in a row"
    assert guard.state == "closed"
    fail(guard, DependencyUnavailable("down"))
    fail(guard, DependencyUnavailable("down"))
    assert guard.state == "open"


def test_a_successful_trial_after_the_reset_timeout_closes_the_breaker() -> None:
    guard = DependencyGuard("tasks", fail_max=1, reset_timeout_s=0.2)
    fail(guard, DependencyUnavailable("down"))
    assert guard.state == "open"
    time.sleep(0.3)
    assert guard.state == "half_open" and guard.retry_after() == 0
    with guard.call("create_task"):
        pass
    assert guard.state == "closed"


def test_a_failed_trial_opens_the_breaker_again() -> None:
    guard = DependencyGuard("tasks", fail_max=1, reset_timeout_s=0.2)
    fail(guard, DependencyUnavailable("down"))
    time.sleep(0.3)
    fail(guard, DependencyUnavailable("still down"))  # the trial reached the vendor
    assert guard.state == "open"
    with pytest.raises(DependencyUnavailable, match="circuit open"), guard.call("create_task"):
        pass  # pragma: no cover


def test_every_vendor_call_is_timed_and_rejected_calls_are_not() -> None:
    recorder = Recorder()
    guard = DependencyGuard("storage", observer=recorder, fail_max=1, reset_timeout_s=60)
    with guard.call("get"):
        time.sleep(0.01)
    fail(guard, NotFound("no such object"))
    fail(guard, DependencyUnavailable("down"))
    with pytest.raises(DependencyUnavailable), guard.call("put"):
        pass  # pragma: no cover
    assert [(d, o, ok) for d, o, _, ok in recorder.calls] == [
        ("storage", "get", True),
        ("storage", "get", True),
        ("storage", "get", False),
    ]
    assert recorder.calls[0][2] >= 0.01


def test_other_exceptions_pass_through_unchanged() -> None:
    guard = DependencyGuard("firestore", fail_max=1)
    with pytest.raises(KeyError), guard.call("transaction"):
        raise KeyError("a bug in the update function")
    assert guard.state == "closed"
