"""wagate's message content → whatsmeow's outgoing message, built from and checked against the
library's own protobuf objects."""

from __future__ import annotations

import pytest
from neonize.proto.Neonize_pb2 import JID, UploadResponse
from neonize.utils.enum import MediaType

from runner.engines.whatsmeow import outbound
from runner.engines.whatsmeow.outbound import ContentError


def jid(user: str, server: str = "s.whatsapp.net", device: int = 0) -> JID:
    return JID(User=user, Server=server, Device=device, RawAgent=0, Integrator=0, IsEmpty=False)


def test_recipients_are_phone_numbers_or_whatsapp_addresses() -> None:
    assert outbound.recipient_jid("+15550500002").User == "15550500002"
    assert outbound.recipient_jid("15550500002").Server == "s.whatsapp.net"
    assert outbound.recipient_jid("120363@g.us").Server == "g.us"
    lid = outbound.recipient_jid("100108903580247@lid")
    assert (lid.User, lid.Server) == ("100108903580247", "lid")
    for bad in ("not-a-number", "+12", "abc@example.com", "@g.us"):
        with pytest.raises(ContentError):
            outbound.recipient_jid(bad)


TO = jid("15550500002")


def test_text_with_reply_to_quotes_the_message() -> None:
    plain = outbound.build_message("text", {"body": "hi"}, to=TO)
    assert plain.conversation == "hi"
    reply = outbound.build_message("text", {"body": "hi", "reply_to": "3EB0Q"}, to=TO)
    assert reply.extendedTextMessage.text == "hi"
    assert reply.extendedTextMessage.contextInfo.stanzaID == "3EB0Q"


def test_location_contact_and_reaction_messages_are_built() -> None:
    loc = outbound.build_message(
        "location", {"latitude": 1.0, "longitude": 2.0, "name": "HQ"}, to=TO
    )
    assert (loc.locationMessage.degreesLatitude, loc.locationMessage.name) == (1.0, "HQ")
    card = outbound.build_message("contact", {"name": "Ann", "phone": "+15550100"}, to=TO)
    assert "waid=15550100" in card.contactMessage.vcard
    react = outbound.build_message(
        "reaction", {"message_id": "WA9", "emoji": "👍"}, to=TO, reaction_from_me=True
    )
    assert react.reactionMessage.key.ID == "WA9" and react.reactionMessage.key.fromMe


def test_media_is_uploaded_and_referenced_by_the_message() -> None:
    uploads: list[tuple[bytes, MediaType]] = []

    def upload(data: bytes, media_type: MediaType) -> UploadResponse:
        uploads.append((data, media_type))
        return UploadResponse(
            url="https://mmg.example/x",
            DirectPath="/v/x",
            MediaKey=b"k" * 32,
            FileEncSHA256=b"e" * 32,
            FileSHA256=b"s" * 32,
            FileLength=3,
        )

    doc = outbound.build_message(
        "document",
        {"filename": "r.pdf", "mime_type": "application/pdf", "caption": "report"},
        to=TO,
        media=b"pdf",
        upload=upload,
    )
    assert uploads == [(b"pdf", MediaType.MediaDocument)]
    sent = doc.documentMessage
    assert (sent.fileName, sent.mimetype, sent.caption) == ("r.pdf", "application/pdf", "report")
    assert (sent.directPath, sent.mediaKey, sent.fileLength) == ("/v/x", b"k" * 32, 3)
    image = outbound.build_message("image", {}, to=TO, media=b"img", upload=upload)
    assert image.imageMessage.mimetype == "image/jpeg" and uploads[-1][1] == MediaType.MediaImage


def test_content_that_cannot_be_sent_is_a_content_error() -> None:
    with pytest.raises(ContentError):
        outbound.build_message("image", {}, to=TO)  # no bytes
    with pytest.raises(ContentError):
        outbound.build_message("poll", {}, to=TO)
    with pytest.raises(ContentError):
        outbound.build_message("text", {"body": ""}, to=TO)
