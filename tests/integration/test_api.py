"""The api function end to end on the real emulators: auth, sessions, accepting messages,
idempotency, validation and the error model."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.api_client import Api
from wagate.contracts import MessageDoc, PendingSend
from wagate.domain.ids import send_task_name
from wagate.domain.messages import MessageStatus

pytestmark = pytest.mark.integration


@pytest.fixture
def api(emulators: Any, firestore_env: dict[str, str]) -> Iterator[Api]:
    emulators.provision_project(firestore_env["WAGATE_PROJECT_ID"])
    yield Api()


def new_session(api: Api, key: str) -> dict[str, Any]:
    response = api.call("POST", "/v1/sessions", key, json={"name": "shop"})
    assert response.status_code == 201, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def post_text(api: Api, key: str, session: dict[str, Any], text: str) -> Any:
    return api.call(
        "POST",
        f"/v1/sessions/{session['id']}/messages",
        key,
        json={"to": "+15551234567", "content": {"type": "text", "body": text}},
    )


def test_a_message_is_written_then_enqueued_under_its_derived_task_name(api: Api) -> None:
    key = api.tenant()["api_key"]
    session = new_session(api, key)
    response = post_text(api, key, session, "Your order shipped")
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    assert body["status"] == "accepted" and body["wa_id"].startswith("3EB0")
    stored = api.call("GET", f"/v1/messages/{body['id']}", key).get_json()
    assert stored["content"]["body"] == "Your order shipped"
    # ... with the pending/{id} entry the runner's per-chat order check looks for.
    from functions.app import gateway

    entry = gateway().store.collection("pending", PendingSend).get(body["id"])
    assert entry is not None and entry.chat == f"{session['id']}|+15551234567"
    from wagate.adapters.tasks import CloudTasksQueue
    from wagate.errors import TaskAlreadyExists
    from wagate.ports import TaskSpec
    from wagate.queues import send_queue

    queue = gateway().queue
    assert isinstance(queue, CloudTasksQueue)
    # The task exists already: creating it again under the same name is refused.
    with pytest.raises(TaskAlreadyExists):
        queue.enqueue(
            TaskSpec(
                queue=send_queue("wagate", 0, "normal"),
                name=send_task_name(body["id"]),
                url="http://127.0.0.1:9/tasks/send",
                body=b"{}",
            )
        )


def test_a_repeated_idempotency_key_returns_the_first_result(api: Api) -> None:
    key = api.tenant()["api_key"]
    session = new_session(api, key)
    request = {"to": "+15551234567", "content": {"type": "text", "body": "hi"}}
    path = f"/v1/sessions/{session['id']}/messages"
    first = api.call("POST", path, key, json=request, headers={"Idempotency-Key": "order-42"})
    again = api.call("POST", path, key, json=request, headers={"Idempotency-Key": "order-42"})
    assert first.status_code == 202 and again.status_code == 202
    assert first.get_json()["id"] == again.get_json()["id"]
    changed = api.call(
        "POST",
        path,
        key,
        json={**request, "content": {"type": "text", "body": "different"}},
        headers={"Idempotency-Key": "order-42"},
    )
    assert changed.status_code == 409
    assert changed.get_json()["error"]["details"][0]["field"] == "Idempotency-Key"
    from functions.app import gateway

    messages = gateway().store.collection("messages", MessageDoc).query()
    assert len(messages) == 1 and messages[0].status is MessageStatus.ACCEPTED
    # The repeats' own tasks (created beside their refused writes) were withdrawn.
    assert send_tasks() == [send_task_name(first.get_json()["id"])]


def send_tasks() -> list[str]:
    """The task names in shard 0's normal send queue (the Tasks emulator's ListTasks)."""
    from functions.app import gateway
    from wagate.adapters.tasks import CloudTasksQueue
    from wagate.queues import send_queue

    queue = gateway().queue
    assert isinstance(queue, CloudTasksQueue)
    parent = queue.queue_path(send_queue("wagate", 0, "normal"))
    return sorted(t.name.rsplit("/", 1)[1] for t in queue._client.list_tasks(parent=parent))


def test_a_failed_write_withdraws_the_task_created_beside_it(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The api creates the task while it writes the message; a write that fails (here: the
    store goes away) must not leave a task that a runner could send from its snapshot."""
    import threading

    from functions.app import gateway
    from wagate.errors import DependencyUnavailable

    key = api.tenant()["api_key"]
    session = new_session(api, key)
    store = gateway().store
    task_created_meanwhile = threading.Event()

    def failing_write(docs: Any) -> None:
        # Concurrency: the task is created while this write is still under way.
        deadline = time.monotonic() + 10
        while not send_tasks() and time.monotonic() < deadline:
            time.sleep(0.02)
        if send_tasks():
            task_created_meanwhile.set()
        raise DependencyUnavailable("Firestore unavailable (test)")

    monkeypatch.setattr(store, "create_together", failing_write)
    response = post_text(api, key, session, "lost?")
    assert response.status_code == 503, response.get_json()
    assert task_created_meanwhile.is_set()
    assert send_tasks() == []  # withdrawn: never dispatched again
    monkeypatch.undo()
    assert store.collection("messages", MessageDoc).query() == []
    assert store.collection("pending", PendingSend).query() == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"to": "not-a-number", "content": {"type": "text", "body": "x"}}, "to"),
        ({"to": "+15551234567", "content": {"type": "text", "body": ""}}, "content.text.body"),
        ({"to": "+15551234567", "content": {"type": "fax"}}, "content"),
        (
            {"to": "+15551234567", "content": {"type": "location", "latitude": 91, "longitude": 0}},
            "content.location.latitude",
        ),
        ({"to": "+15551234567", "content": {"type": "text", "body": "x"}, "extra": 1}, "extra"),
        (
            {"to": "+15551234567", "content": {"type": "text", "body": "x"}, "priority": "urgent"},
            "priority",
        ),
    ],
)
def test_bad_input_gets_a_field_error_and_writes_nothing(
    api: Api, body: dict[str, Any], field: str
) -> None:
    key = api.tenant()["api_key"]
    session = new_session(api, key)
    response = api.call("POST", f"/v1/sessions/{session['id']}/messages", key, json=body)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "validation_failed" and error["request_id"]
    assert field in [d["field"] for d in error["details"]], error
    from functions.app import gateway

    assert gateway().store.collection("messages", MessageDoc).query() == []


def test_errors_are_json_with_codes_never_stack_traces(api: Api) -> None:
    key = api.tenant()["api_key"]
    assert api.call("GET", "/v1/nowhere", key).get_json()["error"]["code"] == "not_found"
    wrong_method = api.call("PATCH", "/v1/sessions", key)
    assert wrong_method.status_code == 405
    assert wrong_method.get_json()["error"]["code"] == "method_not_allowed"
    no_key = api.call("GET", "/v1/sessions")
    assert no_key.status_code == 401
    assert no_key.get_json()["error"]["details"][0]["field"] == "Authorization"
    bad_json = api.call(
        "POST", "/v1/sessions", key, data=b"{not json", content_type="application/json"
    )
    assert bad_json.status_code == 400
    huge = api.call(
        "POST",
        "/v1/sessions/ses_00000000000000000000000000/messages",
        key,
        data=b"x" * (1024 * 1024 + 1),
        content_type="application/json",
    )
    assert huge.status_code == 413
    for response in (wrong_method, no_key, bad_json, huge):
        assert b"Traceback" not in response.data


def test_another_tenants_session_and_message_are_not_found(api: Api) -> None:
    alice = api.tenant("alice")["api_key"]
    bob = api.tenant("bob")["api_key"]
    session = new_session(api, alice)
    sent = api.call(
        "POST",
        f"/v1/sessions/{session['id']}/messages",
        alice,
        json={"to": "+15551234567", "content": {"type": "text", "body": "private"}},
    ).get_json()
    for method, path, body in [
        ("GET", f"/v1/sessions/{session['id']}", None),
        ("DELETE", f"/v1/sessions/{session['id']}", None),
        ("POST", f"/v1/sessions/{session['id']}:recover", None),
        ("GET", f"/v1/sessions/{session['id']}/qr", None),
        ("GET", f"/v1/sessions/{session['id']}/messages", None),
        (
            "POST",
            f"/v1/sessions/{session['id']}/messages",
            {"to": "+15551234567", "content": {"type": "text", "body": "x"}},
        ),
        ("GET", f"/v1/messages/{sent['id']}", None),
    ]:
        response = api.call(method, path, bob, json=body)
        assert response.status_code == 404, (method, path, response.get_json())
        assert b"private" not in response.data


def test_a_revoked_key_is_refused(api: Api) -> None:
    tenant = api.tenant()
    assert api.call("GET", "/v1/sessions", tenant["api_key"]).status_code == 200
    revoked = api.call(
        "DELETE", f"/v1/admin/tenants/{tenant['id']}/keys/{tenant['key_id']}", api.admin_key
    )
    assert revoked.status_code == 204
    assert api.call("GET", "/v1/sessions", tenant["api_key"]).status_code == 401
    assert (
        api.call("POST", "/v1/admin/tenants", tenant["api_key"], json={"name": "x"}).status_code
        == 401
    )


def test_malformed_ids_and_cursors_are_client_errors_in_the_error_model(api: Api) -> None:
    key = api.tenant()["api_key"]
    admin = api.admin_key
    for response in (
        api.call("GET", "/v1/messages/__main__", key),  # not a Firestore document id
        api.call("DELETE", "/v1/admin/tenants/created_at/keys/__main__", admin),
        api.call("GET", "/v1/sessions/a%0Ab", key),  # a newline: no route
        api.call("GET", "/favicon.ico"),
    ):
        assert response.status_code == 404, response.data
        assert response.get_json()["error"]["code"] == "not_found"
    for cursor in ("", "a/b", "__x__"):
        listed = api.call("GET", "/v1/sessions", key, query_string={"cursor": cursor})
        assert listed.status_code == 400, listed.data
        assert listed.get_json()["error"]["details"][0]["field"] == "cursor"


def test_every_answer_says_how_long_the_api_spent_on_it(api: Api) -> None:
    """Server-Timing (W3C) carries the handler's own time, so a client can tell it from the
    network's; errors carry it too."""
    import re

    key = api.tenant()["api_key"]
    session = new_session(api, key)
    accepted = post_text(api, key, session, "timed")
    refused = api.call("GET", "/v1/messages/msg_00000000000000000000000000", key)
    assert accepted.status_code == 202 and refused.status_code == 404
    for response in (accepted, refused):
        timing = re.fullmatch(r"app;dur=(\d+(?:\.\d)?)", response.headers["Server-Timing"])
        assert timing is not None, response.headers
    accepted_ms = float(re.findall(r"dur=([\d.]+)", accepted.headers["Server-Timing"])[0])
    assert accepted_ms > 0  # an accept writes to the emulator: it cannot take 0.0 ms


# ------------------------------------------------------------------ contract details (issue 24)


def test_a_wrong_method_answers_405_with_allow(api: Api) -> None:
    key = api.tenant()["api_key"]
    response = api.call("PUT", "/v1/sessions", key, json={})
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "POST"}
    assert response.get_json()["error"]["code"] == "method_not_allowed"


def test_a_session_is_created_without_a_body_as_the_document_says(api: Api) -> None:
    key = api.tenant()["api_key"]
    assert api.call("POST", "/v1/sessions", key).status_code == 201
    assert api.call("POST", "/v1/sessions", key, json={"name": "x"}).status_code == 201


def test_a_deleted_session_serves_no_qr_code(api: Api) -> None:
    from functions.app import gateway
    from wagate.contracts import SessionDoc

    key = api.tenant()["api_key"]
    session = new_session(api, key)
    gateway().store.collection("sessions", SessionDoc).patch(session["id"], {"qr": "2@pairme"})
    qr = f"/v1/sessions/{session['id']}/qr"
    assert api.call("GET", qr, key).mimetype == "image/png"
    assert api.call("DELETE", f"/v1/sessions/{session['id']}", key).status_code == 202
    gone = api.call("GET", qr, key)
    assert gone.status_code == 404, gone.data[:100]
    assert gone.get_json()["error"]["code"] == "not_found"


def test_a_deleted_session_is_not_revived_by_recover(api: Api) -> None:
    from functions.app import gateway
    from wagate.contracts import SessionDoc

    key = api.tenant()["api_key"]
    session = new_session(api, key)
    assert api.call("DELETE", f"/v1/sessions/{session['id']}", key).status_code == 202
    sessions = gateway().store.collection("sessions", SessionDoc)
    deleted = sessions.get(session["id"])
    assert deleted is not None
    answer = api.call("POST", f"/v1/sessions/{session['id']}:recover", key)
    assert answer.status_code == 404, answer.get_json()
    error = answer.get_json()["error"]
    assert error["code"] == "not_found" and error["message"]
    assert error["details"][0]["field"] == "session_id", error
    assert sessions.get(session["id"]) == deleted  # nothing written: it stays deleted


@pytest.mark.parametrize("send_at", [-1, "2001-01-01T00:00:00Z"])
def test_a_send_at_long_past_is_refused(api: Api, send_at: Any) -> None:
    key = api.tenant()["api_key"]
    session = new_session(api, key)
    response = api.call(
        "POST",
        f"/v1/sessions/{session['id']}/messages",
        key,
        json={"to": "+15551234567", "content": {"type": "text", "body": "x"}, "send_at": send_at},
    )
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"]["details"][0]["field"] == "send_at"


def test_a_send_at_a_moment_ago_means_now(api: Api) -> None:
    from datetime import UTC, datetime, timedelta

    key = api.tenant()["api_key"]
    session = new_session(api, key)
    moment_ago = (datetime.now(UTC) - timedelta(seconds=90)).isoformat()
    response = api.call(
        "POST",
        f"/v1/sessions/{session['id']}/messages",
        key,
        json={
            "to": "+15551234567",
            "content": {"type": "text", "body": "x"},
            "send_at": moment_ago,
        },
    )
    assert response.status_code == 202, response.get_json()


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("text/plain", 415),
        ("application/x-www-form-urlencoded", 415),  # curl -d without -H
        ("application/json; charset=utf-8", 202),
        ("application/vnd.wagate+json", 202),
    ],
)
def test_a_json_body_needs_a_json_media_type(api: Api, content_type: str, status: int) -> None:
    key = api.tenant()["api_key"]
    session = new_session(api, key)
    response = api.call(
        "POST",
        f"/v1/sessions/{session['id']}/messages",
        key,
        data=b'{"to": "+15551234567", "content": {"type": "text", "body": "x"}}',
        headers={"Content-Type": content_type},
    )
    assert response.status_code == status, response.get_json()
    if status == 415:
        assert response.get_json()["error"]["code"] == "unsupported_media_type"


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("application/x-msdownload", 415),
        ("application/octet-stream", 415),
        ("image/svg+xml", 415),
        ("image/png", 201),
        ("application/pdf", 201),
        ("audio/ogg; codecs=opus", 201),
    ],
)
def test_only_media_whatsapp_can_send_is_uploaded(
    api: Api, gcs_env: Any, content_type: str, status: int
) -> None:
    key = api.tenant()["api_key"]
    response = api.call(
        "POST", "/v1/media", key, data=b"\x89PNG fake", headers={"Content-Type": content_type}
    )
    assert response.status_code == status, response.get_json()


def test_a_media_file_is_served_to_its_tenant_only(api: Api, gcs_env: Any) -> None:
    """GET /v1/media/{id}: the bytes with their type and SHA-256; another tenant's id, or an id
    that is not one, is 404 (received files share the layout: tests/e2e/test_inbound_media.py)."""
    import hashlib

    owner, other = api.tenant()["api_key"], api.tenant()["api_key"]
    data = b"%PDF-1.7 " + bytes(range(256)) * 40
    uploaded = api.call(
        "POST", "/v1/media", owner, data=data, headers={"Content-Type": "application/pdf"}
    )
    assert uploaded.status_code == 201, uploaded.get_json()
    media_id = uploaded.get_json()["id"]
    got = api.call("GET", f"/v1/media/{media_id}", owner)
    assert got.status_code == 200 and got.data == data
    assert got.headers["Content-Type"] == "application/pdf"
    assert got.headers["X-Wagate-Sha256"] == hashlib.sha256(data).hexdigest()
    assert got.headers["ETag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    for key, path in ((other, media_id), (owner, "med_" + "0" * 26), (owner, "..%2Fx")):
        missing = api.call("GET", f"/v1/media/{path}", key)
        assert missing.status_code == 404, (path, missing.get_json())
        assert missing.get_json()["error"]["code"] == "not_found"
    assert api.call("GET", f"/v1/media/{media_id}", None).status_code == 401


def test_recover_under_a_runner_writing_the_session_answers_in_time(api: Api) -> None:
    """The runner writes a pairing session's document often (pairing code, state); a recover
    meanwhile must not wait out retries: 202, or 409/503 with Retry-After, well inside the
    30 s request timeout."""
    import threading
    from datetime import UTC, datetime

    from functions.app import gateway
    from wagate.contracts import SessionDoc

    key = api.tenant()["api_key"]
    response = api.call(
        "POST", "/v1/sessions", key, json={"name": "pairing", "pairing_phone": "+15551234567"}
    )
    assert response.status_code == 201, response.get_json()
    session_id = response.get_json()["id"]
    sessions = gateway().store.collection("sessions", SessionDoc)
    stop = threading.Event()

    def runner_writes() -> None:
        while not stop.is_set():
            sessions.patch(session_id, {"updated_at": datetime.now(UTC)})

    writers = [threading.Thread(target=runner_writes) for _ in range(4)]
    for writer in writers:
        writer.start()
    try:
        answers = []
        for _ in range(3):
            started = time.monotonic()
            answer = api.call("POST", f"/v1/sessions/{session_id}:recover", key)
            answers.append((answer.status_code, time.monotonic() - started, answer.headers))
    finally:
        stop.set()
        for writer in writers:
            writer.join()
    for status, seconds, headers in answers:
        assert status in (202, 409, 503), answers
        assert status == 202 or "Retry-After" in headers, answers
        assert seconds < 20, answers
    assert any(status == 202 for status, _, _ in answers), answers


# ------------------------------------------------------------------ session quotas


def test_a_tenant_has_at_most_its_max_sessions(api: Api) -> None:
    key = api.tenant()["api_key"]
    created = [api.call("POST", "/v1/sessions", key, json={}) for _ in range(6)]
    assert [c.status_code for c in created] == [201] * 5 + [409]
    error = created[-1].get_json()["error"]
    assert error["code"] == "session_quota_exceeded" and "5" in error["message"]
    health = api.call("GET", "/v1/health", key).get_json()
    assert health["tenant"] == {"sessions": 5, "max_sessions": 5}
    # A deleted session frees its place.
    assert api.call("DELETE", f"/v1/sessions/{created[0].get_json()['id']}", key).status_code == 202
    assert api.call("POST", "/v1/sessions", key, json={}).status_code == 201
    # An admin raises the cap per tenant, like the other limits.
    raised = api.tenant("big", limits={"max_sessions": 7})["api_key"]
    statuses = [api.call("POST", "/v1/sessions", raised, json={}).status_code for _ in range(8)]
    assert statuses == [201] * 7 + [409]


def test_a_full_shard_is_never_assigned_and_all_full_is_said_clearly(
    emulators: Any, firestore_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WAGATE_SESSIONS_PER_SHARD", "3")
    emulators.provision_project(firestore_env["WAGATE_PROJECT_ID"])
    api = Api()
    first, second = api.tenant("a")["api_key"], api.tenant("b")["api_key"]
    assert [api.call("POST", "/v1/sessions", first).status_code for _ in range(3)] == [201] * 3
    full = api.call("POST", "/v1/sessions", second)
    assert full.status_code == 503, full.get_json()
    assert full.get_json()["error"]["code"] == "shards_full"
    assert "full" in full.get_json()["error"]["message"] and full.headers["Retry-After"]
    health = api.call("GET", "/v1/health").get_json()
    assert health["capacity"] == {
        "shards": [{"shard": 0, "sessions": 3, "capacity": 3}],
        "free": 0,
    }
    assert "tenant" not in health or health["tenant"] is None
