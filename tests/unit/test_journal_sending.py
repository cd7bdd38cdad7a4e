"""The send path while the store is unreachable (runner/sending.py, docs/outage.md), on the
in-memory store with an outage switch: a task with a snapshot is sent and its outcome
journaled before the 200, a redelivery is not sent again, a task without one waits for the
store, and per-chat order holds among the messages the runner knows of."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest

import runner.sending as sending
from runner.group_commit import GroupClaim, GroupCommit
from runner.order_gate import OrderGate, SendKey
from runner.pacing import Pacer
from runner.sending import SendHandler
from runner.sent_index import SentIndex
from tests.unit.test_journal import T0, World
from wagate.contracts import (
    TASK_SETTLED_AFTER_S,
    MessageDoc,
    PendingSend,
    SendSnapshot,
    SendTask,
    TenantDoc,
    TenantLimits,
    TextContent,
)
from wagate.domain import events as ev
from wagate.domain.ids import whatsapp_message_id
from wagate.domain.messages import MessageStatus as S
from wagate.domain.sessions import SessionState
from wagate.ports import Fence


class Phone:
    """Stands in for a connected session's supervisor: records what reached WhatsApp."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.tenant_id = "ten_1"
        self.state = SessionState.CONNECTED
        self.connected = True

    async def send(self, wa_id: str, to: str, kind: str, content: dict[str, Any]) -> ev.MessageAck:
        self.sent.append((to, content["body"]))
        return ev.MessageAck(wa_id, T0 + timedelta(seconds=len(self.sent)))


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    w.ctx.fence = Fence(0, 7)
    w.clock.advance(60)  # the messages (created at T0) were accepted a minute ago
    w.memory.collection("tenants", TenantDoc).put(
        TenantDoc(
            id="ten_1", name="acme", limits=TenantLimits(pacing_per_second=50, pacing_burst=50)
        )
    )
    yield w
    w.io.shutdown()


def handler(world: World, *, listed: bool = True) -> SendHandler:
    """`listed`: the runner listed the shard's pending entries after winning its lease (the
    takeover nudge), as a runner that started while the store answered has."""
    index = SentIndex()
    world.sink(index)  # the replay handlers, as the shard registers them
    gate = OrderGate(world.store, world.io)
    gate.index = index  # as runner/__main__.py wires it
    if listed:
        gate.listed(world.memory.collection("pending", PendingSend).query())
        gate.shard_listed()
    return SendHandler(
        world.ctx,
        Pacer(),
        GroupCommit(world.store, world.io),
        index,
        GroupClaim(world.store, world.io),
        gate,
    )


def task(
    world: World, mid: str, body: str, *, snapshot: bool = True, offset_s: int = 0
) -> SendTask:
    doc = world.message(mid)
    created = T0 + timedelta(seconds=offset_s)
    world.put_message(
        doc.model_copy(update={"created_at": created, "content": TextContent(body=body)})
    )
    return SendTask(
        message_id=mid,
        session_id="ses_1",
        to=doc.to,
        created_at=created,
        snapshot=SendSnapshot(tenant_id="ten_1", content=TextContent(body=body))
        if snapshot
        else None,
    )


def test_a_task_with_a_snapshot_is_sent_during_an_outage_and_recorded_after(
    world: World,
) -> None:
    sender, phone = handler(world), Phone()

    async def scenario() -> None:
        world.outage.down = True
        t = task(world, "msg_1", "hello")
        first = await sender.handle(t, cast(Any, phone), draining=False)
        assert first.status == 200 and first.body["recorded"] == "journal"
        again = await sender.handle(t, cast(Any, phone), draining=False)  # redelivered
        assert again.status == 200 and again.body["deduplicated"] is True
        assert world.stored("msg_1").status == S.ACCEPTED  # the store has not heard yet
        world.outage.down = False
        await world.replay()

    asyncio.run(scenario())
    assert phone.sent == [("+15550001111", "hello")]
    stored = world.stored("msg_1")
    assert stored.status == S.SENT and stored.attempts == 1
    assert "sending" in stored.status_times


def test_after_the_replay_no_pending_entry_is_left_for_a_message_sent_during_an_outage(
    world: World,
) -> None:
    """The entry stays while the outcome waits in the journal (the store still says pending);
    once the replay has recorded `sent` it goes too. It stayed behind before (171 entries for
    messages long read, found in a burst recovery): the backlog counted them, the sweeper and
    the order check had to read and drop them one by one."""
    sender, phone = handler(world), Phone()
    entries = world.memory.collection("pending", PendingSend)

    async def scenario() -> None:
        world.outage.down = True
        for n in range(3):
            t = task(world, f"msg_{n}", f"hello {n}", offset_s=n)
            assert (await sender.handle(t, cast(Any, phone), draining=False)).status == 200
        assert len(entries.query()) == 3  # journaled: the store has not heard yet
        world.outage.down = False
        await world.replay()
        for _ in range(100):  # the deletes ride along with the next group commit
            if not entries.query():
                break
            await asyncio.sleep(0.02)

    asyncio.run(scenario())
    assert [world.stored(f"msg_{n}").status for n in range(3)] == [S.SENT] * 3
    assert entries.query() == []


def test_a_task_accepted_moments_ago_is_not_sent_from_its_snapshot(world: World) -> None:
    """The api creates a task while it writes the message and withdraws it if the write fails:
    until TASK_SETTLED_AFTER_S only the store could tell which, so the task waits."""
    sender, phone = handler(world), Phone()
    young = task(world, "msg_1", "hello", offset_s=60 - int(TASK_SETTLED_AFTER_S) + 5)

    async def scenario() -> None:
        world.outage.down = True
        waiting = await sender.handle(young, cast(Any, phone), draining=False)
        assert waiting.status == 503 and waiting.retry_after is not None
        assert 5.0 <= waiting.retry_after <= TASK_SETTLED_AFTER_S
        assert phone.sent == []
        world.clock.advance(6)  # settled now: its write landed, or its task was withdrawn
        sent = await sender.handle(young, cast(Any, phone), draining=False)
        assert sent.status == 200 and sent.body["recorded"] == "journal"

    asyncio.run(scenario())
    assert phone.sent == [("+15550001111", "hello")]


def test_a_task_without_a_snapshot_waits_for_the_store(world: World) -> None:
    sender, phone = handler(world), Phone()

    async def scenario() -> None:
        world.outage.down = True
        outcome = await sender.handle(
            task(world, "msg_1", "old", snapshot=False), cast(Any, phone), draining=False
        )
        assert outcome.status == 503

    asyncio.run(scenario())
    assert phone.sent == []


def test_during_an_outage_a_later_message_waits_for_an_earlier_one_the_runner_knows(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sending, "ORDER_WAIT_S", 0.2)
    sender, phone = handler(world), Phone()
    first, second = task(world, "msg_1", "first"), task(world, "msg_2", "second", offset_s=1)

    async def scenario() -> None:
        world.outage.down = True
        # The first message's task came and was paced (429) before: the runner knows it.
        sender._gate.saw(SendKey("msg_1", "ses_1", first.to or "", T0, T0, "w1"), None)
        blocked = await sender.handle(second, cast(Any, phone), draining=False)
        assert blocked.status == 503
        assert (await sender.handle(first, cast(Any, phone), draining=False)).status == 200
        assert (await sender.handle(second, cast(Any, phone), draining=False)).status == 200

    asyncio.run(scenario())
    assert [body for _, body in phone.sent] == ["first", "second"]


def test_a_transient_failure_during_an_outage_is_journaled_as_failed(world: World) -> None:
    from wagate.errors import TransientSendError

    class Flaky(Phone):
        async def send(
            self, wa_id: str, to: str, kind: str, content: dict[str, Any]
        ) -> ev.MessageAck:
            raise TransientSendError("no ack in time", retry_after=3)

    sender = handler(world)

    async def scenario() -> None:
        world.outage.down = True
        outcome = await sender.handle(task(world, "msg_1", "x"), cast(Any, Flaky()), draining=False)
        assert outcome.status == 503 and outcome.body["status"] == "failed"
        world.outage.down = False
        await world.replay()

    asyncio.run(scenario())
    stored = world.stored("msg_1")
    assert stored.status == S.FAILED and stored.attempts == 1
    assert stored.errors[-1].code == "send_transient"
    assert whatsapp_message_id("msg_1") == stored.wa_id


def test_a_task_that_arrives_just_before_its_message_is_written_is_sent(world: World) -> None:
    """The api creates the task while it writes the message: the task can win the race."""
    sender, phone = handler(world), Phone()
    early = task(world, "msg_1", "hello", offset_s=60)  # accepted just now
    written = world.stored("msg_1")
    world.memory.collection("messages", type(written)).delete("msg_1")

    async def scenario() -> None:
        async def write_lands() -> None:
            await asyncio.sleep(0.2)
            world.memory.collection("messages", type(written)).put(written)

        landing = asyncio.create_task(write_lands())
        outcome = await sender.handle(early, cast(Any, phone), draining=False)
        await landing
        assert outcome.status == 200, outcome

    asyncio.run(scenario())
    assert phone.sent == [("+15550001111", "hello")]
    assert world.stored("msg_1").status == S.SENT


def test_a_task_whose_message_never_appears_waits_then_is_dropped(world: World) -> None:
    """A failed write whose task could not be withdrawn: retried while young, then dropped."""
    sender, phone = handler(world), Phone()
    orphan = task(world, "msg_1", "hello", offset_s=60)
    world.memory.collection("messages", type(world.stored("msg_1"))).delete("msg_1")

    async def scenario() -> None:
        young = await sender.handle(orphan, cast(Any, phone), draining=False)
        assert young.status == 503 and young.body["reason"] == "message not written yet"
        world.clock.advance(sending.UNWRITTEN_GRACE_S)
        old = await sender.handle(orphan, cast(Any, phone), draining=False)
        assert old.status == 200 and old.body["status"] == "unknown_message"

    asyncio.run(scenario())
    assert phone.sent == []


def test_a_task_is_settled_only_after_the_apis_write_and_withdrawal_have_timed_out() -> None:
    from wagate.adapters import firestore, tasks

    assert TASK_SETTLED_AFTER_S > firestore.CALL_TIMEOUT_S + tasks.CALL_TIMEOUT_S


def test_a_pending_entry_left_behind_holds_nothing_back_and_is_dropped(world: World) -> None:
    """pending/{id} entries are confirmed against their messages: one whose delete was lost
    (its message is sent) does not hold the chat, and goes; a sent message's entry goes."""
    sender, phone = handler(world), Phone()
    first = task(world, "msg_1", "first")
    world.memory.collection("messages", MessageDoc).patch("msg_1", {"status": S.SENT})
    second = task(world, "msg_2", "second", offset_s=1)
    entries = world.memory.collection("pending", PendingSend)
    assert {e.id for e in entries.query()} == {"msg_1", "msg_2"}

    async def scenario() -> None:
        outcome = await sender.handle(second, cast(Any, phone), draining=False)
        assert outcome.status == 200, outcome
        await asyncio.sleep(0.05)  # the deletes ride with the next group commit

    asyncio.run(scenario())
    assert first.message_id == "msg_1" and phone.sent == [("+15550001111", "second")]
    assert entries.query() == []


def test_a_pending_predecessor_holds_the_next_message_of_its_chat(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sending, "ORDER_WAIT_S", 0.2)
    sender, phone = handler(world), Phone()
    task(world, "msg_1", "first")  # accepted, its task not here yet
    second = task(world, "msg_2", "second", offset_s=1)

    async def scenario() -> None:
        outcome = await sender.handle(second, cast(Any, phone), draining=False)
        assert outcome.status == 503 and "earlier message" in str(outcome.body["reason"])

    asyncio.run(scenario())
    assert phone.sent == []


def test_a_runner_that_took_over_without_listing_the_shard_waits_during_an_outage(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A runner that won the lease while the store was slow, and could not list the shard's
    pending sends before it stopped answering, knows nothing of a chat's older messages:
    it does not send from memory (the 10k chaos run caught exactly this), until it can vouch
    for the chat."""
    monkeypatch.setattr(sending, "ORDER_WAIT_S", 0.2)
    task(world, "msg_1", "first")  # pending, its task in the queue's backoff
    second = task(world, "msg_2", "second", offset_s=1)
    sender, phone = handler(world, listed=False), Phone()

    async def scenario() -> None:
        world.outage.down = True
        held = await sender.handle(second, cast(Any, phone), draining=False)
        assert held.status == 503 and "earlier message" in str(held.body["reason"])
        world.outage.down = False
        durable = world.ctx.durable
        durable.start()  # its probe notices the store is back
        for _ in range(200):
            if not durable.store_degraded:
                break
            await asyncio.sleep(0.02)
        await durable.stop()
        # The store answers: a query covers the chat (msg_1 is pending, so still held) ...
        assert (await sender.handle(second, cast(Any, phone), draining=False)).status == 503
        world.outage.down = True
        # ... and from then on what the runner knows is enough without the store.
        first = task(world, "msg_1", "first")
        assert (await sender.handle(first, cast(Any, phone), draining=False)).status == 200
        assert (await sender.handle(second, cast(Any, phone), draining=False)).status == 200

    asyncio.run(scenario())
    assert [body for _, body in phone.sent] == ["first", "second"]
