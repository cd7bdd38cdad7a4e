"""The TaskQueue contract against the in-memory adapter and wagate's Cloud Tasks emulator,
through wagate's adapter (official client, REST)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from devstack.provision import ensure_queues
from wagate.adapters.memory import MemoryTaskQueue
from wagate.adapters.tasks import (
    INTERNAL_TOKEN_HEADER,
    CloudTasksQueue,
    SharedSecretAuth,
    make_client,
)
from wagate.config import Settings
from wagate.errors import NotFound, TaskAlreadyExists
from wagate.ports import TaskQueue, TaskSpec

pytestmark = pytest.mark.integration


class Target(BaseHTTPRequestHandler):
    """Answers 500 to the first `fail` calls, then 200; records what it got."""

    calls: list[tuple[float, dict[str, str], bytes]] = []
    fail = 0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        Target.calls.append((time.monotonic(), dict(self.headers), body))
        failing = Target.fail > 0
        Target.fail -= 1
        self.send_response(500 if failing else 200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def target() -> Iterator[str]:
    Target.calls, Target.fail = [], 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), Target)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/tasks/send"
    server.shutdown()


def _emulated(request: pytest.FixtureRequest) -> CloudTasksQueue:
    request.getfixturevalue("tasks_emulator")
    request.getfixturevalue("firestore_env")  # a fresh project id for this test
    settings = Settings()
    client = make_client(settings.tasks_endpoint)
    ensure_queues(client, settings)
    return CloudTasksQueue(client, settings.project_id, settings.region, SharedSecretAuth("s3"))


@pytest.fixture(params=["memory", "emulator"])
def queue(request: pytest.FixtureRequest) -> TaskQueue:
    return MemoryTaskQueue() if request.param == "memory" else _emulated(request)


@pytest.fixture
def emulated(request: pytest.FixtureRequest) -> CloudTasksQueue:
    """Dispatch is the emulator's job (the memory queue only records), so these run there."""
    return _emulated(request)


def spec(url: str, name: str | None = None, **kw: Any) -> TaskSpec:
    return TaskSpec(
        queue="wagate-s0-normal",
        name=name or f"t-{uuid.uuid4().hex[:12]}",
        url=url,
        body=b'{"k": 1}',
        **kw,
    )


def test_a_reused_task_name_is_refused(queue: TaskQueue, target: str) -> None:
    task = spec(target, schedule_time=datetime.now(UTC) + timedelta(hours=1))
    queue.enqueue(task)
    with pytest.raises(TaskAlreadyExists):
        queue.enqueue(task)


def test_running_a_missing_task_is_not_found(queue: TaskQueue, target: str) -> None:
    with pytest.raises(NotFound):
        queue.run_now("wagate-s0-normal", "never-created")


def test_a_task_that_answers_500_twice_is_retried_then_delivered_with_the_secret(
    emulated: CloudTasksQueue, target: str
) -> None:
    queue = emulated
    Target.fail = 2
    name = f"t-{uuid.uuid4().hex[:12]}"
    queue.enqueue(spec(target, name=name))
    deadline = time.monotonic() + 20
    while len(Target.calls) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    assert len(Target.calls) == 3  # two failures, then delivered once
    headers = Target.calls[-1][1]
    assert headers[INTERNAL_TOKEN_HEADER] == "s3"
    assert headers["X-CloudTasks-TaskRetryCount"] == "2"
    assert headers["X-CloudTasks-TaskName"] == name
    assert Target.calls[-1][2] == b'{"k": 1}'
    gaps = [b[0] - a[0] for a, b in zip(Target.calls, Target.calls[1:], strict=False)]
    assert gaps[1] > gaps[0]  # backoff grows


def test_a_scheduled_task_waits_and_run_now_skips_the_wait(
    emulated: CloudTasksQueue, target: str
) -> None:
    queue = emulated
    later = spec(target, schedule_time=datetime.now(UTC) + timedelta(seconds=1.5))
    queue.enqueue(later)
    time.sleep(0.7)
    assert Target.calls == []
    deadline = time.monotonic() + 10
    while not Target.calls and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(Target.calls) == 1
    far = spec(target, schedule_time=datetime.now(UTC) + timedelta(hours=1))
    queue.enqueue(far)
    queue.run_now(far.queue, far.name)
    deadline = time.monotonic() + 10
    while len(Target.calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(Target.calls) == 2
