"""The api as a customer meets it: a functions-framework (gunicorn) process on loopback, on the
real emulators, driven over HTTP with concurrent and malformed requests."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.processes import LOCALHOST, free_port
from devstack.stack import Stack
from tests.integration.served import function_launcher, raw_exchange

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Served:
    url: str
    port: int
    admin_key: str


@pytest.fixture
def served_api(emulators: Stack, firestore_env: dict[str, str], tmp_path: Path) -> Iterator[Served]:
    """One api process (as `./dev up` starts it) on the shared emulators, this test's project."""
    launcher = function_launcher(emulators, firestore_env["WAGATE_PROJECT_ID"], tmp_path)
    launcher.ports["api"] = free_port()
    process = launcher.function_service("api")
    launcher.start(process)
    try:
        yield Served(
            f"http://{LOCALHOST}:{launcher.ports['api']}", launcher.ports["api"], launcher.admin_key
        )
    finally:
        process.stop()


def tenant_and_session(served: Served) -> tuple[dict[str, str], str]:
    with httpx.Client(base_url=served.url, timeout=30) as client:
        created = client.post(
            "/v1/admin/tenants",
            json={"name": "racer", "limits": {"sends_per_minute": 1000}},
            headers={"Authorization": f"Bearer {served.admin_key}"},
        )
        assert created.status_code == 201, created.text
        auth = {"Authorization": f"Bearer {created.json()['api_key']}"}
        session = client.post("/v1/sessions", json={"name": "shop"}, headers=auth)
        assert session.status_code == 201, session.text
        return auth, session.json()["id"]


def test_concurrent_requests_with_one_idempotency_key_all_get_the_one_message(
    served_api: Served,
) -> None:
    auth, session_id = tenant_and_session(served_api)
    path = f"/v1/sessions/{session_id}/messages"
    same = {"to": "+15551234567", "content": {"type": "text", "body": "once"}}
    other = {"to": "+15551234567", "content": {"type": "text", "body": "another body"}}

    def post(body: dict[str, Any]) -> tuple[int, Any]:
        # A client of its own per request: 20 connections at once, as 20 customers' retries.
        with httpx.Client(base_url=served_api.url, timeout=30) as client:
            response = client.post(path, json=body, headers={**auth, "Idempotency-Key": "race"})
            return response.status_code, response.json()

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(post, [same] * 20))
    assert [status for status, _ in answers] == [202] * 20, answers
    assert len({body["id"] for _, body in answers}) == 1, answers
    status, refused = post(other)
    assert status == 409, refused
    assert refused["error"]["details"][0]["field"] == "Idempotency-Key"
    with httpx.Client(base_url=served_api.url, timeout=30) as client:
        listed = client.get(path, headers=auth).json()
    assert [m["id"] for m in listed["items"]] == [answers[0][1]["id"]]


def assert_json_error(answer: tuple[int, dict[str, str], bytes], status: int) -> dict[str, Any]:
    import json

    code, headers, body = answer
    assert code == status, (code, headers, body)
    assert headers["content-type"].startswith("application/json"), (headers, body)
    error: dict[str, Any] = json.loads(body)["error"]
    assert error["code"] and error["message"] and error["request_id"], error
    assert headers["x-request-id"] == error["request_id"]
    return error


def test_an_oversized_header_answers_in_the_error_model(served_api: Served) -> None:
    request = (
        b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n"
        b"Connection: close\r\n\r\n"
    )
    assert_json_error(raw_exchange(served_api.port, request), 431)


@pytest.mark.parametrize("header", [b"Idempotency-Key", b"Authorization"])
def test_a_control_character_in_a_header_answers_in_the_error_model(
    served_api: Served, header: bytes
) -> None:
    request = (
        b"GET /v1/sessions HTTP/1.1\r\nHost: x\r\n" + header + b": ab\x01cd\r\n"
        b"Connection: close\r\n\r\n"
    )
    error = assert_json_error(raw_exchange(served_api.port, request), 400)
    assert "header" in error["message"].lower()


def test_a_malformed_request_line_answers_in_the_error_model(served_api: Served) -> None:
    assert_json_error(raw_exchange(served_api.port, b"GARBAGE\r\n\r\n"), 400)
