"""Inbound media through the runner process on the Baileys engine, against the emulators and the
WhatsApp-protocol fake: a contact's image is downloaded from the fake's media host (encrypted
as WhatsApp's), decrypted, stored once in the media bucket under the tenant and recorded on the
inbound document; a file gone from the host is recorded as its error, and the message is kept."""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
from pathlib import Path

import pytest

from devstack.stack import Stack
from tests.engine_contract.test_baileys_runner import baileys_runner, fake, wait_for
from wagate.adapters.firestore import FirestoreStore, make_client
from wagate.adapters.storage import GcsBlobStore
from wagate.adapters.storage import make_client as storage_client
from wagate.config import Settings
from wagate.contracts import InboundDoc, SessionDoc
from wagate.domain.sessions import SessionState
from wagate.services.media import object_name

pytestmark = pytest.mark.integration

TENANT = "ten_baileys_media"


def test_a_contacts_image_is_downloaded_decrypted_and_stored_under_the_tenant(
    emulators: Stack, firestore_env: dict[str, str], whatsapp_fake_url: str, tmp_path: Path
) -> None:
    fake(whatsapp_fake_url, "reset")
    project = firestore_env["WAGATE_PROJECT_ID"]
    emulators.provision_project(project)
    store = FirestoreStore(make_client(project))
    sessions = store.collection("sessions", SessionDoc)
    session_id = f"ses_{uuid.uuid4().hex[:10]}"
    sessions.create(
        SessionDoc(id=session_id, tenant_id=TENANT, shard=0, state=SessionState.CONNECTING)
    )
    inbound = store.subcollection("sessions", session_id, "inbound", InboundDoc)
    bucket = GcsBlobStore(storage_client(project), Settings().media_bucket)
    runner = baileys_runner("runner-baileys-media", emulators, project, whatsapp_fake_url, tmp_path)
    runner.start()
    try:
        runner.wait_ready()
        wait_for(
            "a QR",
            lambda: (d := sessions.get(session_id)) is not None and d.qr is not None,
            runner,
            60,
        )
        doc = sessions.get(session_id)
        assert doc is not None and doc.qr is not None
        fake(whatsapp_fake_url, "scan", qr=doc.qr, phone="+15550810001")
        wait_for(
            "connected",
            lambda: (
                (d := sessions.get(session_id)) is not None and d.state == SessionState.CONNECTED
            ),
            runner,
            60,
        )
        image = b"\xff\xd8\xff\xe0" + os.urandom(90_000)
        fake(
            whatsapp_fake_url,
            "inbound_media",
            to_phone="+15550810001",
            sender="+15550810002",
            wa_id="3EB0BMEDIA1",
            kind="image",
            data_b64=base64.b64encode(image).decode(),
            mime_type="image/jpeg",
            caption="the parcel",
            fail_first=1,  # the first download answers 503: retried
        )
        fake(
            whatsapp_fake_url,
            "inbound_media",
            to_phone="+15550810001",
            sender="+15550810002",
            wa_id="3EB0BGONE1",
            kind="document",
            data_b64=base64.b64encode(b"%PDF-1.4 lost").decode(),
            mime_type="application/pdf",
            filename="lost.pdf",
            gone=True,
        )
        wait_for("both stored", lambda: len(inbound.query()) == 2, runner, 60)
    finally:
        runner.stop()
    image_doc = inbound.get("3EB0BMEDIA1")
    assert image_doc is not None and image_doc.media is not None
    assert image_doc.kind == "image" and image_doc.content.get("caption") == "the parcel"
    media = image_doc.media
    assert media.error is None and media.media_id is not None
    assert (media.mime_type, media.size) == ("image/jpeg", len(image))
    assert media.sha256 == hashlib.sha256(image).hexdigest()
    assert bucket.get(object_name(TENANT, media.media_id)).data == image
    assert fake(whatsapp_fake_url, "media_stats")["downloads"] == 1
    lost = inbound.get("3EB0BGONE1")
    assert lost is not None and lost.media is not None and lost.media.error is not None
    assert (lost.media.error.code, lost.media.media_id) == ("not_found", None)
    assert lost.media.filename == "lost.pdf"


@pytest.mark.parametrize(
    "direct_path",
    ["//evil.example/mms/image/x", "@evil.example/mms/image/x", "https://evil.example/x", ""],
)
def test_the_worker_never_downloads_from_a_host_a_message_names(direct_path: str) -> None:
    """Only the path comes from the message; one that would leave the configured media host is
    refused before any connection (runner/engines/baileys/media.mjs)."""
    import json
    import subprocess

    from runner.engines.baileys.deps import ROOT, ensure_node_modules

    ensure_node_modules()
    ref = {"type": "image", "direct_path": direct_path, "media_key": "A" * 44}
    script = (
        "import('./runner/engines/baileys/media.mjs').then((m) => m.download("
        f"{json.dumps(ref)}, 'https://mmg.whatsapp.net', 1000)).then("
        "() => console.log('downloaded'), (e) => console.log(e.code))"
    )
    done = subprocess.run(
        ["node", "--input-type=module", "-e", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "invalid", done.stderr
