"""Messaging on the whole system: every kind end to end, exactly-once across crashes and
redeliveries, per-chat order, dead letters, receipts, inbound and signed webhooks."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.e2e.system import System, eventually
from tests.e2e.test_sessions import phone, restart_runner
from wagate.adapters.tasks import INTERNAL_TOKEN_HEADER
from wagate.services.webhooks import SIGNATURE_HEADER, verify

pytestmark = pytest.mark.integration


@pytest.fixture
def account(system: System) -> Iterator[tuple[str, dict[str, Any]]]:
    key = system.tenant(limits={"pacing_per_second": 50, "pacing_burst": 50})["api_key"]
    yield key, system.paired_session(key, phone(10))


def recipient(n: int) -> str:
    return f"+1666{int(time.time() * 1000) % 10_000_000:07d}{n}"


KINDS: list[dict[str, Any]] = [
    {"type": "text", "body": "Your order shipped", "reply_to": "3EB0ABC"},
    {"type": "image", "url": "https://example.com/a.png", "caption": "receipt"},
    {"type": "document", "url": "https://example.com/a.pdf", "filename": "invoice.pdf"},
    {"type": "audio", "url": "https://example.com/a.ogg"},
    {"type": "video", "url": "https://example.com/a.mp4"},
    {"type": "location", "latitude": 52.52, "longitude": 13.405, "name": "Depot"},
    {"type": "contact", "name": "Support", "phone": "+15550001111"},
    {"type": "reaction", "message_id": "3EB0ABC", "emoji": "👍"},
]


def test_every_kind_walks_to_read_and_arrives_once(
    system: System, account: tuple[str, dict[str, Any]]
) -> None:
    key, session = account
    to = recipient(1)
    ids = []
    for content in KINDS:
        response = system.call(
            "POST",
            f"/v1/sessions/{session['id']}/messages",
            key,
            json={"to": to, "content": content},
        )
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    for mid in ids:
        done = system.wait_status(key, mid, ("read",))
        assert {"accepted", "sending", "sent", "delivered", "read"} <= set(done["status_times"])
    received = system.received(to)
    assert [m["kind"] for m in received] == [k["type"] for k in KINDS]
    assert received[5]["content"]["latitude"] == 52.52


def test_a_scheduled_send_waits_for_its_time(
    system: System, account: tuple[str, dict[str, Any]]
) -> None:
    key, session = account
    to = recipient(2)
    at = datetime.now(UTC) + timedelta(seconds=3)
    sent = system.send(key, session["id"], to, "later", send_at=at.isoformat())
    time.sleep(1.5)
    assert system.received(to) == []
    system.wait_status(key, sent["id"], ("sent", "delivered", "read"), timeout=20)
    assert datetime.now(UTC) >= at


def test_a_message_scheduled_for_later_does_not_hold_back_newer_ones(
    system: System, account: tuple[str, dict[str, Any]]
) -> None:
    key, session = account
    to = recipient(9)
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    scheduled = system.send(key, session["id"], to, "tomorrow", send_at=later)
    now = system.send(key, session["id"], to, "now")
    system.wait_status(key, now["id"], ("sent", "delivered", "read"), timeout=15)
    assert system.message(key, scheduled["id"])["status"] == "accepted"
    assert [m["content"]["body"] for m in system.received(to)] == ["now"]


def test_a_runner_killed_mid_send_sends_exactly_once(
    system: System, account: tuple[str, dict[str, Any]]
) -> None:
    key, session = account
    to = recipient(3)
    system.control("stall", jid=session["jid"], seconds=30)  # WhatsApp holds the ack
    sent = system.send(key, session["id"], to, "exactly once")
    system.wait_status(key, sent["id"], ("sending",))
    restart_runner(system, signal.SIGKILL)  # crash after the send, before the ack
    system.control("stall", all=True, seconds=0)
    system.wait_status(key, sent["id"], ("sent", "delivered", "read"), timeout=40)
    eventually(lambda: system.received(to))
    time.sleep(1)
    assert [m["content"]["body"] for m in system.received(to)] == ["exactly once"]


def test_a_task_delivered_twice_is_sent_once(
    system: System, account: tuple[str, dict[str, Any]]
) -> None:
    key, session = account
    to = recipient(4)
    sent = system.send(key, session["id"], to, "once")
    system.wait_status(key, sent["id"], ("sent", "delivered", "read"))
    again = httpx.post(
        system.stack.runner_url(0) + "/tasks/send",
        json={"message_id": sent["id"], "session_id": session["id"]},
        headers={INTERNAL_TOKEN_HEADER: system.stack.internal_secret},
    )
    assert again.status_code == 200 and again.json()["deduplicated"] is True
    time.sleep(0.5)
    assert len(system.received(to)) == 1


def test_the_runner_refuses_tasks_without_the_internal_token(
    system: System, account: tuple[str, dict[str, Any]]
) -> None:
    key, session = account
    sent = system.send(key, session["id"], recipient(5), "x")
    for headers in ({}, {INTERNAL_TOKEN_HEADER: "wrong"}):
        response = httpx.post(
            system.stack.runner_url(0) + "/tasks/send",
            json={"message_id": sent["id"], "session_id": session["id"]},
            headers=headers,
        )
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthenticated"


def test_a_burst_during_a_disconnect_is_sent_after_reconnect_in_order(
    system: System, account: tuple[str, dict[str, Any]]
) -> None:
    key, session = account
    to = recipient(6)
    system.control("refuse", seconds=3)
    system.control("drop", jid=session["jid"], reason=503)
    ids = [system.send(key, session["id"], to, f"#{i}")["id"] for i in range(8)]
    for mid in ids:
        system.wait_status(key, mid, ("sent", "delivered", "read"), timeout=60)
    assert [m["content"]["body"] for m in system.received(to)] == [f"#{i}" for i in range(8)]


def test_a_permanent_failure_is_dead_and_can_be_retried(
    system: System, account: tuple[str, dict[str, Any]]
) -> None:
    key, session = account
    to = recipient(8)
    system.control("not-on-whatsapp", phone=to, value=True)
    sent = system.send(key, session["id"], to, "to nobody")
    dead = system.wait_status(key, sent["id"], ("dead",))
    assert "not_on_whatsapp" in dead["dead_reason"] or "not on WhatsApp" in dead["dead_reason"]
    system.control("not-on-whatsapp", phone=to, value=False)
    retried = system.call(
        "POST", "/v1/messages:retry-dead", key, json={"session_id": session["id"]}
    )
    assert retried.status_code == 200 and retried.json()["retried"] == [sent["id"]]
    system.wait_status(key, sent["id"], ("sent", "delivered", "read"))
    assert len(system.received(to)) == 1


class Receiver(BaseHTTPRequestHandler):
    events: list[tuple[dict[str, str], bytes]] = []
    fail_first = 1

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.events.append((dict(self.headers), body))
        status = 500 if Receiver.fail_first > 0 else 200
        Receiver.fail_first -= 1
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_inbound_and_receipts_reach_the_webhook_signed_and_retried(system: System) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/hooks"
        tenant = system.tenant(webhook_url=url)
        key, secret = tenant["api_key"], tenant["webhook_secret"]
        number = phone(11)
        session = system.paired_session(key, number)
        system.control(
            "inbound", to_phone=number, **{"from": "+15557770000"}, content={"body": "hi!"}
        )
        sent = system.send(key, session["id"], recipient(7), "status please")
        system.wait_status(key, sent["id"], ("read",))

        def kinds() -> set[str] | None:
            found = {
                json.loads(b)["type"] + ":" + json.loads(b)["data"].get("status", "")
                for h, b in Receiver.events
            }
            want = {"message.received:", "message.status:delivered", "message.status:read"}
            return found if want <= found else None

        eventually(kinds, timeout=60)
        assert Receiver.fail_first < 0  # the first delivery failed and was retried
        for headers, body in Receiver.events:
            assert verify(secret, headers[SIGNATURE_HEADER], body)
            assert not verify("whsec_wrong", headers[SIGNATURE_HEADER], body)
        inbound = next(json.loads(b) for h, b in Receiver.events if b"message.received" in b)
        assert inbound["data"]["content"] == {"body": "hi!"}
        listed = system.call(
            "GET", f"/v1/sessions/{session['id']}/messages", key, params={"direction": "in"}
        )
        assert listed.status_code == 200
        assert [m["content"] for m in listed.json()["items"]] == [{"body": "hi!"}]
    finally:
        server.shutdown()


def test_uploaded_media_is_sent_by_id_and_only_by_its_tenant(
    system: System, account: tuple[str, dict[str, Any]]
) -> None:
    key, session = account
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 64
    headers = {"Content-Type": "image/png"}
    uploaded = system.call("POST", "/v1/media", key, content=png, headers=headers)
    assert uploaded.status_code == 201, uploaded.text
    media = uploaded.json()
    assert media["size"] == len(png) and media["content_type"] == "image/png"
    to = recipient(10)
    path = f"/v1/sessions/{session['id']}/messages"
    content = {"type": "image", "media_id": media["id"], "caption": "label"}
    sent = system.call("POST", path, key, json={"to": to, "content": content})
    assert sent.status_code == 202, sent.text
    system.wait_status(key, sent.json()["id"], ("read",))
    assert system.received(to)[0]["content"]["media_id"] == media["id"]
    # Another tenant cannot send it; neither or both sources is a field error.
    other = system.tenant("other")["api_key"]
    other_session = system.paired_session(other, phone(14))
    stolen = system.call(
        "POST",
        f"/v1/sessions/{other_session['id']}/messages",
        other,
        json={"to": to, "content": content},
    )
    assert stolen.status_code == 404
    assert stolen.json()["error"]["details"][0]["field"] == "content.media_id"
    both = {"type": "image", "media_id": media["id"], "url": "https://example.com/a.png"}
    for bad in (both, {"type": "image"}):
        response = system.call("POST", path, key, json={"to": to, "content": bad})
        assert response.status_code == 400, response.text


def test_media_uploads_are_bounded_and_typed(
    system: System, account: tuple[str, dict[str, Any]]
) -> None:
    key, _ = account
    too_big = system.call(
        "POST",
        "/v1/media",
        key,
        content=b"x" * (16 * 1024 * 1024 + 1),
        headers={"Content-Type": "video/mp4"},
    )
    assert too_big.status_code == 413
    untyped = system.call(
        "POST", "/v1/media", key, content=b"abc", headers={"Content-Type": "nonsense"}
    )
    assert untyped.status_code == 415  # only media types WhatsApp can send (docs/messaging.md)
    assert untyped.json()["error"]["details"][0]["field"] == "Content-Type"
