"""Faults the control API injects: dropped or frozen sockets, withheld acks, refused
connects, rate limits, bans, ack latency and numbers that are not on WhatsApp."""

from __future__ import annotations

import time
from collections.abc import Iterable

from simulator.errors import NotFoundError, SimulatorError
from simulator.messaging import MessageRules
from simulator.model import Account, Device, Link, TokenBucket
from simulator.protocol import close_code


class FaultControls(MessageRules):
    """Built on the message rules because a stall holds back, then releases, their acks."""

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
        cut: list[Link] = []
        for device in list(devices):
            if reason == 401 and not abrupt:
                dropped += device.link is not None
                self.unlink(device, detail or "device removed")
            elif device.link is not None:
                cut.append(device.link)
        if pairing_links:
            cut.extend(lk for lk in self.links if lk.device is None)
        for link in cut:
            if abrupt:
                link.abort()
            else:
                link.close(close_code(reason), detail or f"dropped with {reason}")
        dropped += len(cut)
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
            if device.acks_held(now):
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
        address = self.address_of(raw)
        if value:
            self.not_on_whatsapp.add(address)
        else:
            self.not_on_whatsapp.discard(address)
