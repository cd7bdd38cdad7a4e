"""Identifiers: time-ordered wagate ids and the names derived from them.

A message id is a ULID-style string (48-bit millisecond time + 80 random bits, Crockford
base32), so ids sort by acceptance time. The Cloud Task name and the WhatsApp message id are
*derived* from it, so a duplicate enqueue is refused by Cloud Tasks and a resend after a crash
carries the same WhatsApp id, which the recipient deduplicates.
"""

from __future__ import annotations

import hashlib
import os
import re
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ID_PATTERN = re.compile(r"^[a-z]{1,8}_[0-9A-HJKMNP-TV-Z]{26}$")


def _ulid(now_ms: int | None = None, entropy: bytes | None = None) -> str:
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    value = (ms << 80) | int.from_bytes(entropy or os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(prefix: str, now_ms: int | None = None, entropy: bytes | None = None) -> str:
    return f"{prefix}_{_ulid(now_ms, entropy)}"


def new_message_id() -> str:
    return new_id("msg")


def new_session_id() -> str:
    return new_id("ses")


def is_valid_id(value: str) -> bool:
    return bool(ID_PATTERN.match(value))


def whatsapp_message_id(message_id: str) -> str:
    """WhatsApp ids look like 3EB0 + hex; ours are a stable function of the wagate id."""
    return "3EB0" + hashlib.sha256(message_id.encode()).hexdigest()[:20].upper()


def inbound_media_id(session_id: str, wa_id: str) -> str:
    """The media id of a received message's file: a function of the message, so a redelivered
    message finds its file stored already instead of storing it twice."""
    digest = hashlib.sha256(f"inbound-media|{session_id}|{wa_id}".encode()).digest()
    return new_id("med", int.from_bytes(digest[:6], "big"), digest[6:16])


def send_task_name(message_id: str, generation: int = 0) -> str:
    """Cloud Task name for a message's send; `generation` grows only when an operator retries a
    dead letter (Cloud Tasks remembers finished names, so a retry needs a fresh one)."""
    return f"send-{message_id.replace('_', '-')}-g{generation}"


def control_task_name(session_id: str, action: str, nonce: str) -> str:
    return f"ctl-{session_id.replace('_', '-')}-{action}-{nonce}"
