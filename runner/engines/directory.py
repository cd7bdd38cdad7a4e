"""The directory answers (number checks, groups) as the simulator and the Baileys worker both
send them — one JSON shape — into wagate's types (wagate.domain.directory), and their refusals
into wagate errors. Shared so the two engines cannot drift apart in what a field means."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

from wagate.domain.directory import (
    GroupInfo,
    GroupMember,
    GroupRole,
    NumberStatus,
    ParticipantAction,
    ParticipantResult,
)
from wagate.domain.events import GroupParticipantsChanged
from wagate.errors import (
    DependencyUnavailable,
    Forbidden,
    NotFound,
    ValidationFailed,
    WagateError,
)

ROLES = ("member", "admin", "superadmin")
ACTIONS = ("add", "remove", "promote", "demote")
NOT_CONNECTED_RETRY_S = 5.0


def not_connected() -> DependencyUnavailable:
    return DependencyUnavailable(
        "the session is not connected to WhatsApp",
        code="session_not_connected",
        retry_after=NOT_CONNECTED_RETRY_S,
    )


def refusal(code: str, message: str) -> WagateError:
    """A query WhatsApp (or the engine) refused, by the engine's code."""
    if code == "not_found":
        return NotFound(message, field="group")
    if code == "forbidden":
        return Forbidden(message, field="group")
    if code == "bad_request":
        return ValidationFailed(message)
    if code == "not_connected":
        return not_connected()
    return DependencyUnavailable(f"WhatsApp did not answer the query: {message}", retry_after=5)


def _text(value: Any) -> str | None:
    return str(value) if value else None


def _time(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(value), UTC) if value else None
    except (TypeError, ValueError, OverflowError):
        return None


def number_status(data: dict[str, Any]) -> NumberStatus:
    on = bool(data.get("on_whatsapp"))
    return NumberStatus(
        number=str(data.get("number", "")),
        on_whatsapp=on,
        jid=_text(data.get("jid")) if on else None,
        lid=_text(data.get("lid")) if on else None,
    )


def group_info(data: dict[str, Any]) -> GroupInfo:
    members = []
    for p in data.get("participants") or ():
        role = p.get("role") if p.get("role") in ROLES else "member"
        members.append(
            GroupMember(
                jid=str(p.get("jid", "")),
                role=cast(GroupRole, role),
                phone=_text(p.get("phone")),
                lid=_text(p.get("lid")),
            )
        )
    return GroupInfo(
        jid=str(data.get("jid", "")),
        subject=str(data.get("subject") or ""),
        owner=_text(data.get("owner")),
        created_at=_time(data.get("created")),
        description=_text(data.get("description")),
        size=int(data.get("size") or len(members)),
        participants=tuple(members),
        announce=bool(data.get("announce")),
        restrict=bool(data.get("restrict")),
    )


def participant_results(data: list[dict[str, Any]]) -> list[ParticipantResult]:
    return [ParticipantResult(str(r.get("jid", "")), int(r.get("status") or 500)) for r in data]


def participants_event(data: dict[str, Any]) -> GroupParticipantsChanged | None:
    """A `group_participants` notice; None for an action wagate does not announce."""
    action = data.get("action")
    if action not in ACTIONS:
        return None
    return GroupParticipantsChanged(
        group=str(data.get("group", "")),
        action=action,
        participants=tuple(str(p) for p in data.get("participants") or ()),
        by=_text(data.get("by")),
        ts=_time(data.get("ts")) or datetime.now(UTC),
    )


class AskedDirectory:
    """wagate.ports.DirectoryQueries over an engine's one `_ask(q, timeout, **args)`: the
    questions and the reading of their answers, written once for every engine."""

    __slots__ = ()

    async def _ask(self, q: str, timeout: float, **args: Any) -> Any:
        raise NotImplementedError

    async def check_numbers(self, numbers: Sequence[str], *, timeout: float) -> list[NumberStatus]:
        data = await self._ask("check_numbers", timeout, numbers=list(numbers))
        return [number_status(d) for d in data]

    async def groups(self, *, timeout: float) -> list[GroupInfo]:
        return [group_info(d) for d in await self._ask("groups", timeout)]

    async def group(self, jid: str, *, timeout: float) -> GroupInfo:
        return group_info(await self._ask("group", timeout, group=jid))

    async def create_group(
        self, subject: str, participants: Sequence[str], *, timeout: float
    ) -> GroupInfo:
        data = await self._ask(
            "create_group", timeout, subject=subject, participants=list(participants)
        )
        return group_info(data)

    async def update_participants(
        self, jid: str, action: ParticipantAction, participants: Sequence[str], *, timeout: float
    ) -> list[ParticipantResult]:
        data = await self._ask(
            "update_participants",
            timeout,
            group=jid,
            action=action,
            participants=list(participants),
        )
        return participant_results(data)

    async def invite_code(self, jid: str, *, timeout: float) -> str:
        return str(await self._ask("invite_code", timeout, group=jid))
