"""Chat actions on the whatsmeow engine, offline: the adapter (runner/engines/whatsmeow/
connection.py `act`) against the scripted host (tests/engine_contract/fake_whatsmeow_host.py) —
an edit or revoke names its target by whatsmeow's id from the sent-id ledger and is ledgered
itself, so a resend is not repeated — and the host's calls into neonize
(runner/engines/whatsmeow/actions.py) on a client that records them, since no WhatsApp answers
here (the contract suite's chat action tests need one: conftest.OFFLINE_ONLY)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from neonize.proto.Neonize_pb2 import JID
from neonize.utils.enum import ChatPresence, ChatPresenceMedia, ReceiptType

from runner.engines.whatsmeow import WhatsmeowEngine, actions
from tests.unit.test_whatsmeow_adapter import BOB, connected, within
from wagate.domain.chat_actions import EditText, MarkRead, Revoke, SetPresence
from wagate.errors import PermanentSendError


def acts(engine: WhatsmeowEngine) -> list[dict[str, Any]]:
    log = engine.store_path("ses-1").with_name("ses-1.db.acts")
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_an_edit_and_a_revoke_name_their_target_by_whatsmeows_id_and_are_sent_once(
    tmp_path: Path,
) -> None:
    async def body() -> None:
        engine, conn, _ = await connected(tmp_path)
        await conn.send("3EB0TARGET", BOB, "text", {"body": "hi"}, timeout=5)  # whatsmeow: WA1
        edit = EditText("3EB0TARGET", "hi!")
        first = await conn.act("3EB0EDIT", BOB, edit, timeout=5)
        again = await conn.act("3EB0EDIT", BOB, edit, timeout=5)  # a retry after a lost ack
        assert first.wa_id == again.wa_id == "3EB0EDIT" and first.server_ts == again.server_ts
        await conn.act("3EB0REVOKE", BOB, Revoke("3EB0TARGET"), timeout=5)
        assert acts(engine) == [
            {"to": BOB, "kind": "edit", "content": {"message_id": "WA1", "body": "hi!"}},
            {"to": BOB, "kind": "revoke", "content": {"message_id": "WA1"}},
        ]
        await conn.close()

    within(30, body)


def test_an_edit_of_a_message_this_device_did_not_send_is_permanent(tmp_path: Path) -> None:
    async def body() -> None:
        engine, conn, _ = await connected(tmp_path)
        with pytest.raises(PermanentSendError) as refused:
            await conn.act("3EB0EDIT", BOB, EditText("3EB0NEVER", "x"), timeout=5)
        assert refused.value.code == "message_unknown" and acts(engine) == []
        await conn.close()

    within(30, body)


def test_reads_and_presences_pass_through_to_the_host(tmp_path: Path) -> None:
    async def body() -> None:
        engine, conn, _ = await connected(tmp_path)
        chat = "15550500002@s.whatsapp.net"
        read = await conn.act("3EB0READ", BOB, MarkRead(chat, ("3EB0IN1", "3EB0IN2")), timeout=5)
        assert read.wa_id == "3EB0READ"
        await conn.act("3EB0TYPING", BOB, SetPresence("typing"), timeout=5)
        assert acts(engine) == [
            {
                "to": BOB,
                "kind": "read",
                "content": {"chat": chat, "ids": ["3EB0IN1", "3EB0IN2"], "sender": None},
            },
            {"to": BOB, "kind": "presence", "content": {"state": "typing"}},
        ]
        await conn.close()

    within(30, body)


class Sent:
    ID = "WAEDIT"
    Timestamp = 1_767_225_600


class RecordingClient:
    """neonize's client as far as the host's actions use it: records each call."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def edit_message(self, chat: JID, message_id: str, message: Any) -> Sent:
        self.calls.append(("edit", chat.User, message_id, message.conversation))
        return Sent()

    def revoke_message(self, chat: JID, sender: JID, message_id: str) -> Sent:
        self.calls.append(("revoke", chat.User, sender.User, message_id))
        return Sent()

    def get_me(self) -> Any:
        class Me:
            JID = JID(User="15550500001", Server="s.whatsapp.net")

        return Me()

    def mark_read(self, *ids: str, chat: JID, sender: JID, receipt: ReceiptType) -> None:
        self.calls.append(("read", ids, chat.User, sender.User, receipt))

    def send_chat_presence(self, jid: JID, state: ChatPresence, media: ChatPresenceMedia) -> None:
        self.calls.append(("presence", jid.User, state, media))


def test_the_host_carries_each_action_out_with_neonizes_call() -> None:
    client = RecordingClient()

    def act(kind: str, content: dict[str, Any]) -> dict[str, Any]:
        frame = {"op": "act", "to": BOB, "kind": kind, "content": content}
        return actions.act(client, frame)  # type: ignore[arg-type]

    assert act("edit", {"message_id": "WA1", "body": "new"}) == {
        "id": "WAEDIT",
        "ts": 1_767_225_600.0,
    }
    assert act("revoke", {"message_id": "WA1"})["id"] == "WAEDIT"
    assert set(act("read", {"chat": "15550500002@s.whatsapp.net", "ids": ["A", "B"]})) == {"ts"}
    act("presence", {"state": "recording"})
    act("presence", {"state": "paused"})
    assert client.calls == [
        ("edit", "15550500002", "WA1", "new"),
        ("revoke", "15550500002", "15550500001", "WA1"),
        ("read", ("A", "B"), "15550500002", "15550500002", ReceiptType.READ),
        (
            "presence",
            "15550500002",
            ChatPresence.CHAT_PRESENCE_COMPOSING,
            ChatPresenceMedia.CHAT_PRESENCE_MEDIA_AUDIO,
        ),
        (
            "presence",
            "15550500002",
            ChatPresence.CHAT_PRESENCE_PAUSED,
            ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT,
        ),
    ]
    with pytest.raises(Exception, match="whatsmeow can do"):
        act("presence", {"state": "online"})


def test_a_contacts_edit_and_revoke_become_inbound_kinds_naming_their_message() -> None:
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message

    from runner.engines.whatsmeow import inbound

    key = {"ID": "3EB0THEIRS", "remoteJID": "15550500002@s.whatsapp.net"}
    edit = Message(
        protocolMessage={"key": key, "type": 14, "editedMessage": {"conversation": "hi!"}}
    )
    assert inbound.message_content(edit) == ("edit", {"message_id": "3EB0THEIRS", "body": "hi!"})
    wrapped = Message(editedMessage={"message": {"protocolMessage": edit.protocolMessage}})
    assert inbound.message_content(wrapped) == inbound.message_content(edit)
    revoke = Message(protocolMessage={"key": key, "type": 0})
    assert inbound.message_content(revoke) == ("revoke", {"message_id": "3EB0THEIRS"})
    removed = Message(reactionMessage={"key": key, "text": ""})
    assert inbound.message_content(removed) == (
        "reaction",
        {"message_id": "3EB0THEIRS", "emoji": ""},
    )
