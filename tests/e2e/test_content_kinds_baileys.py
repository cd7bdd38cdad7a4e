"""Content kinds through the whole system with the Baileys engine (issue 22, "on every engine"):
a poll sent by the api, read by a contact of the WhatsApp-protocol fake, voted on with a vote
encrypted as WhatsApp's clients encrypt it, decrypted in the worker and named by the runner from
the stored poll, then delivered to the tenant's webhook as a signed `poll.vote`; and a text with
mentions and the link preview the runner made through the egress guard."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.stack import StackConfig, running
from tests.chaos.test_chaos_baileys import Fake, _pair
from tests.e2e.receiver import webhook_receiver
from tests.e2e.system import System, eventually
from tests.e2e.test_content_kinds import web_page
from wagate.services.webhooks import SIGNATURE_HEADER, verify

pytestmark = pytest.mark.integration


@pytest.fixture
def baileys_system(tmp_path: Path) -> Iterator[System]:
    with running(StackConfig(root=tmp_path, engine="baileys")) as stack:
        yield System(stack)


def test_a_vote_through_baileys_reaches_the_webhook_as_poll_vote(baileys_system: System) -> None:
    system = baileys_system
    fake = Fake(system.stack.url["whatsapp"])
    with webhook_receiver() as hooks:
        tenant = system.tenant(name="polls-baileys", webhook_url=hooks.url + "/hooks")
        key, secret = tenant["api_key"], tenant["webhook_secret"]
        number, customer = "+15550830001", "+15550830002"
        sid = _pair(system, fake, key, number)["id"]
        poll = {"type": "poll", "question": "Pick-up?", "options": ["Today", "Tomorrow"]}
        sent = system.call(
            "POST", f"/v1/sessions/{sid}/messages", key, json={"to": customer, "content": poll}
        )
        assert sent.status_code == 202, sent.text
        message = sent.json()
        system.wait_status(key, message["id"], ("sent", "delivered", "read"), timeout=60)
        (seen,) = fake.received(customer)
        assert seen["seen"]["kind"] == "poll" and seen["seen"]["options"] == poll["options"]

        fake(
            "vote",
            to_phone=number,
            voter=customer,
            poll_id=message["wa_id"],
            options=["Tomorrow"],
            wa_id="3EB0E2EVOTE",
        )

        def votes() -> list[dict[str, Any]] | None:
            return [e for e in hooks.events() if e["type"] == "poll.vote"] or None

        (vote,) = eventually(votes, timeout=60)
        content = vote["data"]["content"]
        assert (content["poll_message_id"], content["options"]) == (message["id"], ["Tomorrow"])
        assert vote["data"]["sender_phone"] == f"{customer.lstrip('+')}@s.whatsapp.net"
        headers, body = next(
            (h, b) for _, h, b, s in hooks.deliveries if b"poll.vote" in b and 200 <= s < 300
        )
        assert verify(secret, headers[SIGNATURE_HEADER], body)


def test_mentions_and_the_runners_link_preview_reach_the_contact_through_baileys(
    baileys_system: System,
) -> None:
    system = baileys_system
    fake = Fake(system.stack.url["whatsapp"])
    key = system.tenant(name="preview-baileys")["api_key"]
    number, customer = "+15550830011", "+15550830012"
    sid = _pair(system, fake, key, number)["id"]
    with web_page() as url:
        text = {
            "type": "text",
            "body": f"@15550830013 tracking: {url}",
            "mentions": ["+15550830013"],
            "link_preview": True,
        }
        sent = system.call(
            "POST", f"/v1/sessions/{sid}/messages", key, json={"to": customer, "content": text}
        )
        assert sent.status_code == 202, sent.text
        system.wait_status(key, sent.json()["id"], ("sent", "delivered", "read"), timeout=60)
    (got,) = fake.received(customer)
    seen = got["seen"]
    assert seen["body"] == text["body"] and seen["mentions"] == ["15550830013@s.whatsapp.net"]
    assert (seen["preview"]["title"], seen["preview"]["url"]) == ("Order 1042 shipped", url)


def test_an_uploaded_sticker_and_voice_note_reach_the_contact_through_baileys(
    baileys_system: System,
) -> None:
    """Uploaded to the media bucket, read back by the runner, checked for its format, uploaded
    by Baileys (over https) to the fake, which decrypts what the contact gets."""
    system = baileys_system
    fake = Fake(system.stack.url["whatsapp"])
    key = system.tenant(name="files-baileys")["api_key"]
    number, customer = "+15550830021", "+15550830022"
    sid = _pair(system, fake, key, number)["id"]
    files = {
        "sticker": (b"RIFF\x00\x10\x00\x00WEBPVP8 " + os.urandom(4000), "image/webp"),
        "voice": (b"OggS\x00\x02" + os.urandom(6000), "audio/ogg"),
    }
    sent: dict[str, str] = {}
    for kind, (data, mime) in files.items():
        upload = system.call("POST", "/v1/media", key, content=data, headers={"Content-Type": mime})
        assert upload.status_code == 201, upload.text
        content = {"type": kind, "media_id": upload.json()["id"]}
        response = system.call(
            "POST", f"/v1/sessions/{sid}/messages", key, json={"to": customer, "content": content}
        )
        assert response.status_code == 202, response.text
        sent[kind] = response.json()["id"]
    for mid in sent.values():
        system.wait_status(key, mid, ("sent", "delivered", "read"), timeout=60)
    seen = {m["seen"]["kind"]: m["seen"] for m in fake.received(customer)}
    for kind, (data, _) in files.items():
        assert seen[kind]["sha256"] == hashlib.sha256(data).hexdigest(), seen
