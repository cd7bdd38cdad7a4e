"""Property-based fuzzing of the api from its OpenAPI document (schemathesis): for generated
requests to every documented operation, valid and invalid, the api running in-process on the
real emulators answers without a server error, with a documented status, content type, headers
and body. A bounded run is in the default suite; a longer one is marked slow.

The stateful phase chains operations through the links schemathesis infers from the document
(a created session's id into get/send/recover/delete/QR, a sent message's id into its status, a
tenant's id into its keys and webhook): sequences a customer would run, on real resources."""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import functions_framework
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import functions.app
from devstack.provision import environment
from devstack.stack import Stack

pytestmark = pytest.mark.integration

DOC = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
GENEROUS = {
    "sends_per_minute": 100_000,
    "session_creates_per_minute": 10_000,
    "qr_fetches_per_5_minutes": 10_000,
    "max_sessions": 100_000,
}

schema = schemathesis.openapi.from_path(str(DOC))
schema.app = functions_framework.create_app(target="api", source="functions/main.py")


@pytest.fixture(scope="module")
def world(emulators: Stack) -> Iterator[dict[str, str]]:
    """A project of its own on the shared emulators; a tenant with limits far above what the
    fuzzer sends, one of its sessions and messages; another tenant and key for the admin
    routes; and the keys: the admin key for /v1/admin, the tenant's for the rest."""
    project = f"fuzz-{uuid.uuid4().hex[:10]}"
    env = {**emulators.env, "WAGATE_PROJECT_ID": project, "GOOGLE_CLOUD_PROJECT": project}
    env["WAGATE_EVENT_STREAM_HOLD_S"] = "0.5"  # a stream the fuzzer opens ends at once
    env["WAGATE_SESSIONS_PER_SHARD"] = "100000"  # the fuzzer creates sessions by the hundred
    emulators.provision_project(project)
    with environment(env):
        functions.app._gateway = None
        client = schema.app.test_client()

        def post(path: str, key: str, body: dict[str, Any]) -> dict[str, Any]:
            response = client.post(path, json=body, headers={"Authorization": f"Bearer {key}"})
            assert response.status_code < 300, response.get_json()
            result: dict[str, Any] = response.get_json()
            return result

        admin = emulators.admin_key
        tenant = post("/v1/admin/tenants", admin, {"name": "fuzz", "limits": GENEROUS})
        key = tenant["api_key"]
        session = post("/v1/sessions", key, {"name": "fuzzed"})
        message = post(
            f"/v1/sessions/{session['id']}/messages",
            key,
            {"to": "+15551234567", "content": {"type": "text", "body": "seed"}},
        )
        target = post("/v1/admin/tenants", admin, {"name": "target"})
        yield {
            "admin": admin,
            "tenant": key,
            "tenant_id": target["id"],
            "key_id": target["key_id"],
            "session_id": session["id"],
            "message_id": message["id"],
        }
        functions.app._gateway = None


def call_and_validate(case: Any, world: dict[str, str]) -> None:
    admin = case.operation.path.startswith("/v1/admin")
    key = world["admin"] if admin else world["tenant"]
    case.call_and_validate(headers={"Authorization": f"Bearer {key}"}, checks=CHECKS)


def aim_at_real_resources(case: Any, world: dict[str, str]) -> None:
    """Random ids mostly meet a 404 early; real ones take the request through the handler."""
    if case.path_parameters:
        # Ids the world has no resource for (a delivery id) keep the generated value.
        case.path_parameters = {n: world.get(n, v) for n, v in case.path_parameters.items()}


BOUNDED = settings(
    max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
)
LONG = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


@schema.parametrize()
@BOUNDED
def test_no_server_error_nor_off_schema_answer_for_any_request(
    case: Any, world: dict[str, str]
) -> None:
    call_and_validate(case, world)


@schema.parametrize()
@BOUNDED
def test_no_server_error_nor_off_schema_answer_on_real_resources(
    case: Any, world: dict[str, str]
) -> None:
    aim_at_real_resources(case, world)
    call_and_validate(case, world)


@pytest.mark.slow
@schema.parametrize()
@LONG
def test_a_long_fuzzing_run_finds_no_server_error(case: Any, world: dict[str, str]) -> None:
    if case.path_parameters and zlib.crc32(repr(case.body).encode()) % 2:
        aim_at_real_resources(case, world)
    call_and_validate(case, world)


def stateful_run(world: dict[str, str], settings_: settings) -> None:
    workflow = schema.as_state_machine()
    assert len(workflow.bundles) >= 5, "the document's operations lost their links"
    reached: list[str] = []  # operations on an id taken from an earlier answer, answered 2xx

    class Workflow(workflow):  # type: ignore[misc, valid-type]
        def after_call(self, response: Any, case: Any) -> None:
            super().after_call(response, case)
            if "{" in case.operation.path and response.status_code < 300:
                reached.append(f"{case.operation.method.upper()} {case.operation.path}")

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            admin = case.operation.path.startswith("/v1/admin")
            key = world["admin"] if admin else world["tenant"]
            return {"headers": {"Authorization": f"Bearer {key}"}}

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs)

    Workflow.run(settings=settings_)
    # Random ids meet 404s; only the links take a sequence to a real session or message.
    assert reached, "no linked operation reached a real resource"


def test_stateful_sequences_of_linked_operations_find_no_server_error(
    world: dict[str, str],
) -> None:
    stateful_run(
        world,
        settings(
            max_examples=8,
            stateful_step_count=6,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
        ),
    )


@pytest.mark.slow
def test_a_long_stateful_run_finds_no_server_error(world: dict[str, str]) -> None:
    stateful_run(
        world,
        settings(
            max_examples=150,
            stateful_step_count=10,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
