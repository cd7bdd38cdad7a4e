import pytest

from wagate.domain.backoff import Backoff
from wagate.domain.sessions import (
    DisconnectReason,
    ReconnectPolicy,
    SessionState,
    policy_for,
    session_transition,
)
from wagate.errors import IllegalTransition


@pytest.mark.parametrize(
    ("code", "policy"),
    [
        (401, ReconnectPolicy.LOGGED_OUT),
        (403, ReconnectPolicy.BANNED),
        (408, ReconnectPolicy.RETRY),
        (411, ReconnectPolicy.LOGGED_OUT),
        (428, ReconnectPolicy.RETRY),
        (440, ReconnectPolicy.REPLACED),
        (500, ReconnectPolicy.RETRY),
        (503, ReconnectPolicy.RETRY),
        (515, ReconnectPolicy.RETRY_NOW),
        (999, ReconnectPolicy.RETRY),
    ],
)
def test_each_reason_code_has_its_policy(code: int, policy: ReconnectPolicy) -> None:
    assert policy_for(code) == policy


def test_every_named_reason_is_classified() -> None:
    for reason in DisconnectReason:
        assert isinstance(policy_for(reason.value), ReconnectPolicy)


def test_backoff_is_full_jitter_below_an_exponential_ceiling() -> None:
    backoff = Backoff(base=2.0, cap=300.0)
    assert [backoff.ceiling(n) for n in range(10)] == [
        2,
        4,
        8,
        16,
        32,
        64,
        128,
        256,
        300,
        300,
    ]
    assert backoff.delay(3, rand=lambda lo, hi: hi) == 16
    assert backoff.delay(3, rand=lambda lo, hi: lo) == 0
    assert backoff.ceiling(10_000) == 300  # no overflow on long outages


def test_stopped_sessions_restart_only_on_request() -> None:
    assert session_transition(SessionState.STOPPED, SessionState.CONNECTING)
    with pytest.raises(IllegalTransition):
        session_transition(SessionState.STOPPED, SessionState.RECONNECTING)
