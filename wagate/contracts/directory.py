"""Number checks and groups on the wire: the API's bodies and views, the api → runner query,
and the cached answer of a number check (docs/messaging.md, "Groups and number checks")."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from wagate.contracts.base import ApiModel, Document
from wagate.domain.directory import (
    MAX_NUMBERS_PER_CHECK,
    MAX_PARTICIPANTS_PER_CHANGE,
    GroupInfo,
    GroupRole,
    ParticipantAction,
)

PHONE_PATTERN = r"^\+?[1-9][0-9]{6,15}$"
# A group member named by phone (E.164 or its JID) or by LID.
PERSON_PATTERN = r"^(\+?[1-9][0-9]{6,15}|[1-9][0-9]{6,15}@s\.whatsapp\.net|[0-9]{6,20}@lid)$"
CONTACT_CACHE_TTL = timedelta(hours=24)  # a number's answer is reused this long


# ---------------------------------------------------------------- number check


class CheckNumbersRequest(ApiModel):
    """POST /v1/sessions/{session}/contacts:check"""

    numbers: list[str] = Field(
        min_length=1,
        max_length=MAX_NUMBERS_PER_CHECK,
        description=f"Phone numbers in E.164, at most {MAX_NUMBERS_PER_CHECK}",
        examples=[["+15551234567", "+15557654321"]],
    )
    fresh: bool = Field(
        False, description="Ask WhatsApp even for numbers answered within the cache's 24 hours"
    )


class NumberCheckView(ApiModel):
    number: str = Field(description="As asked, normalized to E.164 (+digits)")
    on_whatsapp: bool
    jid: str | None = Field(None, description="Its chat address (…@s.whatsapp.net)")
    lid: str | None = Field(None, description="Its LID (…@lid), where WhatsApp told it")
    cached: bool = Field(description="Answered from the cache, not asked of WhatsApp now")
    checked_at: datetime = Field(description="When WhatsApp gave this answer")


class CheckNumbersResult(ApiModel):
    items: list[NumberCheckView]
    checked: int = Field(description="How many numbers were asked of WhatsApp by this request")


class ContactDoc(Document):
    """`contacts/{tenant}:{digits}`: the last answer for a number, reused by every session of
    the tenant for CONTACT_CACHE_TTL (Firestore TTL on expire_at)."""

    tenant_id: str
    number: str  # digits
    on_whatsapp: bool
    jid: str | None = None
    lid: str | None = None
    checked_at: datetime
    expire_at: datetime


# ---------------------------------------------------------------- groups


class GroupMemberView(ApiModel):
    jid: str = Field(description="How the group names the member: a phone JID or a LID")
    role: GroupRole
    phone: str | None = None
    lid: str | None = None


class GroupView(ApiModel):
    id: str = Field(description="The group's id: the part of its JID before @g.us")
    jid: str = Field(description="Send to it with `to` = this (…@g.us)")
    subject: str
    owner: str | None = None
    created_at: datetime | None = None
    description: str | None = None
    size: int
    announce: bool = Field(False, description="Only admins may send")
    restrict: bool = Field(False, description="Only admins may edit the group's info")
    participants: list[GroupMemberView] | None = Field(
        None, description="The members (one group's answer; left out of the list)"
    )

    @classmethod
    def of(cls, info: GroupInfo, *, members: bool = True) -> GroupView:
        data = asdict(info)
        participants = data.pop("participants")
        return cls(
            id=info.jid.removesuffix("@g.us"),
            **data,
            participants=[GroupMemberView(**p) for p in participants] if members else None,
        )


class GroupList(ApiModel):
    items: list[GroupView]


class CreateGroupRequest(ApiModel):
    """POST /v1/sessions/{session}/groups"""

    subject: str = Field(min_length=1, max_length=100, examples=["Order 1042"])
    participants: list[str] = Field(
        min_length=1,
        max_length=MAX_PARTICIPANTS_PER_CHANGE,
        description="Members to add: E.164 numbers, phone JIDs or LIDs",
        examples=[["+15551234567"]],
    )


class ChangeParticipantsRequest(ApiModel):
    """POST /v1/sessions/{session}/groups/{group}/participants"""

    action: ParticipantAction
    participants: list[str] = Field(
        min_length=1,
        max_length=MAX_PARTICIPANTS_PER_CHANGE,
        description="E.164 numbers, phone JIDs or LIDs",
        examples=[["+15551234567"]],
    )


class ParticipantResultView(ApiModel):
    jid: str
    status: int = Field(
        description="WhatsApp's per-member answer: 200 done; 403 the member's privacy settings "
        "refuse being added (send them the invite link); 404 not on WhatsApp, or not in the "
        "group; 409 already in the group"
    )


class ParticipantsResult(ApiModel):
    action: ParticipantAction
    results: list[ParticipantResultView]


class InviteView(ApiModel):
    code: str
    url: str = Field(examples=["https://chat.whatsapp.com/AbCdEfGhIjKlMnOpQrStUv"])


# ---------------------------------------------------------------- api → runner


QueryName = Literal[
    "check_numbers", "groups", "group", "create_group", "update_participants", "invite_code"
]


class RunnerQuery(BaseModel):
    """POST /queries on the shard's runner: one question for a session's live socket."""

    model_config = ConfigDict(extra="forbid")
    session_id: str
    q: QueryName
    numbers: list[str] = Field(default_factory=list, max_length=MAX_NUMBERS_PER_CHECK)
    group: str | None = None  # …@g.us
    subject: str | None = None
    action: ParticipantAction | None = None
    participants: list[str] = Field(default_factory=list, max_length=MAX_PARTICIPANTS_PER_CHANGE)
