"""whatsmeow's message, history-sync and receipt events (as neonize's protobuf objects) →
wagate's typed events. Pure functions over the library's own objects, so the unit tests feed them
exactly what the library hands the host.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from neonize.events import HistorySyncEv, MessageEv, ReceiptEv
from neonize.proto.Neonize_pb2 import JID
from neonize.proto.waCommon.WACommon_pb2 import MessageKey
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message
from neonize.proto.waWeb.WAWebProtobufsWeb_pb2 import WebMessageInfo

from wagate.domain.events import InboundMessage, Receipt

FIRST_QR_TTL_S = 60.0  # whatsmeow's QR channel: the first code lives 60 s, the next ones 20 s
NEXT_QR_TTL_S = 20.0
# The events mapped here (the host subscribes to them).
MESSAGE_EVENTS = (HistorySyncEv, MessageEv, ReceiptEv)


def qr_expiry(index: int, now: datetime | None = None) -> datetime:
    ttl = FIRST_QR_TTL_S if index == 0 else NEXT_QR_TTL_S
    return (now or datetime.now(UTC)) + timedelta(seconds=ttl)


def jid_str(jid: JID) -> str:
    """user@server without the device part: the account, as wagate names it."""
    if not jid.User:
        return str(jid.Server)
    return f"{jid.User}@{jid.Server}"


def _from_unix(value: int) -> datetime:
    """neonize encodes some timestamps in seconds and message timestamps in milliseconds."""
    number = float(value)
    if number > 1e14:  # nanoseconds
        number /= 1e9
    elif number > 1e11:  # milliseconds
        number /= 1e3
    if number <= 0:
        return datetime.now(UTC)
    return datetime.fromtimestamp(number, UTC)


def _drop_empty(content: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in content.items() if v not in ("", None)}


def message_content(message: Message) -> tuple[str, dict[str, Any]] | None:
    """wagate's kind and content of a WhatsApp message; None for protocol-only messages (key
    distribution, app-state keys) that carry nothing for the tenant. A contact's edit or revoke
    of an earlier message is kind `edit` / `revoke` naming it (docs/events.md)."""
    if message.HasField("editedMessage"):  # the edit wrapped as newer clients send it
        message = message.editedMessage.message
    if message.HasField("protocolMessage") and message.protocolMessage.key.ID:
        p = message.protocolMessage
        if p.type == p.MESSAGE_EDIT:
            edited = p.editedMessage
            body = edited.conversation or edited.extendedTextMessage.text
            return "edit", {"message_id": p.key.ID, "body": body}
        if p.type == p.REVOKE:
            return "revoke", {"message_id": p.key.ID}
    if message.conversation:
        return "text", {"body": message.conversation}
    if message.HasField("extendedTextMessage"):
        return "text", {"body": message.extendedTextMessage.text}
    if message.HasField("imageMessage"):
        m = message.imageMessage
        return "image", _drop_empty({"caption": m.caption, "mime_type": m.mimetype})
    if message.HasField("videoMessage"):
        m2 = message.videoMessage
        return "video", _drop_empty({"caption": m2.caption, "mime_type": m2.mimetype})
    if message.HasField("audioMessage"):
        kind = "voice" if message.audioMessage.PTT else "audio"  # a voice note is PTT audio
        return kind, _drop_empty({"mime_type": message.audioMessage.mimetype})
    if message.HasField("documentMessage"):
        d = message.documentMessage
        return "document", _drop_empty(
            {"caption": d.caption, "filename": d.fileName, "mime_type": d.mimetype}
        )
    if message.HasField("locationMessage"):
        loc = message.locationMessage
        return "location", _drop_empty(
            {
                "latitude": loc.degreesLatitude,
                "longitude": loc.degreesLongitude,
                "name": loc.name,
                "address": loc.address,
            }
        )
    if message.HasField("contactMessage"):
        c = message.contactMessage
        return "contact", _drop_empty({"name": c.displayName, "vcard": c.vcard})
    if message.HasField("reactionMessage"):
        r = message.reactionMessage
        return "reaction", {"message_id": r.key.ID, "emoji": r.text}
    if message.HasField("stickerMessage"):
        return "sticker", _drop_empty({"mime_type": message.stickerMessage.mimetype})
    for field in ("pollCreationMessage", "pollCreationMessageV3", "pollCreationMessageV2"):
        if message.HasField(field):
            poll = getattr(message, field)
            options = [o.optionName for o in poll.options]
            count = poll.selectableOptionsCount or len(options)
            return "poll", {"question": poll.name, "options": options, "selectable_count": count}
    return None


_MEDIA_FIELDS = (
    "imageMessage",
    "videoMessage",
    "audioMessage",
    "documentMessage",
    "stickerMessage",
)


def message_media(message: Message) -> dict[str, Any] | None:
    """The file of a media message as the runner's `download` op takes it back (host.py): the
    media part of the message, which neonize's download_any needs whole (keys, path, hashes),
    and what it says of the file; None for other messages."""
    for name in _MEDIA_FIELDS:
        if message.HasField(name):
            media = getattr(message, name)
            return _drop_empty(
                {
                    "message_b64": base64.b64encode(
                        Message(**{name: media}).SerializeToString()
                    ).decode(),
                    "mime_type": media.mimetype,
                    "size": int(media.fileLength),
                    "filename": getattr(media, "fileName", ""),
                }
            )
    return None


def poll_vote(
    event: MessageEv, selected: list[bytes] | None, error: str | None = None
) -> InboundMessage:
    """A vote in a poll (`pollUpdateMessage`), with the options whatsmeow decrypted (their
    SHA-256s) or None and why; the runner names them (runner/poll_votes.py)."""
    update = event.Message.pollUpdateMessage
    content: dict[str, Any] = {
        "poll_id": update.pollCreationMessageKey.ID,
        "selected_hashes": [h.hex() for h in selected] if selected is not None else None,
    }
    if error is not None:
        content["error"] = error
    source = event.Info.MessageSource
    return InboundMessage(
        wa_id=event.Info.ID,
        chat=jid_str(source.Chat),
        sender=jid_str(source.Sender),
        kind="poll_vote",
        content=content,
        ts=_from_unix(event.Info.Timestamp),
        from_history=False,
        from_me=bool(source.IsFromMe),
    )


def inbound_message(event: MessageEv) -> InboundMessage | None:
    found = message_content(event.Message)
    if found is None:
        return None
    kind, content = found
    source = event.Info.MessageSource
    return InboundMessage(
        wa_id=event.Info.ID,
        chat=jid_str(source.Chat),
        sender=jid_str(source.Sender),
        kind=kind,
        content=content,
        ts=_from_unix(event.Info.Timestamp),
        from_history=False,
        from_me=bool(source.IsFromMe),
    )


def _account(jid_text: str) -> str:
    """'155501:12@s.whatsapp.net' → '155501@s.whatsapp.net' (history sync keeps device parts)."""
    user, at, server = jid_text.partition("@")
    return f"{user.split(':')[0]}{at}{server}"


def _history_message(info: WebMessageInfo, me: str) -> InboundMessage | None:
    found = message_content(info.message)
    if found is None or not info.key.ID:
        return None
    kind, content = found
    key: MessageKey = info.key
    chat = _account(key.remoteJID)
    sender = key.participant or info.participant or (me if key.fromMe else chat)
    return InboundMessage(
        wa_id=key.ID,
        chat=chat,
        sender=_account(sender),
        kind=kind,
        content=content,
        ts=_from_unix(info.messageTimestamp),
        from_history=True,
        from_me=bool(key.fromMe),
    )


def history_messages(event: HistorySyncEv, me: str = "") -> list[InboundMessage]:
    """Every message of a history-sync blob the tenant can use, oldest first per chat."""
    found: list[InboundMessage] = []
    for conversation in event.Data.conversations:
        for entry in conversation.messages:
            message = _history_message(entry.message, me)
            if message is not None:
                found.append(message)
    return found


def history_media(event: HistorySyncEv) -> dict[str, dict[str, Any]]:
    """The file references of a history-sync blob's media messages, by WhatsApp id."""
    found: dict[str, dict[str, Any]] = {}
    for conversation in event.Data.conversations:
        for entry in conversation.messages:
            info = entry.message
            media = message_media(info.message)
            if media is not None and info.key.ID:
                found[info.key.ID] = media
    return found


_RECEIPT_KINDS: dict[int, Literal["delivered", "read"]] = {
    ReceiptEv.DELIVERED: "delivered",
    ReceiptEv.READ: "read",
    ReceiptEv.PLAYED: "read",  # a voice note played has been read
}


def receipt(event: ReceiptEv) -> Receipt | None:
    """Delivered/read receipts from recipients; our own devices' and retry receipts are not
    status changes of an outbound message."""
    kind = _RECEIPT_KINDS.get(event.Type)
    if kind is None or event.MessageSource.IsFromMe or not event.MessageIDs:
        return None
    return Receipt(
        wa_ids=tuple(event.MessageIDs),
        kind=kind,
        chat=jid_str(event.MessageSource.Chat),
        ts=_from_unix(event.Timestamp),
    )
