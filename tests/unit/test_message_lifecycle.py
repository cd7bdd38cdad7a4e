"""The message aggregate (wagate.domain.messages): each lifecycle step alone, its new state and
the patch a blind writer would send, and StoredMessages running the steps on the memory store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.factories import text_message
from wagate.adapters.memory import MemoryStore
from wagate.contracts import MessageDoc, ShardLease
from wagate.domain import messages as lifecycle
from wagate.domain.messages import MessageState, MessageStatus, SendError
from wagate.errors import FencedOut, IllegalTransition
from wagate.ports import Fence, StoredMessages

S = MessageStatus
T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = T0 + timedelta(seconds=1)
T2 = T0 + timedelta(seconds=2)


def state(status: S, **fields: object) -> MessageState:
    return MessageState(status, updated_at=T0, **fields)  # type: ignore[arg-type]


def test_claim_counts_an_attempt_and_times_sending() -> None:
    change = lifecycle.claim(state(S.QUEUED, attempts=1), T1)
    assert change.state.status == S.SENDING
    assert change.state.attempts == 2
    assert change.patch == {
        "status": S.SENDING,
        "attempts": 2,
        "status_times.sending": T1,
        "updated_at": T1,
    }


@pytest.mark.parametrize("status", [S.SENT, S.DELIVERED, S.READ, S.DEAD])
def test_claim_refuses_a_message_whatsapp_has_or_that_is_dead(status: S) -> None:
    with pytest.raises(lifecycle.NotClaimable) as refused:
        lifecycle.claim(state(status), T1)
    assert refused.value.status == status


def test_record_sent_patches_only_status_and_the_ack_time() -> None:
    claimed = state(S.SENDING, attempts=1, status_times={"sending": T0})
    change = lifecycle.record_sent(claimed, T1, T2)
    assert change.state.status == S.SENT
    assert change.state.status_times == {"sending": T0, "sent": T1}
    assert change.patch == {"status": S.SENT, "status_times.sent": T1, "updated_at": T2}


def test_record_failure_keeps_the_error_and_stays_retryable() -> None:
    change = lifecycle.record_failure(state(S.SENDING, attempts=2), "E", "timeout", T1, dead=False)
    assert change.state.status == S.FAILED
    assert change.state.errors == (SendError(T1, "E", "timeout", 2),)
    assert change.state.dead_reason is None
    assert change.patch["errors"] == [{"at": T1, "code": "E", "message": "timeout", "attempt": 2}]


def test_record_failure_dead_names_the_reason_and_keeps_twenty_errors() -> None:
    old = tuple(SendError(T0, "E", str(i), i) for i in range(20))
    change = lifecycle.record_failure(state(S.SENDING, errors=old), "P", "no", T1, dead=True)
    assert change.state.status == S.DEAD
    assert change.state.dead_reason == "P: no"
    assert len(change.state.errors) == 20
    assert change.state.errors[-1].code == "P" and change.state.errors[0].message == "1"


@pytest.mark.parametrize("status", [S.SENT, S.DELIVERED, S.READ, S.DEAD])
def test_record_failure_after_whatsapp_has_it_or_dead_changes_nothing(status: S) -> None:
    change = lifecycle.record_failure(state(status), "E", "late", T1, dead=False)
    assert not change.changed and change.state == state(status)


def test_apply_receipt_moves_forward_at_whatsapps_time() -> None:
    change = lifecycle.apply_receipt(state(S.SENT), S.READ, T1, T2)
    assert change.patch == {"status": S.READ, "status_times.read": T1, "updated_at": T2}


def test_apply_receipt_never_moves_back() -> None:
    assert not lifecycle.apply_receipt(state(S.READ), S.DELIVERED, T1, T2).changed


def test_apply_receipt_overtaking_our_sent_write_counts() -> None:
    assert (
        lifecycle.apply_receipt(state(S.SENDING), S.DELIVERED, T1, T2).state.status == S.DELIVERED
    )


def test_requeue_a_dead_letter_under_a_fresh_task_generation() -> None:
    dead = state(S.DEAD, attempts=5, task_generation=1, dead_reason="E: x")
    change = lifecycle.requeue(dead, T1)
    assert change.state.status == S.QUEUED
    assert (change.state.attempts, change.state.task_generation) == (0, 2)
    assert change.state.dead_reason is None
    assert change.patch["status_times.queued"] == T1


def test_requeue_refuses_a_sent_message() -> None:
    with pytest.raises(IllegalTransition):
        lifecycle.requeue(state(S.SENT), T1)


def test_renew_task_changes_only_the_generation() -> None:
    change = lifecycle.renew_task(state(S.ACCEPTED, task_generation=3), T1)
    assert change.patch == {"task_generation": 4, "updated_at": T1}


def test_replay_of_an_unclaimed_send_adds_the_claim_it_skipped() -> None:
    change = lifecycle.replay_outcome(
        state(S.QUEUED, attempts=1), S.SENT, T2, T2, started_at=T1, claimed=False
    )
    assert change.state.status == S.SENT
    assert change.state.attempts == 2
    assert change.state.status_times == {"sending": T1, "sent": T2}


def test_replay_of_a_late_outcome_changes_nothing() -> None:
    for status in (S.READ, S.DEAD):
        kept = lifecycle.replay_outcome(
            state(status), S.FAILED, T1, T1, started_at=None, claimed=True, error=("E", "x")
        )
        assert not kept.changed


def test_replay_of_a_dead_outcome_keeps_error_and_reason() -> None:
    change = lifecycle.replay_outcome(
        state(S.SENDING, attempts=3),
        S.DEAD,
        T1,
        T2,
        started_at=None,
        claimed=True,
        error=("P", "no"),
    )
    assert change.state.dead_reason == "P: no"
    assert change.state.errors == (SendError(T1, "P", "no", 3),)


# ---------------------------------------------------------------- the port on a store


def message(store: MemoryStore, status: S = S.ACCEPTED) -> MessageDoc:
    doc = text_message(
        "msg_1",
        to="+15550001",
        wa_id="WA1",
        status=status,
        created_at=T0,
        updated_at=T0,
    )
    store.collection("messages", MessageDoc).put(doc)
    return doc


def test_stored_messages_writes_the_steps_state_and_keeps_the_rest() -> None:
    store = MemoryStore()
    first = message(store)
    updated = StoredMessages(store).update("msg_1", lambda s: lifecycle.claim(s, T1))
    stored = store.collection("messages", MessageDoc).get("msg_1")
    assert stored == updated
    assert stored is not None and stored.status == S.SENDING and stored.attempts == 1
    assert stored.content == first.content and stored.status_times == {"sending": T1}


def test_stored_messages_refuses_a_stale_fence() -> None:
    store = MemoryStore()
    message(store)
    store.collection("shards", ShardLease).put(ShardLease(id="0", holder="b", token=2))
    with pytest.raises(FencedOut):
        StoredMessages(store).update("msg_1", lambda s: lifecycle.claim(s, T1), fence=Fence(0, 1))


def test_stored_messages_update_many_reports_each_steps_refusal() -> None:
    store = MemoryStore()
    message(store, S.SENT)
    results = StoredMessages(store).update_many(
        {"msg_1": lambda s: lifecycle.claim(s, T1), "msg_2": lambda s: lifecycle.claim(s, T1)}
    )
    assert isinstance(results["msg_1"], lifecycle.NotClaimable)
    assert type(results["msg_2"]).__name__ == "NotFound"
