"""After a takeover the runner runs the shard's pending send tasks at once (runner/shard.py):
a store that does not answer at first must not cost the backlog its nudge."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

import runner.shard as shard_module
from runner.group_commit import GroupCommit
from runner.sent_index import SentIndex
from runner.shard import Shard
from tests.unit.test_journal import World
from wagate.domain.ids import send_task_name
from wagate.ports import TaskSpec
from wagate.queues import send_queue


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.io.shutdown()


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
    shard = Shard(world.ctx, GroupCommit(world.store, world.io), SentIndex())

    async def scenario() -> None:
        world.outage.down = True
        nudging = asyncio.create_task(shard._nudge_pending())
        await asyncio.sleep(1.5)  # the first listing failed; the next comes after 1 s, 2 s
        assert world.queue.ran == []
        world.outage.down = False
        await asyncio.wait_for(nudging, 10)

    asyncio.run(scenario())
    assert sorted(world.queue.ran) == sorted(names)
