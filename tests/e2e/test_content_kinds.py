"""Issue 22's content kinds through the whole system (api → Cloud Tasks → runner → simulator):
a poll whose votes reach the tenant's webhook as signed `poll.vote` events naming the chosen
options, and a text whose link preview the runner made from a page through the egress guard."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.e2e.receiver import webhook_receiver
from tests.e2e.system import System, eventually
from tests.e2e.test_sessions import phone
from wagate.contracts import poll_option_hash
from wagate.services.webhooks import SIGNATURE_HEADER, verify

pytestmark = pytest.mark.integration

PAGE = b"""<html><head><meta property="og:title" content="Order 1042 shipped">
<meta property="og:description" content="Arrives Thursday."></head></html>"""


@contextmanager
def web_page() -> Iterator[str]:
    """A page on loopback (the local stack's egress guard allows private addresses)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(PAGE)))
            self.end_headers()
            self.wfile.write(PAGE)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/orders/1042"
    finally:
        server.shutdown()


def post(system: System, key: str, sid: str, to: str, content: dict[str, Any]) -> dict[str, Any]:
    sent = system.call(
        "POST", f"/v1/sessions/{sid}/messages", key, json={"to": to, "content": content}
    )
    assert sent.status_code == 202, sent.text
    result: dict[str, Any] = sent.json()
    return result


def test_poll_votes_reach_the_webhook_signed_with_the_chosen_options(system: System) -> None:
    with webhook_receiver() as hooks:
        tenant = system.tenant(webhook_url=hooks.url + "/hooks")
        key, secret = tenant["api_key"], tenant["webhook_secret"]
        number, customer = phone(61), phone(62)
        sid = system.paired_session(key, number)["id"]
        poll = {
            "type": "poll",
            "question": "Delivery slot?",
            "options": ["Morning", "Noon", "Evening"],
        }
        sent = post(system, key, sid, customer, {**poll, "selectable_count": 2})
        system.wait_status(key, sent["id"], ("sent", "delivered", "read"))
        (got,) = system.received(customer)
        assert got["kind"] == "poll" and got["content"]["options"] == poll["options"]

        system.control(
            "vote",
            to_phone=number,
            poll_id=sent["wa_id"],
            options=["Evening", "Morning"],
            **{"from": customer},
        )

        def votes() -> list[dict[str, Any]] | None:
            found = [e for e in hooks.events() if e["type"] == "poll.vote"]
            return found or None

        (vote,) = eventually(votes, timeout=30)
        data = vote["data"]
        assert data["sender_phone"] == f"{customer.lstrip('+')}@s.whatsapp.net"
        assert data["kind"] == "poll_vote" and data["session_id"] == sid
        assert data["content"]["poll_id"] == sent["wa_id"]
        assert data["content"]["poll_message_id"] == sent["id"]
        assert data["content"]["question"] == "Delivery slot?"
        assert data["content"]["options"] == ["Morning", "Evening"]  # in the poll's order
        assert data["content"]["selected_hashes"] == [
            poll_option_hash("Evening"),
            poll_option_hash("Morning"),
        ]
        (headers, body) = next(
            (h, b) for p, h, b, s in hooks.deliveries if b"poll.vote" in b and 200 <= s < 300
        )
        assert headers["X-Wagate-Event-Type"] == "poll.vote"
        assert verify(secret, headers[SIGNATURE_HEADER], body)


def test_the_runner_makes_a_link_preview_of_the_first_url(system: System) -> None:
    key = system.tenant("previews")["api_key"]
    number, customer = phone(63), phone(64)
    sid = system.paired_session(key, number)["id"]
    with web_page() as url:
        text = {"type": "text", "body": f"Tracking: {url}", "link_preview": True}
        sent = post(system, key, sid, customer, text)
        system.wait_status(key, sent["id"], ("sent", "delivered", "read"))
    (got,) = system.received(customer)
    assert got["content"]["body"] == f"Tracking: {url}"
    assert got["content"]["preview"] == {
        "url": url,
        "title": "Order 1042 shipped",
        "description": "Arrives Thursday.",
    }
    # What the API stores and shows is what the client sent: the preview is the runner's.
    assert "preview" not in system.message(key, sent["id"])["content"]
