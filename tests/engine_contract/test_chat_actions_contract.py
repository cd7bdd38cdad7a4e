"""The chat actions part of the engine contract (wagate.ports.EngineConnection.act, and the
inbound kinds `edit` and `revoke`), run against every factory of conftest.ENGINE_FACTORIES like
test_engine_contract.py: what the recipient sees of a read, a presence, an edit and a revoke,
in order with the chat's messages, and what a contact's edits and revokes become."""

from __future__ import annotations

import pytest

from tests.engine_contract.conftest import EngineFactory
from tests.engine_contract.test_engine_contract import (
    ACK_TIMEOUT,
    BOB,
    BOB_DIGITS,
    ME,
    Contract,
    Device,
    contract,
    needs_whatsapp,
)
from wagate.domain.chat_actions import (
    ChatAction,
    EditText,
    MarkRead,
    PresenceState,
    Revoke,
    SetPresence,
)
from wagate.domain.events import InboundMessage, MessageAck

pytestmark = pytest.mark.integration


async def act(c: Contract, device: Device, wa_id: str, action: ChatAction) -> MessageAck:
    return await device.conn.act(wa_id, BOB, action, timeout=ACK_TIMEOUT)


@needs_whatsapp
def test_an_edit_reaches_the_recipient_after_the_text_it_changes(
    engine_factory: EngineFactory,
) -> None:
    async def body(c: Contract) -> None:
        device = await c.pair()
        await device.send("3EB0ORIG1", text="first")
        ack = await act(c, device, "3EB0EDIT1", EditText("3EB0ORIG1", "first, corrected"))
        assert ack.wa_id == "3EB0EDIT1"
        got = await c.network.received_messages(BOB)
        assert [(m["id"], m["kind"]) for m in got] == [
            ("3EB0ORIG1", "text"),
            ("3EB0EDIT1", "edit"),
        ], got
        assert got[1]["content"] == {"message_id": "3EB0ORIG1", "body": "first, corrected"}

    contract(engine_factory, body)


@needs_whatsapp
def test_a_resent_edit_reaches_the_recipient_once(engine_factory: EngineFactory) -> None:
    """An edit retried after a lost ack carries the same id: the recipient applies it once."""

    async def body(c: Contract) -> None:
        device = await c.pair()
        await device.send("3EB0ORIG2", text="v1")
        edit = EditText("3EB0ORIG2", "v2")
        first = await act(c, device, "3EB0EDIT2", edit)
        again = await c.reconnect(device)
        second = await act(c, again, "3EB0EDIT2", edit)
        assert first.wa_id == second.wa_id == "3EB0EDIT2"
        assert await c.network.received_ids(BOB) == ["3EB0ORIG2", "3EB0EDIT2"]

    contract(engine_factory, body)


@needs_whatsapp
def test_a_revoke_reaches_the_recipient_in_order_with_the_chats_messages(
    engine_factory: EngineFactory,
) -> None:
    async def body(c: Contract) -> None:
        device = await c.pair()
        await device.send("3EB0ORIG3", text="oops")
        await act(c, device, "3EB0REVOKE3", Revoke("3EB0ORIG3"))
        await device.send("3EB0AFTER3", text="what I meant")
        got = await c.network.received_messages(BOB)
        assert [(m["id"], m["kind"]) for m in got] == [
            ("3EB0ORIG3", "text"),
            ("3EB0REVOKE3", "revoke"),
            ("3EB0AFTER3", "text"),
        ]
        assert got[1]["content"] == {"message_id": "3EB0ORIG3"}

    contract(engine_factory, body)


@needs_whatsapp
def test_read_receipts_reach_the_contact_who_wrote(engine_factory: EngineFactory) -> None:
    async def body(c: Contract) -> None:
        device = await c.pair()
        await c.network.inbound(ME, BOB, "one", "3EB0IN1")
        await c.network.inbound(ME, BOB, "two", "3EB0IN2")
        first = await device.tap.next(InboundMessage)
        await device.tap.next(InboundMessage)
        ack = await act(c, device, "3EB0READ1", MarkRead(first.chat, ("3EB0IN1", "3EB0IN2")))
        assert ack.wa_id == "3EB0READ1"
        events = await c.network.chat_events(BOB)
        assert [(e["kind"], e.get("ids")) for e in events] == [("read", ["3EB0IN1", "3EB0IN2"])]

    contract(engine_factory, body)


@needs_whatsapp
def test_presences_reach_the_chat_in_order(engine_factory: EngineFactory) -> None:
    async def body(c: Contract) -> None:
        device = await c.pair()
        states: tuple[PresenceState, ...] = ("typing", "paused", "recording")
        for n, state in enumerate(states):
            await act(c, device, f"3EB0PRES{n}", SetPresence(state))
        events = await c.network.chat_events(BOB)
        assert [(e["kind"], e["state"]) for e in events] == [
            ("presence", "typing"),
            ("presence", "paused"),
            ("presence", "recording"),
        ]
        assert await c.network.received_ids(BOB) == []  # a presence is no message

    contract(engine_factory, body)


@needs_whatsapp
def test_a_contacts_edit_revoke_and_removed_reaction_surface_as_inbound_kinds(
    engine_factory: EngineFactory,
) -> None:
    async def body(c: Contract) -> None:
        device = await c.pair()
        await c.network.inbound(ME, BOB, "hello", "3EB0THEIRS")
        assert (await device.tap.next(InboundMessage)).wa_id == "3EB0THEIRS"
        changes = [
            ("3EB0THEIREDIT", "edit", {"message_id": "3EB0THEIRS", "body": "hello!"}),
            ("3EB0THEIRREACT", "reaction", {"message_id": "3EB0THEIRS", "emoji": ""}),
            ("3EB0THEIRREVOKE", "revoke", {"message_id": "3EB0THEIRS"}),
        ]
        for wa_id, kind, content in changes:
            await c.network.inbound_change(ME, BOB, kind, content, wa_id)
            msg = await device.tap.next(InboundMessage)
            assert (msg.wa_id, msg.kind) == (wa_id, kind)
            assert {k: v for k, v in msg.content.items() if v is not None} == content
            assert BOB_DIGITS in msg.sender and not msg.from_me

    contract(engine_factory, body)
