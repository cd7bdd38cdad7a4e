"""The WhatsAppEngine contract: what the runner's supervisor relies on from every engine adapter
(wagate.ports.EngineConnection), run against each factory of conftest.ENGINE_FACTORIES.

Each test speaks only the port (open/connect/events/send/request_pairing_code/logout/close)
and the engine-neutral `Network` for the WhatsApp side.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.engine_contract.conftest import EngineFactory, EngineUnderTest, MediaSample
from tests.simulator.harness import EventTap, run
from wagate.domain.events import (
    AuthStateChanged,
    Connected,
    Disconnected,
    InboundMessage,
    MessageAck,
    PairingCode,
    QrCode,
    Receipt,
)
from wagate.domain.sessions import DisconnectReason
from wagate.errors import PayloadTooLarge, PermanentSendError, TransientSendError
from wagate.ports import EngineConnection

pytestmark = pytest.mark.integration
needs_whatsapp = pytest.mark.needs_whatsapp  # a phone or WhatsApp's servers must answer

ME = "+15550500001"
ME_DIGITS = "15550500001"
BOB = "+15550500002"
BOB_DIGITS = "15550500002"
ACK_TIMEOUT = 5.0


@dataclass
class Device:
    """One connection under test and the events read from it so far."""

    conn: EngineConnection
    tap: EventTap
    jid: str = ""

    @property
    def state(self) -> bytes:
        """The newest auth state the engine asked us to persist."""
        states = [e.state for e in self.tap.seen if isinstance(e, AuthStateChanged)]
        assert states, "no AuthStateChanged yet"
        return states[-1]

    async def send(self, wa_id: str, to: str = BOB, text: str = "hi") -> MessageAck:
        return await self.conn.send(wa_id, to, "text", {"body": text}, timeout=ACK_TIMEOUT)


@dataclass
class Contract:
    eut: EngineUnderTest
    opened: list[EngineConnection] = field(default_factory=list)

    @property
    def network(self) -> Any:
        return self.eut.network

    async def open(self, session_id: str, state: bytes | None = None) -> Device:
        conn = self.eut.engine.open(session_id, state)
        self.opened.append(conn)
        await conn.connect()
        return Device(conn, EventTap(conn.events()))

    async def pair(self, phone: str = ME, session_id: str = "ses-1") -> Device:
        device = await self.open(session_id)
        qr = await device.tap.next(QrCode)
        await self.network.scan(qr.code, phone)
        device.jid = (await device.tap.next(Connected)).jid
        return device

    async def reconnect(self, device: Device, session_id: str = "ses-1") -> Device:
        """Close `device` and open a new connection from its newest auth state."""
        state = device.state
        await device.conn.close()
        again = await self.open(session_id, state)
        again.jid = (await again.tap.next(Connected)).jid
        return again

    async def close_all(self) -> None:
        for conn in self.opened:
            await conn.close()


def contract(
    factory: EngineFactory,
    body: Callable[[Contract], Awaitable[None]],
    timeout: float = 20.0,
    **options: Any,
) -> None:
    async def main() -> None:
        async with factory(**options) as eut:
            c = Contract(eut)
            try:
                await body(c)
            finally:
                await c.close_all()

    run(main, timeout)


# ------------------------------------------------------------------ pairing and login


@needs_whatsapp
def test_pairing_by_qr_yields_connected_and_an_auth_state(engine_factory: EngineFactory) -> None:
    async def body(c: Contract) -> None:
        device = await c.open("ses-qr")
        qr = await device.tap.next(QrCode)
        assert qr.code and qr.expires_at > datetime.now(UTC)
        await c.network.scan(qr.code, ME)
        connected = await device.tap.next(Connected)
        assert ME_DIGITS in connected.jid
        assert any(isinstance(e, AuthStateChanged) and e.state for e in device.tap.seen)

    contract(engine_factory, body)


@needs_whatsapp
def test_pairing_by_code_yields_connected_and_an_auth_state(engine_factory: EngineFactory) -> None:
    async def body(c: Contract) -> None:
        device = await c.open("ses-code")
        code = await device.conn.request_pairing_code(ME)
        assert code
        assert (await device.tap.next(PairingCode)).code == code
        await c.network.confirm_pairing_code(code, ME)
        assert ME_DIGITS in (await device.tap.next(Connected)).jid
        assert device.state

    contract(engine_factory, body)


@needs_whatsapp
def test_a_stored_auth_state_reconnects_without_a_qr(engine_factory: EngineFactory) -> None:
    async def body(c: Contract) -> None:
        first = await c.pair()
        await first.send("3EB0BEFORE")
        again = await c.reconnect(first)
        assert again.jid == first.jid
        assert not any(isinstance(e, QrCode) for e in again.tap.seen)
        assert (await again.send("3EB0AFTER")).wa_id == "3EB0AFTER"

    contract(engine_factory, body)


def test_an_auth_state_that_is_not_the_engines_yields_401(engine_factory: EngineFactory) -> None:
    async def body(c: Contract) -> None:
        device = await c.open("ses-garbage", b"\x00 not an auth state")
        assert (await device.tap.next(Disconnected)).reason == DisconnectReason.LOGGED_OUT

    contract(engine_factory, body)


def test_an_unreachable_server_is_a_disconnect_not_an_exception(
    engine_factory: EngineFactory,
) -> None:
    async def body(c: Contract) -> None:
        device = await c.open("ses-offline")  # connect() returned: the outcome is known
        closed = await device.tap.next(Disconnected, timeout=15)
        assert closed.reason in (DisconnectReason.UNAVAILABLE, DisconnectReason.TIMED_OUT)
        assert not any(isinstance(e, Connected | QrCode) for e in device.tap.seen)
        with pytest.raises(TransientSendError):
            await device.send("3EB0UNREACHABLE")
        # The supervisor connects the same connection again after its backoff.
        await device.conn.connect()
        again = await device.tap.next(Disconnected, timeout=15)
        assert again.reason in (DisconnectReason.UNAVAILABLE, DisconnectReason.TIMED_OUT)

    contract(engine_factory, body, timeout=40, unreachable=True)


def test_a_connection_closed_before_connecting_ends_its_stream_quietly(
    engine_factory: EngineFactory,
) -> None:
    async def body(c: Contract) -> None:
        conn = c.eut.engine.open("ses-never", None)
        c.opened.append(conn)
        with pytest.raises(TransientSendError):
            await conn.send("3EB0EARLY", BOB, "text", {"body": "x"}, timeout=1)
        await conn.close()
        rest = await EventTap(conn.events()).nothing_for(0.3)
        assert rest == []

    contract(engine_factory, body)


@needs_whatsapp
def test_after_logout_the_stored_state_yields_401(engine_factory: EngineFactory) -> None:
    async def body(c: Contract) -> None:
        device = await c.pair()
        state = device.state
        await device.conn.logout()
        assert (await device.tap.next(Disconnected)).reason == DisconnectReason.LOGGED_OUT
        await device.conn.close()
        later = await c.open("ses-1", state)
        assert (await later.tap.next(Disconnected)).reason == DisconnectReason.LOGGED_OUT
        assert not any(isinstance(e, Connected) for e in later.tap.seen)

    contract(engine_factory, body)


@needs_whatsapp
def test_a_second_connection_of_the_same_device_replaces_the_first(
    engine_factory: EngineFactory,
) -> None:
    async def body(c: Contract) -> None:
        first = await c.pair()
        second = await c.open("ses-1", first.state)
        await second.tap.next(Connected)
        assert (await first.tap.next(Disconnected)).reason == DisconnectReason.REPLACED

    contract(engine_factory, body)


@needs_whatsapp
def test_close_ends_the_event_stream_without_a_disconnect(engine_factory: EngineFactory) -> None:
    async def body(c: Contract) -> None:
        device = await c.pair()
        await device.conn.close()
        rest = await device.tap.nothing_for(0.3)
        assert not any(isinstance(e, Disconnected) for e in rest)
        with pytest.raises(TransientSendError):
            await device.send("3EB0CLOSED")

    contract(engine_factory, body)


# ------------------------------------------------------------------ sending


@needs_whatsapp
def test_send_returns_the_server_ack_for_the_same_wa_id(engine_factory: EngineFactory) -> None:
    async def body(c: Contract) -> None:
        device = await c.pair()
        ack = await device.send("3EB0SEND1")
        assert ack.wa_id == "3EB0SEND1"
        assert abs((ack.server_ts - datetime.now(UTC)).total_seconds()) < 5
        event = await device.tap.next(MessageAck)
        assert event.wa_id == "3EB0SEND1"
        assert await c.network.received_ids(BOB) == ["3EB0SEND1"]

    contract(engine_factory, body)


@needs_whatsapp
def test_a_send_to_a_lid_reaches_the_numbers_phone(engine_factory: EngineFactory) -> None:
    """WhatsApp names more and more contacts by LID only: a reply to one must arrive."""

    async def body(c: Contract) -> None:
        device = await c.pair()
        ack = await device.send("3EB0TOLID", to=c.network.lid_of(BOB))
        assert ack.wa_id == "3EB0TOLID"
        assert await c.network.received_ids(BOB) == ["3EB0TOLID"]

    contract(engine_factory, body)


@needs_whatsapp
def test_a_resent_wa_id_reaches_the_recipient_once(engine_factory: EngineFactory) -> None:
    async def body(c: Contract) -> None:
        device = await c.pair()
        first = await device.send("3EB0ONCE")
        second = await device.send("3EB0ONCE")
        assert first.wa_id == second.wa_id == "3EB0ONCE"
        # A resend after a crash comes from a new connection with the restored state.
        again = await c.reconnect(device)
        assert (await again.send("3EB0ONCE")).wa_id == "3EB0ONCE"
        assert await c.network.received_ids(BOB) == ["3EB0ONCE"]

    contract(engine_factory, body)


@needs_whatsapp
@pytest.mark.parametrize("recipient", ["not-a-number", "not-on-whatsapp"])
def test_permanent_errors_raise_permanent_send_error(
    engine_factory: EngineFactory, recipient: str
) -> None:
    async def body(c: Contract) -> None:
        device = await c.pair()
        to = c.network.not_on_whatsapp if recipient == "not-on-whatsapp" else recipient
        with pytest.raises(PermanentSendError):
            await device.send("3EB0PERM", to=to)
        if recipient == "not-on-whatsapp":
            assert await c.network.received_ids(to) == []

    contract(engine_factory, body)


@needs_whatsapp
def test_a_rate_limit_raises_transient_send_error_with_retry_after(
    engine_factory: EngineFactory,
) -> None:
    async def body(c: Contract) -> None:
        device = await c.pair()
        await c.network.rate_limit(ME, per_second=2, burst=1)
        await device.send("3EB0RATE1")
        with pytest.raises(TransientSendError) as limited:
            await device.send("3EB0RATE2")
        assert limited.value.retry_after is not None and limited.value.retry_after > 0
        assert not isinstance(limited.value, PermanentSendError)
        await c.network.rate_limit(ME, per_second=None, burst=1)
        await device.send("3EB0RATE2")
        assert await c.network.received_ids(BOB) == ["3EB0RATE1", "3EB0RATE2"]

    contract(engine_factory, body)


@needs_whatsapp
def test_a_missing_ack_times_out_as_transient_and_the_retry_is_not_a_duplicate(
    engine_factory: EngineFactory,
) -> None:
    async def body(c: Contract) -> None:
        device = await c.pair()
        await c.network.withhold_acks(ME, 30)
        with pytest.raises(TransientSendError):
            await device.conn.send("3EB0LATE", BOB, "text", {"body": "x"}, timeout=0.3)
        await c.network.withhold_acks(ME, 0)
        late = await device.tap.next(MessageAck)  # the late ack is still reported
        assert late.wa_id == "3EB0LATE"
        assert (await device.send("3EB0LATE")).wa_id == "3EB0LATE"
        assert await c.network.received_ids(BOB) == ["3EB0LATE"]

    contract(engine_factory, body)


@needs_whatsapp
def test_sending_while_not_connected_raises_transient_send_error(
    engine_factory: EngineFactory,
) -> None:
    async def body(c: Contract) -> None:
        device = await c.pair()
        await c.network.disconnect(device.jid, DisconnectReason.CLOSED)
        await device.tap.next(Disconnected)
        with pytest.raises(TransientSendError):
            await device.send("3EB0OFFLINE")
        pairing = await c.open("ses-2")
        await pairing.tap.next(QrCode)
        with pytest.raises(TransientSendError):
            await pairing.send("3EB0NOTPAIRED")
        assert await c.network.received_ids(BOB) == []

    contract(engine_factory, body)


# ------------------------------------------------------------------ disconnects


@needs_whatsapp
@pytest.mark.parametrize("reason", [int(r) for r in DisconnectReason])
def test_every_disconnect_reason_surfaces_as_disconnected(
    engine_factory: EngineFactory, reason: int
) -> None:
    async def body(c: Contract) -> None:
        device = await c.pair()
        await c.network.disconnect(device.jid, reason)
        assert (await device.tap.next(Disconnected)).reason == reason
        if reason != DisconnectReason.LOGGED_OUT:
            # The same connection can connect again; it kept the credentials.
            await device.conn.connect()
            await device.tap.next(Connected)
            assert (await device.send(f"3EB0R{reason}")).wa_id == f"3EB0R{reason}"

    contract(engine_factory, body)


@needs_whatsapp
def test_a_network_close_without_a_reason_is_428(engine_factory: EngineFactory) -> None:
    async def body(c: Contract) -> None:
        device = await c.pair()
        await c.network.disconnect(device.jid, DisconnectReason.CLOSED, abrupt=True)
        assert (await device.tap.next(Disconnected)).reason == DisconnectReason.CLOSED

    contract(engine_factory, body)


@needs_whatsapp
def test_a_silent_socket_is_caught_by_keepalive_as_408(engine_factory: EngineFactory) -> None:
    async def body(c: Contract) -> None:
        device = await c.pair()
        await c.network.black_hole(device.jid, 30)
        # Baileys allows 5 s of silence beyond its keep-alive interval before it gives up.
        disconnected = await device.tap.next(Disconnected, timeout=8)
        assert disconnected.reason == DisconnectReason.TIMED_OUT

    contract(engine_factory, body, keepalive_s=0.3)


@needs_whatsapp
def test_pending_sends_fail_transient_when_the_socket_drops(
    engine_factory: EngineFactory,
) -> None:
    async def body(c: Contract) -> None:
        device = await c.pair()
        await c.network.withhold_acks(ME, 30)
        pending = asyncio.ensure_future(device.send("3EB0INFLIGHT"))
        await asyncio.sleep(0.1)
        await c.network.disconnect(device.jid, DisconnectReason.UNAVAILABLE)
        with pytest.raises(TransientSendError):
            await pending

    contract(engine_factory, body)


# ------------------------------------------------------------------ inbound and receipts


@needs_whatsapp
def test_inbound_messages_surface_as_typed_events(engine_factory: EngineFactory) -> None:
    async def body(c: Contract) -> None:
        device = await c.pair()
        await c.network.inbound(ME, BOB, "hello there", "3EB0INBOUND1")
        msg = await device.tap.next(InboundMessage)
        assert msg.wa_id == "3EB0INBOUND1" and BOB_DIGITS in msg.sender
        assert BOB_DIGITS in msg.chat and msg.kind == "text"
        assert msg.content == {"body": "hello there"}
        assert not msg.from_history and not msg.from_me
        assert abs((msg.ts - datetime.now(UTC)).total_seconds()) < 5

    contract(engine_factory, body)


@needs_whatsapp
def test_inbound_names_the_senders_phone_and_lid(engine_factory: EngineFactory) -> None:
    """A message from a LID carries the number too, and one from a number carries its LID, so a
    tenant can match a customer whichever form WhatsApp used."""

    async def body(c: Contract) -> None:
        device = await c.pair()
        bob_phone, bob_lid = f"{BOB_DIGITS}@s.whatsapp.net", c.network.lid_of(BOB)
        await c.network.inbound(ME, BOB, "by lid", "3EB0FROMLID", addressing="lid")
        by_lid = await device.tap.next(InboundMessage)
        assert (by_lid.sender, by_lid.chat) == (bob_lid, bob_lid)
        assert (by_lid.sender_phone, by_lid.sender_lid) == (bob_phone, bob_lid)
        await c.network.inbound(ME, BOB, "by phone", "3EB0FROMPN")
        by_phone = await device.tap.next(InboundMessage)
        assert (by_phone.sender, by_phone.sender_phone, by_phone.sender_lid) == (
            bob_phone,
            bob_phone,
            bob_lid,
        )

    contract(engine_factory, body)


# A file of each kind WhatsApp delivers as media (the bytes are random: the engines move files,
# they do not decode them).
MEDIA_SAMPLES = (
    MediaSample("image", b"\xff\xd8\xff" + os.urandom(40_000), "image/jpeg", caption="look"),
    MediaSample("video", os.urandom(70_000), "video/mp4", caption="a clip"),
    MediaSample("audio", os.urandom(9_000), "audio/mpeg"),
    MediaSample("voice", os.urandom(6_000), "audio/ogg; codecs=opus"),
    MediaSample("document", b"%PDF-1.7\n" + os.urandom(20_000), "application/pdf", "q3.pdf"),
    MediaSample("sticker", b"RIFF" + os.urandom(3_000), "image/webp"),
)


@needs_whatsapp
def test_inbound_media_of_every_kind_downloads_the_senders_bytes(
    engine_factory: EngineFactory,
) -> None:
    """Each received file comes with a download of exactly the bytes the contact sent, which
    refuses to go past the runner's size bound."""

    async def body(c: Contract) -> None:
        device = await c.pair()
        for n, sample in enumerate(MEDIA_SAMPLES):
            await c.network.inbound_media(ME, BOB, f"3EB0MEDIA{n}", sample)
            msg = await device.tap.next(InboundMessage)
            assert (msg.wa_id, msg.kind) == (f"3EB0MEDIA{n}", sample.kind)
            assert msg.media is not None, sample.kind
            assert msg.media.mime_type == sample.mime_type
            if sample.filename:
                assert msg.media.filename == sample.filename
            if sample.caption:
                assert msg.content.get("caption") == sample.caption
            assert await msg.media.fetch(len(sample.data)) == sample.data, sample.kind
            with pytest.raises(PayloadTooLarge):
                await msg.media.fetch(len(sample.data) - 1)

    contract(engine_factory, body, timeout=40)


@needs_whatsapp
def test_inbound_text_has_no_media(engine_factory: EngineFactory) -> None:
    async def body(c: Contract) -> None:
        device = await c.pair()
        await c.network.inbound(ME, BOB, "just words", "3EB0NOMEDIA")
        assert (await device.tap.next(InboundMessage)).media is None

    contract(engine_factory, body)


@needs_whatsapp
def test_messages_missed_while_offline_arrive_on_reconnect_with_history(
    engine_factory: EngineFactory,
) -> None:
    async def body(c: Contract) -> None:
        device = await c.pair()
        state = device.state
        await device.conn.close()
        await c.network.inbound(ME, BOB, "while you were away", "3EB0AWAY")
        again = await c.open("ses-1", state)
        await again.tap.next(Connected)
        live = await again.tap.next(InboundMessage)
        assert live.wa_id == "3EB0AWAY" and not live.from_history
        history = await again.tap.next(InboundMessage)
        assert history.wa_id == "3EB0AWAY" and history.from_history

    contract(engine_factory, body)


@needs_whatsapp
def test_inbound_not_yet_handled_is_delivered_again_after_a_crash(
    engine_factory: EngineFactory,
) -> None:
    async def body(c: Contract) -> None:
        device = await c.pair()
        state = device.state
        await c.network.inbound(ME, BOB, "handle me", "3EB0CRASH")
        await asyncio.sleep(0.2)  # it reached the engine, but nobody took it from events()
        await device.conn.close()
        again = await c.open("ses-1", state)
        assert (await again.tap.next(InboundMessage)).wa_id == "3EB0CRASH"

    contract(engine_factory, body)


@needs_whatsapp
def test_receipts_surface_as_typed_events(engine_factory: EngineFactory) -> None:
    async def body(c: Contract) -> None:
        await c.network.receipt_delays(20, 60)
        device = await c.pair()
        await device.send("3EB0RCPT")
        delivered = await device.tap.next(Receipt)
        read = await device.tap.next(Receipt)
        assert (delivered.kind, read.kind) == ("delivered", "read")
        assert delivered.wa_ids == read.wa_ids == ("3EB0RCPT",)
        assert BOB_DIGITS in delivered.chat
        assert delivered.ts <= read.ts

    contract(engine_factory, body)
