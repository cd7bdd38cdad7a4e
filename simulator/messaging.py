"""Messages through the simulated server: sends and their acks, receipts, inbound messages."""

from __future__ import annotations

import random
import secrets
import time
from typing import Any

from simulator.model import Device, Link, TokenBucket
from simulator.protocol import encode, lid_jid, normalize_address, user_jid
from simulator.state import WorldState

PERMANENT_ERRORS = frozenset({"invalid_recipient", "not_on_whatsapp", "invalid_message"})


class MessageRules(WorldState):
    """What a send does (dedup, rate limit, delivery to handsets and linked accounts, the
    server ack), the receipts handsets send back, and messages arriving from the phone side."""

    def _addressed(self, device: Device, frame: dict[str, Any]) -> tuple[str, str] | None:
        """A frame's id and recipient address (canonical), or None once it has been nacked for
        a missing id or an address that is none (sends, reads and presences alike)."""
        wa_id = frame.get("id")
        if not isinstance(wa_id, str) or not wa_id or len(wa_id) > 128:
            self._nack(device, str(wa_id), "invalid_message", "the message id is missing")
            return None
        to = frame.get("to")
        address = normalize_address(to) if isinstance(to, str) else None
        if address is None:
            self._nack(device, wa_id, "invalid_recipient", f"not a WhatsApp address: {to!r}")
            return None
        return wa_id, address

    def _on_send(self, device: Device, frame: dict[str, Any]) -> None:
        account = device.account
        addressed = self._addressed(device, frame)
        if addressed is None:
            return
        wa_id, address = addressed
        to = frame["to"]
        if not self.is_on_whatsapp(address):
            self._nack(device, wa_id, "not_on_whatsapp", f"{address} is not on WhatsApp")
            return
        kind = frame.get("kind")
        content = frame.get("content")
        if not isinstance(kind, str) or not kind or not isinstance(content, dict):
            self._nack(device, wa_id, "invalid_message", "kind and content are required")
            return
        self.stats["sends"] += 1
        first_ts = account.sent_ids.get(wa_id)
        if first_ts is not None:
            # The same id again (a resend after a lost ack): acked, never delivered twice.
            self.stats["duplicates"] += 1
            self._ack(device, encode({"t": "ack", "id": wa_id, "ts": first_ts}))
            return
        bucket = account.bucket
        if bucket is None and self.settings.rate_limit_per_s is not None:
            bucket = account.bucket = TokenBucket(
                self.settings.rate_limit_per_s, self.settings.rate_limit_burst
            )
        if bucket is not None:
            wait = bucket.take(time.monotonic())
            if wait > 0:
                self._nack(device, wa_id, "rate_limited", "too many messages", retry_after=wait)
                return
        now = time.time()
        account.sent_ids[wa_id] = now
        by_lid = isinstance(to, str) and to.endswith("@lid")
        self._record_send(device, wa_id, address, kind, content, now, by_lid=by_lid)
        self._ack(device, encode({"t": "ack", "id": wa_id, "ts": now}))
        device.sends += 1
        every = self.settings.key_update_every
        if every and device.sends % every == 0:
            self._update_keys(device)

    def _record_send(
        self,
        device: Device,
        wa_id: str,
        address: str,
        kind: str,
        content: dict[str, Any],
        now: float,
        *,
        by_lid: bool = False,
    ) -> None:
        account = device.account
        handset = self.handset(address)
        handset.received.append(
            {
                "id": wa_id,
                "from": account.phone,
                "from_device": device.jid,
                "kind": kind,
                "content": content,
                "ts": now,
                "addressing": "lid" if by_lid else "pn",
            }
        )
        self.stats["delivered_to_recipients"] += 1
        # The chat is named as the sender named it: receipts of a send to a LID come from it.
        chat = lid_jid(address) if by_lid else user_jid(address)
        mine = {
            "id": wa_id,
            "chat": chat,
            "sender": user_jid(account.phone),
            "kind": kind,
            "content": content,
            "ts": now,
            "from_me": True,
        }
        account.history.append(mine)
        for sibling in account.devices.values():
            if sibling is not device:  # the account's other devices see what was sent
                self._deliver(sibling, {"t": "msg", **mine})
        target = self.accounts.get(address)
        if target is not None and target is not account:
            # The recipient is itself a linked account (another session): it receives it.
            theirs = {**mine, "chat": user_jid(account.phone), "from_me": False}
            target.history.append(theirs)
            self._deliver_to_account(target, {"t": "msg", **theirs})
        if handset.online:
            self._schedule_receipt(account.phone, chat, "delivered", wa_id)
        else:
            handset.waiting.append((account.phone, wa_id))

    def _ack(self, device: Device, data: str) -> None:
        account = device.account
        link = device.link
        if link is None:
            return
        now = time.monotonic()
        if device.acks_held(now):
            self._stalled.append((device, link, data))
            return
        settings = self.settings
        latency_ms = settings.ack_latency_ms if account.latency_ms is None else account.latency_ms
        jitter_ms = settings.ack_jitter_ms if account.jitter_ms is None else account.jitter_ms
        delay_ms = latency_ms + (random.uniform(-jitter_ms, jitter_ms) if jitter_ms else 0.0)
        if delay_ms <= 0:
            self._send_ack(self._epoch, device, link, data)
        else:
            self._later(delay_ms / 1000.0, self._send_ack, device, link, data)

    def _send_ack(self, epoch: int, device: Device, link: Link, data: str) -> None:
        # Acks belong to a connection: once that socket is gone, this one is never sent.
        if epoch == self._epoch and device.link is link:
            link.push(data)
            self.stats["acks"] += 1

    def _nack(
        self,
        device: Device,
        wa_id: str,
        code: str,
        message: str,
        *,
        retry_after: float | None = None,
    ) -> None:
        self.stats[f"nack_{code}"] += 1
        frame: dict[str, Any] = {
            "t": "nack",
            "id": wa_id,
            "code": code,
            "permanent": code in PERMANENT_ERRORS,
            "message": message,
        }
        if retry_after is not None:
            frame["retry_after"] = round(retry_after, 3)
        if device.link is not None:
            device.link.push(encode(frame))

    def _schedule_receipt(self, sender: str, chat: str, kind: str, wa_id: str) -> None:
        """Receipts due at about the same time for the same chat travel together, as
        WhatsApp's do (one receipt frame carries several ids)."""
        key = (sender, chat, kind)
        batch = self._receipts.get(key)
        if batch is not None:
            batch.append(wa_id)
            return
        self._receipts[key] = [wa_id]
        if kind == "delivered":
            delay_ms = self.settings.receipt_delay_ms
        else:
            delay_ms = max(0.0, self.settings.read_delay_ms - self.settings.receipt_delay_ms)
        self._later(delay_ms / 1000.0, self._flush_receipts, key)

    def _flush_receipts(self, epoch: int, key: tuple[str, str, str]) -> None:
        if epoch != self._epoch:
            return
        ids = self._receipts.pop(key, None)
        if not ids:
            return
        sender, chat, kind = key
        account = self.accounts.get(sender)
        if account is not None:
            frame = {"t": "receipt", "ids": ids, "kind": kind, "chat": chat, "ts": time.time()}
            self._deliver_to_account(account, frame)
            self.stats[f"receipts_{kind}"] += len(ids)
        if kind == "delivered" and self.settings.read_receipts:
            for wa_id in ids:
                self._schedule_receipt(sender, chat, "read", wa_id)

    def set_recipient_online(self, raw: str, online: bool) -> None:
        address = self.address_of(raw)
        handset = self.handset(address)
        handset.online = online
        if online:
            waiting, handset.waiting = handset.waiting, []
            chat = user_jid(address)
            for sender, wa_id in waiting:
                self._schedule_receipt(sender, chat, "delivered", wa_id)

    def inbound(
        self,
        to_phone: str,
        sender: str,
        kind: str,
        content: dict[str, Any],
        wa_id: str | None = None,
        addressing: str = "pn",
        media: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Someone sends a message to the account `to_phone`: every linked device gets it
        (offline ones when they reconnect). The same id from the same sender arrives once.
        Addressed from the sender's phone number (`pn`) or its LID (`lid`); the frame names
        both forms (`sender_phone`, `sender_lid`), as WhatsApp does where it knows them."""
        account = self.account(self.phone_of(to_phone))
        sender_address = self.address_of(sender)
        wa_id = wa_id or "3EB0" + secrets.token_hex(10).upper()
        key = f"{sender_address}/{wa_id}"
        if key in account.inbound_ids:
            self.stats["inbound_duplicates"] += 1
            return {"id": wa_id, "duplicate": True, "devices": len(account.devices)}
        account.inbound_ids.add(key)
        phone_jid = user_jid(sender_address)
        forms = {}
        if "@" not in sender_address:  # a person, not a group
            forms = {"sender_phone": phone_jid, "sender_lid": lid_jid(sender_address)}
        jid = forms["sender_lid"] if addressing == "lid" and forms else phone_jid
        record = {
            "id": wa_id,
            "chat": jid,
            "sender": jid,
            **forms,
            "kind": kind,
            "content": content,
            "ts": time.time(),
            "from_me": False,
            **({"media": media} if media else {}),  # a file on the media host (simulator/media.py)
        }
        account.history.append(record)
        self._deliver_to_account(account, {"t": "msg", **record})
        self.stats["inbound"] += 1
        return {"id": wa_id, "duplicate": False, "devices": len(account.devices)}
