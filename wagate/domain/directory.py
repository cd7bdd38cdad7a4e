"""What an engine answers about WhatsApp's directory: whether numbers are on WhatsApp, and the
session's groups (small frozen dataclasses, like the engine events). The engine port's queries
(wagate.ports.DirectoryQueries) return these; the api renders them (docs/messaging.md, "Groups
and number checks")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

GroupRole = Literal["member", "admin", "superadmin"]
ParticipantAction = Literal["add", "remove", "promote", "demote"]
MAX_NUMBERS_PER_CHECK = 50
MAX_PARTICIPANTS_PER_CHANGE = 50


@dataclass(frozen=True)
class NumberStatus:
    """One number as WhatsApp knows it; `jid` and `lid` are None when it is not on WhatsApp
    (or, for `lid`, when the engine was not told it)."""

    number: str  # digits, as asked (E.164 without the +)
    on_whatsapp: bool
    jid: str | None = None
    lid: str | None = None


@dataclass(frozen=True)
class GroupMember:
    jid: str  # the address the group names the member by (a phone JID or a LID)
    role: GroupRole = "member"
    phone: str | None = None  # …@s.whatsapp.net, where known
    lid: str | None = None  # …@lid, where known


@dataclass(frozen=True)
class GroupInfo:
    jid: str  # …@g.us
    subject: str
    owner: str | None = None
    created_at: datetime | None = None
    description: str | None = None
    size: int = 0
    participants: tuple[GroupMember, ...] = ()
    announce: bool = False  # only admins may send
    restrict: bool = False  # only admins may edit the group's info


@dataclass(frozen=True)
class ParticipantResult:
    """The outcome of one participant of an add/remove/promote/demote: `status` is WhatsApp's
    (200 done; 403 the number's privacy settings refuse adds, 404 not on WhatsApp / not in the
    group, 409 already in the group)."""

    jid: str
    status: int


def group_jid(group: str) -> str:
    """`120363…` or `120363…@g.us` → `120363…@g.us`."""
    return group if group.endswith("@g.us") else f"{group}@g.us"
