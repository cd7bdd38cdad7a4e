"""The sweeper's pass over pending/{id} entries (wagate/services/sweeper.py) on the memory
store: an entry deleted while the sweep runs (its message was sent meanwhile) does not stop
the others from being moved back in the line; a backlog larger than a batch is done in one
sweep, which stops early when Cloud Tasks fails or its time budget is spent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.unit.test_journal import World
from wagate.adapters.memory import MemoryStore, MemoryTaskQueue
from wagate.contracts import PendingSend
from wagate.domain.ids import send_task_name
from wagate.errors import DependencyUnavailable
from wagate.ports import TaskSpec
from wagate.queues import send_queue
from wagate.services.sweeper import BATCH, STUCK_AFTER, Sweeper


class SentMeanwhile(MemoryTaskQueue):
    """Every task is alive; checking the third one, its message is sent and its entry goes."""

    def __init__(self, store: MemoryStore) -> None:
        super().__init__()
        self.store = store
        self.checked = 0

    def exists(self, queue: str, name: str) -> bool:
        self.checked += 1
        if self.checked == 3:
            entry = self.store.collection("pending", PendingSend).query()[2]
            self.store.patch_many([], [("pending", entry.id)])
        return super().exists(queue, name)


def test_an_entry_gone_during_the_sweep_does_not_stop_the_others_being_touched(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    queue = SentMeanwhile(world.memory)
    for i in range(8):
        doc = world.message(f"msg_{i}")  # and its pending/{id} entry, as the api writes them
        queue.enqueue(
            TaskSpec(
                queue=send_queue("wagate", 0), name=send_task_name(doc.id, 0), url="", body=b""
            )
        )
    world.clock.advance(STUCK_AFTER.total_seconds() + 1)
    sweeper = Sweeper(world.memory, world.outbox(queue), world.clock)
    report = sweeper.sweep()
    world.io.shutdown()
    assert report.alive == 8 and report.reenqueued == 0
    left = world.memory.collection("pending", PendingSend).query()
    assert len(left) == 7
    assert all(e.checked_at == world.clock.now() for e in left)
    assert sweeper.sweep().alive == 0  # all just looked at


def test_one_sweep_reenqueues_a_backlog_larger_than_a_batch(tmp_path: Path) -> None:
    """Cloud Tasks lost every task of 1,200 pending messages: one sweep gives each a task again,
    batch after batch (it used to take one batch of 500 a sweep)."""
    world = World(tmp_path)
    queue = MemoryTaskQueue()
    ids = [world.message(f"msg_{i:05d}").id for i in range(2 * BATCH + 200)]
    world.clock.advance(STUCK_AFTER.total_seconds() + 1)
    report = Sweeper(world.memory, world.outbox(queue), world.clock).sweep()
    world.io.shutdown()
    assert report.reenqueued == len(ids) and report.enqueue_failures == 0
    names = sorted(t.name for t in queue.tasks)
    assert names == sorted(send_task_name(i, 0) for i in ids)  # each once


class Refusing(MemoryTaskQueue):
    """Cloud Tasks answers nothing: every GetTask fails."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = 0

    def exists(self, queue: str, name: str) -> bool:
        self.asked += 1
        raise DependencyUnavailable("cloud tasks is down")


def test_a_sweep_stops_after_the_batch_where_cloud_tasks_failed(tmp_path: Path) -> None:
    world = World(tmp_path)
    queue = Refusing()
    for i in range(BATCH + 100):
        world.message(f"msg_{i:05d}")
    world.clock.advance(STUCK_AFTER.total_seconds() + 1)
    report = Sweeper(world.memory, world.outbox(queue), world.clock).sweep()
    world.io.shutdown()
    assert queue.asked == BATCH and report.enqueue_failures == BATCH  # no second batch
    assert report.reenqueued == 0


class SlowQueue(MemoryTaskQueue):
    """Each GetTask takes a second of the (fake) clock."""

    def __init__(self, clock: Any) -> None:
        super().__init__()
        self.clock = clock

    def exists(self, queue: str, name: str) -> bool:
        self.clock.advance(1.0)
        return super().exists(queue, name)


def test_a_sweep_ends_once_its_time_budget_is_spent(tmp_path: Path) -> None:
    world = World(tmp_path)
    queue = SlowQueue(world.clock)
    for i in range(BATCH + 100):
        world.message(f"msg_{i:05d}")
    world.clock.advance(STUCK_AFTER.total_seconds() + 1)
    sweeper = Sweeper(world.memory, world.outbox(queue), world.clock)
    report = sweeper.sweep()  # the first batch alone spends 500 s of a 30 s budget
    assert report.reenqueued == BATCH
    assert sweeper.sweep().reenqueued == 100  # the next sweep takes the rest
    world.io.shutdown()
