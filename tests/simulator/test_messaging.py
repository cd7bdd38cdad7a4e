"""Messages through the simulator: acks, deduplication, receipts, errors, inbound delivery,
the offline queue and history sync — counted through the inspection API."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.simulator.harness import Sim, run_sim, simulated

pytestmark = pytest.mark.integration

ME = "+15550300001"
BOB = "+15550300002"
BOB_JID = "15550300002@s.whatsapp.net"


@simulated()
async def test_a_send_is_acked_with_a_server_timestamp_and_received_once(sim: Sim) -> None:
    device, creds = await sim.paired(ME)
    before = time.time()
    await device.send("3EB0A1", BOB, {"body": "hello"})
    ack = await device.expect("ack")
    assert ack["id"] == "3EB0A1" and before <= ack["ts"] <= time.time()
    (got,) = await sim.control.received(BOB)
    assert got["id"] == "3EB0A1" and got["from"] == "15550300001"
    assert got["from_device"] == creds["jid"] and got["content"] == {"body": "hello"}
    # Every address form names the same recipient.
    assert await sim.control.received(BOB_JID) == [got]
    assert await sim.control.received("15550300002") == [got]


@simulated()
async def test_the_same_id_twice_is_acked_twice_and_delivered_once(sim: Sim) -> None:
    device, _ = await sim.paired(ME)
    await device.send("3EB0DUP", BOB)
    first = await device.expect("ack")
    await device.send("3EB0DUP", BOB)
    second = await device.expect("ack")
    assert first == second
    assert [m["id"] for m in await sim.control.received(BOB)] == ["3EB0DUP"]
    assert (await sim.control.stats())["counters"]["duplicates"] == 1


@simulated()
async def test_dedup_is_per_sender_and_survives_reconnects(sim: Sim) -> None:
    mine, creds = await sim.paired(ME)
    theirs, _ = await sim.paired("+15550300003")
    await mine.send("3EB0SAME", BOB)
    await theirs.send("3EB0SAME", BOB)
    await mine.expect("ack")
    await theirs.expect("ack")
    await mine.close()
    again = await sim.device(creds)
    await again.send("3EB0SAME", BOB)  # a resend after a crash
    await again.expect("ack")
    senders = [m["from"] for m in await sim.control.received(BOB)]
    assert senders == ["15550300001", "15550300003"]


@simulated()
async def test_a_batch_of_frames_is_handled_in_order(sim: Sim) -> None:
    device, _ = await sim.paired(ME)
    ids = [f"3EB0B{i:03d}" for i in range(50)]
    frame = [{"t": "send", "id": i, "to": BOB, "kind": "text", "content": {"n": i}} for i in ids]
    await device.send_frame(frame)
    acks = await device.collect("ack", 50)
    assert [a["id"] for a in acks] == ids
    assert [m["id"] for m in await sim.control.received(BOB)] == ids


@simulated()
async def test_delivery_then_read_receipts_follow_the_configured_delays(sim: Sim) -> None:
    await sim.control.config(receipt_delay_ms=100, read_delay_ms=250)
    device, _ = await sim.paired(ME)
    sent_at = time.monotonic()
    await device.send("3EB0R1", BOB)
    await device.send("3EB0R2", BOB)
    delivered = await device.expect("receipt")
    delivered_after = time.monotonic() - sent_at
    read = await device.expect("receipt")
    read_after = time.monotonic() - sent_at
    assert delivered["kind"] == "delivered" and read["kind"] == "read"
    assert delivered["ids"] == ["3EB0R1", "3EB0R2"] == read["ids"]  # batched per chat
    assert delivered["chat"] == BOB_JID
    assert 0.09 <= delivered_after < 0.6 and 0.24 <= read_after < 0.9


@simulated()
async def test_an_offline_recipient_sends_its_receipts_when_back_online(sim: Sim) -> None:
    await sim.control.config(receipt_delay_ms=0, read_delay_ms=0)
    await sim.control.recipient_online(BOB, False)
    device, _ = await sim.paired(ME)
    await device.send("3EB0OFF", BOB)
    await device.expect("ack")
    with pytest.raises(TimeoutError):
        await device.expect("receipt", timeout=0.3)
    await sim.control.recipient_online(BOB, True)
    assert (await device.expect("receipt"))["kind"] == "delivered"
    assert (await device.expect("receipt"))["kind"] == "read"


@simulated()
async def test_receipts_for_an_offline_device_wait_for_its_reconnect(sim: Sim) -> None:
    await sim.control.config(receipt_delay_ms=50, read_receipts=False)
    device, creds = await sim.paired(ME)
    await device.send("3EB0LATER", BOB)
    await device.expect("ack")
    await device.close()
    await asyncio.sleep(0.15)
    again = await sim.device(creds)
    receipt = await again.expect("receipt")
    assert receipt["ids"] == ["3EB0LATER"] and receipt["kind"] == "delivered"


@pytest.mark.parametrize(
    ("to", "code"),
    [
        ("not a number", "invalid_recipient"),
        ("+12", "invalid_recipient"),
        ("+99912345678", "not_on_whatsapp"),
        ("+15550399999", "not_on_whatsapp"),  # marked through the control API
    ],
)
def test_bad_recipients_get_permanent_errors(simulator_url: str, to: str, code: str) -> None:
    async def body(sim: Sim) -> None:
        await sim.control.not_on_whatsapp("+15550399999")
        device, _ = await sim.paired(ME)
        await device.send("3EB0BAD", to)
        nack = await device.expect({"ack", "nack"})
        assert nack["t"] == "nack" and nack["id"] == "3EB0BAD"
        assert nack["code"] == code and nack["permanent"] is True
        assert (await sim.control.stats())["counters"].get("delivered_to_recipients", 0) == 0

    run_sim(simulator_url, body)


@simulated()
async def test_inbound_reaches_every_linked_device_once_per_id(sim: Sim) -> None:
    first, _ = await sim.paired(ME)
    second, _ = await sim.paired(ME)
    result = await sim.control.inbound(ME, BOB, {"body": "hi"}, wa_id="3EB0IN1")
    assert result == {"id": "3EB0IN1", "duplicate": False, "devices": 2}
    again = await sim.control.inbound(ME, BOB, {"body": "hi"}, wa_id="3EB0IN1")
    assert again["duplicate"] is True
    for device in (first, second):
        msg = await device.expect("msg")
        assert msg["id"] == "3EB0IN1" and msg["sender"] == BOB_JID and msg["chat"] == BOB_JID
        assert msg["from_me"] is False and msg["content"] == {"body": "hi"}
        with pytest.raises(TimeoutError):
            await device.expect("msg", timeout=0.2)


@simulated()
async def test_an_offline_device_gets_queued_messages_then_history_on_reconnect(sim: Sim) -> None:
    device, creds = await sim.paired(ME)
    await device.close()
    await sim.control.inbound(ME, BOB, {"body": "while away"}, wa_id="3EB0AWAY")
    again = await sim.device(creds)
    await again.expect("connected")
    live = await again.expect("msg")
    assert live["id"] == "3EB0AWAY"
    history = await again.expect("history")
    assert [m["id"] for m in history["messages"]] == ["3EB0AWAY"]
    assert history["seq"] > live["seq"]


@simulated()
async def test_acknowledged_frames_are_not_sent_again(sim: Sim) -> None:
    await sim.control.config(history_limit=0)
    device, creds = await sim.paired(ME)
    await sim.control.inbound(ME, BOB, wa_id="3EB0ACK1")
    await sim.control.inbound(ME, BOB, wa_id="3EB0ACK2")
    one = await device.expect("msg")
    two = await device.expect("msg")
    await device.send_frame({"t": "acked", "seq": one["seq"]})
    await asyncio.sleep(0.05)
    await device.close()
    again = await sim.device(creds)
    redelivered = await again.expect("msg")
    assert redelivered["id"] == "3EB0ACK2" and redelivered["seq"] == two["seq"]
    await again.close()
    # `acked` in the hello acknowledges too.
    third = await sim.device(creds, acked=two["seq"])
    await third.expect("connected")
    with pytest.raises(TimeoutError):
        await third.expect("msg", timeout=0.2)


@simulated()
async def test_other_devices_of_the_number_see_what_one_sent(sim: Sim) -> None:
    sender, _ = await sim.paired(ME)
    sibling, _ = await sim.paired(ME)
    await sender.send("3EB0MINE", BOB, {"body": "from my phone"})
    mirrored = await sibling.expect("msg")
    assert mirrored["id"] == "3EB0MINE" and mirrored["from_me"] is True
    assert mirrored["chat"] == BOB_JID


@simulated()
async def test_a_message_to_a_linked_number_arrives_there_as_inbound(sim: Sim) -> None:
    alice, _ = await sim.paired(ME)
    bob, _ = await sim.paired(BOB)
    await alice.send("3EB0TOBOB", BOB, {"body": "hi bob"})
    msg = await bob.expect("msg")
    assert msg["id"] == "3EB0TOBOB" and msg["sender"] == "15550300001@s.whatsapp.net"
    assert msg["from_me"] is False
