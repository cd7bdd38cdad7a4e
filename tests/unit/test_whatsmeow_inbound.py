"""whatsmeow's messages, history sync and receipts → wagate's events, fed with the library's own
event objects (neonize's protobuf messages, exactly what the host receives from the Go core)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from neonize.events import (
    HistorySyncEv,
    MessageEv,
    ReceiptEv,
)
from neonize.proto.Neonize_pb2 import JID
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message

from runner.engines.whatsmeow import inbound
from wagate.domain.events import InboundMessage, Receipt


def jid(user: str, server: str = "s.whatsapp.net", device: int = 0) -> JID:
    return JID(User=user, Server=server, Device=device, RawAgent=0, Integrator=0, IsEmpty=False)


def message_event(
    message: Message, *, from_me: bool = False, ts_ms: int = 1_767_225_600_000
) -> MessageEv:
    event = MessageEv(Message=message)
    event.Info.ID = "3EB0INBOUND"
    event.Info.Timestamp = ts_ms
    source = event.Info.MessageSource
    source.Chat.CopyFrom(jid("15550500002"))
    source.Sender.CopyFrom(jid("15550500002", device=3))
    source.IsFromMe = from_me
    return event


@pytest.mark.parametrize(
    ("message", "kind", "content"),
    [
        (Message(conversation="hello"), "text", {"body": "hello"}),
        (Message(extendedTextMessage={"text": "with a link"}), "text", {"body": "with a link"}),
        (
            Message(imageMessage={"caption": "look", "mimetype": "image/png"}),
            "image",
            {"caption": "look", "mime_type": "image/png"},
        ),
        (
            Message(documentMessage={"fileName": "a.pdf", "mimetype": "application/pdf"}),
            "document",
            {"filename": "a.pdf", "mime_type": "application/pdf"},
        ),
        (
            Message(locationMessage={"degreesLatitude": 1.5, "degreesLongitude": -2.0}),
            "location",
            {"latitude": 1.5, "longitude": -2.0},
        ),
        (
            Message(contactMessage={"displayName": "Ann", "vcard": "BEGIN:VCARD"}),
            "contact",
            {"name": "Ann", "vcard": "BEGIN:VCARD"},
        ),
        (
            Message(reactionMessage={"key": {"ID": "3EB0ORIG"}, "text": "👍"}),
            "reaction",
            {"message_id": "3EB0ORIG", "emoji": "👍"},
        ),
    ],
)
def test_inbound_messages_become_typed_events(
    message: Message, kind: str, content: dict[str, Any]
) -> None:
    event = inbound.inbound_message(message_event(message))
    assert event == InboundMessage(
        wa_id="3EB0INBOUND",
        chat="15550500002@s.whatsapp.net",
        sender="15550500002@s.whatsapp.net",
        kind=kind,
        content=content,
        ts=datetime(2026, 1, 1, tzinfo=UTC),
    )


def test_protocol_only_messages_are_not_inbound_messages() -> None:
    key_share = Message(senderKeyDistributionMessage={"groupID": "g"})
    assert inbound.inbound_message(message_event(key_share)) is None
    revoke = Message(protocolMessage={"type": 0})
    assert inbound.inbound_message(message_event(revoke)) is None


def test_messages_sent_from_the_phone_are_marked_from_me() -> None:
    event = inbound.inbound_message(message_event(Message(conversation="x"), from_me=True))
    assert event is not None and event.from_me


def test_history_sync_yields_every_usable_message_as_history() -> None:
    event = HistorySyncEv()
    conversation = event.Data.conversations.add(ID="15550500002@s.whatsapp.net")
    first = conversation.messages.add().message
    first.key.remoteJID = "15550500002@s.whatsapp.net"
    first.key.ID = "3EB0OLD1"
    first.message.conversation = "earlier"
    first.messageTimestamp = 1_767_225_600
    mine = conversation.messages.add().message
    mine.key.remoteJID = "15550500002:4@s.whatsapp.net"
    mine.key.ID = "3EB0OLD2"
    mine.key.fromMe = True
    mine.message.conversation = "my answer"
    noise = conversation.messages.add().message
    noise.key.ID = "3EB0KEYS"
    noise.message.protocolMessage.type = 0
    found = inbound.history_messages(event, me="15550500001@s.whatsapp.net")
    assert [(m.wa_id, m.from_history, m.from_me) for m in found] == [
        ("3EB0OLD1", True, False),
        ("3EB0OLD2", True, True),
    ]
    assert found[0].sender == "15550500002@s.whatsapp.net"
    assert found[1].chat == "15550500002@s.whatsapp.net"
    assert found[1].sender == "15550500001@s.whatsapp.net"
    assert found[0].ts == datetime(2026, 1, 1, tzinfo=UTC)
    assert inbound.history_media(event) == {}


def test_history_sync_media_messages_carry_their_file_references() -> None:
    event = HistorySyncEv()
    conversation = event.Data.conversations.add(ID="15550500002@s.whatsapp.net")
    photo = conversation.messages.add().message
    photo.key.remoteJID = "15550500002@s.whatsapp.net"
    photo.key.ID = "3EB0OLDPIC"
    photo.message.imageMessage.mimetype = "image/jpeg"
    photo.message.imageMessage.fileLength = 77
    text = conversation.messages.add().message
    text.key.ID = "3EB0OLDTXT"
    text.message.conversation = "no file"
    files = inbound.history_media(event)
    assert set(files) == {"3EB0OLDPIC"}
    assert (files["3EB0OLDPIC"]["mime_type"], files["3EB0OLDPIC"]["size"]) == ("image/jpeg", 77)
    sent = Message.FromString(base64.b64decode(files["3EB0OLDPIC"]["message_b64"]))
    assert sent.imageMessage == photo.message.imageMessage


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (ReceiptEv.DELIVERED, "delivered"),
        (ReceiptEv.READ, "read"),
        (ReceiptEv.PLAYED, "read"),
        (ReceiptEv.RETRY, None),
        (ReceiptEv.SERVER_ERROR, None),
        (ReceiptEv.READ_SELF, None),
    ],
)
def test_receipts_map_delivered_and_read_and_ignore_the_rest(
    kind: int, expected: str | None
) -> None:
    event = ReceiptEv(MessageIDs=["WA1", "WA2"], Timestamp=1_767_225_600, Type=kind)
    event.MessageSource.Chat.CopyFrom(jid("15550500002"))
    got = inbound.receipt(event)
    if expected is None:
        assert got is None
    else:
        assert got == Receipt(
            ("WA1", "WA2"),
            expected,
            "15550500002@s.whatsapp.net",
            datetime(2026, 1, 1, tzinfo=UTC),
        )


def test_receipts_of_our_own_other_devices_are_ignored() -> None:
    event = ReceiptEv(MessageIDs=["WA1"], Timestamp=1, Type=ReceiptEv.DELIVERED)
    event.MessageSource.IsFromMe = True
    assert inbound.receipt(event) is None


def test_the_first_qr_lives_60_seconds_and_the_next_ones_20() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert inbound.qr_expiry(0, now) == now + timedelta(seconds=60)
    assert inbound.qr_expiry(3, now) == now + timedelta(seconds=20)


def test_a_media_message_carries_its_file_reference_for_the_download() -> None:
    """What download_any needs (the media part of the message, whole) and what the runner needs
    first (type, declared size, name) cross the pipe; a voice note (PTT) is kind voice."""
    key, path = bytes(range(32)), "/v/t62.7118-24/abc"
    document = Message(
        documentMessage={
            "mimetype": "application/pdf",
            "fileName": "q3.pdf",
            "fileLength": 2048,
            "mediaKey": key,
            "directPath": path,
            "fileSHA256": b"s" * 32,
            "fileEncSHA256": b"e" * 32,
        },
        messageContextInfo={"messageSecret": b"x" * 32},
    )
    ref = inbound.message_media(document)
    assert ref is not None
    assert (ref["mime_type"], ref["size"], ref["filename"]) == ("application/pdf", 2048, "q3.pdf")
    sent = Message.FromString(base64.b64decode(ref["message_b64"]))
    assert sent == Message(documentMessage=document.documentMessage)
    voice = Message(
        audioMessage={"mimetype": "audio/ogg; codecs=opus", "PTT": True, "fileLength": 9}
    )
    assert inbound.message_content(voice) == ("voice", {"mime_type": "audio/ogg; codecs=opus"})
    assert inbound.message_media(voice) is not None
    plain = Message(audioMessage={"mimetype": "audio/mpeg"})
    assert inbound.message_content(plain) == ("audio", {"mime_type": "audio/mpeg"})
    assert inbound.message_media(Message(conversation="no file")) is None


class _Client:
    """neonize's client at download_any: it cannot reach WhatsApp's media hosts here."""

    def __init__(self, answer: bytes | Exception) -> None:
        self.answer = answer
        self.asked: list[Message] = []

    def download_any(self, message: Message) -> bytes:
        self.asked.append(message)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_the_hosts_download_answers_the_file_or_a_code_the_retries_go_by() -> None:
    from neonize.exc import DownloadError

    from runner.engines.whatsmeow.host import download_file
    from runner.engines.whatsmeow.wire import b64, unb64

    image = Message(imageMessage={"mimetype": "image/jpeg", "fileLength": 3})
    ref = inbound.message_media(image)
    assert ref is not None
    client = _Client(b"abc")
    assert unb64(download_file(client, ref, 10)["data_b64"]) == b"abc"
    assert client.asked == [Message(imageMessage=image.imageMessage)]
    gone = _Client(DownloadError("download failed with status code 404"))
    assert download_file(gone, ref, 10)["error"]["code"] == "not_found"
    busy = _Client(DownloadError("failed to download media: connection reset"))
    assert download_file(busy, ref, 10)["error"]["code"] == "dependency_unavailable"
    assert download_file(_Client(b"x" * 11), {**ref, "size": 0}, 10)["error"]["code"] == (
        "payload_too_large"
    )
    never = _Client(b"abc")
    assert download_file(never, ref, 2)["error"]["code"] == "payload_too_large"
    assert never.asked == []  # declared too large: not downloaded at all
    assert download_file(never, {"message_b64": b64(b"\xff\xff")}, 10)["error"]["code"] == (
        "invalid"
    )
