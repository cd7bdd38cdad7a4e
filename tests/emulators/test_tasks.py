"""Task administration through the official client: naming and de-duplication, get, list,
delete, run, views, and validation of what a task may be."""

from __future__ import annotations

import time

import pytest
from google.api_core import exceptions as gexc
from google.cloud import tasks_v2

from tests.emulators.conftest import QueueFactory
from tests.emulators.harness import Target, http_task, wait_until

pytestmark = pytest.mark.integration


def _already_exists(error: gexc.GoogleAPICallError) -> bool:
    return bool(error.response.json()["error"]["status"] == "ALREADY_EXISTS")


def test_named_task_duplicate_is_refused_while_pending(
    client: tasks_v2.CloudTasksClient, make_queue: QueueFactory, target: Target, path: str
) -> None:
    name = make_queue()
    client.pause_queue(name=name)
    created = client.create_task(
        parent=name, task=http_task(target.url(path), queue=name, task_id="m1")
    )
    assert created.name == f"{name}/tasks/m1"

    with pytest.raises(gexc.Conflict) as refused:
        client.create_task(parent=name, task=http_task(target.url(path), queue=name, task_id="m1"))

    assert _already_exists(refused.value)


def test_named_task_duplicate_is_refused_after_completion(
    client: tasks_v2.CloudTasksClient, make_queue: QueueFactory, target: Target, path: str
) -> None:
    name = make_queue()
    client.create_task(parent=name, task=http_task(target.url(path), queue=name, task_id="done-1"))
    target.wait_for_hits(path, 1)
    wait_until(lambda: not list(client.list_tasks(parent=name)), 5, "the task to complete")

    with pytest.raises(gexc.Conflict) as refused:
        client.create_task(
            parent=name, task=http_task(target.url(path), queue=name, task_id="done-1")
        )

    assert _already_exists(refused.value)
    time.sleep(0.3)
    assert len(target.hits(path)) == 1  # delivered once, never twice
    with pytest.raises(gexc.NotFound):
        client.get_task(name=f"{name}/tasks/done-1")


def test_named_task_duplicate_is_refused_after_delete(
    client: tasks_v2.CloudTasksClient, make_queue: QueueFactory, target: Target, path: str
) -> None:
    name = make_queue()
    client.pause_queue(name=name)
    client.create_task(parent=name, task=http_task(target.url(path), queue=name, task_id="gone"))
    client.delete_task(name=f"{name}/tasks/gone")

    with pytest.raises(gexc.Conflict):
        client.create_task(
            parent=name, task=http_task(target.url(path), queue=name, task_id="gone")
        )
    with pytest.raises(gexc.NotFound):
        client.delete_task(name=f"{name}/tasks/gone")


def test_unnamed_tasks_get_distinct_generated_ids(
    client: tasks_v2.CloudTasksClient, make_queue: QueueFactory, target: Target, path: str
) -> None:
    name = make_queue()
    client.pause_queue(name=name)

    created = [client.create_task(parent=name, task=http_task(target.url(path))) for _ in range(5)]

    ids = {task.name.rpartition("/tasks/")[2] for task in created}
    assert len(ids) == 5
    assert all(task.name.startswith(f"{name}/tasks/") for task in created)
    assert all(task_id.isdigit() for task_id in ids)


def test_list_get_and_views(
    client: tasks_v2.CloudTasksClient, make_queue: QueueFactory, target: Target, path: str
) -> None:
    name = make_queue()
    later = time.time() + 3600
    for i in range(3):
        client.create_task(
            parent=name,
            task=http_task(
                target.url(path), queue=name, task_id=f"v{i}", body=b"payload", schedule_at=later
            ),
        )

    listed = list(client.list_tasks(parent=name))
    assert [t.name.rpartition("/")[2] for t in listed] == ["v0", "v1", "v2"]
    assert all(t.view == tasks_v2.Task.View.BASIC and t.http_request.body == b"" for t in listed)

    paged = client.list_tasks(request=tasks_v2.ListTasksRequest(parent=name, page_size=2))
    assert len(list(paged)) == 3  # the pager follows nextPageToken

    basic = client.get_task(name=f"{name}/tasks/v1")
    assert basic.http_request.body == b""
    full = client.get_task(
        request=tasks_v2.GetTaskRequest(
            name=f"{name}/tasks/v1", response_view=tasks_v2.Task.View.FULL
        )
    )
    assert full.view == tasks_v2.Task.View.FULL
    assert full.http_request.body == b"payload"
    assert full.http_request.url == target.url(path)
    assert full.schedule_time.timestamp() == pytest.approx(later, abs=0.001)
    assert full.dispatch_deadline.total_seconds() == 600  # the HTTP-target default
    assert full.http_request.headers["User-Agent"] == "Google-Cloud-Tasks"
    assert full.dispatch_count == 0
    assert target.hits(path) == []


def test_delete_removes_a_pending_task(
    client: tasks_v2.CloudTasksClient, make_queue: QueueFactory, target: Target, path: str
) -> None:
    name = make_queue()
    client.create_task(
        parent=name,
        task=http_task(target.url(path), queue=name, task_id="d1", schedule_at=time.time() + 0.5),
    )

    client.delete_task(name=f"{name}/tasks/d1")

    assert list(client.list_tasks(parent=name)) == []
    with pytest.raises(gexc.NotFound):
        client.get_task(name=f"{name}/tasks/d1")
    time.sleep(0.8)
    assert target.hits(path) == []


def test_run_dispatches_at_once_even_when_paused(
    client: tasks_v2.CloudTasksClient, make_queue: QueueFactory, target: Target, path: str
) -> None:
    name = make_queue()
    client.pause_queue(name=name)
    client.create_task(
        parent=name,
        task=http_task(target.url(path), queue=name, task_id="r1", schedule_at=time.time() + 3600),
    )

    ran = client.run_task(name=f"{name}/tasks/r1")

    assert ran.dispatch_count == 1
    assert ran.first_attempt.dispatch_time.timestamp() == pytest.approx(time.time(), abs=2)
    target.wait_for_hits(path, 1, timeout=3)
    wait_until(lambda: not list(client.list_tasks(parent=name)), 5, "the task to be deleted")
    with pytest.raises(gexc.NotFound):
        client.run_task(name=f"{name}/tasks/r1")


def test_invalid_tasks_are_refused(
    client: tasks_v2.CloudTasksClient, make_queue: QueueFactory, target: Target, path: str
) -> None:
    name = make_queue()
    other = make_queue()
    url = target.url(path)

    with pytest.raises(gexc.BadRequest):  # name outside the parent queue
        client.create_task(parent=name, task=http_task(url, queue=other, task_id="x"))
    with pytest.raises(gexc.BadRequest):  # illegal id characters
        client.create_task(parent=name, task=http_task(url, queue=name, task_id="not.valid"))
    with pytest.raises(gexc.BadRequest):  # deadline above 30 minutes
        client.create_task(parent=name, task=http_task(url, deadline=1801))
    with pytest.raises(gexc.BadRequest):  # body on a GET
        client.create_task(
            parent=name, task=http_task(url, method=tasks_v2.HttpMethod.GET, body=b"x")
        )
    with pytest.raises(gexc.BadRequest):  # not an http(s) URL
        client.create_task(parent=name, task=http_task("ftp://example.com/x"))
    with pytest.raises(gexc.BadRequest):  # more than 30 days ahead
        client.create_task(parent=name, task=http_task(url, schedule_at=time.time() + 31 * 86400))
