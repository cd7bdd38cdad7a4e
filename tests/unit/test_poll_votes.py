"""Poll votes in the runner (runner/poll_votes.py through runner/inbound.py), on the in-memory
store with the outage switch of test_journal: a vote is stored like a received message and
announced as `poll.vote` naming the chosen options from the poll this session sent — also when
it arrived while the store was down."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.factories import text_message
from tests.unit.test_journal import T0, World, run
from wagate.contracts import InboundDoc, PollContent, WebhookTask, poll_option_hash
from wagate.domain import events as ev
from wagate.domain.ids import whatsapp_message_id
from wagate.services.maintenance import pruned_content

POLL = PollContent(question="Slot?", options=["Morning", "Noon", "Evening"], selectable_count=2)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.io.shutdown()


def vote(wa_id: str, poll_id: str, *options: str) -> ev.InboundMessage:
    hashes = [poll_option_hash(o) for o in options]
    return ev.InboundMessage(
        wa_id=wa_id,
        chat="15552@s.whatsapp.net",
        sender="15552@s.whatsapp.net",
        kind="poll_vote",
        content={"poll_id": poll_id, "selected_hashes": hashes},
        ts=T0,
    )


def announced(world: World) -> list[Any]:
    return [WebhookTask.model_validate_json(t.body).event for t in world.queue.tasks]


def test_a_vote_during_an_outage_is_announced_with_the_option_names_after_it(
    world: World,
) -> None:
    world.put_message(text_message("msg_poll", content=POLL))
    poll_id = whatsapp_message_id("msg_poll")
    sink = world.sink()

    async def scenario() -> None:
        world.outage.down = True
        await sink.accept("ten_1", "ses_1", vote("3EB0V1", poll_id, "Evening", "Morning"))
        assert world.ctx.durable.backlog == 1 and world.queue.tasks == []
        world.outage.down = False
        await world.replay()

    run(scenario())
    (event,) = announced(world)
    assert event.type == "poll.vote" and event.data["kind"] == "poll_vote"
    content = event.data["content"]
    assert (content["poll_id"], content["poll_message_id"]) == (poll_id, "msg_poll")
    assert content["question"] == "Slot?"
    assert content["options"] == ["Morning", "Evening"]  # in the poll's order
    stored = world.memory.subcollection("sessions", "ses_1", "inbound", InboundDoc).get("3EB0V1")
    assert stored is not None and stored.content == content


def test_a_vote_is_announced_once_however_often_it_arrives(world: World) -> None:
    world.put_message(text_message("msg_poll", content=POLL))
    sink = world.sink()
    again = vote("3EB0V2", whatsapp_message_id("msg_poll"), "Noon")
    for _ in range(2):
        run(sink.accept("ten_1", "ses_1", again))
    (event,) = announced(world)
    assert event.data["content"]["options"] == ["Noon"]


@pytest.mark.parametrize("case", ["not sent through wagate", "undecrypted", "pruned"])
def test_a_vote_that_cannot_be_named_has_null_options(world: World, case: str) -> None:
    poll = pruned_content(POLL) if case == "pruned" else POLL
    world.put_message(text_message("msg_poll", content=poll))
    poll_id = (
        "3EB0FROMTHEPHONE" if case == "not sent through wagate" else whatsapp_message_id("msg_poll")
    )
    message = vote("3EB0V3", poll_id, "Noon")
    if case == "undecrypted":
        message = dataclasses.replace(
            message, content={"poll_id": poll_id, "selected_hashes": None}
        )
    run(world.sink().accept("ten_1", "ses_1", message))
    (event,) = announced(world)
    assert event.type == "poll.vote" and event.data["content"]["options"] is None
