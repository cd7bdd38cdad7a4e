"""Circuit breakers against a real outage: the api's Cloud Tasks emulator (a private one, so the
session's shared emulators stay up) is stopped, the breaker opens after repeated failures, the
api answers 503 with Retry-After at once and /v1/health shows the open breaker; when the
emulator is back, a trial call closes the breaker again."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.processes import Service
from devstack.provision import environment, provision
from devstack.stack import Stack, StackConfig
from tests.integration.api_client import Api
from wagate.adapters.guard import DependencyGuard

pytestmark = pytest.mark.integration
RESET_S = 3.0  # a short reset timeout keeps the test short; the default is 10 s


@pytest.fixture
def private_tasks(
    emulators: Stack, firestore_env: dict[str, str], tmp_path: Path
) -> Iterator[tuple[Stack, Service, dict[str, str]]]:
    """A Cloud Tasks emulator of this test only, and the environment pointing the api at it."""
    private = Stack(StackConfig(root=tmp_path))
    service = private.tasks_service()
    private.start(service)
    env = {**firestore_env, "WAGATE_TASKS_ENDPOINT": private.url["tasks"]}
    try:
        with environment(env):
            provision(env, shards=1)
            yield private, service, env
    finally:
        private.stop()


def recover(api: Api, key: str, session_id: str) -> Any:
    return api.call("POST", f"/v1/sessions/{session_id}:recover", key)


def test_an_outage_opens_the_breaker_and_its_end_closes_it(
    private_tasks: tuple[Stack, Service, dict[str, str]],
) -> None:
    private, tasks, env = private_tasks
    api = Api()
    from functions.app import gateway

    queue = gateway().queue
    queue.guard = DependencyGuard("tasks", fail_max=3, reset_timeout_s=RESET_S)
    key = api.tenant()["api_key"]
    session = api.call("POST", "/v1/sessions", key, json={"name": "shop"}).get_json()
    assert recover(api, key, session["id"]).status_code == 202

    tasks.stop()
    failures = [recover(api, key, session["id"]) for _ in range(3)]
    assert [r.status_code for r in failures] == [503, 503, 503]
    assert all("circuit open" not in r.get_json()["error"]["message"] for r in failures)
    assert queue.guard.state == "open"

    fast = recover(api, key, session["id"])
    assert fast.status_code == 503
    body = fast.get_json()["error"]
    assert body["code"] == "dependency_unavailable" and "circuit open" in body["message"]
    assert 1 <= int(fast.headers["Retry-After"]) <= RESET_S
    health = api.call("GET", "/v1/health")
    assert health.status_code == 503 and "Retry-After" in health.headers
    assert health.get_json()["status"] == "degraded"
    assert health.get_json()["breakers"] == {
        "firestore": "closed",
        "tasks": "open",
        "storage": "closed",
    }

    private.start(tasks)  # the same emulator comes back (empty: it keeps queues in memory)
    provision(env, shards=1)
    deadline = time.monotonic() + 30
    while (answer := recover(api, key, session["id"])).status_code != 202:
        assert answer.status_code == 503 and time.monotonic() < deadline, answer.get_json()
        time.sleep(0.5)
    assert queue.guard.state == "closed"
    health = api.call("GET", "/v1/health")
    assert health.status_code == 200, health.get_json()
    assert health.get_json()["breakers"]["tasks"] == "closed"
