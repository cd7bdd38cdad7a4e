"""The simulated WhatsApp world: accounts, linked devices, simulated handsets, and faults.

Everything the simulator knows lives here, in plain objects with `__slots__` (1,000 connected
devices must stay cheap), driven by the event loop's timers: no threads, no per-device tasks.
The websocket layer (sockets.py) hands frames in through `hello`/`on_frame` and gets frames out
through the `Link` it registered; the control API (control.py) calls the phone-side and fault
methods. Nothing here does I/O itself, so every rule of the simulated server is in this file.

Terms: an *account* is a WhatsApp number that has linked devices (the gateway's sessions); a
*device* is one linked companion (jid `<phone>:<n>@s.whatsapp.net`) with credentials; a
*handset* is a simulated phone that receives what the gateway sends and answers with delivery
and read receipts. Addresses are canonical digits (protocol.normalize_address).
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import random
import secrets
import time
from collections import Counter, deque
from collections.abc import Iterable
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from simulator.protocol import (
    GOING_AWAY,
    close_code,
    device_jid,
    encode,
    normalize_address,
    user_jid,
)

PAIR_CODE_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTVWXYZ"
HISTORY_KEPT = 1000  # messages remembered per account for history sync
PERMANENT_ERRORS = frozenset({"invalid_recipient", "not_on_whatsapp", "invalid_message"})


class Settings(BaseModel):
    """The simulator's tunables; the CLI sets the defaults, `POST /control/config` changes them
    at run time and `POST /control/reset` restores the defaults."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    receipt_delay_ms: float = Field(200.0, ge=0, description="Send → delivery receipt")
    read_delay_ms: float = Field(1000.0, ge=0, description="Send → read receipt")
    read_receipts: bool = Field(True, description="Handsets send read receipts at all")
    qr_interval_s: float = Field(20.0, gt=0, description="Lifetime of one QR payload")
    qr_attempts: int = Field(6, ge=1, description="QR payloads before pairing gives up (408)")
    idle_timeout_s: float = Field(90.0, gt=0, description="Drop sockets silent for this long")
    hello_timeout_s: float = Field(20.0, gt=0, description="Wait for the first frame")
    key_update_every: int = Field(100, ge=0, description="Key update every N sends (0: never)")
    history_limit: int = Field(50, ge=0, le=HISTORY_KEPT, description="Messages per history sync")
    outbox_limit: int = Field(50_000, ge=1, description="Queued frames kept per offline device")
    ack_latency_ms: float = Field(0.0, ge=0, description="Default server-ack latency")
    ack_jitter_ms: float = Field(0.0, ge=0, description="Default server-ack jitter (±)")
    rate_limit_per_s: float | None = Field(None, gt=0, description="Default sends/s per account")
    rate_limit_burst: int = Field(20, ge=1, description="Default burst per account")
    not_on_whatsapp_prefix: str = Field("999", description="Numbers with it are not on WhatsApp")


class SimulatorError(Exception):
    """A control request the simulator refuses; `status` is its HTTP status."""

    status = 400


class NotFoundError(SimulatorError):
    status = 404


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


class Handset:
    """A simulated phone that receives messages and sends receipts."""

    __slots__ = ("address", "online", "received", "waiting")

    def __init__(self, address: str) -> None:
        self.address = address
        self.received: list[dict[str, Any]] = []
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


def _b64(n: int) -> str:
    return base64.b64encode(secrets.token_bytes(n)).decode()


def _signed_prekey(key_id: int) -> dict[str, Any]:
    return {"id": key_id, "public": _b64(32), "signature": _b64(64)}


class World:
    def __init__(self, defaults: Settings | None = None) -> None:
        self.defaults = defaults or Settings()
        self.links: set[Link] = set()
        self.started = time.time()
        self._epoch = 0
        self._init_state()

    def _init_state(self) -> None:
        self.settings = self.defaults.model_copy()
        self.accounts: dict[str, Account] = {}
        self.devices: dict[str, Device] = {}
        self.handsets: dict[str, Handset] = {}
        self.pairings: dict[str, Pairing] = {}  # by current QR payload
        self.pair_codes: dict[tuple[str, str], Pairing] = {}  # (phone, code)
        self.not_on_whatsapp: set[str] = set()
        self.refuse_until = 0.0
        self.stats: Counter[str] = Counter()
        self._receipts: dict[tuple[str, str, str], list[str]] = {}
        self._stalled: list[tuple[Device, Link, str]] = []

    def reset(self) -> None:
        """Forget everything (accounts, devices, messages, faults) and close every socket."""
        self._epoch += 1  # timers of the old world find a new epoch and do nothing
        for pairing in list(self.pairings.values()):
            if pairing.timer is not None:
                pairing.timer.cancel()
        for link in list(self.links):
            link.device = None
            link.pairing = None
            link.close(GOING_AWAY, "simulator reset")
        self._init_state()

    # ------------------------------------------------------------ small helpers

    @property
    def _loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    def _later(self, delay_s: float, callback: Any, *args: Any) -> asyncio.TimerHandle:
        return self._loop.call_later(max(0.0, delay_s), callback, self._epoch, *args)

    def account(self, phone: str) -> Account:
        """The account of `phone` (canonical digits), created on first use."""
        account = self.accounts.get(phone)
        if account is None:
            account = self.accounts[phone] = Account(phone)
        return account

    def handset(self, address: str) -> Handset:
        handset = self.handsets.get(address)
        if handset is None:
            handset = self.handsets[address] = Handset(address)
        return handset

    def is_on_whatsapp(self, address: str) -> bool:
        if address in self.not_on_whatsapp:
            return False
        prefix = self.settings.not_on_whatsapp_prefix
        return not (prefix and address.startswith(prefix))

    def phone_of(self, raw: str) -> str:
        address = normalize_address(raw)
        if address is None or "@" in address:
            raise SimulatorError(f"not a phone number: {raw!r}")
        return address

    def _deliver(self, device: Device, body: dict[str, Any]) -> None:
        """Queue a frame the device must acknowledge (receipts, messages, history, keys)."""
        device.seq += 1
        data = encode({**body, "seq": device.seq})
        device.outbox.append((device.seq, data))
        if len(device.outbox) > self.settings.outbox_limit:
            device.outbox.popleft()
            self.stats["outbox_overflow"] += 1
        if device.link is not None:
            device.link.push(data)

    def _deliver_to_account(self, account: Account, body: dict[str, Any]) -> None:
        for device in account.devices.values():
            self._deliver(device, body)

    @staticmethod
    def _trim(device: Device, acked: int) -> None:
        if acked > device.seq:
            return  # a number this device was never sent: not ours to trust
        outbox = device.outbox
        while outbox and outbox[0][0] <= acked:
            outbox.popleft()

    # ------------------------------------------------------------ connecting

    def attach(self, link: Link) -> None:
        self.links.add(link)
        self.stats["connections"] += 1

    def refusing(self) -> bool:
        """Connects are refused outright (HTTP 503 at the websocket handshake)."""
        return time.monotonic() < self.refuse_until

    def hello(self, link: Link, creds: Any, acked: int) -> None:
        """The first frame of a socket: log in with credentials, or start pairing without."""
        if creds is None:
            self._start_pairing(link)
            return
        jid = creds.get("jid") if isinstance(creds, dict) else None
        secret = creds.get("secret") if isinstance(creds, dict) else None
        device = self.devices.get(jid) if isinstance(jid, str) else None
        if (
            device is None
            or not isinstance(secret, str)
            or not hmac.compare_digest(device.secret.encode(), secret.encode())
        ):
            self.stats["logins_refused"] += 1
            link.close(close_code(401), "unknown device or wrong credentials")
            return
        account = device.account
        if account.banned:
            link.close(close_code(403), "this number is banned")
            return
        if time.monotonic() < account.refuse_until:
            link.close(close_code(503), "service unavailable")
            return
        generation = creds.get("keys_generation")
        if isinstance(generation, int):
            device.client_keys_generation = generation
        since = device.last_disconnect
        history = []
        if since is not None and self.settings.history_limit:
            recent = [m for m in account.history if m["ts"] >= since]
            history = recent[-self.settings.history_limit :]
        self._attach_device(link, device, acked, history)
        self.stats["logins"] += 1

    def _attach_device(
        self, link: Link, device: Device, acked: int, history: list[dict[str, Any]]
    ) -> None:
        old = device.link
        if old is not None and old is not link:
            old.device = None  # frames still arriving on the old socket are ignored
            old.close(close_code(440), "replaced by another connection of this device")
            self.stats["replaced"] += 1
        device.link = link
        link.device = device
        self._trim(device, acked)
        link.push(
            encode(
                {
                    "t": "connected",
                    "jid": device.jid,
                    "ts": time.time(),
                    "keys_generation": device.keys_generation,
                }
            )
        )
        for _, data in device.outbox:
            link.push(data)
        if history:
            self._deliver(device, {"t": "history", "messages": history})

    def disconnected(self, link: Link) -> None:
        self.links.discard(link)
        pairing = link.pairing
        if pairing is not None:
            self._end_pairing(pairing)
        device = link.device
        if device is not None and device.link is link:
            device.link = None
            device.last_disconnect = time.time()
        link.device = None

    def sweep_idle(self) -> int:
        """Close sockets that sent nothing (not even a ping) for idle_timeout_s."""
        limit = time.monotonic() - self.settings.idle_timeout_s
        idle = [link for link in self.links if link.last_seen < limit]
        for link in idle:
            link.close(close_code(408), "keep-alive timeout")
        self.stats["idle_closed"] += len(idle)
        return len(idle)

    # ------------------------------------------------------------ pairing

    def _start_pairing(self, link: Link) -> None:
        pairing = Pairing(link)
        link.pairing = pairing
        self._rotate_qr(self._epoch, pairing)

    def _rotate_qr(self, epoch: int, pairing: Pairing) -> None:
        if epoch != self._epoch or pairing.link.pairing is not pairing:
            return
        self.pairings.pop(pairing.qr, None)
        if pairing.attempts >= self.settings.qr_attempts:
            self._end_pairing(pairing)
            pairing.link.close(close_code(408), "QR attempts ended")
            return
        pairing.attempts += 1
        ref = secrets.token_urlsafe(18)
        pairing.qr = f"2@{ref},{_b64(32)},{_b64(32)},{_b64(32)}"
        self.pairings[pairing.qr] = pairing
        interval = self.settings.qr_interval_s
        pairing.link.push(encode({"t": "qr", "code": pairing.qr, "expires_in": interval}))
        pairing.timer = self._later(interval, self._rotate_qr, pairing)

    def _end_pairing(self, pairing: Pairing) -> None:
        if pairing.timer is not None:
            pairing.timer.cancel()
            pairing.timer = None
        if self.pairings.get(pairing.qr) is pairing:
            del self.pairings[pairing.qr]
        if pairing.code is not None and pairing.code_phone is not None:
            self.pair_codes.pop((pairing.code_phone, pairing.code), None)
        if pairing.link.pairing is pairing:
            pairing.link.pairing = None

    def request_pair_code(self, link: Link, raw_phone: Any) -> None:
        pairing = link.pairing
        if pairing is None:
            link.push(encode({"t": "error", "code": "not_pairing", "message": "already linked"}))
            return
        phone = normalize_address(raw_phone) if isinstance(raw_phone, str) else None
        if phone is None or "@" in phone:
            link.push(encode({"t": "error", "code": "invalid_phone", "message": str(raw_phone)}))
            return
        if pairing.code is not None and pairing.code_phone is not None:
            self.pair_codes.pop((pairing.code_phone, pairing.code), None)
        code = "".join(secrets.choice(PAIR_CODE_ALPHABET) for _ in range(8))
        pairing.code, pairing.code_phone = code, phone
        self.pair_codes[(phone, code)] = pairing
        link.push(encode({"t": "pair_code", "code": code, "phone": phone}))

    def scan(self, qr: str, raw_phone: str) -> Device:
        """The phone scans a QR payload (control API)."""
        phone = self.phone_of(raw_phone)
        pairing = self.pairings.get(qr)
        if pairing is None:
            raise NotFoundError("unknown or expired QR code")
        return self._complete_pairing(pairing, phone)

    def confirm_pair_code(self, code: str, raw_phone: str) -> Device:
        """The user types the pairing code into the phone (control API)."""
        phone = self.phone_of(raw_phone)
        key = (phone, code.replace("-", "").strip().upper())
        pairing = self.pair_codes.get(key)
        if pairing is None:
            raise NotFoundError("no pending pairing code for this phone")
        return self._complete_pairing(pairing, phone)

    def _complete_pairing(self, pairing: Pairing, phone: str) -> Device:
        account = self.account(phone)
        link = pairing.link
        self._end_pairing(pairing)
        if account.banned:
            link.close(close_code(403), "this number is banned")
            raise SimulatorError("this number is banned")
        device = self._new_device(account)
        link.push(encode({"t": "paired", "creds": self._credentials(device)}))
        history = list(account.history)[-self.settings.history_limit :]
        self._attach_device(link, device, 0, history if self.settings.history_limit else [])
        self._update_keys(device)  # the new device uploads its first pre-keys
        self.stats["paired"] += 1
        return device

    def _new_device(self, account: Account) -> Device:
        device = Device(account, account.next_device)
        account.next_device += 1
        account.devices[device.number] = device
        self.devices[device.jid] = device
        return device

    @staticmethod
    def _credentials(device: Device) -> dict[str, Any]:
        return {
            "v": 1,
            "jid": device.jid,
            "phone": device.account.phone,
            "device": device.number,
            "secret": device.secret,
            "registration_id": secrets.randbelow(16380) + 1,
            "identity_key": _b64(32),
            "noise_key": _b64(32),
            "adv_secret": _b64(32),
            "signed_prekey": _signed_prekey(1),
            "next_prekey_id": 1,
            "keys_generation": device.keys_generation,
        }

    def link_device(self, raw_phone: str) -> tuple[Device, dict[str, Any]]:
        """Link a device without a socket (benchmarks provision many sessions this way)."""
        account = self.account(self.phone_of(raw_phone))
        device = self._new_device(account)
        return device, self._credentials(device)

    def _update_keys(self, device: Device) -> None:
        device.keys_generation += 1
        generation = device.keys_generation
        keys = {"signed_prekey": _signed_prekey(generation), "next_prekey_id": 30 * generation}
        self._deliver(device, {"t": "keys", "generation": generation, "keys": keys})

    def unlink(self, device: Device, detail: str = "device removed") -> None:
        """The phone removes the linked device: its credentials stop working (401)."""
        account = device.account
        account.devices.pop(device.number, None)
        self.devices.pop(device.jid, None)
        link = device.link
        device.link = None
        if link is not None:
            link.device = None
            link.close(close_code(401), detail)
        self.stats["unlinked"] += 1

    # ------------------------------------------------------------ frames from a device

    def on_frame(self, link: Link, frame: Any) -> None:
        kind = frame.get("t") if isinstance(frame, dict) else None
        device = link.device
        if kind == "send" and device is not None:
            self._on_send(device, frame)
        elif kind == "acked" and device is not None:
            seq = frame.get("seq")
            if isinstance(seq, int):
                self._trim(device, seq)
        elif kind == "ping":
            link.push(encode({"t": "pong", "id": frame.get("id")}))
        elif kind == "pair_code_request":
            self.request_pair_code(link, frame.get("phone"))
        elif kind == "logout" and device is not None:
            self.unlink(device, "logged out")
        elif kind in ("send", "acked", "logout"):
            pass  # a replaced or not yet linked socket: ignored, as the real server does
        else:
            link.push(encode({"t": "error", "code": "bad_frame", "message": f"unknown {kind!r}"}))

    def _on_send(self, device: Device, frame: dict[str, Any]) -> None:
        account = device.account
        wa_id = frame.get("id")
        if not isinstance(wa_id, str) or not wa_id or len(wa_id) > 128:
            self._nack(device, str(wa_id), "invalid_message", "the message id is missing")
            return
        to = frame.get("to")
        address = normalize_address(to) if isinstance(to, str) else None
        if address is None:
            self._nack(device, wa_id, "invalid_recipient", f"not a WhatsApp address: {to!r}")
            return
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
        self._record_send(device, wa_id, address, kind, content, now)
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
            }
        )
        self.stats["delivered_to_recipients"] += 1
        chat = user_jid(address)
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
        if now < device.stall_until or now < account.stall_until:
            self._stalled.append((device, link, data))
            return
        latency = account.latency_ms if account.latency_ms is not None else None
        jitter = account.jitter_ms if account.jitter_ms is not None else None
        latency_ms = self.settings.ack_latency_ms if latency is None else latency
        jitter_ms = self.settings.ack_jitter_ms if jitter is None else jitter
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

    # ------------------------------------------------------------ receipts

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
        address = normalize_address(raw)
        if address is None:
            raise SimulatorError(f"not a WhatsApp address: {raw!r}")
        handset = self.handset(address)
        handset.online = online
        if online:
            waiting, handset.waiting = handset.waiting, []
            chat = user_jid(address)
            for sender, wa_id in waiting:
                self._schedule_receipt(sender, chat, "delivered", wa_id)

    # ------------------------------------------------------------ inbound (the phone side)

    def inbound(
        self,
        to_phone: str,
        sender: str,
        kind: str,
        content: dict[str, Any],
        wa_id: str | None = None,
    ) -> dict[str, Any]:
        """Someone sends a message to the account `to_phone`: every linked device gets it
        (offline ones when they reconnect). The same id from the same sender arrives once."""
        account = self.account(self.phone_of(to_phone))
        sender_address = normalize_address(sender)
        if sender_address is None:
            raise SimulatorError(f"not a WhatsApp address: {sender!r}")
        wa_id = wa_id or "3EB0" + secrets.token_hex(10).upper()
        key = f"{sender_address}/{wa_id}"
        if key in account.inbound_ids:
            self.stats["inbound_duplicates"] += 1
            return {"id": wa_id, "duplicate": True, "devices": len(account.devices)}
        account.inbound_ids.add(key)
        jid = user_jid(sender_address)
        record = {
            "id": wa_id,
            "chat": jid,
            "sender": jid,
            "kind": kind,
            "content": content,
            "ts": time.time(),
            "from_me": False,
        }
        account.history.append(record)
        self._deliver_to_account(account, {"t": "msg", **record})
        self.stats["inbound"] += 1
        return {"id": wa_id, "duplicate": False, "devices": len(account.devices)}

    # ------------------------------------------------------------ faults

    def select(
        self, *, jid: str | None = None, phone: str | None = None, every: bool = False
    ) -> list[Device]:
        if every:
            return list(self.devices.values())
        if jid is not None:
            device = self.devices.get(jid)
            if device is None:
                raise NotFoundError(f"no linked device {jid}")
            return [device]
        if phone is not None:
            account = self.accounts.get(self.phone_of(phone))
            if account is None:
                raise NotFoundError(f"no account {phone}")
            return list(account.devices.values())
        raise SimulatorError("name a jid, a phone, or all")

    def drop(
        self,
        devices: Iterable[Device],
        reason: int,
        detail: str = "",
        *,
        abrupt: bool = False,
        pairing_links: bool = False,
    ) -> int:
        """Close the devices' sockets with `reason`; 401 also unlinks them (that is what
        WhatsApp's 401 means). `abrupt` drops TCP without a close frame."""
        dropped = 0
        for device in list(devices):
            if reason == 401 and not abrupt:
                dropped += device.link is not None
                self.unlink(device, detail or "device removed")
                continue
            link = device.link
            if link is None:
                continue
            dropped += 1
            if abrupt:
                link.abort()
            else:
                link.close(close_code(reason), detail or f"dropped with {reason}")
        if pairing_links:
            for link in [lk for lk in self.links if lk.device is None]:
                dropped += 1
                if abrupt:
                    link.abort()
                else:
                    link.close(close_code(reason), detail or f"dropped with {reason}")
        self.stats["drops"] += dropped
        return dropped

    def stall(self, devices: list[Device], accounts: list[Account], seconds: float) -> None:
        """Withhold server acks (the messages are still delivered) for `seconds`; the acks are
        released late when the stall ends, as after a server hiccup. A stall set for a number
        also holds its devices linked later; `seconds=0` ends a stall."""
        until = time.monotonic() + seconds
        for account in accounts:
            account.stall_until = until
        for device in devices:
            device.stall_until = until
        if seconds <= 0:
            self._release_stalled(self._epoch)
        else:
            self._later(seconds, self._release_stalled)

    def _release_stalled(self, epoch: int) -> None:
        if epoch != self._epoch:
            return
        now = time.monotonic()
        still: list[tuple[Device, Link, str]] = []
        for device, link, data in self._stalled:
            if now < device.stall_until or now < device.account.stall_until:
                still.append((device, link, data))
            else:
                self._send_ack(epoch, device, link, data)
        self._stalled = still

    def freeze(self, devices: list[Device], seconds: float) -> int:
        """The devices' sockets go silent (no pongs, no frames) for `seconds`: a black hole
        that only the client's keep-alive can detect."""
        until = time.monotonic() + seconds
        frozen = 0
        for device in devices:
            if device.link is not None:
                device.link.frozen_until = until
                frozen += 1
        return frozen

    def refuse(self, seconds: float, phone: str | None = None) -> None:
        until = time.monotonic() + seconds
        if phone is None:
            self.refuse_until = until
        else:
            self.account(self.phone_of(phone)).refuse_until = until

    def set_rate_limit(self, phone: str, per_second: float | None, burst: int) -> None:
        account = self.account(self.phone_of(phone))
        account.bucket = None if per_second is None else TokenBucket(per_second, burst)

    def ban(self, phone: str, banned: bool) -> int:
        account = self.account(self.phone_of(phone))
        account.banned = banned
        if not banned:
            return 0
        return self.drop(account.devices.values(), 403, "this number is banned")

    def set_latency(self, phone: str | None, ms: float, jitter_ms: float) -> None:
        if phone is None:
            self.settings.ack_latency_ms = ms
            self.settings.ack_jitter_ms = jitter_ms
        else:
            account = self.account(self.phone_of(phone))
            account.latency_ms, account.jitter_ms = ms, jitter_ms

    def mark_not_on_whatsapp(self, raw: str, value: bool) -> None:
        address = normalize_address(raw)
        if address is None:
            raise SimulatorError(f"not a WhatsApp address: {raw!r}")
        if value:
            self.not_on_whatsapp.add(address)
        else:
            self.not_on_whatsapp.discard(address)

    # ------------------------------------------------------------ inspection

    def received(self, raw: str) -> list[dict[str, Any]]:
        address = normalize_address(raw)
        if address is None:
            raise SimulatorError(f"not a WhatsApp address: {raw!r}")
        handset = self.handsets.get(address)
        return list(handset.received) if handset is not None else []

    def describe_devices(self) -> list[dict[str, Any]]:
        return [
            {
                "jid": d.jid,
                "phone": d.account.phone,
                "device": d.number,
                "connected": d.link is not None,
                "keys_generation": d.keys_generation,
                "client_keys_generation": d.client_keys_generation,
                "outbox": len(d.outbox),
                "sends": d.sends,
                "linked_at": d.linked_at,
                "last_disconnect": d.last_disconnect,
                "banned": d.account.banned,
            }
            for d in self.devices.values()
        ]

    def describe_pairings(self) -> list[dict[str, Any]]:
        return [
            {"qr": p.qr, "attempt": p.attempts, "pair_code": p.code, "phone": p.code_phone}
            for p in self.pairings.values()
        ]

    def snapshot(self) -> dict[str, Any]:
        connected = sum(1 for d in self.devices.values() if d.link is not None)
        return {
            "uptime_s": round(time.time() - self.started, 3),
            "sockets": len(self.links),
            "devices": len(self.devices),
            "devices_connected": connected,
            "accounts": len(self.accounts),
            "pairings": len(self.pairings),
            "recipients": len(self.handsets),
            "counters": dict(self.stats),
        }
