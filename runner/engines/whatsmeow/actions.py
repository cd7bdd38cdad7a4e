"""Chat actions in the whatsmeow host (op `act`, built by runner/engines/chat_actions.py), with
neonize's calls: an edit (`edit_message`) and a revoke (`revoke_message`) are messages whatsmeow
sends and WhatsApp acks (their whatsmeow ids go into the adapter's sent-id ledger like a
send's); a read receipt (`mark_read`) and a presence (`send_chat_presence`) answer once written.
Imported by the host process only: the runner never imports neonize."""

from __future__ import annotations

import time
from typing import Any

from neonize.client import NewClient
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message
from neonize.utils.enum import ChatPresence, ChatPresenceMedia, ReceiptType

from runner.engines.whatsmeow import outbound

PRESENCE = {
    "typing": (ChatPresence.CHAT_PRESENCE_COMPOSING, ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT),
    "recording": (
        ChatPresence.CHAT_PRESENCE_COMPOSING,
        ChatPresenceMedia.CHAT_PRESENCE_MEDIA_AUDIO,
    ),
    "paused": (ChatPresence.CHAT_PRESENCE_PAUSED, ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT),
}


def act(client: NewClient, frame: dict[str, Any]) -> dict[str, Any]:
    """Carry out one `act` request; the reply is {"id", "ts"} (an edit or revoke: whatsmeow's
    id for it) or {"ts"}."""
    kind = str(frame["kind"])
    content = dict(frame.get("content") or {})
    to = outbound.recipient_jid(str(frame["to"]))
    if kind == "edit":
        edited = Message(conversation=str(content["body"]))
        sent = client.edit_message(to, str(content["message_id"]), edited)
        return {"id": sent.ID, "ts": float(sent.Timestamp)}
    if kind == "revoke":
        me = client.get_me().JID  # our own message: whatsmeow then revokes it as its sender
        sent = client.revoke_message(to, me, str(content["message_id"]))
        return {"id": sent.ID, "ts": float(sent.Timestamp)}
    if kind == "read":
        chat = outbound.recipient_jid(str(content["chat"]))
        sender = outbound.recipient_jid(str(content.get("sender") or content["chat"]))
        client.mark_read(
            *map(str, content["ids"]), chat=chat, sender=sender, receipt=ReceiptType.READ
        )
        return {"ts": time.time()}
    if kind == "presence" and content.get("state") in PRESENCE:
        state, media = PRESENCE[str(content["state"])]
        client.send_chat_presence(to, state, media)
        return {"ts": time.time()}
    raise outbound.ContentError(f"not a chat action whatsmeow can do: {kind}")
