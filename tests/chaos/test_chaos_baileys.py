"""The short chaos test of SPEC §9 on the Baileys engine against the WhatsApp-protocol fake
(emulators/whatsapp): sends while the runner is SIGKILLed — once while the fake holds the server
ack of a message it has already recorded, i.e. between send and ack — and a socket drops.
Afterwards the fake's record must hold every accepted message exactly once per (sender,
recipient, WhatsApp id), in the accepted order per chat, and every message must say it was sent.

The fake keeps one message per (sender, recipient, id), as WhatsApp does: a resend with the same
id is counted (`resent`), not recorded; a resend under a new id would show as an extra message.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.stack import StackConfig, running
from tests.chaos.test_chaos import (
    DONE,
    Record,
    _diagnose,
    _kill_runner,
    _send_until_accepted,
    _settle,
)
from tests.e2e.system import System, eventually
from wagate.adapters.firestore import FirestoreStore, make_client
from wagate.domain.ids import whatsapp_message_id

pytestmark = pytest.mark.integration

SESSIONS = 2
KILL_TO_SEND_BOUND_S = 40.0
CHATS_PER_SESSION = 4


class Fake:
    """The WhatsApp fake's control API (`/_fake/<route>`, JSON in and out)."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=30)

    def __call__(self, route: str, **body: Any) -> dict[str, Any]:
        response = self.http.post(f"/_fake/{route}", json=body)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def received(self, recipient: str) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self("received", recipient=recipient)["messages"]
        return messages


@pytest.fixture
def baileys_stack(tmp_path: Path) -> Iterator[System]:
    config = StackConfig(
        root=tmp_path,
        engine="baileys",
        sweep_every_s=10.0,
        extra_env={"WAGATE_BACKUP_DEBOUNCE_S": "0.2", "WAGATE_SWEEP_STUCK_AFTER_S": "30"},
    )
    with running(config) as stack:
        yield System(stack)


def _pair(system: System, fake: Fake, key: str, phone: str) -> dict[str, Any]:
    """Create a session, scan the QR the runner stored with `phone` on the fake, wait for it."""
    created = system.call("POST", "/v1/sessions", key, json={"name": phone})
    assert created.status_code == 201, created.text
    sid = created.json()["id"]

    def qr() -> str | None:
        r = system.call("GET", f"/v1/sessions/{sid}/qr", key, params={"format": "json"})
        return str(r.json()["code"]) if r.status_code == 200 else None

    fake("scan", qr=eventually(qr, timeout=60, every=0.3), phone=phone)
    return system.wait_state(key, sid, "connected", timeout=60)


def _kill_while_an_ack_is_held(system: System, fake: Fake, phone: str, record: Record) -> None:
    """The fake records the next message of `phone` but holds its ack; the runner dies then."""
    digits = phone.lstrip("+")
    fake("stall", phone=phone, seconds=120)
    eventually(lambda: fake("stats")["held"].get(digits, 0) > 0, timeout=30, every=0.05)
    _kill_runner(system.stack, record)  # SIGKILL, then a new runner (waits until it is ready)
    fake("stall", phone=phone, seconds=0)  # the held acks go to a dead socket; later ones flow


KILL_WITH_ACK_HELD = "runner SIGKILL with an ack held"
EVERY_FAULT = (
    KILL_WITH_ACK_HELD,
    "socket drop 428",
    "socket drop abrupt",
    "runner SIGKILL",
)


# The default suite runs the kill between send and server ack and one socket drop over 90 sends
# (about a minute here: the stack start and pairing, then each runner restart ~12 s before
# Baileys is back); --slow runs every fault over 300 sends (about 2 minutes).
@pytest.mark.timeout(600)  # the settle deadline (240 s) fails first, with a diagnosis
@pytest.mark.parametrize(
    ("sends", "fault_names"),
    [
        pytest.param(90, (KILL_WITH_ACK_HELD, "socket drop 428"), id="kill-between-send-and-ack"),
        pytest.param(300, EVERY_FAULT, id="every-fault", marks=pytest.mark.slow),
    ],
)
def test_chaos_short_on_baileys_loses_and_duplicates_nothing(
    baileys_stack: System, sends: int, fault_names: tuple[str, ...]
) -> None:
    system = baileys_stack
    fake = Fake(system.stack.url["whatsapp"])
    tenant = system.tenant("chaos-baileys", limits={"pacing_per_second": 50, "pacing_burst": 50})
    key, tenant_id = tenant["api_key"], tenant["id"]
    stamp = int(time.time()) % 100_000
    phones = [f"+1555{stamp:05d}{n:03d}" for n in range(SESSIONS)]
    sessions = [_pair(system, fake, key, phone) for phone in phones]
    chats = [
        [f"+1666{stamp:05d}{n:02d}{c:03d}" for c in range(CHATS_PER_SESSION)]
        for n in range(SESSIONS)
    ]
    record = Record()
    lock = threading.Lock()

    def send(i: int) -> None:
        n = i % SESSIONS
        to = chats[n][(i // SESSIONS) % CHATS_PER_SESSION]
        mid = _send_until_accepted(system, key, sessions[n]["id"], to, i, record)
        with lock:
            record.accepted[mid] = (i, phones[n], to)

    def recorded() -> int:
        return sum(len(fake.received(to)) for chat in chats for to in chat)

    every_fault: list[tuple[str, Callable[[], object]]] = [
        (
            KILL_WITH_ACK_HELD,
            lambda: _kill_while_an_ack_is_held(system, fake, phones[0], record),
        ),
        (
            "socket drop 428",
            lambda: fake("drop", jid=sessions[1]["jid"], reason=428, abrupt=False),
        ),
        (
            "socket drop abrupt",
            lambda: fake("drop", jid=sessions[0]["jid"], reason=408, abrupt=True),
        ),
        ("runner SIGKILL", lambda: _kill_runner(system.stack, record)),
    ]
    assert [name for name, _ in every_fault] == list(EVERY_FAULT)
    faults = [(name, act) for name, act in every_fault if name in fault_names]

    def chaos() -> None:
        """Each fault once the fake has recorded its share of the sends (so work is waiting)."""
        for n, (name, act) in enumerate(faults, start=1):

            def reached(share: int = n * sends // (len(faults) + 2)) -> bool:
                return recorded() >= share

            eventually(reached, timeout=240, every=0.2)
            act()
            record.chaos.append(name)

    started = time.monotonic()
    thread = threading.Thread(target=chaos)
    thread.start()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(send, range(sends)))
    thread.join()
    store = FirestoreStore(make_client(system.stack.config.project))
    try:
        docs = _settle(store, tenant_id, timeout=240)
    except AssertionError:
        _diagnose(system)
        raise
    stats = fake("stats")
    print(
        f"\nchaos (baileys): {sends} sends settled after {time.monotonic() - started:.1f}s; "
        f"{record.client_retries} client retries; faults: {record.chaos}; "
        f"resends kept once by the fake: {stats['resent']}"
    )
    assert record.chaos == [name for name, _ in faults]

    # Every accepted message is one document, and it reached WhatsApp.
    assert len(record.accepted) == sends, "two sends were given the same id"
    statuses = {d.id: d.status.value for d in docs}
    assert set(statuses) == set(record.accepted)
    not_sent = {mid: s for mid, s in statuses.items() if s not in DONE}
    assert not not_sent, f"{len(not_sent)} messages did not reach WhatsApp: {not_sent}"

    # The fake's record per chat: each accepted message once, under its own id, in order.
    created = {d.id: d.created_at for d in docs}
    expected: dict[str, list[tuple[Any, str, str]]] = defaultdict(list)
    for mid, (_, sender, to) in record.accepted.items():
        expected[to].append((created[mid], sender.lstrip("+"), whatsapp_message_id(mid)))
    stamps: list[float] = []
    for to, wanted in expected.items():
        messages = fake.received(to)
        stamps += [float(m["ts"]) for m in messages]
        got = [(str(m["from"]), str(m["id"])) for m in messages]
        in_order = [(s, w) for _, s, w in sorted(wanted)]
        lost = len(set(in_order) - set(got))
        extra = len(got) - len(set(got) & set(in_order))
        assert lost == 0 and extra == 0, f"lost {lost}, duplicated or unknown {extra} (to {to})"
        assert got == in_order, f"chat {to}: received out of the accepted order"
    # The kill between send and ack made the new runner send that message again, with its id.
    assert stats["resent"] >= 1, "no message was sent again after the kill with an ack held"
    first_sends = [
        round(min((t for t in stamps if t > k), default=float("nan")) - k, 1) for k in record.kills
    ]
    print(f"seconds from each runner SIGKILL to the next message the fake recorded: {first_sends}")
    # Issue 20's bound: the lease TTL plus a reconnect (10.7-13.9 s measured on a loaded 2-core
    # machine); generous, so only a recovery that waits on something else fails it.
    assert all(t <= KILL_TO_SEND_BOUND_S for t in first_sends), first_sends
