"""What one message costs in billed operations, counted in the pipeline bench.

Every wagate process of the bench's stack counts the operations Google bills at its adapter
boundary (wagate/adapters/billing.py, WAGATE_COUNT_OPERATIONS). A counted turn sends N text
messages through the api, waits until each was sent and its delivered and read receipts were
recorded, and divides what the api, the runner and the sweeper used meanwhile by N, per phase.
Cloud Tasks delivery attempts are counted where the runner receives them.

The floor is what the design (SPEC §1-§3) cannot do without for one text message with
delivered and read receipts: the message document written at accept, claimed in a
transaction (one read, one write), `sent`, `delivered` and `read` recorded (three writes),
one Cloud Task created and dispatched once. The shard lease read that fences a claim is shared
by a claim group and the lease renewals are per shard, not per message (both are counted, in
`claim` and `upkeep`).
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from wagate.adapters.billing import read_all

# Google Cloud list prices in USD, as published on cloud.google.com/firestore/pricing,
# /tasks/pricing and /storage/pricing in 2024 (from memory, not fetched: check before use).
# Firestore native mode, regional location (e.g. us-central1), per 100,000 documents;
# Cloud Tasks per million billable operations after the first million a month.
PRICE_TABLE = "Google Cloud list prices, Firestore regional (us-central1) and Cloud Tasks, 2024"
PRICES = {
    "firestore_read_per_100k": 0.03,
    "firestore_write_per_100k": 0.09,
    "firestore_delete_per_100k": 0.01,
    "tasks_operation_per_million": 0.40,
}
FLOOR = {"reads": 1.0, "writes": 5.0, "deletes": 0.0, "tasks": 2.0}
COST_TARGET = 1.5
SERVICES = ("api", "runner", "sweeper")
POLLS = "client polls"  # shown, not added to the message's cost


def phase_of(service: str, op: str, collection: str, kind: str) -> str:
    """Which step of a message's life an operation belongs to."""
    if service == "api":
        # The api's listings serve clients that poll (the recovery and load benches do, for
        # the status lag): reads a client chooses to make, not part of a message's cost.
        return POLLS if op == "firestore.read" and kind == "query" else "accept"
    if service == "sweeper":
        return "sweeper"
    if op.startswith("tasks."):
        if collection == "webhooks":
            return "webhooks"
        return "send" if op in ("tasks.run_task", "tasks.dispatch") else "upkeep"
    if collection == "messages":
        if kind.endswith((":delivered", ":read")):
            return "receipts"
        if kind.endswith(":sent"):
            return "send"
        return "claim"  # the claim's read and `sending` write, the order check's reads
    if collection == "pending":
        return "send" if op == "firestore.delete" else "claim"  # deleted once sent; order check
    if collection == "shards" and op == "firestore.read":
        return "claim"  # the fence of each claim group (and the lease's own reads, in upkeep)
    return "upkeep"  # the lease, session state, alerts, the monitor's probes and counts


def unit_of(op: str) -> str:
    if op.startswith("tasks."):
        return "tasks"
    return {"firestore.read": "reads", "firestore.write": "writes", "firestore.delete": "deletes"}[
        op
    ]


def usd_per_million(units: dict[str, float]) -> float:
    """The price of a million messages of this per-message cost."""
    per_message = (
        units.get("reads", 0) * PRICES["firestore_read_per_100k"] / 1e5
        + units.get("writes", 0) * PRICES["firestore_write_per_100k"] / 1e5
        + units.get("deletes", 0) * PRICES["firestore_delete_per_100k"] / 1e5
        + units.get("tasks", 0) * PRICES["tasks_operation_per_million"] / 1e6
    )
    return round(per_message * 1e6, 2)


def _receipts(runner_url: str) -> int:
    detail = httpx.get(f"{runner_url}/health", params={"detailed": "true"}, timeout=10).json()
    return int(detail.get("receipts", 0))


def counted_turn(
    count_dir: Path,
    runner_url: str,
    send: Any,
    messages: int,
) -> dict[str, Any]:
    """Send `messages` with `send(n)` and count what they cost, per phase and unit."""
    time.sleep(2.5)  # the counts of what came before are on disk (written once a second)
    before = read_all(count_dir)
    receipts_before = _receipts(runner_url)
    started = time.monotonic()
    send(messages)
    while _receipts(runner_url) - receipts_before < 2 * messages:  # delivered and read
        if time.monotonic() - started > 300:
            raise TimeoutError("receipts were not all recorded within 5 min")
        time.sleep(0.2)
    time.sleep(3.0)  # the processes write their counts once a second; the last patches land
    seconds = time.monotonic() - started
    return {"seconds": round(seconds, 1), **per_message(read_all(count_dir), before, messages)}


def per_message(after: Counter[str], before: Counter[str], messages: int) -> dict[str, Any]:
    """The billed operations between two readings of the counts, per message and phase."""
    delta = Counter(after)
    delta.subtract(before)
    by_phase: dict[str, Counter[str]] = {}
    for key, n in delta.items():
        service, op, collection, kind = key.split("|")
        service = service.split("-")[0]
        if n <= 0 or service not in SERVICES:
            continue
        phase = phase_of(service, op, collection, kind)
        by_phase.setdefault(phase, Counter())[unit_of(op)] += n
    per_phase = {
        phase: {unit: round(n / messages, 3) for unit, n in sorted(units.items())}
        for phase, units in sorted(by_phase.items())
    }
    total: Counter[str] = Counter()
    for phase, units in by_phase.items():
        if phase != POLLS:
            total.update(units)
    total_per_message = {unit: round(n / messages, 3) for unit, n in sorted(total.items())}
    cost = usd_per_million(total_per_message)
    floor = usd_per_million(FLOOR)
    return {
        "messages": messages,
        "per_message_by_phase": per_phase,
        "per_message": total_per_message,
        "floor_per_message": FLOOR,
        "usd_per_million_messages": cost,
        "floor_usd_per_million_messages": floor,
        "ratio_to_floor": round(cost / floor, 3),
        "target": f"<= {COST_TARGET} x floor",
        "ok": cost / floor <= COST_TARGET,
        "prices": {"table": PRICE_TABLE, **PRICES},
    }
