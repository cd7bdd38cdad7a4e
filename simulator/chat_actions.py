"""Read receipts and presences a device sends (simulator/PROTOCOL.md, "Chat actions"): what the
other side of the chat sees of them. Edits and revokes are messages of their own kind (`edit`,
`revoke`, naming their target) and go through the send rules (messaging.py) unchanged, so a
recipient receives them in order with the chat's other messages."""

from __future__ import annotations

import time
from typing import Any

from simulator.messaging import MessageRules
from simulator.model import Device
from simulator.protocol import encode, user_jid

PRESENCE_STATES = frozenset({"typing", "recording", "paused"})


class ChatActionRules(MessageRules):
    def _on_chat_action(self, device: Device, frame: dict[str, Any]) -> None:
        """`read` {id, to, ids} or `presence` {id, to, state}: recorded on the other side's
        handset (`chat_events`), acked by id. A read of messages that came from another linked
        account reaches that account as a read receipt."""
        addressed = self._addressed(device, frame)
        if addressed is None:
            return
        wa_id, address = addressed
        account = device.account
        now = time.time()
        event: dict[str, Any] = {"id": wa_id, "kind": frame["t"], "from": account.phone, "ts": now}
        if frame["t"] == "read":
            ids = frame.get("ids")
            if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
                self._nack(device, wa_id, "invalid_message", "a read names the message ids")
                return
            event["ids"] = ids
            sender = self.accounts.get(address)
            if sender is not None and sender is not account:
                receipt = {"t": "receipt", "ids": ids, "kind": "read"}
                self._deliver_to_account(
                    sender, {**receipt, "chat": user_jid(account.phone), "ts": now}
                )
        else:
            state = frame.get("state")
            if state not in PRESENCE_STATES:
                self._nack(device, wa_id, "invalid_message", f"unknown presence {state!r}")
                return
            event["state"] = state
        self.handset(address).chat_events.append(event)
        self.stats[f"chat_{frame['t']}"] += 1
        self._ack(device, encode({"t": "ack", "id": wa_id, "ts": now}))

    def chat_events(self, raw: str) -> list[dict[str, Any]]:
        handset = self.handsets.get(self.address_of(raw))
        return list(handset.chat_events) if handset is not None else []
