"""Chat actions at the api on the real emulators (docs/messaging.md, "Chat actions"): each is
queued as a message of its chat with its own id, task and pending entry; what cannot be done is
refused with a code and the field at fault, and nothing is written then."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.integration.api_client import Api
from tests.integration.test_api import new_session, post_text
from wagate.contracts import InboundDoc, MessageDoc, PendingSend

pytestmark = pytest.mark.integration
TO = "+15551234567"


@pytest.fixture
def api(emulators: Any, firestore_env: dict[str, str]) -> Iterator[Api]:
    emulators.provision_project(firestore_env["WAGATE_PROJECT_ID"])
    yield Api()


def store() -> Any:
    from functions.app import gateway

    return gateway().store


def sent_text(api: Api, key: str, session: dict[str, Any], *, minutes_ago: float) -> str:
    """A text the runner sent `minutes_ago` (its status written as the runner would)."""
    message_id: str = post_text(api, key, session, "hello").get_json()["id"]
    at = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    store().collection("messages", MessageDoc).patch(
        message_id, {"status": "sent", "status_times.sent": at}
    )
    return message_id


def error(response: Any) -> tuple[int, str, str | None]:
    body = response.get_json()["error"]
    return response.status_code, body["code"], (body["details"] or [{}])[0].get("field")


def messages_of(session: dict[str, Any]) -> list[MessageDoc]:
    from wagate.ports import Where

    docs: list[MessageDoc] = (
        store().collection("messages", MessageDoc).query([Where("session_id", "==", session["id"])])
    )
    return docs


def test_an_edit_is_queued_in_its_messages_chat_with_its_own_id(api: Api) -> None:
    key = api.tenant()["api_key"]
    session = new_session(api, key)
    target = sent_text(api, key, session, minutes_ago=1)
    response = api.call("PATCH", f"/v1/messages/{target}", key, json={"text": "hello!"})
    assert response.status_code == 202, response.get_json()
    action = response.get_json()
    assert action["id"] != target and action["status"] == "accepted"
    assert action["to"] == TO and action["wa_id"].startswith("3EB0")
    assert action["content"] == {"type": "edit", "message_id": target, "body": "hello!"}
    entry = store().collection("pending", PendingSend).get(action["id"])
    assert entry is not None and entry.chat == f"{session['id']}|{TO}"  # the chat's order
    shown = api.call("GET", f"/v1/messages/{action['id']}", key).get_json()
    assert shown["status"] == "accepted" and shown["content"]["type"] == "edit"
    # The edited message shows the edit once WhatsApp has it (the runner writes it then).
    assert api.call("GET", f"/v1/messages/{target}", key).get_json()["edits"] == []


def test_a_text_not_sent_yet_can_be_edited_and_revoked_the_actions_wait_for_it(api: Api) -> None:
    key = api.tenant()["api_key"]
    session = new_session(api, key)
    target = post_text(api, key, session, "soon").get_json()["id"]
    edit = api.call("PATCH", f"/v1/messages/{target}", key, json={"text": "sooner"})
    revoke = api.call("DELETE", f"/v1/messages/{target}", key)
    assert (edit.status_code, revoke.status_code) == (202, 202)
    ids = sorted(m.id for m in messages_of(session))
    assert ids == sorted([target, edit.get_json()["id"], revoke.get_json()["id"]])


def test_another_tenants_message_is_not_found(api: Api) -> None:
    owner = api.tenant("owner")["api_key"]
    other = api.tenant("other")["api_key"]
    target = sent_text(api, owner, new_session(api, owner), minutes_ago=1)
    for method, body in (("PATCH", {"text": "mine now"}), ("DELETE", None)):
        response = api.call(method, f"/v1/messages/{target}", other, json=body)
        assert error(response) == (404, "not_found", "message_id")


def test_only_a_text_can_be_edited_and_a_reaction_cannot_be_revoked(api: Api) -> None:
    key = api.tenant()["api_key"]
    session = new_session(api, key)
    path = f"/v1/sessions/{session['id']}/messages"
    location = {"type": "location", "latitude": 1.0, "longitude": 2.0}
    reaction = {"type": "reaction", "message_id": "3EB0AB", "emoji": "👍"}
    ids = [
        api.call("POST", path, key, json={"to": TO, "content": c}).get_json()["id"]
        for c in (location, reaction)
    ]
    before = len(messages_of(session))
    edited = api.call("PATCH", f"/v1/messages/{ids[0]}", key, json={"text": "x"})
    assert error(edited) == (422, "not_editable", "message_id")
    revoked = api.call("DELETE", f"/v1/messages/{ids[1]}", key)
    assert error(revoked) == (422, "not_revocable", "message_id")
    assert api.call("DELETE", f"/v1/messages/{ids[0]}", key).status_code == 202  # a location can
    assert len(messages_of(session)) == before + 1


def test_past_the_window_an_edit_is_refused_and_a_revoke_still_allowed(api: Api) -> None:
    key = api.tenant()["api_key"]
    session = new_session(api, key)
    target = sent_text(api, key, session, minutes_ago=16)
    response = api.call("PATCH", f"/v1/messages/{target}", key, json={"text": "late"})
    assert error(response) == (409, "edit_window_expired", "message_id")
    assert "15 minutes" in response.get_json()["error"]["message"]
    assert api.call("DELETE", f"/v1/messages/{target}", key).status_code == 202
    old = sent_text(api, key, session, minutes_ago=61 * 60)
    assert error(api.call("DELETE", f"/v1/messages/{old}", key)) == (
        409,
        "revoke_window_expired",
        "message_id",
    )


def test_a_dead_message_cannot_be_edited_or_revoked(api: Api) -> None:
    key = api.tenant()["api_key"]
    session = new_session(api, key)
    target = post_text(api, key, session, "never arrived").get_json()["id"]
    store().collection("messages", MessageDoc).patch(target, {"status": "dead"})
    for method, body in (("PATCH", {"text": "x"}), ("DELETE", None)):
        response = api.call(method, f"/v1/messages/{target}", key, json=body)
        assert error(response) == (409, "message_dead", "message_id")


def test_an_idempotency_key_repeat_returns_the_first_action_and_another_target_conflicts(
    api: Api,
) -> None:
    key = api.tenant()["api_key"]
    session = new_session(api, key)
    first_target = sent_text(api, key, session, minutes_ago=1)
    other_target = sent_text(api, key, session, minutes_ago=1)
    headers = {"Idempotency-Key": "fix-typo-1"}
    body = {"text": "fixed"}
    first = api.call("PATCH", f"/v1/messages/{first_target}", key, json=body, headers=headers)
    again = api.call("PATCH", f"/v1/messages/{first_target}", key, json=body, headers=headers)
    assert (first.status_code, again.status_code) == (202, 202)
    assert first.get_json()["id"] == again.get_json()["id"]
    elsewhere = api.call("PATCH", f"/v1/messages/{other_target}", key, json=body, headers=headers)
    assert error(elsewhere) == (409, "conflict", "Idempotency-Key")


def received(session_id: str, wa_id: str, seconds_ago: float, chat: str) -> InboundDoc:
    return InboundDoc(
        id=wa_id,
        session_id=session_id,
        tenant_id="t",
        chat=chat,
        sender=chat,
        kind="text",
        content={"body": wa_id},
        ts=datetime.now(UTC) - timedelta(seconds=seconds_ago),
    )


def test_mark_read_names_the_chats_received_messages_up_to_the_one_given(api: Api) -> None:
    key = api.tenant()["api_key"]
    session = new_session(api, key)
    inbound = store().subcollection("sessions", session["id"], "inbound", InboundDoc)
    chat = "15551234567@s.whatsapp.net"
    for wa_id, ago in (("3EB0A", 30), ("3EB0B", 20), ("3EB0C", 10)):
        inbound.create(received(session["id"], wa_id, ago, chat))
    inbound.create(received(session["id"], "3EB0ELSE", 15, "15559990000@s.whatsapp.net"))
    path = f"/v1/sessions/{session['id']}/chats/{TO}:read"
    response = api.call("POST", path, key, json={"up_to": "3EB0B"})
    assert response.status_code == 202, response.get_json()
    content = response.get_json()["content"]
    assert content["wa_ids"] == ["3EB0A", "3EB0B"] and content["chat_jid"] == chat
    assert response.get_json()["to"] == TO  # the chat as the tenant writes it: its sends' order
    unknown = api.call("POST", path, key, json={"up_to": "3EB0NOPE"})
    assert error(unknown) == (404, "not_found", "up_to")
    elsewhere = api.call("POST", path, key, json={"up_to": "3EB0ELSE"})
    assert error(elsewhere) == (404, "not_found", "up_to")
    for malformed in ("..", "a/b", ""):
        response = api.call("POST", path, key, json={"up_to": malformed})
        assert error(response) == (400, "validation_failed", "up_to"), malformed


def test_presence_takes_typing_recording_paused_and_refuses_the_rest(api: Api) -> None:
    key = api.tenant()["api_key"]
    session = new_session(api, key)
    path = f"/v1/sessions/{session['id']}/chats/{TO}:presence"
    for state in ("typing", "recording", "paused"):
        response = api.call("POST", path, key, json={"state": state})
        assert response.status_code == 202 and response.get_json()["content"]["state"] == state
    assert error(api.call("POST", path, key, json={"state": "online"}))[:2] == (
        400,
        "validation_failed",
    )
    bad_chat = f"/v1/sessions/{session['id']}/chats/not-a-chat:presence"
    assert api.call("POST", bad_chat, key, json={"state": "typing"}).status_code == 404


def test_delete_is_idempotent_a_repeat_returns_the_first_revoke(api: Api) -> None:
    key = api.tenant()["api_key"]
    session = new_session(api, key)
    target = sent_text(api, key, session, minutes_ago=1)
    first = api.call("DELETE", f"/v1/messages/{target}", key)
    again = api.call("DELETE", f"/v1/messages/{target}", key)
    assert (first.status_code, again.status_code) == (202, 202)
    assert first.get_json()["id"] == again.get_json()["id"]
    # Once the revoke is sent (the runner records it on the message), still the same answer.
    revoked = {"action_id": first.get_json()["id"], "at": datetime.now(UTC)}
    store().collection("messages", MessageDoc).patch(target, {"revoked": revoked})
    later = api.call("DELETE", f"/v1/messages/{target}", key)
    assert (later.status_code, later.get_json()["id"]) == (202, first.get_json()["id"])
    assert len([m for m in messages_of(session) if m.content.type == "revoke"]) == 1
