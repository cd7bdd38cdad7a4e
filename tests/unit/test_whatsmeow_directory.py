"""whatsmeow's number checks and groups, offline: the host's conversions of neonize's own protobuf
objects (GroupInfo, GroupParticipant, IsOnWhatsAppResponse, the GroupInfo and JoinedGroup
events) into wagate's shape, run_query against a client scripted with those objects, and the
adapter's query path through the fake host process
(tests/engine_contract/fake_whatsmeow_host.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from neonize.events import GroupInfoEv, JoinedGroupEv
from neonize.proto.Neonize_pb2 import (
    JID,
    GroupInfo,
    GroupName,
    GroupParticipant,
    IsOnWhatsAppResponse,
)
from neonize.utils.enum import ParticipantChange

from runner.engines.whatsmeow import host_directory
from tests.engine_contract.whatsmeow_kit import linked_store
from tests.simulator.harness import EventTap, run
from tests.unit.test_whatsmeow_adapter import fake_engine
from wagate.domain.events import Connected, GroupParticipantsChanged
from wagate.errors import DependencyUnavailable, NotFound


def jid(user: str, server: str = "s.whatsapp.net") -> JID:
    return JID(User=user, Server=server, Device=0, RawAgent=0, Integrator=0, IsEmpty=False)


ME, BOB = jid("15550500001"), jid("15550500002")
GROUP = jid("120363100000000001", "g.us")


def info() -> GroupInfo:
    return GroupInfo(
        JID=GROUP,
        OwnerJID=ME,
        GroupName=GroupName(Name="Order 1042"),
        GroupCreated=1764756000,
        Participants=[
            GroupParticipant(JID=ME, IsAdmin=True, IsSuperAdmin=True),
            GroupParticipant(JID=jid("100108903580247", "lid"), PhoneNumber=BOB, IsAdmin=True),
        ],
    )


class ScriptedClient:
    """neonize's NewClient as far as the directory uses it, answering with its protobufs."""

    def __init__(self) -> None:
        self.changes: list[tuple[str, list[str], ParticipantChange]] = []

    def is_on_whatsapp(self, *numbers: str) -> list[IsOnWhatsAppResponse]:
        return [
            IsOnWhatsAppResponse(Query=n, JID=jid(n[1:]), IsIn=not n.startswith("+999"))
            for n in numbers
        ]

    def get_joined_groups(self) -> list[GroupInfo]:
        return [info()]

    def get_group_info(self, group: JID) -> GroupInfo:
        if group.User != GROUP.User:
            raise RuntimeError("failed to get group info: info query returned status 404")
        return info()

    def update_group_participants(
        self, group: JID, people: list[JID], change: ParticipantChange
    ) -> list[GroupParticipant]:
        self.changes.append((group.User, [p.User for p in people], change))
        return [GroupParticipant(JID=people[0]), GroupParticipant(JID=people[1], Error=409)]

    def get_group_invite_link(self, group: JID) -> str:
        return "https://chat.whatsapp.com/AbCdEfGhIjKlMnOpQrStUv"


def test_a_group_names_members_by_role_phone_and_lid() -> None:
    data = host_directory.group(info())
    assert data["jid"] == "120363100000000001@g.us" and data["subject"] == "Order 1042"
    assert data["owner"] == "15550500001@s.whatsapp.net" and data["size"] == 2
    assert data["participants"] == [
        {
            "jid": "15550500001@s.whatsapp.net",
            "role": "superadmin",
            "phone": "15550500001@s.whatsapp.net",
            "lid": None,
        },
        {
            "jid": "100108903580247@lid",
            "role": "admin",
            "phone": "15550500002@s.whatsapp.net",
            "lid": "100108903580247@lid",
        },
    ]
    assert host_directory.group(info(), members=False)["participants"] == []


def test_queries_answer_in_the_shared_shape_and_refusals_carry_a_code() -> None:
    client = ScriptedClient()
    checked = host_directory.run_query(
        client, {"q": "check_numbers", "numbers": ["15550500002", "99955501234"]}
    )
    assert checked["data"] == [
        {
            "number": "15550500002",
            "on_whatsapp": True,
            "jid": "15550500002@s.whatsapp.net",
            "lid": None,
        },
        {"number": "99955501234", "on_whatsapp": False, "jid": None, "lid": None},
    ]
    changed = host_directory.run_query(
        client,
        {
            "q": "update_participants",
            "group": "120363100000000001@g.us",
            "action": "add",
            "participants": ["+15550500003", "15550500002@s.whatsapp.net"],
        },
    )
    assert [r["status"] for r in changed["data"]] == [200, 409]
    assert client.changes == [
        ("120363100000000001", ["15550500003", "15550500002"], ParticipantChange.ADD)
    ]
    invite = host_directory.run_query(client, {"q": "invite_code", "group": GROUP.User + "@g.us"})
    assert invite == {"data": "AbCdEfGhIjKlMnOpQrStUv"}
    missing = host_directory.run_query(client, {"q": "group", "group": "1203639@g.us"})
    assert missing["refused"]["code"] == "not_found"
    assert host_directory.run_query(client, {"q": "nope"})["refused"]["code"] == "bad_request"


def test_group_events_become_participant_changes() -> None:
    event = GroupInfoEv(
        JID=GROUP, Sender=BOB, Timestamp=1764756000, Join=[jid("15550500003")], Leave=[BOB]
    )
    joined, left = host_directory.participant_events(event, "15550500001@s.whatsapp.net")
    assert (joined.group, joined.action, joined.participants, joined.by) == (
        "120363100000000001@g.us",
        "add",
        ("15550500003@s.whatsapp.net",),
        "15550500002@s.whatsapp.net",
    )
    assert (left.action, left.by) == ("remove", None)  # Bob left on his own
    added = JoinedGroupEv(GroupInfo=info(), Sender=BOB)
    (me,) = host_directory.participant_events(added, "15550500001@s.whatsapp.net")
    assert (me.action, me.participants, me.by) == (
        "add",
        ("15550500001@s.whatsapp.net",),
        "15550500002@s.whatsapp.net",
    )


def test_the_adapter_asks_its_host_and_maps_its_refusals(tmp_path: Path) -> None:
    async def body() -> None:
        engine = fake_engine(tmp_path)
        conn = engine.open("ses-1", linked_store(tmp_path / "made.db"))
        await conn.connect()
        tap = EventTap(conn.events())
        await tap.next(Connected)
        try:
            on, off = await conn.check_numbers(["15550500002", "99955501234"], timeout=5)
            assert (on.on_whatsapp, on.jid, off.on_whatsapp) == (
                True,
                "15550500002@s.whatsapp.net",
                False,
            )
            with pytest.raises(NotFound):
                await conn.group("120363100000000009@g.us", timeout=5)
            made = await conn.create_group("Team", ["15550500002@s.whatsapp.net"], timeout=5)
            assert [m.role for m in made.participants] == ["superadmin", "member"]
            notice = await tap.next(GroupParticipantsChanged)  # crossed the pipe
            assert (notice.group, notice.action) == (made.jid, "add")
            results = await conn.update_participants(
                made.jid, "add", ["15550500002@s.whatsapp.net"], timeout=5
            )
            assert [r.status for r in results] == [409]
            assert await conn.invite_code(made.jid, timeout=5) == "FAKEINVITECODE0123456789"
        finally:
            await conn.close()
            await engine.aclose()
        with pytest.raises(DependencyUnavailable) as closed:
            await conn.check_numbers(["15550500002"], timeout=5)
        assert closed.value.code == "session_not_connected"

    run(body, 30)
