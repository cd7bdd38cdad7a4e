"""The simulated WhatsApp world: what a device socket and the control API talk to.

The websocket layer (sockets.py) hands frames in through `hello`/`on_frame` and gets frames
out through the `Link` it registered; the control API (control.py) calls the phone-side and
fault methods. The rules live in parts: state.py (tables, outboxes, credentials),
pairing.py, messaging.py (sends, acks, receipts, inbound) and faults.py. All of it is driven
by the event loop's timers: no threads, no per-device tasks, no I/O of its own.
"""

from __future__ import annotations

import hmac
import time
from typing import Any

from simulator.chat_actions import ChatActionRules
from simulator.faults import FaultControls
from simulator.groups import GroupRules
from simulator.model import Link
from simulator.pairing import PairingRules
from simulator.polls import PollRules
from simulator.protocol import close_code, encode


class World(PairingRules, FaultControls, GroupRules, ChatActionRules, PollRules):
    """One simulated WhatsApp server; addresses are canonical digits (normalize_address)."""

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

    def on_frame(self, link: Link, frame: Any) -> None:
        kind = frame.get("t") if isinstance(frame, dict) else None
        device = link.device
        if kind == "send" and device is not None:
            self._on_send(device, frame)
        elif kind in ("read", "presence") and device is not None:
            self._on_chat_action(device, frame)
        elif kind == "acked" and device is not None:
            seq = frame.get("seq")
            if isinstance(seq, int):
                self._trim(device, seq)
        elif kind == "ping":
            link.push(encode({"t": "pong", "id": frame.get("id")}))
        elif kind == "query":
            self.on_query(link, device, frame)
        elif kind == "pair_code_request":
            self.request_pair_code(link, frame.get("phone"))
        elif kind == "logout" and device is not None:
            self.unlink(device, "logged out")
        elif kind in ("send", "read", "presence", "acked", "logout"):
            pass  # a replaced or not yet linked socket: ignored, as the real server does
        else:
            link.push(encode({"t": "error", "code": "bad_frame", "message": f"unknown {kind!r}"}))

    def received(self, raw: str) -> list[dict[str, Any]]:
        handset = self.handsets.get(self.address_of(raw))
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
