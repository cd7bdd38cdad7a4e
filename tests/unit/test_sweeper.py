"""The sweeper's pass over pending/{id} entries (wagate/services/sweeper.py) on the memory
store: an entry deleted while the sweep runs (its message was sent meanwhile) does not stop
the others from being moved back in the line."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

from wagate.adapters.memory import FixedClock, MemoryStore, MemoryTaskQueue
from wagate.contracts import MessageDoc, PendingSend, TextContent
from wagate.domain.ids import send_task_name, whatsapp_message_id
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


def test_an_entry_gone_during_the_sweep_does_not_stop_the_others_being_touched() -> None:
    store, clock = MemoryStore(), FixedClock()
    queue = SentMeanwhile(store)
    entries = store.collection("pending", PendingSend)
    created = clock.now()
    for i in range(8):
        mid = f"msg_{i}"
        doc = MessageDoc(
            id=mid,
            tenant_id="ten_1",
            session_id="ses_1",
            shard=0,
            to="+15550001111",
            content=TextContent(body="x"),
            wa_id=whatsapp_message_id(mid),
            created_at=created + timedelta(milliseconds=i),
        )
        store.collection("messages", MessageDoc).put(doc)
        entries.put(PendingSend.of(doc))
        queue.enqueue(
            TaskSpec(queue=send_queue("wagate", 0), name=send_task_name(mid, 0), url="", body=b"")
        )
    clock.advance(STUCK_AFTER.total_seconds() + 1)
    sweeper = Sweeper(store, cast(Any, None), clock, queue, "wagate")
    report = sweeper.sweep()
    assert report.alive == 8 and report.reenqueued == 0
    left = entries.query()
    assert len(left) == 7
    assert all(e.checked_at == clock.now() for e in left)
    assert sweeper.sweep().alive == 0  # all just looked at
