"""Chat actions on the whole system (docs/messaging.md, "Chat actions"): an edit and a revoke
reach the recipient in order with the chat's sends, the edited message keeps its history, and a
contact's edits and revokes reach the tenant's webhook as their own signed events."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.receiver import webhook_receiver
from tests.e2e.system import System, eventually
from tests.e2e.test_messaging import recipient
from tests.e2e.test_sessions import phone
from wagate.services.webhooks import SIGNATURE_HEADER, verify

pytestmark = pytest.mark.integration
DONE = ("sent", "delivered", "read")


@pytest.fixture
def account(system: System) -> Iterator[tuple[str, dict[str, Any]]]:
    key = system.tenant(limits={"pacing_per_second": 50, "pacing_burst": 50})["api_key"]
    yield key, system.paired_session(key, phone(60))


def accepted(response: Any) -> dict[str, Any]:
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


def test_an_edit_and_a_revoke_reach_the_recipient_in_order_with_the_chats_sends(
    system: System, account: tuple[str, dict[str, Any]]
) -> None:
    key, session = account
    to = recipient(7)
    # Asked for back to back: the edit and the revoke are accepted before their message is sent.
    first = system.send(key, session["id"], to, "Your order ships Monday")
    edit = accepted(
        system.call(
            "PATCH",
            f"/v1/messages/{first['id']}",
            key,
            json={"text": "Your order ships Tuesday"},
            headers={"Idempotency-Key": "fix-day"},
        )
    )
    second = system.send(key, session["id"], to, "Tracking: 1Z999")
    revoke = accepted(system.call("DELETE", f"/v1/messages/{first['id']}", key))
    third = system.send(key, session["id"], to, "Sorry for the confusion")
    for done in (first, edit, second, revoke, third):
        system.wait_status(key, done["id"], DONE)

    got = system.received(to)
    assert [(m["id"], m["kind"]) for m in got] == [
        (first["wa_id"], "text"),
        (edit["wa_id"], "edit"),
        (second["wa_id"], "text"),
        (revoke["wa_id"], "revoke"),
        (third["wa_id"], "text"),
    ]
    assert got[1]["content"] == {"message_id": first["wa_id"], "body": "Your order ships Tuesday"}
    assert got[3]["content"] == {"message_id": first["wa_id"]}

    shown = system.message(key, first["id"])
    assert shown["content"]["body"] == "Your order ships Monday"  # the original stays
    assert [(e["action_id"], e["text"]) for e in shown["edits"]] == [
        (edit["id"], "Your order ships Tuesday")
    ]
    assert shown["revoked"]["action_id"] == revoke["id"]
    # Revoked: nothing more to do with it.
    late = system.call("PATCH", f"/v1/messages/{first['id']}", key, json={"text": "again"})
    assert (late.status_code, late.json()["error"]["code"]) == (409, "message_revoked")


def test_a_contacts_edit_and_revoke_reach_the_webhook_as_their_own_events(
    system: System,
) -> None:
    with webhook_receiver() as hooks:
        tenant = system.tenant(
            webhook_url=hooks.url + "/hooks",
            limits={"pacing_per_second": 50, "pacing_burst": 50},
        )
        key, secret = tenant["api_key"], tenant["webhook_secret"]
        writer_phone, reader_phone = phone(61), phone(62)
        writer = system.paired_session(key, writer_phone)
        reader = system.paired_session(key, reader_phone)
        # The writer session is the reader's contact: what it sends, the reader receives.
        hello = system.send(key, writer["id"], reader_phone, "hello")
        system.wait_status(key, hello["id"], DONE)
        edit = accepted(
            system.call("PATCH", f"/v1/messages/{hello['id']}", key, json={"text": "hello!"})
        )
        system.wait_status(key, edit["id"], DONE)
        revoke = accepted(system.call("DELETE", f"/v1/messages/{hello['id']}", key))
        system.wait_status(key, revoke["id"], DONE)

        def reader_events() -> list[dict[str, Any]] | None:
            mine = [e for e in hooks.events() if e["session_id"] == reader["id"]]
            types = [e["type"] for e in mine]
            wanted = ["message.received", "message.edited", "message.revoked"]
            return mine if all(t in types for t in wanted) else None

        events = {e["type"]: e for e in eventually(reader_events, timeout=30)}
        assert events["message.received"]["data"]["id"] == hello["wa_id"]
        edited = events["message.edited"]["data"]
        assert edited["kind"] == "edit" and edited["id"] == edit["wa_id"]
        assert edited["content"] == {"message_id": hello["wa_id"], "body": "hello!"}
        revoked = events["message.revoked"]["data"]
        assert revoked["content"] == {"message_id": hello["wa_id"]}
        for _, headers, body, _ in hooks.deliveries:
            assert verify(secret, headers[SIGNATURE_HEADER], body)
        changes = [
            h for _, h, _, _ in hooks.deliveries if h["X-Wagate-Event-Type"] != "session.state"
        ]
        assert {h["X-Wagate-Event-Type"] for h in changes} >= {"message.edited", "message.revoked"}


def test_a_read_and_a_presence_reach_the_contact_through_the_whole_system(
    system: System, account: tuple[str, dict[str, Any]]
) -> None:
    key, session = account
    contact = recipient(9)
    me = session["jid"].split(":")[0].split("@")[0]
    for n in (1, 2):
        system.control("inbound", to_phone=f"+{me}", **{"from": contact}, id=f"3EB0HELLO{n}")

    def received() -> list[dict[str, Any]] | None:
        path = f"/v1/sessions/{session['id']}/messages"
        items = system.call("GET", path, key, params={"direction": "in"}).json()["items"]
        return items if len(items) >= 2 else None

    eventually(received)
    chat = f"/v1/sessions/{session['id']}/chats/{contact}"
    typing = accepted(system.call("POST", f"{chat}:presence", key, json={"state": "typing"}))
    read = accepted(system.call("POST", f"{chat}:read", key, json={"up_to": "3EB0HELLO2"}))
    assert read["content"]["wa_ids"] == ["3EB0HELLO1", "3EB0HELLO2"]
    for done in (typing, read):
        system.wait_status(key, done["id"], ("sent",))

    response = system.sim.get(f"/control/chat-events/{contact.lstrip('+')}")
    events = response.json()["events"]
    assert [(e["kind"], e.get("state"), e.get("ids")) for e in events] == [
        ("presence", "typing", None),
        ("read", None, ["3EB0HELLO1", "3EB0HELLO2"]),
    ]
