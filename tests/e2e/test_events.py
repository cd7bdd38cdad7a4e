"""Session lifecycle events on the whole system: every state change of a session reaches the
tenant's webhook once, signed, with its reason code and attempt count (docs/events.md)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tests.e2e.receiver import WebhookReceiver, webhook_receiver
from tests.e2e.system import System, eventually
from tests.e2e.test_sessions import phone
from wagate.services.webhooks import SIGNATURE_HEADER, verify

pytestmark = pytest.mark.integration


def state_events(hooks: WebhookReceiver, sid: str) -> list[dict[str, Any]]:
    found = [e for e in hooks.events() if e["type"] == "session.state" and e["session_id"] == sid]
    return sorted(found, key=lambda e: e["created_at"])


def states(hooks: WebhookReceiver, sid: str) -> list[str]:
    """The session's announced states, a run of pairing events (one per new QR) as one."""
    out: list[str] = []
    for event in state_events(hooks, sid):
        if not (out and out[-1] == "pairing" == event["data"]["state"]):
            out.append(event["data"]["state"])
    return out


def ends_with(hooks: WebhookReceiver, sid: str, tail: list[str]) -> list[str] | None:
    seen = states(hooks, sid)
    return seen if seen[-len(tail) :] == tail else None


def assert_signed_and_once(hooks: WebhookReceiver, secret: str) -> None:
    accepted = Counter(e["id"] for e in hooks.events())
    assert accepted and max(accepted.values()) == 1, accepted.most_common(3)
    for _, headers, body, _ in hooks.deliveries:
        assert verify(secret, headers[SIGNATURE_HEADER], body)
        assert headers["X-Wagate-Event-Type"] in ("session.state", "message.status")


def test_each_session_state_change_is_announced_once_signed_with_reason_and_attempt(
    system: System,
) -> None:
    with webhook_receiver() as hooks:
        tenant = system.tenant(webhook_url=hooks.url + "/hooks")
        key, secret = tenant["api_key"], tenant["webhook_secret"]
        number = phone(40)
        sid = system.paired_session(key, number)["id"]
        eventually(lambda: ends_with(hooks, sid, ["pairing", "connected"]), timeout=30)
        pairing = [e for e in state_events(hooks, sid) if e["data"]["state"] == "pairing"]
        assert any(e["data"].get("qr") for e in pairing)  # a new QR is an event
        connected = state_events(hooks, sid)[-1]
        assert connected["data"]["jid"].startswith(number.lstrip("+"))

        system.control("drop", phone=number, reason=428)  # a plain close: reconnect
        tail = ["connected", "reconnecting", "connecting", "connected"]
        eventually(lambda: ends_with(hooks, sid, tail), timeout=30)
        reconnecting = next(
            e for e in state_events(hooks, sid) if e["data"]["state"] == "reconnecting"
        )
        assert reconnecting["data"]["previous"] == "connected"
        assert reconnecting["data"]["reason"] == 428
        assert reconnecting["data"]["reason_name"] == "closed"
        assert reconnecting["data"]["attempt"] == 1

        assert system.call("DELETE", f"/v1/sessions/{sid}", key).status_code == 202
        eventually(lambda: ends_with(hooks, sid, ["connected", "stopped"]), timeout=30)
        stopped = state_events(hooks, sid)[-1]
        assert stopped["data"]["requested"] == "logout"

        banned_number = phone(41)
        banned = system.paired_session(key, banned_number)["id"]
        system.control("ban", phone=banned_number, banned=True)
        eventually(lambda: ends_with(hooks, banned, ["connected", "failed"]), timeout=30)
        failed = state_events(hooks, banned)[-1]["data"]
        assert (failed["reason"], failed["reason_name"]) == (403, "banned")

        unlinked = system.paired_session(key, phone(42))
        system.control("unlink", jid=unlinked["jid"])
        eventually(lambda: ends_with(hooks, unlinked["id"], ["connected", "logged_out"]))
        logged_out = state_events(hooks, unlinked["id"])[-1]["data"]
        assert (logged_out["reason"], logged_out["reason_name"]) == (401, "logged_out")

        assert states(hooks, sid) == ["pairing", *tail, "stopped"]
        assert_signed_and_once(hooks, secret)
