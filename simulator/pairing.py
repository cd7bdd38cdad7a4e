"""Pairing a new device: rotating QR payloads, or a pairing code typed into the phone."""

from __future__ import annotations

import secrets
from typing import Any

from simulator.errors import NotFoundError, SimulatorError
from simulator.model import Device, Link, Pairing
from simulator.protocol import close_code, encode, normalize_address
from simulator.state import WorldState, random_base64

PAIR_CODE_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTVWXYZ"


class PairingRules(WorldState):
    """A socket without credentials pairs here; success links a device and attaches it."""

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
        pairing.qr = f"2@{ref},{random_base64(32)},{random_base64(32)},{random_base64(32)}"
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

    def link_device(self, raw_phone: str) -> tuple[Device, dict[str, Any]]:
        """Link a device without a socket (benchmarks provision many sessions this way)."""
        account = self.account(self.phone_of(raw_phone))
        device = self._new_device(account)
        return device, self._credentials(device)
