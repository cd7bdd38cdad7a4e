"""Typed events a WhatsApp engine emits (small frozen dataclasses, in the manner of whatsmeow).

Every engine adapter (simulator, real library) produces exactly these, so the supervisor
never sees a vendor type.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal


@dataclass(frozen=True)
class QrCode:
    code: str
    expires_at: datetime


@dataclass(frozen=True)
class PairingCode:
    code: str


@dataclass(frozen=True)
class Connected:
    jid: str


@dataclass(frozen=True)
class Disconnected:
    """The socket closed. `reason` is a WhatsApp reason code (see domain.sessions)."""

    reason: int
    detail: str = ""


@dataclass(frozen=True)
class MessageAck:
    wa_id: str
    server_ts: datetime


@dataclass(frozen=True)
class Receipt:
    wa_ids: tuple[str, ...]
    kind: Literal["delivered", "read"]
    chat: str
    ts: datetime


MediaFetch = Callable[[int], Awaitable[bytes]]
"""Downloads a received file's plaintext bytes, refusing more than the given number of bytes
(wagate.errors: PayloadTooLarge when larger, NotFound when gone, DependencyUnavailable else)."""


@dataclass(frozen=True)
class InboundMedia:
    """The file of a received image, video, audio, voice note, document or sticker: what the
    message says of it, and how the engine fetches it (the runner stores it in the media bucket,
    runner/inbound_media.py). `fetch` talks to the engine's media server, so it is not data."""

    mime_type: str
    fetch: MediaFetch = field(compare=False, repr=False)
    size: int | None = None  # as the message declares it
    filename: str | None = None


@dataclass(frozen=True)
class InboundMessage:
    """A received message or reaction. `sender` is the address WhatsApp gave (a phone number's
    `…@s.whatsapp.net`, or a LID `…@lid`); `sender_phone` and `sender_lid` are its two forms
    where the engine knows them (None where it does not: the simulator, an unmapped LID)."""

    wa_id: str
    chat: str
    sender: str
    kind: str
    content: dict[str, Any]
    ts: datetime
    from_history: bool = False
    from_me: bool = False
    sender_phone: str | None = None
    sender_lid: str | None = None
    media: InboundMedia | None = None  # a media message's file, downloaded by the runner


@dataclass(frozen=True)
class GroupParticipantsChanged:
    """Members joined, left, or became or stopped being admins of a group the session is in
    (`action`: add | remove | promote | demote; `by` is who did it, None when they joined by
    link or left on their own)."""

    group: str
    action: Literal["add", "remove", "promote", "demote"]
    participants: tuple[str, ...]
    by: str | None
    ts: datetime


@dataclass(frozen=True)
class AuthStateChanged:
    """The engine's credentials/keys changed; `state` is the engine's opaque serialized store."""

    state: bytes = field(repr=False)


EngineEvent = (
    QrCode
    | PairingCode
    | Connected
    | Disconnected
    | MessageAck
    | Receipt
    | InboundMessage
    | AuthStateChanged
    | GroupParticipantsChanged
)
