"""The chaos test of SPEC §9: many sends while the runner is SIGKILLed, WhatsApp sockets drop
and the Cloud Tasks emulator restarts (losing every queued task). Afterwards every accepted
message must have reached its recipient exactly once, in the order accepted per chat, and
every message document must say so.

The default suite runs a shortened plan; `./dev test --slow` runs the SPEC's 10,000 sends.
Clients behave as a careful production client does: each send carries an Idempotency-Key and
is retried with the same key until the api answers 202.
"""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.stack import Stack, StackConfig, running
from tests.e2e.system import System, eventually
from wagate.adapters.firestore import FirestoreRepository, FirestoreStore, make_client
from wagate.contracts import MessageDoc, PendingSend
from wagate.domain.messages import PENDING_VALUES
from wagate.ports import Where

pytestmark = pytest.mark.integration

DONE = ("sent", "delivered", "read")
PAGE = 1000  # messages per read when checking a run
# From a runner SIGKILL to the next message a recipient gets. SPEC §9 asks for ≤ 12 s (the
# lease TTL plus a reconnect; `python -m bench recovery` measures it); this bound is generous
# for a loaded 2-core machine but catches what it was before the fix: 24-54 s, the successor
# waiting out the locks of the dead runner's open claim (docs/decisions.md).
FIRST_SEND_AFTER_KILL_S = 20.0


@dataclass(frozen=True)
class Plan:
    sends: int
    sessions: int
    chats_per_session: int
    runner_kills: int
    socket_drops: int
    tasks_restarts: int
    senders: int = 8
    settle_timeout_s: float = 300.0
    # Offered load: sends per second over the whole run (None: as fast as the clients can).
    # The chaos test asks "is anything lost or doubled", not "how fast": a backlog far beyond
    # the send rate only makes the run longer (see docs/benchmarks.md for throughput).
    rate_per_s: float | None = None
    # Assert that each runner SIGKILL is followed by a send within this many seconds. Not with
    # Tasks-emulator restarts in the plan: the tasks they lose are the sweeper's to find (30 s
    # stuck, here), and the chats they head wait for it.
    first_send_bound_s: float | None = None
    pacing_per_s: float = 100  # per session (the tenant's pacing_per_second and burst)


@dataclass
class Record:
    accepted: dict[str, tuple[int, str, str]] = field(default_factory=dict)  # id → (i, phone, to)
    client_retries: int = 0
    chaos: list[str] = field(default_factory=list)
    kills: list[float] = field(default_factory=list)  # time.time() of each runner SIGKILL


@pytest.fixture
def chaos_stack(tmp_path: Path) -> Iterator[System]:
    config = StackConfig(
        root=tmp_path,
        simulator_args=("--receipt-delay-ms=50", "--read-delay-ms=100"),
        sweep_every_s=10.0,
        extra_env={
            "WAGATE_BACKUP_DEBOUNCE_S": "0.2",
            # Messages whose task died with the emulator are found in under a minute, not
            # minutes. Not much sooner: a sweep makes a GetTask per stuck message (for up to
            # 30 s), and a backlog of thousands of healthy ones is "stuck" by this measure.
            "WAGATE_SWEEP_STUCK_AFTER_S": "30",
        },
    )
    with running(config) as stack:
        yield System(stack)


def _send_until_accepted(
    system: System, key: str, sid: str, to: str, i: int, record: Record
) -> str:
    """POST with an Idempotency-Key, retried with the same key until the api answers 202."""
    body = {"to": to, "content": {"type": "text", "body": f"chaos-{i}"}}
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": f"chaos-{i}"}
    delay = 0.2
    while True:
        try:
            response = system.api.post(f"/v1/sessions/{sid}/messages", json=body, headers=headers)
            if response.status_code == 202:
                return str(response.json()["id"])
            assert response.status_code in (429, 503), response.text  # anything else is a bug
        except httpx.HTTPError:
            pass
        record.client_retries += 1
        time.sleep(delay)
        delay = min(delay * 2, 3.0)


def _restart_tasks_emulator(stack: Stack) -> None:
    """Kill the Cloud Tasks emulator (every queued task is lost) and start a fresh one."""
    stack.services["tasks"].kill()
    stack.start(stack.tasks_service())
    stack.provision()


def _kill_runner(stack: Stack, record: Record) -> None:
    record.kills.append(time.time())
    stack.services["runner-0"].kill()
    stack.start(stack.runner_service(0))


def _chaos(
    system: System, plan: Plan, jids: list[str], record: Record, sending: threading.Event
) -> None:
    """Spread the planned faults over the sending period, in a random order."""
    rng = random.Random(7)
    actions: list[tuple[str, Callable[[], None]]] = []
    actions += [("runner SIGKILL", lambda: _kill_runner(system.stack, record))] * plan.runner_kills
    actions += [("tasks emulator restart", lambda: _restart_tasks_emulator(system.stack))] * (
        plan.tasks_restarts
    )
    for n in range(plan.socket_drops):
        jid = jids[n % len(jids)]
        reason = rng.choice([408, 428, 500, 503, 515])
        abrupt = rng.random() < 0.5
        actions.append(
            (
                f"socket drop {reason}{' abrupt' if abrupt else ''}",
                lambda jid=jid, reason=reason, abrupt=abrupt: system.control(  # type: ignore[misc]
                    "drop", jid=jid, reason=reason, abrupt=abrupt
                ),
            )
        )
    rng.shuffle(actions)
    # Faults land inside the expected sending time.
    sending_s = plan.sends / (plan.rate_per_s or 150)
    gap = max(0.5, sending_s / (len(actions) + 1))
    for name, act in actions:
        sending.wait(gap)  # once sending is over, the rest land while the backlog settles
        act()
        record.chaos.append(name)


def _diagnose(system: System) -> None:
    """What the runner and sweeper said, printed when the run does not settle."""
    try:
        health = httpx.get(
            f"{system.stack.runner_url(0)}/health?detailed=true&per_session=true", timeout=5
        )
        print(f"runner health: {health.text[:3000]}")
    except httpx.HTTPError as e:
        print(f"runner health: unreachable ({e})")
    for name in ("runner-0", "scheduler", "tasks"):
        path = system.stack.logs / f"{name}.log"
        if path.exists():
            lines = [
                line
                for line in path.read_text(errors="replace").splitlines()
                if "connectionpool" not in line
            ]
            print(f"--- {name}.log, last lines:")
            for line in lines[-40:]:
                print(f"  {line[:400]}")


def _all_messages(messages: FirestoreRepository[MessageDoc], tenant_id: str) -> list[MessageDoc]:
    """Every message of the tenant, a page at a time. One query for all 10,000 ran past the
    adapter's 10 s call deadline on a loaded emulator (seen once, after the run had settled)."""
    docs: list[MessageDoc] = []
    while True:
        page = messages.query(
            [Where("tenant_id", "==", tenant_id)],
            order_by="id",
            limit=PAGE,
            start_after=docs[-1].id if docs else None,
        )
        docs += page
        if len(page) < PAGE:
            return docs


def _settle(store: FirestoreStore, tenant_id: str, timeout: float) -> list[MessageDoc]:
    messages = store.collection("messages", MessageDoc)
    entries = store.collection("pending", PendingSend)

    def settled() -> bool:
        # The pending/{id} entries first: a small collection. Counting pending messages scans
        # all of them on the emulator (seconds of its CPU at 10,000), so only once no entry is
        # left: a pending message without an entry would fail the run here.
        if entries.count() > 0:
            return False
        return (
            messages.count(
                [Where("tenant_id", "==", tenant_id), Where("status", "in", PENDING_VALUES)]
            )
            == 0
        )

    try:
        eventually(settled, timeout=timeout, every=2.0)
    finally:
        docs = _all_messages(messages, tenant_id)
        by_status: dict[str, int] = defaultdict(int)
        for d in docs:
            by_status[d.status.value] += 1
        stuck = [d for d in docs if d.status.value in PENDING_VALUES][:5]
        print(f"\nmessages by status: {dict(by_status)}")
        shown = {"id", "status", "attempts", "errors", "updated_at", "task_generation"}
        for d in stuck:
            print(f"  stuck: {d.model_dump_json(include=shown)}")
    return docs


def run_chaos(system: System, plan: Plan) -> Record:
    key_body = system.tenant(
        "chaos",
        limits={
            "sends_per_minute": 100_000,
            "session_creates_per_minute": 10_000,
            "qr_fetches_per_5_minutes": 10_000,
            "max_sessions": 10_000,
            "pacing_per_second": plan.pacing_per_s,
            "pacing_burst": int(plan.pacing_per_s),
        },
    )
    key, tenant_id = key_body["api_key"], key_body["id"]
    stamp = int(time.time()) % 100_000
    sessions = [
        system.paired_session(key, f"+1555{stamp:05d}{n:03d}") for n in range(plan.sessions)
    ]
    chats = {
        s["id"]: [f"+1666{stamp:05d}{n:02d}{c:03d}" for c in range(plan.chats_per_session)]
        for n, s in enumerate(sessions)
    }
    phones = {s["id"]: f"+1555{stamp:05d}{n:03d}" for n, s in enumerate(sessions)}
    record = Record()
    sending = threading.Event()
    lock = threading.Lock()

    def send(i: int) -> None:
        if plan.rate_per_s:
            time.sleep(max(0.0, started + i / plan.rate_per_s - time.monotonic()))
        session = sessions[i % plan.sessions]
        to = chats[session["id"]][(i // plan.sessions) % plan.chats_per_session]
        mid = _send_until_accepted(system, key, session["id"], to, i, record)
        with lock:
            record.accepted[mid] = (i, phones[session["id"]], to)

    chaos = threading.Thread(
        target=_chaos, args=(system, plan, [s["jid"] for s in sessions], record, sending)
    )
    started = time.monotonic()
    chaos.start()
    with ThreadPoolExecutor(plan.senders) as pool:
        list(pool.map(send, range(plan.sends)))
    sending.set()
    chaos.join()
    accepted_s = time.monotonic() - started

    store = FirestoreStore(make_client(system.stack.config.project))
    try:
        docs = _settle(store, tenant_id, plan.settle_timeout_s)
    except AssertionError:
        _diagnose(system)
        raise
    settled_s = time.monotonic() - started
    print(
        f"\nchaos: {plan.sends} sends accepted in {accepted_s:.1f}s, all settled after "
        f"{settled_s:.1f}s; {record.client_retries} client retries; faults: {record.chaos}"
    )

    # Every accepted message is one document, and it reached WhatsApp.
    assert len(record.accepted) == plan.sends, "two sends were given the same id"
    statuses = {d.id: d.status.value for d in docs}
    assert set(statuses) == set(record.accepted)
    not_sent = {mid: s for mid, s in statuses.items() if s not in DONE}
    assert not not_sent, f"{len(not_sent)} messages did not reach WhatsApp: {not_sent}"

    # Each recipient got each of its messages exactly once, in the order accepted.
    created = {d.id: d.created_at for d in docs}
    expected: dict[str, list[tuple[Any, str, str]]] = defaultdict(list)
    for mid, (i, sender, to) in record.accepted.items():
        expected[to].append((created[mid], sender.lstrip("+"), f"chaos-{i}"))
    stamps: list[float] = []  # when each message reached its recipient
    for to, wanted in expected.items():
        lost = duplicated = 0
        messages = system.received(to)
        stamps += [float(m["ts"]) for m in messages]
        got = [(m["from"].lstrip("+"), m["content"]["body"]) for m in messages]
        counts: dict[tuple[str, str], int] = defaultdict(int)
        for item in got:
            counts[item] += 1
        for _, sender, body in wanted:
            n = counts.get((sender, body), 0)
            lost += n == 0
            duplicated += max(0, n - 1)
        in_order = [(s, b) for _, s, b in sorted(wanted)]
        assert lost == 0 and duplicated == 0, f"lost {lost}, duplicated {duplicated} (to {to})"
        assert got == in_order, f"chat {to}: received out of the accepted order"

    # Each kill is followed by a send within the bound (while work was waiting: every kill
    # of the plan lands inside the sending period).
    first_sends = [round(min(t for t in stamps if t > k) - k, 1) for k in record.kills]
    print(f"seconds from each runner SIGKILL to the next send: {first_sends}")
    if plan.first_send_bound_s is not None:
        assert len(first_sends) == plan.runner_kills
        assert all(s <= plan.first_send_bound_s for s in first_sends), first_sends
    return record


@pytest.mark.timeout(600)  # the settle deadline (300 s) fails first, with a diagnosis
def test_chaos_short_loses_and_duplicates_nothing(chaos_stack: System) -> None:
    plan = Plan(
        sends=600,
        sessions=6,
        chats_per_session=8,
        runner_kills=1,
        socket_drops=4,
        tasks_restarts=1,
    )
    record = run_chaos(chaos_stack, plan)
    assert len(record.chaos) == 6


@pytest.mark.timeout(600)
def test_a_runner_killed_in_a_burst_sends_again_within_the_bound(chaos_stack: System) -> None:
    """SPEC §9: at most 12 s from a runner SIGKILL to its first send in the middle of a burst.
    The runner is killed while 240 sends to 3 sessions and 3 chats each arrive, paced at 10/s
    per session (so most are queued): the next send must come within a bound generous for a
    loaded machine, and nothing may be lost, doubled or reordered. What made it 24-54 s (the
    dead runner's open claim kept its messages locked) depends on where the kill lands; the
    store contract test `test_a_claim_left_open_locks_nothing_for_the_next_writer` stages it
    every time."""
    plan = Plan(
        sends=240,
        sessions=3,
        chats_per_session=3,
        runner_kills=1,
        socket_drops=0,
        tasks_restarts=0,
        pacing_per_s=10,
        first_send_bound_s=FIRST_SEND_AFTER_KILL_S,
    )
    record = run_chaos(chaos_stack, plan)
    assert len(record.kills) == 1


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_chaos_10k_sends_lose_and_duplicate_nothing(chaos_stack: System) -> None:
    plan = Plan(
        sends=10_000,
        sessions=20,
        chats_per_session=10,
        runner_kills=5,
        socket_drops=20,
        tasks_restarts=2,
        senders=16,
        settle_timeout_s=600.0,
        rate_per_s=30,
    )
    record = run_chaos(chaos_stack, plan)
    assert len(record.chaos) == 27
