"""Number checks and groups on the whole system: the api asks the session's runner directly
(POST /queries, authenticated as the local stack's tasks are), the runner asks the simulator over
the session's socket; answers are cached, counted against the session's limit, and group changes
made on someone's phone reach the tenant's webhook signed (docs/messaging.md, "Groups and
number checks")."""

from __future__ import annotations

import pytest

from tests.e2e.receiver import webhook_receiver
from tests.e2e.system import System, eventually
from tests.e2e.test_sessions import phone
from wagate.services.webhooks import SIGNATURE_HEADER, verify

pytestmark = pytest.mark.integration

LID_BASE = 100_000_000_000_000  # the simulator's LID rule (simulator/PROTOCOL.md)


def lid(number: str) -> str:
    return f"{LID_BASE + int(number.lstrip('+')) * 7}@lid"


def test_a_number_check_asks_whatsapp_once_then_answers_from_the_cache(system: System) -> None:
    key = system.tenant(limits={"contact_checks_per_hour": 3})["api_key"]
    session = system.paired_session(key, phone(60))
    path = f"/v1/sessions/{session['id']}/contacts:check"
    customer, nobody = phone(61), "+9995550" + phone(62)[-6:]

    first = system.call("POST", path, key, json={"numbers": [customer, nobody, customer]})
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["checked"] == 2
    on, off = body["items"]
    digits = customer.lstrip("+")
    assert on == {
        "number": customer,
        "on_whatsapp": True,
        "jid": f"{digits}@s.whatsapp.net",
        "lid": lid(customer),
        "cached": False,
        "checked_at": on["checked_at"],
    }
    assert (off["on_whatsapp"], off["jid"], off["lid"], off["cached"]) == (False, None, None, False)
    assert first.headers["RateLimit-Limit"] == "3"

    again = system.call("POST", path, key, json={"numbers": [customer]})
    assert again.status_code == 200, again.text
    assert again.json()["checked"] == 0
    (cached,) = again.json()["items"]
    assert cached["cached"] is True and cached["checked_at"] == on["checked_at"]

    # One token is left this hour: asking WhatsApp for two numbers again is refused.
    refused = system.call("POST", path, key, json={"numbers": [customer, nobody], "fresh": True})
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) > 0


def test_a_session_that_is_not_paired_answers_409_not_connected(system: System) -> None:
    key = system.tenant()["api_key"]
    created = system.call("POST", "/v1/sessions", key, json={"name": "unpaired"})
    assert created.status_code == 201, created.text
    answer = system.call(
        "POST",
        f"/v1/sessions/{created.json()['id']}/contacts:check",
        key,
        json={"numbers": [phone(63)]},
    )
    assert answer.status_code == 409, answer.text
    assert answer.json()["error"]["code"] == "session_not_connected"
    # Deleted, its QR goes: later tests count the simulator's pairings.
    deleted = system.call("DELETE", f"/v1/sessions/{created.json()['id']}", key)
    assert deleted.status_code in (200, 202, 204), deleted.text
    eventually(lambda: system.sim.get("/control/pairings").json() == [] or None, timeout=30)


def test_a_group_is_created_once_per_key_changed_and_sent_to(system: System) -> None:
    limits = {"pacing_per_second": 50, "pacing_burst": 50, "group_changes_per_hour": 3}
    key = system.tenant(limits=limits)["api_key"]
    number = phone(64)
    sid = system.paired_session(key, number)["id"]
    bob, carol = phone(65), phone(66)
    base = f"/v1/sessions/{sid}/groups"
    create = {"subject": "Order 1042", "participants": [bob]}

    made = system.call("POST", base, key, json=create, headers={"Idempotency-Key": "grp-1"})
    assert made.status_code == 201, made.text
    group = made.json()
    assert group["jid"] == f"{group['id']}@g.us" and group["size"] == 2
    repeat = system.call("POST", base, key, json=create, headers={"Idempotency-Key": "grp-1"})
    assert repeat.status_code == 201 and repeat.json()["id"] == group["id"]
    listed = system.call("GET", base, key)
    assert listed.status_code == 200, listed.text
    assert [g["id"] for g in listed.json()["items"]] == [group["id"]]
    assert listed.json()["items"][0]["participants"] is None

    changed = system.call(
        "POST",
        f"{base}/{group['id']}/participants",
        key,
        json={"action": "add", "participants": [carol, bob]},
    )
    assert changed.status_code == 200, changed.text
    assert [r["status"] for r in changed.json()["results"]] == [200, 409]
    assert changed.headers["RateLimit-Remaining"] == "0"  # create, its repeat, this change
    over = system.call(
        "POST",
        f"{base}/{group['id']}/participants",
        key,
        json={"action": "remove", "participants": [carol]},
    )
    assert over.status_code == 429 and int(over.headers["Retry-After"]) > 0
    one = system.call("GET", f"{base}/{group['id']}", key).json()
    roles = {m["jid"].split("@")[0]: m["role"] for m in one["participants"]}
    assert roles == {
        number.lstrip("+"): "superadmin",
        bob.lstrip("+"): "member",
        carol.lstrip("+"): "member",
    }
    invite = system.call("GET", f"{base}/{group['id']}/invite", key)
    assert invite.status_code == 200, invite.text
    assert invite.json()["url"] == "https://chat.whatsapp.com/" + invite.json()["code"]
    missing = system.call("GET", f"{base}/120363999999999999", key)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"

    sent = system.send(key, sid, group["jid"], "hello group")
    system.wait_status(key, sent["id"], ("sent", "delivered", "read"))
    (got,) = system.received(group["jid"])
    assert got["content"] == {"body": "hello group"} and got["from"] == number.lstrip("+")


def test_someone_adding_the_session_to_a_group_reaches_the_webhook_signed(
    system: System,
) -> None:
    with webhook_receiver() as hooks:
        tenant = system.tenant(webhook_url=hooks.url + "/hooks")
        key, secret = tenant["api_key"], tenant["webhook_secret"]
        number, owner = phone(67), phone(68)
        sid = system.paired_session(key, number)["id"]
        group = system.control("groups", owner=owner, subject="Owner's shop", members=[number])

        def announced() -> list[object] | None:
            found = [e for e in hooks.events() if e["type"] == "group.participants"]
            return found or None

        (event,) = eventually(announced, timeout=30)
        assert event["session_id"] == sid
        assert event["data"] == {
            "chat": group["jid"],
            "group": group["jid"],
            "action": "add",
            "participants": [f"{number.lstrip('+')}@s.whatsapp.net"],
            "by": f"{owner.lstrip('+')}@s.whatsapp.net",
            "ts": event["data"]["ts"],
        }
        (_, headers, body, _) = next(
            d for d in hooks.deliveries if d[1]["X-Wagate-Event-Type"] == "group.participants"
        )
        assert verify(secret, headers[SIGNATURE_HEADER], body)
