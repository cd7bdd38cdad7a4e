"""Typed events a WhatsApp engine emits (small frozen dataclasses, in the manner of whatsmeow).

Every engine adapter (simulator, real library) produces exactly these, so the supervisor
never sees a vendor type.
"""

from __future__ import annotations

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
)
