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


def test_stopped_sessions_connect_again_only_through_connecting_or_pairing() -> None:
    assert session_transition(SessionState.STOPPED, SessionState.CONNECTING)
    with pytest.raises(IllegalTransition):
        session_transition(SessionState.STOPPED, SessionState.CONNECTED)


St = SessionState


@pytest.mark.parametrize(
    ("current", "target"),
    [
        # A (re)connect starts in connecting (credentials) or pairing (none) from any state.
        *[(state, St.CONNECTING) for state in St],
        *[(state, St.PAIRING) for state in St],
        # A restore that fails before the connect retries from the state the session started in.
        *[(state, St.RECONNECTING) for state in St if state is not St.RECONNECTING],
        (St.RECONNECTING, St.RECONNECTING),
        # What a live connection can end in, from each state a connection is live in.
        *[
            (live, end)
            for live in (St.PAIRING, St.CONNECTING, St.CONNECTED)
            for end in (St.RECONNECTING, St.LOGGED_OUT, St.FAILED)
        ],
        (St.PAIRING, St.CONNECTED),
        (St.CONNECTING, St.CONNECTED),
        (St.CONNECTED, St.CONNECTED),
        # A user stop (runner/shard.py) from anywhere.
        *[(state, St.STOPPED) for state in St],
    ],
)
def test_every_transition_the_runner_makes_is_allowed(current: St, target: St) -> None:
    assert session_transition(current, target) is target


@pytest.mark.parametrize(
    ("current", "target"),
    [
        *[(state, St.CREATED) for state in St],  # nothing goes back to created
        (St.STOPPED, St.CONNECTED),
        (St.LOGGED_OUT, St.CONNECTED),
        (St.FAILED, St.CONNECTED),
        (St.CREATED, St.CONNECTED),
        (St.STOPPED, St.LOGGED_OUT),
        (St.STOPPED, St.FAILED),
        (St.LOGGED_OUT, St.FAILED),
        (St.FAILED, St.LOGGED_OUT),
    ],
)
def test_a_transition_outside_the_table_is_refused(current: St, target: St) -> None:
    with pytest.raises(IllegalTransition):
        session_transition(current, target)
