"""The whatsmeow host's directory queries and group notices (host side: imports neonize): number
checks (`IsOnWhatsApp`), the joined groups, one group's info, create, add/remove/promote/demote
and the invite link, answered in the JSON shape of runner/engines/directory.py; whatsmeow's
`GroupInfo` and `JoinedGroup` events become GroupParticipantsChanged. Pure functions over
neonize's protobuf objects, unit-tested with them (tests/unit/test_whatsmeow_directory.py)."""

from __future__ import annotations

import re
from typing import Any

from neonize.events import GroupInfoEv, JoinedGroupEv
from neonize.proto.Neonize_pb2 import JID, GroupInfo, GroupParticipant
from neonize.utils.enum import ParticipantChange

from runner.engines.whatsmeow.inbound import _from_unix, jid_str
from runner.engines.whatsmeow.outbound import ContentError, recipient_jid
from wagate.domain.directory import ParticipantAction
from wagate.domain.events import GroupParticipantsChanged

GROUP_EVENTS = (GroupInfoEv, JoinedGroupEv)
QUERIES = frozenset(
    {"check_numbers", "groups", "group", "create_group", "update_participants", "invite_code"}
)
CHANGES = {
    "add": ParticipantChange.ADD,
    "remove": ParticipantChange.REMOVE,
    "promote": ParticipantChange.PROMOTE,
    "demote": ParticipantChange.DEMOTE,
}
STATUS = re.compile(r"\b(400|401|403|404|406)\b")
CODES = {
    "400": "bad_request",
    "401": "forbidden",
    "403": "forbidden",
    "404": "not_found",
    "406": "bad_request",
}


def _jid(value: JID | None) -> str | None:
    return jid_str(value) if value is not None and value.User else None


def member(p: GroupParticipant) -> dict[str, Any]:
    role = "superadmin" if p.IsSuperAdmin else "admin" if p.IsAdmin else "member"
    jid = _jid(p.JID) or ""
    lid = _jid(p.LID) or (jid if jid.endswith("@lid") else None)
    phone = _jid(p.PhoneNumber) or (jid if jid.endswith("@s.whatsapp.net") else None)
    return {"jid": jid, "role": role, "phone": phone, "lid": lid}


def group(info: GroupInfo, *, members: bool = True) -> dict[str, Any]:
    participants = [member(p) for p in info.Participants]
    return {
        "jid": _jid(info.JID) or "",
        "subject": info.GroupName.Name,
        "owner": _jid(info.OwnerPN) or _jid(info.OwnerJID),
        "created": _from_unix(info.GroupCreated).timestamp() if info.GroupCreated else None,
        "description": info.GroupTopic.Topic or None,
        "size": len(participants),
        "announce": bool(info.GroupAnnounce.IsAnnounce),
        "restrict": bool(info.GroupLocked.isLocked),
        "participants": participants if members else [],
    }


def refusal(error: Exception) -> dict[str, Any]:
    """whatsmeow's errors are strings ("…: 404 item-not-found"): the code decides."""
    text = str(error) or type(error).__name__
    found = STATUS.search(text)
    code = CODES.get(found.group(1), "failed") if found else "failed"
    return {"refused": {"code": code, "message": text[:300]}}


def run_query(client: Any, frame: dict[str, Any]) -> dict[str, Any]:
    """One query of the runner's: {"data": …} or {"refused": {code, message}}."""
    q = frame.get("q")
    if q not in QUERIES:
        return {"refused": {"code": "bad_request", "message": f"unknown query {q!r}"}}
    try:
        if q == "check_numbers":
            numbers = [str(n) for n in frame.get("numbers") or ()]
            found = {
                r.Query.removeprefix("+"): r
                for r in client.is_on_whatsapp(*[f"+{n}" for n in numbers])
            }
            return {"data": [number(n, found.get(n)) for n in numbers]}
        if q == "groups":
            return {"data": [group(g, members=False) for g in client.get_joined_groups()]}
        jid = recipient_jid(str(frame.get("group") or "")) if q != "create_group" else None
        people = [recipient_jid(str(p)) for p in frame.get("participants") or ()]
        if q == "group":
            return {"data": group(client.get_group_info(jid))}
        if q == "create_group":
            return {"data": group(client.create_group(str(frame.get("subject") or ""), people))}
        if q == "update_participants":
            change = CHANGES[str(frame.get("action"))]
            results = client.update_group_participants(jid, people, change)
            return {"data": [{"jid": _jid(r.JID) or "", "status": r.Error or 200} for r in results]}
        if q == "invite_code":
            link = str(client.get_group_invite_link(jid))
            return {"data": link.rstrip("/").rsplit("/", 1)[-1]}
    except ContentError as e:  # not an address
        return {"refused": {"code": "bad_request", "message": str(e)}}
    except Exception as e:  # whatsmeow's refusal, as a code the adapter maps
        return refusal(e)
    raise AssertionError(q)  # every name in QUERIES is answered above


def number(digits: str, found: Any) -> dict[str, Any]:
    on = bool(found is not None and found.IsIn)
    jid = _jid(found.JID) if on else None
    return {"number": digits, "on_whatsapp": on, "jid": jid, "lid": None}


def participant_events(event: Any, me: str) -> list[GroupParticipantsChanged]:
    """A GroupInfo event's joins, leaves, promotions and demotions; JoinedGroup (the session was
    added to a group, or made one) as the session's own `add`."""
    if isinstance(event, JoinedGroupEv):
        info = event.GroupInfo
        by = _jid(event.SenderPN) or _jid(event.Sender)
        ts = _from_unix(info.GroupCreated)
        return [GroupParticipantsChanged(_jid(info.JID) or "", "add", (me,), by, ts)]
    changes: list[GroupParticipantsChanged] = []
    group_jid = _jid(event.JID) or ""
    by = _jid(event.Sender)
    ts = _from_unix(event.Timestamp)
    moves: tuple[tuple[ParticipantAction, Any], ...] = (
        ("add", event.Join),
        ("remove", event.Leave),
        ("promote", event.Promote),
        ("demote", event.Demote),
    )
    for action, jids in moves:
        people = tuple(_jid(j) or "" for j in jids)
        if people:
            left = action == "remove" and people == (by,)  # they left on their own
            changes.append(
                GroupParticipantsChanged(group_jid, action, people, None if left else by, ts)
            )
    return changes
