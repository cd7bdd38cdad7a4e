"""Fault injection: drops with every reason code, stalled and late acks, black holes, refused
connects, rate limits, bans — and the inspection endpoints that count the damage."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from simulator.protocol import REASONS
from tests.simulator.harness import Sim, simulated

pytestmark = pytest.mark.integration

ME = "+15550400001"
BOB = "+15550400002"


@simulated(timeout=30)
async def test_drop_closes_sockets_with_each_reason_code(sim: Sim) -> None:
    for reason in sorted(REASONS):
        device, creds = await sim.paired(ME)
        assert await sim.control.drop(reason, jid=creds["jid"], detail=f"test {reason}") == 1
        assert await device.closed() == 4000 + reason
        again = await sim.device(creds)
        frame_or_close = await asyncio.wait_for(
            again.expect("connected") if reason != 401 else again.closed(), 5
        )
        # 401 means the phone removed the device: its credentials are dead.
        if reason == 401:
            assert frame_or_close == 4401
        else:
            await again.close()


@simulated()
async def test_an_abrupt_drop_has_no_close_frame(sim: Sim) -> None:
    device, creds = await sim.paired(ME)
    await sim.control.drop(428, jid=creds["jid"], abrupt=True)
    code = await device.closed()
    assert code is None or code < 4000


@simulated()
async def test_drop_all_reaches_pairing_sockets_too(sim: Sim) -> None:
    linked, _ = await sim.paired(ME)
    pairing = await sim.device()
    await pairing.expect("qr")
    assert await sim.control.drop(503, all=True) == 2
    assert await linked.closed() == 4503
    assert await pairing.closed() == 4503


@simulated()
async def test_stalled_acks_arrive_late_but_the_message_is_delivered_at_once(sim: Sim) -> None:
    device, _ = await sim.paired(ME)
    await sim.control.stall(0.4, phone=ME)
    started = time.monotonic()
    await device.send("3EB0STALL", BOB)
    await asyncio.sleep(0.1)
    assert [m["id"] for m in await sim.control.received(BOB)] == ["3EB0STALL"]
    with pytest.raises(TimeoutError):
        await device.expect("ack", timeout=0.1)
    await device.send("3EB0STALL", BOB)  # the gateway's retry: not a second copy
    first = await device.expect("ack", timeout=2)
    second = await device.expect("ack", timeout=2)
    assert first["id"] == second["id"] == "3EB0STALL"
    assert time.monotonic() - started >= 0.35
    assert len(await sim.control.received(BOB)) == 1


@simulated()
async def test_ending_a_stall_early_releases_the_held_acks(sim: Sim) -> None:
    device, creds = await sim.paired(ME)
    await sim.control.stall(60, jid=creds["jid"])
    await device.send("3EB0HELD", BOB)
    with pytest.raises(TimeoutError):
        await device.expect("ack", timeout=0.2)
    await sim.control.stall(0, jid=creds["jid"])
    assert (await device.expect("ack"))["id"] == "3EB0HELD"


@simulated()
async def test_a_frozen_socket_stops_answering_pings(sim: Sim) -> None:
    _, creds = await sim.paired(ME)
    device = await sim.device(creds, heartbeat=0.2)
    await device.expect("connected")
    await sim.control.freeze(10, jid=creds["jid"])
    await device.closed(timeout=3)
    assert device.ws is not None
    assert isinstance(device.ws.exception(), aiohttp.ServerTimeoutError)


@simulated()
async def test_refused_connects_answer_503_until_the_time_is_up(sim: Sim) -> None:
    await sim.control.refuse(0.3)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await sim.device()
    assert refused.value.status == 503
    await asyncio.sleep(0.35)
    device = await sim.device()
    await device.expect("qr")


@simulated()
async def test_refusing_one_number_closes_its_logins_with_503(sim: Sim) -> None:
    first, creds = await sim.paired(ME)
    await first.close()
    await sim.control.refuse(30, phone=ME)
    again = await sim.device(creds)
    assert await again.closed() == 4503
    other = await sim.device()  # other numbers still connect
    await other.expect("qr")


@simulated()
async def test_a_rate_limited_number_gets_transient_errors_with_retry_after(sim: Sim) -> None:
    device, _ = await sim.paired(ME)
    await sim.control.rate_limit(ME, per_second=5, burst=2)
    for i in range(3):
        await device.send(f"3EB0RL{i}", BOB)
    answers = [await device.expect({"ack", "nack"}) for _ in range(3)]
    assert [a["t"] for a in answers] == ["ack", "ack", "nack"]
    nack = answers[2]
    assert nack["code"] == "rate_limited" and nack["permanent"] is False
    assert 0 < nack["retry_after"] <= 0.2
    await asyncio.sleep(nack["retry_after"])
    await device.send("3EB0RL2", BOB)
    assert (await device.expect({"ack", "nack"}))["t"] == "ack"
    await sim.control.rate_limit(ME, per_second=None)
    assert len(await sim.control.received(BOB)) == 3


@simulated()
async def test_a_banned_number_is_closed_with_403_and_refused_until_unbanned(sim: Sim) -> None:
    device, creds = await sim.paired(ME)
    assert await sim.control.ban(ME) == 1
    assert await device.closed() == 4403
    again = await sim.device(creds)
    assert await again.closed() == 4403
    pairing = await sim.device()
    qr = await pairing.expect("qr")
    with pytest.raises(Exception, match="banned"):
        await sim.control.scan(qr["code"], ME)
    assert await pairing.closed() == 4403
    await sim.control.ban(ME, banned=False)
    back = await sim.device(creds)
    await back.expect("connected")


@simulated()
async def test_latency_delays_acks(sim: Sim) -> None:
    device, _ = await sim.paired(ME)
    await sim.control.latency(200, jitter_ms=20, phone=ME)
    started = time.monotonic()
    await device.send("3EB0SLOW", BOB)
    await device.expect("ack")
    assert 0.17 <= time.monotonic() - started < 1.0
    await sim.control.latency(0, phone=ME)
    started = time.monotonic()
    await device.send("3EB0FAST", BOB)
    await device.expect("ack")
    assert time.monotonic() - started < 0.15


@simulated()
async def test_stats_and_devices_report_what_happened(sim: Sim) -> None:
    device, creds = await sim.paired(ME)
    await device.send("3EB0S1", BOB)
    await device.send("3EB0S1", BOB)
    await device.send("3EB0S2", "+99900000001")
    await device.collect("ack", 2)
    await device.expect("nack")
    stats = await sim.control.stats()
    assert stats["devices"] == stats["devices_connected"] == 1
    assert stats["accounts"] == 1 and stats["rss_bytes"] > 0
    counters = stats["counters"]
    assert counters["sends"] == 2 and counters["duplicates"] == 1
    assert counters["nack_not_on_whatsapp"] == 1 and counters["paired"] == 1
    (description,) = await sim.control.devices()
    assert description["jid"] == creds["jid"] and description["sends"] == 1


@simulated()
async def test_reset_forgets_everything_and_closes_every_socket(sim: Sim) -> None:
    await sim.control.config(receipt_delay_ms=5000)
    device, creds = await sim.paired(ME)
    await device.send("3EB0GONE", BOB)
    await device.expect("ack")
    await sim.control.reset()
    assert await device.closed() == 1001
    assert await sim.control.received(BOB) == []
    assert await sim.control.devices() == []
    assert (await sim.control.get("/control/config"))["receipt_delay_ms"] == 200
    again = await sim.device(creds)
    assert await again.closed() == 4401


@simulated()
async def test_bad_control_requests_are_refused_with_a_reason(sim: Sim) -> None:
    for path, payload, status in [
        ("/control/drop", {"phone": ME, "reason": 999}, 400),
        ("/control/drop", {"jid": "1555:9@s.whatsapp.net", "reason": 428}, 404),
        ("/control/scan", {"qr": "nope"}, 400),
        ("/control/inbound", {"to_phone": "nonsense", "from": BOB}, 400),
        ("/control/config", {"qr_attempts": 0}, 400),
    ]:
        url = sim.url + path
        async with sim.http.post(url, json=payload) as response:
            assert response.status == status, (path, await response.text())
            assert "error" in await response.json()


@simulated()
async def test_a_stall_for_a_number_is_ended_by_a_stall_for_all(sim: Sim) -> None:
    device, _ = await sim.paired(ME)
    await sim.control.stall(60, phone=ME)
    await device.send("3EB0ALL", BOB)
    with pytest.raises(TimeoutError):
        await device.expect("ack", timeout=0.2)
    await sim.control.post("/control/stall", all=True, seconds=0)
    assert (await device.expect("ack"))["id"] == "3EB0ALL"


@simulated()
async def test_a_held_ack_is_not_sent_to_a_later_socket_of_the_device(sim: Sim) -> None:
    device, creds = await sim.paired(ME)
    await sim.control.stall(60, phone=ME)
    await device.send("3EB0OLDSOCK", BOB)
    await asyncio.sleep(0.05)
    await device.close()
    again = await sim.device(creds)
    await again.expect("connected")
    await sim.control.stall(0, phone=ME)
    with pytest.raises(TimeoutError):
        await again.expect("ack", timeout=0.3)
    await again.send("3EB0OLDSOCK", BOB)  # the resend is acked on the new socket
    assert (await again.expect("ack"))["id"] == "3EB0OLDSOCK"
    assert len(await sim.control.received(BOB)) == 1
