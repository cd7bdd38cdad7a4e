"""Queue administration through the official client: defaults, limits, update masks, pause,
resume, purge, delete, and the Google error bodies behind the client's exceptions."""

from __future__ import annotations

import time

import pytest
from google.api_core import exceptions as gexc
from google.cloud import tasks_v2
from google.protobuf import field_mask_pb2

from tests.emulators.conftest import PARENT, QueueFactory
from tests.emulators.harness import Target, duration, http_task, wait_until

pytestmark = pytest.mark.integration


def test_created_queue_gets_cloud_tasks_defaults(
    client: tasks_v2.CloudTasksClient, make_queue: QueueFactory
) -> None:
    name = make_queue()

    queue = client.get_queue(name=name)

    assert queue.name == name
    assert queue.state == tasks_v2.Queue.State.RUNNING
    assert queue.rate_limits.max_dispatches_per_second == 500
    assert queue.rate_limits.max_concurrent_dispatches == 1000
    assert queue.rate_limits.max_burst_size >= 500
    assert queue.retry_config.max_attempts == 100
    assert queue.retry_config.min_backoff.total_seconds() == pytest.approx(0.1)
    assert queue.retry_config.max_backoff.total_seconds() == 3600
    assert queue.retry_config.max_doublings == 16


def test_duplicate_queue_is_refused_with_already_exists(
    client: tasks_v2.CloudTasksClient, make_queue: QueueFactory
) -> None:
    name = make_queue()

    # Over REST, api_core maps every 409 to Conflict (AlreadyExists's parent); the body
    # carries the gRPC status.
    with pytest.raises(gexc.Conflict) as refused:
        client.create_queue(parent=PARENT, queue=tasks_v2.Queue(name=name))

    assert refused.value.response.json()["error"]["status"] == "ALREADY_EXISTS"


def test_list_get_update_and_delete_queue(
    client: tasks_v2.CloudTasksClient, make_queue: QueueFactory
) -> None:
    name = make_queue(retry_config=tasks_v2.RetryConfig(max_attempts=7))

    assert name in [q.name for q in client.list_queues(parent=PARENT)]

    updated = client.update_queue(
        queue=tasks_v2.Queue(
            name=name,
            rate_limits=tasks_v2.RateLimits(max_dispatches_per_second=7.5),
        ),
        update_mask=field_mask_pb2.FieldMask(paths=["rate_limits.max_dispatches_per_second"]),
    )
    assert updated.rate_limits.max_dispatches_per_second == 7.5
    assert updated.rate_limits.max_concurrent_dispatches == 1000  # untouched by the mask
    assert updated.retry_config.max_attempts == 7  # untouched by the mask

    replaced = client.update_queue(queue=tasks_v2.Queue(name=name))  # no mask: every field
    assert replaced.rate_limits.max_dispatches_per_second == 500
    assert replaced.retry_config.max_attempts == 100

    client.delete_queue(name=name)
    with pytest.raises(gexc.NotFound):
        client.get_queue(name=name)
    with pytest.raises(gexc.NotFound):
        client.delete_queue(name=name)


def test_update_creates_a_missing_queue(client: tasks_v2.CloudTasksClient) -> None:
    name = f"{PARENT}/queues/q-upserted-{time.monotonic_ns()}"

    client.update_queue(queue=tasks_v2.Queue(name=name))

    assert client.get_queue(name=name).state == tasks_v2.Queue.State.RUNNING


def test_limits_beyond_cloud_tasks_maxima_are_invalid(
    client: tasks_v2.CloudTasksClient, make_queue: QueueFactory
) -> None:
    with pytest.raises(gexc.BadRequest):
        make_queue(rate_limits=tasks_v2.RateLimits(max_dispatches_per_second=501))
    with pytest.raises(gexc.BadRequest):
        make_queue(rate_limits=tasks_v2.RateLimits(max_concurrent_dispatches=5001))
    with pytest.raises(gexc.BadRequest):
        make_queue(
            retry_config=tasks_v2.RetryConfig(min_backoff=duration(10), max_backoff=duration(1))
        )
    with pytest.raises(gexc.BadRequest):
        client.create_queue(parent=PARENT, queue=tasks_v2.Queue(name=f"{PARENT}/queues/not_valid"))


def test_state_filter_lists_paused_queues_only(
    client: tasks_v2.CloudTasksClient, make_queue: QueueFactory
) -> None:
    paused, running = make_queue(), make_queue()
    client.pause_queue(name=paused)

    listed = client.list_queues(
        request=tasks_v2.ListQueuesRequest(parent=PARENT, filter="state: PAUSED")
    )

    names = [q.name for q in listed]
    assert paused in names
    assert running not in names


def test_pause_stops_dispatch_and_resume_restarts_it(
    client: tasks_v2.CloudTasksClient, make_queue: QueueFactory, target: Target, path: str
) -> None:
    name = make_queue()
    assert client.pause_queue(name=name).state == tasks_v2.Queue.State.PAUSED

    for _ in range(3):
        client.create_task(parent=name, task=http_task(target.url(path)))
    time.sleep(0.5)
    assert target.hits(path) == []
    assert len(list(client.list_tasks(parent=name))) == 3

    assert client.resume_queue(name=name).state == tasks_v2.Queue.State.RUNNING
    target.wait_for_hits(path, 3, timeout=5)
    wait_until(lambda: not list(client.list_tasks(parent=name)), 5, "an empty queue")


def test_purge_removes_every_task(
    client: tasks_v2.CloudTasksClient, make_queue: QueueFactory, target: Target, path: str
) -> None:
    name = make_queue()
    client.pause_queue(name=name)
    for i in range(5):
        client.create_task(
            parent=name, task=http_task(target.url(path), queue=name, task_id=f"p{i}")
        )

    purged = client.purge_queue(name=name)

    assert purged.purge_time.timestamp() == pytest.approx(time.time(), abs=5)
    assert list(client.list_tasks(parent=name)) == []
    client.resume_queue(name=name)
    time.sleep(0.3)
    assert target.hits(path) == []
    with pytest.raises(gexc.Conflict):  # purged names are spent like deleted ones
        client.create_task(parent=name, task=http_task(target.url(path), queue=name, task_id="p0"))


def test_unknown_queue_is_not_found(client: tasks_v2.CloudTasksClient) -> None:
    missing = f"{PARENT}/queues/never-created"
    with pytest.raises(gexc.NotFound):
        client.get_queue(name=missing)
    with pytest.raises(gexc.NotFound):
        client.pause_queue(name=missing)
    with pytest.raises(gexc.NotFound):
        client.create_task(parent=missing, task=http_task("http://127.0.0.1:9/x"))
