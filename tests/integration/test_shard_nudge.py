"""The takeover nudge on the Firestore and Cloud Tasks emulators (runner/shard.py): a pending
send whose task is gone gets one again at once, under its own name, or under a new generation
when the queue still remembers the name; a send whose task is alive only runs sooner."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.factories import text_message
from tests.integration.test_health import build_runner
from wagate.clock import SystemClock
from wagate.config import Settings
from wagate.contracts import TASK_SETTLED_AFTER_S, MessageDoc, PendingSend
from wagate.domain.ids import new_message_id, send_task_name
from wagate.ports import TaskSpec
from wagate.queues import send_queue

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(emulators: Any, firestore_env: dict[str, str]) -> Iterator[Settings]:
    emulators.provision_project(firestore_env["WAGATE_PROJECT_ID"])
    # Nothing listens there: a dispatched task fails and stays in the queue, to be looked at.
    yield Settings(_env_file=None, runner_urls="http://127.0.0.1:9")  # type: ignore[call-arg]


def accepted_long_ago() -> MessageDoc:
    at = datetime.now(UTC) - timedelta(seconds=TASK_SETTLED_AFTER_S + 5)
    return text_message(
        new_message_id(), status_times={"accepted": at}, created_at=at, updated_at=at
    )


def test_the_takeover_gives_pending_sends_whose_task_is_gone_a_task_again(
    settings: Settings, tmp_path: Path
) -> None:
    runner = build_runner(settings, SystemClock(), tmp_path)
    store, queue = runner.ctx.store, runner.ctx.queue
    lost, finished, waiting = accepted_long_ago(), accepted_long_ago(), accepted_long_ago()
    docs = [lost, finished, waiting]
    store.collection("messages", MessageDoc).put_many(docs)
    store.collection("pending", PendingSend).put_many([PendingSend.of(d) for d in docs])
    name = send_queue(settings.queue_prefix, 0)
    later = datetime.now(UTC) + timedelta(days=1)  # not dispatched before the nudge
    for doc in (finished, waiting):
        queue.enqueue(
            TaskSpec(
                queue=name,
                name=send_task_name(doc.id, 0),
                url="http://127.0.0.1:9/tasks/send",
                body=b"{}",
                schedule_time=later,
            )
        )
    queue.delete(name, send_task_name(finished.id, 0))  # gone; the queue remembers its name

    try:
        asyncio.run(runner.shard._nudge_pending())
    finally:
        runner.ctx.io.shutdown()

    assert queue.exists(name, send_task_name(lost.id, 0))
    assert not queue.exists(name, send_task_name(finished.id, 0))
    assert queue.exists(name, send_task_name(finished.id, 1))
    stored = store.collection("messages", MessageDoc).get(finished.id)
    assert stored is not None and stored.task_generation == 1
    entry = store.collection("pending", PendingSend).get(finished.id)
    assert entry is not None and entry.task_generation == 1
    # Alive: run now, not created again (its name is still generation 0's).
    waiting_now = store.collection("messages", MessageDoc).get(waiting.id)
    assert waiting_now is not None and waiting_now.task_generation == 0
    assert not queue.exists(name, send_task_name(waiting.id, 1))
