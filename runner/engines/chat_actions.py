"""A chat action (wagate.domain.chat_actions) as both real engines' hosts take it: one `act`
request, `{op: "act", wa_id, to, kind, content}`, whatever the action. The Baileys worker
(runner/engines/baileys/actions.mjs) and the whatsmeow host (runner/engines/whatsmeow/host.py)
each turn it into their library's call."""

from __future__ import annotations

from typing import Any

from wagate.domain.chat_actions import ChatAction, EditText, MarkRead, Revoke, SetPresence


def action_request(wa_id: str, to: str, action: ChatAction) -> dict[str, Any]:
    content: dict[str, Any]
    if isinstance(action, EditText):
        kind, content = "edit", {"message_id": action.target_wa_id, "body": action.text}
    elif isinstance(action, Revoke):
        kind, content = "revoke", {"message_id": action.target_wa_id}
    elif isinstance(action, MarkRead):
        kind = "read"
        content = {"chat": action.chat, "ids": list(action.wa_ids), "sender": action.sender}
    else:
        assert isinstance(action, SetPresence)
        kind, content = "presence", {"state": action.state}
    return {"op": "act", "wa_id": wa_id, "to": to, "kind": kind, "content": content}
