"""The WhatsApp-protocol fake (emulators/whatsapp/server.mjs) for the Baileys engine's tests: one
fake per test session (`start_fake`), reset before each test, and the contract suite's `Network`
over its control API."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp

from devstack.tls import loopback_certificate
from runner.engines.baileys.deps import ROOT, ensure_node_modules

FAKE = ROOT / "emulators" / "whatsapp" / "server.mjs"


def fake_lid(phone: str) -> str:
    """The LID the fake gives a phone number's account (server.mjs `lidOf`)."""
    return f"{100_000_000_000_000 + int(phone.removeprefix('+')) * 7}@lid"


# Contract tests the fake cannot drive, each with the reason (docs/engines.md repeats them).
FAKE_CANNOT = {
    "test_messages_missed_while_offline_arrive_on_reconnect_with_history": (
        "the fake delivers missed messages at login but sends no history sync (an encrypted "
        "HistorySync blob on a media server)"
    ),
    "test_inbound_not_yet_handled_is_delivered_again_after_a_crash": (
        "Baileys acknowledges an inbound message to the server when it decrypts it, before the "
        "runner stores it: inbound is at-most-once across a crash (a known limit, not the fake's)"
    ),
}


@contextmanager
def start_fake(tmp: Path) -> Iterator[str]:
    """Run the fake on a free loopback port (its media server beside, on https); yields its base
    URL. The Baileys workers started meanwhile trust the media server's certificate."""
    ensure_node_modules()
    ready = tmp / "whatsapp-fake.json"
    cert, key = loopback_certificate(tmp)
    tls = ["--tls-cert", str(cert), "--tls-key", str(key)]
    proc = subprocess.Popen(
        ["node", str(FAKE), "--port", "0", "--ready-file", str(ready), *tls],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    trusted = os.environ.get("NODE_EXTRA_CA_CERTS")
    os.environ["NODE_EXTRA_CA_CERTS"] = str(cert)  # read by each worker (HOST_ENV_KEEP) at start
    try:
        deadline = time.monotonic() + 30
        while not ready.exists() or not ready.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the WhatsApp fake did not start")
            time.sleep(0.05)
        yield str(json.loads(ready.read_text())["url"])
    finally:
        if trusted is None:
            os.environ.pop("NODE_EXTRA_CA_CERTS", None)
        else:
            os.environ["NODE_EXTRA_CA_CERTS"] = trusted
        proc.terminate()
        proc.wait(10)


class FakeNetwork:
    """Network (tests/engine_contract/conftest.py) over the fake's control API."""

    not_on_whatsapp = "+99955501234"

    def __init__(self, url: str, http: aiohttp.ClientSession) -> None:
        self.url = url
        self.http = http

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws/chat"

    async def call(self, route: str, **body: Any) -> dict[str, Any]:
        async with self.http.post(f"{self.url}/_fake/{route}", json=body) as r:
            data: dict[str, Any] = await r.json()
            if r.status != 200:
                raise AssertionError(f"fake {route}: {data}")
            return data

    async def reset(self) -> None:
        await self.call("reset")

    async def scan(self, qr: str, phone: str) -> None:
        await self.call("scan", qr=qr, phone=phone)

    async def confirm_pairing_code(self, code: str, phone: str) -> None:
        await self.call("pair_code", code=code, phone=phone)

    async def inbound(
        self,
        to_phone: str,
        sender: str,
        text: str,
        wa_id: str,
        *,
        addressing: str = "pn",
        alternate: bool | None = None,
    ) -> None:
        """Delivered now to every logged-in device of `to_phone`, or at its next login. From the
        sender's phone number (`pn`) or its LID (`lid`); `alternate` adds the other form
        (default: on a LID-addressed message only)."""
        await self.call(
            "inbound",
            to_phone=to_phone,
            sender=sender,
            text=text,
            wa_id=wa_id,
            addressing=addressing,
            alternate=addressing == "lid" if alternate is None else alternate,
        )

    async def inbound_media(self, to_phone: str, sender: str, wa_id: str, file: Any) -> None:
        """A contact's media message (`file`: conftest.MediaSample), its file encrypted on the
        fake's media host as WhatsApp's (emulators/whatsapp/media.mjs)."""
        await self.call(
            "inbound_media",
            to_phone=to_phone,
            sender=sender,
            wa_id=wa_id,
            kind=file.kind,
            data_b64=base64.b64encode(file.data).decode(),
            mime_type=file.mime_type,
            filename=file.filename,
            caption=file.caption,
        )

    @staticmethod
    def lid_of(phone: str) -> str:
        return fake_lid(phone)

    async def received_ids(self, recipient: str) -> list[str]:
        return [str(i) for i in (await self.call("received", recipient=recipient))["ids"]]

    async def received_messages(self, recipient: str) -> list[dict[str, Any]]:
        """What the contact decrypted, in order (emulators/whatsapp/actions.mjs)."""
        got = (await self.call("received", recipient=recipient))["messages"]
        # An entry the fake could not decrypt says why in `error`.
        keys = ("id", "kind", "content", "error")
        return [{k: m[k] for k in keys if k in m} for m in got]

    async def chat_events(self, recipient: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = (await self.call("chat_events", recipient=recipient))[
            "events"
        ]
        return events

    async def inbound_change(
        self, to_phone: str, sender: str, kind: str, content: dict[str, Any], wa_id: str
    ) -> None:
        await self.call(
            "inbound_change",
            to_phone=to_phone,
            sender=sender,
            kind=kind,
            content=content,
            wa_id=wa_id,
        )

    async def disconnect(self, jid: str, reason: int, *, abrupt: bool = False) -> None:
        assert (await self.call("drop", jid=jid, reason=int(reason), abrupt=abrupt))["dropped"] == 1

    async def black_hole(self, jid: str, seconds: float) -> None:
        assert (await self.call("freeze", jid=jid, seconds=seconds))["frozen"] == 1

    async def withhold_acks(self, phone: str, seconds: float) -> None:
        await self.call("stall", phone=phone, seconds=seconds)

    async def rate_limit(self, phone: str, per_second: float | None, burst: int) -> None:
        await self.call("rate_limit", phone=phone, per_second=per_second, burst=burst)

    async def receipt_delays(self, delivered_ms: float, read_ms: float) -> None:
        await self.call("config", receipt_delay_ms=delivered_ms, read_delay_ms=read_ms)

    async def create_group(self, owner: str, subject: str, members: list[str]) -> str:
        return str((await self.call("group", owner=owner, subject=subject, members=members))["jid"])

    async def change_participants(
        self, group: str, action: str, participants: list[str], *, by: str | None
    ) -> None:
        results = (
            await self.call(
                "group_participants", group=group, action=action, participants=participants, by=by
            )
        )["results"]
        assert all(r["status"] == 200 for r in results), results

    async def stats(self) -> dict[str, Any]:
        return await self.call("stats")

    # ------------------------------------------------------------ content kinds

    async def seen(self, recipient: str) -> list[dict[str, Any]]:
        """What the recipient read of each message, as the fake decrypted it (actions.mjs) and
        summed it up (content.mjs)."""
        messages = (await self.call("received", recipient=recipient))["messages"]
        return [{"id": m["id"], **m.get("seen", {"kind": m.get("kind")})} for m in messages]

    async def vote(
        self,
        to_phone: str,
        voter: str,
        poll_id: str,
        options: list[str],
        wa_id: str,
        *,
        addressing: str = "pn",
    ) -> None:
        """`voter` votes in the poll `poll_id` that `to_phone` sent them (polls.mjs), from its
        number or its LID (`addressing`)."""
        body = {"to_phone": to_phone, "voter": voter, "poll_id": poll_id, "options": options}
        delivered = await self.call("vote", **body, wa_id=wa_id, addressing=addressing)
        assert delivered["delivered"] >= 1
