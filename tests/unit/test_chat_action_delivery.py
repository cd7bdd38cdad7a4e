"""A queued chat action in the runner (runner/chat_actions.py through SendHandler's claim and
deliver): the last checks before WhatsApp gets it (the windows, a dead target, a stale
presence), and what a sent edit or revoke leaves on the message it changed."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, cast

from runner.group_commit import GroupCommit
from runner.io import Offload
from runner.send_results import SendOutcome
from tests.factories import text_message
from tests.unit.test_journal import T0, World
from tests.unit.test_journal_sending import Phone, handler
from tests.unit.test_journal_sending import world as world  # the fixture: a minute after T0
from wagate.adapters.memory import MemoryStore
from wagate.contracts import (
    EditContent,
    MessageDoc,
    PendingSend,
    PresenceContent,
    ReadContent,
    RevokeContent,
    SendSnapshot,
    SendTask,
    StoredContent,
)
from wagate.domain import events as ev
from wagate.domain.chat_actions import ChatAction, EditText, MarkRead, Revoke, SetPresence
from wagate.domain.messages import MessageStatus as S
from wagate.ports import Fence
from wagate.services.events import inbound_event_type

FENCE = Fence(0, 7)


class ActingPhone(Phone):
    def __init__(self) -> None:
        super().__init__()
        self.acts: list[tuple[str, ChatAction]] = []

    async def act(self, wa_id: str, to: str, action: ChatAction) -> ev.MessageAck:
        self.acts.append((to, action))
        return ev.MessageAck(wa_id, T0 + timedelta(minutes=2))


def sent_target(world: World, *, minutes_ago: float) -> str:
    """msg_1, a text the runner sent `minutes_ago` (of the world's clock)."""
    at = world.clock.now() - timedelta(minutes=minutes_ago)
    doc = world.message("msg_1")
    world.put_message(doc.model_copy(update={"status": S.SENT, "status_times": {"sent": at}}))
    world.memory.collection("pending", PendingSend).delete("msg_1")
    return "msg_1"


def queued(world: World, content: StoredContent, *, offset_s: int = 1) -> SendTask:
    """msg_2, an action queued after msg_1 in its chat."""
    created = T0 + timedelta(seconds=offset_s)
    doc = world.message("msg_2").model_copy(update={"content": content, "created_at": created})
    world.put_message(doc)
    return SendTask(
        message_id="msg_2",
        session_id="ses_1",
        to=doc.to,
        created_at=created,
        snapshot=SendSnapshot(tenant_id="ten_1", content=content),
    )


def deliver(world: World, t: SendTask, phone: ActingPhone) -> Any:
    async def scenario() -> Any:
        sender = handler(world)
        doc, claimed = await sender.claim(t, FENCE)
        return await sender.deliver(doc, cast(Any, phone), FENCE, claimed=claimed)

    return asyncio.run(scenario())


def test_a_sent_edit_is_written_on_the_message_it_changed(world: World) -> None:
    target = sent_target(world, minutes_ago=5)
    phone = ActingPhone()
    result = deliver(world, queued(world, EditContent(message_id=target, body="fixed")), phone)
    assert result.outcome == SendOutcome.SENT
    assert phone.acts == [("+15550001111", EditText(world.stored(target).wa_id, "fixed"))]
    assert world.stored("msg_2").status == S.SENT
    edits = world.stored(target).edits
    assert list(edits) == ["msg_2"] and edits["msg_2"].text == "fixed"
    assert edits["msg_2"].at == T0 + timedelta(minutes=2)  # WhatsApp's ack time


def test_a_sent_revoke_marks_the_message_revoked(world: World) -> None:
    target = sent_target(world, minutes_ago=5)
    phone = ActingPhone()
    deliver(world, queued(world, RevokeContent(message_id=target)), phone)
    assert phone.acts == [("+15550001111", Revoke(world.stored(target).wa_id))]
    revoked = world.stored(target).revoked
    assert revoked is not None and revoked.action_id == "msg_2"


def test_an_edit_that_waited_past_the_window_goes_dead_unsent(world: World) -> None:
    target = sent_target(world, minutes_ago=16)
    phone = ActingPhone()
    result = deliver(world, queued(world, EditContent(message_id=target, body="late")), phone)
    assert result.outcome == SendOutcome.DEAD and phone.acts == []
    action = world.stored("msg_2")
    assert action.status == S.DEAD and (action.dead_reason or "").startswith("edit_window_expired")
    assert world.stored(target).edits == {}


def test_an_action_on_a_message_that_died_goes_dead_unsent(world: World) -> None:
    doc = world.message("msg_1")
    world.put_message(doc.model_copy(update={"status": S.DEAD}))
    phone = ActingPhone()
    result = deliver(world, queued(world, RevokeContent(message_id="msg_1")), phone)
    assert result.outcome == SendOutcome.DEAD and phone.acts == []
    assert (world.stored("msg_2").dead_reason or "").startswith("message_dead")


def test_a_presence_is_sent_while_fresh_and_dropped_once_stale(world: World) -> None:
    phone = ActingPhone()
    fresh = queued(world, PresenceContent(state="typing"), offset_s=50)  # 10 s old
    assert deliver(world, fresh, phone).outcome == SendOutcome.SENT
    assert phone.acts == [("+15550001111", SetPresence("typing"))]
    stale = queued(world, PresenceContent(state="typing"), offset_s=30)  # 30 s old
    world.put_message(world.stored("msg_2").model_copy(update={"status": S.ACCEPTED}))
    result = deliver(world, stale, phone)
    assert result.outcome == SendOutcome.DEAD and len(phone.acts) == 1
    assert (world.stored("msg_2").dead_reason or "").startswith("presence_expired")


def test_a_contacts_changes_are_announced_as_their_own_event_types() -> None:
    assert inbound_event_type("text", {"body": "hi"}) == "message.received"
    assert inbound_event_type("edit", {"message_id": "X", "body": "hi!"}) == "message.edited"
    assert inbound_event_type("revoke", {"message_id": "X"}) == "message.revoked"
    assert inbound_event_type("reaction", {"message_id": "X", "emoji": ""}) == "reaction.removed"
    assert inbound_event_type("reaction", {"message_id": "X", "emoji": "👍"}) == "message.received"


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[str]] = []

    def patch_many(self, patches: Any, deletes: Any = ()) -> None:
        self.batches.append([doc_id for _, doc_id, _ in patches])
        super().patch_many(patches, deletes)


def test_an_actions_sent_and_its_change_to_the_target_are_one_batch_within_the_limit() -> None:
    store = CountingStore()
    for mid in ("msg_1", "msg_2", "msg_3"):
        store.collection("messages", MessageDoc).put(text_message(mid))
    io = Offload(4)

    async def scenario() -> None:
        writes = GroupCommit(store, io, limit=2)
        together = [("messages", "msg_1", {"attempts": 1}), ("messages", "msg_2", {"attempts": 2})]
        # The pair would not fit beside the single patch under a limit of 2: it waits its turn.
        await asyncio.gather(
            writes.patch("messages", "msg_3", {"attempts": 3}), writes.patch_together(together)
        )

    asyncio.run(scenario())
    io.shutdown()
    assert sorted(map(sorted, store.batches)) == [["msg_1", "msg_2"], ["msg_3"]]


def test_during_a_store_outage_a_read_goes_from_its_snapshot_and_an_edit_waits(
    world: World,
) -> None:
    target = sent_target(world, minutes_ago=5)
    phone = ActingPhone()
    world.outage.down = True  # the tasks are a minute old: past TASK_SETTLED_AFTER_S
    read = ReadContent(up_to="3EB0IN", chat_jid="15550001111@s.whatsapp.net", wa_ids=["3EB0IN"])
    assert deliver(world, queued(world, read), phone).outcome == SendOutcome.SENT_JOURNALED
    assert [type(a) for _, a in phone.acts] == [MarkRead]
    edit = queued(world, EditContent(message_id=target, body="later"), offset_s=2)
    result = deliver(world, edit, phone)
    assert result.outcome == SendOutcome.FAILED and len(phone.acts) == 1  # retried, not sent
