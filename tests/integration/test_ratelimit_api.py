"""Per-tenant rate limits on the real Firestore emulator: the 429 and its headers, and a limit
that holds across two real api processes sharing the emulator."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.processes import Service, free_port
from devstack.stack import Stack
from tests.integration.api_client import Api
from tests.integration.served import function_launcher

pytestmark = pytest.mark.integration


def in_a_fresh_window(window_s: int, need_s: float) -> None:
    """Windows are aligned to the clock: wait for the next one if this one is nearly over."""
    left = window_s - time.time() % window_s
    if left < need_s:
        time.sleep(left + 0.1)


@pytest.fixture
def api(emulators: Any, firestore_env: dict[str, str]) -> Iterator[Api]:
    emulators.provision_project(firestore_env["WAGATE_PROJECT_ID"])
    yield Api()


def send(api: Api, key: str, session_id: str) -> Any:
    return api.call(
        "POST",
        f"/v1/sessions/{session_id}/messages",
        key,
        json={"to": "+15551234567", "content": {"type": "text", "body": "hi"}},
    )


def test_sends_over_the_limit_get_429_with_rate_limit_headers(api: Api) -> None:
    key = api.tenant(limits={"sends_per_minute": 3})["api_key"]
    session = api.call("POST", "/v1/sessions", key, json={"name": "shop"}).get_json()
    in_a_fresh_window(60, 5)
    answers = [send(api, key, session["id"]) for _ in range(4)]
    assert [a.status_code for a in answers] == [202, 202, 202, 429]
    for answer in answers:
        assert answer.headers["RateLimit-Limit"] == "3"
        assert 1 <= int(answer.headers["RateLimit-Reset"]) <= 60
    assert [int(a.headers["RateLimit-Remaining"]) for a in answers] == [2, 1, 0, 0]
    refused = answers[-1]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    error = refused.get_json()["error"]
    assert error["code"] == "rate_limited" and error["request_id"]
    # Other routes have their own quota: the session can still be read.
    assert api.call("GET", f"/v1/sessions/{session['id']}", key).status_code == 200


def test_qr_fetches_and_session_creates_have_their_default_limits(api: Api) -> None:
    key = api.tenant(limits={"max_sessions": 20})["api_key"]  # the rate limit comes first
    in_a_fresh_window(60, 10)
    created = [api.call("POST", "/v1/sessions", key, json={"name": "s"}) for _ in range(11)]
    assert [c.status_code for c in created].count(201) == 10
    assert created[-1].status_code == 429
    session_id = created[0].get_json()["id"]
    in_a_fresh_window(300, 10)
    qr = [api.call("GET", f"/v1/sessions/{session_id}/qr", key) for _ in range(6)]
    # No runner is pairing here, so there is no QR yet (404); the sixth fetch is refused first.
    assert [q.status_code for q in qr] == [404] * 5 + [429]
    assert qr[-1].headers["RateLimit-Limit"] == "5"


@pytest.fixture
def two_api_processes(
    emulators: Stack, firestore_env: dict[str, str], tmp_path: Path
) -> Iterator[tuple[list[str], str]]:
    """Two functions-framework processes of the api on the shared emulators (this test's
    project), started by the stack launcher."""
    launcher = function_launcher(emulators, firestore_env["WAGATE_PROJECT_ID"], tmp_path)
    processes: list[Service] = []
    try:
        for _ in range(2):
            launcher.ports["api"] = free_port()
            processes.append(launcher.function_service("api"))
        launcher.start(*processes)
        yield (
            [p.health_url.removesuffix("/v1/health") for p in processes if p.health_url],
            (launcher.admin_key),
        )
    finally:
        for process in processes:
            process.stop()


def test_a_limit_holds_across_two_api_processes(two_api_processes: tuple[list[str], str]) -> None:
    urls, admin_key = two_api_processes
    clients = [httpx.Client(base_url=url, timeout=30) for url in urls]
    limit = 20
    created = clients[0].post(
        "/v1/admin/tenants",
        json={"name": "shared", "limits": {"sends_per_minute": limit}},
        headers={"Authorization": f"Bearer {admin_key}"},
    )
    assert created.status_code == 201, created.text
    auth = {"Authorization": f"Bearer {created.json()['api_key']}"}
    session = clients[1].post("/v1/sessions", json={"name": "shop"}, headers=auth).json()
    path = f"/v1/sessions/{session['id']}/messages"
    body = {"to": "+15551234567", "content": {"type": "text", "body": "hi"}}

    def post(i: int) -> int:
        return clients[i % 2].post(path, json=body, headers=auth).status_code

    in_a_fresh_window(60, 10)
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(post, range(2 * limit + 6)))
    assert sorted(set(statuses)) == [202, 429], statuses
    assert statuses.count(202) == limit
    for client in clients:
        client.close()


def test_a_repeat_by_idempotency_key_gets_its_first_answer_even_at_the_limit(api: Api) -> None:
    """A client that lost the answer and retries must learn that its send went, not get a 429
    (nor a second message); a key reused with another body is still a 409."""
    key = api.tenant(limits={"sends_per_minute": 3})["api_key"]
    session = api.call("POST", "/v1/sessions", key, json={"name": "shop"}).get_json()
    path = f"/v1/sessions/{session['id']}/messages"
    body = {"to": "+15551234567", "content": {"type": "text", "body": "order 1042 shipped"}}

    def post(idempotency_key: str | None, payload: dict[str, Any] = body) -> Any:
        headers = {} if idempotency_key is None else {"Idempotency-Key": idempotency_key}
        return api.call("POST", path, key, json=payload, headers=headers)

    in_a_fresh_window(60, 10)
    first = post("order-1042")
    assert first.status_code == 202
    assert [post("order-1043").status_code, post(None).status_code] == [202, 202]
    assert post("order-1044").status_code == 429  # the limit is spent
    assert post(None).status_code == 429

    repeat = post("order-1042")
    assert repeat.status_code == 202, repeat.get_json()
    assert repeat.get_json()["id"] == first.get_json()["id"]
    assert repeat.headers["RateLimit-Remaining"] == "0"
    other = post("order-1042", {**body, "content": {"type": "text", "body": "something else"}})
    assert other.status_code == 409
    assert other.get_json()["error"]["details"][0]["field"] == "Idempotency-Key"
    listed = api.call("GET", path, key).get_json()
    assert len(listed["items"]) == 3

    # A chat action's repeat too (actions count against the same limit as sends).
    key = api.tenant(name="shop-2", limits={"sends_per_minute": 2})["api_key"]
    session = api.call("POST", "/v1/sessions", key, json={"name": "shop"}).get_json()
    path = f"/v1/sessions/{session['id']}/messages"
    action = f"/v1/sessions/{session['id']}/chats/+15551234567:presence"

    def presence(state: str, idempotency_key: str) -> Any:
        headers = {"Idempotency-Key": idempotency_key}
        return api.call("POST", action, key, json={"state": state}, headers=headers)

    in_a_fresh_window(60, 10)
    typing = presence("typing", "t1")
    assert typing.status_code == 202, typing.get_json()
    assert [post(None).status_code, post(None).status_code] == [202, 429]
    again = presence("typing", "t1")
    assert again.status_code == 202 and again.get_json()["id"] == typing.get_json()["id"]
    assert presence("paused", "t1").status_code == 409
    assert presence("paused", "t2").status_code == 429
