"""Chat actions (SPEC §3): what a session does to a chat besides sending a message — mark it
read, show a presence, edit a sent text, revoke a message for everyone — as the typed commands
an engine carries out (ports.EngineConnection.act), and the windows WhatsApp allows for them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

# WhatsApp's own apps offer "Edit" for 15 minutes after a text was sent, and "Delete for
# everyone" for 2 days and 12 hours. Neither Baileys nor whatsmeow checks a window itself, so
# wagate does, at the api (a clear 409) and again just before sending (the edit may have
# waited in the chat's queue).
EDIT_WINDOW = timedelta(minutes=15)
REVOKE_WINDOW = timedelta(hours=60)
# A presence is only true for a moment: one not sent within this long after it was asked for is
# dropped (dead, `presence_expired`) instead of showing "typing…" long after the fact.
PRESENCE_TTL = timedelta(seconds=20)

PresenceState = Literal["typing", "recording", "paused"]
ActionKind = Literal["read", "presence", "edit", "revoke"]
ACTION_KINDS: tuple[ActionKind, ...] = ("read", "presence", "edit", "revoke")


@dataclass(frozen=True)
class MarkRead:
    """Read receipts for received messages of one chat (`chat` as WhatsApp named it);
    `sender` is the author in a group chat, None in a one-to-one chat."""

    chat: str
    wa_ids: tuple[str, ...]
    sender: str | None = None


@dataclass(frozen=True)
class SetPresence:
    state: PresenceState


@dataclass(frozen=True)
class EditText:
    """Replace the text of a message this session sent (`target_wa_id`)."""

    target_wa_id: str
    text: str


@dataclass(frozen=True)
class Revoke:
    """Delete a message this session sent, for everyone."""

    target_wa_id: str


ChatAction = MarkRead | SetPresence | EditText | Revoke


def window_left(window: timedelta, sent_at: datetime | None, now: datetime) -> timedelta | None:
    """How long is left of `window` after a message was sent; None while it is not sent yet
    (its window has not started)."""
    if sent_at is None:
        return None
    return sent_at + window - now
