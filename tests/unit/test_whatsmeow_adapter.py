"""The whatsmeow adapter, offline. Two kinds of host process:

- the real host with the real library, which has no WhatsApp to reach here (and is pointed at a
  closed proxy port so that holds on any machine): what happens when WhatsApp is unreachable;
- tests/engine_contract/fake_whatsmeow_host.py, which speaks the same pipe protocol and scripts
  WhatsApp's answers: the adapter's own logic (ledger, receipts, late acks, capture, one close
  per host, hangs and crashes).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from runner.engines.whatsmeow import WhatsmeowConnection, WhatsmeowEngine, wire
from runner.engines.whatsmeow.host_process import classify_send_error
from tests.engine_contract.test_engine_contract_kinds import LOOPBACK_GUARD, web_files
from tests.engine_contract.whatsmeow_kit import UNREACHABLE_PROXY, linked_store
from tests.simulator.harness import EventTap, run
from wagate.contracts import poll_option_hash
from wagate.domain.events import (
    AuthStateChanged,
    Connected,
    Disconnected,
    InboundMessage,
    MessageAck,
    QrCode,
    Receipt,
)
from wagate.domain.sessions import DisconnectReason as R
from wagate.errors import (
    Conflict,
    PermanentSendError,
    TransientSendError,
)

FAKE_HOST = "tests.engine_contract.fake_whatsmeow_host"
BOB = "+15550500002"


def real_engine(tmp_path: Path, **options: Any) -> WhatsmeowEngine:
    return WhatsmeowEngine(tmp_path / "whatsmeow", proxy=UNREACHABLE_PROXY, **options)


def fake_engine(tmp_path: Path, **options: Any) -> WhatsmeowEngine:
    return WhatsmeowEngine(
        tmp_path / "whatsmeow",
        host_module=FAKE_HOST,
        capture_interval_s=0.1,
        **options,
    )


def within(seconds: float, body: Callable[[], Awaitable[None]]) -> None:
    run(body, seconds)


# ------------------------------------------------------------------ the real library, offline


def test_an_unreachable_whatsapp_is_a_503_disconnect_not_an_exception(tmp_path: Path) -> None:
    async def body() -> None:
        engine = real_engine(tmp_path)
        conn = engine.open("ses-1", None)
        await conn.connect()  # returns: the outcome is known
        tap = EventTap(conn.events())
        closed = await tap.next(Disconnected, timeout=15)
        assert closed.reason == R.UNAVAILABLE and "cannot reach WhatsApp" in closed.detail
        assert "socks" in closed.detail and "127.0.0.1" in closed.detail  # via the proxy
        assert not any(isinstance(e, QrCode) for e in tap.seen)
        with pytest.raises(TransientSendError):
            await conn.send("3EB0X", BOB, "text", {"body": "x"}, timeout=1)
        # The same connection can try again (the supervisor's backoff does): same outcome.
        await conn.connect()
        assert (await tap.next(Disconnected, timeout=15)).reason == R.UNAVAILABLE
        await conn.close()
        await engine.aclose()

    within(60, body)


def test_a_restored_device_goes_straight_to_connecting_without_a_qr(tmp_path: Path) -> None:
    """The library accepts the restored store as a logged-in device: no QR, only the network
    failure (the no-re-scan path, up to where WhatsApp would answer)."""

    async def body() -> None:
        state = linked_store(tmp_path / "made.db")
        engine = real_engine(tmp_path)
        conn = engine.open("ses-1", state)
        await conn.connect()
        tap = EventTap(conn.events())
        assert (await tap.next(Disconnected, timeout=15)).reason == R.UNAVAILABLE
        assert not any(isinstance(e, QrCode) for e in tap.seen)
        await conn.close()
        assert engine.store_path("ses-1").read_bytes()[:16] == b"SQLite format 3\x00"

    within(60, body)


def test_an_auth_state_that_is_not_a_whatsmeow_store_is_401_without_a_host(
    tmp_path: Path,
) -> None:
    async def body() -> None:
        engine = real_engine(tmp_path, python="/nonexistent/python")  # a host would fail loudly
        conn = engine.open("ses-1", b'{"jid": "simulator credentials"}')
        await conn.connect()
        closed = await EventTap(conn.events()).next(Disconnected)
        assert closed.reason == R.LOGGED_OUT
        await conn.close()

    within(20, body)


def test_cloud_persistence_leaves_no_plaintext_store_behind(tmp_path: Path) -> None:
    async def body() -> None:
        engine = real_engine(tmp_path, keep_store=False)
        conn = engine.open("ses-1", linked_store(tmp_path / "made.db"))
        await conn.connect()
        await EventTap(conn.events()).next(Disconnected, timeout=15)
        await conn.close()
        assert not engine.store_path("ses-1").exists()

    within(60, body)


# ------------------------------------------------------------------ hosts that misbehave


def test_a_connect_that_hangs_is_408_after_the_connect_timeout(tmp_path: Path) -> None:
    async def body() -> None:
        engine = fake_engine(tmp_path, connect_timeout_s=0.5)
        conn = engine.open("hang-1", None)
        started = asyncio.get_running_loop().time()
        await conn.connect()
        assert asyncio.get_running_loop().time() - started < 5
        closed = await EventTap(conn.events()).next(Disconnected)
        assert closed.reason == R.TIMED_OUT
        await conn.close()

    within(20, body)


def test_a_host_that_dies_is_a_500_with_its_last_words(tmp_path: Path) -> None:
    async def body() -> None:
        conn = fake_engine(tmp_path).open("crash-1", None)
        await conn.connect()
        closed = await EventTap(conn.events()).next(Disconnected)
        assert closed.reason == R.BAD_SESSION
        assert "code 3" in closed.detail and "concurrent map" in closed.detail
        await conn.close()

    within(20, body)


def test_a_missing_python_is_a_disconnect_not_an_exception(tmp_path: Path) -> None:
    async def body() -> None:
        conn = fake_engine(tmp_path, python="/nonexistent/python").open("ses-1", None)
        await conn.connect()
        assert (await EventTap(conn.events()).next(Disconnected)).reason == R.BAD_SESSION
        await conn.close()

    within(20, body)


# ------------------------------------------------------------------ the adapter's logic


async def connected(
    tmp_path: Path, **options: Any
) -> tuple[WhatsmeowEngine, WhatsmeowConnection, EventTap]:
    engine = fake_engine(tmp_path, **options)
    conn = engine.open("ses-1", linked_store(tmp_path / "made.db"))
    await conn.connect()
    tap = EventTap(conn.events())
    await tap.next(Connected)
    return engine, conn, tap


def sends(engine: WhatsmeowEngine) -> list[str]:
    log = engine.store_path("ses-1").with_name("ses-1.db.sends")
    return log.read_text().splitlines() if log.exists() else []


def test_a_resend_of_an_acked_id_is_answered_from_the_ledger_without_sending(
    tmp_path: Path,
) -> None:
    async def body() -> None:
        engine, conn, tap = await connected(tmp_path)
        first = await conn.send("3EB0ONCE", BOB, "text", {"body": "hi"}, timeout=5)
        again = await conn.send("3EB0ONCE", BOB, "text", {"body": "hi"}, timeout=5)
        assert first.wa_id == again.wa_id == "3EB0ONCE"
        assert first.server_ts == again.server_ts
        assert len(sends(engine)) == 1
        state = (await tap.next(AuthStateChanged)).state
        while b"3EB0ONCE" not in state:  # the capture that holds the ledger row
            state = (await tap.next(AuthStateChanged)).state
        await conn.close()
        # After a crash, on another instance: a connection from the backed-up state knows it.
        engine.emitted.clear()
        engine.store_path("ses-1").unlink()
        later = engine.open("ses-1", state)
        await later.connect()
        await EventTap(later.events()).next(Connected)
        assert (
            await later.send("3EB0ONCE", BOB, "text", {"body": "hi"}, timeout=5)
        ).wa_id == "3EB0ONCE"
        assert len(sends(engine)) == 1
        await later.close()

    within(30, body)


def test_the_host_gets_no_runner_secrets_and_the_proxy_out_of_argv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WAGATE_BACKUP_KEYS", "k1:c2VjcmV0")
    monkeypatch.setenv("WAGATE_INTERNAL_SECRET", "secret")

    async def body() -> None:
        engine, conn, _ = await connected(tmp_path, proxy="socks5://user:pw@127.0.0.1:1")
        names = engine.store_path("ses-1").with_name("ses-1.db.env").read_text().split()
        assert "WAGATE_WHATSMEOW_HOST_PROXY" in names and "PATH" in names
        assert not [n for n in names if n.startswith("WAGATE_") and "PROXY" not in n]
        await conn.close()

    within(30, body)


def test_receipts_name_the_message_by_wagates_id(tmp_path: Path) -> None:
    async def body() -> None:
        _, conn, tap = await connected(tmp_path)
        await conn.send("3EB0RCPT", BOB, "text", {"body": "hi"}, timeout=5)
        assert (await tap.next(MessageAck)).wa_id == "3EB0RCPT"
        receipt = await tap.next(Receipt)
        assert receipt.wa_ids == ("3EB0RCPT",) and receipt.kind == "delivered"
        await conn.close()

    within(30, body)


def test_a_vote_names_its_poll_by_wagates_id(tmp_path: Path) -> None:
    """whatsmeow chose the poll's WhatsApp id; the vote must name the one the runner stored."""

    async def body() -> None:
        _, conn, tap = await connected(tmp_path)
        poll = {"question": "Lunch?", "options": ["Tea", "Soup"], "selectable_count": 1}
        await conn.send("3EB0POLLWM", BOB, "poll", poll, timeout=5)
        vote = await tap.next(InboundMessage)
        assert vote.kind == "poll_vote" and vote.content["poll_id"] == "3EB0POLLWM"
        assert vote.content["selected_hashes"] == [poll_option_hash("Tea")]
        await conn.close()

    within(30, body)


def test_a_text_asking_for_a_link_preview_reaches_the_host_with_the_runners_preview(
    tmp_path: Path,
) -> None:
    async def body() -> None:
        async with web_files() as files:
            engine, conn, _ = await connected(tmp_path, egress_guard=LOOPBACK_GUARD)
            text = {"body": f"see {files}/sale.html", "link_preview": True}
            await conn.send("3EB0PREVIEWWM", BOB, "text", text, timeout=5)
            await conn.close()
        (sent,) = sends(engine)
        assert "'title': 'Spring sale & more'" in sent and "'thumbnail_b64'" in sent

    within(30, body)


def test_a_late_ack_is_still_reported_and_recorded_so_the_retry_is_not_a_duplicate(
    tmp_path: Path,
) -> None:
    async def body() -> None:
        engine, conn, tap = await connected(tmp_path)
        with pytest.raises(TransientSendError):
            await conn.send("3EB0LATE", BOB, "text", {"body": "slow"}, timeout=0.2)
        assert (await tap.next(MessageAck)).wa_id == "3EB0LATE"
        assert (
            await conn.send("3EB0LATE", BOB, "text", {"body": "slow"}, timeout=5)
        ).wa_id == "3EB0LATE"
        assert len(sends(engine)) == 1
        await conn.close()

    within(30, body)


def test_store_changes_become_auth_state_events_with_the_stores_bytes(tmp_path: Path) -> None:
    async def body() -> None:
        engine, conn, tap = await connected(tmp_path)
        changed = await tap.next(AuthStateChanged)  # the host committed after connecting
        assert changed.state == engine.store_path("ses-1").read_bytes()
        await conn.send("3EB0KEYS", BOB, "text", {"body": "hi"}, timeout=5)
        after_send = await tap.next(AuthStateChanged)  # the ledger row is state too
        assert after_send.state != changed.state
        await conn.close()

    within(30, body)


def test_send_errors_are_classified_permanent_or_transient(tmp_path: Path) -> None:
    async def body() -> None:
        _, conn, _ = await connected(tmp_path)
        send = conn.send
        with pytest.raises(PermanentSendError):
            await send("3EB0NOWA", "+99955501234", "text", {"body": "x"}, timeout=5)
        with pytest.raises(PermanentSendError):
            await send("3EB0BAD", "not-a-number", "text", {"body": "x"}, timeout=5)
        with pytest.raises(TransientSendError) as limited:
            await send("3EB0RATE", BOB, "text", {"body": "rate"}, timeout=5)
        assert limited.value.retry_after and limited.value.retry_after > 0
        await conn.close()

    within(30, body)


def test_one_close_per_host_then_connect_starts_a_new_host(tmp_path: Path) -> None:
    async def body() -> None:
        _, conn, tap = await connected(tmp_path)
        with pytest.raises(TransientSendError):
            await conn.send("3EB0DROP", BOB, "text", {"body": "drop:428"}, timeout=5)
        assert (await tap.next(Disconnected)).reason == R.CLOSED
        assert not any(isinstance(e, Disconnected) for e in await tap.nothing_for(0.5))
        with pytest.raises(TransientSendError):
            await conn.send("3EB0OFF", BOB, "text", {"body": "x"}, timeout=5)
        await conn.connect()
        await tap.next(Connected)
        assert (
            await conn.send("3EB0BACK", BOB, "text", {"body": "x"}, timeout=5)
        ).wa_id == "3EB0BACK"
        await conn.close()

    within(30, body)


def test_logout_is_a_401_and_forgets_the_local_store(tmp_path: Path) -> None:
    async def body() -> None:
        engine, conn, tap = await connected(tmp_path)
        await conn.logout()
        assert (await tap.next(Disconnected)).reason == R.LOGGED_OUT
        assert not engine.store_path("ses-1").exists()
        with pytest.raises(Conflict):
            await conn.request_pairing_code("+15550500001")
        await conn.close()

    within(30, body)


def test_close_ends_the_stream_without_a_disconnect(tmp_path: Path) -> None:
    async def body() -> None:
        _, conn, tap = await connected(tmp_path)
        await conn.close()
        rest = await tap.nothing_for(0.3)
        assert not any(isinstance(e, Disconnected) for e in rest)

    within(30, body)


# ------------------------------------------------------------------ pure parts


@pytest.mark.parametrize(
    ("text", "permanent"),
    [
        ("server returned error 479", True),
        ("server returned error 400", True),
        ("server returned error 429", False),
        ("server returned error 419", False),
        ("server returned error 500", False),
        ("can't send message to unknown server example.com", True),
        ("websocket not connected", False),
        ("timed out waiting for message send response", False),
        ("failed to send message node: broken pipe", False),
        ("something new", False),
    ],
)
def test_whatsmeow_send_errors_are_classified(text: str, permanent: bool) -> None:
    error = classify_send_error(text)
    assert isinstance(error, PermanentSendError) is permanent
    assert isinstance(error, TransientSendError) is not permanent
    assert text in error.details[0]["reason"]


def test_events_cross_the_pipe_unchanged() -> None:
    from datetime import UTC, datetime

    ts = datetime(2026, 1, 1, 12, 0, 0, 250000, tzinfo=UTC)
    events = [
        QrCode("2@abc", ts),
        Connected("15550500001@s.whatsapp.net"),
        Disconnected(440, "replaced"),
        Receipt(("WA1", "WA2"), "read", "15550500002@s.whatsapp.net", ts),
        InboundMessage("WA3", "c", "s", "text", {"body": "hi"}, ts, from_history=True),
    ]
    for event in events:
        assert wire.decode_event(wire.unpack(wire.pack(wire.encode_event(event))[4:])) == event


def test_the_host_is_started_with_the_runners_own_python() -> None:
    assert WhatsmeowEngine(Path("/tmp/x")).python == sys.executable


def test_a_received_file_is_downloaded_through_its_host(tmp_path: Path) -> None:
    """The host's `media` reference becomes the event's download, which asks that host (op
    download) and hands back its bytes, or the host's verdict on a file that is gone."""
    from tests.engine_contract.fake_whatsmeow_host import MEDIA_MESSAGES
    from wagate.errors import NotFound

    async def body() -> None:
        engine = fake_engine(tmp_path)
        conn = engine.open("media-1", linked_store(tmp_path / "made.db"))
        await conn.connect()
        tap = EventTap(conn.events())
        for wa_id, kind, data, mime, gone in MEDIA_MESSAGES:
            msg = await tap.next(InboundMessage)
            assert (msg.wa_id, msg.kind) == (wa_id, kind)
            assert msg.media is not None and msg.media.mime_type == mime
            assert msg.media.size == len(data)
            if gone:
                with pytest.raises(NotFound):
                    await msg.media.fetch(1_000_000)
            else:
                assert await msg.media.fetch(1_000_000) == data
        await conn.close()

    within(30, body)
