"""The simulated directory: which numbers are on WhatsApp, and groups — their members and
admins, invite codes, and the `group_participants` notices members' devices get when someone
joins, leaves, or becomes or stops being an admin (simulator/PROTOCOL.md, "Queries")."""

from __future__ import annotations

import secrets
import time
from typing import Any

from simulator.errors import NotFoundError, SimulatorError
from simulator.model import Device, Link
from simulator.protocol import encode, lid_jid, normalize_address, user_jid
from simulator.state import WorldState

GROUP_BASE = 120_363_000_000_000_000  # group ids look like WhatsApp's (120363…@g.us)
ACTIONS = ("add", "remove", "promote", "demote")


class Group:
    __slots__ = ("created", "description", "invite", "jid", "members", "owner", "subject")

    def __init__(self, jid: str, subject: str, owner: str) -> None:
        self.jid = jid
        self.subject = subject
        self.owner = owner  # canonical digits of the creator
        self.created = time.time()
        self.description: str | None = None
        self.members: dict[str, str] = {owner: "superadmin"}  # digits → member | admin | …
        self.invite = secrets.token_urlsafe(16)[:22]


class QueryError(SimulatorError):
    """A query the server refuses; `code` goes into the result frame."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class GroupRules(WorldState):
    def _init_state(self) -> None:
        super()._init_state()
        self.groups: dict[str, Group] = {}

    # ------------------------------------------------------------ the device's queries

    def on_query(self, link: Link, device: Device | None, frame: dict[str, Any]) -> None:
        """`{"t": "query", "id", "q", …}` → `{"t": "result", "id", "ok", "data" | "code"}`."""
        reply: dict[str, Any] = {"t": "result", "id": frame.get("id")}
        try:
            if device is None:
                raise QueryError("not_connected", "log in first")
            reply |= {"ok": True, "data": self._answer(device, frame)}
            self.stats[f"query_{frame.get('q')}"] += 1
        except QueryError as e:
            reply |= {"ok": False, "code": e.code, "message": str(e)}
        link.push(encode(reply))

    def _answer(self, device: Device, frame: dict[str, Any]) -> Any:
        me = device.account.phone
        q = frame.get("q")
        if q == "check_numbers":
            return [self._number(str(n)) for n in frame.get("numbers") or ()]
        if q == "groups":
            return [self._describe(g) for g in self.groups.values() if me in g.members]
        if q == "group":
            return self._describe(self._member_group(me, frame.get("group")))
        if q == "create_group":
            members = [self._participant(p) for p in frame.get("participants") or ()]
            group = self.create_group(me, str(frame.get("subject") or ""), members)
            return self._describe(group)
        if q == "update_participants":
            group = self._member_group(me, frame.get("group"))
            action = str(frame.get("action"))
            if action not in ACTIONS:
                raise QueryError("bad_request", f"unknown action {action!r}")
            people = [str(p) for p in frame.get("participants") or ()]
            return self.change_participants(group, action, people, by=me)
        if q == "invite_code":
            group = self._member_group(me, frame.get("group"))
            self._require_admin(group, me)
            return group.invite
        raise QueryError("bad_request", f"unknown query {q!r}")

    def _number(self, raw: str) -> dict[str, Any]:
        address = normalize_address(raw)
        if address is None or "@" in address:
            return {"number": raw, "on_whatsapp": False, "jid": None, "lid": None}
        if not self.is_on_whatsapp(address):
            return {"number": address, "on_whatsapp": False, "jid": None, "lid": None}
        return {"number": address, "on_whatsapp": True, "jid": user_jid(address),
                "lid": lid_jid(address)}  # fmt: skip

    def _participant(self, raw: Any) -> str:
        address = normalize_address(raw) if isinstance(raw, str) else None
        if address is None or "@" in address:
            raise QueryError("bad_request", f"not a person's address: {raw!r}")
        return address

    def _member_group(self, me: str, raw: Any) -> Group:
        jid = raw if isinstance(raw, str) and raw.endswith("@g.us") else f"{raw}@g.us"
        group = self.groups.get(jid)
        if group is None:
            raise QueryError("not_found", f"no group {jid}")
        if me not in group.members:
            raise QueryError("forbidden", f"not a participant of {jid}")
        return group

    @staticmethod
    def _require_admin(group: Group, who: str) -> None:
        if group.members.get(who) not in ("admin", "superadmin"):
            raise QueryError("forbidden", f"only admins of {group.jid} may do that")

    @staticmethod
    def _describe(group: Group) -> dict[str, Any]:
        return {
            "jid": group.jid,
            "subject": group.subject,
            "owner": user_jid(group.owner),
            "created": group.created,
            "description": group.description,
            "size": len(group.members),
            "participants": [
                {"jid": user_jid(p), "phone": user_jid(p), "lid": lid_jid(p), "role": role}
                for p, role in group.members.items()
            ],
        }

    # ------------------------------------------------------------ the rules

    def create_group(self, owner: str, subject: str, members: list[str]) -> Group:
        if not subject.strip() or len(subject) > 100:
            raise QueryError("bad_request", "a group's subject is 1 to 100 characters")
        jid = f"{GROUP_BASE + len(self.groups) + 1}@g.us"
        group = self.groups[jid] = Group(jid, subject, owner)
        added = [m for m in dict.fromkeys(members) if m != owner and self.is_on_whatsapp(m)]
        for member in added:
            group.members[member] = "member"
        if added:
            self._notify(group, "add", added, by=owner)
        return group

    def change_participants(
        self, group: Group, action: str, people: list[str], *, by: str | None
    ) -> list[dict[str, Any]]:
        """Add, remove, promote or demote; one status per person (200 done, 404 not on
        WhatsApp or not in the group, 409 already in it); members' devices are told of the
        ones done."""
        if by is not None:
            self._require_admin(group, by)
        results: list[dict[str, Any]] = []
        done: list[str] = []
        for raw in people:
            address = normalize_address(raw)
            if address is None or "@" in address:
                results.append({"jid": raw, "status": 400})
                continue
            status = self._apply(group, action, address)
            results.append({"jid": user_jid(address), "status": status})
            if status == 200:
                done.append(address)
        if done:
            self._notify(group, action, done, by=by, also=done if action == "remove" else ())
        return results

    def _apply(self, group: Group, action: str, who: str) -> int:
        role = group.members.get(who)
        if action == "add":
            if not self.is_on_whatsapp(who):
                return 404
            if role is not None:
                return 409
            group.members[who] = "member"
        elif role is None:
            return 404
        elif action == "remove":
            del group.members[who]
        elif action == "promote":
            group.members[who] = "admin" if role == "member" else role
        elif role == "admin":
            group.members[who] = "member"
        return 200

    def _notify(
        self,
        group: Group,
        action: str,
        people: list[str],
        *,
        by: str | None,
        also: list[str] | tuple[str, ...] = (),
    ) -> None:
        """Every linked device of every member (and of those just removed) gets the notice."""
        notice = {
            "t": "group_participants",
            "group": group.jid,
            "action": action,
            "participants": [user_jid(p) for p in people],
            "by": user_jid(by) if by is not None else None,
            "ts": time.time(),
        }
        for phone in [*group.members, *also]:
            account = self.accounts.get(phone)
            if account is not None:
                self._deliver_to_account(account, notice)
        self.stats[f"group_{action}"] += len(people)

    # ------------------------------------------------------------ the control API's side

    def group_by_control(self, owner: str, subject: str, members: list[str]) -> Group:
        """A group someone else made (a customer's), with the given members."""
        phones = [self.phone_of(m) for m in members]
        try:
            return self.create_group(self.phone_of(owner), subject, phones)
        except QueryError as e:
            raise SimulatorError(str(e)) from e

    def participants_by_control(
        self, jid: str, action: str, people: list[str], by: str | None
    ) -> list[dict[str, Any]]:
        """Someone on a phone changes a group: `by` (an admin), or nobody (joined by link, left
        on their own)."""
        group = self.groups.get(jid)
        if group is None:
            raise NotFoundError(f"no group {jid}")
        if action not in ACTIONS:
            raise SimulatorError(f"unknown action {action!r}")
        try:
            return self.change_participants(
                group, action, people, by=self.phone_of(by) if by else None
            )
        except QueryError as e:
            raise SimulatorError(str(e)) from e

    def describe_groups(self) -> list[dict[str, Any]]:
        return [self._describe(g) | {"invite": g.invite} for g in self.groups.values()]
