"""The sweeper's pass over pending/{id} entries (wagate/services/sweeper.py) on the memory
store: an entry deleted while the sweep runs (its message was sent meanwhile) does not stop
the others from being moved back in the line."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from tests.unit.test_journal import World
from wagate.adapters.memory import MemoryStore, MemoryTaskQueue
from wagate.contracts import PendingSend
from wagate.domain.ids import send_task_name
from wagate.ports import TaskSpec
from wagate.queues import send_queue
from wagate.services.sweeper import STUCK_AFTER, Sweeper


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
    sweeper = Sweeper(world.memory, cast(Any, None), world.clock, queue, "wagate")
    report = sweeper.sweep()
    world.io.shutdown()
    assert report.alive == 8 and report.reenqueued == 0
    left = world.memory.collection("pending", PendingSend).query()
    assert len(left) == 7
    assert all(e.checked_at == world.clock.now() for e in left)
    assert sweeper.sweep().alive == 0  # all just looked at
