"""Linking devices to the simulator: QR and pairing-code login, credentials, reconnects,
replacement, keep-alive and key updates."""

from __future__ import annotations

import asyncio
import signal
import time
import urllib.request
from pathlib import Path

import pytest

from simulator.testkit import ControlError
from tests.simulator.harness import Sim, run_sim, simulated, start_simulator

pytestmark = pytest.mark.integration

PHONE = "+15550100001"


def test_healthz_answers_200(simulator_url: str) -> None:
    with urllib.request.urlopen(f"{simulator_url}/healthz", timeout=5) as response:
        assert response.status == 200


@simulated()
async def test_scanning_the_qr_links_the_device_and_hands_it_credentials(sim: Sim) -> None:
    device = await sim.device()
    qr = await device.expect("qr")
    assert qr["code"].startswith("2@") and qr["expires_in"] > 0
    jid = await sim.control.scan(qr["code"], PHONE)
    assert jid == "15550100001:1@s.whatsapp.net"
    paired = await device.expect("paired")
    creds = paired["creds"]
    assert creds["jid"] == jid and creds["secret"] and creds["identity_key"]
    connected = await device.expect("connected")
    assert connected["jid"] == jid
    keys = await device.expect("keys")  # the first pre-key upload after pairing
    assert keys["generation"] == 2 and keys["seq"] >= 1
    (description,) = await sim.control.devices()
    assert description["jid"] == jid and description["connected"] is True


@simulated()
async def test_a_second_device_of_the_same_number_gets_the_next_device_id(sim: Sim) -> None:
    _, first = await sim.paired(PHONE)
    _, second = await sim.paired(PHONE)
    assert first["jid"].endswith(":1@s.whatsapp.net")
    assert second["jid"].endswith(":2@s.whatsapp.net")


@simulated()
async def test_qr_codes_rotate_and_pairing_gives_up_with_408(sim: Sim) -> None:
    await sim.control.config(qr_interval_s=0.1, qr_attempts=3)
    device = await sim.device()
    codes = [(await device.expect("qr"))["code"] for _ in range(3)]
    assert len(set(codes)) == 3
    assert await device.closed() == 4408
    with pytest.raises(ControlError) as refused:
        await sim.control.scan(codes[0], PHONE)
    assert refused.value.status == 404


@simulated()
async def test_an_expired_qr_cannot_be_scanned(sim: Sim) -> None:
    await sim.control.config(qr_interval_s=0.1)
    device = await sim.device()
    old = (await device.expect("qr"))["code"]
    new = (await device.expect("qr"))["code"]
    with pytest.raises(ControlError) as refused:
        await sim.control.scan(old, PHONE)
    assert refused.value.status == 404
    await sim.control.scan(new, PHONE)
    await device.expect("connected")


@simulated()
async def test_a_pairing_code_confirmed_on_the_phone_links_the_device(sim: Sim) -> None:
    device = await sim.device()
    await device.expect("qr")
    await device.send_frame({"t": "pair_code_request", "phone": PHONE})
    code = (await device.expect("pair_code"))["code"]
    assert len(code) == 8
    (pending,) = await sim.control.pairings()
    assert pending["pair_code"] == code
    with pytest.raises(ControlError):
        await sim.control.confirm_pair_code(code, "+15550100999")  # another phone
    jid = await sim.control.confirm_pair_code(f"{code[:4]}-{code[4:]}", PHONE)
    assert (await device.expect("paired"))["creds"]["jid"] == jid
    assert (await device.expect("connected"))["jid"] == jid


@simulated()
async def test_reconnecting_with_credentials_connects_without_a_qr(sim: Sim) -> None:
    first, creds = await sim.paired(PHONE)
    await first.close()
    again = await sim.device(creds)
    frame = await again.expect({"qr", "connected"})
    assert frame["t"] == "connected" and frame["jid"] == creds["jid"]


@simulated()
async def test_wrong_or_unknown_credentials_are_closed_with_401(sim: Sim) -> None:
    _, creds = await sim.paired(PHONE)
    wrong = await sim.device({**creds, "secret": "not-it"})
    assert await wrong.closed() == 4401
    unknown = await sim.device({**creds, "jid": "15550100001:9@s.whatsapp.net"})
    assert await unknown.closed() == 4401
    garbage = await sim.device({"nonsense": True})
    assert await garbage.closed() == 4401


@simulated()
async def test_a_device_the_phone_removed_gets_401_now_and_on_reconnect(sim: Sim) -> None:
    device, creds = await sim.paired(PHONE)
    await sim.control.unlink(creds["jid"])
    assert await device.closed() == 4401
    again = await sim.device(creds)
    assert await again.closed() == 4401
    assert await sim.control.devices() == []


@simulated()
async def test_logout_unlinks_the_device(sim: Sim) -> None:
    device, creds = await sim.paired(PHONE)
    await device.send_frame({"t": "logout"})
    assert await device.closed() == 4401
    again = await sim.device(creds)
    assert await again.closed() == 4401


@simulated()
async def test_a_second_connection_of_the_same_device_replaces_the_first_with_440(sim: Sim) -> None:
    first, creds = await sim.paired(PHONE)
    second = await sim.device(creds)
    await second.expect("connected")
    assert await first.closed() == 4440
    # The new socket is the device now: it sends and gets acks.
    await second.send("3EB0REPLACED", "+15550200002")
    assert (await second.expect("ack"))["id"] == "3EB0REPLACED"


@simulated()
async def test_silent_sockets_are_dropped_and_pinging_ones_kept(sim: Sim) -> None:
    await sim.control.config(idle_timeout_s=0.4)
    _, creds = await sim.paired(PHONE)
    _, other = await sim.paired("+15550100002")
    silent = await sim.device(creds)
    pinging = await sim.device(other, heartbeat=0.1)
    assert await silent.closed(timeout=3) == 4408
    await asyncio.sleep(0.5)
    assert pinging.close_code is None


@simulated()
async def test_a_socket_without_a_hello_is_closed(sim: Sim) -> None:
    await sim.control.config(hello_timeout_s=0.2)
    mute = await sim.device(hello=False)
    assert await mute.closed() == 4408
    rude = await sim.device(hello=False)
    await rude.send_frame({"t": "send", "id": "x"})
    assert await rude.closed() == 4500


@simulated()
async def test_key_updates_arrive_every_n_sends_and_persisted_ones_are_seen(sim: Sim) -> None:
    await sim.control.config(key_update_every=3)
    device, creds = await sim.paired(PHONE)
    for i in range(3):
        await device.send(f"3EB0K{i}", "+15550200002")
    keys = await device.expect("keys")
    assert keys["generation"] == 3 and keys["keys"]["signed_prekey"]["id"] == 3
    (description,) = await sim.control.devices()
    assert description["keys_generation"] == 3 and description["client_keys_generation"] == 1
    await device.close()
    updated = {**creds, **keys["keys"], "keys_generation": keys["generation"]}
    again = await sim.device(updated)
    await again.expect("connected")
    (description,) = await sim.control.devices()
    assert description["client_keys_generation"] == 3


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_the_simulator_shuts_down_cleanly_with_sockets_open(
    tmp_path: Path, sig: signal.Signals
) -> None:
    service, url = start_simulator(tmp_path)
    process = service.process
    assert process is not None
    codes: list[int | None] = []

    async def body(sim: Sim) -> None:
        linked, _ = await sim.paired(PHONE)
        pairing = await sim.device()
        await pairing.expect("qr")
        started = time.monotonic()
        process.send_signal(sig)
        codes.extend([await linked.closed(), await pairing.closed()])
        assert time.monotonic() - started < 3

    try:
        run_sim(url, body)
        assert process.wait(timeout=5) == 0
        assert codes == [1001, 1001]
        assert "listening on " + url in service.tail()
    finally:
        service.stop()
