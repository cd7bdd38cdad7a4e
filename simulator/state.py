"""The World's tables and the rules every part of it shares.

Accounts, devices, handsets and pairings by key; the frames a device must acknowledge
(its outbox, re-sent on every reconnect); credentials and key updates; unlinking. Timers
carry the world's epoch, so those of a world that was reset find a new epoch and do nothing.
Nothing here does I/O itself: frames leave through each socket's `Link`.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from collections import Counter
from typing import Any

from simulator.errors import SimulatorError
from simulator.model import Account, Device, Handset, Link, Pairing
from simulator.protocol import GOING_AWAY, close_code, encode, normalize_address
from simulator.settings import Settings


def random_base64(n: int) -> str:
    return base64.b64encode(secrets.token_bytes(n)).decode()


def _signed_prekey(key_id: int) -> dict[str, Any]:
    return {"id": key_id, "public": random_base64(32), "signature": random_base64(64)}


class WorldState:
    """State and shared rules; the pairing, messaging and fault rules build on it."""

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

    @staticmethod
    def address_of(raw: str) -> str:
        """The canonical address of a phone number or a jid; a control request naming neither
        is refused (400)."""
        address = normalize_address(raw)
        if address is None:
            raise SimulatorError(f"not a WhatsApp address: {raw!r}")
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
            "identity_key": random_base64(32),
            "noise_key": random_base64(32),
            "adv_secret": random_base64(32),
            "signed_prekey": _signed_prekey(1),
            "next_prekey_id": 1,
            "keys_generation": device.keys_generation,
        }

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
