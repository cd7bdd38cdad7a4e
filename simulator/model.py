"""The simulated world's plain objects: accounts, linked devices, handsets and pairings.

They hold state only, with `__slots__` (1,000 connected devices must stay cheap); the rules
that change them are the World's (state.py and its parts). Terms: an *account* is a WhatsApp
number that has linked devices (the gateway's sessions); a *device* is one linked companion
(jid `<phone>:<n>@s.whatsapp.net`) with credentials; a *handset* is a simulated phone that
receives what the gateway sends and answers with delivery and read receipts.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import deque
from typing import Any, Protocol

from simulator.protocol import device_jid
from simulator.settings import HISTORY_KEPT


class Link(Protocol):
    """One websocket as the world sees it (implemented by sockets.Connection)."""

    device: Device | None
    pairing: Pairing | None
    last_seen: float
    frozen_until: float

    def push(self, data: str) -> None:
        """Queue one encoded frame for sending (never blocks)."""

    def close(self, code: int, detail: str) -> None:
        """Send what is queued, then close the websocket with `code`."""

    def abort(self) -> None:
        """Drop the TCP connection without a close frame (a network failure)."""


class TokenBucket:
    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self, now: float) -> float:
        """0.0 when a token was taken, else the seconds until one is available."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class Account:
    __slots__ = (
        "banned",
        "bucket",
        "devices",
        "history",
        "inbound_ids",
        "jitter_ms",
        "latency_ms",
        "next_device",
        "phone",
        "refuse_until",
        "sent_ids",
        "stall_until",
    )

    def __init__(self, phone: str) -> None:
        self.phone = phone
        self.devices: dict[int, Device] = {}
        self.next_device = 1
        self.sent_ids: dict[str, float] = {}  # WhatsApp id → server ts (dedup per sender)
        self.inbound_ids: set[str] = set()  # "<sender>/<id>" already delivered to us
        self.history: deque[dict[str, Any]] = deque(maxlen=HISTORY_KEPT)
        self.banned = False
        self.stall_until = 0.0
        self.refuse_until = 0.0
        self.bucket: TokenBucket | None = None
        self.latency_ms: float | None = None
        self.jitter_ms: float | None = None


class Device:
    __slots__ = (
        "account",
        "client_keys_generation",
        "jid",
        "keys_generation",
        "last_disconnect",
        "link",
        "linked_at",
        "number",
        "outbox",
        "secret",
        "sends",
        "seq",
        "stall_until",
    )

    def __init__(self, account: Account, number: int) -> None:
        self.account = account
        self.number = number
        self.jid = device_jid(account.phone, number)
        self.secret = secrets.token_urlsafe(32)
        self.keys_generation = 1
        self.client_keys_generation = 1
        self.link: Link | None = None
        # Frames the device has not acknowledged yet, re-sent on every (re)connect.
        self.outbox: deque[tuple[int, str]] = deque()
        self.seq = 0
        self.sends = 0
        self.linked_at = time.time()
        self.last_disconnect: float | None = None
        self.stall_until = 0.0

    def acks_held(self, now: float) -> bool:
        """Server acks are withheld: a stall is set on this device or on its number."""
        return now < self.stall_until or now < self.account.stall_until


class Handset:
    """A simulated phone that receives messages and sends receipts."""

    __slots__ = ("address", "chat_events", "online", "received", "waiting")

    def __init__(self, address: str) -> None:
        self.address = address
        self.received: list[dict[str, Any]] = []
        self.chat_events: list[dict[str, Any]] = []  # read receipts and presences it saw
        self.online = True
        self.waiting: list[tuple[str, str]] = []  # (sender phone, id) awaiting delivery


class Pairing:
    """A device without credentials, waiting for its QR to be scanned or its code confirmed."""

    __slots__ = ("attempts", "code", "code_phone", "link", "qr", "timer")

    def __init__(self, link: Link) -> None:
        self.link = link
        self.qr = ""
        self.attempts = 0
        self.timer: asyncio.TimerHandle | None = None
        self.code: str | None = None
        self.code_phone: str | None = None
