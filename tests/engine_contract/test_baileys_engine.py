"""What the Baileys engine promises beyond the shared contract: many sessions per worker, a
worker crash ends only its own sockets and they resume from their auth state without a QR, one
session's failure never reaches another, the pairing-code request, the auth state format, and a
sender's phone and LID forms in inbound events. Against the WhatsApp-protocol fake
(emulators/whatsapp), like the contract suite."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from runner.engines.baileys import BaileysEngine
from runner.engines.baileys.engine import ROOT, BaileysConnection
from tests.engine_contract.baileys_kit import FakeNetwork, fake_lid
from tests.simulator.harness import EventTap, run
from wagate.domain.events import (
    AuthStateChanged,
    Connected,
    Disconnected,
    InboundMessage,
    PairingCode,
    QrCode,
)
from wagate.domain.sessions import DisconnectReason
from wagate.errors import PermanentSendError

pytestmark = pytest.mark.integration

BOB = "+15550500002"
CAROL = "+15550500003"


def with_fake(
    url: str, body: Callable[[BaileysEngine, FakeNetwork], Awaitable[None]], **options: object
) -> None:
    async def main() -> None:
        async with aiohttp.ClientSession() as http:
            network = FakeNetwork(url, http)
            await network.reset()
            engine = BaileysEngine(network.ws_url, sync_history=False, **options)  # type: ignore[arg-type]
            try:
                await body(engine, network)
            finally:
                await engine.aclose()

    run(main, 40)


async def pair(
    engine: BaileysEngine, network: FakeNetwork, session_id: str, phone: str
) -> tuple[BaileysConnection, EventTap]:
    conn = engine.open(session_id, None)
    await conn.connect()
    tap = EventTap(conn.events())
    await network.scan((await tap.next(QrCode)).code, phone)
    await tap.next(Connected)
    return conn, tap


def newest_state(tap: EventTap) -> bytes:
    return [e.state for e in tap.seen if isinstance(e, AuthStateChanged)][-1]


def test_sessions_share_workers_up_to_the_setting(whatsapp_fake_url: str) -> None:
    async def body(engine: BaileysEngine, network: FakeNetwork) -> None:
        for n in range(3):
            await pair(engine, network, f"ses-{n}", f"+1555060000{n}")
        assert [len(w.conns) for w in engine.workers] == [2, 1]
        assert (await network.stats())["connected"] == 3

    with_fake(whatsapp_fake_url, body, sessions_per_worker=2)


def test_a_killed_worker_ends_only_its_sockets_which_resume_without_a_qr(
    whatsapp_fake_url: str,
) -> None:
    async def body(engine: BaileysEngine, network: FakeNetwork) -> None:
        a, tap_a = await pair(engine, network, "ses-a", "+15550600010")
        b, _ = await pair(engine, network, "ses-b", "+15550600011")  # on a second worker
        assert a._worker is not b._worker and a._worker and a._worker.proc
        await a.send("3EB0BEFOREKILL", BOB, "text", {"body": "x"}, timeout=5)
        os.kill(a._worker.proc.pid, signal.SIGKILL)
        closed = await tap_a.next(Disconnected)
        assert closed.reason == DisconnectReason.BAD_SESSION
        # The other worker's session is untouched.
        assert (await b.send("3EB0OTHER", BOB, "text", {"body": "y"}, timeout=5)).wa_id
        # The supervisor's reconnect: a new worker, the auth state the session last emitted.
        seen = len(tap_a.seen)
        await a.connect()
        await tap_a.next(Connected)
        assert not any(isinstance(e, QrCode) for e in tap_a.seen[seen:])
        # The same wagate id again after the crash: the recipient keeps one message.
        await a.send("3EB0BEFOREKILL", BOB, "text", {"body": "x"}, timeout=5)
        assert await network.received_ids(BOB) == ["3EB0BEFOREKILL", "3EB0OTHER"]

    with_fake(whatsapp_fake_url, body, sessions_per_worker=1)


def test_one_sessions_failure_does_not_reach_another_on_the_same_worker(
    whatsapp_fake_url: str,
) -> None:
    async def body(engine: BaileysEngine, network: FakeNetwork) -> None:
        a, _ = await pair(engine, network, "ses-a", "+15550600020")
        b, _ = await pair(engine, network, "ses-b", "+15550600021")
        worker = a._worker
        assert worker is b._worker and worker and worker.proc and worker.proc.stdin
        worker.proc.stdin.write(b"{not json\n")  # a bad frame is dropped, logged
        with pytest.raises(PermanentSendError):  # an unknown kind fails that send only
            await a.send("3EB0BADKIND", BOB, "hologram", {}, timeout=5)
        with pytest.raises(PermanentSendError):
            await a.send("3EB0NOBODY", network.not_on_whatsapp, "text", {"body": "x"}, timeout=5)
        assert (await b.send("3EB0STILLOK", BOB, "text", {"body": "z"}, timeout=5)).wa_id
        assert (await a.send("3EB0AOK", BOB, "text", {"body": "z"}, timeout=5)).wa_id
        assert worker.alive

    with_fake(whatsapp_fake_url, body)


def test_a_pairing_code_is_requested_and_reported(whatsapp_fake_url: str) -> None:
    async def body(engine: BaileysEngine, network: FakeNetwork) -> None:
        conn = engine.open("ses-code", None)
        await conn.connect()
        tap = EventTap(conn.events())
        await tap.next(QrCode)
        code = await conn.request_pairing_code("+15550600030")
        assert len(code) == 8
        assert (await tap.next(PairingCode)).code == code

    with_fake(whatsapp_fake_url, body)


def test_the_auth_state_is_buffer_json_with_creds_and_keys(whatsapp_fake_url: str) -> None:
    async def body(engine: BaileysEngine, network: FakeNetwork) -> None:
        _, tap = await pair(engine, network, "ses-state", "+15550600040")
        state = json.loads(newest_state(tap))
        assert state["format"] == "wagate-baileys-1"
        assert state["creds"]["me"]["id"].startswith("15550600040:")
        assert state["creds"]["noiseKey"]["private"]["type"] == "Buffer"
        assert state["keys"]["pre-key"]  # the signal keys travel with the creds
        # What the worker restores (BufferJSON.reviver) serialises back to the same bytes.
        again = (
            await asyncio.to_thread(
                subprocess.run,
                ["node", "--input-type=module", "-e", ROUND_TRIP],
                input=newest_state(tap),
                capture_output=True,
                cwd=ROOT,
                check=True,
            )
        ).stdout
        assert again == newest_state(tap)

    with_fake(whatsapp_fake_url, body)


ROUND_TRIP = """
import { BufferJSON } from '@whiskeysockets/baileys'
let text = ''
process.stdin.on('data', (d) => { text += d })
process.stdin.on('end', () => {
  process.stdout.write(JSON.stringify(JSON.parse(text, BufferJSON.reviver), BufferJSON.replacer))
})
"""


def test_messages_sent_while_offline_arrive_live_at_the_next_login(whatsapp_fake_url: str) -> None:
    """WhatsApp keeps a closed device's messages for its next login; Baileys decrypts them from
    the contact's Signal session like live ones (history sync is a separate feature)."""

    async def body(engine: BaileysEngine, network: FakeNetwork) -> None:
        conn, tap = await pair(engine, network, "ses-away", "+15550600050")
        state = newest_state(tap)
        await conn.close()
        for _ in range(200):  # until the fake has seen the socket go
            if not (await network.stats())["connected"]:
                break
            await asyncio.sleep(0.05)
        await network.inbound("+15550600050", BOB, "while you were away", "3EB0AWAY")
        again = engine.open("ses-away", state)
        await again.connect()
        later = EventTap(again.events())
        await later.next(Connected)
        message = await later.next(InboundMessage)
        assert (message.wa_id, message.content) == ("3EB0AWAY", {"body": "while you were away"})
        assert BOB.removeprefix("+") in message.sender and not message.from_history

    with_fake(whatsapp_fake_url, body)


def test_inbound_reports_the_senders_phone_and_lid_and_keeps_the_mapping_per_session(
    whatsapp_fake_url: str,
) -> None:
    """WhatsApp addresses a contact by phone number or by LID and names the other form where it
    can; the event carries both. The mapping lives in the session's auth state, so after a
    restore a message that names only the LID still reports the phone number."""
    carol_phone, carol_lid = CAROL.removeprefix("+") + "@s.whatsapp.net", fake_lid(CAROL)

    async def body(engine: BaileysEngine, network: FakeNetwork) -> None:
        conn, tap = await pair(engine, network, "ses-lid", "+15550600060")
        await network.inbound("+15550600060", CAROL, "by lid", "3EB0LID1", addressing="lid")
        by_lid = await tap.next(InboundMessage)
        assert (by_lid.sender, by_lid.chat) == (carol_lid, carol_lid)
        assert (by_lid.sender_phone, by_lid.sender_lid) == (carol_phone, carol_lid)

        await network.inbound("+15550600060", BOB, "by phone", "3EB0PN1")
        by_phone = await tap.next(InboundMessage)
        assert by_phone.sender == by_phone.sender_phone == BOB.removeprefix("+") + "@s.whatsapp.net"
        # Baileys looked the LID up (usync) to find the Signal session: the mapping has it.
        assert by_phone.sender_lid == fake_lid(BOB)

        while (mapping := json.loads(newest_state(tap))["keys"].get("lid-mapping", {})).get(
            carol_lid.split("@")[0] + "_reverse"
        ) is None:
            await tap.next(AuthStateChanged)  # the debounced save after the mapping was stored
        assert mapping[CAROL.removeprefix("+")] == carol_lid.split("@")[0]
        await conn.close()
        again = engine.open("ses-lid", newest_state(tap))
        await again.connect()
        later = EventTap(again.events())
        await later.next(Connected)
        await network.inbound(
            "+15550600060", CAROL, "lid only", "3EB0LID2", addressing="lid", alternate=False
        )
        only_lid = await later.next(InboundMessage)
        assert only_lid.sender == carol_lid
        assert (only_lid.sender_phone, only_lid.sender_lid) == (carol_phone, carol_lid)

    with_fake(whatsapp_fake_url, body)
