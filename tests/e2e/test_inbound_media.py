"""Inbound media on the whole system (issue 22): an image a customer sends reaches the tenant's
webhook with a V4 signed URL that downloads the same bytes from the Storage emulator; the file is
the tenant's only; a file that cannot be downloaded still reaches the webhook, with its error."""

from __future__ import annotations

import base64
import hashlib
import os
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from tests.e2e.receiver import webhook_receiver
from tests.e2e.system import System, eventually
from tests.e2e.test_sessions import phone
from wagate.services.webhooks import SIGNATURE_HEADER, verify

pytestmark = pytest.mark.integration


def received_events(events: list[dict[str, Any]], wa_id: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == "message.received" and e["data"]["id"] == wa_id]


def test_an_image_from_a_customer_reaches_the_webhook_with_a_signed_url_of_its_bytes(
    system: System,
) -> None:
    with webhook_receiver() as hooks:
        tenant = system.tenant(name="media", webhook_url=hooks.url + "/hooks")
        key, secret = tenant["api_key"], tenant["webhook_secret"]
        number, customer = phone(61), phone(62)
        session = system.paired_session(key, number)
        image = b"\xff\xd8\xff\xe0" + os.urandom(120_000)
        system.control(
            "inbound",
            to_phone=number,
            **{"from": customer},
            kind="image",
            id="3EB0E2EMEDIA1",
            content={"caption": "my broken parcel"},
            # The first two downloads fail (503): the runner retries.
            media={
                "data": base64.b64encode(image).decode(),
                "mime_type": "image/jpeg",
                "fail_first": 2,
            },
        )
        (event,) = eventually(
            lambda: received_events(hooks.events(), "3EB0E2EMEDIA1") or None, timeout=60
        )
        media = event["data"]["media"]
        assert event["data"]["kind"] == "image"
        assert event["data"]["content"]["caption"] == "my broken parcel"
        assert media["error"] is None
        assert (media["mime_type"], media["size"]) == ("image/jpeg", len(image))
        assert media["sha256"] == hashlib.sha256(image).hexdigest()
        assert media["media_id"].startswith("med_")

        # The signed URL: V4, short-lived, pointing at the Storage emulator, same bytes.
        url = media["url"]
        query = dict(parse_qsl(urlsplit(url).query))
        assert url.startswith(system.stack.env["STORAGE_EMULATOR_HOST"] + "/")
        assert query["X-Goog-Algorithm"] == "GOOG4-RSA-SHA256"
        assert query["X-Goog-Expires"] == "3600" and query["X-Goog-Signature"]
        expires = datetime.fromisoformat(media["url_expires_at"])
        signed_at = datetime.strptime(query["X-Goog-Date"] + "+0000", "%Y%m%dT%H%M%SZ%z")
        assert (expires - signed_at).total_seconds() == 3600
        downloaded = httpx.get(url, timeout=30)
        assert downloaded.status_code == 200
        assert hashlib.sha256(downloaded.content).hexdigest() == media["sha256"]

        for _, headers, body, _ in hooks.deliveries:
            assert verify(secret, headers[SIGNATURE_HEADER], body)

        # The API serves the same file to its tenant only, and lists the message with it.
        got = system.call("GET", f"/v1/media/{media['media_id']}", key)
        assert got.status_code == 200 and got.content == image
        assert got.headers["Content-Type"] == "image/jpeg"
        other = system.tenant(name="someone else")["api_key"]
        assert system.call("GET", f"/v1/media/{media['media_id']}", other).status_code == 404
        listed = system.call(
            "GET", f"/v1/sessions/{session['id']}/messages", key, params={"direction": "in"}
        ).json()["items"]
        assert [m["media"]["sha256"] for m in listed if m["id"] == "3EB0E2EMEDIA1"] == [
            media["sha256"]
        ]

        # The received file can be sent on by its id, as an upload can.
        content = {"type": "image", "media_id": media["media_id"]}
        forwarded = system.send(key, session["id"], phone(63), "", content=content)
        system.wait_status(key, forwarded["id"], ("delivered", "read"))


def test_a_file_that_cannot_be_downloaded_still_reaches_the_webhook_with_its_error(
    system: System,
) -> None:
    with webhook_receiver() as hooks:
        tenant = system.tenant(name="media-gone", webhook_url=hooks.url + "/hooks")
        key = tenant["api_key"]
        number = phone(64)
        session = system.paired_session(key, number)
        system.control(
            "inbound",
            to_phone=number,
            **{"from": phone(65)},
            kind="document",
            id="3EB0E2EGONE1",
            content={"filename": "invoice.pdf"},
            media={
                "data": base64.b64encode(b"%PDF-1.4 gone").decode(),
                "mime_type": "application/pdf",
                "filename": "invoice.pdf",
                "gone": True,
            },
        )
        (event,) = eventually(
            lambda: received_events(hooks.events(), "3EB0E2EGONE1") or None, timeout=60
        )
        media = event["data"]["media"]
        assert media["media_id"] is None and media["url"] is None
        assert media["error"]["code"] == "not_found" and media["error"]["message"]
        assert (media["mime_type"], media["filename"]) == ("application/pdf", "invoice.pdf")
        listed = system.call(
            "GET", f"/v1/sessions/{session['id']}/messages", key, params={"direction": "in"}
        ).json()["items"]
        assert [m["media"]["error"]["code"] for m in listed] == ["not_found"]
