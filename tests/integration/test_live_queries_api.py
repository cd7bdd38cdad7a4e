"""The api's questions for a runner when the runner is not there, on the real emulators: a
connected session whose runner URL answers nothing gets 503 runner_unreachable with
Retry-After, at once and with nothing cached; the route's errors keep the error model."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.api_client import Api
from wagate.contracts import SessionDoc
from wagate.contracts.directory import ContactDoc
from wagate.domain.sessions import SessionState

pytestmark = pytest.mark.integration


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def api(
    emulators: Any, firestore_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Api]:
    emulators.provision_project(firestore_env["WAGATE_PROJECT_ID"])
    monkeypatch.setenv("WAGATE_RUNNER_URLS", closed_port_url())
    yield Api()


def connected_session(api: Api, key: str) -> str:
    from functions.app import gateway

    created = api.call("POST", "/v1/sessions", key, json={"name": "shop"})
    assert created.status_code == 201, created.get_json()
    sid: str = created.get_json()["id"]
    gateway().store.collection("sessions", SessionDoc).patch(
        sid, {"state": SessionState.CONNECTED.value}
    )
    return sid


def test_an_unreachable_runner_is_503_with_retry_after_and_caches_nothing(api: Api) -> None:
    from functions.app import gateway

    key = api.tenant()["api_key"]
    sid = connected_session(api, key)
    for method, path, body in (
        ("POST", f"/v1/sessions/{sid}/contacts:check", {"numbers": ["+15550001111"]}),
        ("GET", f"/v1/sessions/{sid}/groups", None),
        ("POST", f"/v1/sessions/{sid}/groups", {"subject": "x", "participants": ["+15550001111"]}),
    ):
        answer = api.call(method, path, key, json=body)
        assert answer.status_code == 503, (path, answer.get_json())
        assert answer.get_json()["error"]["code"] == "runner_unreachable"
        assert int(answer.headers["Retry-After"]) >= 1
    tenant_id = gateway().store.collection("sessions", SessionDoc).get(sid).tenant_id  # type: ignore[union-attr]
    cache = gateway().store.collection("contacts", ContactDoc)
    assert cache.get(f"{tenant_id}:15550001111") is None


def test_another_tenants_session_is_404_and_a_bad_body_names_its_field(api: Api) -> None:
    key, other = api.tenant()["api_key"], api.tenant("other")["api_key"]
    sid = connected_session(api, key)
    hidden = api.call(
        "POST", f"/v1/sessions/{sid}/contacts:check", other, json={"numbers": ["+15550001111"]}
    )
    assert hidden.status_code == 404
    too_many = api.call(
        "POST",
        f"/v1/sessions/{sid}/contacts:check",
        key,
        json={"numbers": [f"+1555000{i:04d}" for i in range(51)]},
    )
    assert too_many.status_code == 400
    assert too_many.get_json()["error"]["details"][0]["field"] == "numbers"
    bad_group = api.call("GET", f"/v1/sessions/{sid}/groups/not-a-group", key)
    assert bad_group.status_code == 400
    assert bad_group.get_json()["error"]["details"][0]["field"] == "group"
