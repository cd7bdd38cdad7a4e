"""Webhook control on the whole system: the tenant's event filter, a session's own URL and
filter, the delivery log (attempts, last status, next retry) and redelivery."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.receiver import webhook_receiver
from tests.e2e.system import System, eventually
from tests.e2e.test_messaging import recipient
from tests.e2e.test_sessions import phone
from wagate.services.webhooks import SIGNATURE_HEADER, verify

pytestmark = pytest.mark.integration


def pair(system: System, key: str, sid: str, number: str) -> dict[str, Any]:
    qr = eventually(lambda: system._qr(key, sid), timeout=30)
    assert system.sim.post("/control/scan", json={"qr": qr, "phone": number}).status_code == 200
    return system.wait_state(key, sid, "connected")


def kinds(events: list[dict[str, Any]], sid: str) -> set[str]:
    return {e["type"] for e in events if e["session_id"] == sid}


def test_filters_and_a_session_url_decide_where_each_event_goes(system: System) -> None:
    with webhook_receiver() as tenant_hooks, webhook_receiver() as session_hooks:
        tenant = system.tenant(webhook_url=tenant_hooks.url + "/tenant")
        key, secret = tenant["api_key"], tenant["webhook_secret"]
        patched = system.call(
            "PATCH", "/v1/webhooks", key, json={"events": ["session.state", "message.status"]}
        )
        assert patched.status_code == 200, patched.text
        assert patched.json()["events"] == ["session.state", "message.status"]

        own_number, plain_number = phone(51), phone(50)
        plain = system.paired_session(key, plain_number)["id"]
        own = system.call("POST", "/v1/sessions", key, json={"name": "own"}).json()["id"]
        put = system.call(
            "PUT",
            f"/v1/sessions/{own}/webhook",
            key,
            json={"url": session_hooks.url + "/own", "events": ["message.received"]},
        )
        assert put.status_code == 200, put.text
        assert put.json()["secret"] is None  # the tenant's secret signs it: none is made
        assert system.session(key, own)["webhook_url"] == session_hooks.url + "/own"
        pair(system, key, own, own_number)

        for number in (plain_number, own_number):
            system.control("inbound", to_phone=number, **{"from": "+15557770001"})
        for sid in (plain, own):
            sent = system.send(key, sid, recipient(51), "status please")
            system.wait_status(key, sent["id"], ("read",))

        # Generous waits: deliveries go through the webhook queue on a loaded 2-core machine.
        eventually(lambda: "message.received" in kinds(session_hooks.events(), own), timeout=60)
        eventually(lambda: "message.status" in kinds(tenant_hooks.events(), plain), timeout=60)
        # The inbound of `plain` came before its send's receipts: it would have arrived by now.
        assert kinds(tenant_hooks.events(), plain) == {"session.state", "message.status"}
        assert kinds(tenant_hooks.events(), own) == set()
        assert kinds(session_hooks.events(), own) == {"message.received"}
        assert {p for p, *_ in session_hooks.deliveries} == {"/own"}
        for _, headers, body, _ in tenant_hooks.deliveries + session_hooks.deliveries:
            assert verify(secret, headers[SIGNATURE_HEADER], body)

        bad = system.call("PUT", f"/v1/sessions/{own}/webhook", key, json={"url": "ftp://x"})
        assert bad.status_code == 400 and bad.json()["error"]["details"][0]["field"] == "url"
        other = system.tenant(name="other")["api_key"]
        assert system.call("PUT", f"/v1/sessions/{own}/webhook", other, json={}).status_code == 404


def test_a_failing_delivery_is_logged_and_redelivered_with_the_same_event(
    system: System,
) -> None:
    with webhook_receiver() as hooks:
        tenant = system.tenant(webhook_url=hooks.url + "/hooks")
        key, secret = tenant["api_key"], tenant["webhook_secret"]
        hooks.failing = True
        sid = system.paired_session(key, phone(52))["id"]

        def failing_entry() -> dict[str, Any] | None:
            page = system.call("GET", "/v1/webhooks/deliveries", key, params={"state": "retrying"})
            assert page.status_code == 200, page.text
            items = [d for d in page.json()["items"] if d["session_id"] == sid]
            return items[0] if items and items[0]["last_status"] == 500 else None

        entry = eventually(failing_entry, timeout=60)
        assert entry["attempts"] >= 1 and entry["next_retry_at"] is not None
        assert entry["url"] == hooks.url + "/hooks" and entry["last_error"] == "answered 500"
        assert entry["event"]["type"] == entry["event_type"] == "session.state"

        other = system.tenant(name="someone else")["api_key"]
        path = f"/v1/webhooks/deliveries/{entry['id']}:redeliver"
        assert system.call("POST", path, other).status_code == 404
        hooks.failing = False
        redelivered = system.call("POST", path, key)
        assert redelivered.status_code == 202, redelivered.text
        assert redelivered.json()["redeliveries"] == 1

        def delivered() -> dict[str, Any] | None:
            page = system.call("GET", "/v1/webhooks/deliveries", key, params={"session_id": sid})
            found = [d for d in page.json()["items"] if d["id"] == entry["id"]]
            return found[0] if found and found[0]["state"] == "delivered" else None

        done = eventually(delivered, timeout=60)
        assert done["last_status"] == 200 and done["attempts"] >= 2 and done["delivered_at"]
        assert entry["id"] in {e["id"] for e in hooks.events()}
        for _, headers, body, _ in hooks.deliveries:
            assert verify(secret, headers[SIGNATURE_HEADER], body)
        bad = system.call("GET", "/v1/webhooks/deliveries", key, params={"state": "lost"})
        assert bad.status_code == 400
