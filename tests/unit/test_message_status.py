import itertools

import pytest

from wagate.domain.messages import (
    ALLOWED,
    MessageStatus,
    advance_by_receipt,
    can_transition,
    transition,
)
from wagate.errors import IllegalTransition

S = MessageStatus


def test_the_happy_path_is_legal() -> None:
    path = [S.ACCEPTED, S.QUEUED, S.SENDING, S.SENT, S.DELIVERED, S.READ]
    for current, target in itertools.pairwise(path):
        assert transition(current, target) == target


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.SENT, S.SENDING),  # never resend what WhatsApp acked
        (S.READ, S.DELIVERED),
        (S.DELIVERED, S.SENT),
        (S.DEAD, S.SENT),
        (S.ACCEPTED, S.SENT),
        (S.READ, S.DEAD),
    ],
)
def test_illegal_transitions_are_refused(current: S, target: S) -> None:
    with pytest.raises(IllegalTransition) as raised:
        transition(current, target)
    assert raised.value.field == "status"


def test_read_is_terminal_and_dead_only_goes_back_to_queued() -> None:
    assert not any(can_transition(S.READ, t) for t in S)
    assert [t for t in S if can_transition(S.DEAD, t)] == [S.QUEUED]


def test_every_status_has_a_row() -> None:
    assert set(ALLOWED) == set(S)


def test_receipts_only_move_forward() -> None:
    assert advance_by_receipt(S.SENT, S.DELIVERED) == S.DELIVERED
    assert advance_by_receipt(S.READ, S.DELIVERED) == S.READ
    assert advance_by_receipt(S.DELIVERED, S.READ) == S.READ
    # A receipt that overtakes our own 'sent' write proves WhatsApp has the message.
    assert advance_by_receipt(S.SENDING, S.DELIVERED) == S.DELIVERED
    assert advance_by_receipt(S.DEAD, S.READ) == S.DEAD
