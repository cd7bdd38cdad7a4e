"""`load`: 100 concurrent clients for 10 minutes (2 with --quick) sending through the api with
Idempotency-Keys, at an offered load the runner sustains (SPEC §9: at least 99.9 % success, no 5xx).

Each client posts to its own chat (so its messages keep their order) on one of SESSIONS
sessions, one message every CLIENTS / OFFERED_PER_S seconds with jitter, and retries a 429 or
a connection error with the same Idempotency-Key, as a careful client does. Reported: the
share of requests answered 202, the 5xx count, accept latency p50/p95/p99, accepted → read
(the read receipt's time minus the accept time, from each message's status times), the status
lag (receipt → the api shows it, read message by message for every tenth client), whether
every message reached its recipient exactly once and in order, and the CPU each process used,
which names the first limit: on a shared 2-core machine it is the process that would saturate
first as the offered load grows.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import Result, summary
from bench.costs import per_message
from bench.live import PointWatch, billed, live_stack, p, received, tenant_with_sessions
from bench.pipeline import _cpu_by_process
from devstack.stack import Stack
from wagate.adapters.firestore import FirestoreStore, make_client
from wagate.config import Settings
from wagate.contracts import MessageDoc
from wagate.ports import Where

CLIENTS = 100
SESSIONS = 10
OFFERED_PER_S = 25.0
SUCCESS_TARGET = 0.999
STATUS_LAG_TARGET_S = 5.0
WATCH_EVERY = 10  # the status lag is watched on every tenth client's messages


class Client:
    """One user of the api: posts to its own chat, one message at a time."""

    def __init__(self, n: int, session_id: str, stamp: int) -> None:
        self.n = n
        self.session_id = session_id
        self.to = f"+1653{stamp:05d}{n:04d}"
        self.bodies: list[str] = []
        self.accepted: dict[str, float] = {}  # message id → accept time (time.time())
        self.accept_ms: list[float] = []
        self.watch: PointWatch | None = None  # set on the clients whose messages are watched


async def _post(
    http: aiohttp.ClientSession, client: Client, i: int, answers: Counter[int], errors: list[str]
) -> None:
    body = f"load-{client.n}-{i}"
    payload = {"to": client.to, "content": {"type": "text", "body": body}}
    headers = {"Idempotency-Key": body}
    delay = 0.2
    for _ in range(20):
        t0 = time.perf_counter()
        try:
            async with http.post(
                f"/v1/sessions/{client.session_id}/messages", json=payload, headers=headers
            ) as r:
                answers[r.status] += 1
                data = await r.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as e:
            errors.append(type(e).__name__)
        else:
            if r.status == 202:
                client.accept_ms.append((time.perf_counter() - t0) * 1000)
                client.accepted[str(data["id"])] = time.time()
                client.bodies.append(body)
                if client.watch is not None:
                    client.watch.track(str(data["id"]))
                return
            if r.status != 429:
                errors.append(f"{r.status}: {str(data)[:200]}")
                if r.status < 500:
                    return  # refused for good: counted, not retried
        await asyncio.sleep(delay)
        delay = min(delay * 2, 3.0)


async def _drive(s: Stack, key: str, clients: list[Client], seconds: float) -> dict[str, Any]:
    answers: Counter[int] = Counter()
    errors: list[str] = []
    period = len(clients) / OFFERED_PER_S
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=len(clients))
    timeout = aiohttp.ClientTimeout(total=60)
    auth = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(
        s.url["api"], connector=connector, timeout=timeout, headers=auth
    ) as http:

        async def run(client: Client) -> None:
            rng = random.Random(client.n)
            await asyncio.sleep(rng.uniform(0, period))
            i = 0
            while time.monotonic() < deadline:
                started = time.monotonic()
                await _post(http, client, i, answers, errors)
                i += 1
                await asyncio.sleep(
                    max(0.0, period * rng.uniform(0.5, 1.5) - (time.monotonic() - started))
                )

        await asyncio.gather(*(run(c) for c in clients))
    return {"answers": dict(answers), "errors": errors}


def _read_latencies(
    store: FirestoreStore, session_ids: list[str], accepted: dict[str, float]
) -> tuple[list[float], int]:
    """Accepted → read (s) per message, from its status times; and how many are not read."""
    repo = store.collection("messages", MessageDoc)
    latencies: list[float] = []
    not_read = 0
    for sid in session_ids:
        cursor = None
        while True:
            page = repo.query(
                [Where("session_id", "==", sid)], order_by="id", limit=1000, start_after=cursor
            )
            for doc in page:
                if doc.id not in accepted:
                    continue
                read_at: datetime | None = doc.status_times.get("read")
                if read_at is None:
                    not_read += 1
                else:
                    latencies.append(read_at.timestamp() - accepted[doc.id])
            if len(page) < 1000:
                break
            cursor = page[-1].id
    return latencies, not_read


def run(quick: bool = False, **_: Any) -> Result:
    seconds = 120.0 if quick else 600.0
    root = Path(tempfile.mkdtemp(prefix="wagate-bench-load-"))
    with live_stack(root) as s:
        key, session_ids = tenant_with_sessions(s, SESSIONS, pacing_per_s=100, burst=100)
        stamp = int(time.time()) % 100_000
        clients = [Client(n, session_ids[n % SESSIONS], stamp) for n in range(CLIENTS)]
        cpu_before, started = _cpu_by_process(s), time.monotonic()
        counted_before = billed(root)
        with PointWatch(s, key) as watch:
            for c in clients[::WATCH_EVERY]:
                c.watch = watch
            driven = asyncio.run(_drive(s, key, clients, seconds))
            accepted = {mid: at for c in clients for mid, at in c.accepted.items()}
            watched = {m for c in clients[::WATCH_EVERY] for m in c.accepted}
            watch.wait_for(watched, "read", 120)
        elapsed = time.monotonic() - started
        cpu_after = _cpu_by_process(s)
        store = FirestoreStore(make_client(Settings().project_id))
        deadline = time.monotonic() + 180
        while True:
            latencies, not_read = _read_latencies(store, session_ids, accepted)
            if not_read == 0 or time.monotonic() > deadline:
                break
            time.sleep(5)
        time.sleep(2.5)  # the counts are written once a second
        cost = per_message(billed(root), counted_before, max(1, len(accepted)))
        exact = all([m["content"]["body"] for m in received(s, c.to)] == c.bodies for c in clients)
    answers: dict[int, int] = driven["answers"]
    requests = sum(answers.values()) + len([e for e in driven["errors"] if not e[:1].isdigit()])
    success = answers.get(202, 0) / requests if requests else 0.0
    five_xx = sum(n for status, n in answers.items() if status >= 500)
    accept = summary([ms for c in clients for ms in c.accept_ms])
    lags = watch.lags(watched) + watch.lags(watched, "delivered")
    cpu_share = {k: round((cpu_after[k] - cpu_before.get(k, 0.0)) / elapsed, 3) for k in cpu_after}
    busiest = max((k for k in cpu_share if k != "bench"), key=lambda k: cpu_share[k])
    ok = (
        success >= SUCCESS_TARGET
        and five_xx == 0
        and not_read == 0
        and exact
        and (p(lags, 99) or 0) <= STATUS_LAG_TARGET_S
    )
    return Result(
        bench="load",
        figure=round(100 * success, 3),
        unit=f"% of requests answered 202 ({CLIENTS} clients, {seconds / 60:.0f} min, "
        f"{OFFERED_PER_S:.0f} messages/s offered)",
        baseline=None,
        ratio=None,
        target=f">= {100 * SUCCESS_TARGET} % success, no 5xx, every message read, "
        f"status lag p99 <= {STATUS_LAG_TARGET_S} s",
        ok=ok,
        details={
            "messages_accepted": len(accepted),
            "requests": requests,
            "answers": answers,
            "five_xx": five_xx,
            "client_errors": Counter(driven["errors"]).most_common(5),
            "accept_ms": accept,
            "accepted_to_read_s": {
                "p50": p(latencies, 50),
                "p95": p(latencies, 95),
                "p99": p(latencies, 99),
                "n": len(latencies),
            },
            "not_read": not_read,
            "exactly_once_in_order": exact,
            "status_lag_s": {
                "p50": p(lags, 50),
                "p95": p(lags, 95),
                "p99": p(lags, 99),
                "n": len(lags),
            },
            "status_poll_s": {"p50": p(watch.poll_s, 50), "p99": p(watch.poll_s, 99)},
            "cpu_cores_by_process": cpu_share,
            "billed_per_message": cost["per_message"],
            "billed_usd_per_million": cost["usd_per_million_messages"],
            "billed_ratio_to_floor": cost["ratio_to_floor"],
            "first_limit": f"{busiest} ({cpu_share[busiest]} cores of 2; the whole machine "
            f"used {round(sum(cpu_share.values()), 2)})",
        },
    )
