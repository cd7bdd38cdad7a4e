"""The engine contract's directory part (wagate.ports.DirectoryQueries): number checks, groups
and group notices, on every engine of conftest.ENGINE_FACTORIES — the simulator, and Baileys
against the WhatsApp-protocol fake (emulators/whatsapp/groups.mjs answers the group IQs)."""

from __future__ import annotations

import pytest

from tests.engine_contract.conftest import EngineFactory
from tests.engine_contract.test_engine_contract import (
    BOB,
    BOB_DIGITS,
    ME,
    ME_DIGITS,
    Contract,
    contract,
    needs_whatsapp,
)
from wagate.domain.events import GroupParticipantsChanged
from wagate.errors import DependencyUnavailable, Forbidden, NotFound
from wagate.ports import DirectoryQueries

pytestmark = pytest.mark.integration

CAROL = "+15550500003"
CAROL_DIGITS = "15550500003"
T = 10.0  # query timeout

# Engines whose connections do not answer directory queries, and why (the runner answers 501).
NO_DIRECTORY: dict[str, str] = {}


def jid(digits: str) -> str:
    return f"{digits}@s.whatsapp.net"


def queries(c: Contract, device: object) -> DirectoryQueries:
    if c.eut.name in NO_DIRECTORY:
        pytest.skip(f"{c.eut.name}: {NO_DIRECTORY[c.eut.name]}")
    assert isinstance(device, DirectoryQueries), f"{c.eut.name} has no directory queries"
    return device


def test_an_engine_answers_directory_queries_unless_listed(engine_factory: EngineFactory) -> None:
    async def body(c: Contract) -> None:
        conn = c.eut.engine.open("ses-dir", None)
        c.opened.append(conn)
        assert isinstance(conn, DirectoryQueries) == (c.eut.name not in NO_DIRECTORY)

    contract(engine_factory, body)


@needs_whatsapp
def test_a_number_check_tells_who_is_on_whatsapp_with_jid_and_lid(
    engine_factory: EngineFactory,
) -> None:
    async def body(c: Contract) -> None:
        device = await c.pair()
        absent = c.network.not_on_whatsapp.removeprefix("+")
        answers = await queries(c, device.conn).check_numbers([BOB_DIGITS, absent], timeout=T)
        bob, nobody = answers
        assert (bob.number, bob.on_whatsapp, bob.jid) == (BOB_DIGITS, True, jid(BOB_DIGITS))
        assert bob.lid == c.network.lid_of(BOB)
        assert (nobody.on_whatsapp, nobody.jid, nobody.lid) == (False, None, None)

    contract(engine_factory, body)


@needs_whatsapp
def test_a_query_without_a_connected_socket_says_not_connected(
    engine_factory: EngineFactory,
) -> None:
    async def body(c: Contract) -> None:
        device = await c.pair()
        await device.conn.close()
        with pytest.raises(DependencyUnavailable) as refused:
            await queries(c, device.conn).check_numbers([BOB_DIGITS], timeout=T)
        assert refused.value.code == "session_not_connected"

    contract(engine_factory, body)


@needs_whatsapp
def test_a_created_group_is_listed_with_its_members_and_takes_a_send(
    engine_factory: EngineFactory,
) -> None:
    async def body(c: Contract) -> None:
        device = await c.pair()
        q = queries(c, device.conn)
        group = await q.create_group("Order 1042", [jid(BOB_DIGITS)], timeout=T)
        assert group.jid.endswith("@g.us") and group.subject == "Order 1042"
        roles = {m.jid: m.role for m in (await q.group(group.jid, timeout=T)).participants}
        assert roles[jid(ME_DIGITS)] == "superadmin" and roles[jid(BOB_DIGITS)] == "member"
        assert [g.jid for g in await q.groups(timeout=T)] == [group.jid]
        ack = await device.send("3EB0TOGROUP", to=group.jid, text="hello group")
        assert ack.wa_id == "3EB0TOGROUP"
        assert await c.network.received_ids(group.jid) == ["3EB0TOGROUP"]

    contract(engine_factory, body)


@needs_whatsapp
def test_members_are_added_promoted_and_removed_with_a_status_each(
    engine_factory: EngineFactory,
) -> None:
    async def body(c: Contract) -> None:
        device = await c.pair()
        q = queries(c, device.conn)
        group = await q.create_group("Support", [jid(BOB_DIGITS)], timeout=T)
        added = await q.update_participants(
            group.jid, "add", [jid(CAROL_DIGITS), jid(BOB_DIGITS)], timeout=T
        )
        assert [(r.jid, r.status) for r in added] == [
            (jid(CAROL_DIGITS), 200),
            (jid(BOB_DIGITS), 409),
        ]
        promoted = await q.update_participants(group.jid, "promote", [jid(BOB_DIGITS)], timeout=T)
        assert [r.status for r in promoted] == [200]
        removed = await q.update_participants(group.jid, "remove", [jid(CAROL_DIGITS)], timeout=T)
        assert [r.status for r in removed] == [200]
        roles = {m.jid: m.role for m in (await q.group(group.jid, timeout=T)).participants}
        assert roles == {jid(ME_DIGITS): "superadmin", jid(BOB_DIGITS): "admin"}
        code = await q.invite_code(group.jid, timeout=T)
        assert code and code.isascii() and len(code) >= 16

    contract(engine_factory, body)


@needs_whatsapp
def test_an_unknown_group_is_not_found_and_a_member_is_no_admin(
    engine_factory: EngineFactory,
) -> None:
    async def body(c: Contract) -> None:
        device = await c.pair()
        q = queries(c, device.conn)
        with pytest.raises(NotFound):
            await q.group("120363999999999999@g.us", timeout=T)
        theirs = await c.network.create_group(BOB, "Bob's", [ME])
        with pytest.raises(Forbidden):
            await q.update_participants(theirs, "add", [jid(CAROL_DIGITS)], timeout=T)

    contract(engine_factory, body)


@needs_whatsapp
def test_someone_elses_changes_to_a_group_arrive_as_participant_events(
    engine_factory: EngineFactory,
) -> None:
    async def body(c: Contract) -> None:
        device = await c.pair()
        queries(c, device.conn)
        group = await c.network.create_group(BOB, "Bob's shop", [ME])
        joined = await device.tap.next(GroupParticipantsChanged)
        assert (joined.group, joined.action, joined.participants) == (
            group,
            "add",
            (jid(ME_DIGITS),),
        )
        assert joined.by == jid(BOB_DIGITS)
        await c.network.change_participants(group, "add", [CAROL], by=BOB)
        carol = await device.tap.next(GroupParticipantsChanged)
        assert (carol.action, carol.participants, carol.by) == (
            "add",
            (jid(CAROL_DIGITS),),
            jid(BOB_DIGITS),
        )
        await c.network.change_participants(group, "promote", [ME], by=BOB)
        assert (await device.tap.next(GroupParticipantsChanged)).action == "promote"
        await c.network.change_participants(group, "remove", [CAROL], by=None)
        left = await device.tap.next(GroupParticipantsChanged)
        assert (left.action, left.participants, left.by) == ("remove", (jid(CAROL_DIGITS),), None)

    contract(engine_factory, body)
