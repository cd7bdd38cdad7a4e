"""After a takeover the runner runs the shard's pending send tasks at once (runner/shard.py):
a store that does not answer at first must not cost the backlog its nudge; a pending send
whose task is gone gets one again at once, as the sweeper would give it (the same name, or a
new generation when Cloud Tasks remembers the name), never a second live one."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

import runner.shard as shard_module
from runner.group_commit import GroupCommit
from runner.sent_index import SentIndex
from runner.shard import Shard
from runner.writes import MessageEvent
from tests.factories import text_message
from tests.unit.test_journal import World
from wagate.adapters.memory import MemoryTaskQueue
from wagate.contracts import TASK_SETTLED_AFTER_S, MessageDoc, PendingSend, SendTask
from wagate.domain.ids import send_task_name
from wagate.domain.messages import MessageStatus as S
from wagate.errors import NotFound
from wagate.ports import TaskSpec
from wagate.queues import send_queue


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.io.shutdown()


def shard_of(world: World) -> Shard:
    return Shard(world.ctx, GroupCommit(world.store, world.io), SentIndex(), world.outbox())


def task_of(world: World, doc: MessageDoc, generation: int = 0) -> tuple[str, str]:
    return send_queue("wagate", doc.shard, doc.priority), send_task_name(doc.id, generation)


def live_tasks(world: World, doc: MessageDoc) -> list[str]:
    """The names of the message's tasks in the queue, whatever their generation."""
    names = {send_task_name(doc.id, generation) for generation in range(5)}
    return [t.name for t in world.queue.tasks if t.name in names]


def test_the_nudge_is_retried_until_the_store_answers(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shard_module, "NUDGE_RETRY_S", 30.0)
    monkeypatch.setattr(shard_module, "NUDGE_LIMIT", 2)  # three pages: the whole backlog
    names = []
    for mid in ("msg_1", "msg_2", "msg_3", "msg_4", "msg_5"):
        doc = world.message(mid)
        queue = send_queue(world.ctx.settings.queue_prefix, 0, doc.priority)
        names.append((queue, send_task_name(doc.id, doc.task_generation)))
        spec = TaskSpec(queue=queue, name=names[-1][1], url="http://r/tasks/send", body=b"")
        world.queue.enqueue(spec)
    shard = shard_of(world)

    async def scenario() -> None:
        world.outage.down = True
        nudging = asyncio.create_task(shard._nudge_pending())
        await asyncio.sleep(1.5)  # the first listing failed; the next comes after 1 s, 2 s
        assert world.queue.ran == []
        world.outage.down = False
        await asyncio.wait_for(nudging, 10)

    asyncio.run(scenario())
    assert sorted(world.queue.ran) == sorted(names)


def test_a_pending_send_whose_task_is_gone_gets_one_again_at_the_takeover(world: World) -> None:
    """Its task never created (Cloud Tasks was down at accept), or lost: without this it
    waited for the sweeper's stuck pass, 30 s to 2 min after the takeover."""
    alive, lost = world.message("msg_alive"), world.message("msg_lost")
    queue, name = task_of(world, alive)
    world.queue.enqueue(TaskSpec(queue=queue, name=name, url="http://r/tasks/send", body=b""))
    world.clock.advance(TASK_SETTLED_AFTER_S + 1)

    asyncio.run(shard_of(world)._nudge_pending())

    assert world.queue.ran == [task_of(world, alive)]
    created = [t for t in world.queue.tasks if t.name != name]
    assert [(t.queue, t.name) for t in created] == [task_of(world, lost)]
    task = SendTask.model_validate_json(created[0].body)  # as the api creates it
    assert task.message_id == lost.id and task.snapshot is not None
    assert created[0].url == world.ctx.settings.runner_url(0) + "/tasks/send"


def test_a_remembered_task_name_gets_a_new_generation_and_one_live_task(world: World) -> None:
    """Its task finished without the status moving (Cloud Tasks keeps the name a while)."""
    doc = world.message("msg_done")
    queue, name = task_of(world, doc)
    world.queue.enqueue(TaskSpec(queue=queue, name=name, url="http://r/tasks/send", body=b""))
    world.queue.delete(queue, name)  # gone, its name still refused
    world.clock.advance(TASK_SETTLED_AFTER_S + 1)

    asyncio.run(shard_of(world)._nudge_pending())

    assert live_tasks(world, doc) == [send_task_name(doc.id, 1)]
    assert world.stored(doc.id).task_generation == 1
    entry = world.memory.collection("pending", PendingSend).get(doc.id)
    assert entry is not None and entry.task_generation == 1


def test_no_second_task_for_a_send_the_api_or_the_journal_still_settles(world: World) -> None:
    """Passed over: a task created since RunTask missed it (the api, a sweep), an entry younger
    than TASK_SETTLED_AFTER_S (the api may still be creating its task), and a send whose `sent`
    waits in this runner's journal (sent, though the store still says pending)."""
    world.clock.advance(TASK_SETTLED_AFTER_S + 1)
    meanwhile, journaled = world.message("msg_meanwhile"), world.message("msg_journaled")
    young = text_message("msg_young", created_at=world.clock.now())
    world.put_message(young)
    sent = MessageEvent(
        message_id=journaled.id,
        session_id=journaled.session_id,
        tenant_id=journaled.tenant_id,
        wa_id=journaled.wa_id,
        status=S.SENT,
        at=world.clock.now(),
    )
    world.ctx.durable.write_now("message", f"messages/{journaled.id}", sent)

    class CreatedMeanwhile(MemoryTaskQueue):
        """RunTask finds no task of msg_meanwhile; by the time of the create, the api made it."""

        def run_now(self, queue: str, name: str) -> None:
            if name == send_task_name(meanwhile.id, 0):
                self.enqueue(TaskSpec(queue=queue, name=name, url="http://api/", body=b""))
                raise NotFound(f"task {name} not found")
            super().run_now(queue, name)

    world.queue = world.ctx.queue = CreatedMeanwhile()
    shard = Shard(
        world.ctx, GroupCommit(world.store, world.io), SentIndex(), world.outbox(world.queue)
    )

    asyncio.run(shard._nudge_pending())

    assert [t.url for t in world.queue.tasks] == ["http://api/"]  # the api's, and only it
    assert world.stored(meanwhile.id).task_generation == 0
    assert live_tasks(world, young) == [] and live_tasks(world, journaled) == []
