"""wagate's message content → whatsmeow's outgoing message (neonize's protobuf objects); media
is uploaded first through the library. ContentError is content that can never be sent.

Voice notes are PTT audio, stickers WebP sticker messages, mentions `mentionedJID`, the runner's
link preview the extended text's title/description/thumbnail; a poll carries a fresh random
secret, which whatsmeow's SendMessage files in its device store (so in the session's backup) and
DecryptPollVote finds again for the votes.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from neonize.proto.Neonize_pb2 import JID, UploadResponse
from neonize.proto.waCommon.WACommon_pb2 import MessageKey
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import (
    AudioMessage,
    ContactMessage,
    ContextInfo,
    DocumentMessage,
    ExtendedTextMessage,
    ImageMessage,
    LocationMessage,
    Message,
    MessageContextInfo,
    PollCreationMessage,
    ReactionMessage,
    StickerMessage,
    VideoMessage,
)
from neonize.utils.enum import MediaType

from runner.engines.whatsmeow.inbound import jid_str

USER_SERVER = "s.whatsapp.net"


Upload = Callable[[bytes, MediaType], UploadResponse]


class ContentError(ValueError):
    """wagate content that cannot become a WhatsApp message (a permanent send error)."""


def recipient_jid(to: str) -> JID:
    """'+15550100' or a full JID ('…@s.whatsapp.net', '…@g.us') → JID; ContentError otherwise."""
    if "@" in to:
        user, _, server = to.partition("@")
        if not user or server not in (USER_SERVER, "g.us", "lid"):
            raise ContentError(f"not a WhatsApp address: {to!r}")
        return JID(User=user, Server=server, Device=0, RawAgent=0, Integrator=0, IsEmpty=False)
    digits = to.removeprefix("+")
    if not digits.isdigit() or not 6 <= len(digits) <= 16:
        raise ContentError(f"not a phone number in international format: {to!r}")
    return JID(User=digits, Server=USER_SERVER, Device=0, RawAgent=0, Integrator=0, IsEmpty=False)


def _context(content: dict[str, Any], quoted_sender: str) -> ContextInfo | None:
    reply_to = content.get("reply_to")
    if not reply_to:
        return None
    return ContextInfo(stanzaID=str(reply_to), participant=quoted_sender)


_MEDIA_TYPE = {
    "image": MediaType.MediaImage,
    "video": MediaType.MediaVideo,
    "audio": MediaType.MediaAudio,
    "voice": MediaType.MediaAudio,
    "sticker": MediaType.MediaImage,  # whatsmeow uploads stickers as images
    "document": MediaType.MediaDocument,
}
_DEFAULT_MIME = {
    "image": "image/jpeg",
    "video": "video/mp4",
    "audio": "audio/ogg; codecs=opus",
    "voice": "audio/ogg; codecs=opus",
    "sticker": "image/webp",
    "document": "application/octet-stream",
}
POLL_SECRET_BYTES = 32


def _user_jid(address: str) -> str:
    return address if "@" in address else f"{address.removeprefix('+')}@{USER_SERVER}"


def _text(content: dict[str, Any], context: ContextInfo | None) -> Message:
    """A text: plain, or extended when it quotes, mentions or carries the runner's preview."""
    body = str(content.get("body", ""))
    if not body:
        raise ContentError("a text message needs a body")
    mentions = [_user_jid(str(m)) for m in content.get("mentions") or ()]
    preview = content.get("preview") or {}
    if context is None and not mentions and not preview:
        return Message(conversation=body)
    if mentions:
        context = context or ContextInfo()
        context.mentionedJID.extend(mentions)
    extended = ExtendedTextMessage(text=body, contextInfo=context)
    if preview.get("title"):
        extended.matchedText = str(preview.get("url", ""))
        extended.title = str(preview["title"])
        extended.description = str(preview.get("description") or "")
        if preview.get("thumbnail_b64"):
            extended.JPEGThumbnail = base64.b64decode(str(preview["thumbnail_b64"]))
    return Message(extendedTextMessage=extended)


def _poll(content: dict[str, Any], context: ContextInfo | None) -> Message:
    """A poll, as whatsmeow's BuildPollCreation makes one (V3 for single select)."""
    options = [str(o) for o in content.get("options") or ()]
    if not content.get("question") or len(options) < 2:
        raise ContentError("a poll needs a question and at least two options")
    poll = PollCreationMessage(
        name=str(content["question"]),
        options=[PollCreationMessage.Option(optionName=o) for o in options],
        selectableOptionsCount=int(content.get("selectable_count") or 1),
        contextInfo=context,
    )
    secret = MessageContextInfo(messageSecret=os.urandom(POLL_SECRET_BYTES))
    if poll.selectableOptionsCount == 1:
        return Message(pollCreationMessageV3=poll, messageContextInfo=secret)
    return Message(pollCreationMessage=poll, messageContextInfo=secret)


def build_message(
    kind: str,
    content: dict[str, Any],
    *,
    to: JID,
    media: bytes | None = None,
    upload: Upload | None = None,
    reaction_from_me: bool = False,
) -> Message:
    """The WhatsApp message for wagate content. Media is uploaded (encrypted by whatsmeow) first;
    `media` holds the file's bytes, fetched by the adapter from the URL or the media bucket."""
    context = _context(content, quoted_sender=jid_str(to))
    if kind == "text":
        return _text(content, context)
    if kind == "poll":
        return _poll(content, context)
    if kind == "location":
        return Message(
            locationMessage=LocationMessage(
                degreesLatitude=float(content["latitude"]),
                degreesLongitude=float(content["longitude"]),
                name=str(content.get("name") or ""),
                address=str(content.get("address") or ""),
                contextInfo=context,
            )
        )
    if kind == "contact":
        name = str(content.get("name", ""))
        phone = str(content.get("phone", ""))
        digits = phone.removeprefix("+")
        vcard = (
            f"BEGIN:VCARD\nVERSION:3.0\nFN:{name}\nTEL;type=CELL;waid={digits}:+{digits}\nEND:VCARD"
        )
        return Message(
            contactMessage=ContactMessage(displayName=name, vcard=vcard, contextInfo=context)
        )
    if kind == "reaction":
        key = MessageKey(
            remoteJID=jid_str(to), fromMe=reaction_from_me, ID=str(content["message_id"])
        )
        if not reaction_from_me:
            key.participant = jid_str(to)
        return Message(
            reactionMessage=ReactionMessage(
                key=key,
                text=str(content.get("emoji", "")),
                senderTimestampMS=int(datetime.now(UTC).timestamp() * 1000),
            )
        )
    if kind in _MEDIA_TYPE:
        if media is None or upload is None:
            raise ContentError(f"a {kind} message needs the file's bytes")
        return _media_message(kind, content, media, upload(media, _MEDIA_TYPE[kind]), context)
    raise ContentError(f"unsupported message kind {kind!r}")


def _media_message(
    kind: str,
    content: dict[str, Any],
    data: bytes,
    uploaded: UploadResponse,
    context: ContextInfo | None,
) -> Message:
    mime = str(content.get("mime_type") or _DEFAULT_MIME[kind])
    common: dict[str, Any] = {
        "URL": uploaded.url,
        "directPath": uploaded.DirectPath,
        "mediaKey": uploaded.MediaKey,
        "fileEncSHA256": uploaded.FileEncSHA256,
        "fileSHA256": uploaded.FileSHA256,
        "fileLength": uploaded.FileLength or len(data),
        "mimetype": mime,
        "mediaKeyTimestamp": int(datetime.now(UTC).timestamp()),
    }
    if context is not None:
        common["contextInfo"] = context
    caption = str(content.get("caption") or "")
    if kind == "image":
        return Message(imageMessage=ImageMessage(caption=caption, **common))
    if kind == "video":
        return Message(videoMessage=VideoMessage(caption=caption, **common))
    if kind in ("audio", "voice"):
        return Message(audioMessage=AudioMessage(PTT=kind == "voice", **common))
    if kind == "sticker":
        return Message(stickerMessage=StickerMessage(**common))
    filename = str(content.get("filename") or "file")
    document = DocumentMessage(caption=caption, fileName=filename, title=filename, **common)
    return Message(documentMessage=document)
