"""SendHandler's steps one at a time (runner/sending.py: admit, wait_for_chat_order, pace,
claim, deliver, record_sent) and the one result → HTTP table (runner/send_results.py), on
the in-memory store with an outage switch (tests/unit/test_journal.py World)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

import runner.sending as sending
from runner.parking import TaskRef
from runner.send_results import HTTP, SendOutcome, SendResult
from runner.sending import SendHandler
from tests.unit.test_journal import World
from tests.unit.test_journal_sending import Phone, handler, task
from tests.unit.test_journal_sending import world as world  # the fixture: a minute after T0
from wagate.contracts import MessageDoc, TenantDoc, TenantLimits
from wagate.domain import events as ev
from wagate.domain.messages import MessageStatus as S
from wagate.domain.sessions import SessionState
from wagate.errors import PermanentSendError, TransientSendError
from wagate.ports import Fence

Out = SendOutcome
REF = TaskRef("send-0-normal", "t1")


def run(coro: Any) -> Any:
    return asyncio.run(coro)


class Failing(Phone):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    async def send(self, wa_id: str, to: str, kind: str, content: dict[str, Any]) -> ev.MessageAck:
        raise self.error


# ---------------------------------------------------------------- the HTTP table


def test_every_outcome_has_one_http_answer() -> None:
    assert set(HTTP) == set(SendOutcome)
    assert {o for o, (code, _) in HTTP.items() if code == 200} == {
        Out.UNKNOWN_MESSAGE,
        Out.DEDUPLICATED,
        Out.DEAD,
        Out.SENT,
        Out.SENT_JOURNALED,
    }
    assert HTTP[Out.PACED][0] == 429


def test_a_results_body_and_retry_after_come_from_the_table() -> None:
    sent = SendResult(Out.SENT, wa_id="W1")
    assert (sent.status, sent.body, sent.retry_after) == (
        200,
        {"status": "sent", "wa_id": "W1"},
        None,
    )
    done = SendResult(Out.DEDUPLICATED, message_status=S.READ)
    assert done.body == {"status": "read", "deduplicated": True}
    paced = SendResult(Out.PACED, "session pacing", wait_s=0.4)
    assert (paced.status, paced.retry_after, paced.body) == (429, 0.4, {"reason": "session pacing"})
    assert SendResult(Out.SESSION_ELSEWHERE, "x").retry_after == 10


# ---------------------------------------------------------------- admit


def test_admit_refuses_while_draining_or_without_the_lease(world: World) -> None:
    sender, t = handler(world), task(world, "msg_1", "hi")
    assert sender.admit(t, cast(Any, Phone()), draining=True, ref=None) == SendResult(
        Out.NOT_SERVING, "not serving this shard now"
    )
    world.ctx.fence = None
    refused = sender.admit(t, cast(Any, Phone()), draining=False, ref=None)
    assert refused is not None and refused.outcome == Out.NOT_SERVING


def test_admit_refuses_a_session_elsewhere_or_down_and_parks_the_task(world: World) -> None:
    sender, t = handler(world), task(world, "msg_1", "hi")
    assert sender.admit(t, None, draining=False, ref=REF) == SendResult(
        Out.SESSION_ELSEWHERE, "session not on this runner"
    )
    down = Phone()
    down.connected, down.state = False, SessionState.RECONNECTING
    down.session_id = "ses_1"  # type: ignore[attr-defined]

    async def scenario() -> None:
        down.wait_connected = lambda s: asyncio.sleep(0, False)  # type: ignore[attr-defined]
        result = sender.admit(t, cast(Any, down), draining=False, ref=REF)
        assert result == SendResult(Out.SESSION_DOWN, "session is reconnecting")
        assert len(sender.parking) == 1
        await sender.close()

    run(scenario())


def test_admit_lets_a_connected_session_through(world: World) -> None:
    sender = handler(world)
    assert (
        sender.admit(task(world, "msg_1", "hi"), cast(Any, Phone()), draining=False, ref=None)
        is None
    )


# ---------------------------------------------------------------- wait for chat order


def test_chat_order_lets_the_oldest_go_and_holds_a_younger_one(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sending, "ORDER_WAIT_S", 0.1)
    sender = handler(world)
    first, second = task(world, "msg_1", "a"), task(world, "msg_2", "b", offset_s=1)

    async def scenario() -> None:
        assert await sender.wait_for_chat_order(first, REF) is None
        held = await sender.wait_for_chat_order(second, REF)
        assert held is not None and held.outcome == Out.EARLIER_PENDING and held.status == 503
        assert len(sender.parking) == 1
        await sender.close()

    run(scenario())


# ---------------------------------------------------------------- pace


def test_pace_answers_429_with_the_wait_once_the_burst_is_spent(world: World) -> None:
    world.memory.collection("tenants", TenantDoc).put(
        TenantDoc(id="ten_1", name="acme", limits=TenantLimits(pacing_per_second=1, pacing_burst=1))
    )
    sender, t = handler(world), task(world, "msg_1", "hi")

    async def scenario() -> None:
        assert await sender.pace(t, "ten_1", None) is None
        paced = await sender.pace(t, "ten_1", None)
        assert paced is not None and paced.outcome == Out.PACED
        assert paced.retry_after is not None and 0 < paced.retry_after <= 1

    run(scenario())


# ---------------------------------------------------------------- claim


def test_claim_takes_the_message_in_the_store(world: World) -> None:
    sender, t = handler(world), task(world, "msg_1", "hi")
    doc, claimed = run(sender.claim(t, Fence(0, 7)))
    assert claimed and doc.status == S.SENDING and doc.attempts == 1
    assert world.stored("msg_1").status == S.SENDING


def test_claim_of_a_sent_message_is_deduplicated(world: World) -> None:
    sender, t = handler(world), task(world, "msg_1", "hi")
    world.put_message(world.stored("msg_1").model_copy(update={"status": S.SENT}))
    result = run(sender.claim(t, Fence(0, 7)))
    assert result == SendResult(Out.DEDUPLICATED, message_status=S.SENT)


def test_claim_of_a_missing_message_waits_while_young_then_drops_it(world: World) -> None:
    sender, t = handler(world), task(world, "msg_1", "hi")
    world.memory.collection("messages", MessageDoc).delete("msg_1")
    assert run(sender.claim(t, Fence(0, 7))).outcome == Out.NOT_WRITTEN_YET
    world.clock.advance(sending.UNWRITTEN_GRACE_S)
    assert run(sender.claim(t, Fence(0, 7))).outcome == Out.UNKNOWN_MESSAGE


def test_claim_during_an_outage_takes_the_tasks_snapshot_unclaimed(world: World) -> None:
    sender, t = handler(world), task(world, "msg_1", "hi")
    world.outage.down = True
    doc, claimed = run(sender.claim(t, Fence(0, 7)))
    assert not claimed and doc.status == S.SENDING and doc.attempts == 1
    without = task(world, "msg_2", "x", snapshot=False)
    assert run(sender.claim(without, Fence(0, 7))).outcome == Out.STORE_UNAVAILABLE


# ---------------------------------------------------------------- deliver and record


def claimed(world: World, sender: SendHandler) -> MessageDoc:
    doc, _ = run(sender.claim(task(world, "msg_1", "hi"), Fence(0, 7)))
    return cast(MessageDoc, doc)


def test_deliver_records_sent_after_the_ack(world: World) -> None:
    sender, phone = handler(world), Phone()
    doc = claimed(world, sender)
    result = run(sender.deliver(doc, cast(Any, phone), Fence(0, 7), claimed=True))
    assert result == SendResult(Out.SENT, wa_id=doc.wa_id)
    assert world.stored("msg_1").status == S.SENT and phone.sent == [(doc.to, "hi")]


def test_deliver_buries_a_permanent_error(world: World) -> None:
    sender = handler(world)
    doc = claimed(world, sender)
    phone = Failing(PermanentSendError("not on WhatsApp"))
    result = run(sender.deliver(doc, cast(Any, phone), Fence(0, 7), claimed=True))
    assert result.outcome == Out.DEAD and result.status == 200
    assert world.stored("msg_1").status == S.DEAD


def test_deliver_retries_a_transient_error_until_the_last_attempt(world: World) -> None:
    sender = handler(world)
    doc = claimed(world, sender)
    phone = Failing(TransientSendError("timeout", retry_after=3))
    result = run(sender.deliver(doc, cast(Any, phone), Fence(0, 7), claimed=True))
    assert (result.outcome, result.retry_after) == (Out.FAILED, 3)
    assert world.stored("msg_1").status == S.FAILED
    last = doc.model_copy(update={"attempts": world.ctx.settings.max_send_attempts})
    assert (
        run(sender.deliver(last, cast(Any, phone), Fence(0, 7), claimed=True)).outcome == Out.DEAD
    )


def test_record_sent_goes_to_the_journal_while_the_store_is_away(world: World) -> None:
    sender = handler(world)
    doc = claimed(world, sender)
    world.outage.down = True
    at = world.clock.now()
    result = run(sender.record_sent(doc, at, at, claimed=True))
    assert result == SendResult(Out.SENT_JOURNALED, wa_id=doc.wa_id)
    world.outage.down = False
    assert world.stored("msg_1").status == S.SENDING  # until the replay
