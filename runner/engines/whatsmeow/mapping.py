"""whatsmeow's events (as neonize's protobuf objects) → wagate's typed events and reason codes,
and wagate's message content → whatsmeow's outgoing message. Pure functions over the library's
own objects, so the unit tests feed them exactly what the library hands the host.

Disconnect kinds whatsmeow reports (go.mau.fi/whatsmeow types/events, connectionevents.go) and
the reason each becomes (wagate.domain.sessions decides what a reason means):

| whatsmeow event                              | reason      | why                           |
|----------------------------------------------|-------------|-------------------------------|
| LoggedOut (logged out, main device gone)     | 401         | device removed, store deleted |
| LoggedOut (unknown logout, "BANNED" in web)  | 403         | an operator must look         |
| TemporaryBan                                 | 403         | detail says when it ends      |
| StreamReplaced                               | 440         | another socket took over      |
| ConnectFailure 401 / 403 / 406               | 401/401/403 | as LoggedOut                  |
| ConnectFailure 402 (temp banned)             | 403         | as TemporaryBan               |
| ConnectFailure 500 / 503 / other             | 500/503/503 | transient: backoff            |
| ClientOutdated                               | 503         | the alert after 5 says why    |
| StreamError (code N)                         | N or 428    | N if wagate knows N           |
| Disconnected after a KeepAliveTimeout        | 408         | the socket went silent        |
| Disconnected                                 | 428         | a plain network close         |
| PairStatus error                             | 500         | next attempt shows a new QR   |
| QR channel "timeout"                         | 408         | nobody scanned in time        |
| QR channel "err-scanned-without-multidevice" | 411         | multi-device is off           |
| QR channel "err-client-outdated"             | 503         | as ClientOutdated             |
| connect() error (DNS, TCP, TLS, handshake)   | 503         | WhatsApp unreachable          |

StreamError 515 (restart required) never reaches us: whatsmeow reconnects by itself within the
same client, which is what 515 asks for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

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
from neonize.proto.waCommon.WACommon_pb2 import MessageKey
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import (
    AudioMessage,
    ContactMessage,
    ContextInfo,
    DocumentMessage,
    ImageMessage,
    LocationMessage,
    Message,
    ReactionMessage,
    VideoMessage,
)
from neonize.proto.waWeb.WAWebProtobufsWeb_pb2 import WebMessageInfo
from neonize.utils.enum import MediaType

from wagate.domain.events import InboundMessage, Receipt
from wagate.domain.sessions import DisconnectReason as R

FIRST_QR_TTL_S = 60.0  # whatsmeow's QR channel: the first code lives 60 s, the next ones 20 s
NEXT_QR_TTL_S = 20.0
USER_SERVER = "s.whatsapp.net"
MEDIA_KINDS = ("image", "document", "audio", "video")


@dataclass(frozen=True)
class Close:
    """The socket is over: report `Disconnected(reason, detail)` once and stop the client."""

    reason: int
    detail: str


# ------------------------------------------------------------------ reasons

_CONNECT_FAILURE: dict[int, tuple[int, str]] = {
    ConnectFailureReason.LOGGED_OUT: (R.LOGGED_OUT, "logged out from another device"),
    ConnectFailureReason.MAIN_DEVICE_GONE: (R.LOGGED_OUT, "the primary device was logged out"),
    ConnectFailureReason.UNKNOWN_LOGOUT: (R.BANNED, "logged out for an unknown reason (banned)"),
    ConnectFailureReason.TEMP_BANNED: (R.BANNED, "account temporarily banned"),
    ConnectFailureReason.CLIENT_OUTDATED: (R.UNAVAILABLE, "client outdated: upgrade neonize"),
    ConnectFailureReason.BAD_USER_AGENT: (R.UNAVAILABLE, "client user agent was rejected"),
    ConnectFailureReason.INTERNAL_SERVER_ERROR: (R.BAD_SESSION, "WhatsApp internal server error"),
    ConnectFailureReason.SERVICE_UNAVAILABLE: (R.UNAVAILABLE, "WhatsApp service unavailable"),
    ConnectFailureReason.EXPERIMENTAL: (R.UNAVAILABLE, "experimental connect failure"),
    ConnectFailureReason.GENERIC: (R.UNAVAILABLE, "generic connect failure"),
}

_TEMP_BAN = {
    1: "sent too many messages to people who don't have you in their address books",
    2: "too many people blocked you",
    3: "created too many groups with people who don't have you in their address books",
    4: "sent the same message to too many people",
    5: "sent too many messages to a broadcast list",
}

_LOGIN_STATUS: dict[str, tuple[int, str]] = {
    "timeout": (R.TIMED_OUT, "the QR code was not scanned in time"),
    "err-scanned-without-multidevice": (
        R.MULTIDEVICE_MISMATCH,
        "the QR was scanned by a phone without multi-device",
    ),
    "err-client-outdated": (R.UNAVAILABLE, "client outdated: upgrade neonize"),
}


class ReasonMapper:
    """Turns the library's connection events into at most one `Close` per socket. Stateful only
    for keep-alive: a Disconnected that follows a KeepAliveTimeout is a silent socket (408)."""

    def __init__(self) -> None:
        self.keepalive_failed = False

    def on_event(self, event: Any) -> Close | None:
        if isinstance(event, KeepAliveTimeoutEv):
            self.keepalive_failed = True
            return None
        if isinstance(event, KeepAliveRestoredEv):
            self.keepalive_failed = False
            return None
        if isinstance(event, LoggedOutEv):
            reason, detail = _CONNECT_FAILURE.get(event.Reason, (R.LOGGED_OUT, "logged out"))
            if reason != R.BANNED:
                reason = R.LOGGED_OUT  # whatsmeow deleted the device either way
            where = "at connect" if event.OnConnect else "by the server"
            return Close(reason, f"{detail} ({where})")
        if isinstance(event, TemporaryBanEv):
            why = _TEMP_BAN.get(int(event.Code), "terms of service (unknown reason)")
            expires = f"; it expires in {int(event.Expire)} s" if event.Expire else ""
            return Close(R.BANNED, f"temporarily banned: {why}{expires}")
        if isinstance(event, StreamReplacedEv):
            return Close(R.REPLACED, "another connection replaced this one (stream replaced)")
        if isinstance(event, ConnectFailureEv):
            reason, detail = _CONNECT_FAILURE.get(event.Reason, (R.UNAVAILABLE, "connect failure"))
            message = f": {event.Message}" if event.Message else ""
            return Close(reason, f"{detail}{message}")
        if isinstance(event, ClientOutdatedEv):
            return Close(R.UNAVAILABLE, "client outdated: upgrade neonize")
        if isinstance(event, StreamErrorEv):
            return Close(stream_error_reason(event.Code), f"stream error {event.Code}")
        if isinstance(event, DisconnectedEv):
            if self.keepalive_failed:
                return Close(R.TIMED_OUT, "keep-alive timed out")
            return Close(R.CLOSED, "connection closed")
        if isinstance(event, PairStatusEv) and event.Status == PairStatusEv.ERROR:
            return Close(R.BAD_SESSION, f"pairing failed: {event.Error}")
        return None


def stream_error_reason(code: str) -> int:
    try:
        return int(R(int(code)))
    except ValueError:
        return int(R.CLOSED)


def login_status_close(status: str) -> Close | None:
    """The QR channel's end states other than "code" and "success"."""
    if status in ("success", "code"):
        return None
    reason, detail = _LOGIN_STATUS.get(status, (R.BAD_SESSION, f"pairing failed: {status}"))
    return Close(reason, detail)


def connect_error_close(error: str) -> Close:
    """connect() itself failed: DNS, TCP, TLS or the noise handshake. Always transient."""
    return Close(R.UNAVAILABLE, f"cannot reach WhatsApp: {error}")


def qr_expiry(index: int, now: datetime | None = None) -> datetime:
    ttl = FIRST_QR_TTL_S if index == 0 else NEXT_QR_TTL_S
    return (now or datetime.now(UTC)) + timedelta(seconds=ttl)


# ------------------------------------------------------------------ inbound


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
    distribution, revokes, app-state keys) that carry nothing for the tenant."""
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
        return "audio", _drop_empty({"mime_type": message.audioMessage.mimetype})
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
    return None


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


# ------------------------------------------------------------------ outbound

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
    "document": MediaType.MediaDocument,
}
_DEFAULT_MIME = {
    "image": "image/jpeg",
    "video": "video/mp4",
    "audio": "audio/ogg; codecs=opus",
    "document": "application/octet-stream",
}


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
        body = str(content.get("body", ""))
        if not body:
            raise ContentError("a text message needs a body")
        if context is None:
            return Message(conversation=body)
        return Message(extendedTextMessage={"text": body, "contextInfo": context})
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
    if kind in MEDIA_KINDS:
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
    if kind == "audio":
        return Message(audioMessage=AudioMessage(**common))
    filename = str(content.get("filename") or "file")
    document = DocumentMessage(caption=caption, fileName=filename, title=filename, **common)
    return Message(documentMessage=document)
