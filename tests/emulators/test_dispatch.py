"""Dispatch as a task handler sees it: timing, retries with backoff, giving up, deadlines,
the X-CloudTasks-* headers, OIDC tokens, and the counters the API reports meanwhile."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
from google.api_core import exceptions as gexc
from google.cloud import tasks_v2

from tests.emulators.conftest import QueueFactory
from tests.emulators.harness import Step, Target, duration, http_task, wait_until

pytestmark = pytest.mark.integration

OIDC_SECRET = b"cloud-tasks-emulator"  # the emulator's default --oidc-secret


def _fast_retries(**overrides: object) -> tasks_v2.RetryConfig:
    fields: dict[str, object] = {
        "min_backoff": duration(0.2),
        "max_backoff": duration(10),
        "max_doublings": 4,
    }
    fields.update(overrides)
    return tasks_v2.RetryConfig(**fields)


def test_schedule_time_is_honoured(
    client: tasks_v2.CloudTasksClient, make_queue: QueueFactory, target: Target, path: str
) -> None:
    name = make_queue()
    eta = time.time() + 1.2

    client.create_task(parent=name, task=http_task(target.url(path), schedule_at=eta))

    time.sleep(0.8)
    assert target.hits(path) == []
    [hit] = target.wait_for_hits(path, 1, timeout=5)
    assert eta - 0.05 <= hit.received <= eta + 0.5
    assert float(hit.headers["x-cloudtasks-tasketa"]) == pytest.approx(eta, abs=1e-5)


def test_failed_task_is_retried_with_growing_backoff_then_delivered(
    client: tasks_v2.CloudTasksClient, make_queue: QueueFactory, target: Target, path: str
) -> None:
    name = make_queue(retry_config=_fast_retries())
    target.script(path, [Step(500), Step(500), Step(200)])

    client.create_task(parent=name, task=http_task(target.url(path), queue=name, task_id="flaky"))

    first, second, third = target.wait_for_hits(path, 3, timeout=5)
    gap1 = second.received_mono - first.received_mono
    gap2 = third.received_mono - second.received_mono
    assert 0.18 <= gap1 <= 0.5  # min_backoff
    assert 0.38 <= gap2 <= 0.8  # doubled
    assert [h.headers["x-cloudtasks-taskretrycount"] for h in (first, second, third)] == [
        "0",
        "1",
        "2",
    ]
    # HTTP targets do not count 5xx answers as executions.
    assert [h.headers["x-cloudtasks-taskexecutioncount"] for h in (first, second, third)] == [
        "0"
    ] * 3
    assert "x-cloudtasks-taskpreviousresponse" not in first.headers
    assert second.headers["x-cloudtasks-taskpreviousresponse"] == "500"
    wait_until(lambda: not list(client.list_tasks(parent=name)), 5, "the delivered task to go")
    time.sleep(0.5)
    assert len(target.hits(path)) == 3


def test_task_is_dropped_after_max_attempts(
    client: tasks_v2.CloudTasksClient, make_queue: QueueFactory, target: Target, path: str
) -> None:
    name = make_queue(retry_config=_fast_retries(min_backoff=duration(0.1), max_attempts=3))
    target.script(path, [Step(503)] * 10)

    client.create_task(parent=name, task=http_task(target.url(path), queue=name, task_id="doomed"))

    target.wait_for_hits(path, 3, timeout=5)
    wait_until(lambda: not list(client.list_tasks(parent=name)), 5, "the task to be dropped")
    time.sleep(0.8)  # longer than the next backoff would be
    assert len(target.hits(path)) == 3
    with pytest.raises(gexc.Conflict):  # a dropped task's name stays spent
        client.create_task(
            parent=name, task=http_task(target.url(path), queue=name, task_id="doomed")
        )


def test_unlimited_attempts_stop_at_max_retry_duration(
    client: tasks_v2.CloudTasksClient, make_queue: QueueFactory, target: Target, path: str
) -> None:
    retry = _fast_retries(min_backoff=duration(0.1), max_backoff=duration(0.1), max_attempts=-1)
    retry.max_retry_duration = duration(1)
    name = make_queue(retry_config=retry)
    target.script(path, [Step(500)] * 100)

    client.create_task(parent=name, task=http_task(target.url(path)))

    wait_until(lambda: not list(client.list_tasks(parent=name)), 5, "the task to be dropped")
    attempts = len(target.hits(path))
    assert 6 <= attempts <= 13  # every ~0.1 s for ~1 s


def test_dispatch_deadline_exceeded_is_retried(
    client: tasks_v2.CloudTasksClient, make_queue: QueueFactory, target: Target, path: str
) -> None:
    name = make_queue(retry_config=_fast_retries(min_backoff=duration(1)))
    target.script(path, [Step(200, delay=2.0)])  # too slow for the deadline, then fast

    client.create_task(
        parent=name, task=http_task(target.url(path), queue=name, task_id="slow", deadline=0.3)
    )

    target.wait_for_hits(path, 1)
    # After the deadline and before the 1 s backoff ends: a failed attempt without a response.
    time.sleep(0.6)
    task = client.get_task(name=f"{name}/tasks/slow")
    assert task.dispatch_count == 1
    assert task.response_count == 0
    assert task.last_attempt.response_status.code == 4  # DEADLINE_EXCEEDED
    first, second = target.wait_for_hits(path, 2, timeout=5)
    assert second.received_mono - first.received_mono >= 1.2  # deadline + backoff
    assert second.headers["x-cloudtasks-taskretrycount"] == "1"
    assert "x-cloudtasks-taskpreviousresponse" not in second.headers  # no response to report
    wait_until(lambda: not list(client.list_tasks(parent=name)), 5, "the task to complete")


def test_unreachable_target_is_retried(
    client: tasks_v2.CloudTasksClient, make_queue: QueueFactory
) -> None:
    name = make_queue(retry_config=_fast_retries(min_backoff=duration(5)))

    client.create_task(
        parent=name, task=http_task("http://127.0.0.1:9/refused", queue=name, task_id="nowhere")
    )

    task = wait_until(
        lambda: (
            (t := client.get_task(name=f"{name}/tasks/nowhere")).last_attempt.response_time and t
        ),
        5,
        "a failed attempt",
    )
    assert task.dispatch_count == 1
    assert task.last_attempt.response_status.code == 14  # UNAVAILABLE
    assert task.schedule_time.timestamp() > time.time() + 3  # the retry waits its backoff


def test_counters_and_attempts_are_visible(
    client: tasks_v2.CloudTasksClient, make_queue: QueueFactory, target: Target, path: str
) -> None:
    name = make_queue(retry_config=_fast_retries(min_backoff=duration(5)))
    target.script(path, [Step(404)])
    before = time.time()

    client.create_task(parent=name, task=http_task(target.url(path), queue=name, task_id="counted"))

    target.wait_for_hits(path, 1)
    task = wait_until(
        lambda: (t := client.get_task(name=f"{name}/tasks/counted")).response_count and t,
        5,
        "the response to be recorded",
    )
    assert task.dispatch_count == 1
    assert task.response_count == 1
    assert task.first_attempt.dispatch_time.timestamp() >= before - 0.01
    last = task.last_attempt
    assert last.dispatch_time.timestamp() >= before - 0.01
    assert last.response_time.timestamp() >= last.dispatch_time.timestamp()
    assert last.response_status.code == 5  # NOT_FOUND
    assert "404" in last.response_status.message
    assert task.schedule_time.timestamp() >= last.response_time.timestamp() + 4.9


def test_dispatch_carries_cloud_tasks_headers_and_the_task_request(
    client: tasks_v2.CloudTasksClient, make_queue: QueueFactory, target: Target, path: str
) -> None:
    name = make_queue()
    queue_id = name.rpartition("/")[2]

    client.create_task(
        parent=name,
        task=http_task(
            target.url(path),
            queue=name,
            task_id="hdr-1",
            method=tasks_v2.HttpMethod.PUT,
            body=b'{"hello": "world"}',
            headers={
                "Content-Type": "application/json",
                "X-Custom": "kept",
                "X-CloudTasks-TaskName": "forged",  # reserved: Cloud Tasks sets its own
            },
        ),
    )

    [hit] = target.wait_for_hits(path, 1)
    assert hit.method == "PUT"
    assert hit.body == b'{"hello": "world"}'
    assert hit.headers["content-type"] == "application/json"
    assert hit.headers["x-custom"] == "kept"
    assert hit.headers["user-agent"] == "Google-Cloud-Tasks"
    assert hit.headers["x-cloudtasks-queuename"] == queue_id
    assert hit.headers["x-cloudtasks-taskname"] == "hdr-1"
    assert hit.headers["x-cloudtasks-taskretrycount"] == "0"
    assert hit.headers["x-cloudtasks-taskexecutioncount"] == "0"
    assert float(hit.headers["x-cloudtasks-tasketa"]) == pytest.approx(time.time(), abs=5)
    assert "authorization" not in hit.headers


def _claims(token: str) -> dict[str, object]:
    header, payload, signature = token.split(".")
    expected = hmac.new(OIDC_SECRET, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)) == expected
    claims: dict[str, object] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


def test_oidc_token_is_attached_when_requested(
    client: tasks_v2.CloudTasksClient, make_queue: QueueFactory, target: Target, path: str
) -> None:
    name = make_queue()
    email = "invoker@emu-test.iam.gserviceaccount.com"

    client.create_task(
        parent=name,
        task=http_task(target.url(path), oidc=tasks_v2.OidcToken(service_account_email=email)),
    )
    client.create_task(
        parent=name,
        task=http_task(
            target.url(path),
            oidc=tasks_v2.OidcToken(service_account_email=email, audience="https://runner"),
        ),
    )

    hits = target.wait_for_hits(path, 2)
    audiences = set()
    for hit in hits:
        scheme, _, token = hit.headers["authorization"].partition(" ")
        assert scheme == "Bearer"
        claims = _claims(token)
        assert claims["iss"] == "https://accounts.google.com"
        assert claims["email"] == email
        assert isinstance(claims["exp"], int) and claims["exp"] > time.time()
        audiences.add(claims["aud"])
    assert audiences == {target.url(path), "https://runner"}
