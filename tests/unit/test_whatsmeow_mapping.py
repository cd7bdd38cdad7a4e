"""whatsmeow's events → wagate's events and reasons, fed with the library's own event objects
(neonize's protobuf messages, exactly what the host receives from the Go core)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from neonize.events import (
    ClientOutdatedEv,
    ConnectFailureEv,
    DisconnectedEv,
    HistorySyncEv,
    KeepAliveRestoredEv,
    KeepAliveTimeoutEv,
    LoggedOutEv,
    MessageEv,
    PairStatusEv,
    ReceiptEv,
    StreamErrorEv,
    StreamReplacedEv,
    TemporaryBanEv,
)
from neonize.proto.Neonize_pb2 import JID, ConnectFailureReason, UploadResponse
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message
from neonize.utils.enum import MediaType

from runner.engines.whatsmeow import mapping
from runner.engines.whatsmeow.mapping import Close, ContentError, ReasonMapper
from wagate.domain.events import InboundMessage, Receipt
from wagate.domain.sessions import DisconnectReason as R
from wagate.domain.sessions import ReconnectPolicy, policy_for


def jid(user: str, server: str = "s.whatsapp.net", device: int = 0) -> JID:
    return JID(User=user, Server=server, Device=device, RawAgent=0, Integrator=0, IsEmpty=False)


def close_of(*events: Any) -> Close | None:
    mapper = ReasonMapper()
    result = None
    for event in events:
        result = mapper.on_event(event)
    return result


# ------------------------------------------------------------------ disconnect kinds

DISCONNECTS: list[tuple[str, Any, int]] = [
    ("logged out", LoggedOutEv(OnConnect=True, Reason=ConnectFailureReason.LOGGED_OUT), 401),
    ("device removed", LoggedOutEv(OnConnect=False, Reason=ConnectFailureReason.LOGGED_OUT), 401),
    (
        "main device gone",
        LoggedOutEv(OnConnect=True, Reason=ConnectFailureReason.MAIN_DEVICE_GONE),
        401,
    ),
    (
        "unknown logout",
        LoggedOutEv(OnConnect=True, Reason=ConnectFailureReason.UNKNOWN_LOGOUT),
        403,
    ),
    ("temporary ban", TemporaryBanEv(Code=TemporaryBanEv.BLOCKED_BY_USERS, Expire=3600), 403),
    ("stream replaced", StreamReplacedEv(), 440),
    ("client outdated", ClientOutdatedEv(), 503),
    ("stream error 503", StreamErrorEv(Code="503"), 503),
    ("stream error 500", StreamErrorEv(Code="500"), 500),
    ("stream error 401", StreamErrorEv(Code="401"), 401),
    ("stream error unknown", StreamErrorEv(Code="999"), 428),
    ("stream error not a number", StreamErrorEv(Code="xml-not-well-formed"), 428),
    ("network close", DisconnectedEv(status=True), 428),
    ("pair error", PairStatusEv(Status=PairStatusEv.ERROR, Error="bad hmac"), 500),
]


@pytest.mark.parametrize(
    ("event", "reason"), [d[1:] for d in DISCONNECTS], ids=[d[0] for d in DISCONNECTS]
)
def test_every_disconnect_kind_of_the_library_maps_to_a_reason(event: Any, reason: int) -> None:
    close = close_of(event)
    assert close is not None and close.reason == reason and close.detail


CONNECT_FAILURES = {
    "GENERIC": 503,
    "LOGGED_OUT": 401,
    "TEMP_BANNED": 403,
    "MAIN_DEVICE_GONE": 401,
    "UNKNOWN_LOGOUT": 403,
    "CLIENT_OUTDATED": 503,
    "BAD_USER_AGENT": 503,
    "INTERNAL_SERVER_ERROR": 500,
    "EXPERIMENTAL": 503,
    "SERVICE_UNAVAILABLE": 503,
}


def test_every_connect_failure_reason_of_the_library_has_a_deliberate_reason() -> None:
    """Iterates the library's own enum: a reason neonize adds later fails here until mapped."""
    names = [v.name for v in ConnectFailureReason.DESCRIPTOR.values]
    assert sorted(names) == sorted(CONNECT_FAILURES)
    for name in names:
        event = ConnectFailureEv(Reason=ConnectFailureReason.Value(name), Message="m")
        close = close_of(event)
        assert close is not None and close.reason == CONNECT_FAILURES[name], name
        assert close.detail.endswith(": m")


def test_the_mapped_reasons_get_the_intended_supervisor_policy() -> None:
    expected = {
        "logged out": ReconnectPolicy.LOGGED_OUT,
        "unknown logout": ReconnectPolicy.BANNED,
        "temporary ban": ReconnectPolicy.BANNED,
        "stream replaced": ReconnectPolicy.REPLACED,
        "client outdated": ReconnectPolicy.RETRY,
        "network close": ReconnectPolicy.RETRY,
        "pair error": ReconnectPolicy.RETRY,
    }
    for name, event, _ in DISCONNECTS:
        if name in expected:
            close = close_of(event)
            assert close is not None
            assert policy_for(close.reason) is expected[name], name


def test_a_temporary_ban_says_why_and_when_it_ends() -> None:
    close = close_of(TemporaryBanEv(Code=TemporaryBanEv.SEND_TO_TOO_MANY_PEOPLE, Expire=7200))
    assert close is not None
    assert "address books" in close.detail and "7200 s" in close.detail


def test_a_close_after_a_keepalive_timeout_is_408_and_a_restored_keepalive_forgets_it() -> None:
    timeout = KeepAliveTimeoutEv(ErrorCount=3, LastSuccess=0)
    assert close_of(timeout) is None
    silent = close_of(timeout, DisconnectedEv(status=True))
    assert silent == Close(R.TIMED_OUT, "keep-alive timed out")
    restored = close_of(timeout, KeepAliveRestoredEv(), DisconnectedEv(status=True))
    assert restored is not None and restored.reason == R.CLOSED


def test_events_that_do_not_end_the_socket_map_to_no_close() -> None:
    paired = PairStatusEv(Status=PairStatusEv.SUCCESS, ID=jid("15550500001"))
    assert close_of(paired) is None
    assert close_of(ReceiptEv()) is None


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ("timeout", R.TIMED_OUT),
        ("err-scanned-without-multidevice", R.MULTIDEVICE_MISMATCH),
        ("err-client-outdated", R.UNAVAILABLE),
        ("err-unexpected-state", R.BAD_SESSION),
        ("error", R.BAD_SESSION),
    ],
)
def test_qr_channel_end_states_map_to_reasons(status: str, reason: int) -> None:
    close = mapping.login_status_close(status)
    assert close is not None and close.reason == reason


def test_a_successful_qr_scan_is_not_a_close() -> None:
    assert mapping.login_status_close("success") is None


def test_a_connect_error_is_503_with_the_librarys_words() -> None:
    close = mapping.connect_error_close("dial tcp: lookup web.whatsapp.com: no such host")
    assert close.reason == R.UNAVAILABLE and "no such host" in close.detail


def test_the_first_qr_lives_60_seconds_and_the_next_ones_20() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert mapping.qr_expiry(0, now) == now + timedelta(seconds=60)
    assert mapping.qr_expiry(3, now) == now + timedelta(seconds=20)


# ------------------------------------------------------------------ inbound


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
    inbound = mapping.inbound_message(message_event(message))
    assert inbound == InboundMessage(
        wa_id="3EB0INBOUND",
        chat="15550500002@s.whatsapp.net",
        sender="15550500002@s.whatsapp.net",
        kind=kind,
        content=content,
        ts=datetime(2026, 1, 1, tzinfo=UTC),
    )


def test_protocol_only_messages_are_not_inbound_messages() -> None:
    key_share = Message(senderKeyDistributionMessage={"groupID": "g"})
    assert mapping.inbound_message(message_event(key_share)) is None
    revoke = Message(protocolMessage={"type": 0})
    assert mapping.inbound_message(message_event(revoke)) is None


def test_messages_sent_from_the_phone_are_marked_from_me() -> None:
    inbound = mapping.inbound_message(message_event(Message(conversation="x"), from_me=True))
    assert inbound is not None and inbound.from_me


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
    found = mapping.history_messages(event, me="15550500001@s.whatsapp.net")
    assert [(m.wa_id, m.from_history, m.from_me) for m in found] == [
        ("3EB0OLD1", True, False),
        ("3EB0OLD2", True, True),
    ]
    assert found[0].sender == "15550500002@s.whatsapp.net"
    assert found[1].chat == "15550500002@s.whatsapp.net"
    assert found[1].sender == "15550500001@s.whatsapp.net"
    assert found[0].ts == datetime(2026, 1, 1, tzinfo=UTC)


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
    got = mapping.receipt(event)
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
    assert mapping.receipt(event) is None


# ------------------------------------------------------------------ outbound


def test_recipients_are_phone_numbers_or_whatsapp_addresses() -> None:
    assert mapping.recipient_jid("+15550500002").User == "15550500002"
    assert mapping.recipient_jid("15550500002").Server == "s.whatsapp.net"
    assert mapping.recipient_jid("120363@g.us").Server == "g.us"
    for bad in ("not-a-number", "+12", "abc@example.com", "@g.us"):
        with pytest.raises(ContentError):
            mapping.recipient_jid(bad)


TO = jid("15550500002")


def test_text_with_reply_to_quotes_the_message() -> None:
    plain = mapping.build_message("text", {"body": "hi"}, to=TO)
    assert plain.conversation == "hi"
    reply = mapping.build_message("text", {"body": "hi", "reply_to": "3EB0Q"}, to=TO)
    assert reply.extendedTextMessage.text == "hi"
    assert reply.extendedTextMessage.contextInfo.stanzaID == "3EB0Q"


def test_location_contact_and_reaction_messages_are_built() -> None:
    loc = mapping.build_message(
        "location", {"latitude": 1.0, "longitude": 2.0, "name": "HQ"}, to=TO
    )
    assert (loc.locationMessage.degreesLatitude, loc.locationMessage.name) == (1.0, "HQ")
    card = mapping.build_message("contact", {"name": "Ann", "phone": "+15550100"}, to=TO)
    assert "waid=15550100" in card.contactMessage.vcard
    react = mapping.build_message(
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

    doc = mapping.build_message(
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
    image = mapping.build_message("image", {}, to=TO, media=b"img", upload=upload)
    assert image.imageMessage.mimetype == "image/jpeg" and uploads[-1][1] == MediaType.MediaImage


def test_content_that_cannot_be_sent_is_a_content_error() -> None:
    with pytest.raises(ContentError):
        mapping.build_message("image", {}, to=TO)  # no bytes
    with pytest.raises(ContentError):
        mapping.build_message("poll", {}, to=TO)
    with pytest.raises(ContentError):
        mapping.build_message("text", {"body": ""}, to=TO)
