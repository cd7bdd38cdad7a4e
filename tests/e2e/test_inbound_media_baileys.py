"""Inbound media on the whole system with the Baileys engine (issue 22, "on every engine"): a
customer's image, encrypted on the WhatsApp-protocol fake's media host as WhatsApp's media
servers keep it, reaches the tenant's webhook with a signed URL that downloads the same bytes
from the Storage emulator."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from devstack.stack import StackConfig, running
from tests.chaos.test_chaos_baileys import Fake, _pair
from tests.e2e.receiver import webhook_receiver
from tests.e2e.system import System, eventually
from tests.e2e.test_inbound_media import received_events

pytestmark = pytest.mark.integration


@pytest.fixture
def baileys_system(tmp_path: Path) -> Iterator[System]:
    config = StackConfig(root=tmp_path, engine="baileys")
    with running(config) as stack:
        yield System(stack)


def test_an_image_through_baileys_reaches_the_webhook_with_a_signed_url_of_its_bytes(
    baileys_system: System,
) -> None:
    system = baileys_system
    fake = Fake(system.stack.url["whatsapp"])
    with webhook_receiver() as hooks:
        tenant = system.tenant(name="media-baileys", webhook_url=hooks.url + "/hooks")
        key = tenant["api_key"]
        number = "+15550820001"
        _pair(system, fake, key, number)
        image = b"\xff\xd8\xff\xe0" + os.urandom(150_000)
        fake(
            "inbound_media",
            to_phone=number,
            sender="+15550820002",
            wa_id="3EB0BAILEYSPIC",
            kind="image",
            data_b64=base64.b64encode(image).decode(),
            mime_type="image/jpeg",
            caption="from baileys",
            fail_first=1,
        )
        (event,) = eventually(
            lambda: received_events(hooks.events(), "3EB0BAILEYSPIC") or None, timeout=90
        )
    media = event["data"]["media"]
    assert (
        event["data"]["kind"] == "image" and event["data"]["content"]["caption"] == "from baileys"
    )
    assert media["error"] is None and media["sha256"] == hashlib.sha256(image).hexdigest()
    assert dict(parse_qsl(urlsplit(media["url"]).query))["X-Goog-Algorithm"] == "GOOG4-RSA-SHA256"
    downloaded = httpx.get(media["url"], timeout=30)
    assert downloaded.status_code == 200 and downloaded.content == image
    assert system.call("GET", f"/v1/media/{media['media_id']}", key).content == image
